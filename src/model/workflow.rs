//! The status changes a tracker allows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Each status, and the statuses an issue in it may move to. A status that
/// is not listed allows no change, as in a tracker's workflow: a misspelt
/// status blocks a change rather than letting any through.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Workflow(BTreeMap<String, BTreeSet<String>>);

impl Workflow {
    pub fn new<'a>(transitions: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Workflow {
        Workflow(
            transitions
                .into_iter()
                .map(|(from, to)| {
                    (
                        from.to_owned(),
                        to.iter().map(|s| (*s).to_owned()).collect(),
                    )
                })
                .collect(),
        )
    }

    pub fn allows(&self, from: &str, to: &str) -> bool {
        from == to || self.0.get(from).is_some_and(|next| next.contains(to))
    }

    /// The statuses an issue in `from` may move to.
    pub fn next(&self, from: &str) -> Vec<&str> {
        self.0
            .get(from)
            .map(|next| next.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

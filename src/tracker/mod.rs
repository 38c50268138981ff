//! Trackers behind one trait: what the engine asks of Jira, Redmine or the
//! embedded local tracker.

mod batch;
pub mod http;
pub mod jira;
pub mod limit;
pub mod local;
pub mod redmine;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use crate::model::{Issue, Snapshot, Workflow};
use crate::plan::TrackerOp;

pub use batch::counting_made;
pub use jira::JiraTracker;
pub use local::LocalTracker;
pub use redmine::RedmineTracker;

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(
        "{path} changed since Trellis read it, so nothing was written to it; run the command again to plan from the current content"
    )]
    ChangedSinceRead { path: String },
    #[error("{issue}: {operation}: {message}")]
    Issue {
        issue: String,
        operation: String,
        message: String,
    },
    #[error("invalid query `{query}`: {message}")]
    Query { query: String, message: String },
    /// A whole request failed (the server is unreachable, the key refused).
    #[error("{operation}: {message}")]
    Remote {
        operation: String,
        message: String,
        /// The HTTP status, when the server answered: what callers decide on.
        status: Option<u16>,
    },
    /// Some writes failed; the others were made (`done` of them). After a
    /// key refused part-way, the operations not tried are failures too:
    /// the last `untried` of `failures`, which the tracker never saw (a
    /// pass tries them again by itself, where it holds a refused one for a
    /// person).
    #[error("{}", writes_failed(*.done, .failures))]
    Writes {
        done: usize,
        failures: Vec<IssueFailure>,
        untried: usize,
    },
}

/// One issue's failed operation, with the tracker's own message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueFailure {
    pub issue: String,
    pub operation: String,
    pub message: String,
}

/// The candidate nearest to a misspelt `name` (at most two edits, ignoring
/// case), for "did you mean" hints.
pub(crate) fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over bytes (field and filter names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn writes_failed(done: usize, failures: &[IssueFailure]) -> String {
    let mut text = format!(
        "{} tracker write(s) failed and {done} succeeded; the next run plans what is left:",
        failures.len()
    );
    for f in failures {
        text.push_str(&format!("\n  {}: {}: {}", f.issue, f.operation, f.message));
    }
    text
}

/// What a tracker can and cannot tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether creating or deleting a link bumps the issue's `updated` time.
    /// When it does not (Redmine), [`Tracker::changed_since`] misses link
    /// changes: a sync that follows links must re-read them with a full
    /// [`Tracker::snapshot`], at least each `fullResyncAfter`.
    pub link_changes_bump_updated: bool,
    /// Whether a write is refused when the tracker changed since Trellis
    /// read it (the local tracker checks its file). When it is not, an
    /// incremental pass reads the changed issues once more just before
    /// writing, so that it never overwrites a change made meanwhile.
    pub refuses_stale_writes: bool,
}

/// What a synchronizer needs a tracker to allow its account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Need {
    Read,
    SetParents,
    SetEpics,
    ChangeLinks,
    Rank,
    ChangeStatuses,
}

impl Need {
    pub fn describe(self) -> &'static str {
        match self {
            Need::Read => "read issues",
            Need::SetParents => "set parents",
            Need::SetEpics => "set epics",
            Need::ChangeLinks => "create and delete links",
            Need::Rank => "rank issues",
            Need::ChangeStatuses => "change statuses",
        }
    }
}

/// Whether a tracker allows one need, in the tracker's own terms.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Allowance {
    pub need: Need,
    pub allowed: bool,
    /// The permission behind it and where it was found, or what to do.
    pub detail: String,
}

/// A connected issue tracker.
///
/// Reads give a consistent view: `search` answers from the same state the
/// last `snapshot` read where the tracker allows it. Writes are idempotent
/// (setting a parent that is already set changes nothing), so a run that
/// failed half-way is completed by the next one.
pub trait Tracker: Send + Sync {
    /// Every issue in the tracker's scope.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, TrackerError>> + Send;

    /// Keys of the issues a filter query (in the tracker's own language) matches.
    fn search(
        &self,
        query: &str,
    ) -> impl Future<Output = Result<HashSet<String>, TrackerError>> + Send;

    /// Which of `keys` a filter query matches: what an incremental pass
    /// asks about the issues changed since its last pass. Trackers that can
    /// restrict a query to given issues do so in one request; this default
    /// runs the whole query.
    fn search_among(
        &self,
        query: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashSet<String>, TrackerError>> + Send {
        async move {
            if keys.is_empty() {
                return Ok(HashSet::new());
            }
            let all = self.search(query).await?;
            Ok(keys.iter().filter(|k| all.contains(*k)).cloned().collect())
        }
    }

    /// Applies operations to issues. Each failed operation is reported
    /// against its issue ([`TrackerError::Writes`]); the others are made.
    /// A key refused part-way ends the batch the same way on every tracker
    /// (see `batch.rs`).
    fn apply(&self, ops: &[TrackerOp]) -> impl Future<Output = Result<(), TrackerError>> + Send;

    /// Issues whose `updated` time is at or after `from` (an inclusive
    /// bound, in whole seconds on some trackers): dedupe with [`Watermark`].
    fn changed_since(
        &self,
        from: jiff::Timestamp,
    ) -> impl Future<Output = Result<Vec<Issue>, TrackerError>> + Send;

    fn capabilities(&self) -> Capabilities;

    /// The status changes the tracker allows, when it can tell them before
    /// anything is written (the local tracker's declared workflow), so plans
    /// hold only allowed changes. `None`: the tracker checks each write
    /// itself (Redmine, per issue and role) and a refused change is reported
    /// against its issue.
    fn workflow(&self) -> impl Future<Output = Result<Option<Workflow>, TrackerError>> + Send;

    /// Whether the tracker allows its account what `needs` name, asked
    /// without writing anything (`trellis troubleshoot`).
    fn allows(
        &self,
        needs: &[Need],
    ) -> impl Future<Output = Result<Vec<Allowance>, TrackerError>> + Send;

    /// The account the tracker records writes under (the API key's user);
    /// `None` for a tracker without accounts (local: whoever runs Trellis).
    fn acting_as(&self) -> impl Future<Output = Result<Option<String>, TrackerError>> + Send;
}

/// Where the last read of changed issues stopped. Reads start an overlap
/// window before the newest `updated` seen, so that a change committed late
/// with an earlier timestamp is still found; an issue read again unchanged
/// (same `updated`, same content) is dropped. Comparing content too keeps a
/// second change within the same second, which timestamps alone would lose.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "StoredWatermark", from = "StoredWatermark")]
pub struct Watermark {
    newest: Option<jiff::Timestamp>,
    seen: BTreeMap<(jiff::Timestamp, String), Issue>,
}

/// A watermark as the store keeps it (JSON maps take no tuple keys).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWatermark {
    newest: Option<jiff::Timestamp>,
    seen: Vec<Issue>,
}

impl From<Watermark> for StoredWatermark {
    fn from(mark: Watermark) -> StoredWatermark {
        StoredWatermark {
            newest: mark.newest,
            seen: mark.seen.into_values().collect(),
        }
    }
}

impl From<StoredWatermark> for Watermark {
    fn from(stored: StoredWatermark) -> Watermark {
        let seen = stored
            .seen
            .into_iter()
            .filter_map(|i| Some(((i.updated?, i.key.clone()), i)))
            .collect();
        Watermark {
            newest: stored.newest,
            seen,
        }
    }
}

impl Watermark {
    pub const OVERLAP: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

    /// Where the next read starts; `None` before the first read.
    pub fn read_from(&self) -> Option<jiff::Timestamp> {
        self.newest.map(|t| t - Self::OVERLAP)
    }

    /// Keeps the issues not seen before and moves the watermark past them.
    pub fn advance(&mut self, issues: Vec<Issue>) -> Vec<Issue> {
        let fresh: Vec<Issue> = issues
            .into_iter()
            .filter(|i| match i.updated {
                Some(t) => self.seen.get(&(t, i.key.clone())) != Some(i),
                None => true,
            })
            .collect();
        for issue in &fresh {
            if let Some(t) = issue.updated {
                self.newest = self.newest.max(Some(t));
                self.seen.insert((t, issue.key.clone()), issue.clone());
            }
        }
        if let Some(from) = self.read_from() {
            self.seen = self.seen.split_off(&(from, String::new()));
        }
        fresh
    }
}

/// Every tracker type, dispatched statically.
pub enum AnyTracker {
    Local(LocalTracker),
    Redmine(RedmineTracker),
    Jira(JiraTracker),
}

impl AnyTracker {
    /// HTTP requests this client has sent, retries included (none for the
    /// local tracker).
    pub fn requests(&self) -> u64 {
        match self {
            AnyTracker::Local(_) => 0,
            AnyTracker::Redmine(t) => t.requests(),
            AnyTracker::Jira(t) => t.requests(),
        }
    }
}

impl Tracker for AnyTracker {
    async fn snapshot(&self) -> Result<Snapshot, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.snapshot().await,
            AnyTracker::Redmine(t) => t.snapshot().await,
            AnyTracker::Jira(t) => t.snapshot().await,
        }
    }

    async fn search(&self, query: &str) -> Result<HashSet<String>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.search(query).await,
            AnyTracker::Redmine(t) => t.search(query).await,
            AnyTracker::Jira(t) => t.search(query).await,
        }
    }

    async fn search_among(
        &self,
        query: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.search_among(query, keys).await,
            AnyTracker::Redmine(t) => t.search_among(query, keys).await,
            AnyTracker::Jira(t) => t.search_among(query, keys).await,
        }
    }

    async fn apply(&self, ops: &[TrackerOp]) -> Result<(), TrackerError> {
        match self {
            AnyTracker::Local(t) => t.apply(ops).await,
            AnyTracker::Redmine(t) => t.apply(ops).await,
            AnyTracker::Jira(t) => t.apply(ops).await,
        }
    }

    async fn changed_since(&self, from: jiff::Timestamp) -> Result<Vec<Issue>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.changed_since(from).await,
            AnyTracker::Redmine(t) => t.changed_since(from).await,
            AnyTracker::Jira(t) => t.changed_since(from).await,
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self {
            AnyTracker::Local(t) => t.capabilities(),
            AnyTracker::Redmine(t) => t.capabilities(),
            AnyTracker::Jira(t) => t.capabilities(),
        }
    }

    async fn workflow(&self) -> Result<Option<Workflow>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.workflow().await,
            AnyTracker::Redmine(t) => t.workflow().await,
            AnyTracker::Jira(t) => t.workflow().await,
        }
    }

    async fn allows(&self, needs: &[Need]) -> Result<Vec<Allowance>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.allows(needs).await,
            AnyTracker::Redmine(t) => t.allows(needs).await,
            AnyTracker::Jira(t) => t.allows(needs).await,
        }
    }

    async fn acting_as(&self) -> Result<Option<String>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.acting_as().await,
            AnyTracker::Redmine(t) => t.acting_as().await,
            AnyTracker::Jira(t) => t.acting_as().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(key: &str, second: i64) -> Issue {
        Issue {
            key: key.into(),
            summary: String::new(),
            issue_type: "Task".into(),
            status: "Open".into(),
            parent: None,
            epic: None,
            links: vec![],
            rank: None,
            updated: Some(jiff::Timestamp::from_second(second).unwrap()),
            fields: Default::default(),
        }
    }

    #[test]
    fn watermarks_drop_what_the_overlap_reads_again() {
        let mut mark = Watermark::default();
        assert_eq!(mark.read_from(), None);
        let first = mark.advance(vec![changed("#1", 1000), changed("#2", 1005)]);
        assert_eq!(first.len(), 2);
        assert_eq!(
            mark.read_from(),
            Some(jiff::Timestamp::from_second(1005 - 60).unwrap())
        );
        // The next read returns the boundary issues again, #2 changed once
        // more within the same second, #3 new and #1 changed later.
        let mut renamed = changed("#2", 1005);
        renamed.summary = "renamed".into();
        let second = mark.advance(vec![
            changed("#1", 1000),
            renamed,
            changed("#3", 1005),
            changed("#1", 1010),
        ]);
        let keys: Vec<&str> = second.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["#2", "#3", "#1"]);
        assert!(mark.advance(vec![changed("#3", 1005)]).is_empty());
        // Far later, the old seen pairs are forgotten.
        mark.advance(vec![changed("#9", 5000)]);
        assert_eq!(mark.seen.len(), 1);
    }
}

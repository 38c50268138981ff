//! Saved plans: what `trellis plan --out FILE` writes and `trellis apply FILE`
//! applies, exactly or not at all.
//!
//! The file is JSON (`apiVersion: trellis.dev/v1alpha1`, `kind: Plan`) and
//! holds the declarations planned from, the plan itself (operations,
//! summaries, outline diffs, base fingerprints, hashes) and, per structure,
//! the base it was computed from: the store version and a short digest of
//! every tracker issue. Applying plans again from the same declarations and
//! goes ahead only when the new plan has the file's hash; the hash covers the
//! operations and their base, so what is applied is exactly what the file
//! shows. Otherwise the bases are compared to say what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EngineError, Run};
use crate::plan::PlanSet;

const API_VERSION: &str = "trellis.dev/v1alpha1";
const KIND: &str = "Plan";

/// The state one structure's plan was computed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Base {
    pub structure: String,
    /// The structure's version in the store.
    pub version: u64,
    pub tracker: String,
    /// Issue key → the first 16 hex digits of the SHA-256 of its content.
    pub issues: BTreeMap<String, String>,
}

/// A saved plan as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Written<'a> {
    api_version: &'static str,
    kind: &'static str,
    /// The declaration files and folders, as given to `plan -f`.
    files: &'a [PathBuf],
    /// What `apply` checks: the hash of the whole plan.
    hash: &'a str,
    plan: &'a PlanSet,
    bases: Vec<Base>,
}

/// The parts of a saved plan that `apply` reads back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanFile {
    api_version: String,
    kind: String,
    pub files: Vec<PathBuf>,
    pub hash: String,
    pub bases: Vec<Base>,
}

impl Run {
    /// The base of every structure in this run.
    pub fn bases(&self) -> Vec<Base> {
        self.prepared
            .iter()
            .map(|p| Base {
                structure: p.structure.clone(),
                version: p.base_version,
                tracker: p.tracker.clone(),
                issues: p
                    .snapshot
                    .issue_digests()
                    .into_iter()
                    .map(|(key, digest)| (key.to_owned(), digest))
                    .collect(),
            })
            .collect()
    }

    /// The run as a saved plan (JSON).
    pub fn to_plan_file(&self, files: &[PathBuf]) -> String {
        let written = Written {
            api_version: API_VERSION,
            kind: KIND,
            files,
            hash: &self.set.hash,
            plan: &self.set,
            bases: self.bases(),
        };
        serde_json::to_string_pretty(&written).expect("plans serialize")
    }
}

impl PlanFile {
    pub fn read(path: &Path) -> Result<PlanFile, EngineError> {
        let invalid =
            |message: String| EngineError::Invalid(format!("{}: {message}", path.display()));
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read the plan: {e}")))?;
        let file: PlanFile = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "not a Trellis plan file ({e}); make one with `trellis plan -f PATH --out FILE`"
            ))
        })?;
        if file.api_version != API_VERSION || file.kind != KIND {
            return Err(invalid(format!(
                "{} {} is not a plan this Trellis applies (it writes {API_VERSION} {KIND}); plan again",
                file.api_version, file.kind
            )));
        }
        Ok(file)
    }

    /// Refuses unless `run` is the saved plan, saying what changed since.
    pub fn check(&self, path: &Path, run: &Run) -> Result<(), EngineError> {
        if run.set.hash == self.hash {
            return Ok(());
        }
        let mut changes = changes(&self.bases, &run.bases());
        if changes.is_empty() {
            changes.push("the declarations (or the Trellis version) changed".into());
        }
        let files: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("-f {}", f.display()))
            .collect();
        Err(EngineError::Invalid(format!(
            "{} is stale: the plan is {} now, not {}; nothing was applied. What changed since it was made:\n{}\nMake a new plan with `trellis plan {} --out {}`, review it, and apply that.",
            path.display(),
            run.set.hash,
            self.hash,
            changes
                .iter()
                .map(|c| format!("  - {c}"))
                .collect::<Vec<_>>()
                .join("\n"),
            files.join(" "),
            path.display()
        )))
    }
}

/// What differs between the bases a plan was made from and the current ones.
fn changes(saved: &[Base], current: &[Base]) -> Vec<String> {
    let mut out = Vec::new();
    for now in current {
        let Some(then) = saved.iter().find(|b| b.structure == now.structure) else {
            out.push(format!("structure {} is new in this run", now.structure));
            continue;
        };
        if then.version != now.version {
            out.push(format!(
                "structure {} changed: version {} → {} (see its journal)",
                now.structure, then.version, now.version
            ));
        }
        let changed: Vec<&str> = now
            .issues
            .iter()
            .filter(|(key, digest)| then.issues.get(*key).is_some_and(|d| d != *digest))
            .map(|(key, _)| key.as_str())
            .collect();
        let added: Vec<&str> = now
            .issues
            .keys()
            .filter(|k| !then.issues.contains_key(*k))
            .map(String::as_str)
            .collect();
        let removed: Vec<&str> = then
            .issues
            .keys()
            .filter(|k| !now.issues.contains_key(*k))
            .map(String::as_str)
            .collect();
        for (what, keys) in [("changed", changed), ("added", added), ("removed", removed)] {
            if !keys.is_empty() {
                out.push(format!(
                    "tracker {}: {} issue(s) {what}: {}",
                    now.tracker,
                    keys.len(),
                    sample(&keys)
                ));
            }
        }
    }
    for then in saved {
        if !current.iter().any(|b| b.structure == then.structure) {
            out.push(format!(
                "structure {} is no longer in this run",
                then.structure
            ));
        }
    }
    // Structures on one tracker see the same tracker changes: say them once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|line| seen.insert(line.clone()));
    out
}

fn sample(keys: &[&str]) -> String {
    const SHOWN: usize = 10;
    let shown = keys[..keys.len().min(SHOWN)].join(", ");
    if keys.len() > SHOWN {
        format!("{shown}, and {} more", keys.len() - SHOWN)
    } else {
        shown
    }
}

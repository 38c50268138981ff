//! The embedded tracker: issues kept in a YAML file.
//!
//! The file holds `issues:`, a list of issues (see `model::Issue`), and
//! optionally `workflow:`, each status with the statuses an issue in it may
//! move to (see `model::Workflow`); without it any status change is allowed.
//! Writes
//! go to a temporary file in the same folder that is then renamed over the
//! original, so a reader never sees half a file; they bump `updated` on the
//! issues they change and refuse to overwrite a file whose content changed
//! since Trellis read it. Comments in the file are not kept when it is
//! rewritten.

mod query;

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::batch::WriteBatch;
use super::{Allowance, Capabilities, IssueFailure, Need, Tracker, TrackerError};
use crate::model::{Issue, Snapshot, Workflow};
use crate::plan::TrackerOp;

pub use query::{Query, QueryError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuesFile {
    #[serde(default)]
    workflow: Option<Workflow>,
    issues: Vec<Issue>,
}

/// The same shape, written from borrowed issues.
#[derive(Serialize)]
struct IssuesFileRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<&'a Workflow>,
    issues: &'a [&'a Issue],
}

/// The content last read: the issues (shared with the snapshots handed
/// out, in file order), the workflow, and the digest of the bytes they
/// came from.
struct Read {
    snapshot: Snapshot,
    /// Its free fields, found once a read rather than once a query: a
    /// pass's query of a few changed issues then costs what they do.
    fields: Arc<BTreeSet<String>>,
    workflow: Option<Workflow>,
    digest: [u8; 32],
}

pub struct LocalTracker {
    path: PathBuf,
    last_read: Mutex<Option<Read>>,
}

impl LocalTracker {
    pub fn new(path: impl Into<PathBuf>) -> LocalTracker {
        LocalTracker {
            path: path.into(),
            last_read: Mutex::new(None),
        }
    }

    fn error(&self, message: impl Into<String>) -> TrackerError {
        TrackerError::File {
            path: self.path.display().to_string(),
            message: message.into(),
        }
    }

    fn read(&self) -> Result<Read, TrackerError> {
        let bytes =
            std::fs::read(&self.path).map_err(|e| self.error(format!("cannot read: {e}")))?;
        let text = crate::yaml::utf8(&bytes)
            .map_err(|(line, message)| self.error(format!("line {line}: {message}")))?;
        let file: IssuesFile = serde_saphyr::from_str_with_options(text, yaml_options(text.len()))
            .map_err(|e| {
                let (line, message) = crate::yaml::describe_error(&e);
                match line {
                    Some(line) => self.error(format!("line {line}: {message}")),
                    None => self.error(message),
                }
            })?;
        let mut seen = HashSet::new();
        for (index, issue) in file.issues.iter().enumerate() {
            if !seen.insert(issue.key.as_str()) {
                let place = match key_line(text, index) {
                    Some(line) => format!("line {line}: "),
                    None => String::new(),
                };
                return Err(self.error(format!(
                    "{place}issue {} is listed twice; keys must be unique",
                    issue.key
                )));
            }
        }
        let snapshot = Snapshot::new(file.issues);
        Ok(Read {
            fields: known_fields(&snapshot),
            snapshot,
            workflow: file.workflow,
            digest: Sha256::digest(&bytes).into(),
        })
    }

    /// `what` of the content as last read (reading it if needed).
    fn last_read<T>(&self, what: impl FnOnce(&Read) -> T) -> Result<T, TrackerError> {
        let mut last_read = self.last_read.lock().expect("lock is never poisoned");
        if last_read.is_none() {
            *last_read = Some(self.read()?);
        }
        Ok(what(last_read.as_ref().expect("just read")))
    }

    /// Writes `issues` atomically after checking the file is still what was
    /// read. The new file keeps the old one's permissions, and a symbolic
    /// link is written through (its target is replaced, not the link).
    fn write(
        &self,
        expected: [u8; 32],
        workflow: Option<&Workflow>,
        issues: &[&Issue],
    ) -> Result<[u8; 32], TrackerError> {
        let current =
            std::fs::read(&self.path).map_err(|e| self.error(format!("cannot read: {e}")))?;
        if Sha256::digest(&current).as_slice() != expected {
            return Err(TrackerError::ChangedSinceRead {
                path: self.path.display().to_string(),
            });
        }
        let text = serde_saphyr::to_string(&IssuesFileRef { workflow, issues })
            .map_err(|e| self.error(format!("cannot serialize issues: {e}")))?;
        let target = std::fs::canonicalize(&self.path)
            .map_err(|e| self.error(format!("cannot resolve: {e}")))?;
        let permissions = std::fs::metadata(&target)
            .map_err(|e| self.error(format!("cannot read its permissions: {e}")))?
            .permissions();
        // The rename would replace a file its owner made read-only (even
        // running as root): that mode is a request not to write it.
        if permissions.readonly() {
            return Err(self.error(READ_ONLY));
        }
        let file_name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("issues.yaml");
        let temporary =
            target.with_file_name(format!(".{file_name}.trellis-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.set_permissions(permissions.clone())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &target)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            self.error(format!("cannot write: {e}"))
        })?;
        Ok(Sha256::digest(text.as_bytes()).into())
    }
}

fn parse(query: &str) -> Result<Query, TrackerError> {
    Query::parse(query).map_err(|e| TrackerError::Query {
        query: query.to_owned(),
        message: e.to_string(),
    })
}

/// A query naming a field no issue of the file has would match nothing,
/// and a filter with `remove` would then empty its part of the structure.
/// The free fields any issue of `snapshot` has: what a query may name.
fn known_fields(snapshot: &Snapshot) -> Arc<BTreeSet<String>> {
    Arc::new(
        snapshot
            .issues()
            .flat_map(|issue| issue.fields.keys().cloned())
            .collect(),
    )
}

fn check_fields(parsed: &Query, query: &str, known: &BTreeSet<String>) -> Result<(), TrackerError> {
    parsed
        .check_fields(known.iter().map(String::as_str))
        .map_err(|e| TrackerError::Query {
            query: query.to_owned(),
            message: e.to_string(),
        })
}

impl LocalTracker {
    fn writable(&self) -> Result<(), String> {
        let describe = |what: &str, e: std::io::Error| {
            format!(
                "{} cannot {what}: {e}; Trellis rewrites the file through a new one in its folder, so both must be writable",
                self.path.display()
            )
        };
        let metadata =
            std::fs::metadata(&self.path).map_err(|e| describe("have its mode read", e))?;
        if metadata.permissions().readonly() {
            return Err(format!("{}: {READ_ONLY}", self.path.display()));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| describe("be opened for writing", e))?;
        let target = std::fs::canonicalize(&self.path).map_err(|e| describe("be resolved", e))?;
        let probe = target.with_file_name(format!(".trellis-probe-{}", std::process::id()));
        std::fs::File::create(&probe).map_err(|e| describe("get a new file next to it", e))?;
        std::fs::remove_file(&probe).map_err(|e| describe("have a file removed next to it", e))
    }
}

const READ_ONLY: &str = "the file is read-only, so Trellis does not write it and nothing was changed; make it writable (chmod u+w) to let Trellis change issues";

/// Who runs Trellis, for messages.
fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "this process".into())
}

/// The line of the `key` of the `index`th issue, read again with spans
/// (only when a duplicate is reported, so reading stays single-pass).
fn key_line(text: &str, index: usize) -> Option<usize> {
    #[derive(Deserialize)]
    struct Keys {
        issues: Vec<Key>,
    }
    #[derive(Deserialize)]
    struct Key {
        key: serde_saphyr::Spanned<String>,
    }
    let keys: Keys = serde_saphyr::from_str_with_options(text, yaml_options(text.len())).ok()?;
    let key = keys.issues.get(index)?;
    Some(key.key.referenced.line() as usize)
}

/// serde-saphyr's default budget stops at 250,000 YAML nodes (about 12,000
/// issues); an issues file is the user's own data and may be much larger, so
/// the node, event and scalar limits grow with the file while the limits on
/// aliases and anchors (what a YAML bomb needs) stay.
fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(len);
    budget.max_events = budget.max_events.max(len);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(len);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

impl Tracker for LocalTracker {
    async fn snapshot(&self) -> Result<Snapshot, TrackerError> {
        let read = self.read()?;
        let snapshot = read.snapshot.clone();
        *self.last_read.lock().expect("lock is never poisoned") = Some(read);
        Ok(snapshot)
    }

    async fn search(&self, query: &str) -> Result<HashSet<String>, TrackerError> {
        let parsed = parse(query)?;
        let (snapshot, fields) =
            self.last_read(|read| (read.snapshot.clone(), read.fields.clone()))?;
        check_fields(&parsed, query, &fields)?;
        Ok(snapshot
            .issues()
            .filter(|i| parsed.matches(i))
            .map(|i| i.key.clone())
            .collect())
    }

    async fn search_among(
        &self,
        query: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, TrackerError> {
        let parsed = parse(query)?;
        let (snapshot, fields) =
            self.last_read(|read| (read.snapshot.clone(), read.fields.clone()))?;
        check_fields(&parsed, query, &fields)?;
        Ok(keys
            .iter()
            .filter(|k| snapshot.get(k).is_some_and(|i| parsed.matches(i)))
            .cloned()
            .collect())
    }

    async fn apply(&self, ops: &[TrackerOp]) -> Result<(), TrackerError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut last_read = self.last_read.lock().expect("lock is never poisoned");
        let read = match last_read.take() {
            Some(read) => read,
            None => self.read()?,
        };
        let mut snapshot = read.snapshot.clone();
        // Whole seconds, as trackers show them.
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("the current time is in range");
        let mut batch = WriteBatch::new(ops);
        for (at, op) in batch.ops() {
            let mut involved = op.issues();
            if let TrackerOp::Rank { anchor, .. } = op {
                involved.push(anchor.issue());
            }
            if let Some(missing) = involved.into_iter().find(|k| snapshot.get(k).is_none()) {
                let missing = missing.to_owned();
                *last_read = Some(read);
                return Err(TrackerError::Issue {
                    issue: missing,
                    operation: op.to_string(),
                    message: "the issue is not in the file any more; nothing was written".into(),
                });
            }
            let issue = snapshot.get(op.issue()).expect("checked above");
            // The file's workflow binds Trellis as a tracker's binds its users.
            if let (TrackerOp::SetStatus { to, .. }, Some(workflow)) = (op, &read.workflow)
                && !workflow.allows(&issue.status, to)
            {
                batch.fail(at, IssueFailure {
                    issue: op.issue().to_owned(),
                    operation: op.to_string(),
                    message: format!(
                        "the workflow in the issues file does not allow {} → {to}; add the transition there or change the status by hand",
                        issue.status
                    ),
                });
                continue;
            }
            for key in op.apply(&mut snapshot) {
                snapshot.update(&key, |issue| issue.updated = Some(now));
            }
            batch.made(at);
        }
        let issues: Vec<&Issue> = snapshot.issues().collect();
        match self.write(read.digest, read.workflow.as_ref(), &issues) {
            Ok(digest) => {
                // Writes change parents, links, statuses and ranks, never
                // the free fields.
                *last_read = Some(Read {
                    snapshot,
                    fields: read.fields,
                    workflow: read.workflow,
                    digest,
                });
            }
            Err(e) => {
                *last_read = Some(read);
                return Err(e);
            }
        }
        batch.finish()
    }

    async fn changed_since(&self, from: jiff::Timestamp) -> Result<Vec<Issue>, TrackerError> {
        // The whole file is read anyway: keep it for the searches and
        // writes that follow, as `snapshot` does.
        let read = self.read()?;
        let snapshot = read.snapshot.clone();
        *self.last_read.lock().expect("lock is never poisoned") = Some(read);
        Ok(snapshot
            .issues()
            .filter(|i| i.updated.is_some_and(|t| t >= from))
            .cloned()
            .collect())
    }

    fn capabilities(&self) -> Capabilities {
        // A person editing the file bumps `updated` only if they choose to.
        Capabilities {
            link_changes_bump_updated: false,
            // A write checks the file is still the one last read.
            refuses_stale_writes: true,
        }
    }

    async fn workflow(&self) -> Result<Option<Workflow>, TrackerError> {
        self.last_read(|read| read.workflow.clone())
    }

    /// Reading needs the file; every write rewrites it through a new file
    /// in its folder: both must be writable. Checked by opening the file for
    /// writing (nothing is written) and making and removing a file next to it.
    async fn allows(&self, needs: &[Need]) -> Result<Vec<Allowance>, TrackerError> {
        let readable = self.read().map(|_| ()).map_err(|e| e.to_string());
        let writable = self.writable();
        Ok(needs
            .iter()
            .map(|&need| {
                let (check, what) = match need {
                    Need::Read => (&readable, "read"),
                    _ => (&writable, "write"),
                };
                Allowance {
                    need,
                    allowed: check.is_ok(),
                    detail: match check {
                        Ok(()) => format!("{} can {what} {}", whoami(), self.path.display()),
                        Err(e) => e.clone(),
                    },
                }
            })
            .collect())
    }

    async fn acting_as(&self) -> Result<Option<String>, TrackerError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests;

//! The embedded tracker: issues kept in a YAML file.
//!
//! The file holds `issues:`, a list of issues (see `model::Issue`). Writes
//! go to a temporary file in the same folder that is then renamed over the
//! original, so a reader never sees half a file; they bump `updated` on the
//! issues they change and refuse to overwrite a file whose content changed
//! since Trellis read it. Comments in the file are not kept when it is
//! rewritten.

mod query;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Tracker, TrackerError};
use crate::model::{Issue, Snapshot};
use crate::plan::TrackerOp;

pub use query::{Query, QueryError};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuesFile {
    issues: Vec<Issue>,
}

/// The content last read, and the digest of the bytes it came from.
struct Read {
    issues: Vec<Issue>,
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

    pub fn path(&self) -> &Path {
        &self.path
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
        let text = std::str::from_utf8(&bytes).map_err(|_| self.error("is not UTF-8 text"))?;
        let file: IssuesFile = serde_saphyr::from_str(text).map_err(|e| {
            let (line, message) = crate::yaml::describe_error(&e);
            match line {
                Some(line) => self.error(format!("line {line}: {message}")),
                None => self.error(message),
            }
        })?;
        let mut seen = HashSet::new();
        for issue in &file.issues {
            if !seen.insert(issue.key.as_str()) {
                return Err(self.error(format!(
                    "issue {} is listed twice; keys must be unique",
                    issue.key
                )));
            }
        }
        Ok(Read {
            issues: file.issues,
            digest: Sha256::digest(&bytes).into(),
        })
    }

    /// The issues as last read (reading them if needed).
    fn with_issues<T>(&self, f: impl FnOnce(&[Issue]) -> T) -> Result<T, TrackerError> {
        let mut last_read = self
            .last_read
            .lock()
            .expect("lock is never poisoned by a panic-free reader");
        if last_read.is_none() {
            *last_read = Some(self.read()?);
        }
        Ok(f(&last_read.as_ref().expect("just read").issues))
    }

    /// Writes `issues` atomically after checking the file is still what was read.
    fn write(&self, expected: [u8; 32], issues: Vec<Issue>) -> Result<[u8; 32], TrackerError> {
        let current =
            std::fs::read(&self.path).map_err(|e| self.error(format!("cannot read: {e}")))?;
        if Sha256::digest(&current).as_slice() != expected {
            return Err(TrackerError::ChangedSinceRead {
                path: self.path.display().to_string(),
            });
        }
        let text = serde_saphyr::to_string(&IssuesFile { issues })
            .map_err(|e| self.error(format!("cannot serialize issues: {e}")))?;
        let file_name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("issues.yaml");
        let temporary = self
            .path
            .with_file_name(format!(".{file_name}.trellis-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            self.error(format!("cannot write: {e}"))
        })?;
        Ok(Sha256::digest(text.as_bytes()).into())
    }
}

impl Tracker for LocalTracker {
    fn identity(&self) -> String {
        format!("local file {}", self.path.display())
    }

    async fn snapshot(&self) -> Result<Snapshot, TrackerError> {
        let read = self.read()?;
        let snapshot = Snapshot::new(read.issues.iter().cloned());
        *self.last_read.lock().expect("lock is never poisoned") = Some(read);
        Ok(snapshot)
    }

    async fn search(&self, query: &str) -> Result<HashSet<String>, TrackerError> {
        let parsed = Query::parse(query).map_err(|e| TrackerError::Query {
            query: query.to_owned(),
            message: e.to_string(),
        })?;
        self.with_issues(|issues| {
            issues
                .iter()
                .filter(|i| parsed.matches(i))
                .map(|i| i.key.clone())
                .collect()
        })
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
        let mut issues = read.issues.clone();
        let positions: HashMap<String, usize> = issues
            .iter()
            .enumerate()
            .map(|(i, issue)| (issue.key.clone(), i))
            .collect();
        // Whole seconds, as trackers show them.
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("the current time is in range");
        for op in ops {
            let Some(&index) = positions.get(op.issue()) else {
                *last_read = Some(read);
                return Err(TrackerError::Issue {
                    issue: op.issue().to_owned(),
                    operation: op.to_string(),
                    message: "the issue is not in the file any more; nothing was written".into(),
                });
            };
            let issue = &mut issues[index];
            let parent = match op {
                TrackerOp::SetParent { to, .. } => Some(to.clone()),
                TrackerOp::ClearParent { .. } => None,
            };
            if issue.parent != parent {
                issue.parent = parent;
                issue.updated = Some(now);
            }
        }
        match self.write(read.digest, issues.clone()) {
            Ok(digest) => {
                *last_read = Some(Read { issues, digest });
                Ok(())
            }
            Err(e) => {
                *last_read = Some(read);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;

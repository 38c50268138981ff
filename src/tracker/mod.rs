//! Trackers behind one trait: what the engine asks of Jira, Redmine or the
//! embedded local tracker.

pub mod local;

use std::collections::HashSet;
use std::future::Future;

use crate::model::Snapshot;
use crate::plan::TrackerOp;

pub use local::LocalTracker;

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

    /// Applies operations to issues.
    fn apply(&self, ops: &[TrackerOp]) -> impl Future<Output = Result<(), TrackerError>> + Send;
}

/// Every tracker type, dispatched statically.
pub enum AnyTracker {
    Local(LocalTracker),
}

impl Tracker for AnyTracker {
    async fn snapshot(&self) -> Result<Snapshot, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.snapshot().await,
        }
    }

    async fn search(&self, query: &str) -> Result<HashSet<String>, TrackerError> {
        match self {
            AnyTracker::Local(t) => t.search(query).await,
        }
    }

    async fn apply(&self, ops: &[TrackerOp]) -> Result<(), TrackerError> {
        match self {
            AnyTracker::Local(t) => t.apply(ops).await,
        }
    }
}

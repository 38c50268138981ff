//! The Trellis store: structure content, its journal, sync baselines, job
//! records and the declarations last applied, behind one trait.

mod sqlite;

use serde::{Deserialize, Serialize};

use crate::model::Forest;
use crate::plan::{StructureOp, TrackerOp};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Database { path: String, message: String },
    #[error(
        "structure {structure} changed while this run planned (version {expected} became {found}); nothing was written to it: run the command again"
    )]
    Conflict {
        structure: String,
        expected: u64,
        found: u64,
    },
}

/// A structure's content at one version (version 0: never written).
#[derive(Clone, Debug, Default)]
pub struct StoredStructure {
    pub forest: Forest,
    pub version: u64,
}

/// The operations one unit (synchronizer run or manual edit) made.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    /// Why: `synchronizer default/children (into)`, `manual move`, ...
    pub cause: String,
    /// Who: a person, or a synchronizer acting as the tracker identity
    /// (`default/children as alice`), as Structure's history shows it.
    pub author: String,
    pub ops: &'a [StructureOp],
    /// Its changes to issues, journaled with the structure's version.
    pub tracker_ops: &'a [TrackerOp],
    /// The synchronizer that made it: its entries are journaled with that
    /// synchronizer's job of the commit, which `undo` reverses.
    pub synchronizer: Option<&'a str>,
}

/// The last synced state of one issue for one synchronizer: what
/// incremental sync compares both sides with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    pub synchronizer: String,
    pub issue: String,
    /// The row the issue sits under (an issue key or `folder/`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_parent: Option<String>,
    /// The issue's parent in the tracker, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracker_parent: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    Succeeded,
    Failed,
}

/// One synchronizer run (an apply, a resync) or one manual edit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// Assigned by the store.
    #[serde(default)]
    pub id: u64,
    pub structure: String,
    pub synchronizer: Option<String>,
    /// The Resync declaration this job carried out, if any.
    pub resync: Option<String>,
    pub direction: Option<String>,
    pub author: String,
    pub plan_hash: Option<String>,
    pub state: JobState,
    pub summary: String,
    pub error: Option<String>,
    pub started: jiff::Timestamp,
    pub finished: jiff::Timestamp,
}

/// A journal entry: one structure operation, or one change to an issue a
/// synchronizer of the structure made. `version` is the structure's version
/// after the entry (a change to an issue leaves the version as it is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub version: u64,
    pub time: jiff::Timestamp,
    pub author: String,
    pub cause: String,
    pub change: Recorded,
    /// The job that made it (none for manual edits): what `undo` takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
}

/// What a journal entry records. Untagged: both kinds carry an `op` tag of
/// their own, and entries written before tracker changes were journaled
/// read as structure operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recorded {
    Structure(StructureOp),
    Tracker(TrackerOp),
}

/// Everything one apply writes for one structure, in one transaction.
pub struct Commit<'a> {
    pub structure: &'a str,
    /// The version the plan was computed from; a different stored version
    /// means someone else wrote in between, and nothing is written.
    pub base_version: u64,
    /// The content after the changes.
    pub forest: &'a Forest,
    pub changes: &'a [Change<'a>],
    pub jobs: &'a [JobRecord],
    /// The synchronizers that ran: each one's baselines are replaced by
    /// those of `baselines` that name it (possibly none).
    pub synchronizers: &'a [String],
    pub baselines: &'a [Baseline],
}

/// A declaration as last applied from the command line, so that `show`,
/// `status` and `move` work without `-f`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResource {
    pub kind: String,
    pub id: String,
    /// The resource as JSON, with local paths made absolute.
    pub body: String,
}

pub trait Store {
    fn structure(&self, id: &str) -> Result<StoredStructure, StoreError>;

    /// Writes one apply; returns the new structure version.
    fn commit(&mut self, commit: &Commit) -> Result<u64, StoreError>;

    /// Records jobs that failed before anything was written.
    fn record_jobs(&mut self, jobs: &[JobRecord]) -> Result<(), StoreError>;

    /// The most recent job of each synchronizer.
    fn last_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Whether a Resync declaration has already been carried out.
    fn resync_done(&self, resync: &str) -> Result<bool, StoreError>;

    fn journal(&self, structure: &str) -> Result<Vec<JournalEntry>, StoreError>;

    fn job(&self, id: u64) -> Result<Option<JobRecord>, StoreError>;

    /// What one job changed, in the order it was made.
    fn job_changes(&self, id: u64) -> Result<Vec<JournalEntry>, StoreError>;

    /// Deletes a structure's rows, journal and jobs, and its synchronizers'
    /// baselines, in one transaction.
    fn delete_structure(
        &mut self,
        structure: &str,
        synchronizers: &[String],
    ) -> Result<(), StoreError>;

    fn baselines(&self, synchronizer: &str) -> Result<Vec<Baseline>, StoreError>;

    /// Replaces the remembered declarations with `resources`.
    fn remember(&mut self, resources: &[StoredResource]) -> Result<(), StoreError>;

    fn remembered(&self) -> Result<Vec<StoredResource>, StoreError>;
}

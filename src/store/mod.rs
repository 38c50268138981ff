//! The Trellis store: structure content, its journal, sync baselines, job
//! records and the declarations last applied, behind one trait.

mod sqlite;

use serde::{Deserialize, Serialize};

use crate::model::{Direction, Forest, Issue, Position, Row, RowId, RowItem};
use crate::plan::{StructureOp, TrackerOp};
use crate::tracker::Watermark;

pub use sqlite::SqliteStore;

#[derive(Clone, Debug, thiserror::Error)]
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

/// One row of a structure and where it sits, found without reading the
/// structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedRow {
    pub row: Row,
    pub at: Position,
}

/// A row as the store keeps it: its parent, and its place among that
/// parent's rows (`position` compares only among one parent's rows): what
/// a pass's neighbourhood of the structure is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaidRow {
    pub row: Row,
    pub parent: Option<RowId>,
    pub position: i64,
}

/// A structure without its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StructureHead {
    /// 0: never written.
    pub version: u64,
    /// The id the next row gets (ids are never reused).
    pub next_row: RowId,
}

/// The operations one unit (synchronizer run or manual edit) made.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    /// Why: `synchronizer default/children (into)`, `manual move`, ...
    pub cause: String,
    /// Who: the person who started it, or for a background pass the
    /// synchronizer acting as the tracker identity (`default/children as
    /// alice`), as Structure's history shows it.
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
    /// The run stopped (a crash, a kill) after it began writing the tracker
    /// and before it recorded what it wrote; a later run found what had
    /// been written and journaled it.
    Interrupted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
        }
    }
}

/// The tracker writes a run is about to make, recorded before it makes
/// them (write-ahead) and removed by the commit that journals them. One
/// left behind names a run that stopped in between: the next run on its
/// structure reads the tracker, journals the writes that were made and
/// records the job as interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteIntent {
    /// Assigned by the store.
    #[serde(default)]
    pub id: u64,
    pub structure: String,
    pub tracker: String,
    /// The writes, grouped as they would be journaled.
    pub changes: Vec<IntendedChange>,
    /// The jobs the run would have recorded had it finished.
    pub jobs: Vec<JobRecord>,
}

/// One journal entry's worth of intended tracker writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntendedChange {
    pub cause: String,
    pub author: String,
    pub synchronizer: Option<String>,
    pub ops: Vec<TrackerOp>,
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
    pub direction: Option<JobDirection>,
    pub author: String,
    pub plan_hash: Option<String>,
    pub state: JobState,
    pub summary: String,
    pub error: Option<String>,
    pub started: jiff::Timestamp,
    pub finished: jiff::Timestamp,
}

/// The directions a job carried changes in; stored as its text (`into`,
/// `from`, `into, from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobDirection {
    #[serde(rename = "into")]
    Into,
    #[serde(rename = "from")]
    From,
    /// A two-way pass that wrote both sides.
    #[serde(rename = "into, from", alias = "from, into")]
    Both,
}

impl JobDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            JobDirection::Into => "into",
            JobDirection::From => "from",
            JobDirection::Both => "into, from",
        }
    }

    /// The stored text read back (`None`: a text no version writes).
    pub fn parse(text: &str) -> Option<JobDirection> {
        match text {
            "into" => Some(JobDirection::Into),
            "from" => Some(JobDirection::From),
            "into, from" | "from, into" => Some(JobDirection::Both),
            _ => None,
        }
    }

    /// The directions of a job's runs, each once (`None` for none).
    pub fn of(directions: impl IntoIterator<Item = Direction>) -> Option<JobDirection> {
        directions
            .into_iter()
            .map(JobDirection::from)
            .reduce(|a, b| if a == b { a } else { JobDirection::Both })
    }
}

impl From<Direction> for JobDirection {
    fn from(direction: Direction) -> JobDirection {
        match direction {
            Direction::Into => JobDirection::Into,
            Direction::From => JobDirection::From,
        }
    }
}

impl std::fmt::Display for JobDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The content after the changes; `None` for a manual edit made
    /// without reading the structure, whose operations' rows are then
    /// written one by one (the row counter stays).
    pub forest: Option<&'a Forest>,
    pub changes: &'a [Change<'a>],
    pub jobs: &'a [JobRecord],
    /// The synchronizers that ran: each one's baselines are replaced by
    /// those of `baselines` that name it (possibly none).
    pub synchronizers: &'a [String],
    pub baselines: &'a [Baseline],
    /// What an incremental pass moves along with the content (its cursor,
    /// baselines, per-issue errors): in the same transaction, so that its own
    /// writes never come back to it as changes.
    pub pass: Option<&'a PassCommit<'a>>,
    /// The full read an apply planned from, as its writes left it: the
    /// mirror takes it in the same transaction, so the next pass starts from
    /// what the apply saw and cannot undo it (a change that did not move
    /// `updated` is otherwise seen by one and not the other).
    pub read: Option<FullRead<'a>>,
    /// The write-ahead record this commit journals the writes of: removed
    /// in the same transaction.
    pub settles: Option<u64>,
}

/// A full read of a tracker, for [`Commit::read`].
pub struct FullRead<'a> {
    pub tracker: &'a str,
    pub issues: &'a [Issue],
    pub watermark: &'a Watermark,
    pub at: jiff::Timestamp,
}

/// The store's copy of a tracker's issues (BigPicture's cache): what an
/// incremental pass plans from, refreshed with the issues changed since
/// `watermark` and fully each `fullResyncAfter`. Every refresh numbers the
/// rows it changes (`seq`), so each synchronizer finds what changed since
/// its last pass without reading the tracker again. The issues themselves
/// are read apart ([`Store::mirror_issues`]): a full read replaces them.
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    pub watermark: Watermark,
    /// The number of the last change to the mirror.
    pub seq: u64,
    /// When it was last read in full.
    pub full_read: Option<jiff::Timestamp>,
    /// When it was last read, in full or for changes (`None`: a store from
    /// before Trellis recorded it).
    pub read_at: Option<jiff::Timestamp>,
}

/// One refresh of a mirror.
pub enum MirrorRead {
    /// Every issue in the tracker's scope: the others are gone.
    Full(Vec<Issue>),
    /// Issues changed since the watermark (already deduplicated).
    Changed(Vec<Issue>),
}

/// Where an incremental synchronizer stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// The mirror changes it has taken into account.
    pub seen_seq: u64,
    /// The structure version it has taken into account.
    pub synced_version: u64,
    pub last_pass: Option<jiff::Timestamp>,
    pub last_full: Option<jiff::Timestamp>,
    /// Consecutive passes that rewrote an issue the pass before also wrote:
    /// the cycle guard's count.
    pub rounds: u32,
    /// The issues its last pass wrote.
    pub last_written: Vec<String>,
    /// Why the cycle guard stopped it; `None` while it runs.
    pub stopped: Option<String>,
    /// Each query's matches at its last pass (filters, agile): a pass asks
    /// the tracker only about the issues changed since.
    #[serde(default)]
    pub matches: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    /// The destructive plan its passes wait on, until approved or no
    /// longer the plan (`safety.destructivePasses: hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_plan: Option<HeldPlan>,
}

/// A pass's plan that removes or clears something, waiting for a person:
/// nothing of it (nor of later passes) is carried out until its hash is
/// approved, as `apply` would not carry it out without review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldPlan {
    /// What `trellis sync --approve` and `spec.approvedPlan` take.
    pub hash: String,
    /// The counts of the whole plan, e.g. `0 to add, 0 to move, 6 to remove; ...`.
    pub summary: String,
    /// The operations that need approval, one line each.
    pub destructive: Vec<String>,
    /// When a pass first held this plan.
    pub since: jiff::Timestamp,
}

/// Why an issue's changes wait: a failed write, or a conflict that the
/// `manual` policy leaves to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HoldKind {
    Error,
    Conflict,
}

/// What a person decided about a held issue (`trellis troubleshoot`); the
/// next pass acts on it (the decision itself is the planner's).
pub use crate::plan::decide::Release;

/// An issue whose later changes wait behind a failure or a conflict
/// (Backbone's per-issue errors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldIssue {
    pub synchronizer: String,
    pub issue: String,
    pub kind: HoldKind,
    pub operation: String,
    pub message: String,
    pub attempts: u32,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
}

/// A change made on both sides of one issue since the last pass, and how
/// `conflictPolicy` settled it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictRecord {
    pub synchronizer: String,
    pub issue: String,
    pub time: jiff::Timestamp,
    /// The structure's side (`under #3`, `top level`) and the tracker's.
    pub structure_side: String,
    pub tracker_side: String,
    pub kept: Kept,
}

/// Which side of a conflict was kept (decided by the planner); stored as
/// its text.
pub use crate::plan::decide::Kept;

/// What one incremental pass of one synchronizer records.
pub struct PassCommit<'a> {
    pub synchronizer: &'a str,
    pub tracker: &'a str,
    pub state: SyncState,
    /// Baselines replaced for these issues (the others stay).
    pub baselines: &'a [Baseline],
    /// Issues no longer in the structure: their baselines go.
    pub forgotten: &'a [String],
    /// The synchronizer's held issues after the pass (all of them).
    pub held: &'a [HeldIssue],
    pub conflicts: &'a [ConflictRecord],
    /// Issues as the pass wrote them: the mirror takes them, numbered past
    /// `state.seen_seq`'s reach so that the pass does not read them back.
    pub written: &'a [Issue],
}

impl Change<'_> {
    /// Its tracker writes, as a write-ahead record keeps them.
    pub fn intended(&self) -> IntendedChange {
        IntendedChange {
            cause: self.cause.clone(),
            author: self.author.clone(),
            synchronizer: self.synchronizer.map(str::to_owned),
            ops: self.tracker_ops.to_vec(),
        }
    }
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

    /// A structure's version (0: never written), without its content.
    fn structure_version(&self, id: &str) -> Result<u64, StoreError>;

    /// The row of `structure` showing `item`, if any. This and the next two
    /// let a manual edit read only the rows it touches.
    fn find_row(&self, structure: &str, item: &RowItem) -> Result<Option<PlacedRow>, StoreError>;

    /// The rows above `row`, its parent first.
    fn ancestors(&self, structure: &str, row: RowId) -> Result<Vec<RowId>, StoreError>;

    /// The rows directly under `parent` (the top level for `None`), in order.
    fn children(&self, structure: &str, parent: Option<RowId>) -> Result<Vec<Row>, StoreError>;

    /// How many rows are directly under `row` (the web UI's expand mark).
    fn child_count(&self, structure: &str, row: RowId) -> Result<usize, StoreError>;

    /// A structure's version and next row id, without its rows.
    fn structure_head(&self, id: &str) -> Result<StructureHead, StoreError>;

    /// The rows showing these items (those the structure has). This and
    /// the next three let a pass read only the rows around its changes.
    fn rows_of_items(&self, structure: &str, items: &[RowItem])
    -> Result<Vec<LaidRow>, StoreError>;

    /// The rows of these ids (those the structure has).
    fn rows_of_ids(&self, structure: &str, ids: &[RowId]) -> Result<Vec<LaidRow>, StoreError>;

    /// Every row directly under `parent` (the top level for `None`), in order.
    fn rows_under(
        &self,
        structure: &str,
        parent: Option<RowId>,
    ) -> Result<Vec<LaidRow>, StoreError>;

    /// How many rows the structure has.
    fn row_count(&self, structure: &str) -> Result<usize, StoreError>;

    /// Writes one apply; returns the new structure version.
    fn commit(&mut self, commit: &Commit) -> Result<u64, StoreError>;

    /// Records jobs that failed before anything was written.
    fn record_jobs(&mut self, jobs: &[JobRecord]) -> Result<(), StoreError>;

    /// Records the tracker writes a run is about to make; returns the
    /// record's id, for [`Commit::settles`].
    fn intend_writes(&mut self, intent: &WriteIntent) -> Result<u64, StoreError>;

    /// Write-ahead records no commit settled: runs on `structure` that
    /// stopped between writing the tracker and recording it.
    fn interrupted_writes(&self, structure: &str) -> Result<Vec<WriteIntent>, StoreError>;

    /// The most recent job of each synchronizer.
    fn last_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// The `limit` most recent jobs of every structure, newest first.
    fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError>;

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

    /// The synchronizer's baselines of these issues (those it has).
    fn baselines_of(
        &self,
        synchronizer: &str,
        issues: &[&str],
    ) -> Result<Vec<Baseline>, StoreError>;

    /// Replaces the remembered declarations with `resources`.
    fn remember(&mut self, resources: &[StoredResource]) -> Result<(), StoreError>;

    fn remembered(&self) -> Result<Vec<StoredResource>, StoreError>;

    fn mirror(&self, tracker: &str) -> Result<Mirror, StoreError>;

    /// The mirror's issues, in the tracker's own order.
    fn mirror_issues(&self, tracker: &str) -> Result<Vec<Issue>, StoreError>;

    /// The mirror's issues of these keys (those it has), in no set order.
    fn mirror_issues_of(&self, tracker: &str, keys: &[&str]) -> Result<Vec<Issue>, StoreError>;

    /// The mirror's issues whose tracker parent is one of `parents`.
    fn mirror_children(&self, tracker: &str, parents: &[&str]) -> Result<Vec<Issue>, StoreError>;

    /// At most `limit` mirrored issues of `tracker` whose key is `text` or
    /// whose summary contains it (ignoring ASCII case), in tracker order.
    fn search_mirror(
        &self,
        tracker: &str,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Issue>, StoreError>;

    /// Stores a read of the tracker and the watermark after it; returns the
    /// mirror's new `seq`. Rows whose content did not change keep theirs.
    fn refresh_mirror(
        &mut self,
        tracker: &str,
        read: MirrorRead,
        watermark: &Watermark,
        at: jiff::Timestamp,
    ) -> Result<u64, StoreError>;

    /// Keys of the mirror's issues changed (or gone) after `seq`.
    fn mirror_changes(&self, tracker: &str, after: u64) -> Result<Vec<String>, StoreError>;

    fn sync_state(&self, synchronizer: &str) -> Result<SyncState, StoreError>;

    /// Records the destructive plan `synchronizer`'s passes wait on; its
    /// cursor stays, so the next pass plans the same changes again.
    fn hold_plan(&mut self, synchronizer: &str, plan: &HeldPlan) -> Result<(), StoreError>;

    /// Journal entries after `version`, each with the synchronizer whose
    /// job made it (none for manual edits).
    fn journal_since(
        &self,
        structure: &str,
        version: u64,
    ) -> Result<Vec<(JournalEntry, Option<String>)>, StoreError>;

    fn held_issues(&self, synchronizer: &str) -> Result<Vec<HeldIssue>, StoreError>;

    /// A person's decision on a held issue: `None` skips its pending
    /// change (the hold goes); returns false when the issue is not held.
    fn release_issue(
        &mut self,
        synchronizer: &str,
        issue: &str,
        release: Option<Release>,
    ) -> Result<bool, StoreError>;

    /// Lets a synchronizer the cycle guard stopped run again.
    fn restart(&mut self, synchronizer: &str) -> Result<(), StoreError>;

    /// The latest conflicts of a synchronizer, newest first.
    fn conflicts(
        &self,
        synchronizer: &str,
        limit: usize,
    ) -> Result<Vec<ConflictRecord>, StoreError>;

    /// Marks a structure read-only for `holder` (a resync) until `until`;
    /// returns the other holder if one holds it.
    fn hold_structure(
        &mut self,
        structure: &str,
        holder: &str,
        until: jiff::Timestamp,
    ) -> Result<Option<String>, StoreError>;

    fn release_structure(&mut self, structure: &str, holder: &str) -> Result<(), StoreError>;

    /// Who holds a structure read-only right now, if anyone.
    fn structure_holder(&self, structure: &str) -> Result<Option<String>, StoreError>;

    /// Keeps `holder`'s hold on `structure` alive for as long as the
    /// returned keeper lives (a heartbeat every [`HOLD_RENEWAL`]), so that a
    /// hold outlives no process and expires under none.
    fn keep_holding(&self, structure: &str, holder: &str) -> Result<HoldKeeper, StoreError>;
}

/// How long a structure hold lasts unless renewed: a crashed holder's
/// hold is taken over this long after its last heartbeat.
pub const HOLD_LEASE: jiff::SignedDuration = jiff::SignedDuration::from_secs(20);

/// How often a live holder renews its hold.
pub const HOLD_RENEWAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A heartbeat thread renewing one structure hold; dropping it stops the
/// heartbeat (the holder then releases the hold, or it lapses).
pub struct HoldKeeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HoldKeeper {
    /// Calls `renew` every [`HOLD_RENEWAL`] until dropped, or until `renew`
    /// says the hold is gone.
    pub fn start(mut renew: impl FnMut() -> bool + Send + 'static) -> HoldKeeper {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(HOLD_RENEWAL)
            {
                if !renew() {
                    break;
                }
            }
        });
        HoldKeeper {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for HoldKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

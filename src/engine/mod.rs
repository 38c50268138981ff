//! The engine: the one place that turns declarations into plans and plans
//! into writes. The CLI (and the controller) are thin shells over it.
//!
//! A run goes fetch → plan → approve → apply, as separate steps:
//! - fetch: read each tracker once (one snapshot per tracker, so every
//!   structure on it plans from the same state) and each structure's stored
//!   content;
//! - plan: the pure planner, per structure;
//! - approve: destructive plans need the plan-set hash (or a confirmation
//!   the CLI asks for); a wrong or stale hash changes nothing;
//! - apply: tracker writes first, then one store transaction per structure
//!   (content, journal, baselines, job records).

mod approval;
mod connect;
mod held;
mod history;
mod overview;
mod pass;
mod plan_file;
mod progress;
mod remember;
mod units;
mod writes;

use std::collections::{HashMap, HashSet};

use crate::model::{Direction, Forest, Issue, Position, RowId, RowItem, Snapshot};
use crate::plan::{
    PlanError, PlanSet, Planned, StructureInput, StructureOp, StructurePlan, UndoRule, UnitPlan,
    mass_removals, plan_structure,
};
use crate::spec::{Catalog, Declared, SpecErrors, Structure};
use crate::store::{
    Baseline, Change, Commit, FullRead, JobRecord, JobState, PlacedRow, Recorded, Store,
    StoreError, WriteIntent,
};
use crate::tracker::{Tracker, TrackerError, Watermark};

pub use approval::{APPROVAL_PREFIX, Approval, Refusal};
use connect::Trackers;
pub use connect::{Credentials, PersonalKey, webhook_secret};
pub use held::Releases;
pub use history::{HistoryEntry, history};
pub use overview::{SyncOverview, overview};
pub use pass::{Pass, PlannedOver, Timings};
pub use plan_file::{Base, PlanFile};
pub use progress::{Counts, RunProgress};
pub use remember::{Section, remembered, structure_view};
pub use units::{Scope, UnitSource, needs};

/// Runs an engine's run (`sync_pass`, `plan_to_apply`, `apply`: SQLite
/// and planning work that blocks between its tracker calls) on a
/// multi-threaded runtime so that it holds up none of the runtime's other
/// tasks: the controller's watches, Lease, probes and webhook receiver, or
/// the web UI's other requests, go on while it runs (`block_in_place`
/// hands this worker's queue to another thread first).
pub fn off_the_runtime<F: std::future::Future>(run: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run))
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Spec(#[from] SpecErrors),
    /// A tracker's key is missing or cannot be used, said at the
    /// tracker's declaration (where Trellis looked, never what it found).
    #[error("{problem}")]
    Credentials {
        tracker: String,
        problem: SpecErrors,
    },
    #[error("tracker {tracker}: {source}")]
    Tracker {
        tracker: String,
        source: TrackerError,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("structure {structure}: {source}")]
    Plan {
        structure: String,
        source: PlanError,
    },
    #[error(
        "tracker {tracker} changed between planning and applying; nothing was written: run the command again to plan from its current state"
    )]
    TrackerChanged { tracker: String },
    /// A destructive plan without (the right) approval.
    #[error("{0}")]
    Refused(Refusal),
    /// A synchronizer would remove more rows than its safety limits allow;
    /// no approval overrides this, only a raised limit in its spec.
    #[error("{}", .0.join("\n"))]
    MassRemoval(Vec<String>),
    #[error("{}", partly_applied(.applied, .failed))]
    PartlyApplied {
        applied: Vec<(String, u64)>,
        failed: Vec<(String, String)>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl EngineError {
    /// The kind of error in one word, for metrics' `error` label and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Spec(_) => "spec",
            EngineError::Credentials { .. } => "credentials",
            EngineError::Tracker { .. } | EngineError::TrackerChanged { .. } => "tracker",
            EngineError::Store(_) => "store",
            EngineError::Plan { .. } => "plan",
            EngineError::Refused(_) => "approval",
            EngineError::MassRemoval(_) => "mass_removal",
            EngineError::PartlyApplied { .. } => "partly_applied",
            EngineError::NotFound(_) => "not_found",
            EngineError::Invalid(_) => "invalid",
        }
    }
}

/// One structure's plan and what is needed to apply it.
pub struct Prepared {
    pub structure: String,
    tracker: String,
    /// The store version the plan started from.
    base_version: u64,
    /// The content as the plan leaves it: what apply commits.
    forest: Forest,
    snapshot: Snapshot,
    sources: Vec<UnitSource>,
    pub plan: StructurePlan,
}

/// The plans of one run.
pub struct Run {
    pub prepared: Vec<Prepared>,
    pub set: PlanSet,
    /// The clients the plan read through, kept for applying it.
    trackers: Trackers,
    /// A resync holds its structures read-only while it applies.
    resync: Option<String>,
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct Applied {
    pub structures: Vec<(String, u64)>,
}

pub struct Engine<S: Store> {
    store: S,
    /// The person running Trellis: author of the changes it makes.
    author: String,
    credentials: Credentials,
    /// Where an observed apply reports the rows it committed.
    progress: Option<std::sync::Arc<RunProgress>>,
    /// What incremental passes plan over when they can plan locally.
    passes_over: PlannedOver,
}

impl<S: Store> Engine<S> {
    pub fn new(store: S, author: impl Into<String>) -> Engine<S> {
        Engine {
            store,
            author: author.into(),
            credentials: Credentials::CommandLine,
            progress: None,
            passes_over: PlannedOver::Neighbourhood,
        }
    }

    /// What incremental passes plan over: the neighbourhood of their
    /// changes (the default), or always the whole structure, which is
    /// what the neighbourhood is measured and tested against.
    pub fn plan_passes_over(&mut self, over: PlannedOver) {
        self.passes_over = over;
    }

    /// Where tracker keys come from (the command line's by default).
    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }

    /// Who the changes of the next runs are journaled as (the controller
    /// runs a Resync as the person who asked for it).
    pub fn set_author(&mut self, author: impl Into<String>) {
        self.author = author.into();
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// What `trellis undo JOB` runs: the reverse of the job's journaled
    /// changes, on its structure.
    pub fn undo_scope(&self, job: u64) -> Result<Scope, EngineError> {
        let record = self.store.job(job)?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "there is no job {job}; `trellis history STRUCTURE` shows each change with its job"
            ))
        })?;
        let changes = self.store.job_changes(job)?;
        if changes.is_empty() {
            return Err(EngineError::Invalid(format!(
                "job {job} ({}) changed nothing; there is nothing to undo",
                record.summary
            )));
        }
        let mut structure_ops = Vec::new();
        let mut tracker_ops = Vec::new();
        for entry in changes {
            match entry.change {
                Recorded::Structure(op) => structure_ops.push(op),
                Recorded::Tracker(op) => tracker_ops.push(op),
            }
        }
        let direction = match record.direction {
            Some(crate::store::JobDirection::From) => Direction::From,
            _ => Direction::Into,
        };
        Ok(Scope::Undo {
            structure: record.structure,
            direction,
            rule: UndoRule {
                job,
                structure_ops,
                tracker_ops,
            },
        })
    }

    /// The runs `trellis apply` makes, in order: each pending Resync alone,
    /// so that its hash is the one its `approvedPlan` names (in files as in
    /// a cluster), then every synchronizer, from what the Resyncs left.
    pub fn apply_order(&self, catalog: &Catalog) -> Result<Vec<Scope>, EngineError> {
        let mut pending = Vec::new();
        for resync in &catalog.resyncs {
            if !self.store.resync_done(&resync.id())? {
                pending.push(resync.id());
            }
        }
        pending.sort();
        let mut order = pending
            .iter()
            .map(|id| Scope::of_resync(catalog, id))
            .collect::<Result<Vec<_>, _>>()?;
        order.push(Scope::Apply);
        Ok(order)
    }

    /// Plans every structure that `scope` touches.
    pub async fn plan(&self, catalog: &Catalog, scope: &Scope) -> Result<Run, EngineError> {
        let mut trackers = Trackers::new(self.credentials.clone());
        let mut snapshots: HashMap<String, Snapshot> = HashMap::new();
        let mut prepared = Vec::new();
        let mut structures: Vec<&Declared<Structure>> = catalog.structures.iter().collect();
        structures.sort_by_key(|s| s.id());
        for structure in structures {
            let id = structure.id();
            let sources = units::select(catalog, structure, scope)?;
            if sources.is_empty() {
                continue;
            }
            let tracker_id = structure.resource.tracker_id().ok_or_else(|| {
                EngineError::Invalid(format!(
                    "structure {id} has rows or synchronizers but no spec.trackerRef; declare its tracker"
                ))
            })?;
            let tracker = trackers.get(catalog, &tracker_id)?;
            if !snapshots.contains_key(&tracker_id) {
                let snapshot = tracker
                    .snapshot()
                    .await
                    .map_err(|source| EngineError::Tracker {
                        tracker: tracker_id.clone(),
                        source,
                    })?;
                tracing::debug!(tracker = %tracker_id, issues = snapshot.len(), "read tracker");
                snapshots.insert(tracker_id.clone(), snapshot);
            }
            let snapshot = snapshots[&tracker_id].clone();
            let units = units::build(
                catalog,
                structure,
                &sources,
                tracker,
                &mut units::Searches::default(),
            )
            .await
            .map_err(|source| EngineError::Tracker {
                tracker: tracker_id.clone(),
                source,
            })?;
            let stored = self.store.structure(&id)?;
            let rows_before = stored.forest.len();
            let arrangers = units::arrangers(catalog, &id);
            let input = StructureInput {
                structure: &id,
                tracker: &tracker_id,
                snapshot: &snapshot,
                units: &units,
                arrangers: &arrangers,
            };
            let Planned { mut plan, forest } =
                plan_structure(stored.forest, &input).map_err(|source| EngineError::Plan {
                    structure: id.clone(),
                    source,
                })?;
            // The guard is against a synchronizer gone wrong; an undo names
            // the job it reverses and is approved by its own hash.
            if !matches!(scope, Scope::Undo { .. }) {
                plan.mass_removals = mass_removals(&plan, rows_before, |sync| {
                    units::removal_limits(catalog, sync)
                });
            }
            tracing::info!(structure = %id, summary = %plan.summary, hash = %plan.hash, "planned");
            prepared.push(Prepared {
                structure: id,
                tracker: tracker_id,
                base_version: stored.version,
                forest,
                snapshot,
                sources: sources.into_iter().map(|s| s.source).collect(),
                plan,
            });
        }
        refuse_two_exports_to_one_tracker(&prepared)?;
        let set = PlanSet::new(prepared.iter().map(|p| p.plan.clone()).collect());
        let resync = match scope {
            Scope::Resync {
                synchronizer,
                resync,
                ..
            } => Some(match resync {
                Some(resync) => format!("resync {resync}"),
                None => format!("resync of {synchronizer} by {}", self.author),
            }),
            _ => None,
        };
        Ok(Run {
            prepared,
            set,
            trackers,
            resync,
        })
    }

    /// Plans `scope` to apply it: as [`Engine::plan`], and when a tracker
    /// cannot be read, each synchronizer that was to run on it records a
    /// failed job (a dry run records nothing).
    pub async fn plan_to_apply(
        &mut self,
        catalog: &Catalog,
        scope: &Scope,
    ) -> Result<Run, EngineError> {
        let started = jiff::Timestamp::now();
        let result = self.plan(catalog, scope).await;
        if let Err(error @ EngineError::Tracker { tracker, .. }) = &result {
            let mut jobs = Vec::new();
            for structure in &catalog.structures {
                if structure.resource.tracker_id().as_ref() != Some(tracker) {
                    continue;
                }
                for selected in units::select(catalog, structure, scope)? {
                    if let Some(synchronizer) = selected.source.synchronizer() {
                        jobs.push(unread_job(
                            &structure.id(),
                            synchronizer,
                            selected.source.resync(),
                            &self.author,
                            started,
                            error,
                        ));
                    }
                }
            }
            self.store.record_jobs(&jobs)?;
        }
        result
    }

    /// Applies a run's plans once approved; see [`Approval`].
    pub async fn apply(
        &mut self,
        catalog: &Catalog,
        run: Run,
        approval: &Approval,
    ) -> Result<Applied, EngineError> {
        self.may_apply(&run, approval)?;
        let mut trackers = run.trackers;
        let mut applied = Applied::default();
        let mut failed = Vec::new();
        // Structures write to different trackers (two exports to one are
        // refused when planning), so one failing does not hold back the rest.
        for prepared in run.prepared {
            let structure = prepared.structure.clone();
            let keeper = match &run.resync {
                Some(holder) => {
                    self.wait_and_hold(&structure, holder).await?;
                    Some(self.store.keep_holding(&structure, holder)?)
                }
                None => None,
            };
            let result = self.apply_structure(catalog, &mut trackers, prepared).await;
            drop(keeper);
            if let Some(holder) = &run.resync {
                self.store.release_structure(&structure, holder)?;
            }
            match result {
                Ok(version) => applied.structures.push(version),
                Err(e) => failed.push((structure, e)),
            }
        }
        match failed.len() {
            0 => Ok(applied),
            1 if applied.structures.is_empty() => Err(failed.remove(0).1),
            _ => Err(EngineError::PartlyApplied {
                applied: applied.structures,
                failed: failed
                    .into_iter()
                    .map(|(structure, e)| (structure, e.to_string()))
                    .collect(),
            }),
        }
    }

    /// Holds `structure` read-only for a resync, first waiting (a minute at
    /// most) for an incremental pass on it to end.
    async fn wait_and_hold(&mut self, structure: &str, holder: &str) -> Result<(), EngineError> {
        let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(1);
        loop {
            let until = jiff::Timestamp::now() + crate::store::HOLD_LEASE;
            match self.store.hold_structure(structure, holder, until)? {
                None => return Ok(()),
                Some(other) if jiff::Timestamp::now() > deadline => {
                    return Err(EngineError::Invalid(format!(
                        "structure {structure} is held by {other}; nothing was changed: run the resync again when it is done"
                    )));
                }
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }

    async fn apply_structure(
        &mut self,
        catalog: &Catalog,
        trackers: &mut Trackers,
        prepared: Prepared,
    ) -> Result<(String, u64), EngineError> {
        let started = jiff::Timestamp::now();
        let Prepared {
            structure,
            tracker,
            base_version,
            forest,
            mut snapshot,
            sources,
            plan,
        } = prepared;
        let client = trackers.get(catalog, &tracker)?;
        // What an earlier run on this structure wrote and did not record.
        self.settle(client, &structure, None).await?;
        // A run planned and applied here was started by a person (at the
        // command line, or by declaring a Resync): the changes are theirs,
        // the cause names the synchronizer. Background passes act as the
        // tracker identity instead (`sync.rs`).
        let changes: Vec<Change> = plan
            .units
            .iter()
            .map(|unit| {
                let source = source_of(&sources, unit);
                Change {
                    cause: source.cause(unit.kind, unit.direction),
                    author: self.author.clone(),
                    ops: &unit.structure_ops,
                    tracker_ops: &unit.tracker_ops,
                    synchronizer: source.synchronizer(),
                }
            })
            .collect();
        let mut settles = None;
        if changes.iter().any(|c| !c.tracker_ops.is_empty()) {
            // The tracker must still be what was planned from: re-read it and
            // compare before writing (the local tracker also refuses to
            // overwrite a file changed since this read).
            let now = client
                .snapshot()
                .await
                .map_err(|source| EngineError::Tracker {
                    tracker: tracker.clone(),
                    source,
                })?;
            if now.digest() != snapshot.digest() {
                return Err(EngineError::TrackerChanged { tracker });
            }
            let jobs = job_records(&structure, &sources, &plan, &self.author, started, None);
            let intent = WriteIntent {
                id: 0,
                structure: structure.clone(),
                tracker: tracker.clone(),
                changes: changes.iter().map(Change::intended).collect(),
                jobs,
            };
            let written = self.write_ahead(client, &intent).await?;
            if let Err(source) = written.result {
                let error = format!("tracker {tracker}: {source}");
                let jobs = job_records(
                    &structure,
                    &sources,
                    &plan,
                    &self.author,
                    started,
                    Some(&error),
                );
                self.settle_failed(client, &structure, &jobs, &source)
                    .await?;
                return Err(EngineError::Tracker { tracker, source });
            }
            for change in &changes {
                for op in change.tracker_ops {
                    op.apply(&mut snapshot);
                }
            }
            settles = Some(written.intent);
        }
        let synchronizers: Vec<String> = sources
            .iter()
            .filter_map(UnitSource::synchronizer)
            .map(str::to_owned)
            .collect();
        let baselines = baselines(&forest, &snapshot, &synchronizers);
        let jobs = job_records(&structure, &sources, &plan, &self.author, started, None);
        // A first read of a watermark keeps every issue it is given.
        let mut watermark = Watermark::default();
        let issues = watermark.advance(snapshot.issues().cloned().collect());
        let version = self.store.commit(&Commit {
            structure: &structure,
            base_version,
            forest: Some(&forest),
            changes: &changes,
            jobs: &jobs,
            synchronizers: &synchronizers,
            baselines: &baselines,
            pass: None,
            read: Some(FullRead {
                tracker: &tracker,
                issues: &issues,
                watermark: &watermark,
                at: started,
            }),
            settles,
        })?;
        if let Some(progress) = &self.progress {
            progress.rows_committed(plan.units.iter().map(|u| u.structure_ops.len()).sum());
        }
        tracing::info!(structure = %structure, version, summary = %plan.summary, "applied");
        Ok((structure, version))
    }

    /// A person's edit: moves the row of `key` under `under` (an issue key or
    /// a folder name; `None` for the top level), after the row of `after`
    /// (or where the sibling order puts it: by rank, as the tracker's issues
    /// were last read). Journaled with the person as author.
    pub fn move_row(
        &mut self,
        structure: &str,
        key: &str,
        under: Option<&str>,
        after: Option<&str>,
    ) -> Result<u64, EngineError> {
        if let Some(holder) = self.store.structure_holder(structure)? {
            return Err(EngineError::Invalid(format!(
                "structure {structure} is read-only while {holder} runs; nothing was changed: make the edit again when it is done"
            )));
        }
        // Only the rows the move touches are read: a move on a 100,000-row
        // structure costs what it does on a small one.
        let version = self.store.structure_version(structure)?;
        // Rows are named as the outline shows them: an issue key, or a
        // folder name with a trailing `/` (a bare name that is no issue key
        // also finds a folder).
        let find = |name: &str| -> Result<PlacedRow, EngineError> {
            let found = match name.strip_suffix('/') {
                Some(folder) => self
                    .store
                    .find_row(structure, &RowItem::Folder(folder.to_owned()))?,
                None => match self
                    .store
                    .find_row(structure, &RowItem::Issue(name.to_owned()))?
                {
                    Some(row) => Some(row),
                    None => self
                        .store
                        .find_row(structure, &RowItem::Folder(name.to_owned()))?,
                },
            };
            found.ok_or_else(|| {
                EngineError::NotFound(format!("{name} is not in structure {structure}"))
            })
        };
        let moved = find(key)?;
        let row = moved.row.id;
        let under = under.map(find).transpose()?;
        if let Some(parent) = &under
            && (parent.row.id == row
                || self
                    .store
                    .ancestors(structure, parent.row.id)?
                    .contains(&row))
        {
            return Err(EngineError::Invalid(format!(
                "cannot move {key} under {}: it is {key} itself or one of the rows under it",
                parent.row.item
            )));
        }
        let under = under.map(|parent| parent.row.id);
        let after = match after {
            Some(name) => {
                let anchor = find(name)?;
                if anchor.row.id == row {
                    return Err(EngineError::Invalid(format!(
                        "--after {name}: a row cannot go after itself; name one of its future siblings"
                    )));
                }
                if anchor.at.under != under {
                    return Err(EngineError::Invalid(format!(
                        "--after {name}: it is not a row under the target parent; name one of its rows"
                    )));
                }
                Some(anchor.row.id)
            }
            None => None,
        };
        let catalog = remembered(&self.store)?;
        let declared: HashSet<RowItem> = catalog
            .structure(structure)
            .map(|s| crate::plan::declared_items(&units::declared(&s.resource.spec.rows)))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let to = match after {
            Some(after) => Position {
                under,
                after: Some(after),
            },
            None => {
                let siblings = self.store.children(structure, under)?;
                let items: HashMap<RowId, &RowItem> =
                    siblings.iter().map(|r| (r.id, &r.item)).collect();
                let keys: Vec<&str> = siblings
                    .iter()
                    .chain([&moved.row])
                    .filter_map(|r| r.item.issue_key())
                    .collect();
                let issues = match catalog
                    .structure(structure)
                    .and_then(|s| s.resource.tracker_id())
                {
                    Some(tracker) => Snapshot::new(self.store.mirror_issues_of(&tracker, &keys)?),
                    None => Snapshot::default(),
                };
                let rank = |item: &RowItem| {
                    item.issue_key()
                        .and_then(|k| issues.get(k))
                        .map(Issue::order_key)
                };
                let ids: Vec<RowId> = siblings.iter().map(|r| r.id).collect();
                Position {
                    under,
                    after: crate::model::after_by_rank(
                        &ids,
                        row,
                        rank(&moved.row.item),
                        |r| rank(items[&r]),
                        |r| declared.contains(items[&r]),
                    ),
                }
            }
        };
        let from = moved.at;
        if from == to {
            return Ok(version);
        }
        // Declared rows stay where the Structure declares them (the next
        // run would put one back): say so now rather than accept the move.
        let item = moved.row.item;
        if declared.contains(&item) {
            return Err(EngineError::Invalid(format!(
                "{key} is one of structure {structure}'s declared rows, which stay where the Structure declares them; nothing was changed: to move it, change the Structure's `rows` and apply"
            )));
        }
        let op = crate::plan::StructureOp::Move {
            row,
            item,
            from,
            to,
        };
        let ops = [op];
        let version = self.store.commit(&Commit {
            structure,
            base_version: version,
            forest: None,
            changes: &[Change {
                cause: "manual move".into(),
                author: self.author.clone(),
                ops: &ops,
                tracker_ops: &[],
                synchronizer: None,
            }],
            jobs: &[],
            synchronizers: &[],
            baselines: &[],
            pass: None,
            read: None,
            settles: None,
        })?;
        Ok(version)
    }
}

impl Run {
    /// Refuses the run if any synchronizer in it would remove more rows than
    /// its safety limits allow: checked before anything is written.
    pub fn check_safety(&self) -> Result<(), EngineError> {
        let refusals: Vec<String> = self
            .set
            .structures
            .iter()
            .flat_map(|p| &p.mass_removals)
            .map(|m| m.message.clone())
            .collect();
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(EngineError::MassRemoval(refusals))
        }
    }
}

fn partly_applied(applied: &[(String, u64)], failed: &[(String, String)]) -> String {
    let mut text = String::from(
        "some structures were applied and some failed; run again to complete the failed ones:",
    );
    for (structure, version) in applied {
        text.push_str(&format!("\n  applied: {structure} is at version {version}"));
    }
    for (structure, error) in failed {
        text.push_str(&format!("\n  failed: {structure}: {error}"));
    }
    text
}

/// Connects to a tracker: who Trellis acts as there (an account, or for a
/// tracker without accounts the person running Trellis), once a read shows
/// it can be reached, and whether it allows that account what `needs` name
/// (asked, nothing written). Needs no engine: the controller checks
/// trackers while a run holds the engine.
pub async fn check_tracker(
    catalog: &Catalog,
    id: &str,
    credentials: Credentials,
    person: &str,
    needs: &[crate::tracker::Need],
) -> Result<(String, Vec<crate::tracker::Allowance>), EngineError> {
    let mut trackers = Trackers::new(credentials);
    let client = trackers.get(catalog, id)?;
    let error = |source| EngineError::Tracker {
        tracker: id.to_owned(),
        source,
    };
    let identity = match client.acting_as().await.map_err(error)? {
        Some(account) => account,
        None => {
            client.snapshot().await.map_err(error)?;
            person.to_owned()
        }
    };
    let allowances = if needs.is_empty() {
        Vec::new()
    } else {
        client.allows(needs).await.map_err(error)?
    };
    Ok((identity, allowances))
}

/// Every structure on a tracker plans from one snapshot; once one of them
/// writes to the tracker, the others' plans are stale. Rather than write
/// half a run, such a run is refused before anything is written.
fn refuse_two_exports_to_one_tracker(prepared: &[Prepared]) -> Result<(), EngineError> {
    let mut exporting: HashMap<&str, &str> = HashMap::new();
    for p in prepared {
        if p.plan.units.iter().all(|u| u.tracker_ops.is_empty()) {
            continue;
        }
        if let Some(first) = exporting.insert(&p.tracker, &p.structure) {
            return Err(EngineError::Invalid(format!(
                "structures {first} and {} would both write to tracker {} in one run; nothing was changed: export them one at a time with `trellis resync SYNCHRONIZER --direction from`",
                p.structure, p.tracker
            )));
        }
    }
    Ok(())
}

/// The synced state of every issue row, for each synchronizer that ran.
fn baselines(forest: &Forest, snapshot: &Snapshot, synchronizers: &[String]) -> Vec<Baseline> {
    let mut baselines = Vec::new();
    for (id, _) in forest.walk() {
        let Some(key) = forest.row(id).and_then(|r| r.item.issue_key()) else {
            continue;
        };
        let row_parent = forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .map(|r| r.item.to_string());
        let tracker_parent = snapshot.get(key).and_then(|i| i.parent.clone());
        for synchronizer in synchronizers {
            baselines.push(Baseline {
                synchronizer: synchronizer.clone(),
                issue: key.to_owned(),
                row_parent: row_parent.clone(),
                tracker_parent: tracker_parent.clone(),
            });
        }
    }
    baselines
}

/// The source a unit run came from (declared rows are named after the structure).
fn source_of<'s>(sources: &'s [UnitSource], unit: &UnitPlan) -> &'s UnitSource {
    sources
        .iter()
        .find(|source| match source {
            UnitSource::Synchronizer { id, .. } => *id == unit.synchronizer,
            UnitSource::Undo(_) => unit.kind == "undo",
            UnitSource::DeclaredRows => false,
        })
        .unwrap_or(&UnitSource::DeclaredRows)
}

/// The job of a run that stopped before it could read its tracker: failed,
/// with the error, so that `status` shows the failure rather than "never".
fn unread_job(
    structure: &str,
    synchronizer: &str,
    resync: Option<&str>,
    author: &str,
    started: jiff::Timestamp,
    error: &EngineError,
) -> JobRecord {
    JobRecord {
        id: 0,
        structure: structure.to_owned(),
        synchronizer: Some(synchronizer.to_owned()),
        resync: resync.map(str::to_owned),
        direction: None,
        author: author.to_owned(),
        plan_hash: None,
        state: JobState::Failed,
        summary: "nothing planned: the tracker could not be read".into(),
        error: Some(error.to_string()),
        started,
        finished: jiff::Timestamp::now(),
    }
}

/// One job per synchronizer that ran, summing its runs over all rounds.
fn job_records(
    structure: &str,
    sources: &[UnitSource],
    plan: &StructurePlan,
    author: &str,
    started: jiff::Timestamp,
    error: Option<&str>,
) -> Vec<JobRecord> {
    sources
        .iter()
        .filter_map(|source| {
            let synchronizer = source.synchronizer()?;
            let runs: Vec<&UnitPlan> = plan
                .units
                .iter()
                .filter(|u| u.synchronizer == synchronizer)
                .collect();
            Some(JobRecord {
                id: 0,
                structure: structure.to_owned(),
                synchronizer: Some(synchronizer.to_owned()),
                resync: source.resync().map(str::to_owned),
                direction: job_direction(&runs),
                author: author.to_owned(),
                plan_hash: Some(plan.hash.clone()),
                state: if error.is_some() {
                    JobState::Failed
                } else {
                    JobState::Succeeded
                },
                // A failed job carried out none of it (or not all: the
                // error says what was written).
                summary: match error {
                    Some(_) => format!("planned {}", runs_summary(&runs)),
                    None => runs_summary(&runs),
                },
                error: error.map(str::to_owned),
                started,
                finished: jiff::Timestamp::now(),
            })
        })
        .collect()
}

/// The directions a job carried changes in (`into`, `from`, or `into, from`
/// for a two-way pass that wrote both sides); its first run's when none.
fn job_direction(runs: &[&UnitPlan]) -> Option<crate::store::JobDirection> {
    let written = runs.iter().filter(|u| !u.is_empty()).map(|u| u.direction);
    crate::store::JobDirection::of(written).or_else(|| runs.first().map(|u| u.direction.into()))
}

fn runs_summary(runs: &[&UnitPlan]) -> String {
    let ops = || runs.iter().flat_map(|u| &u.structure_ops);
    let count = |f: fn(&StructureOp) -> bool| ops().filter(|op| f(op)).count();
    let tracker_updates = runs.iter().map(|u| u.tracker_ops.len()).sum::<usize>();
    format!(
        "{} added, {} moved, {} removed; {tracker_updates} tracker {}",
        count(|op| matches!(op, StructureOp::Add { .. })),
        count(|op| matches!(op, StructureOp::Move { .. })),
        count(|op| matches!(op, StructureOp::Remove { .. })),
        if tracker_updates == 1 {
            "update"
        } else {
            "updates"
        }
    )
}

/// The direction a synchronizer runs in when `apply` runs it: its first
/// declared one, else its type's first (`into`, or `from` for statusRollup).
pub fn primary_direction(spec: &crate::spec::SynchronizerSpec) -> Direction {
    spec.directions
        .first()
        .map_or(crate::spec::supported(spec.type_)[0], |d| (*d).into())
}

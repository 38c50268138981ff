//! Incremental sync: one pass of one synchronizer over what changed, as
//! named steps (`Engine::pass` reads as the list): resolve → read the
//! tracker ([`read`]) → what changed ([`read`]) → load what it plans over
//! ([`read`], [`scope`]) → decide (pure: [`crate::plan::decide`]) → plan
//! ([`plan`]; again over a larger neighbourhood while it needs one) →
//! guard ([`plan`]) → write the tracker ([`write`]) → record ([`record`]).
//! Steps that need no tracker client say so in their doc.
//!
//! A pass refreshes the store's mirror of the tracker with the issues
//! changed since its watermark (a full read when none was made or the last
//! one is older than `fullResyncAfter`), then finds what changed on each
//! side since the synchronizer's last pass: mirror rows numbered after its
//! cursor, and journal entries after its structure version that it did not
//! make. Each changed issue is compared with the synchronizer's baseline:
//!
//! - changed in the structure only: carried to the tracker (when `from` is
//!   one of its directions);
//! - changed in the tracker only: carried into the structure (`into`);
//! - changed on both sides: a conflict, settled by `conflictPolicy` and
//!   recorded; `manual` holds the issue until a person decides.
//!
//! The pass then plans exactly as a resync does, from the mirror instead of
//! a fresh full read: the tracker writes the structure won, then `into`
//! over the tracker as those writes leave it, so everything the planner
//! knows (folders, filters, ranks) holds here too. It plans over the
//! neighbourhood of its changes where the synchronizer's rule allows
//! ([`scope`]): a pass after K changes of N reads O(K) rows and issues.
//! Held issues take part as if the structure's side had been written, so
//! the structure keeps them as they are and nothing is written for them.
//!
//! Everything the pass records (content, journal, its cursor, baselines,
//! held issues, conflicts, the written issues in the mirror) is one store
//! transaction: its own writes never come back to it as changes.

mod plan;
mod read;
mod record;
mod scope;
mod write;

use std::collections::BTreeMap;

use serde::Serialize;

use super::units::{Searches, UnitSource};
use super::{Engine, EngineError, Trackers};
use crate::model::Direction;
use crate::plan::decide::{ConflictRule, Policy, Release};
use crate::plan::{Schedule, Summary, TrackerOp, UnitPlan};
use crate::spec::{
    Catalog, ConflictPolicy, Declared, ResolvedSync, Structure, SynchronizerSpec, SynchronizerType,
};
use crate::store::{ConflictRecord, HOLD_LEASE, HeldIssue, HeldPlan, HoldKind, Store, SyncState};
use crate::tracker::{AnyTracker, TrackerError};

/// What one pass did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pass {
    pub synchronizer: String,
    pub structure: String,
    /// A full read of the tracker (the first pass, or `fullResyncAfter`).
    pub full: bool,
    /// Issues read from the tracker.
    pub issues_read: usize,
    /// Requests sent to the tracker, retries included (none for a local
    /// tracker).
    pub requests: u64,
    /// Issues changed in the tracker and in the structure since the last pass.
    pub tracker_changes: usize,
    pub structure_changes: usize,
    /// What the pass planned over: the neighbourhood of its changes, or
    /// the whole structure (a full read; links, agile, statusRollup).
    pub planned_over: PlannedOver,
    /// Rows of the structure and issues of the mirror it read from the store.
    pub rows_loaded: usize,
    pub issues_loaded: usize,
    pub summary: Summary,
    pub version: u64,
    pub conflicts: Vec<ConflictRecord>,
    /// Issues whose changes wait (failed writes, manual conflicts).
    pub held: Vec<HeldIssue>,
    /// Why the pass waited: a resync (or another pass) holds the structure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Why the cycle guard stopped the synchronizer (at this pass or
    /// before): it makes no passes until restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The destructive plan this pass held instead of carrying it out
    /// (`safety.destructivePasses: hold`); `summary` is what it would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_plan: Option<HeldPlan>,
    /// Where the pass's time went.
    pub timings: Timings,
}

/// What a pass planned over (see [`scope`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PlannedOver {
    /// The rows and issues around its changes.
    #[default]
    Neighbourhood,
    /// Every row and every mirrored issue.
    Structure,
}

/// Where a pass's time went, in milliseconds, by step: what a person
/// tuning a schedule weighs (a slow tracker, a large structure).
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// Settling an earlier run's writes and reading the tracker's changes.
    pub read_ms: f64,
    /// Writing what the tracker returned into the store's mirror.
    pub mirror_ms: f64,
    /// What changed, the decision and the plan (with the filter queries
    /// the mirror cannot answer) and the guards.
    pub plan_ms: f64,
    /// Writing the tracker, with the re-read before it.
    pub write_ms: f64,
    /// The store transaction that records the pass.
    pub commit_ms: f64,
}

/// The milliseconds since `clock` (to the microsecond), which starts again.
fn lap(clock: &mut std::time::Instant) -> f64 {
    let ms = (clock.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    *clock = std::time::Instant::now();
    ms
}

/// What a pass works from, resolved once from the declarations: every step
/// takes it instead of looking the declarations up again.
struct Run<'a> {
    catalog: &'a Catalog,
    id: String,
    spec: &'a SynchronizerSpec,
    schedule: &'a Schedule,
    structure: &'a Declared<Structure>,
    structure_id: String,
    tracker_id: String,
    client: &'a AnyTracker,
    /// The pass's clock (`fullResyncAfter`, hold times) and when it began.
    now: jiff::Timestamp,
    started: jiff::Timestamp,
    /// No pass was made before: no baselines to compare with.
    first: bool,
    /// The directions the pass carries this time: the first pass runs in
    /// the first direction alone, as `apply` would.
    into: bool,
    from: bool,
    /// The structure's synchronizers that arrange rows (for the planner).
    arrangers: std::collections::HashSet<String>,
}

impl Run<'_> {
    fn tracker_error(&self, source: TrackerError) -> EngineError {
        EngineError::Tracker {
            tracker: self.tracker_id.clone(),
            source,
        }
    }

    fn source(&self) -> UnitSource {
        UnitSource::Synchronizer {
            id: self.id.clone(),
            resync: None,
        }
    }

    /// What `decide` needs of the declaration.
    fn policy(&self) -> Policy {
        Policy {
            compare: self.into && self.from && !self.first,
            parent_field: self.spec.type_ == SynchronizerType::Subtasks,
            conflict: match self.spec.conflict_policy {
                ConflictPolicy::Tracker => ConflictRule::Tracker,
                ConflictPolicy::Structure => ConflictRule::Structure,
                ConflictPolicy::Newest => ConflictRule::Newest,
                ConflictPolicy::Manual => ConflictRule::Manual,
            },
        }
    }

    /// The tracker writes of a pass as one unit of its plan.
    fn writes_unit(&self, writes: &[TrackerOp]) -> UnitPlan {
        UnitPlan {
            synchronizer: self.id.clone(),
            kind: self.spec.type_.as_str(),
            direction: Direction::From,
            round: 1,
            structure_ops: Vec::new(),
            tracker_ops: writes.to_vec(),
            notes: Vec::new(),
        }
    }

    fn cause(&self, kind: &str, direction: Direction) -> String {
        format!("incremental sync {} ({kind}, {direction})", self.id)
    }
}

/// The synchronizer's held issues: those from before the pass (attempts
/// count on from them) and those after it.
struct Holds {
    synchronizer: String,
    now: jiff::Timestamp,
    before: BTreeMap<String, HeldIssue>,
    after: BTreeMap<String, HeldIssue>,
}

impl Holds {
    fn new(synchronizer: &str, now: jiff::Timestamp, before: Vec<HeldIssue>) -> Holds {
        let before: BTreeMap<String, HeldIssue> =
            before.into_iter().map(|h| (h.issue.clone(), h)).collect();
        // Released holds are decided again; the others stay.
        let after = before
            .iter()
            .filter(|(_, h)| h.release.is_none())
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        Holds {
            synchronizer: synchronizer.to_owned(),
            now,
            before,
            after,
        }
    }

    /// Each held issue with a person's release, if any: what `decide` reads.
    fn releases(&self) -> BTreeMap<String, Option<Release>> {
        self.before
            .iter()
            .map(|(k, h)| (k.clone(), h.release))
            .collect()
    }

    /// Holds an issue, counting attempts from an earlier hold of it.
    fn hold(&mut self, key: &str, kind: HoldKind, operation: &str, message: String) {
        let earlier = self.before.get(key);
        let issue = HeldIssue {
            synchronizer: self.synchronizer.clone(),
            issue: key.to_owned(),
            kind,
            operation: operation.to_owned(),
            message,
            attempts: earlier.map_or(1, |b| b.attempts + 1),
            first_seen: earlier.map_or(self.now, |b| b.first_seen),
            last_seen: self.now,
            release: None,
        };
        self.after.insert(key.to_owned(), issue);
    }

    /// Marks a hold made by this pass as released already (`Retry`: the
    /// next pass decides the issue again, with no person needed).
    fn release(&mut self, key: &str, release: Option<Release>) {
        if let Some(held) = self.after.get_mut(key) {
            held.release = release;
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.after.contains_key(key)
    }
}

impl<S: Store> Engine<S> {
    /// One incremental pass of `id`. `now` decides whether it is a full
    /// read (the schedule's `fullResyncAfter`). A destructive plan is
    /// carried out only under `safety.destructivePasses: apply` or when its
    /// hash is `approval` or the synchronizer's `spec.approvedPlan`.
    pub async fn sync_pass(
        &mut self,
        catalog: &Catalog,
        id: &str,
        now: jiff::Timestamp,
        approval: Option<&str>,
    ) -> Result<Pass, EngineError> {
        let sync = catalog
            .synchronizer(id)
            .ok_or_else(|| EngineError::NotFound(format!("synchronizer {id} is not declared")))?;
        let spec = &sync.resource.spec;
        let resolved = catalog.resolved_synchronizer(id).ok_or_else(|| {
            EngineError::Invalid(format!(
                "synchronizer {id} is declared wrongly; `trellis validate` says how"
            ))
        })?;
        let structure_id = resolved.structure.clone();
        let mut pass = Pass {
            synchronizer: id.to_owned(),
            structure: structure_id.clone(),
            ..Pass::default()
        };
        let mut state = self.store.sync_state(id)?;
        if state.stopped.is_some() {
            pass.stopped = state.stopped;
            return Ok(pass);
        }
        // The process is part of the name: two processes passing the same
        // synchronizer must not both take the hold.
        let holder = format!("incremental sync {id} (process {})", std::process::id());
        let until = jiff::Timestamp::now() + HOLD_LEASE;
        if let Some(other) = self.store.hold_structure(&structure_id, &holder, until)? {
            pass.waiting = Some(format!("{other} holds structure {structure_id}"));
            return Ok(pass);
        }
        let keeper = self.store.keep_holding(&structure_id, &holder)?;
        let result = self
            .pass(
                catalog,
                (spec, resolved),
                &mut state,
                &mut pass,
                now,
                approval,
            )
            .await;
        drop(keeper);
        self.store.release_structure(&structure_id, &holder)?;
        result.map(|()| pass)
    }

    /// The pass, one line per step.
    async fn pass(
        &mut self,
        catalog: &Catalog,
        declared: (&SynchronizerSpec, &ResolvedSync),
        state: &mut SyncState,
        pass: &mut Pass,
        now: jiff::Timestamp,
        approval: Option<&str>,
    ) -> Result<(), EngineError> {
        let mut clock = std::time::Instant::now();
        let mut trackers = Trackers::new(self.credentials.clone());
        let run = resolve(catalog, declared, state, pass, now, &mut trackers)?;
        let refreshed = self.read_tracker(&run, state, pass).await?;
        pass.timings.read_ms = lap(&mut clock) - pass.timings.mirror_ms;
        let mut since = self.since_last_pass(&run, state, pass)?;
        let mut neighbourhood = match self.passes_over {
            PlannedOver::Neighbourhood if !refreshed.full => {
                scope::Neighbourhood::of(run.spec.type_)
            }
            _ => None,
        };
        let mut wants = since.wants(&run);
        let mut searches = Searches::incremental(
            state.matches.clone(),
            since.changes.tracker.iter().cloned().collect(),
            refreshed.full,
        );
        let (read, mut decisions, mut planned) = loop {
            let read = self.load(
                &run,
                &refreshed,
                &mut since,
                neighbourhood.as_mut(),
                std::mem::take(&mut wants),
                pass,
            )?;
            let mut decisions = since.decide(&run, &read);
            let planned = plan::plan_pass(&run, &since, &read, &mut decisions, searches).await?;
            // A plan that touched more than its neighbourhood read plans
            // again over a larger one, or over everything.
            match &mut neighbourhood {
                Some(n) => {
                    wants = n.lacks(&planned.plan);
                    if wants.is_empty() {
                        break (read, decisions, planned);
                    }
                    if !n.may_grow() {
                        neighbourhood = None;
                    }
                    searches = planned.searches;
                }
                None => break (read, decisions, planned),
            }
        };
        since.hold_conflicts(&mut decisions);
        let rows_before = match neighbourhood {
            Some(_) if planned.plan.summary.remove > 0 => {
                self.store.row_count(&run.structure_id)?
            }
            _ => since.stored.forest.len(),
        };
        if let Some((held, summary)) =
            self.hold_destructive(&run, state, &mut planned, rows_before, approval)?
        {
            pass.summary = summary;
            pass.held_plan = Some(held);
            pass.timings.plan_ms = lap(&mut clock);
            pass.requests = run.client.requests();
            return Ok(());
        }
        pass.timings.plan_ms = lap(&mut clock);
        let written = self
            .write_tracker(&run, &read, &mut planned, &mut since.holds, pass)
            .await?;
        pass.timings.write_ms = lap(&mut clock);
        self.record(
            &run,
            state,
            pass,
            record::Outcome {
                read,
                since,
                conflicts: decisions.conflicts,
                planned,
                written,
            },
        )?;
        pass.timings.commit_ms = lap(&mut clock);
        pass.requests = run.client.requests();
        tracing::info!(
            synchronizer = %run.id,
            full = pass.full,
            read = pass.issues_read,
            requests = pass.requests,
            planned_over = ?pass.planned_over,
            rows_loaded = pass.rows_loaded,
            summary = %pass.summary,
            read_ms = pass.timings.read_ms,
            mirror_ms = pass.timings.mirror_ms,
            plan_ms = pass.timings.plan_ms,
            write_ms = pass.timings.write_ms,
            commit_ms = pass.timings.commit_ms,
            "incremental pass"
        );
        Ok(())
    }
}

/// Resolves what the pass works from (no client call is made here:
/// connecting only builds it).
fn resolve<'a>(
    catalog: &'a Catalog,
    (spec, resolved): (&'a SynchronizerSpec, &'a ResolvedSync),
    state: &SyncState,
    pass: &Pass,
    now: jiff::Timestamp,
    trackers: &'a mut Trackers,
) -> Result<Run<'a>, EngineError> {
    let structure = catalog.structure(&resolved.structure).ok_or_else(|| {
        EngineError::NotFound(format!("structure {} is not declared", resolved.structure))
    })?;
    let tracker_id = resolved.tracker.clone();
    let client = trackers.get(catalog, &tracker_id)?;
    let directions: Vec<Direction> = if spec.directions.is_empty() {
        vec![super::primary_direction(spec)]
    } else {
        spec.directions.iter().map(|&d| d.into()).collect()
    };
    let primary = super::primary_direction(spec);
    let first = state.last_pass.is_none();
    let (into, from) = if first {
        (primary == Direction::Into, primary == Direction::From)
    } else {
        (
            directions.contains(&Direction::Into),
            directions.contains(&Direction::From),
        )
    };
    Ok(Run {
        catalog,
        id: pass.synchronizer.clone(),
        spec,
        schedule: &resolved.schedule,
        structure,
        structure_id: pass.structure.clone(),
        tracker_id,
        client,
        now,
        started: jiff::Timestamp::now(),
        first,
        into,
        from,
        arrangers: super::units::arrangers(catalog, &pass.structure),
    })
}

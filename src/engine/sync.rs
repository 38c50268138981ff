//! Incremental sync: one pass of one synchronizer over what changed.
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
//! knows (folders, filters, ranks) holds here too. Held issues take part as
//! if the structure's side had been written, so the structure keeps them as
//! they are and nothing is written for them.
//!
//! Everything the pass records (content, journal, its cursor, baselines,
//! held issues, conflicts, the written issues in the mirror) is one store
//! transaction: its own writes never come back to it as changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::units::{self, Searches, Selected, UnitSource};
use super::{Engine, EngineError, Trackers, job_records, unread_job};
use crate::model::{Direction, Forest, Issue, Snapshot};
use crate::plan::{
    Planned, StructureInput, Summary, TrackerOp, mass_removals, plan_hash, plan_structure,
};
use crate::spec::{Catalog, ConflictPolicy, DestructivePasses, SynchronizerType};
use crate::store::{
    Baseline, Change, Commit, ConflictRecord, HOLD_LEASE, HeldIssue, HeldPlan, HoldKind,
    IntendedChange, Mirror, MirrorRead, PassCommit, Recorded, Release, Store, SyncState,
    WriteIntent,
};
use crate::tracker::{AnyTracker, Tracker, TrackerError, Watermark};

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
    /// Issues changed in the tracker and in the structure since the last pass.
    pub tracker_changes: usize,
    pub structure_changes: usize,
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
}

/// An issue's place on each side, as baselines record it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sides {
    /// The row above it (`None`: top level); `None` outside: not in the structure.
    row: Option<Option<String>>,
    tracker_parent: Option<String>,
}

/// What a pass does with one changed issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// The structure's side goes to the tracker.
    Push,
    /// The tracker's side comes into the structure (what `into` plans anyway).
    Pull,
    /// Nothing is written for it; the structure keeps it as it is.
    Hold,
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
        let structure_id = Catalog::referenced(&sync.resource, &spec.structure_ref.name);
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
            .pass(catalog, id, &mut state, &mut pass, now, approval)
            .await;
        drop(keeper);
        self.store.release_structure(&structure_id, &holder)?;
        result.map(|()| pass)
    }

    /// Step 1 of a pass: the tracker's mirror, refreshed from the issues
    /// changed since its watermark, or read in full (the first pass, when
    /// `full_due`, or when no issue carries an `updated` time). The
    /// mirror's issues are loaded only for an incremental read: a full read
    /// replaces them.
    async fn read_tracker(
        &mut self,
        client: &AnyTracker,
        tracker_id: &str,
        first: bool,
        full_due: bool,
        pass: &mut Pass,
        now: jiff::Timestamp,
    ) -> Result<(u64, Snapshot, Mirror), EngineError> {
        let tracker_error = |source| EngineError::Tracker {
            tracker: tracker_id.to_owned(),
            source,
        };
        let mut mirror = self.store.mirror(tracker_id)?;
        pass.full = first || mirror.full_read.is_none() || full_due;
        let (seq, snapshot) = match (pass.full, mirror.watermark.read_from()) {
            (false, Some(from)) => {
                let changed = client.changed_since(from).await.map_err(tracker_error)?;
                pass.issues_read = changed.len();
                let fresh = mirror.watermark.advance(changed);
                let mut issues = self.store.mirror_issues(tracker_id)?;
                let mut index: HashMap<String, usize> = issues
                    .iter()
                    .enumerate()
                    .map(|(i, issue)| (issue.key.clone(), i))
                    .collect();
                for issue in &fresh {
                    match index.get(&issue.key) {
                        Some(&i) => issues[i] = issue.clone(),
                        None => {
                            index.insert(issue.key.clone(), issues.len());
                            issues.push(issue.clone());
                        }
                    }
                }
                let seq = self.store.refresh_mirror(
                    tracker_id,
                    MirrorRead::Changed(fresh),
                    &mirror.watermark,
                    now,
                )?;
                (seq, Snapshot::new(issues))
            }
            // No issue carries an `updated` time yet, or a full read is due.
            _ => {
                pass.full = true;
                let snapshot = client.snapshot().await.map_err(tracker_error)?;
                let issues: Vec<Issue> = snapshot.issues().cloned().collect();
                pass.issues_read = issues.len();
                mirror.watermark = Watermark::default();
                mirror.watermark.advance(issues.clone());
                let seq = self.store.refresh_mirror(
                    tracker_id,
                    MirrorRead::Full(issues),
                    &mirror.watermark,
                    now,
                )?;
                (seq, snapshot)
            }
        };
        Ok((seq, snapshot, mirror))
    }

    async fn pass(
        &mut self,
        catalog: &Catalog,
        id: &str,
        state: &mut SyncState,
        pass: &mut Pass,
        now: jiff::Timestamp,
        approval: Option<&str>,
    ) -> Result<(), EngineError> {
        let started = jiff::Timestamp::now();
        let sync = catalog.synchronizer(id).expect("found by the caller");
        let spec = &sync.resource.spec;
        let structure = catalog
            .structure(&pass.structure)
            .expect("validated: synchronizers name a declared structure");
        let tracker_id = &Catalog::tracker_of(&structure.resource)
            .expect("validated: structures with synchronizers have a tracker");
        let schedule = spec.schedule().unwrap_or_default();
        let tracker_error = |source| EngineError::Tracker {
            tracker: tracker_id.to_owned(),
            source,
        };
        let mut trackers = Trackers::new(self.credentials.clone());
        let client = trackers.get(catalog, tracker_id)?;
        // What an earlier run on this structure wrote and did not record,
        // then 1. the mirror, refreshed. A pass that cannot read its tracker
        // records a failed job: `status` shows the failure, not "never".
        let first = state.last_pass.is_none();
        let read = match self.settle(client, &pass.structure, None).await {
            Ok(()) => {
                let full_due = schedule.full_due(state.last_full, now);
                self.read_tracker(client, tracker_id, first, full_due, pass, now)
                    .await
            }
            Err(error) => Err(error),
        };
        let (seq, snapshot, mirror) = match read {
            Ok(read) => read,
            Err(error) => {
                let job = unread_job(&pass.structure, id, None, &self.author, started, &error);
                self.store.record_jobs(&[job])?;
                return Err(error);
            }
        };

        // 2. What changed on each side since the last pass.
        let tracker_changed: BTreeSet<String> = self
            .store
            .mirror_changes(tracker_id, state.seen_seq)?
            .into_iter()
            .collect();
        let mut structure_changed: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
        for (entry, by) in self
            .store
            .journal_since(&pass.structure, state.synced_version)?
        {
            if by.as_deref() == Some(id) {
                continue;
            }
            if let Recorded::Structure(op) = &entry.change
                && let Some(key) = op.item().issue_key()
            {
                structure_changed.insert(key.to_owned(), entry.time);
            }
        }
        pass.tracker_changes = tracker_changed.len();
        pass.structure_changes = structure_changed.len();

        // 3. Each changed issue against its baseline.
        let stored = self.store.structure(&pass.structure)?;
        let baselines: HashMap<String, Baseline> = self
            .store
            .baselines(id)?
            .into_iter()
            .map(|b| (b.issue.clone(), b))
            .collect();
        let directions: Vec<Direction> = if spec.directions.is_empty() {
            vec![super::primary_direction(spec)]
        } else {
            spec.directions.iter().map(|&d| d.into()).collect()
        };
        let primary = super::primary_direction(spec);
        let two_way =
            directions.contains(&Direction::Into) && directions.contains(&Direction::From);
        // The first pass has no baselines to compare with: it runs in the
        // first direction alone, as `apply` would.
        let (into, from) = if first {
            (primary == Direction::Into, primary == Direction::From)
        } else {
            (
                directions.contains(&Direction::Into),
                directions.contains(&Direction::From),
            )
        };
        let before: BTreeMap<String, HeldIssue> = self
            .store
            .held_issues(id)?
            .into_iter()
            .map(|h| (h.issue.clone(), h))
            .collect();
        // Released holds are decided again; the others stay.
        let mut held: BTreeMap<String, HeldIssue> = before
            .iter()
            .filter(|(_, h)| h.release.is_none())
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        let mut decisions: BTreeMap<String, Decision> =
            held.keys().map(|k| (k.clone(), Decision::Hold)).collect();
        // Holds an issue, counting attempts from an earlier hold of it.
        let hold = |held: &mut BTreeMap<String, HeldIssue>,
                    key: &str,
                    kind: HoldKind,
                    operation: &str,
                    message: String| {
            let earlier = before.get(key);
            let issue = HeldIssue {
                synchronizer: id.to_owned(),
                issue: key.to_owned(),
                kind,
                operation: operation.to_owned(),
                message,
                attempts: earlier.map_or(1, |b| b.attempts + 1),
                first_seen: earlier.map_or(now, |b| b.first_seen),
                last_seen: now,
                release: None,
            };
            held.insert(key.to_owned(), issue);
        };
        let mut conflicts = Vec::new();
        if two_way && !first {
            let sides_now = |key: &str| Sides {
                row: row_parent(&stored.forest, key),
                tracker_parent: snapshot.get(key).and_then(|i| i.parent.clone()),
            };
            let candidates: BTreeSet<&String> = tracker_changed
                .iter()
                .chain(structure_changed.keys())
                .chain(before.keys())
                .collect();
            for key in candidates {
                if held.contains_key(key) {
                    continue;
                }
                let release = before.get(key).and_then(|h| h.release);
                let now_sides = sides_now(key);
                let base = baselines.get(key.as_str());
                // Where the row was at the last pass (`None`: not in the structure).
                let base_row = base.map(|b| b.row_parent.clone());
                let structure_side_changed = base_row != now_sides.row
                    && (structure_changed.contains_key(key) || release.is_some());
                let tracker_side_changed = match (spec.type_, base) {
                    (SynchronizerType::Subtasks, Some(b)) => {
                        b.tracker_parent != now_sides.tracker_parent
                    }
                    (_, Some(_)) => tracker_changed.contains(key),
                    (_, None) => false,
                } && (tracker_changed.contains(key)
                    || release.is_some());
                let decision = match (structure_side_changed, tracker_side_changed) {
                    _ if release == Some(Release::KeepStructure) => Decision::Push,
                    (true, false) => Decision::Push,
                    (false, _) => Decision::Pull,
                    // Both sides made the same change (or a run that stopped
                    // after writing it left it so): nothing to settle.
                    (true, true)
                        if spec.type_ == SynchronizerType::Subtasks
                            && now_sides.row == Some(now_sides.tracker_parent.clone()) =>
                    {
                        Decision::Pull
                    }
                    (true, true) => {
                        let structure_time = structure_changed.get(key).copied();
                        let tracker_time = snapshot.get(key).and_then(|i| i.updated);
                        let decision = match spec.conflict_policy {
                            ConflictPolicy::Tracker => Decision::Pull,
                            ConflictPolicy::Structure => Decision::Push,
                            ConflictPolicy::Newest if structure_time > tracker_time => {
                                Decision::Push
                            }
                            ConflictPolicy::Newest => Decision::Pull,
                            ConflictPolicy::Manual => Decision::Hold,
                        };
                        let record = ConflictRecord {
                            synchronizer: id.to_owned(),
                            issue: key.clone(),
                            time: now,
                            structure_side: describe_row(&now_sides.row),
                            tracker_side: describe_parent(&now_sides.tracker_parent),
                            kept: match decision {
                                Decision::Push => crate::store::KeptSide::Structure,
                                Decision::Pull => crate::store::KeptSide::Tracker,
                                Decision::Hold => crate::store::KeptSide::Held,
                            },
                        };
                        if decision == Decision::Hold {
                            hold(
                                &mut held,
                                key,
                                HoldKind::Conflict,
                                "conflict",
                                format!(
                                    "changed on both sides: the structure has it {}, the tracker {}; conflictPolicy is manual: keep one side with `trellis troubleshoot {id} --skip {key}` (the tracker's) or `--keep-structure {key}`",
                                    record.structure_side, record.tracker_side
                                ),
                            );
                        }
                        conflicts.push(record);
                        decision
                    }
                };
                decisions.insert(key.clone(), decision);
            }
        }

        // 4. Plan: the structure's winners to the tracker, then `into`.
        let source = UnitSource::Synchronizer {
            id: id.to_owned(),
            resync: None,
        };
        let mut searches = Searches::incremental(
            state.matches.clone(),
            tracker_changed.iter().cloned().collect(),
            pass.full,
        );
        let arrangers = units::arrangers(catalog, &pass.structure);
        let plan_in = async |direction: Direction,
                             forest: Forest,
                             snapshot: &Snapshot,
                             searches: &mut Searches|
               -> Result<Planned, EngineError> {
            // Declared rows are where subtasks and links start from: they
            // take part in `into`, as in a resync.
            let mut selected = Vec::new();
            if direction == Direction::Into && !structure.resource.spec.rows.is_empty() {
                selected.push(Selected {
                    source: UnitSource::DeclaredRows,
                    direction,
                });
            }
            selected.push(Selected {
                source: source.clone(),
                direction,
            });
            let units = units::build(catalog, structure, &selected, client, searches)
                .await
                .map_err(tracker_error)?;
            plan_structure(
                forest,
                &StructureInput {
                    structure: &pass.structure,
                    tracker: tracker_id,
                    snapshot,
                    units: &units,
                    arrangers: &arrangers,
                },
            )
            .map_err(|source| EngineError::Plan {
                structure: pass.structure.clone(),
                source,
            })
        };
        // A one-way `from` synchronizer writes everything the structure
        // says; a two-way one only what the structure won.
        let everything = !into;
        let mut exported = None;
        if from && (everything || decisions.values().any(|d| *d != Decision::Pull)) {
            exported = Some(
                plan_in(
                    Direction::From,
                    stored.forest.clone(),
                    &snapshot,
                    &mut searches,
                )
                .await?,
            );
        }
        let export_ops: Vec<TrackerOp> = exported
            .iter()
            .flat_map(|p| {
                p.plan
                    .units
                    .iter()
                    .flat_map(|u| u.tracker_ops.iter().cloned())
            })
            .collect();
        // The structure's winners and the tracker's changes to other issues
        // may close a parent loop together (one moved under the other's
        // sub-task): the structure's side of the issues in it is held as a
        // conflict, and the rest goes on.
        let (mut writes, virtual_snapshot) = loop {
            let (writes, virtual_snapshot) =
                split_exports(&export_ops, &decisions, everything, &snapshot);
            let Some(cycle) = virtual_snapshot.parent_cycle() else {
                break (writes, virtual_snapshot);
            };
            let pushed: Vec<&String> = cycle
                .iter()
                .filter(|k| decisions.get(*k) == Some(&Decision::Push))
                .collect();
            if pushed.is_empty() {
                // A loop the tracker has itself (the planner reports it), or
                // one held issues make as the structure has them: those are
                // planned as the tracker has them.
                let pushes: BTreeMap<String, Decision> = decisions
                    .iter()
                    .filter(|(_, d)| **d == Decision::Push)
                    .map(|(k, d)| (k.clone(), *d))
                    .collect();
                break (
                    writes,
                    split_exports(&export_ops, &pushes, false, &snapshot).1,
                );
            }
            for key in pushed {
                let message = format!(
                    "its row's move in the structure and the tracker's changes together would make a parent loop ({}); change one side, then `trellis troubleshoot {id} --retry {key}`",
                    cycle.join(" → ")
                );
                hold(&mut held, key, HoldKind::Conflict, "conflict", message);
                decisions.insert(key.clone(), Decision::Hold);
            }
        };
        let exported = exported.map(|mut planned| {
            for unit in &mut planned.plan.units {
                unit.tracker_ops.clear();
            }
            planned
        });
        let rows_before = stored.forest.len();
        let planned = match exported {
            Some(planned) if !into => planned,
            _ => {
                plan_in(
                    Direction::Into,
                    stored.forest.clone(),
                    &virtual_snapshot,
                    &mut searches,
                )
                .await?
            }
        };
        let mut plan = planned.plan;
        let forest = planned.forest;
        plan.mass_removals = mass_removals(&plan, rows_before, |sync| {
            units::removal_limits(catalog, sync)
        });
        if let Some(m) = plan.mass_removals.first() {
            return Err(EngineError::MassRemoval(vec![m.message.clone()]));
        }
        let writes_unit = |writes: &[TrackerOp]| crate::plan::UnitPlan {
            synchronizer: id.to_owned(),
            kind: spec.type_.as_str(),
            direction: Direction::From,
            round: 1,
            structure_ops: Vec::new(),
            tracker_ops: writes.to_vec(),
            notes: Vec::new(),
        };

        // 5. Destructive changes wait for a person, unless declared otherwise.
        let destructive: Vec<String> = plan
            .destructive()
            .into_iter()
            .chain(
                writes
                    .iter()
                    .filter(|op| op.is_destructive())
                    .map(ToString::to_string),
            )
            .collect();
        let policy = spec.safety.as_ref().map(|s| s.destructive_passes);
        if !destructive.is_empty() && policy.unwrap_or_default() == DestructivePasses::Hold {
            let mut units = plan.units.clone();
            units.push(writes_unit(&writes));
            let hash = plan_hash(&plan.base_fingerprint, &units);
            let approved = [approval, spec.approved_plan.as_deref()];
            if !approved.contains(&Some(hash.as_str())) {
                let since = match &state.held_plan {
                    Some(held) if held.hash == hash => held.since,
                    _ => now,
                };
                let held = HeldPlan {
                    hash,
                    summary: Summary::count(&units).to_string(),
                    destructive,
                    since,
                };
                tracing::info!(synchronizer = %id, hash = %held.hash, summary = %held.summary, "destructive plan held for approval");
                self.store.hold_plan(id, &held)?;
                pass.summary = Summary::count(&units);
                pass.held_plan = Some(held);
                return Ok(());
            }
        }

        // 6. Write the tracker: only if what it is about to change did not
        // change again since the refresh (else the next pass decides anew).
        let identity = client
            .acting_as()
            .await
            .map_err(tracker_error)?
            .unwrap_or_else(|| self.author.clone());
        let author = format!("{id} as {identity}");
        let cause = |kind: &str, direction: Direction| {
            format!("incremental sync {id} ({kind}, {direction})")
        };
        let mut written_snapshot = snapshot.clone();
        let mut written: Vec<Issue> = Vec::new();
        let mut settles = None;
        if !writes.is_empty() {
            if !client.capabilities().refuses_stale_writes
                && let Some(from) = mirror.watermark.read_from()
            {
                let again = client.changed_since(from).await.map_err(tracker_error)?;
                pass.issues_read += again.len();
                let targets: HashSet<&str> = writes.iter().map(TrackerOp::issue).collect();
                if let Some(issue) = again
                    .iter()
                    .find(|i| targets.contains(i.key.as_str()) && snapshot.get(&i.key) != Some(i))
                {
                    return Err(EngineError::TrackerChanged {
                        tracker: format!("{tracker_id} ({} changed during the pass)", issue.key),
                    });
                }
            }
            let sources = [source_of_pass(id)];
            let mut intended = plan.clone();
            intended.units.push(writes_unit(&writes));
            let intent = WriteIntent {
                id: 0,
                structure: pass.structure.clone(),
                tracker: tracker_id.clone(),
                changes: vec![IntendedChange {
                    cause: cause(spec.type_.as_str(), Direction::From),
                    author: author.clone(),
                    synchronizer: Some(id.to_owned()),
                    ops: writes.clone(),
                }],
                jobs: job_records(&pass.structure, &sources, &intended, &author, started, None),
            };
            let outcome = self.write_ahead(client, &intent).await?;
            let failures = match outcome.result {
                Ok(()) => Vec::new(),
                Err(TrackerError::Writes { failures, .. }) => failures,
                Err(source) => {
                    let error = format!("tracker {tracker_id}: {source}");
                    let jobs = job_records(
                        &pass.structure,
                        &sources,
                        &intended,
                        &author,
                        started,
                        Some(&error),
                    );
                    self.settle_failed(client, &pass.structure, &jobs, &source)
                        .await?;
                    return Err(tracker_error(source));
                }
            };
            settles = Some(outcome.intent);
            let failed: HashSet<&str> = failures.iter().map(|f| f.issue.as_str()).collect();
            for failure in &failures {
                hold(
                    &mut held,
                    &failure.issue,
                    HoldKind::Error,
                    &failure.operation,
                    failure.message.clone(),
                );
            }
            writes.retain(|op| !failed.contains(op.issue()));
            let mut touched = BTreeSet::new();
            for op in &writes {
                touched.extend(op.apply(&mut written_snapshot));
            }
            written = touched
                .iter()
                .filter_map(|k| written_snapshot.get(k).cloned())
                .collect();
        }
        if !writes.is_empty() {
            plan.units.push(writes_unit(&writes));
        }
        plan.summary = Summary::count(&plan.units);
        pass.summary = plan.summary;

        // 7. Record it all in one transaction.
        let changes: Vec<Change> = plan
            .units
            .iter()
            .filter(|u| !u.is_empty())
            .map(|unit| Change {
                cause: cause(unit.kind, unit.direction),
                author: author.clone(),
                ops: &unit.structure_ops,
                tracker_ops: &unit.tracker_ops,
                synchronizer: Some(id),
            })
            .collect();
        let mut settled: BTreeSet<String> = tracker_changed
            .iter()
            .chain(structure_changed.keys())
            .cloned()
            .collect();
        for unit in &plan.units {
            for op in &unit.structure_ops {
                settled.extend(op.item().issue_key().map(str::to_owned));
            }
            for op in &unit.tracker_ops {
                settled.extend(op.issues().into_iter().map(str::to_owned));
            }
        }
        let replace_all = pass.full;
        if replace_all {
            settled.extend(baselines.keys().cloned());
            settled.extend(
                forest
                    .walk()
                    .into_iter()
                    .filter_map(|(row, _)| forest.row(row)?.item.issue_key().map(str::to_owned)),
            );
        }
        let mut new_baselines = Vec::new();
        let mut forgotten = Vec::new();
        for key in settled.iter().filter(|k| !held.contains_key(*k)) {
            match row_parent(&forest, key) {
                Some(row_parent) => new_baselines.push(Baseline {
                    synchronizer: id.to_owned(),
                    issue: key.clone(),
                    row_parent,
                    tracker_parent: written_snapshot.get(key).and_then(|i| i.parent.clone()),
                }),
                None if baselines.contains_key(key) => forgotten.push(key.clone()),
                None => {}
            }
        }
        // The cycle guard: rewriting an issue the last pass also wrote,
        // pass after pass, means someone keeps writing it back.
        let written_now: Vec<String> = plan
            .units
            .iter()
            .flat_map(|u| {
                u.tracker_ops.iter().map(|op| op.issue().to_owned()).chain(
                    u.structure_ops
                        .iter()
                        .filter_map(|op| op.item().issue_key().map(str::to_owned)),
                )
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rewritten: Vec<&String> = written_now
            .iter()
            .filter(|k| state.last_written.contains(k))
            .collect();
        let rounds = if rewritten.is_empty() {
            0
        } else {
            state.rounds + 1
        };
        let stopped = (rounds as usize >= spec.max_rounds()).then(|| {
            format!(
                "{} changed back after each of its last {rounds} passes (another synchronizer or a person keeps undoing it): find the other writer with `trellis history {}`, settle which one owns it, then restart",
                rewritten
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                pass.structure
            )
        });
        let held: Vec<HeldIssue> = held.into_values().collect();
        let next_state = SyncState {
            seen_seq: seq,
            synced_version: 0, // set by the store to the version it commits
            last_pass: Some(now),
            last_full: if pass.full {
                Some(now)
            } else {
                state.last_full
            },
            rounds,
            last_written: written_now,
            stopped,
            matches: searches.into_results(),
            held_plan: None,
        };
        let jobs = job_records(
            &pass.structure,
            std::slice::from_ref(&source_of_pass(id)),
            &plan,
            &author,
            started,
            None,
        );
        let record = PassCommit {
            synchronizer: id,
            tracker: tracker_id,
            state: next_state.clone(),
            baselines: &new_baselines,
            forgotten: &forgotten,
            held: &held,
            conflicts: &conflicts,
            written: &written,
        };
        pass.version = self.store.commit(&Commit {
            structure: &pass.structure,
            base_version: stored.version,
            forest: &forest,
            changes: &changes,
            jobs: if changes.is_empty() { &[] } else { &jobs },
            synchronizers: &[],
            baselines: &[],
            pass: Some(&record),
            read: None,
            settles,
        })?;
        *state = next_state;
        pass.stopped = state.stopped.clone();
        pass.conflicts = conflicts;
        pass.held = held;
        tracing::info!(
            synchronizer = %id,
            full = pass.full,
            read = pass.issues_read,
            summary = %pass.summary,
            "incremental pass"
        );
        Ok(())
    }
}

fn source_of_pass(id: &str) -> UnitSource {
    UnitSource::Synchronizer {
        id: id.to_owned(),
        resync: None,
    }
}

/// The structure's operations on the tracker a pass writes (`everything`
/// for a one-way `from` synchronizer, else those of the issues it pushes)
/// and the tracker as the pass plans `into` over it: written, plus held
/// issues as the structure has them.
fn split_exports(
    ops: &[TrackerOp],
    decisions: &BTreeMap<String, Decision>,
    everything: bool,
    snapshot: &Snapshot,
) -> (Vec<TrackerOp>, Snapshot) {
    let mut writes = Vec::new();
    let mut planned = snapshot.clone();
    for op in ops {
        match decisions.get(op.issue()) {
            Some(Decision::Hold) => {
                op.apply(&mut planned);
            }
            Some(Decision::Push) => {
                op.apply(&mut planned);
                writes.push(op.clone());
            }
            _ if everything => {
                op.apply(&mut planned);
                writes.push(op.clone());
            }
            _ => {}
        }
    }
    (writes, planned)
}

/// The row above `key`'s row as baselines name it (`None` inside: top
/// level), or `None` when the structure does not hold `key`.
fn row_parent(forest: &Forest, key: &str) -> Option<Option<String>> {
    let row = forest.find_issue(key)?;
    Some(
        forest
            .parent(row)
            .and_then(|p| forest.row(p))
            .map(|r| r.item.to_string()),
    )
}

fn describe_row(row: &Option<Option<String>>) -> String {
    match row {
        None => "out of the structure".into(),
        Some(None) => "at the top level".into(),
        Some(Some(parent)) => format!("under {parent}"),
    }
}

fn describe_parent(parent: &Option<String>) -> String {
    match parent {
        None => "with no parent".into(),
        Some(parent) => format!("with parent {parent}"),
    }
}

//! Steps 1 to 3 of a pass: the tracker's mirror, refreshed (the only step
//! here that calls the tracker); what changed on each side since the
//! synchronizer's last pass (the store alone); and the decision over it
//! (pure: `plan::decide`).

use std::collections::{BTreeSet, HashMap};

use super::scope::{Neighbourhood, Wants};
use super::{Holds, Pass, PlannedOver, Run};
use crate::engine::{Engine, EngineError, units, unread_job};
use crate::model::{Issue, RowItem, Snapshot};
use crate::plan::decide::{Changes, DecideInput, Decisions, Sides, decide};
use crate::plan::{Placement, declared_items};
use crate::spec::SyncKind;
use crate::store::{HoldKind, Mirror, MirrorRead, Recorded, Store, StoredStructure, SyncState};
use crate::tracker::{Tracker, Watermark};

/// The tracker's mirror after the pass refreshed it.
pub(super) struct Refreshed {
    /// The mirror's sequence number after the refresh: the next pass's cursor.
    pub seq: u64,
    /// A full read (see [`Pass::full`]).
    pub full: bool,
    /// The tracker as a full read returned it (the mirror holds it too).
    pub whole: Option<Snapshot>,
    /// The mirror's watermark, for re-reading before writes.
    pub mirror: Mirror,
}

/// The tracker as the pass plans from it: the whole mirror, or the
/// issues of its neighbourhood (see [`super::scope`]).
pub(super) struct Read {
    pub seq: u64,
    pub snapshot: Snapshot,
    pub mirror: Mirror,
}

impl<S: Store> Engine<S> {
    /// What an earlier run on this structure wrote and did not record is
    /// settled first; then the mirror is refreshed from the issues changed
    /// since its watermark, or read in full (the first pass, when
    /// `fullResyncAfter` is due, or when no issue carries an `updated`
    /// time), unless another pass of the same round read it already. Only
    /// the changed issues are written: the mirror is not loaded here. A
    /// pass that cannot read its tracker records a failed job: `status`
    /// shows the failure, not "never".
    pub(super) async fn read_tracker(
        &mut self,
        run: &Run<'_>,
        state: &SyncState,
        pass: &mut Pass,
    ) -> Result<Refreshed, EngineError> {
        let read = match self.settle(run.client, &run.structure_id, None).await {
            Ok(()) => {
                let full_due = run.schedule.full_due(state.last_full, run.now);
                self.refresh_mirror(run, full_due, pass).await
            }
            Err(error) => Err(error),
        };
        read.or_else(|error| {
            let job = unread_job(
                &run.structure_id,
                &run.id,
                None,
                &self.author,
                run.started,
                &error,
            );
            self.store.record_jobs(&[job])?;
            Err(error)
        })
    }

    async fn refresh_mirror(
        &mut self,
        run: &Run<'_>,
        full_due: bool,
        pass: &mut Pass,
    ) -> Result<Refreshed, EngineError> {
        let tracker_id = &run.tracker_id;
        let mut mirror = self.store.mirror(tracker_id)?;
        pass.full = run.first || mirror.full_read.is_none() || full_due;
        // Passes of one round share their `now`: one that finds the mirror
        // read at it (in full, if it needs a full read) plans from that
        // read, so the synchronizers of a structure read their tracker once
        // a round. What the earlier passes wrote is in the mirror already.
        let this_round = |at: Option<jiff::Timestamp>| at.is_some_and(|at| at >= run.now);
        if this_round(mirror.read_at) && (!pass.full || this_round(mirror.full_read)) {
            return Ok(Refreshed {
                seq: mirror.seq,
                full: pass.full,
                whole: None,
                mirror,
            });
        }
        let (read, whole) = match (pass.full, mirror.watermark.read_from()) {
            (false, Some(from)) => {
                let changed = run
                    .client
                    .changed_since(from)
                    .await
                    .map_err(|e| run.tracker_error(e))?;
                pass.issues_read = changed.len();
                (MirrorRead::Changed(mirror.watermark.advance(changed)), None)
            }
            // No issue carries an `updated` time yet, or a full read is due.
            _ => {
                pass.full = true;
                let snapshot = run
                    .client
                    .snapshot()
                    .await
                    .map_err(|e| run.tracker_error(e))?;
                let issues: Vec<Issue> = snapshot.issues().cloned().collect();
                pass.issues_read = issues.len();
                mirror.watermark = Watermark::default();
                mirror.watermark.advance(issues.clone());
                (MirrorRead::Full(issues), Some(snapshot))
            }
        };
        let writing = std::time::Instant::now();
        let seq = self
            .store
            .refresh_mirror(tracker_id, read, &mirror.watermark, run.now)?;
        pass.timings.mirror_ms = writing.elapsed().as_secs_f64() * 1000.0;
        Ok(Refreshed {
            seq,
            full: pass.full,
            whole,
            mirror,
        })
    }

    /// Step 2, the store alone: mirror rows numbered after the
    /// synchronizer's cursor, and journal entries after its structure
    /// version that it did not make; and the synchronizer's held issues.
    pub(super) fn since_last_pass(
        &self,
        run: &Run<'_>,
        state: &SyncState,
        pass: &mut Pass,
    ) -> Result<SinceLastPass, EngineError> {
        let mut changes = Changes {
            tracker: self
                .store
                .mirror_changes(&run.tracker_id, state.seen_seq)?
                .into_iter()
                .collect(),
            ..Changes::default()
        };
        for (entry, by) in self
            .store
            .journal_since(&run.structure_id, state.synced_version)?
        {
            if by.as_deref() == Some(run.id.as_str()) {
                continue;
            }
            if let Recorded::Structure(op) = &entry.change
                && let Some(key) = op.item().issue_key()
            {
                changes.structure.insert(key.to_owned(), entry.time);
            }
        }
        pass.tracker_changes = changes.tracker.len();
        pass.structure_changes = changes.structure.len();
        Ok(SinceLastPass {
            changes,
            stored: StoredStructure::default(),
            baselines: HashMap::new(),
            holds: Holds::new(&run.id, run.now, self.store.held_issues(&run.id)?),
        })
    }

    /// What the pass plans over, read from the store: the whole structure
    /// and mirror, or `neighbourhood` grown by `wants` (see
    /// [`super::scope`]); and the baselines of the issues in it.
    pub(super) fn load(
        &self,
        run: &Run<'_>,
        refreshed: &Refreshed,
        since: &mut SinceLastPass,
        neighbourhood: Option<&mut Neighbourhood>,
        wants: Wants,
        pass: &mut Pass,
    ) -> Result<Read, EngineError> {
        let (snapshot, baselines) = match neighbourhood {
            None => {
                since.stored = self.store.structure(&run.structure_id)?;
                let snapshot = match &refreshed.whole {
                    Some(whole) => whole.clone(),
                    None => Snapshot::new(self.store.mirror_issues(&run.tracker_id)?),
                };
                pass.planned_over = PlannedOver::Structure;
                (snapshot, self.store.baselines(&run.id)?)
            }
            Some(neighbourhood) => {
                neighbourhood.grow(&self.store, &run.structure_id, &run.tracker_id, wants)?;
                let forest = neighbourhood.forest().map_err(|source| EngineError::Plan {
                    structure: run.structure_id.clone(),
                    source: crate::plan::PlanError::Internal {
                        unit: format!("the neighbourhood of {}'s changes", run.id),
                        source,
                    },
                })?;
                since.stored = StoredStructure {
                    forest,
                    version: neighbourhood.version(),
                };
                let keys = neighbourhood.keys();
                pass.planned_over = PlannedOver::Neighbourhood;
                (
                    neighbourhood.snapshot(),
                    self.store.baselines_of(&run.id, &keys)?,
                )
            }
        };
        pass.rows_loaded = since.stored.forest.len();
        pass.issues_loaded = snapshot.len();
        since.baselines = baselines
            .into_iter()
            .map(|b| {
                let sides = Sides {
                    row: Some(b.row_parent),
                    tracker_parent: b.tracker_parent,
                };
                (b.issue, sides)
            })
            .collect();
        Ok(Read {
            seq: refreshed.seq,
            snapshot,
            mirror: refreshed.mirror.clone(),
        })
    }
}

/// What changed since the synchronizer's last pass, and what the pass
/// compares it with.
pub(super) struct SinceLastPass {
    pub changes: Changes,
    /// The structure as stored (its content and version).
    pub stored: StoredStructure,
    /// Where each issue was on each side at the last pass.
    pub baselines: HashMap<String, Sides>,
    pub holds: Holds,
}

impl SinceLastPass {
    /// Step 3, pure: [`decide`] over what changed.
    pub fn decide(&self, run: &Run<'_>, read: &Read) -> Decisions {
        decide(
            &DecideInput {
                synchronizer: &run.id,
                baselines: &self.baselines,
                held: &self.holds.releases(),
                changes: &self.changes,
                forest: &self.stored.forest,
                snapshot: &read.snapshot,
            },
            &run.policy(),
        )
    }

    /// The conflicts `decide` (and planning the exports) held.
    pub fn hold_conflicts(&mut self, decisions: &mut Decisions) {
        for new in std::mem::take(&mut decisions.holds) {
            self.holds
                .hold(&new.issue, HoldKind::Conflict, "conflict", new.message);
        }
    }

    /// What a pass over a neighbourhood reads first: the changed and held
    /// issues, with their tracker subtrees, and the rows the planner places
    /// by (a filter's placement parent, the declared rows).
    pub fn wants(&self, run: &Run<'_>) -> Wants {
        let changed: BTreeSet<String> = self
            .changes
            .tracker
            .iter()
            .chain(self.changes.structure.keys())
            .chain(self.holds.before.keys())
            .cloned()
            .collect();
        let mut wants = Wants {
            tracker_subtrees: changed.clone(),
            issues: changed,
            ..Wants::default()
        };
        let declared = units::declared(&run.structure.resource.spec.rows);
        let placement = match run.catalog.resolved_synchronizer(&run.id).map(|r| &r.kind) {
            Some(SyncKind::Filter(filter)) => match units::placement(filter) {
                Placement::Folder(name) => Some(RowItem::Folder(name)),
                Placement::Issue(key) => Some(RowItem::Issue(key)),
                Placement::Top => None,
            },
            _ => None,
        };
        for item in declared_items(&declared).into_iter().chain(placement) {
            match item {
                RowItem::Issue(key) => wants.issues.insert(key),
                RowItem::Folder(name) => wants.folders.insert(name),
            };
        }
        wants
    }
}

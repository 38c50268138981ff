//! Steps 1 to 3 of a pass: the tracker's mirror, refreshed (the only step
//! here that calls the tracker); what changed on each side since the
//! synchronizer's last pass (the store alone); and the decision over it
//! (pure: `plan::decide`).

use std::collections::HashMap;

use super::{Holds, Pass, Run};
use crate::engine::{Engine, EngineError, unread_job};
use crate::model::{Issue, Snapshot};
use crate::plan::decide::{Changes, DecideInput, Decisions, Sides, decide};
use crate::store::{HoldKind, Mirror, MirrorRead, Recorded, Store, StoredStructure, SyncState};
use crate::tracker::{Tracker, Watermark};

/// The tracker as the pass read it.
pub(super) struct Read {
    /// The mirror's sequence number after the refresh: the next pass's cursor.
    pub seq: u64,
    pub snapshot: Snapshot,
    /// A full read (see [`Pass::full`]).
    pub full: bool,
    /// The mirror's watermark, for re-reading before writes.
    pub mirror: Mirror,
}

impl<S: Store> Engine<S> {
    /// What an earlier run on this structure wrote and did not record is
    /// settled first; then the mirror is refreshed from the issues changed
    /// since its watermark, or read in full (the first pass, when
    /// `fullResyncAfter` is due, or when no issue carries an `updated`
    /// time), unless another pass of the same round read it already. The mirror's issues are loaded only for an incremental read:
    /// a full read replaces them. A pass that cannot read its tracker
    /// records a failed job: `status` shows the failure, not "never".
    pub(super) async fn read_tracker(
        &mut self,
        run: &Run<'_>,
        state: &SyncState,
        pass: &mut Pass,
    ) -> Result<Read, EngineError> {
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
    ) -> Result<Read, EngineError> {
        let tracker_id = &run.tracker_id;
        let mut mirror = self.store.mirror(tracker_id)?;
        pass.full = run.first || mirror.full_read.is_none() || full_due;
        // Passes of one round share their `now`: one that finds the mirror
        // read at it (in full, if it needs a full read) plans from that
        // read, so the synchronizers of a structure read their tracker once
        // a round. What the earlier passes wrote is in the mirror already.
        let this_round = |at: Option<jiff::Timestamp>| at.is_some_and(|at| at >= run.now);
        if this_round(mirror.read_at) && (!pass.full || this_round(mirror.full_read)) {
            let snapshot = Snapshot::new(self.store.mirror_issues(tracker_id)?);
            return Ok(Read {
                seq: mirror.seq,
                snapshot,
                full: pass.full,
                mirror,
            });
        }
        let (read, snapshot) = match (pass.full, mirror.watermark.read_from()) {
            (false, Some(from)) => {
                let changed = run
                    .client
                    .changed_since(from)
                    .await
                    .map_err(|e| run.tracker_error(e))?;
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
                (MirrorRead::Changed(fresh), Snapshot::new(issues))
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
                (MirrorRead::Full(issues), snapshot)
            }
        };
        let seq = self
            .store
            .refresh_mirror(tracker_id, read, &mirror.watermark, run.now)?;
        Ok(Read {
            seq,
            snapshot,
            full: pass.full,
            mirror,
        })
    }

    /// Step 2, the store alone: mirror rows numbered after the
    /// synchronizer's cursor, and journal entries after its structure
    /// version that it did not make; and what they are compared with.
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
        let baselines = self
            .store
            .baselines(&run.id)?
            .into_iter()
            .map(|b| {
                let sides = Sides {
                    row: Some(b.row_parent),
                    tracker_parent: b.tracker_parent,
                };
                (b.issue, sides)
            })
            .collect();
        Ok(SinceLastPass {
            changes,
            stored: self.store.structure(&run.structure_id)?,
            baselines,
            holds: Holds::new(&run.id, run.now, self.store.held_issues(&run.id)?),
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

    /// Rows in the structure before the pass (the mass-removal guard's base).
    pub fn rows(&self) -> usize {
        self.stored.forest.len()
    }
}

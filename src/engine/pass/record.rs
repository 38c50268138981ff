//! Step 7 of a pass: everything it decided and did, recorded in one store
//! transaction (content, journal, its cursor, baselines, held issues,
//! conflicts, the written issues in the mirror), so that its own writes
//! never come back to it as changes. No tracker call.

use std::collections::{BTreeSet, HashMap};

use super::plan::PassPlan;
use super::read::{Read, SinceLastPass};
use super::write::Written;
use super::{Holds, Pass, Run};
use crate::engine::{Engine, EngineError, job_records};
use crate::model::Forest;
use crate::plan::StructurePlan;
use crate::plan::decide::{self, Changes, Conflict, Sides};
use crate::store::{
    Baseline, Change, Commit, ConflictRecord, HeldIssue, PassCommit, Store, SyncState,
};

/// What the steps before produced, handed over to be recorded.
pub(super) struct Outcome {
    pub read: Read,
    pub since: SinceLastPass,
    pub conflicts: Vec<Conflict>,
    pub planned: PassPlan,
    pub written: Written,
}

impl<S: Store> Engine<S> {
    pub(super) fn record(
        &mut self,
        run: &Run<'_>,
        state: &mut SyncState,
        pass: &mut Pass,
        outcome: Outcome,
    ) -> Result<(), EngineError> {
        let Outcome {
            read,
            since:
                SinceLastPass {
                    changes,
                    stored,
                    baselines,
                    holds,
                },
            conflicts,
            planned,
            written,
        } = outcome;
        let PassPlan {
            mut plan,
            forest,
            writes,
            searches,
        } = planned;
        if !writes.is_empty() {
            plan.units.push(run.writes_unit(&writes));
        }
        plan.summary = crate::plan::Summary::count(&plan.units);
        pass.summary = plan.summary;
        let author = &written.author;
        let changes_made: Vec<Change> = plan
            .units
            .iter()
            .filter(|u| !u.is_empty())
            .map(|unit| Change {
                cause: run.cause(unit.kind, unit.direction),
                author: author.clone(),
                ops: &unit.structure_ops,
                tracker_ops: &unit.tracker_ops,
                synchronizer: Some(&run.id),
            })
            .collect();

        let settled = settled_issues(pass.full, &plan, &forest, &changes, &baselines);
        let (new_baselines, forgotten) =
            next_baselines(run, &settled, &forest, &baselines, &holds, &read, &written);
        let written_now = written_by(&plan);
        let rewrites = decide::cycle_guard(
            &written_now,
            &state.last_written,
            state.rounds,
            run.spec.max_rounds(),
            &run.structure_id,
        );
        let held: Vec<HeldIssue> = holds.after.into_values().collect();
        let conflicts: Vec<ConflictRecord> = conflicts
            .into_iter()
            .map(|c| ConflictRecord {
                synchronizer: run.id.clone(),
                issue: c.issue,
                time: run.now,
                structure_side: c.structure_side,
                tracker_side: c.tracker_side,
                kept: c.kept,
            })
            .collect();
        let next_state = SyncState {
            seen_seq: read.seq,
            synced_version: 0, // set by the store to the version it commits
            last_pass: Some(run.now),
            last_full: if pass.full {
                Some(run.now)
            } else {
                state.last_full
            },
            rounds: rewrites.rounds,
            last_written: written_now,
            stopped: rewrites.stopped,
            matches: searches.into_results(),
            held_plan: None,
        };
        let jobs = job_records(
            &run.structure_id,
            std::slice::from_ref(&run.source()),
            &plan,
            author,
            run.started,
            None,
        );
        let record = PassCommit {
            synchronizer: &run.id,
            tracker: &run.tracker_id,
            state: next_state.clone(),
            baselines: &new_baselines,
            forgotten: &forgotten,
            held: &held,
            conflicts: &conflicts,
            written: &written.issues,
        };
        pass.version = self.store.commit(&Commit {
            structure: &run.structure_id,
            base_version: stored.version,
            forest: Some(&forest),
            changes: &changes_made,
            jobs: if changes_made.is_empty() { &[] } else { &jobs },
            synchronizers: &[],
            baselines: &[],
            pass: Some(&record),
            read: None,
            settles: written.settles,
        })?;
        *state = next_state;
        pass.stopped = state.stopped.clone();
        pass.conflicts = conflicts;
        pass.held = held;
        Ok(())
    }
}

/// The issues a pass looked at or changed: their baselines are taken
/// anew (all of them after a full read).
fn settled_issues(
    full: bool,
    plan: &StructurePlan,
    forest: &Forest,
    changes: &Changes,
    baselines: &HashMap<String, Sides>,
) -> BTreeSet<String> {
    let mut settled: BTreeSet<String> = changes
        .tracker
        .iter()
        .chain(changes.structure.keys())
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
    if full {
        settled.extend(baselines.keys().cloned());
        settled.extend(
            forest
                .walk()
                .into_iter()
                .filter_map(|(row, _)| forest.row(row)?.item.issue_key().map(str::to_owned)),
        );
    }
    settled
}

/// The settled issues' baselines, as they are now on each side (held
/// issues keep theirs), and the issues no longer in the structure, whose
/// baselines go.
fn next_baselines(
    run: &Run<'_>,
    settled: &BTreeSet<String>,
    forest: &Forest,
    baselines: &HashMap<String, Sides>,
    holds: &Holds,
    read: &Read,
    written: &Written,
) -> (Vec<Baseline>, Vec<String>) {
    let written: HashMap<&str, &crate::model::Issue> =
        written.issues.iter().map(|i| (i.key.as_str(), i)).collect();
    let tracker_parent = |key: &str| {
        written
            .get(key)
            .copied()
            .or_else(|| read.snapshot.get(key))
            .and_then(|i| i.parent.clone())
    };
    let mut new_baselines = Vec::new();
    let mut forgotten = Vec::new();
    for key in settled.iter().filter(|k| !holds.contains(k)) {
        match decide::row_parent(forest, key) {
            Some(row_parent) => new_baselines.push(Baseline {
                synchronizer: run.id.clone(),
                issue: key.clone(),
                row_parent,
                tracker_parent: tracker_parent(key),
            }),
            None if baselines.contains_key(key) => forgotten.push(key.clone()),
            None => {}
        }
    }
    (new_baselines, forgotten)
}

/// The issues a pass wrote, on either side: what the cycle guard compares.
fn written_by(plan: &StructurePlan) -> Vec<String> {
    plan.units
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
        .collect()
}

//! Step 6 of a pass: write the tracker, write-ahead (the engine's one
//! tracker write protocol, engine/writes.rs), and only if what it is about
//! to change did not change again since the refresh (else the next pass
//! decides anew).

use std::collections::{BTreeSet, HashSet};

use super::plan::PassPlan;
use super::read::Read;
use super::{Holds, Pass, Run};
use crate::engine::{Engine, EngineError, job_records};
use crate::model::{Direction, Issue, Snapshot};
use crate::plan::TrackerOp;
use crate::store::{HoldKind, IntendedChange, Release, Store, WriteIntent};
use crate::tracker::{Tracker, TrackerError};

/// The tracker after the pass's writes.
pub(super) struct Written {
    /// The issues written, as the writes left them: for the mirror, and
    /// with the read the rest of the tracker (the baselines' tracker side).
    pub issues: Vec<Issue>,
    /// The write-ahead record the commit settles.
    pub settles: Option<u64>,
    /// Who the tracker says the pass acts as: the journal's author.
    pub author: String,
}

impl<S: Store> Engine<S> {
    /// Writes `planned.writes`; an issue whose write fails is held (its
    /// operations leave `planned.writes`), the others are made. A failure
    /// of the whole batch records a failed job and is the pass's error.
    pub(super) async fn write_tracker(
        &mut self,
        run: &Run<'_>,
        read: &Read,
        planned: &mut PassPlan,
        holds: &mut Holds,
        pass: &mut Pass,
    ) -> Result<Written, EngineError> {
        // The tracker's account is the author of what the pass journals;
        // a pass with nothing to journal asks nothing of the tracker.
        let journals_nothing =
            planned.writes.is_empty() && planned.plan.units.iter().all(|u| u.is_empty());
        let identity = if journals_nothing {
            self.author.clone()
        } else {
            run.client
                .acting_as()
                .await
                .map_err(|e| run.tracker_error(e))?
                .unwrap_or_else(|| self.author.clone())
        };
        let mut written = Written {
            issues: Vec::new(),
            settles: None,
            author: format!("{} as {identity}", run.id),
        };
        if planned.writes.is_empty() {
            return Ok(written);
        }
        self.check_unchanged(run, read, &planned.writes, pass)
            .await?;
        let sources = [run.source()];
        let mut intended = planned.plan.clone();
        intended.units.push(run.writes_unit(&planned.writes));
        let intent = WriteIntent {
            id: 0,
            structure: run.structure_id.clone(),
            tracker: run.tracker_id.clone(),
            changes: vec![IntendedChange {
                cause: run.cause(run.spec.type_.as_str(), Direction::From),
                author: written.author.clone(),
                synchronizer: Some(run.id.clone()),
                ops: planned.writes.clone(),
            }],
            jobs: job_records(
                &run.structure_id,
                &sources,
                &intended,
                &written.author,
                run.started,
                None,
            ),
        };
        let outcome = self.write_ahead(run.client, &intent).await?;
        let (failures, untried) = match outcome.result {
            Ok(()) => (Vec::new(), 0),
            Err(TrackerError::Writes {
                failures, untried, ..
            }) => (failures, untried),
            Err(source) => {
                let error = format!("tracker {}: {source}", run.tracker_id);
                let jobs = job_records(
                    &run.structure_id,
                    &sources,
                    &intended,
                    &written.author,
                    run.started,
                    Some(&error),
                );
                self.settle_failed(run.client, &run.structure_id, &jobs, &source)
                    .await?;
                return Err(run.tracker_error(source));
            }
        };
        written.settles = Some(outcome.intent);
        let failed: HashSet<&str> = failures.iter().map(|f| f.issue.as_str()).collect();
        planned.writes.retain(|op| !failed.contains(op.issue()));
        // A refused write waits for a person; one never sent (the key was
        // refused part-way) is tried again by the next pass.
        let (refused, not_sent) = failures.split_at(failures.len() - untried);
        for (failure, release) in refused
            .iter()
            .map(|f| (f, None))
            .chain(not_sent.iter().map(|f| (f, Some(Release::Retry))))
        {
            holds.hold(
                &failure.issue,
                HoldKind::Error,
                &failure.operation,
                failure.message.clone(),
            );
            holds.release(&failure.issue, release);
        }
        // Only the written issues are copied, unless a rank write needs the
        // whole order to place them.
        let ranks = planned
            .writes
            .iter()
            .any(|op| matches!(op, TrackerOp::Rank { .. }));
        let mut after = if ranks {
            read.snapshot.clone()
        } else {
            let keys: BTreeSet<&str> = planned.writes.iter().map(TrackerOp::issue).collect();
            Snapshot::new(
                keys.into_iter()
                    .filter_map(|k| read.snapshot.get(k).cloned()),
            )
        };
        let mut touched = BTreeSet::new();
        for op in &planned.writes {
            touched.extend(op.apply(&mut after));
        }
        written.issues = touched
            .iter()
            .filter_map(|k| after.get(k).cloned())
            .collect();
        Ok(written)
    }

    /// A tracker that does not refuse stale writes itself is read again
    /// before writing: an issue about to be written that changed since the
    /// refresh makes the pass stop, nothing written.
    async fn check_unchanged(
        &self,
        run: &Run<'_>,
        read: &Read,
        writes: &[TrackerOp],
        pass: &mut Pass,
    ) -> Result<(), EngineError> {
        if run.client.capabilities().refuses_stale_writes {
            return Ok(());
        }
        let Some(from) = read.mirror.watermark.read_from() else {
            return Ok(());
        };
        let again = run
            .client
            .changed_since(from)
            .await
            .map_err(|e| run.tracker_error(e))?;
        pass.issues_read += again.len();
        let targets: HashSet<&str> = writes.iter().map(TrackerOp::issue).collect();
        match again
            .iter()
            .find(|i| targets.contains(i.key.as_str()) && read.snapshot.get(&i.key) != Some(i))
        {
            Some(issue) => Err(EngineError::TrackerChanged {
                tracker: format!("{} ({} changed during the pass)", run.tracker_id, issue.key),
            }),
            None => Ok(()),
        }
    }
}

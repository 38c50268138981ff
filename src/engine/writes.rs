//! The one way the engine writes a tracker, for applies, resyncs and
//! incremental passes alike: the intended writes are recorded first
//! (write-ahead), then made, then journaled by the commit that removes the
//! record. A run that stops in between (a crash, a kill, a tracker that went
//! away) leaves the record behind; the next run on the structure reads the
//! tracker, journals the writes that were made (so `history` shows them and
//! `undo` can reverse them) and records the job as interrupted.

use super::{Engine, EngineError};
use crate::failpoint;
use crate::plan::TrackerOp;
use crate::store::{Change, Commit, JobState, Store, WriteIntent};
use crate::tracker::{AnyTracker, Tracker, TrackerError};

/// A tracker write made under a write-ahead record.
pub(super) struct Written {
    /// The record, for [`Commit::settles`].
    pub intent: u64,
    /// The tracker's answer: per-issue failures, or the whole write failed.
    pub result: Result<(), TrackerError>,
}

impl<S: Store> Engine<S> {
    /// Records `intent`, then makes its writes.
    pub(super) async fn write_ahead(
        &mut self,
        client: &AnyTracker,
        intent: &WriteIntent,
    ) -> Result<Written, EngineError> {
        let id = self.store.intend_writes(intent)?;
        failpoint::reached("tracker-write-intended");
        let ops: Vec<TrackerOp> = intent
            .changes
            .iter()
            .flat_map(|c| c.ops.iter().cloned())
            .collect();
        let result = client.apply(&ops).await;
        failpoint::reached("tracker-written");
        Ok(Written { intent: id, result })
    }

    /// After a write failed as a whole: journals what it made if the
    /// tracker still answers, with the job failed for `error`; else (or
    /// when the tracker could not be reached at all, so that a read would
    /// only wait again) records the failed job and leaves the record to the
    /// next run.
    pub(super) async fn settle_failed(
        &mut self,
        client: &AnyTracker,
        structure: &str,
        jobs: &[crate::store::JobRecord],
        source: &TrackerError,
    ) -> Result<(), EngineError> {
        let error = jobs
            .first()
            .and_then(|j| j.error.clone())
            .unwrap_or_else(|| source.to_string());
        let unreachable = matches!(source, TrackerError::Remote { status: None, .. });
        if unreachable {
            self.store.record_jobs(jobs)?;
            return Ok(());
        }
        if let Err(e) = self.settle(client, structure, Some(&error)).await {
            tracing::warn!(%structure, error = %e, "cannot read back what the failed run wrote; the next run journals it");
            self.store.record_jobs(jobs)?;
        }
        Ok(())
    }

    /// Settles the runs on `structure` that stopped between writing its
    /// tracker and recording it: reads the tracker and journals, per run,
    /// the writes it holds. `failure` is the error of a run that stopped
    /// just now; other runs were interrupted.
    pub(super) async fn settle(
        &mut self,
        client: &AnyTracker,
        structure: &str,
        failure: Option<&str>,
    ) -> Result<(), EngineError> {
        let intents = self.store.interrupted_writes(structure)?;
        if intents.is_empty() {
            return Ok(());
        }
        let now = client
            .snapshot()
            .await
            .map_err(|source| EngineError::Tracker {
                tracker: intents[0].tracker.clone(),
                source,
            })?;
        for intent in intents {
            let made: Vec<(usize, Vec<TrackerOp>)> = intent
                .changes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let ops = c.ops.iter().filter(|op| op.in_effect(&now)).cloned();
                    (i, ops.collect())
                })
                .collect();
            let total: usize = intent.changes.iter().map(|c| c.ops.len()).sum();
            let written: usize = made.iter().map(|(_, ops)| ops.len()).sum();
            let changes: Vec<Change> = made
                .iter()
                .filter(|(_, ops)| !ops.is_empty())
                .map(|(i, ops)| {
                    let change = &intent.changes[*i];
                    Change {
                        cause: change.cause.clone(),
                        author: change.author.clone(),
                        ops: &[],
                        tracker_ops: ops,
                        synchronizer: change.synchronizer.as_deref(),
                    }
                })
                .collect();
            let finished = jiff::Timestamp::now();
            let jobs: Vec<_> = if written == 0 && failure.is_none() {
                // Stopped before its first write: nothing happened to record.
                Vec::new()
            } else {
                intent
                    .jobs
                    .iter()
                    .map(|job| crate::store::JobRecord {
                        state: match failure {
                            Some(_) => JobState::Failed,
                            None => JobState::Interrupted,
                        },
                        summary: format!(
                            "{written} of {total} tracker writes made; planned {}",
                            job.summary.trim_start_matches("planned ")
                        ),
                        error: Some(failure.map_or_else(
                            || "the run stopped after it began writing the tracker and before it recorded what it wrote (a crash or a kill); a later run found these writes and journaled them".to_owned(),
                            str::to_owned,
                        )),
                        finished,
                        ..job.clone()
                    })
                    .collect()
            };
            let stored = self.store.structure(structure)?;
            self.store.commit(&Commit {
                structure,
                base_version: stored.version,
                forest: Some(&stored.forest),
                changes: &changes,
                jobs: &jobs,
                synchronizers: &[],
                baselines: &[],
                pass: None,
                read: None,
                settles: Some(intent.id),
            })?;
            tracing::warn!(%structure, written, total, "settled a run that stopped while writing the tracker");
        }
        Ok(())
    }
}

//! How far a run has come, for a person watching it (the web UI's run
//! page): tracker writes made, as each is made, and rows committed, of
//! what its plan holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{Applied, Approval, Engine, EngineError, Run};
use crate::spec::Catalog;
use crate::store::Store;
use crate::tracker::counting_made;

/// Counters a run updates and anyone may read while it runs.
#[derive(Debug, Default)]
pub struct RunProgress {
    tracker_total: AtomicU64,
    /// Shared with the write batches (`counting_made`).
    tracker_done: Arc<AtomicU64>,
    rows_total: AtomicU64,
    rows_done: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub tracker_done: u64,
    pub tracker_total: u64,
    pub rows_done: u64,
    pub rows_total: u64,
}

impl RunProgress {
    pub fn counts(&self) -> Counts {
        Counts {
            tracker_done: self.tracker_done.load(Ordering::Relaxed),
            tracker_total: self.tracker_total.load(Ordering::Relaxed),
            rows_done: self.rows_done.load(Ordering::Relaxed),
            rows_total: self.rows_total.load(Ordering::Relaxed),
        }
    }

    /// A structure's rows are committed (one transaction: all at once).
    pub(super) fn rows_committed(&self, rows: usize) {
        self.rows_done.fetch_add(rows as u64, Ordering::Relaxed);
    }
}

impl<S: Store> Engine<S> {
    /// [`Engine::apply`], reporting to `progress` as it goes.
    pub async fn apply_observed(
        &mut self,
        catalog: &Catalog,
        run: Run,
        approval: &Approval,
        progress: &Arc<RunProgress>,
    ) -> Result<Applied, EngineError> {
        let units = run.set.structures.iter().flat_map(|p| &p.units);
        let (tracker, rows) = units.fold((0, 0), |(t, r), u| {
            (t + u.tracker_ops.len(), r + u.structure_ops.len())
        });
        progress
            .tracker_total
            .store(tracker as u64, Ordering::Relaxed);
        progress.rows_total.store(rows as u64, Ordering::Relaxed);
        self.progress = Some(progress.clone());
        let made = progress.tracker_done.clone();
        let applied = counting_made(made, self.apply(catalog, run, approval)).await;
        self.progress = None;
        applied
    }
}

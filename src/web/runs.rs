//! The runs the UI starts (an approved plan, an undo): they go on in the
//! background, so that the person sees their progress on the run page
//! (tracker writes made and rows committed, of the plan's) until they end.

use std::sync::{Arc, Mutex};

use super::Ui;
use crate::engine::{Approval, Engine, Run, RunProgress, off_the_runtime};
use crate::spec::Catalog;
use crate::store::SqliteStore;

/// One run the UI started.
pub(super) struct UiRun {
    pub id: usize,
    pub title: String,
    pub author: String,
    pub started: jiff::Timestamp,
    pub progress: Arc<RunProgress>,
    outcome: Mutex<Option<Outcome>>,
}

#[derive(Clone)]
pub(super) enum Outcome {
    /// Each structure and its new version.
    Applied(Vec<(String, u64)>),
    Failed(String),
}

impl UiRun {
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.lock().expect("not poisoned").clone()
    }
}

impl Ui {
    /// Applies `run` (approved as `approval`) in the background; returns
    /// the run's number, for its page.
    pub(super) fn start(
        &self,
        title: String,
        author: &str,
        mut engine: Engine<SqliteStore>,
        catalog: Arc<Catalog>,
        run: Run,
        approval: Approval,
    ) -> usize {
        let mut runs = self.runs.lock().expect("not poisoned");
        let record = Arc::new(UiRun {
            id: runs.len() + 1,
            title,
            author: author.to_owned(),
            started: jiff::Timestamp::now(),
            progress: Arc::default(),
            outcome: Mutex::default(),
        });
        runs.push(record.clone());
        let id = record.id;
        tokio::spawn(async move {
            let outcome = off_the_runtime(async {
                let applied = engine
                    .apply_observed(&catalog, run, &approval, &record.progress)
                    .await?;
                engine.remember(&catalog)?;
                Ok::<_, crate::engine::EngineError>(applied)
            });
            let outcome = match outcome {
                Ok(applied) => Outcome::Applied(applied.structures),
                Err(error) => Outcome::Failed(error.to_string()),
            };
            tracing::info!(run = record.id, title = %record.title, "UI run ended");
            *record.outcome.lock().expect("not poisoned") = Some(outcome);
        });
        id
    }

    pub(super) fn run(&self, id: usize) -> Option<Arc<UiRun>> {
        let runs = self.runs.lock().expect("not poisoned");
        runs.get(id.wrapping_sub(1)).cloned()
    }

    /// The runs that have not ended yet.
    pub(super) fn going(&self) -> Vec<Arc<UiRun>> {
        let runs = self.runs.lock().expect("not poisoned");
        runs.iter()
            .filter(|r| r.outcome().is_none())
            .cloned()
            .collect()
    }
}

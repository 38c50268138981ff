//! Every synchronizer at a glance, in the words of its cluster status
//! (`SynchronizerPhase`): what the web UI's overview shows, as Backbone's
//! synchronization overview does.

use serde::Serialize;

use super::{EngineError, primary_direction};
use crate::model::Direction;
use crate::spec::{Catalog, SynchronizerPhase};
use crate::store::{JobState, Store};

/// One synchronizer as the store last saw it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOverview {
    pub id: String,
    pub namespace: String,
    pub structure: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub directions: Vec<Direction>,
    pub enabled: bool,
    /// Handshake (never run), Running, AwaitingApproval (a destructive
    /// plan held), Stopped (declared `enabled: false`), RestartRequired
    /// (stopped by the cycle guard) or Error (its last run failed).
    pub phase: SynchronizerPhase,
    /// Its last job or incremental pass, whichever is later.
    pub last_sync: Option<jiff::Timestamp>,
    /// Issues whose changes wait for a retry or a person.
    pub held: usize,
    /// Why it needs a person, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The hash of the destructive plan its passes wait on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_plan: Option<String>,
}

/// Every declared synchronizer, sorted by id.
pub fn overview<S: Store>(store: &S, catalog: &Catalog) -> Result<Vec<SyncOverview>, EngineError> {
    let jobs = store.last_jobs()?;
    let mut rows = Vec::new();
    for sync in &catalog.synchronizers {
        let id = sync.id();
        let spec = &sync.resource.spec;
        let state = store.sync_state(&id)?;
        let held = store.held_issues(&id)?.len();
        let job = jobs
            .iter()
            .find(|j| j.synchronizer.as_deref() == Some(id.as_str()));
        let last_sync = job.map(|j| j.finished).max(state.last_pass);
        let failed = job.filter(|j| {
            j.state == JobState::Failed && state.last_pass.is_none_or(|p| p < j.finished)
        });
        let held_plan = state.held_plan.as_ref().map(|p| p.hash.clone());
        let (phase, problem) = if let Some(why) = &state.stopped {
            (SynchronizerPhase::RestartRequired, Some(why.clone()))
        } else if !spec.enabled {
            (SynchronizerPhase::Stopped, None)
        } else if let Some(job) = failed {
            (SynchronizerPhase::Error, job.error.clone())
        } else if let Some(hash) = &held_plan {
            let problem = format!("destructive plan {hash} held for approval");
            (SynchronizerPhase::AwaitingApproval, Some(problem))
        } else if last_sync.is_none() {
            (SynchronizerPhase::Handshake, None)
        } else {
            (SynchronizerPhase::Running, None)
        };
        let directions = if spec.directions.is_empty() {
            vec![primary_direction(spec)]
        } else {
            spec.directions.iter().map(|&d| d.into()).collect()
        };
        rows.push(SyncOverview {
            namespace: id
                .split_once('/')
                .map_or("default", |(ns, _)| ns)
                .to_owned(),
            structure: catalog
                .resolved_synchronizer(&id)
                .map(|r| r.structure.clone())
                .unwrap_or_default(),
            kind: spec.type_.as_str(),
            directions,
            enabled: spec.enabled,
            phase,
            last_sync,
            held,
            problem,
            held_plan,
            id,
        });
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

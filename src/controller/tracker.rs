//! Trackers: a handshake on each reconcile — who the key acts as, and
//! what the tracker can tell. Phases: Handshake → Connected |
//! Unauthorized | Unreachable.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;

use super::conditions::{Health, State};
use super::context::{Context, Error};
use crate::engine::{EngineError, check_tracker};
use crate::spec::{Tracker, TrackerPhase as Phase, TrackerStatus, TrackerType, resource_id};
use crate::tracker::TrackerError;

const CONNECTED_REFRESH: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(60);

#[tracing::instrument(skip_all, fields(kind = "Tracker", object = %resource_id(&*tracker)))]
pub async fn reconcile(tracker: Arc<Tracker>, ctx: Arc<Context>) -> Result<Action, Error> {
    let id = resource_id(&*tracker);
    let (catalog, errors) = ctx.catalog();
    let problems = Context::problems(&errors, &[format!("Tracker {id}")]);
    let mut next = TrackerStatus {
        observed_generation: tracker.metadata.generation,
        capabilities: capabilities(tracker.spec.type_),
        ..TrackerStatus::default()
    };
    let (health, action) = if !problems.is_empty() {
        next.phase = Some(Phase::Handshake);
        (
            Health::new(State::Stalled, "InvalidSpec", problems.join("; ")),
            Action::requeue(RETRY),
        )
    } else {
        // No engine lock: a handshake need not wait for a run.
        let credentials = ctx.credentials(&catalog, &id).await?;
        match check_tracker(&catalog, &id, credentials, "trellis-controller", &[]).await {
            Ok((identity, _)) => {
                next.phase = Some(Phase::Connected);
                next.identity = Some(identity.clone());
                (
                    Health::new(State::Ready, "Connected", format!("acting as {identity}")),
                    Action::requeue(CONNECTED_REFRESH),
                )
            }
            Err(e) => {
                let phase = phase_of(&e);
                next.phase = Some(phase);
                ctx.event(&*tracker, true, phase.as_str(), "Handshake", e.to_string())
                    .await;
                (
                    Health::new(State::Stalled, phase.as_str(), e.to_string()),
                    Action::requeue(RETRY),
                )
            }
        }
    };
    ctx.finish(&*tracker, next, health, action).await
}

/// A refused or missing key is `Unauthorized`; anything else `Unreachable`.
fn phase_of(error: &EngineError) -> Phase {
    match error {
        EngineError::Credentials { .. } => Phase::Unauthorized,
        EngineError::Tracker {
            source:
                TrackerError::Remote {
                    status: Some(401 | 403),
                    ..
                },
            ..
        } => Phase::Unauthorized,
        _ => Phase::Unreachable,
    }
}

fn capabilities(kind: TrackerType) -> Vec<String> {
    let names: &[&str] = match kind {
        TrackerType::Local => &["parent", "links", "rank", "query"],
        TrackerType::Redmine => &["parent", "relations", "savedQueries", "filterParameters"],
        TrackerType::Jira => &["parent", "epic", "links", "rank", "transitions", "jql"],
    };
    names.iter().map(|n| (*n).to_owned()).collect()
}

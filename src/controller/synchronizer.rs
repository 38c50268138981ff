//! Synchronizers: while `spec.enabled`, each runs in its first direction
//! every interval (a full plan and apply today; incremental sync builds on
//! this). A destructive plan is not applied by itself: the status names the
//! hash, and a Resync with `approvedPlan` runs it. `enabled: false` stops a
//! synchronizer after its in-flight run; deleting one waits for that run
//! too (a finalizer), so a sync never outlives its declaration. Phases:
//! Handshake (first run) → Running | Stopped | Error | RestartRequired
//! (synchronizers undoing each other: stopped until a spec changes).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::conditions::{Health, State};
use super::context::{Chain, Context, Error};
use crate::engine::{Approval, EngineError, Scope, primary_direction};
use crate::plan::PlanError;
use crate::spec::{Catalog, IssueError, Synchronizer, SynchronizerStatus, resource_id};
use crate::tracker::TrackerError;

pub const FINALIZER: &str = "trellis.dev/stop-synchronizer";
/// The pause between runs (a `schedule.interval` comes with incremental sync).
const INTERVAL: Duration = Duration::from_secs(30);
const BUSY_RETRY: Duration = Duration::from_secs(5);

pub async fn reconcile(sync: Arc<Synchronizer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api = ctx.api_of(&*sync);
    finalizer(&api, FINALIZER, sync, |event| async {
        match event {
            Finalizer::Apply(sync) => run(sync, &ctx).await,
            Finalizer::Cleanup(sync) => stop(sync, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn structure_of(sync: &Synchronizer) -> String {
    Catalog::referenced(sync, &sync.spec.structure_ref.name)
}

async fn run(sync: Arc<Synchronizer>, ctx: &Context) -> Result<Action, Error> {
    let id = resource_id(&*sync);
    let structure = structure_of(&sync);
    let mut next = SynchronizerStatus {
        observed_generation: sync.metadata.generation,
        ..sync.status.clone().unwrap_or_default()
    };
    let (catalog, errors) = ctx.catalog();
    let chain = Chain::of(&catalog, id.clone());
    let problems = Context::problems(&errors, &chain.objects);
    if !problems.is_empty() || catalog.synchronizer(&id).is_none() {
        next.phase = Some("Error".into());
        let health = Health::new(State::Stalled, "InvalidSpec", problems.join("; "));
        // Objects applied together arrive in any order: look again later.
        return finish(ctx, &sync, next, health, Action::requeue(INTERVAL)).await;
    }
    if !sync.spec.enabled {
        next.phase = Some("Stopped".into());
        let health = Health::new(State::Idle, "Stopped", "spec.enabled is false");
        return finish(ctx, &sync, next, health, Action::await_change()).await;
    }
    // Status writes wake this reconcile too: run only when the interval
    // has passed or the spec changed since the last run.
    if let Some(wait) = not_due(&sync) {
        return Ok(Action::requeue(wait));
    }
    let Some(_claim) = ctx.claim(&structure) else {
        return Ok(Action::requeue(BUSY_RETRY));
    };
    if next.phase.is_none() {
        // Its first run: connecting to the tracker and reading it.
        next.phase = Some("Handshake".into());
        let health = Health::new(
            State::Reconciling,
            "Handshake",
            "first run: reading the tracker",
        );
        finish(ctx, &sync, next.clone(), health, Action::await_change()).await?;
    }
    let scope = Scope::Resync {
        synchronizer: id.clone(),
        direction: primary_direction(&sync.spec),
        resync: None,
    };
    let credentials = ctx.credentials(&catalog, &chain.tracker).await?;
    let mut engine = ctx.engine().await;
    engine.set_credentials(credentials);
    let outcome = match engine.plan(&catalog, &scope).await {
        // Leadership passed on while planning: the new leader runs it.
        Ok(_) if !ctx.leading() => return Ok(Action::requeue(BUSY_RETRY)),
        Ok(run) => {
            let summary = run.set.summary;
            engine
                .apply(&catalog, run, &Approval::None)
                .await
                .map(|_| summary)
        }
        Err(e) => Err(e),
    };
    drop(engine);
    let now = jiff::Timestamp::now().to_string();
    next.last_attempt = Some(now.clone());
    let (health, action) = match outcome {
        Ok(summary) => {
            ctx.metrics.count_operations(&summary);
            next.phase = Some("Running".into());
            next.last_sync = Some(now);
            next.errors.clear();
            let message = format!("last run: {summary}");
            (
                Health::new(State::Ready, "Synced", message),
                Action::requeue(INTERVAL),
            )
        }
        Err(EngineError::NeedsApproval { hash, summary }) => {
            next.phase = Some("Error".into());
            let message = format!(
                "the next run is destructive ({summary}) and is not applied by itself: review it with `trellis plan`, then create a Resync of this synchronizer with approvedPlan: {hash}"
            );
            ctx.event(&*sync, true, "NeedsApproval", "Sync", message.clone())
                .await;
            (
                Health::new(State::Stalled, "NeedsApproval", message),
                Action::requeue(INTERVAL),
            )
        }
        // The cycle guard: synchronizers of this structure keep undoing each
        // other. Running again changes nothing until a person changes one.
        Err(
            e @ EngineError::Plan {
                source: PlanError::Fight(_),
                ..
            },
        ) => {
            next.phase = Some("RestartRequired".into());
            ctx.event(&*sync, true, "RestartRequired", "Sync", e.to_string())
                .await;
            (
                Health::new(State::Stalled, "RestartRequired", e.to_string()),
                Action::await_change(),
            )
        }
        Err(e) => {
            next.phase = Some("Error".into());
            next.errors = issue_errors(&e, &next.errors, &now);
            ctx.event(&*sync, true, "SyncFailed", "Sync", e.to_string())
                .await;
            (
                Health::new(State::Stalled, "SyncFailed", e.to_string()),
                Action::requeue(INTERVAL),
            )
        }
    };
    next.error_count = Some(next.errors.len() as i64);
    finish(ctx, &sync, next, health, action).await
}

/// How long until the next run is due, if it is not due yet.
fn not_due(sync: &Synchronizer) -> Option<Duration> {
    let status = sync.status.as_ref()?;
    if status.observed_generation != sync.metadata.generation {
        return None;
    }
    let last: jiff::Timestamp = status.last_attempt.as_deref()?.parse().ok()?;
    let since = jiff::Timestamp::now().duration_since(last);
    let left = jiff::SignedDuration::try_from(INTERVAL).ok()? - since;
    Duration::try_from(left).ok().filter(|d| !d.is_zero())
}

/// Per-issue errors from failed writes, keeping when each was first seen
/// and counting attempts.
fn issue_errors(error: &EngineError, before: &[IssueError], now: &str) -> Vec<IssueError> {
    let EngineError::Tracker {
        source: TrackerError::Writes { failures, .. },
        ..
    } = error
    else {
        return Vec::new();
    };
    failures
        .iter()
        .map(|f| {
            let seen = before
                .iter()
                .find(|b| b.issue == f.issue && b.operation == f.operation);
            IssueError {
                issue: f.issue.clone(),
                operation: f.operation.clone(),
                message: f.message.clone(),
                since: seen.map_or_else(|| now.to_owned(), |b| b.since.clone()),
                attempts: seen.map_or(1, |b| b.attempts + 1),
            }
        })
        .collect()
}

/// Deletion: waits for the in-flight run of its structure, then lets go.
async fn stop(sync: Arc<Synchronizer>, ctx: &Context) -> Result<Action, Error> {
    let structure = structure_of(&sync);
    loop {
        if let Some(_claim) = ctx.claim(&structure) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ctx.event(
        &*sync,
        false,
        "Stopped",
        "Delete",
        "stopped before deletion".into(),
    )
    .await;
    Ok(Action::await_change())
}

async fn finish(
    ctx: &Context,
    sync: &Synchronizer,
    mut next: SynchronizerStatus,
    health: Health,
    action: Action,
) -> Result<Action, Error> {
    let previous = sync.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    next.conditions = health.conditions(previous, sync.metadata.generation);
    ctx.patch_status(sync, &next).await?;
    Ok(action)
}

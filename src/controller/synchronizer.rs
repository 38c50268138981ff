//! Synchronizers: while `spec.enabled`, each makes an incremental pass on
//! its schedule (`spec.schedule`: interval, fullResyncAfter, window), the
//! same pass as `trellis sync`. Per-issue failures and manual conflicts are
//! listed in the status and hold only their issue. `enabled: false` stops a
//! synchronizer after its in-flight pass; deleting one waits for that pass
//! too (a finalizer), so a sync never outlives its declaration. Phases:
//! Handshake (first pass) → Running | AwaitingApproval (a destructive plan
//! held under `safety.destructivePasses: hold` until `spec.approvedPlan`
//! names its hash) | Stopped | Error | RestartRequired
//! (the cycle guard: it kept undoing another writer; stopped until its spec
//! changes or `trellis troubleshoot --restart`).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::conditions::{Health, State};
use super::context::{Chain, Context, Error};
use crate::engine::Pass;
use crate::engine::off_the_runtime;
use crate::plan::{Schedule, visible};
use crate::spec::{
    IssueError, PlanStatus, Synchronizer, SynchronizerPhase as Phase, SynchronizerStatus,
    resource_id,
};

pub const FINALIZER: &str = "trellis.dev/stop-synchronizer";
/// When to look again at a synchronizer whose declaration is wrong.
const INTERVAL: Duration = Duration::from_secs(30);
/// When to try again while another run holds the structure: well inside the
/// shortest interval (5 s), so that synchronizers of one structure that come
/// due together do not lock step, one always finding the other's pass.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// When a pass an event asked for tries again while another run of its
/// structure finishes: passes take milliseconds on a small structure, and
/// the edit should show within a second.
const EVENT_RETRY: Duration = Duration::from_millis(50);

#[tracing::instrument(skip_all, fields(kind = "Synchronizer", object = %resource_id(&*sync)))]
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
    sync.structure_id()
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
    let resolved = match catalog.resolved_synchronizer(&id) {
        Some(resolved) if problems.is_empty() => resolved,
        _ => {
            next.phase = Some(Phase::Error);
            let health = Health::new(State::Stalled, "InvalidSpec", problems.join("; "));
            // Objects applied together arrive in any order: look again later.
            return ctx
                .finish(&*sync, next, health, Action::requeue(INTERVAL))
                .await;
        }
    };
    if !sync.spec.enabled {
        next.phase = Some(Phase::Stopped);
        let health = Health::new(State::Idle, "Stopped", "spec.enabled is false");
        return ctx
            .finish(&*sync, next, health, Action::await_change())
            .await;
    }
    // Status writes wake this reconcile too: run only when the interval
    // has passed, the spec changed since the last run, or an event asked
    // (inside the schedule's window: outside, the event is let go).
    if let Some(wait) = not_due(&sync, &resolved.schedule) {
        let asked = ctx.due.is_marked(&id);
        if !(asked && resolved.schedule.open(&id, jiff::Timestamp::now())) {
            if asked {
                ctx.due.take(&id);
            }
            return Ok(Action::requeue(wait));
        }
    }
    let Some(_claim) = ctx.claim(&catalog, &structure) else {
        tracing::debug!(%structure, "another run holds the structure; trying again");
        // An event's pass is the next in line: it looks again soon.
        let retry = if ctx.due.is_marked(&id) {
            EVENT_RETRY
        } else {
            BUSY_RETRY
        };
        return Ok(Action::requeue(retry));
    };
    if next.phase.is_none() {
        // Its first run: connecting to the tracker and reading it.
        next.phase = Some(Phase::Handshake);
        let health = Health::new(
            State::Reconciling,
            "Handshake",
            "first run: reading the tracker",
        );
        ctx.finish(&*sync, next.clone(), health, Action::await_change())
            .await?;
    }
    let credentials = ctx.credentials(&catalog, &chain.tracker).await?;
    let mut engine = ctx.engine().await;
    engine.set_credentials(credentials);
    // A changed spec is what a person does about a stopped synchronizer.
    let changed =
        sync.status.as_ref().and_then(|s| s.observed_generation) != sync.metadata.generation;
    if changed {
        engine.restart_if_stopped(&id)?;
    }
    let asked = ctx.due.take(&id);
    if let Some(since) = asked {
        let after = since.elapsed();
        tracing::info!(
            after_ms = after.as_millis() as u64,
            "passing at once: an event asked for it"
        );
        ctx.metrics.event_delay.observe(after.as_secs_f64());
    }
    let started = jiff::Timestamp::now();
    let outcome = off_the_runtime(engine.sync_pass(&catalog, &id, started, None));
    drop(engine);
    let schedule = &resolved.schedule;
    let now = jiff::Timestamp::now();
    next.last_attempt = Some(started.to_string());
    let (health, action) = match outcome {
        Ok(Pass {
            waiting: Some(_), ..
        }) => {
            // An event's pass still runs once the structure is free.
            if asked.is_some() {
                ctx.due.mark([&id]);
            }
            return Ok(Action::requeue(BUSY_RETRY));
        }
        Ok(Pass {
            stopped: Some(reason),
            ..
        }) => {
            next.phase = Some(Phase::RestartRequired);
            ctx.event(&*sync, true, "RestartRequired", "Sync", reason.clone())
                .await;
            (
                Health::new(State::Stalled, "RestartRequired", reason),
                Action::await_change(),
            )
        }
        Ok(Pass {
            held_plan: Some(plan),
            ..
        }) => {
            next.phase = Some(Phase::AwaitingApproval);
            let stale = match sync.spec.approved_plan.as_deref() {
                Some(approved) => format!(" (spec.approvedPlan {approved} is not this plan)"),
                None => String::new(),
            };
            let message = format!(
                "a pass's plan is destructive ({}); nothing of it was carried out: set spec.approvedPlan to {} to carry it out{stale}",
                plan.summary, plan.hash
            );
            let newly_held = next.held_plan.as_ref().map(|p| &p.hash) != Some(&plan.hash);
            if newly_held {
                ctx.event(&*sync, false, "AwaitingApproval", "Sync", message.clone())
                    .await;
            }
            next.held_plan = Some(PlanStatus {
                hash: plan.hash,
                summary: plan.summary,
                destructive: true,
                diff_excerpt: Some(excerpt(&plan.destructive)),
            });
            (
                Health::new(State::Stalled, "AwaitingApproval", message),
                Action::requeue(until(schedule.next_pass(&id, Some(started), now), now)),
            )
        }
        Ok(pass) => {
            next.held_plan = None;
            ctx.metrics.count_operations(&pass.summary);
            ctx.structure_changed(&structure);
            let rows = pass.summary.add + pass.summary.move_ + pass.summary.remove;
            if rows > 0 {
                ctx.make_due(&crate::trigger::due_after_pass(&catalog, &structure, &id));
            }
            next.phase = Some(Phase::Running);
            next.last_sync = Some(started.to_string());
            next.errors = pass.held.iter().map(issue_error).collect();
            let message = format!(
                "last pass ({}): {} issue(s) read, {}{}",
                if pass.full { "full" } else { "incremental" },
                pass.issues_read,
                pass.summary,
                if next.errors.is_empty() {
                    String::new()
                } else {
                    format!("; {} issue(s) held", next.errors.len())
                }
            );
            (
                Health::new(State::Ready, "Synced", message),
                Action::requeue(until(schedule.next_pass(&id, Some(started), now), now)),
            )
        }
        Err(e) => {
            next.phase = Some(Phase::Error);
            ctx.event(&*sync, true, "SyncFailed", "Sync", e.to_string())
                .await;
            (
                Health::new(State::Stalled, "SyncFailed", e.to_string()),
                Action::requeue(until(schedule.next_pass(&id, Some(started), now), now)),
            )
        }
    };
    next.error_count = Some(next.errors.len() as i64);
    ctx.finish(&*sync, next, health, action).await
}

fn until(at: jiff::Timestamp, now: jiff::Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(BUSY_RETRY)
}

/// How long until the next pass is due, if it is not due yet.
fn not_due(sync: &Synchronizer, schedule: &Schedule) -> Option<Duration> {
    let status = sync.status.as_ref()?;
    if status.observed_generation != sync.metadata.generation {
        return None;
    }
    let last: jiff::Timestamp = status.last_attempt.as_deref()?.parse().ok()?;
    let id = resource_id(sync);
    let now = jiff::Timestamp::now();
    let due = schedule.next_pass(&id, Some(last), now);
    Some(until(due, now)).filter(|d| !d.is_zero())
}

/// The first lines of a held plan's destructive operations, for the status.
fn excerpt(destructive: &[String]) -> String {
    const LINES: usize = 20;
    let mut lines: Vec<String> = destructive.iter().take(LINES).map(|l| visible(l)).collect();
    if destructive.len() > LINES {
        lines.push(format!("... and {} more", destructive.len() - LINES));
    }
    lines.join("\n")
}

/// A held issue as the status lists it.
fn issue_error(held: &crate::store::HeldIssue) -> IssueError {
    IssueError {
        issue: held.issue.clone(),
        operation: held.operation.clone(),
        message: held.message.clone(),
        since: held.first_seen.to_string(),
        attempts: held.attempts as i64,
    }
}

/// Deletion: waits for the in-flight run of its structure, then lets go.
async fn stop(sync: Arc<Synchronizer>, ctx: &Context) -> Result<Action, Error> {
    let structure = structure_of(&sync);
    let (catalog, _) = ctx.catalog();
    loop {
        if let Some(_claim) = ctx.claim(&catalog, &structure) {
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

//! Resyncs: one-time runs, each planned on its own so that its plan hash
//! is what `spec.approvedPlan` approves — the same hash `trellis plan`
//! prints for it. Phases: Pending → Waiting (the structure is busy) →
//! Planning → AwaitingApproval (destructive, or approved with another
//! hash) → Running → Succeeded | Failed.
//!
//! What can pass by itself is retried, not failed: a declaration referring
//! to one not applied yet, an unreachable tracker, a tracker that changed
//! between planning and writing, a plan the mass-removal guard holds back.
//! A Resync is done once its job is in the store, keyed by the object's uid,
//! so it never runs twice, even across restarts, and a new object of the
//! same name runs anew.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions::{Health, State};
use super::context::{Chain, Context, Error};
use crate::engine::off_the_runtime;
use crate::engine::{Approval, Credentials, EngineError, RunProgress, Scope};
use crate::plan::Summary;
use crate::spec::{
    ObjectId, PlanStatus, REQUESTED_BY_ANNOTATION, Resync, ResyncPhase as Phase, ResyncStatus,
    STRUCTURE_LABEL, Synchronizer, resource_id,
};
use crate::store::Store;
use crate::tracker::TrackerError;

/// How often a held-back Resync plans again (the tracker may have changed,
/// and with it the hash to approve).
const REPLAN: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(5);
const DIFF_EXCERPT_LINES: usize = 40;
/// How often a running Resync's `status.done` follows its progress (a
/// status write only when it moved).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[tracing::instrument(skip_all, fields(kind = "Resync", object = %resource_id(&*resync)))]
pub async fn reconcile(resync: Arc<Resync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let status = resync.status.clone().unwrap_or_default();
    let phase = status.phase;
    if matches!(phase, Some(Phase::Succeeded | Phase::Failed)) {
        return Ok(Action::await_change());
    }
    let id = resource_id(&*resync);
    let job = format!("{id}#{}", resync.uid().unwrap_or_default());
    let mut next = ResyncStatus {
        observed_generation: resync.metadata.generation,
        ..status.clone()
    };
    let (catalog, errors) = ctx.catalog();
    let mut chain = Chain::of(&catalog, resync.synchronizer_id());
    chain.objects.push(format!("Resync {id}"));
    let problems = Context::problems(&errors, &chain.objects);
    if !problems.is_empty() || catalog.resyncs.iter().all(|r| r.id() != id) {
        next.phase = Some(Phase::Pending);
        let health = Health::new(State::Stalled, "InvalidSpec", problems.join("; "));
        // Objects applied together arrive in any order: look again later.
        return ctx
            .finish(&*resync, next, health, Action::requeue(REPLAN))
            .await;
    }
    if let Some(message) = wrong_structure(&resync, &chain) {
        next.phase = Some(Phase::Pending);
        let health = Health::new(State::Stalled, "WrongStructure", message);
        // The synchronizer may be changed back: look again later.
        return ctx
            .finish(&*resync, next, health, Action::requeue(REPLAN))
            .await;
    }
    let requested_by = resync.annotations().get(REQUESTED_BY_ANNOTATION).cloned();
    next.requested_by.clone_from(&requested_by);
    if ctx.store().resync_done(&job).map_err(EngineError::from)? {
        if phase == Some(Phase::Running) {
            // This copy may predate the Succeeded write: the live object
            // says; if it still says Running, the run ended unrecorded
            // (a restart), and its status is completed from it.
            let live = ctx.api_of(&*resync).get(&resync.name_any()).await?;
            let live_status = live.status.clone().unwrap_or_default();
            if live_status.phase != Some(Phase::Running) {
                return Ok(Action::await_change());
            }
            next = ResyncStatus {
                done: live_status.total,
                completion_time: Some(jiff::Timestamp::now().to_string()),
                ..live_status
            };
        }
        if resync.spec.enable_after {
            enable(&ctx, &resync, &chain.synchronizer).await?;
        }
        next.phase = Some(Phase::Succeeded);
        let health = Health::new(State::Ready, "Succeeded", "carried out");
        return ctx
            .finish(&*resync, next, health, Action::await_change())
            .await;
    }
    let Some(_claim) = ctx.claim(&catalog, &chain.structure) else {
        if phase != Some(Phase::AwaitingApproval) {
            next.phase = Some(Phase::Waiting);
            let message = format!("another run on structure {} is in flight", chain.structure);
            let health = Health::new(State::Reconciling, "Waiting", message);
            ctx.finish(&*resync, next, health, Action::requeue(WAIT))
                .await?;
        }
        return Ok(Action::requeue(WAIT));
    };
    // Shown the first time only: re-plans of a held-back Resync would
    // otherwise flip its status, and each write wakes it again.
    if status.plan.is_none() {
        next.phase = Some(Phase::Planning);
        let health = Health::new(
            State::Reconciling,
            "Planning",
            "reading the tracker and planning",
        );
        ctx.finish(&*resync, next.clone(), health, Action::await_change())
            .await?;
    }

    let mut scope = Scope::of_resync(&catalog, &id)?;
    if let Scope::Resync { resync: key, .. } = &mut scope {
        *key = Some(job.clone());
    }
    let credentials = match &resync.spec.run_as {
        None => ctx.credentials(&catalog, &chain.tracker).await?,
        Some(run_as) => {
            let namespace = resync.namespace().unwrap_or_else(|| "default".into());
            match ctx.personal_key(&namespace, run_as).await? {
                Ok(key) => Credentials::Person(key),
                Err(why) => return held_back(&ctx, &resync, next, "RunAsRefused", &why).await,
            }
        }
    };
    let mut engine = ctx.engine().await;
    engine.set_credentials(credentials);
    if let Some(person) = &requested_by {
        engine.set_author(person);
    }
    let run = match off_the_runtime(engine.plan_to_apply(&catalog, &scope)) {
        Ok(run) => run,
        Err(e) => return held_back(&ctx, &resync, next, "PlanFailed", &e.to_string()).await,
    };
    next.plan = Some(PlanStatus {
        hash: run.set.hash.clone(),
        summary: run.set.summary.to_string(),
        destructive: run.set.summary.destructive > 0,
        diff_excerpt: excerpt(&run),
    });
    let plan = next.plan.clone().expect("just set");
    let approval = Approval::given(resync.spec.approved_plan.as_deref());
    match engine.may_apply(&run, &approval) {
        Ok(()) => {}
        // Raising the synchronizer's `safety` limits lets the next plan through.
        Err(refused @ EngineError::MassRemoval(_)) => {
            return held_back(&ctx, &resync, next, "MassRemoval", &refused.to_string()).await;
        }
        Err(EngineError::Refused(refusal)) => {
            let approve = format!(
                "approve it with `kubectl patch resync {} -n {} --type merge -p '{{\"spec\":{{\"approvedPlan\":\"{}\"}}}}'`",
                resync.name_any(),
                resync.namespace().unwrap_or_else(|| "default".into()),
                refusal.hash()
            );
            let message = refusal.explain("approvedPlan", &approve);
            return awaiting(&ctx, &resync, next, message).await;
        }
        Err(error) => return Err(error.into()),
    }
    if !ctx.leading() {
        // Leadership passed on while planning: the new leader runs it.
        return Ok(Action::requeue(WAIT));
    }

    let summary = run.set.summary;
    next.phase = Some(Phase::Running);
    next.start_time = Some(jiff::Timestamp::now().to_string());
    next.total = Some(operations(&summary));
    next.done = Some(0);
    let health = Health::new(State::Reconciling, "Running", plan.summary.clone());
    ctx.finish(
        &*resync,
        next.clone(),
        health.clone(),
        Action::await_change(),
    )
    .await?;
    ctx.event(
        &*resync,
        false,
        "ResyncStarted",
        "Resync",
        format!("plan {}: {}", plan.hash, plan.summary),
    )
    .await;
    let progress = Arc::new(RunProgress::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reporter = tokio::spawn(report_progress(
        ctx.clone(),
        resync.clone(),
        (next.clone(), health),
        progress.clone(),
        stopped,
    ));
    let applied = off_the_runtime(engine.apply_observed(&catalog, run, &approval, &progress));
    // The last progress report is written before the outcome is.
    let _ = stop.send(true);
    let _ = reporter.await;
    match applied {
        Ok(_) => {
            drop(engine);
            ctx.metrics.count_operations(&summary);
            ctx.structure_changed(&chain.structure);
            // A resync is an edit of the structure by a person: what
            // carries the structure to the tracker passes now.
            ctx.make_due(&crate::trigger::due_for_structure_edit(
                &catalog,
                &chain.structure,
            ));
            ctx.event(
                &*resync,
                false,
                "ResyncSucceeded",
                "Resync",
                plan.summary.clone(),
            )
            .await;
            // Before the final status: if enabling fails, the next pass
            // finds the job done and enables again.
            if resync.spec.enable_after {
                enable(&ctx, &resync, &chain.synchronizer).await?;
            }
            next.phase = Some(Phase::Succeeded);
            next.done = next.total;
            next.completion_time = Some(jiff::Timestamp::now().to_string());
            let health = Health::new(State::Ready, "Succeeded", plan.summary);
            ctx.finish(&*resync, next, health, Action::await_change())
                .await
        }
        Err(e) if retryable(&e) => {
            held_back(&ctx, &resync, next, "ApplyFailed", &e.to_string()).await
        }
        Err(e) => failed(&ctx, &resync, next, &e.to_string()).await,
    }
}

/// Why a Resync labelled with another structure than its synchronizer's
/// must not run: the admission policy checked `control` on the label's.
fn wrong_structure(resync: &Resync, chain: &Chain) -> Option<String> {
    let named = resync.labels().get(STRUCTURE_LABEL)?;
    let structure = ObjectId::parse(&chain.structure)?;
    (*named != structure.name).then(|| {
        format!(
            "the label {STRUCTURE_LABEL} names structure {named}, but synchronizer {} syncs structure {}: permission to run it was checked on the wrong structure; create the Resync again labelled {STRUCTURE_LABEL}={}",
            chain.synchronizer, structure.name, structure.name
        )
    })
}

/// Failures that may pass by themselves: the tracker unreachable or
/// changed since the plan. Per-issue refusals and the rest need a person.
fn retryable(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::TrackerChanged { .. }
            | EngineError::Tracker {
                source: TrackerError::Remote { .. },
                ..
            }
    )
}

/// Operations in a plan: structure operations and tracker updates.
/// While a Resync applies: its `status.done` follows the tracker writes
/// made and the rows committed, every [`PROGRESS_EVERY`], until `stopped`.
async fn report_progress(
    ctx: Arc<Context>,
    resync: Arc<Resync>,
    (mut status, health): (ResyncStatus, Health),
    progress: Arc<RunProgress>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let total = status.total.unwrap_or_default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(PROGRESS_EVERY) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let counts = progress.counts();
        let done = ((counts.tracker_done + counts.rows_done) as i64).min(total);
        if status.done == Some(done) {
            continue;
        }
        status.done = Some(done);
        let written = ctx
            .finish(
                &*resync,
                status.clone(),
                health.clone(),
                Action::await_change(),
            )
            .await;
        if let Err(error) = written {
            tracing::debug!(%error, "a Resync's progress was not written; the next report tries again");
        }
    }
}

fn operations(summary: &Summary) -> i64 {
    (summary.add + summary.move_ + summary.remove + summary.tracker_updates) as i64
}

/// The first lines of each structure's outline diff.
fn excerpt(run: &crate::engine::Run) -> Option<String> {
    let lines: Vec<&str> = run
        .prepared
        .iter()
        .flat_map(|p| p.plan.outline_diff.lines())
        .take(DIFF_EXCERPT_LINES)
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The message of the Resync's current `Stalled` condition.
fn stalled_message(resync: &Resync) -> Option<&str> {
    resync
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")?
        .message
        .as_deref()
}

async fn awaiting(
    ctx: &Context,
    resync: &Resync,
    mut next: ResyncStatus,
    message: String,
) -> Result<Action, Error> {
    next.phase = Some(Phase::AwaitingApproval);
    if stalled_message(resync) != Some(message.as_str()) {
        ctx.event(resync, false, "AwaitingApproval", "Plan", message.clone())
            .await;
    }
    let health = Health::new(State::Stalled, "AwaitingApproval", message);
    ctx.finish(resync, next, health, Action::requeue(REPLAN))
        .await
}

/// Not run now, tried again later.
async fn held_back(
    ctx: &Context,
    resync: &Resync,
    mut next: ResyncStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    next.phase = Some(Phase::Pending);
    if stalled_message(resync) != Some(message) {
        ctx.event(resync, true, reason, "Plan", message.to_owned())
            .await;
    }
    let health = Health::new(State::Stalled, reason, message);
    ctx.finish(resync, next, health, Action::requeue(REPLAN))
        .await
}

async fn failed(
    ctx: &Context,
    resync: &Resync,
    mut next: ResyncStatus,
    message: &str,
) -> Result<Action, Error> {
    next.phase = Some(Phase::Failed);
    next.errors = message.lines().map(str::to_owned).collect();
    next.completion_time = Some(jiff::Timestamp::now().to_string());
    ctx.event(resync, true, "ResyncFailed", "Resync", message.to_owned())
        .await;
    let health = Health::new(State::Stalled, "Failed", message);
    ctx.finish(resync, next, health, Action::await_change())
        .await
}

/// "Resync and Enable": the synchronizer starts once the resync succeeded.
async fn enable(ctx: &Context, resync: &Resync, synchronizer: &str) -> Result<(), Error> {
    let id = ObjectId::parse(synchronizer).ok_or_else(|| {
        EngineError::Invalid(format!("{synchronizer} is not a namespace/name id"))
    })?;
    let api: Api<Synchronizer> = Api::namespaced(ctx.client.clone(), &id.namespace);
    api.patch(
        &id.name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"enabled": true}})),
    )
    .await?;
    ctx.event(
        resync,
        false,
        "SynchronizerEnabled",
        "Enable",
        format!("enabled synchronizer {synchronizer} (enableAfter)"),
    )
    .await;
    Ok(())
}

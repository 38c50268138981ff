//! Resyncs: one-time runs, each planned on its own so that its plan hash
//! is what `spec.approvedPlan` approves — the same hash `trellis plan`
//! prints for it. Phases: Pending → Waiting (the structure is busy) →
//! Planning → AwaitingApproval (destructive, or approved with another
//! hash) → Running → Succeeded | Failed. A finished Resync is never run
//! again; its job in the store says it is done, even after a restart.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions::{Health, State};
use super::context::{Context, Error};
use crate::engine::{Approval, EngineError, Scope};
use crate::plan::Summary;
use crate::spec::{Catalog, PlanStatus, Resync, ResyncStatus, Synchronizer};
use crate::store::Store;

/// How often a waiting or unapproved Resync plans again (the tracker may
/// have changed, and with it the hash to approve).
const REPLAN: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(5);
const DIFF_EXCERPT_LINES: usize = 40;

pub async fn reconcile(resync: Arc<Resync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let status = resync.status.clone().unwrap_or_default();
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return Ok(Action::await_change());
    }
    let id = format!(
        "{}/{}",
        resync.namespace().unwrap_or_else(|| "default".into()),
        resync.name_any()
    );
    let (catalog, errors) = ctx.catalog();
    let scope = Scope::of_resync(&catalog, &id)?;
    let Scope::Resync { synchronizer, .. } = &scope else {
        unreachable!("of_resync gives a resync scope")
    };
    let sync = catalog.synchronizer(synchronizer);
    let structure =
        sync.map(|s| Catalog::referenced(&s.resource, &s.resource.spec.structure_ref.name));
    let tracker = structure
        .as_deref()
        .and_then(|s| catalog.structure(s))
        .and_then(|s| Catalog::tracker_of(&s.resource));
    let chain = [
        Some(format!("Resync {id}")),
        Some(format!("Synchronizer {synchronizer}")),
        structure.as_ref().map(|s| format!("Structure {s}")),
        tracker.as_ref().map(|t| format!("Tracker {t}")),
    ];
    let chain: Vec<String> = chain.into_iter().flatten().collect();
    let problems = Context::problems(&errors, &chain);
    let mut next = ResyncStatus {
        observed_generation: resync.metadata.generation,
        ..status.clone()
    };
    if !problems.is_empty() {
        next.phase = Some("Pending".into());
        let health = Health::new(State::Stalled, "InvalidSpec", problems.join("; "));
        return finish(&ctx, &resync, next, health, Action::await_change()).await;
    }
    let structure = structure.expect("a valid chain has a structure");
    if ctx
        .engine()
        .await
        .store()
        .resync_done(&id)
        .map_err(EngineError::from)?
    {
        next.phase = Some("Succeeded".into());
        let health = Health::new(State::Ready, "Succeeded", "carried out earlier");
        return finish(&ctx, &resync, next, health, Action::await_change()).await;
    }
    let Some(_claim) = ctx.claim(&structure) else {
        next.phase = Some("Waiting".into());
        let health = Health::new(
            State::Reconciling,
            "Waiting",
            format!("another run on structure {structure} is in flight"),
        );
        return finish(&ctx, &resync, next, health, Action::requeue(WAIT)).await;
    };

    let credentials = ctx.credentials(&catalog).await?;
    let mut engine = ctx.engine().await;
    engine.set_credentials(credentials);
    let run = match engine.plan(&catalog, &scope).await {
        Ok(run) => run,
        Err(e) => return failed(&ctx, &resync, next, &e.to_string()).await,
    };
    if let Err(refused) = run.check_safety() {
        // Not final: raising the synchronizer's `safety` limits (or the
        // tracker coming back to its senses) lets the next plan through.
        next.phase = Some("Pending".into());
        let health = Health::new(State::Stalled, "MassRemoval", refused.to_string());
        return finish(&ctx, &resync, next, health, Action::requeue(REPLAN)).await;
    }
    let plan = PlanStatus {
        hash: run.set.hash.clone(),
        summary: run.set.summary.to_string(),
        destructive: run.set.summary.destructive > 0,
        diff_excerpt: excerpt(&run),
    };
    next.plan = Some(plan.clone());
    let approval = match resync.spec.approved_plan.as_deref() {
        Some(approved) if plan.hash.starts_with(approved) && approved.len() >= 8 => {
            Approval::Hash(approved.to_owned())
        }
        Some(approved) => {
            next.phase = Some("AwaitingApproval".into());
            let message = format!(
                "the approved plan {approved} is not the current plan {} (the tracker, the structure or the declarations changed since it was reviewed); review the current plan and approve {}",
                plan.hash, plan.hash
            );
            return awaiting(&ctx, &resync, next, message).await;
        }
        None if plan.destructive => {
            next.phase = Some("AwaitingApproval".into());
            let message = format!(
                "this plan is destructive ({}); review it, then approve it with `kubectl patch resync {} -n {} --type merge -p '{{\"spec\":{{\"approvedPlan\":\"{}\"}}}}'`",
                plan.summary,
                resync.name_any(),
                resync.namespace().unwrap_or_else(|| "default".into()),
                plan.hash
            );
            return awaiting(&ctx, &resync, next, message).await;
        }
        None => Approval::None,
    };

    next.phase = Some("Running".into());
    next.start_time = Some(jiff::Timestamp::now().to_string());
    let plan_summary = run.set.summary;
    next.total = Some(operations(&plan_summary));
    next.done = Some(0);
    let health = Health::new(State::Reconciling, "Running", plan.summary.clone());
    finish(&ctx, &resync, next.clone(), health, Action::await_change()).await?;
    ctx.event(
        &*resync,
        false,
        "ResyncStarted",
        "Resync",
        format!("plan {}: {}", plan.hash, plan.summary),
    )
    .await;
    match engine.apply(&catalog, run, &approval).await {
        Ok(_) => {
            ctx.metrics.count_operations(&plan_summary);
            next.phase = Some("Succeeded".into());
            next.done = next.total;
            next.completion_time = Some(jiff::Timestamp::now().to_string());
            ctx.event(
                &*resync,
                false,
                "ResyncSucceeded",
                "Resync",
                plan.summary.clone(),
            )
            .await;
            if resync.spec.enable_after {
                enable(&ctx, &resync, synchronizer).await?;
            }
            let health = Health::new(State::Ready, "Succeeded", plan.summary);
            finish(&ctx, &resync, next, health, Action::await_change()).await
        }
        Err(e) => failed(&ctx, &resync, next, &e.to_string()).await,
    }
}

/// Operations in a plan: structure operations and tracker updates.
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

async fn awaiting(
    ctx: &Context,
    resync: &Resync,
    next: ResyncStatus,
    message: String,
) -> Result<Action, Error> {
    let first_time = resync
        .status
        .as_ref()
        .and_then(|s| s.plan.as_ref())
        .map(|p| &p.hash)
        != next.plan.as_ref().map(|p| &p.hash);
    if first_time {
        ctx.event(resync, false, "AwaitingApproval", "Plan", message.clone())
            .await;
    }
    let health = Health::new(State::Stalled, "AwaitingApproval", message);
    finish(ctx, resync, next, health, Action::requeue(REPLAN)).await
}

async fn failed(
    ctx: &Context,
    resync: &Resync,
    mut next: ResyncStatus,
    message: &str,
) -> Result<Action, Error> {
    next.phase = Some("Failed".into());
    next.errors = message.lines().map(str::to_owned).collect();
    next.completion_time = Some(jiff::Timestamp::now().to_string());
    ctx.event(resync, true, "ResyncFailed", "Resync", message.to_owned())
        .await;
    let health = Health::new(State::Stalled, "Failed", message);
    finish(ctx, resync, next, health, Action::await_change()).await
}

/// "Resync and Enable": the synchronizer starts once the resync succeeded.
async fn enable(ctx: &Context, resync: &Resync, synchronizer: &str) -> Result<(), Error> {
    let (namespace, name) = synchronizer
        .split_once('/')
        .expect("ids are namespace/name");
    let api: Api<Synchronizer> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(
        name,
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

async fn finish(
    ctx: &Context,
    resync: &Resync,
    mut next: ResyncStatus,
    health: Health,
    action: Action,
) -> Result<Action, Error> {
    let previous = resync
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.conditions[..]);
    next.conditions = health.conditions(previous, resync.metadata.generation);
    ctx.patch_status(resync, &next).await?;
    Ok(action)
}

//! `trellis controller`: Trackers, Structures, Synchronizers and Resyncs
//! reconciled in a cluster, on the same engine as the command line.
//!
//! One kube-runtime Controller per kind, sharing a [`Context`]: the watched
//! objects of all four kinds (a reconcile sees the whole catalog, as
//! `trellis apply -f` does), the SQLite store behind one engine, and the
//! leadership flag — only the replica holding the Lease reconciles, so two
//! replicas never sync the same structure at once. Status goes through the
//! status subresource with server-side apply, with kstatus conditions.

mod conditions;
mod context;
mod http;
mod leader;
mod metrics;
mod readiness;
mod resync;
mod structure;
mod synchronizer;
mod tracker;
mod ui;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

pub use conditions::{Health, State};
pub use context::{Context, Error, Stores};
pub use leader::LeaseSettings;
pub use metrics::Metrics;
pub use readiness::Readiness;

use crate::spec::{Resync, Structure, Synchronizer, Tracker};

/// How long before a failed reconcile is tried again.
const ERROR_RETRY: Duration = Duration::from_secs(30);

pub struct Settings {
    pub state: PathBuf,
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    pub listen: SocketAddr,
    pub lease: LeaseSettings,
    /// The folder local trackers may use (none: local trackers refused).
    pub local_trackers: Option<PathBuf>,
    /// How many structures run at once.
    pub workers: usize,
    /// Where webhooks are received (none: not at all).
    pub webhook_listen: Option<SocketAddr>,
    /// Serve the web UI here (off unless given).
    pub ui_listen: Option<SocketAddr>,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let client = Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}")
    })?;
    let (trackers, structures, synchronizers, resyncs) = match &settings.namespace {
        Some(ns) => (
            Api::<Tracker>::namespaced(client.clone(), ns),
            Api::<Structure>::namespaced(client.clone(), ns),
            Api::<Synchronizer>::namespaced(client.clone(), ns),
            Api::<Resync>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    // Fail fast, with a useful message, when the CRDs are not installed.
    trackers
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(|e| anyhow::anyhow!("cannot list Trackers ({e}): are the CRDs installed (`kubectl apply -k deploy/`) and may this account list them?"))?;

    let readiness = Arc::new(Readiness::waiting_for(&KINDS));
    let tracker_controller = watched(trackers, "Tracker", &readiness);
    let structure_controller = watched(structures, "Structure", &readiness);
    let synchronizer_controller = watched(synchronizers, "Synchronizer", &readiness);
    let resync_controller = watched(resyncs, "Resync", &readiness);
    let stores = Stores {
        trackers: tracker_controller.store(),
        structures: structure_controller.store(),
        synchronizers: synchronizer_controller.store(),
        resyncs: resync_controller.store(),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "trellis-controller".into(),
            instance: Some(settings.lease.identity.clone()),
        },
    );
    let mut context = Context::new(
        client.clone(),
        recorder,
        &settings.state,
        stores,
        settings.workers,
    )?;
    context.local_root = settings.local_trackers;
    context.ready = readiness;
    let structure_changes = context.structure_changes();
    let due_passes = context.due_passes();
    let ctx = Arc::new(context);
    // A run that changed a structure's content asks for its status to
    // follow now, not at the next refresh.
    let structure_controller = structure_controller.reconcile_on(structure_changes);
    // An event (webhook, issues file, structure edit) asks for a pass now.
    let synchronizer_controller = synchronizer_controller.reconcile_on(due_passes);
    if ctx.local_root.is_some() {
        tokio::spawn(webhooks::watch_issues_files(ctx.clone()));
    }

    // SIGTERM stops the controllers (in-flight runs finish); only then do
    // the leader step down and the HTTP server stop, so that no other
    // replica can start on a structure this one is still writing.
    let (stop_controllers, controllers_stopping) = tokio::sync::watch::channel(false);
    let (stop_rest, rest_stopping) = tokio::sync::watch::channel(false);
    let on = |receiver: &tokio::sync::watch::Receiver<bool>| {
        let mut receiver = receiver.clone();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight runs");
        let _ = stop_controllers.send(true);
    });
    let leader = leader::lead(
        client,
        settings.lease,
        ctx.leading.clone(),
        on(&rest_stopping),
    );
    let server = http::serve(
        settings.listen,
        ctx.metrics.clone(),
        ctx.ready.clone(),
        on(&rest_stopping),
    );
    let receiver = async {
        match settings.webhook_listen {
            Some(address) => webhooks::receive(address, ctx.clone(), on(&rest_stopping)).await,
            None => Ok(()),
        }
    };
    let pages = async {
        match settings.ui_listen {
            Some(address) => {
                ui::serve(
                    address,
                    settings.state.clone(),
                    ctx.clone(),
                    on(&rest_stopping),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let controllers = async {
        futures::future::join4(
            drive(
                tracker_controller,
                "Tracker",
                tracker::reconcile,
                ctx.clone(),
                on(&controllers_stopping),
            ),
            drive(
                structure_controller,
                "Structure",
                structure::reconcile,
                ctx.clone(),
                on(&controllers_stopping),
            ),
            drive(
                synchronizer_controller,
                "Synchronizer",
                synchronizer::reconcile,
                ctx.clone(),
                on(&controllers_stopping),
            ),
            drive(
                resync_controller,
                "Resync",
                resync::reconcile,
                ctx.clone(),
                on(&controllers_stopping),
            ),
        )
        .await;
        let _ = stop_rest.send(true);
    };
    let (_, served, received, paged, ()) =
        tokio::join!(leader, server, receiver, pages, controllers);
    served.and(received).and(paged)
}

/// The four kinds, as the readiness and metrics name them.
const KINDS: [&str; 4] = ["Tracker", "Structure", "Synchronizer", "Resync"];

/// A controller over its own watch, which reports its first full list to
/// `readiness` itself (see readiness.rs for why nobody waits on the store).
fn watched<K>(api: Api<K>, kind: &'static str, readiness: &Arc<Readiness>) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let readiness = readiness.clone();
    let objects = reflector(writer, watcher(api, watcher::Config::default()))
        .inspect(move |event| {
            if let Ok(watcher::Event::InitDone) = event {
                readiness.synced(kind);
            }
        })
        .applied_objects();
    Controller::for_stream(objects, reader)
}

/// Runs one kind's controller until shutdown, counting and timing each
/// reconcile; only the leader reconciles.
async fn drive<K, F, Fut>(
    controller: Controller<K>,
    kind: &'static str,
    reconcile: F,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            move |object: Arc<K>, ctx: Arc<Context>| {
                let reconcile = reconcile.clone();
                async move {
                    if !ctx.leading() || !ctx.ready() {
                        return Ok(Action::requeue(Duration::from_secs(5)));
                    }
                    let label = Metrics::kind(kind);
                    ctx.metrics.reconciles.get_or_create(&label).inc();
                    let started = std::time::Instant::now();
                    let result = reconcile(object, ctx.clone()).await;
                    ctx.metrics
                        .duration
                        .get_or_create(&label)
                        .observe(started.elapsed().as_secs_f64());
                    result
                }
            },
            move |object: Arc<K>, error: &Error, ctx: Arc<Context>| {
                let label = error.metric_label();
                tracing::warn!(
                    kind,
                    object = %crate::spec::resource_id(&*object),
                    error.kind = label,
                    error = %error,
                    "reconcile failed"
                );
                ctx.metrics
                    .errors
                    .get_or_create(&metrics::ErrorLabels {
                        kind: kind.into(),
                        error: label.into(),
                    })
                    .inc();
                Action::requeue(ERROR_RETRY)
            },
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind, error = %e, "controller event");
            }
        })
        .await;
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests;

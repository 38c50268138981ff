//! The controller's triggers: the webhook receiver (`--webhook-listen`,
//! off unless given), the watch on local trackers' issues files, and the
//! last delivery of each tracker written to its status (`lastEvent`).
//! Each makes synchronizers due through [`Context::make_due`]; their
//! reconcile runs the pass.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};

use super::context::Context;
use crate::spec::{Catalog, EventStatus, Tracker, TrackerStatus};
use crate::tracker::http::ApiKey;
use crate::trigger::receiver::{self, Hooks};
use crate::trigger::webhook::Rejection;
use crate::trigger::{due_for_file, watch};

/// The field manager of `status.lastEvent` alone: the Tracker's own
/// reconcile applies the rest of the status and leaves this field be.
const EVENT_MANAGER: &str = "trellis-controller-webhooks";
/// How often the last events are written to the Trackers' status, at most:
/// a burst of deliveries makes one patch.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the set of watched issues files follows the declarations
/// (a new local Tracker is watched within this time; the edits of a
/// watched file are noticed at once).
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// How long a webhook secret read from its Secret is used before it is
/// read again: a burst of deliveries makes one read, and a rotated secret
/// is in use within this time.
const SECRET_TTL: Duration = Duration::from_secs(10);

/// A tracker's webhook secret as read (or why it could not be), and when.
type ReadSecret = (Instant, Result<ApiKey, String>);

struct ControllerHooks {
    ctx: Arc<Context>,
    /// Each tracker's secret as last read.
    secrets: Mutex<HashMap<String, ReadSecret>>,
}

impl Hooks for ControllerHooks {
    fn catalog(&self) -> Arc<Catalog> {
        Arc::new(self.ctx.catalog().0)
    }

    async fn secret(&self, catalog: &Catalog, tracker: &str) -> Result<ApiKey, String> {
        let cached = self
            .secrets
            .lock()
            .expect("not poisoned")
            .get(tracker)
            .cloned();
        if let Some((read, secret)) = cached
            && read.elapsed() < SECRET_TTL
        {
            return secret;
        }
        let secret = self
            .ctx
            .webhook_secret(catalog, tracker)
            .await
            .map_err(|e| e.to_string())
            .and_then(|found| found);
        self.secrets
            .lock()
            .expect("not poisoned")
            .insert(tracker.to_owned(), (Instant::now(), secret.clone()));
        secret
    }

    fn accepted(&self, tracker: &str, event: &EventStatus) {
        self.ctx.metrics.count_event("accepted");
        self.ctx
            .last_events
            .lock()
            .expect("not poisoned")
            .insert(tracker.to_owned(), event.clone());
        self.ctx.make_due(&event.synchronizers);
    }

    fn rejected(&self, rejection: &Rejection) {
        self.ctx.metrics.count_event(rejection.reason());
    }

    fn available(&self) -> Result<(), Rejection> {
        if self.ctx.leading() {
            Ok(())
        } else {
            Err(Rejection::Unavailable(
                "this replica is a standby; the replica holding the Lease receives deliveries (Jira sends again)".into(),
            ))
        }
    }
}

/// Receives webhooks on `address` until `shutdown`.
pub async fn receive(
    address: SocketAddr,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = receiver::bind(address).await?;
    let status = tokio::spawn(write_last_events(ctx.clone()));
    let hooks = ControllerHooks {
        ctx,
        secrets: Mutex::default(),
    };
    let served = receiver::serve(listener, Arc::new(hooks), shutdown).await;
    status.abort();
    Ok(served?)
}

/// Writes each tracker's newest delivery to its status, once a second at
/// most (the leader only: a standby's receiver marks nothing it runs).
async fn write_last_events(ctx: Arc<Context>) {
    let mut written: HashMap<String, EventStatus> = HashMap::new();
    loop {
        tokio::time::sleep(STATUS_EVERY).await;
        let events = ctx.last_events.lock().expect("not poisoned").clone();
        for (tracker, event) in events {
            if written.get(&tracker) == Some(&event) {
                continue;
            }
            let Some(id) = crate::spec::ObjectId::parse(&tracker) else {
                continue;
            };
            let api: Api<Tracker> = Api::namespaced(ctx.client.clone(), &id.namespace);
            let patch = serde_json::json!({
                "apiVersion": "trellis.dev/v1alpha1",
                "kind": "Tracker",
                "status": TrackerStatus {
                    last_event: Some(event.clone()),
                    ..TrackerStatus::default()
                },
            });
            match api
                .patch_status(
                    &id.name,
                    &PatchParams::apply(EVENT_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => {
                    written.insert(tracker, event);
                }
                Err(e) => {
                    tracing::warn!(%tracker, error = %e, "cannot write the last webhook event to the status")
                }
            }
        }
    }
}

/// Watches the local trackers' issues files (inside `--local-trackers`)
/// until the process ends: an edit makes their synchronizers due.
pub async fn watch_issues_files(ctx: Arc<Context>) {
    let on_edit = ctx.clone();
    let files = watch::Files::new(move |path| {
        let ids = due_for_file(&on_edit.catalog().0, path);
        tracing::info!(file = %path.display(), due = ?ids, "issues file edited");
        on_edit.make_due(&ids);
    });
    let mut files = match files {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch local trackers' files; their schedules still poll them");
            return;
        }
    };
    loop {
        let (catalog, _) = ctx.catalog();
        let root = ctx.local_root.clone();
        files.set(
            catalog
                .local_trackers()
                .map(|(_, path)| path.to_path_buf())
                .filter(|path| root.as_ref().is_some_and(|r| path.starts_with(r))),
        );
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

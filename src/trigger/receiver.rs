//! The webhook receiver: one small HTTP/1 server, shared by `trellis run
//! --listen` and the controller's `--webhook-listen`. It checks each
//! delivery ([`super::webhook`]), marks the synchronizers it concerns due
//! and answers `202 Accepted` at once: it never waits for a pass.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use super::webhook::{self, MAX_BODY, Proof, Rejection, Replays, Route};
use crate::spec::{Catalog, EventStatus};
use crate::tracker::http::ApiKey;

/// What the shell running the receiver provides: the declarations as they
/// are now, each tracker's webhook secret, and what to do with a delivery.
pub trait Hooks: Send + Sync + 'static {
    fn catalog(&self) -> Arc<Catalog>;
    /// Tracker `id`'s `spec.webhook.secret`, or why it cannot be read (said
    /// to the operator, never to the sender).
    fn secret(
        &self,
        catalog: &Catalog,
        tracker: &str,
    ) -> impl Future<Output = Result<ApiKey, String>> + Send;
    /// An accepted delivery for `tracker`: mark its synchronizers due.
    fn accepted(&self, tracker: &str, event: &EventStatus);
    /// A refused one (for the metrics).
    fn rejected(&self, rejection: &Rejection);
    /// Whether this process takes deliveries now.
    fn available(&self) -> Result<(), Rejection> {
        Ok(())
    }
}

/// Serves `hooks` on `listener` until `shutdown`.
pub async fn serve<H: Hooks>(
    listener: tokio::net::TcpListener,
    hooks: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let replays = Arc::new(Mutex::new(Replays::default()));
    let answer = move |request| {
        let hooks = hooks.clone();
        let replays = replays.clone();
        async move { answer(request, &*hooks, &replays).await }
    };
    crate::serve::http1(listener, "webhook", Arc::new(answer), shutdown).await
}

/// Binds `address` (port 0: any free port) and says where it listens.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for webhooks on {address}: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, "receiving webhooks");
    Ok(listener)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    /// The synchronizers made due.
    due: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

async fn answer<H: Hooks>(
    request: Request<Incoming>,
    hooks: &H,
    replays: &Mutex<Replays>,
) -> Response<Full<Bytes>> {
    match receive(request, hooks, replays).await {
        Ok(response) => response,
        Err(rejection) => {
            hooks.rejected(&rejection);
            tracing::info!(status = rejection.status(), reason = %rejection, "webhook delivery refused");
            let status = StatusCode::from_u16(rejection.status()).expect("a valid status");
            reply(status, format!("{rejection}\n"))
        }
    }
}

async fn receive<H: Hooks>(
    request: Request<Incoming>,
    hooks: &H,
    replays: &Mutex<Replays>,
) -> Result<Response<Full<Bytes>>, Rejection> {
    let route = webhook::route(request.method().as_str(), request.uri().path())?;
    hooks.available()?;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signature = header("x-hub-signature");
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    let identifier = header("x-atlassian-webhook-identifier");
    let query_token = request.uri().query().and_then(webhook::query_token);
    let declared_length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    if declared_length.is_some_and(|n| n > MAX_BODY) {
        return Err(Rejection::TooLarge);
    }
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| Rejection::TooLarge)?
        .to_bytes();
    let catalog = hooks.catalog();
    let (tracker, targets) =
        match &route {
            Route::Jira { tracker } => (tracker.clone(), catalog.synchronizers_on(tracker)),
            Route::Synchronizer { id } => {
                let tracker = catalog
                .resolved_synchronizer(id)
                .filter(|_| catalog.synchronizer(id).is_some_and(|s| s.resource.spec.enabled))
                .map(|s| s.tracker.clone())
                .ok_or_else(|| {
                    Rejection::NotFound(format!(
                        "synchronizer {id} is not declared, is declared wrongly or is not enabled"
                    ))
                })?;
                (tracker, vec![id.clone()])
            }
        };
    if catalog
        .tracker(&tracker)
        .is_none_or(|t| t.resource.spec.webhook.is_none())
    {
        return Err(Rejection::NotFound(format!(
            "tracker {tracker} is not declared or declares no spec.webhook"
        )));
    }
    let secret = hooks.secret(&catalog, &tracker).await.map_err(|why| {
        tracing::warn!(%tracker, %why, "webhook secret cannot be read; deliveries are refused");
        Rejection::Unauthorized(format!(
            "tracker {tracker}'s webhook secret cannot be read here; the operator's log says why"
        ))
    })?;
    let proof = Proof {
        signature: signature.as_deref(),
        bearer: bearer.as_deref(),
        query_token: query_token.as_deref(),
    };
    webhook::authenticate(secret.as_bytes(), &proof, &body)?;
    let (event, issues) = match &route {
        Route::Jira { .. } => {
            let event = webhook::jira_event(&body)?;
            if !event.relevant {
                return Ok(accepted(
                    &[],
                    Some("this event cannot change a structure; ignored"),
                ));
            }
            (event.event, event.issues)
        }
        Route::Synchronizer { .. } => ("trigger".to_owned(), Vec::new()),
    };
    // Checked after the proof: an unproven sender cannot use up an
    // identifier that the real delivery carries.
    if let Some(identifier) = &identifier
        && !replays
            .lock()
            .expect("not poisoned")
            .first_time(&format!("{tracker} {identifier}"))
    {
        return Ok(accepted(
            &[],
            Some("this delivery was received before; ignored"),
        ));
    }
    let status = EventStatus {
        received: jiff::Timestamp::now().to_string(),
        event,
        issues: issues.into_iter().take(10).collect(),
        synchronizers: targets.clone(),
    };
    tracing::info!(%tracker, event = %status.event, issues = ?status.issues, due = ?targets, "webhook delivery accepted");
    hooks.accepted(&tracker, &status);
    Ok(accepted(&targets, None))
}

fn accepted(due: &[String], note: Option<&str>) -> Response<Full<Bytes>> {
    let body = serde_json::to_string(&Answer { due, note }).expect("serializable");
    let mut response = reply(StatusCode::ACCEPTED, body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

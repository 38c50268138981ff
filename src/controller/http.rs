//! `/metrics`, `/healthz` (the process answers) and `/readyz` (every
//! watch has listed its objects once), on one small HTTP/1 server.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use super::metrics::Metrics;
use super::readiness::Readiness;

pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let answer = move |request: hyper::Request<hyper::body::Incoming>| {
        let reply = answer(request.uri().path(), &metrics, &ready);
        async move { reply }
    };
    crate::serve::http1(listener, "metrics", Arc::new(answer), shutdown).await?;
    Ok(())
}

fn answer(path: &str, metrics: &Metrics, ready: &Readiness) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics.encode()),
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" if ready.is_ready() => (StatusCode::OK, "ready\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("watches not synced yet: {}\n", ready.waiting().join(", ")),
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn get(path: &str, metrics: &Metrics, ready: &Readiness) -> (StatusCode, String) {
        let response = answer(path, metrics, ready);
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_answer_as_probes_and_prometheus_expect() {
        let metrics = Metrics::default();
        metrics
            .reconciles
            .get_or_create(&Metrics::kind("Resync"))
            .inc();
        metrics
            .duration
            .get_or_create(&Metrics::kind("Resync"))
            .observe(0.2);
        metrics
            .errors
            .get_or_create(&super::super::metrics::ErrorLabels {
                kind: "Resync".into(),
                error: "kube".into(),
            })
            .inc();
        metrics.count_operations(&crate::plan::Summary::default());
        let ready = Readiness::waiting_for(&["Tracker"]);
        assert_eq!(get("/healthz", &metrics, &ready).await.0, StatusCode::OK);
        assert_eq!(
            get("/readyz", &metrics, &ready).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "watches not synced yet: Tracker\n".to_owned()
            )
        );
        ready.synced("Tracker");
        assert_eq!(get("/readyz", &metrics, &ready).await.0, StatusCode::OK);
        let (status, text) = get("/metrics", &metrics, &ready).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("trellis_reconciles_total{kind=\"Resync\"} 1"),
            "{text}"
        );
        for name in [
            "trellis_reconcile_errors",
            "trellis_reconcile_duration_seconds",
            "trellis_sync_operations",
            "trellis_queue_depth",
        ] {
            assert!(text.contains(&format!("# TYPE {name}")), "{name} in {text}");
        }
        assert_eq!(
            get("/nope", &metrics, &ready).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

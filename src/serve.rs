//! The accept loop of Trellis's three small HTTP/1 servers (the
//! controller's probes and metrics, the webhook receiver, the web UI): each
//! connection on a task of its own, until `shutdown`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Serves `answer` on `listener` until `shutdown`; `what` names the server
/// in the debug log of a connection that ended badly.
pub async fn http1<A, F>(
    listener: tokio::net::TcpListener,
    what: &'static str,
    answer: Arc<A>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    A: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let reply = answer(request);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "{what} connection ended");
            }
        });
    }
}

//! Requests to an HTTP tracker (Redmine, Jira): the credentials header,
//! retries with backoff, and error messages a person can act on.
//!
//! The secret travels only in one header, marked sensitive, never in a URL,
//! so neither reqwest's errors (which quote the URL) nor Trellis's own
//! messages can show it. Redirects are not followed: reqwest strips only
//! the standard credential headers on a redirect to another host, and
//! Redmine's would travel with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::limit::{Limiter, limiter};
use crate::spec::RateLimit;

/// A secret: it has no `Display`, and its `Debug` hides it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The secret's bytes, to check a webhook delivery's proof with.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// How a request proves who sends it.
pub enum Auth<'a> {
    /// The key as the value of a header of its own, named in lower case
    /// (Redmine's `x-redmine-api-key`).
    Header(&'static str, &'a ApiKey),
    /// `Authorization: Bearer KEY` (a Jira Data Center personal access token).
    Bearer(&'a ApiKey),
    /// `Authorization: Basic base64(user:key)` (Jira Cloud: account email and API token).
    Basic { user: &'a str, key: &'a ApiKey },
}

impl Auth<'_> {
    fn header(&self) -> Result<(HeaderName, HeaderValue), String> {
        use base64::Engine as _;
        let (name, value) = match self {
            Auth::Header(name, key) => (HeaderName::from_static(name), key.0.clone()),
            Auth::Bearer(key) => (AUTHORIZATION, format!("Bearer {}", key.0)),
            Auth::Basic { user, key } => {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", key.0));
                (AUTHORIZATION, format!("Basic {pair}"))
            }
        };
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| "the API key holds characters an HTTP header cannot carry".to_owned())?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

/// How transient failures (429, 5xx, timeouts, refused connections) are retried.
#[derive(Clone, Debug)]
pub struct Retry {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// The first wait; each further wait doubles, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest wait, also the cap on a server's `Retry-After`.
    pub max_delay: Duration,
    /// No new attempt starts this long after the first one, unless the
    /// server asked for the wait (`Retry-After`): a server that went away
    /// stops a run within seconds, not after every backoff.
    pub budget: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            budget: Duration::from_secs(15),
        }
    }
}

/// A failed request, described for a person.
#[derive(Debug)]
pub struct HttpError {
    pub status: Option<StatusCode>,
    pub message: String,
}

/// What a server's non-success status means, with the server's own
/// messages from the body: each tracker knows its error bodies.
pub type Describe = fn(StatusCode, &str) -> String;

pub struct Http {
    client: reqwest::Client,
    base: Url,
    retry: Retry,
    requests: AtomicU64,
    /// Writes (PUT, POST, DELETE) the server accepted.
    writes: AtomicU64,
    /// The server's name in messages (`Redmine`, `Jira`).
    server: &'static str,
    describe: Describe,
    /// Set once a request gave up on an unreachable or failing server:
    /// every later write of this client fails at once with it, so that a
    /// run of many writes stops instead of retrying each one (reads still
    /// try: a later pass with this client may find the server back).
    gone: OnceLock<String>,
    /// The server's turns, shared with every other client of it.
    limiter: Arc<Limiter>,
}

impl Http {
    pub fn new(
        server: &'static str,
        base: Url,
        auth: Auth<'_>,
        retry: Retry,
        limit: Option<RateLimit>,
        describe: Describe,
    ) -> Result<Http, String> {
        let (name, value) = auth.header()?;
        let mut headers = HeaderMap::new();
        headers.insert(name, value);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("trellis/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Http {
            client,
            limiter: limiter(&base, limit),
            base,
            retry,
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            server,
            describe,
            gone: OnceLock::new(),
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The pause before try `attempt` + 1: doubling from the base delay, at
    /// most the longest wait.
    pub fn backoff(&self, attempt: u32) -> Duration {
        (self.retry.base_delay * 2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.retry.max_delay)
    }

    /// Whether the server stopped answering (a request gave up after its
    /// retries): writers stop their run instead of trying every write.
    pub fn unreachable(&self) -> bool {
        self.gone.get().is_some()
    }

    /// The error that ends a run of writes once the server stopped
    /// answering: what was made, and that nothing more was tried.
    pub fn stopped(&self) -> crate::tracker::TrackerError {
        crate::tracker::TrackerError::Remote {
            operation: format!("write to {}", self.server),
            message: format!(
                "{}; {} write(s) were made before that and nothing more was tried: the next run journals them and writes the rest",
                self.gone
                    .get()
                    .map_or("the server stopped answering", String::as_str),
                self.writes.load(Ordering::Relaxed)
            ),
            status: None,
        }
    }

    fn give_up(&self, message: &str) {
        let why = format!(
            "{} at {} stopped answering ({message})",
            self.server, self.base
        );
        let _ = self.gone.set(why);
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, HttpError> {
        self.read(Method::GET, path, query, None).await
    }

    /// Sends `body` and reads the JSON answer (searches that take a body).
    pub async fn post_for<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, HttpError> {
        self.read(Method::POST, path, &[], Some(body)).await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, HttpError> {
        let (_, body) = self.send(method.clone(), path, query, body).await?;
        serde_json::from_slice(&body).map_err(|e| HttpError {
            status: None,
            message: format!(
                "{}'s answer to {method} {path} is not the expected JSON: {e}",
                self.server
            ),
        })
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> Result<(), HttpError> {
        self.write(Method::PUT, path, Some(body)).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Result<(), HttpError> {
        self.write(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), HttpError> {
        self.write(Method::DELETE, path, None).await
    }

    async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(), HttpError> {
        if let Some(why) = self.gone.get() {
            return Err(HttpError {
                status: None,
                message: format!("{method} {path} not sent: {why}"),
            });
        }
        self.send(method, path, &[], body).await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends one request, retrying transient failures; the status and body
    /// of a 2xx answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), HttpError> {
        let server = self.server;
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| HttpError {
                status: None,
                message: format!("bad request path {path}: {e}"),
            })?;
        let first = std::time::Instant::now();
        let mut attempt = 1;
        // A server that says when to come back (`Retry-After`) is alive:
        // its wait is honoured, and the budget is only for our own backoff.
        let mut paced_by_server = false;
        loop {
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .query(query);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let turn = self.limiter.turn().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let gave_up = attempt >= self.retry.attempts
                || (!paced_by_server && first.elapsed() >= self.retry.budget);
            let hint = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if let Some(wait) = quota_reset(response.headers()) {
                        tracing::warn!(
                            wait_ms = wait.as_millis() as u64,
                            "{server}'s rate limit is used up; every request waits for its reset"
                        );
                        self.limiter.pause(wait.min(self.retry.max_delay));
                    }
                    if status.is_success() {
                        let bytes = response.bytes().await.map_err(|e| HttpError {
                            status: None,
                            message: format!(
                                "reading {server}'s answer to {method} {path}: {}",
                                explain(&e)
                            ),
                        })?;
                        return Ok((status, bytes.to_vec()));
                    }
                    if status.is_redirection() {
                        let to = response
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|l| l.to_str().ok())
                            .unwrap_or("another address");
                        return Err(HttpError {
                            status: Some(status),
                            message: format!(
                                "{server} at {} redirects {method} {path} to {to} ({status}); set spec.url to the address it redirects to",
                                self.base
                            ),
                        });
                    }
                    if !transient(status) {
                        let text = response.text().await.unwrap_or_default();
                        return Err(HttpError {
                            status: Some(status),
                            message: (self.describe)(status, &text),
                        });
                    }
                    if gave_up {
                        let message = format!(
                            "{} (gave up after {attempt} attempts)",
                            (self.describe)(status, "")
                        );
                        self.give_up(&message);
                        return Err(HttpError {
                            status: Some(status),
                            message,
                        });
                    }
                    let asked = retry_after(response.headers());
                    if let Some(wait) = asked.filter(|w| *w > self.retry.max_delay) {
                        return Err(HttpError {
                            status: Some(status),
                            message: format!(
                                "{}, and asks to wait {} s before trying again; run again later",
                                (self.describe)(status, ""),
                                wait.as_secs()
                            ),
                        });
                    }
                    if let Some(wait) = asked {
                        self.limiter.pause(wait);
                    }
                    tracing::warn!(%method, path, attempt, status = status.as_u16(), "{server} request failed; retrying");
                    asked
                }
                Err(e) => {
                    let reachable = !(e.is_timeout() || e.is_connect() || e.is_request());
                    if reachable || gave_up {
                        let tries = if gave_up {
                            format!(" (gave up after {attempt} attempts)")
                        } else {
                            String::new()
                        };
                        let message = format!(
                            "{method} {path} to {server} at {}: {}{tries}; check spec.url and that the server is up",
                            self.base,
                            explain(&e)
                        );
                        if !reachable {
                            self.give_up(&message);
                        }
                        return Err(HttpError {
                            status: None,
                            message,
                        });
                    }
                    tracing::warn!(%method, path, attempt, error = %explain(&e), "{server} request failed; retrying");
                    None
                }
            };
            drop(turn);
            paced_by_server = hint.is_some();
            let wait = match hint {
                Some(asked) => asked.min(self.retry.max_delay),
                None => self
                    .backoff(attempt)
                    .min(self.retry.max_delay)
                    .min(self.retry.budget.saturating_sub(first.elapsed())),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// The longest a request may take: a server that accepts connections and
/// never answers stops a run within this (with the retry budget, ~30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);

/// A transport error's causes (reqwest's own text is only "error sending
/// request"); none of them carries a header.
fn explain(e: &reqwest::Error) -> String {
    let mut text = String::from(if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Worth another try: rate limits and server-side failures.
fn transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// How long until the server's quota is refilled, once it says none is
/// left (Jira: `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset`, an ISO
/// 8601 time).
fn quota_reset(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if text("x-ratelimit-remaining")?.parse::<u64>().ok()? != 0 {
        return None;
    }
    let at: jiff::Timestamp = text("x-ratelimit-reset")?.parse().ok()?;
    Duration::try_from(at.duration_since(jiff::Timestamp::now())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_quota_waits_for_its_reset() {
        let mut headers = HeaderMap::new();
        let reset = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30)).to_string();
        headers.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert_eq!(quota_reset(&headers), None, "some quota is left");
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let wait = quota_reset(&headers).expect("none is left");
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2020-01-01T00:00:00Z"),
        );
        assert_eq!(quota_reset(&headers), None, "a reset in the past: no wait");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a past date: now"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn keys_do_not_show_in_debug_output() {
        let key = ApiKey::new("0123456789abcdef");
        assert!(!format!("{key:?}").contains("0123"));
    }
}

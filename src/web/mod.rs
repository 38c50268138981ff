//! The web UI (`trellis ui`): server-rendered pages over the engine, as
//! thin a shell as the command line. Reading needs no JavaScript; the one
//! script (assets/app.js) only adds dragging rows and keyboard moves, which
//! post the same form a person can fill in by hand.
//!
//! Safe by default: every string from a tracker or a declaration is escaped
//! ([`html::esc`]); every action is a POST carrying the process's CSRF
//! token, from this origin (`Origin` and `Sec-Fetch-Site` checked when the
//! browser sends them); `trellis ui`, which has no sign-in, refuses a
//! `Host` that is not an address or `localhost` (DNS rebinding); and the
//! Content-Security-Policy allows only
//! this server's own script and style.

mod access;
mod actions;
mod html;
mod pages;
mod runs;

use access::Mode;
pub use access::{Cluster, Object, Person, Verb};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

use crate::engine::{EngineError, off_the_runtime, remembered};
use crate::spec::Catalog;
use crate::store::{SqliteStore, Store};

/// What every response carries: only this server's script and style, no
/// framing, no referrer to other sites (a no-referrer policy would make Chromium send `Origin: null`), no sniffing, no caching of pages with a token.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// Forms are small: a move names three rows.
const MAX_FORM: usize = 16 * 1024;

/// The name of the cookie the sign-in page sets (the controller's UI).
const TOKEN_COOKIE: &str = "trellis-token";

/// The UI of one store.
pub struct Ui {
    state: PathBuf,
    mode: Mode,
    csrf: String,
    /// The runs this UI started, by number (from 1).
    runs: std::sync::Mutex<Vec<Arc<runs::UiRun>>>,
}

impl Ui {
    /// `trellis ui`: acting as `author`, over `files` (none: the
    /// declarations last applied).
    pub fn local(state: PathBuf, files: Vec<PathBuf>, author: String) -> std::io::Result<Ui> {
        Ui::new(state, Mode::Local { files, author })
    }

    /// The controller's UI: people sign in with their own token.
    pub fn in_cluster(state: PathBuf, cluster: Arc<dyn Cluster>) -> std::io::Result<Ui> {
        Ui::new(state, Mode::Cluster(cluster))
    }

    fn new(state: PathBuf, mode: Mode) -> std::io::Result<Ui> {
        let mut bytes = [0u8; 24];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        Ok(Ui {
            state,
            mode,
            csrf: crate::model::hex(&bytes),
            runs: std::sync::Mutex::default(),
        })
    }

    fn reader(&self) -> Result<SqliteStore, WebError> {
        Ok(SqliteStore::open_read_only(&self.state)?)
    }

    fn catalog<S: Store>(&self, store: &S) -> Result<Arc<Catalog>, WebError> {
        match &self.mode {
            Mode::Local { files, .. } if files.is_empty() => Ok(Arc::new(remembered(store)?)),
            Mode::Local { files, .. } => Ok(Arc::new(Catalog::load(files)?)),
            Mode::Cluster(cluster) => Ok(cluster.catalog()),
        }
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        match &self.mode {
            Mode::Local { .. } => None,
            Mode::Cluster(cluster) => Some(&**cluster),
        }
    }

    /// Who sent `asked`: the local person, or the owner of its token.
    async fn person(&self, asked: &Asked) -> Result<Person, WebError> {
        let cluster = match &self.mode {
            Mode::Local { author, .. } => {
                return Ok(Person {
                    name: author.clone(),
                    ..Person::default()
                });
            }
            Mode::Cluster(cluster) => cluster,
        };
        let Some(token) = &asked.token else {
            return Err(WebError::sign_in("sign in with your Kubernetes token"));
        };
        cluster.person(token).await.map_err(|why| {
            WebError::sign_in(format!(
                "your token was not accepted ({why}); sign in again"
            ))
        })
    }

    /// Whether `person` may `verb` structure `id` (always, locally).
    async fn may(&self, person: &Person, verb: Verb, id: &str) -> Result<bool, WebError> {
        match self.cluster() {
            None => Ok(true),
            Some(cluster) => cluster.may(person, verb, id).await.map_err(|why| {
                WebError::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "the cluster could not say whether you may {} {id}: {why}",
                        verb.as_str()
                    ),
                )
            }),
        }
    }

    /// Refused unless `person` may `verb` structure `id`.
    async fn allow(&self, person: &Person, verb: Verb, id: &str) -> Result<(), WebError> {
        if self.may(person, verb, id).await? {
            return Ok(());
        }
        let (namespace, name) = id.split_once('/').unwrap_or(("default", id));
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not {} structures/{name} in namespace {namespace}: ask for the trellis-{} role there",
                person.name,
                verb.as_str(),
                verb.level()
            ),
        ))
    }

    /// A whole page for `person` (none: not signed in).
    fn page(&self, title: &str, person: Option<&Person>, body: &str) -> String {
        self.page_refreshed(title, person, body, None)
    }

    /// A page that reloads itself every `refresh` seconds (while runs go on).
    fn page_refreshed(
        &self,
        title: &str,
        person: Option<&Person>,
        body: &str,
        refresh: Option<u32>,
    ) -> String {
        let who = match (person, &self.mode) {
            (None, _) => String::new(),
            (Some(person), Mode::Local { .. }) => format!("acting as {}", html::esc(&person.name)),
            (Some(person), Mode::Cluster(_)) => format!(
                "signed in as {} {}",
                html::esc(&person.name),
                html::button("/logout", &self.csrf, &[], "Sign out")
            ),
        };
        html::page(title, &who, &self.csrf, body, refresh)
    }
}

/// A page or an action's answer.
pub(crate) enum Reply {
    Html(String),
    /// After an action: where its result shows (303 See Other).
    Redirect(String),
    Asset(&'static str, &'static str),
    /// After signing in or out: the token cookie to set (empty: cleared),
    /// and where to go.
    Cookie(String, String),
}

/// Why a request was not served, said on an escaped error page.
#[derive(Debug)]
pub(crate) struct WebError {
    status: StatusCode,
    message: String,
}

impl WebError {
    fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
        }
    }

    fn not_found(what: impl Into<String>) -> WebError {
        WebError::new(StatusCode::NOT_FOUND, what)
    }

    /// No one is signed in: the sign-in page says `why`.
    fn sign_in(why: impl Into<String>) -> WebError {
        WebError::new(StatusCode::UNAUTHORIZED, why)
    }
}

impl From<EngineError> for WebError {
    fn from(error: EngineError) -> WebError {
        let status = match &error {
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Refused(_) | EngineError::TrackerChanged { .. } => StatusCode::CONFLICT,
            EngineError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            EngineError::Tracker { .. } | EngineError::PartlyApplied { .. } => {
                StatusCode::BAD_GATEWAY
            }
            _ => StatusCode::BAD_REQUEST,
        };
        WebError::new(status, error.to_string())
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(error: crate::store::StoreError) -> WebError {
        EngineError::from(error).into()
    }
}

impl From<crate::spec::NameError> for WebError {
    fn from(error: crate::spec::NameError) -> WebError {
        WebError::not_found(error.to_string())
    }
}

impl From<crate::spec::SpecErrors> for WebError {
    fn from(error: crate::spec::SpecErrors) -> WebError {
        EngineError::from(error).into()
    }
}

/// Binds `address` (port 0: any free port).
pub async fn bind(address: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the UI on {address}: {e}"))
}

/// Serves `ui` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ui: Arc<Ui>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let answer = move |request| {
        let ui = ui.clone();
        async move { answer(request, &ui).await }
    };
    crate::serve::http1(listener, "UI", Arc::new(answer), shutdown).await
}

/// A request as the pages read it.
pub(crate) struct Asked {
    method: Method,
    /// The `Host` it was sent to.
    host: String,
    segments: Vec<String>,
    /// The query's pairs, decoded.
    query: Vec<(String, String)>,
    /// A POST's form fields, decoded.
    form: Vec<(String, String)>,
    /// The bearer token it carries (header, else cookie).
    token: Option<String>,
}

impl Asked {
    /// The first query value of `name`, if not empty.
    fn param(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    fn field(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

async fn answer(request: Request<Incoming>, ui: &Ui) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let result = match read(request).await {
        Ok(asked) => {
            // Pages and actions read and write SQLite and may plan: they
            // leave the runtime, so that other requests are answered.
            off_the_runtime(route(&asked, ui))
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(reply) => finish(reply),
        // Pages send a person who is not signed in to the sign-in page.
        Err(error) if error.status == StatusCode::UNAUTHORIZED && method == Method::GET => finish(
            Reply::Redirect(format!("/login?why={}", html::url(&error.message))),
        ),
        Err(error) => {
            tracing::info!(%method, %path, status = error.status.as_u16(), message = %error.message, "UI request refused");
            let body = format!(r#"<p class="error">{}</p>"#, html::esc(&error.message));
            let title = error.status.canonical_reason().unwrap_or("Error");
            let mut response = finish(Reply::Html(ui.page(title, None, &body)));
            *response.status_mut() = error.status;
            response
        }
    }
}

/// Checks where a request comes from, reads its form, and splits its path.
async fn read(request: Request<Incoming>) -> Result<Asked, WebError> {
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = header(header::HOST).unwrap_or_default();
    let method = request.method().clone();
    let segments: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            form_urlencoded::parse(format!("s={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let query = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let bearer = header(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned()));
    let cookie = header(header::COOKIE).and_then(|cookies| {
        cookies.split(';').find_map(|c| {
            c.trim()
                .strip_prefix(TOKEN_COOKIE)
                .and_then(|v| v.strip_prefix('='))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
    });
    let token = bearer.or(cookie);
    let mut form = Vec::new();
    if method == Method::POST {
        let origin = header(header::ORIGIN);
        let same_origin = origin.as_deref().is_none_or(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                == Some(host.as_str())
        });
        let site = header(header::HeaderName::from_static("sec-fetch-site"));
        if !same_origin || site.as_deref().is_some_and(|s| s != "same-origin") {
            return Err(WebError::new(
                StatusCode::FORBIDDEN,
                "actions are taken only from this UI's own pages",
            ));
        }
        let body = Limited::new(request.into_body(), MAX_FORM)
            .collect()
            .await
            .map_err(|_| WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"))?
            .to_bytes();
        form = form_urlencoded::parse(&body).into_owned().collect();
    }
    Ok(Asked {
        method,
        host,
        segments,
        query,
        form,
        token,
    })
}

/// A `Host` naming an IP address or localhost: a name that resolves here by
/// someone else's DNS (rebinding) is not this UI's.
fn local_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

async fn route(asked: &Asked, ui: &Ui) -> Result<Reply, WebError> {
    // `trellis ui` has no sign-in: a page some other site's name resolves
    // to here (DNS rebinding) must not act as its person. The controller's
    // UI may sit behind an ingress's name: its people sign in.
    if ui.cluster().is_none() && !local_host(&asked.host) {
        return Err(WebError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this UI answers only at an address or localhost, not at host {:?}",
                asked.host
            ),
        ));
    }
    let segments: Vec<&str> = asked.segments.iter().map(String::as_str).collect();
    let post = asked.method == Method::POST;
    if post {
        let given = asked.field("csrf").unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(ui.csrf.as_bytes())) {
            return Err(WebError::new(
                StatusCode::FORBIDDEN,
                "this form is from an earlier run of the UI, or from elsewhere; reload the page and try again",
            ));
        }
    } else if asked.method != Method::GET && asked.method != Method::HEAD {
        return Err(WebError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "pages are read with GET and actions posted",
        ));
    }
    match (post, segments.as_slice()) {
        (false, ["assets", "app.css"]) => Ok(Reply::Asset(
            "text/css; charset=utf-8",
            include_str!("assets/app.css"),
        )),
        (false, ["assets", "app.js"]) => Ok(Reply::Asset(
            "text/javascript; charset=utf-8",
            include_str!("assets/app.js"),
        )),
        (false, ["assets", "icon.svg"]) => Ok(Reply::Asset(
            "image/svg+xml",
            include_str!("assets/icon.svg"),
        )),
        (false, ["login"]) => Ok(Reply::Html(ui.page(
            "Sign in",
            None,
            &pages::sign_in(asked, ui),
        ))),
        (true, ["login"]) => sign_in(asked, ui).await,
        (true, ["logout"]) => Ok(Reply::Cookie(String::new(), "/login".to_owned())),
        (true, _) => {
            let person = ui.person(asked).await?;
            actions::act(&segments, asked, ui, &person).await
        }
        (false, _) => {
            let person = ui.person(asked).await?;
            pages::serve_page(&segments, asked, ui, &person).await
        }
    }
}

/// The sign-in form's token, checked with the cluster before it is kept
/// (in an HttpOnly, SameSite=Strict cookie).
async fn sign_in(asked: &Asked, ui: &Ui) -> Result<Reply, WebError> {
    let Some(cluster) = ui.cluster() else {
        return Ok(Reply::Redirect("/".to_owned()));
    };
    let token = asked
        .field("token")
        .ok_or_else(|| WebError::sign_in("paste your token to sign in"))?;
    let person = cluster.person(token.trim()).await.map_err(|why| {
        WebError::new(
            StatusCode::UNAUTHORIZED,
            format!("the cluster did not accept this token ({why})"),
        )
    })?;
    tracing::info!(person = %person.name, "signed in to the UI");
    Ok(Reply::Cookie(token.trim().to_owned(), "/".to_owned()))
}

fn finish(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = match reply {
        Reply::Html(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Reply::Redirect(to) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(to) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(header::LOCATION, to);
            }
            response
        }
        Reply::Cookie(token, to) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SEE_OTHER;
            let max_age = if token.is_empty() { "; Max-Age=0" } else { "" };
            let cookie =
                format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{max_age}");
            for (name, value) in [(header::SET_COOKIE, cookie), (header::LOCATION, to)] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Reply::Asset(kind, body) => {
            let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            response
        }
    };
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_localhost_are_this_uis_hosts() {
        for host in ["127.0.0.1:8090", "localhost:8090", "[::1]:8090", "10.0.0.5"] {
            assert!(local_host(host), "{host}");
        }
        for host in ["evil.example:8090", "", "127.0.0.1.nip.io:80"] {
            assert!(!local_host(host), "{host}");
        }
    }
}

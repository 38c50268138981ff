//! An in-memory Kubernetes API server on 127.0.0.1, for running the real
//! `trellis controller` binary through the protocol a real server speaks:
//! paged LISTs that carry a resourceVersion, WATCHes that replay every
//! change after the version asked for and then stream new ones as JSON
//! lines, bookmarks when asked for, the watch closed after
//! `timeoutSeconds`, `410 Expired` for a version it no longer has,
//! optimistic concurrency on PUT, server-side apply, merge and JSON
//! patches, the status subresource (spec and status change apart, only a
//! spec change bumps `generation`), and finalizers holding a deleted
//! object until they are gone.
//!
//! It is kinder than a real server in what it does not check: no
//! authentication or authorization, no schema validation, no field
//! ownership (an apply merges, except that the status's apply replaces it,
//! as a real server does for its only manager), no admission. Tests that need those run
//! against a real kube-apiserver (tests/cluster.rs).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Where an object lives: API group/version, resource (plural), namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub api: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

/// One change, as a watch sends it.
#[derive(Clone, Debug)]
struct Change {
    version: u64,
    api: String,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    version: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change so far, so that a watch from an older version replays
    /// what happened since (a real server's watch cache).
    history: Vec<Change>,
    /// Versions up to this one are compacted away: a watch from before it
    /// gets `410 Expired`, as after etcd compaction.
    compacted: u64,
    /// `METHOD path?query` of each request, in order.
    requests: Vec<String>,
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

#[derive(Clone)]
pub struct ApiServer {
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
    /// Bumped to end every open watch, as a restarting server does.
    restarts: Arc<tokio::sync::watch::Sender<u64>>,
    pub address: SocketAddr,
}

impl ApiServer {
    /// Starts serving on a free port of 127.0.0.1 (until the runtime ends).
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (changes, _) = broadcast::channel(4096);
        let server = ApiServer {
            state: Arc::default(),
            changes,
            restarts: Arc::new(tokio::sync::watch::channel(0).0),
            address: listener.local_addr().unwrap(),
        };
        let serving = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    /// A kubeconfig for this server, as `kubectl` and kube-rs read it.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: 'http://{}'}}\nusers:\n- name: fake\n  user: {{token: not-checked}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\ncurrent-context: fake\n",
            self.address
        )
    }

    /// Creates or replaces an object, as `kubectl apply` would.
    pub fn put(&self, plural: &str, object: Value) {
        let api = object["apiVersion"].as_str().unwrap().to_owned();
        let key = Key {
            api,
            plural: plural.into(),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .into(),
            name: object["metadata"]["name"].as_str().unwrap().into(),
        };
        let mut state = self.state.lock().unwrap();
        let previous = state.objects.get(&key).cloned();
        let object = match previous {
            Some(previous) => {
                let mut next = object;
                next["status"] = previous["status"].clone();
                next["metadata"] = previous["metadata"].clone();
                let generation = previous["metadata"]["generation"].as_i64().unwrap_or(1);
                if next["spec"] != previous["spec"] {
                    next["metadata"]["generation"] = json!(generation + 1);
                }
                next
            }
            None => fresh(object),
        };
        self.store(&mut state, key, object);
    }

    /// Deletes an object, as `kubectl delete` would: held while it has
    /// finalizers.
    pub fn delete(&self, plural: &str, api: &str, namespace: &str, name: &str) {
        let key = Key {
            api: api.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut state = self.state.lock().unwrap();
        self.remove(&mut state, &key);
    }

    /// The object stored under `plural/namespace/name`, if any.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .find(|(k, _)| k.plural == plural && k.namespace == namespace && k.name == name)
            .map(|(_, v)| v.clone())
    }

    /// Every object of `plural` (events, say).
    pub fn all(&self, plural: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .filter(|(k, _)| k.plural == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `METHOD path?query` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// A restart after etcd compaction: every open watch ends, and a
    /// watch from a version before now gets `410 Expired` and must list
    /// again.
    pub fn restart_compacted(&self) {
        let mut state = self.state.lock().unwrap();
        state.compacted = state.version + 1;
        state.history.clear();
        self.restarts.send_modify(|n| *n += 1);
    }

    fn store(&self, state: &mut State, key: Key, mut object: Value) -> Value {
        state.version += 1;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        let kind = if state.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.objects.insert(key.clone(), object.clone());
        self.record(state, &key, kind, object.clone());
        object
    }

    fn remove(&self, state: &mut State, key: &Key) -> Option<Value> {
        let mut object = state.objects.get(key)?.clone();
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            if object["metadata"]["deletionTimestamp"].is_null() {
                object["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string());
                return Some(self.store(state, key.clone(), object));
            }
            return Some(object);
        }
        state.objects.remove(key);
        state.version += 1;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        self.record(state, key, "DELETED", object.clone());
        Some(object)
    }

    fn record(&self, state: &mut State, key: &Key, kind: &'static str, object: Value) {
        let change = Change {
            version: state.version,
            api: key.api.clone(),
            plural: key.plural.clone(),
            namespace: key.namespace.clone(),
            kind,
            object,
        };
        state.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Body> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let content_type = request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.state
            .lock()
            .unwrap()
            .requests
            .push(format!("{method} {uri}"));
        let query: BTreeMap<String, String> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let Some(path) = Path::parse(uri.path()) else {
            return status(StatusCode::NOT_FOUND, "NotFound", "no such path");
        };
        match (method, &path.name) {
            (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true") => {
                self.watch(&path, &query)
            }
            (Method::GET, None) => self.list(&path, &query),
            (Method::GET, Some(_)) => match self.get_at(&path) {
                Some(object) => ok(StatusCode::OK, &object),
                None => not_found(&path),
            },
            (Method::POST, None) => self.create(&path, body),
            (Method::PUT, Some(_)) => self.replace(&path, body),
            (Method::PATCH, Some(_)) => self.patch(&path, &content_type, body),
            (Method::DELETE, Some(_)) => {
                let mut state = self.state.lock().unwrap();
                match self.remove(&mut state, &path.key()) {
                    Some(object) => ok(StatusCode::OK, &object),
                    None => not_found(&path),
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not supported",
            ),
        }
    }

    fn get_at(&self, path: &Path) -> Option<Value> {
        self.state.lock().unwrap().objects.get(&path.key()).cloned()
    }

    fn list(&self, path: &Path, query: &BTreeMap<String, String>) -> Response<Body> {
        let state = self.state.lock().unwrap();
        let all: Vec<&Value> = state
            .objects
            .iter()
            .filter(|(k, _)| path.holds(k))
            .map(|(_, v)| v)
            .collect();
        let start: usize = query
            .get("continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX);
        let page: Vec<&Value> = all.iter().skip(start).take(limit).copied().collect();
        let mut metadata = json!({"resourceVersion": state.version.to_string()});
        if start + page.len() < all.len() {
            metadata["continue"] = json!((start + page.len()).to_string());
            metadata["remainingItemCount"] = json!(all.len() - start - page.len());
        }
        ok(
            StatusCode::OK,
            &json!({
                "apiVersion": path.api,
                "kind": format!("{}List", kind_of(&path.plural)),
                "metadata": metadata,
                "items": page,
            }),
        )
    }

    fn watch(&self, path: &Path, query: &BTreeMap<String, String>) -> Response<Body> {
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        let timeout = Duration::from_secs(
            query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1800),
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let line = |value: Value| {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        {
            let state = self.state.lock().unwrap();
            if from != 0 && from < state.compacted {
                // A real server answers 200 and then an ERROR event.
                let _ = tx.send(line(json!({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("too old resource version: {from} ({})", state.compacted),
                    "reason": "Expired", "code": 410,
                }})));
                drop(tx);
                return stream(rx);
            }
            let mut subscription = self.changes.subscribe();
            let mut restarts = self.restarts.subscribe();
            for change in state.history.iter().filter(|c| c.version > from) {
                if path.sees(change) {
                    let _ = tx.send(line(json!({"type": change.kind, "object": change.object})));
                }
            }
            let last = state.version;
            let path = path.clone();
            let api = path.api.clone();
            let kind = kind_of(&path.plural);
            tokio::spawn(async move {
                if bookmarks {
                    let _ = tx.send(line(json!({"type": "BOOKMARK", "object": {
                        "apiVersion": api, "kind": kind,
                        "metadata": {"resourceVersion": last.to_string()},
                    }})));
                }
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => return,
                        _ = restarts.changed() => return,
                        change = subscription.recv() => match change {
                            Ok(change) if change.version > last && path.sees(&change) => {
                                if tx.send(line(json!({"type": change.kind, "object": change.object}))).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                }
            });
        }
        stream(rx)
    }

    fn create(&self, path: &Path, object: Value) -> Response<Body> {
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value",
            );
        };
        let key = Key { name, ..path.key() };
        let mut state = self.state.lock().unwrap();
        if state.objects.contains_key(&key) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{}\" already exists", path.plural, key.name),
            );
        }
        let mut object = fresh(object);
        if !key.namespace.is_empty() {
            object["metadata"]["namespace"] = json!(key.namespace);
        }
        let stored = self.store(&mut state, key, object);
        ok(StatusCode::CREATED, &stored)
    }

    fn replace(&self, path: &Path, mut object: Value) -> Response<Body> {
        let key = path.key();
        let mut state = self.state.lock().unwrap();
        let Some(previous) = state.objects.get(&key).cloned() else {
            return not_found(path);
        };
        let asked = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if !asked.is_empty() && asked != previous["metadata"]["resourceVersion"] {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            );
        }
        keep_server_fields(&previous, &mut object, path.subresource.as_deref());
        let stored = self.store(&mut state, key, object);
        ok(StatusCode::OK, &stored)
    }

    fn patch(&self, path: &Path, content_type: &str, patch: Value) -> Response<Body> {
        let key = path.key();
        let mut state = self.state.lock().unwrap();
        let previous = state.objects.get(&key).cloned();
        let apply = content_type.starts_with("application/apply-patch");
        let Some(previous) = previous else {
            // Server-side apply creates; status and other patches do not.
            if apply && path.subresource.is_none() {
                let stored = self.store(&mut state, key, fresh(patch));
                return ok(StatusCode::CREATED, &stored);
            }
            return not_found(path);
        };
        let mut next = previous.clone();
        if content_type.starts_with("application/json-patch") {
            if let Err(message) = json_patch(&mut next, &patch) {
                return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message);
            }
        } else if apply && path.subresource.as_deref() == Some("status") {
            // The controller is the status's only manager: what its apply
            // leaves out it no longer owns, and a real server removes it.
            next["status"] = patch["status"].clone();
        } else {
            merge(&mut next, &patch);
        }
        keep_server_fields(&previous, &mut next, path.subresource.as_deref());
        if next == previous {
            return ok(StatusCode::OK, &previous);
        }
        let finalized = !next["metadata"]["deletionTimestamp"].is_null()
            && next["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        let stored = self.store(&mut state, key.clone(), next);
        if finalized {
            self.remove(&mut state, &key);
        }
        ok(StatusCode::OK, &stored)
    }
}

/// A new object's server-set metadata.
fn fresh(mut object: Value) -> Value {
    static UIDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let uid = UIDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let metadata = &mut object["metadata"];
    metadata["uid"] = json!(format!("00000000-0000-0000-0000-{uid:012}"));
    metadata["generation"] = json!(1);
    metadata["creationTimestamp"] = json!(jiff::Timestamp::now().to_string());
    object
}

/// What a write cannot change: the status through the main resource,
/// everything but the status through `/status`; `generation` follows
/// spec changes only.
fn keep_server_fields(previous: &Value, next: &mut Value, subresource: Option<&str>) {
    if subresource == Some("status") {
        let status = next["status"].take();
        *next = previous.clone();
        next["status"] = status;
        return;
    }
    next["status"] = previous["status"].clone();
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
    ] {
        next["metadata"][field] = previous["metadata"][field].clone();
    }
    if next["spec"] != previous["spec"] {
        let generation = previous["metadata"]["generation"].as_i64().unwrap_or(1);
        next["metadata"]["generation"] = json!(generation + 1);
    }
    for v in ["status", "spec"] {
        if next[v].is_null()
            && let Some(map) = next.as_object_mut()
        {
            map.remove(v);
        }
    }
}

/// RFC 7386 merge patch (server-side apply is approximated by it).
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(target.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// RFC 6902 JSON patch: test, add, remove, replace.
fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    for op in patch.as_array().ok_or("a JSON patch is a list")? {
        let pointer = op["path"].as_str().ok_or("an operation needs a path")?;
        let (parent, last) = pointer.rsplit_once('/').ok_or("bad path")?;
        match op["op"].as_str() {
            Some("test") => {
                // As the API server's JSON patch does, a missing field
                // tests equal to null (kube's finalizer helper relies on it).
                if target.pointer(pointer).unwrap_or(&Value::Null) != &op["value"] {
                    return Err(format!("the test at {pointer} failed"));
                }
            }
            Some("remove") => {
                let container = target.pointer_mut(parent).ok_or("no such path")?;
                match container {
                    Value::Array(items) => {
                        let index: usize = last.parse().map_err(|_| "bad index")?;
                        if index >= items.len() {
                            return Err(format!("no element {index} at {parent}"));
                        }
                        items.remove(index);
                    }
                    Value::Object(map) => {
                        map.remove(last).ok_or("no such field")?;
                    }
                    _ => return Err("cannot remove there".into()),
                }
            }
            Some("add" | "replace") => {
                let value = op["value"].clone();
                if target.pointer(parent).is_none() && parent.matches('/').count() == 2 {
                    let (grand, field) = parent.rsplit_once('/').ok_or("bad path")?;
                    target
                        .pointer_mut(grand)
                        .and_then(Value::as_object_mut)
                        .ok_or("no such path")?
                        .insert(field.into(), json!({}));
                }
                let container = target.pointer_mut(parent).ok_or("no such path")?;
                match container {
                    Value::Array(items) if last == "-" => items.push(value),
                    Value::Array(items) => {
                        let index: usize = last.parse().map_err(|_| "bad index")?;
                        if index > items.len() {
                            return Err(format!("no element {index} at {parent}"));
                        }
                        if op["op"] == "replace" {
                            items[index] = value;
                        } else {
                            items.insert(index, value);
                        }
                    }
                    Value::Object(map) => {
                        map.insert(last.into(), value);
                    }
                    _ => return Err("cannot add there".into()),
                }
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

/// A request path: `/api/v1/...` or `/apis/GROUP/VERSION/...`, then
/// `namespaces/NS/` for namespaced resources, the resource, and an
/// optional name and subresource.
#[derive(Clone, Debug)]
struct Path {
    api: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

impl Path {
    fn parse(path: &str) -> Option<Path> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ((*version).to_owned(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
            rest => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(*name), None),
            [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
            _ => return None,
        };
        Some(Path {
            api,
            namespace,
            plural: plural.to_owned(),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        })
    }

    fn key(&self) -> Key {
        Key {
            api: self.api.clone(),
            plural: self.plural.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: self.name.clone().unwrap_or_default(),
        }
    }

    fn holds(&self, key: &Key) -> bool {
        key.api == self.api
            && key.plural == self.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }

    fn sees(&self, change: &Change) -> bool {
        change.api == self.api
            && change.plural == self.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == change.namespace)
    }
}

/// `synchronizers` → `Synchronizer`, for list kinds and bookmarks.
fn kind_of(plural: &str) -> String {
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut chars = singular.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn ok(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response =
        Response::new(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())).boxed_unsync());
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    ok(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(path: &Path) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "{} \"{}\" not found",
            path.plural,
            path.name.as_deref().unwrap_or_default()
        ),
    )
}

fn stream(rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>) -> Response<Body> {
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

//! A Jira test double: a real HTTP server on 127.0.0.1 with issues in
//! memory, answering Cloud's REST v3 or Data Center's REST v2 (chosen at
//! start) and the Agile API with the documented shapes: token paging on
//! Cloud, offset paging with a server-capped `maxResults` on Data Center,
//! `ErrorCollection` error bodies, 207 rank answers, 410 for the removed
//! `/rest/api/3/search`, and failures injected on demand (429 with
//! Retry-After, 5xx, 401, 403, 404, 409; a token revoked after N writes).
//!
//! Every request is checked against Atlassian's OpenAPI document (path,
//! method, query parameters, body) and every answer against the documented
//! schema of its status (see `openapi.rs`); what does not fit is recorded
//! in `violations`, which each test asserts empty.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::openapi::docs;

pub const EMAIL: &str = "ada@example.com";
pub const TOKEN: &str = "ATATT3xFfGF0-secret-token-0123456789";
pub const RANK_FIELD: &str = "customfield_10019";
/// Deliberately not a well-known id: the client must find it by type.
pub const EPIC_LINK_FIELD: &str = "customfield_10987";
/// Data Center grants at most this many issues per page, whatever is asked.
pub const DC_PAGE_CAP: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Cloud,
    DataCenter,
}

#[derive(Clone, Debug)]
pub struct JiraIssue {
    pub id: u64,
    pub key: String,
    pub summary: String,
    pub issue_type: String,
    pub status: String,
    /// Cloud: every level; Data Center: sub-tasks only.
    pub parent: Option<String>,
    /// Data Center's Epic Link (Cloud keeps the epic in `parent`).
    pub epic: Option<String>,
    pub updated: jiff::Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JiraLink {
    pub id: u64,
    pub type_name: String,
    /// The issue POSTed as `inwardIssue`: it “blocks” the outward one.
    pub inward: String,
    pub outward: String,
}

/// An injected failure: the next `times` requests whose method and path
/// match get `status` (with `Retry-After` when given).
struct Failure {
    method: String,
    path: String,
    status: u16,
    retry_after: Option<String>,
    times: u32,
}

pub struct State {
    pub flavor: Flavor,
    pub issues: BTreeMap<String, JiraIssue>,
    /// Keys in rank order.
    pub order: Vec<String>,
    pub links: Vec<JiraLink>,
    next_id: u64,
    /// Every request: `METHOD path?query` and its body.
    pub requests: Vec<(String, Option<Value>)>,
    pub violations: Vec<String>,
    failures: Vec<Failure>,
    /// Issues whose next rank attempts fail in a 207 answer (503 entries).
    pub rank_failures: HashMap<String, u32>,
    /// Statuses each status can move to (transitions of the workflow).
    pub workflow: BTreeMap<String, Vec<String>>,
    /// Permission keys the account lacks (`mypermissions`).
    pub denied: Vec<String>,
    /// Writes answered with success so far (searches and bulkfetch read).
    writes_made: usize,
    /// The token is refused (401) once this many writes were made.
    revoked_after: Option<usize>,
    /// How long each answer takes (a slow server), and the most requests
    /// seen waiting for an answer at once.
    pub delay: std::time::Duration,
    in_flight: usize,
    pub most_in_flight: usize,
}

impl State {
    fn api(&self) -> &'static str {
        match self.flavor {
            Flavor::Cloud => "/rest/api/3",
            Flavor::DataCenter => "/rest/api/2",
        }
    }

    fn bump(&mut self, key: &str) {
        let now = jiff::Timestamp::now();
        if let Some(issue) = self.issues.get_mut(key) {
            issue.updated = now;
        }
    }
}

pub struct Double {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Double {
    /// A double on its own thread and runtime, so that tests can drive it
    /// from async code and run the `trellis` binary against it alike.
    pub fn start(flavor: Flavor) -> Double {
        let workflow = [
            ("To Do", vec!["In Progress"]),
            ("In Progress", vec!["To Do", "Done"]),
            ("Done", vec!["In Progress"]),
        ]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), to.into_iter().map(str::to_owned).collect()))
        .collect();
        let state = Arc::new(Mutex::new(State {
            flavor,
            issues: BTreeMap::new(),
            order: Vec::new(),
            links: Vec::new(),
            next_id: 10000,
            requests: Vec::new(),
            violations: Vec::new(),
            failures: Vec::new(),
            rank_failures: HashMap::new(),
            workflow,
            denied: Vec::new(),
            writes_made: 0,
            revoked_after: None,
            delay: std::time::Duration::ZERO,
            in_flight: 0,
            most_in_flight: 0,
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = shared.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(serve(&state, request).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                            .await;
                    });
                }
            });
        });
        // Docs are parsed before the first request, not inside one.
        docs();
        Double { url, state }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Adds an issue at the end of the rank order; returns its key.
    pub fn add(&self, key: &str, issue_type: &str, parent: Option<&str>, epic: Option<&str>) {
        let mut state = self.state();
        state.next_id += 1;
        let issue = JiraIssue {
            id: state.next_id,
            key: key.to_owned(),
            summary: format!("{issue_type} {key}"),
            issue_type: issue_type.to_owned(),
            status: "To Do".into(),
            parent: parent.map(str::to_owned),
            epic: epic.map(str::to_owned),
            updated: "2026-11-20T10:00:00Z".parse().unwrap(),
        };
        state.order.push(key.to_owned());
        state.issues.insert(key.to_owned(), issue);
    }

    /// A link “inward <type> outward”, as Jira stores it.
    pub fn link(&self, type_name: &str, inward: &str, outward: &str) {
        let mut state = self.state();
        state.next_id += 1;
        let id = state.next_id;
        state.links.push(JiraLink {
            id,
            type_name: type_name.to_owned(),
            inward: inward.to_owned(),
            outward: outward.to_owned(),
        });
    }

    /// The next `times` requests `method path…` answer `status`.
    pub fn fail(
        &self,
        method: &str,
        path: &str,
        status: u16,
        retry_after: Option<&str>,
        times: u32,
    ) {
        self.state().failures.push(Failure {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            retry_after: retry_after.map(str::to_owned),
            times,
        });
    }

    /// Refuses the token (401 to every request) once `writes` more writes
    /// were made: a token revoked in the middle of a run.
    pub fn revoke_after(&self, writes: usize) {
        let mut state = self.state();
        state.revoked_after = Some(state.writes_made + writes);
    }

    /// Accepts the token again: a person issued a new one.
    pub fn restore_token(&self) {
        self.state().revoked_after = None;
    }

    /// Requests whose `METHOD path` starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|(r, _)| r.starts_with(prefix))
            .count()
    }

    pub fn assert_conformant(&self) {
        let state = self.state();
        assert!(
            state.violations.is_empty(),
            "the client or the double strayed from Atlassian's documents:\n{}",
            state.violations.join("\n")
        );
    }
}

fn error_body(messages: &[&str]) -> Value {
    json!({ "errorMessages": messages, "errors": {} })
}

async fn serve(state: &Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let delay = {
        let mut state = state.lock().unwrap();
        state.in_flight += 1;
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        state.delay
    };
    tokio::time::sleep(delay).await;
    let response = answer_request(state, request).await;
    state.lock().unwrap().in_flight -= 1;
    response
}

async fn answer_request(
    state: &Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method().to_string();
    // Jira Cloud through Atlassian's API gateway, as scoped API tokens
    // must be used: the same API under /ex/jira/{cloudId} (the request log
    // keeps the whole path).
    let full_path = request.uri().path().to_owned();
    let path = match full_path.strip_prefix("/ex/jira/") {
        Some(rest) => rest
            .find('/')
            .map_or_else(String::new, |slash| rest[slash..].to_owned()),
        None => full_path.clone(),
    };
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), percent_decoded(v)))
                .collect()
        })
        .unwrap_or_default();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body: Option<Value> = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
    let mut state = state.lock().unwrap();
    let line = match request_query(&query) {
        q if q.is_empty() => format!("{method} {full_path}"),
        q => format!("{method} {full_path}?{q}"),
    };
    state.requests.push((line.clone(), body.clone()));
    let operation = docs().operation(&method, &path);
    match &operation {
        Ok(op) => {
            let found = op.check_request(&query, body.as_ref());
            state
                .violations
                .extend(found.into_iter().map(|v| format!("{line}: {v}")));
        }
        Err(e) => state.violations.push(e.clone()),
    }
    let (status, headers, answer) =
        answer(&mut state, &method, &path, &query, body, &authorization);
    let reads = ["/search", "/search/jql", "/issue/bulkfetch"];
    let write = matches!(method.as_str(), "PUT" | "DELETE")
        || (method == "POST" && !reads.iter().any(|r| path.ends_with(r)));
    if write && status < 300 {
        state.writes_made += 1;
    }
    if let Ok(op) = &operation {
        let found = op.check_response(status, answer.as_ref());
        state
            .violations
            .extend(found.into_iter().map(|v| format!("{line}: {v}")));
    }
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    let bytes = answer.map(|a| a.to_string()).unwrap_or_default();
    response
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap()
}

/// A query value as sent (`BROWSE_PROJECTS%2CEDIT_ISSUES`), decoded.
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn request_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

type Answer = (u16, Vec<(&'static str, String)>, Option<Value>);

fn ok(value: Value) -> Answer {
    (200, Vec::new(), Some(value))
}

fn error(status: u16, message: &str) -> Answer {
    (status, Vec::new(), Some(error_body(&[message])))
}

fn answer(
    state: &mut State,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: Option<Value>,
    authorization: &str,
) -> Answer {
    let expected = match state.flavor {
        Flavor::Cloud => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"))
        ),
        Flavor::DataCenter => format!("Bearer {TOKEN}"),
    };
    let revoked = state
        .revoked_after
        .is_some_and(|writes| state.writes_made >= writes);
    if authorization != expected || revoked {
        return error(
            401,
            "You are not authenticated. Authentication required to perform this operation.",
        );
    }
    if let Some(at) = state
        .failures
        .iter()
        .position(|f| f.method == method && path.starts_with(&f.path))
    {
        let failure = &mut state.failures[at];
        failure.times -= 1;
        let (status, retry_after) = (failure.status, failure.retry_after.clone());
        if failure.times == 0 {
            state.failures.remove(at);
        }
        let headers = retry_after
            .map(|r| vec![("retry-after", r)])
            .unwrap_or_default();
        let message = match status {
            403 => "You do not have permission to perform this operation.",
            404 => "Issue does not exist or you do not have permission to see it.",
            409 => "A conflicting update is in progress; try again.",
            429 => "Rate limit exceeded.",
            _ => "Internal server error.",
        };
        return (status, headers, Some(error_body(&[message])));
    }
    let api = state.api();
    let Some(rest) = path.strip_prefix(api) else {
        if path == "/rest/agile/1.0/issue/rank" && method == "PUT" {
            return rank(state, body.unwrap_or_default());
        }
        return error(404, "No such resource.");
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["myself"]) => ok(match state.flavor {
            Flavor::Cloud => {
                json!({"accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian", "active": true, "displayName": "Ada", "emailAddress": EMAIL, "timeZone": "Europe/Berlin"})
            }
            Flavor::DataCenter => {
                json!({"name": "ada", "key": "JIRAUSER10100", "displayName": "Ada", "active": true, "timeZone": "Europe/Berlin"})
            }
        }),
        ("GET", ["mypermissions"]) => {
            let asked = param("permissions").unwrap_or_default();
            let permissions: serde_json::Map<String, Value> = asked
                .split(',')
                .filter(|k| !k.is_empty())
                .enumerate()
                .map(|(i, key)| {
                    let name = key
                        .split('_')
                        .map(|w| format!("{}{}", &w[..1], w[1..].to_lowercase()))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let granted = !state.denied.iter().any(|d| d == key);
                    (
                        key.to_owned(),
                        json!({"id": (10 + i).to_string(), "key": key, "name": name, "type": "PROJECT", "description": format!("Ability to {}.", name.to_lowercase()), "havePermission": granted}),
                    )
                })
                .collect();
            ok(json!({ "permissions": permissions }))
        }
        ("GET", ["field"]) => {
            let mut fields = vec![
                json!({"id": "summary", "name": "Summary", "custom": false, "schema": {"type": "string", "system": "summary"}}),
                json!({"id": RANK_FIELD, "name": "Rank", "custom": true, "schema": {"type": "any", "custom": "com.pyxis.greenhopper.jira:gh-lexo-rank", "customId": 10019}}),
                json!({"id": "customfield_10011", "name": "Epic Name", "custom": true, "schema": {"type": "string", "custom": "com.pyxis.greenhopper.jira:gh-epic-label", "customId": 10011}}),
            ];
            if state.flavor == Flavor::DataCenter {
                fields.push(json!({"id": EPIC_LINK_FIELD, "name": "Epic Link", "custom": true, "schema": {"type": "any", "custom": "com.pyxis.greenhopper.jira:gh-epic-link", "customId": 10987}}));
            }
            ok(Value::Array(fields))
        }
        ("POST", ["search"]) if state.flavor == Flavor::Cloud => error(
            410,
            "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046",
        ),
        ("POST", ["search", "jql"]) if state.flavor == Flavor::Cloud => {
            let body = body.unwrap_or_default();
            let keys = match search(state, body["jql"].as_str().unwrap_or_default()) {
                Ok(keys) => keys,
                Err(message) => return error(400, &message),
            };
            let start: usize = body["nextPageToken"]
                .as_str()
                .map(|t| t.trim_start_matches("page-").parse().unwrap())
                .unwrap_or(0);
            let size = body["maxResults"].as_u64().unwrap_or(50) as usize;
            let end = (start + size).min(keys.len());
            let fields = requested(&body["fields"]);
            let issues: Vec<Value> = keys[start..end]
                .iter()
                .map(|k| render(state, k, &fields))
                .collect();
            let mut page = json!({ "issues": issues, "isLast": end == keys.len() });
            if end < keys.len() {
                page["nextPageToken"] = json!(format!("page-{end}"));
            }
            ok(page)
        }
        ("POST", ["search"]) => {
            let body = body.unwrap_or_default();
            let keys = match search(state, body["jql"].as_str().unwrap_or_default()) {
                Ok(keys) => keys,
                Err(message) => return error(400, &message),
            };
            let start = body["startAt"].as_u64().unwrap_or(0) as usize;
            let size = (body["maxResults"].as_u64().unwrap_or(50) as usize).min(DC_PAGE_CAP);
            let end = (start + size).min(keys.len());
            let fields = requested(&body["fields"]);
            let issues: Vec<Value> = keys[start.min(end)..end]
                .iter()
                .map(|k| render(state, k, &fields))
                .collect();
            ok(
                json!({ "expand": "schema,names", "startAt": start, "maxResults": size, "total": keys.len(), "issues": issues }),
            )
        }
        ("POST", ["issue", "bulkfetch"]) if state.flavor == Flavor::Cloud => {
            let body = body.unwrap_or_default();
            let keys: Vec<String> = body["issueIdsOrKeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect();
            if keys.is_empty() || keys.len() > 100 {
                return error(400, "issueIdsOrKeys must hold 1 to 100 keys.");
            }
            let fields = requested(&body["fields"]);
            let mut found: Vec<&JiraIssue> =
                keys.iter().filter_map(|k| state.issues.get(k)).collect();
            found.sort_by_key(|i| i.id);
            let issues: Vec<Value> = found
                .iter()
                .map(|i| render(state, &i.key, &fields))
                .collect();
            ok(json!({ "issues": issues, "issueErrors": [] }))
        }
        ("GET", ["issue", key]) => match state.issues.contains_key(*key) {
            true => ok(render(
                state,
                key,
                &param("fields")
                    .map(|f| f.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )),
            false => error(
                404,
                "Issue does not exist or you do not have permission to see it.",
            ),
        },
        ("PUT", ["issue", key]) => edit(state, key, body.unwrap_or_default()),
        ("GET", ["issue", key, "transitions"]) => match state.issues.get(*key) {
            None => error(
                404,
                "Issue does not exist or you do not have permission to see it.",
            ),
            Some(issue) => {
                let to = state
                    .workflow
                    .get(&issue.status)
                    .cloned()
                    .unwrap_or_default();
                let transitions: Vec<Value> = to
                    .iter()
                    .enumerate()
                    .map(|(i, name)| json!({"id": (11 + i).to_string(), "name": format!("Move to {name}"), "to": {"name": name, "id": status_id(name)}, "hasScreen": false, "isAvailable": true}))
                    .collect();
                ok(json!({ "transitions": transitions }))
            }
        },
        ("POST", ["issue", key, "transitions"]) => {
            let Some(issue) = state.issues.get(*key) else {
                return error(
                    404,
                    "Issue does not exist or you do not have permission to see it.",
                );
            };
            let to = state
                .workflow
                .get(&issue.status)
                .cloned()
                .unwrap_or_default();
            let id: usize = body.unwrap_or_default()["transition"]["id"]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            match id.checked_sub(11).and_then(|i| to.get(i)) {
                Some(name) => {
                    let name = name.clone();
                    state.issues.get_mut(*key).unwrap().status = name;
                    state.bump(key);
                    (204, Vec::new(), None)
                }
                None => error(
                    400,
                    "It seems that you have tried to perform a workflow operation (transition) that is not valid for the current state of this issue.",
                ),
            }
        }
        ("POST", ["issueLink"]) => {
            let body = body.unwrap_or_default();
            let type_name = body["type"]["name"].as_str().unwrap_or_default().to_owned();
            let inward = body["inwardIssue"]["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let outward = body["outwardIssue"]["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !LINK_TYPES.iter().any(|(name, ..)| *name == type_name)
                || !state.issues.contains_key(&inward)
                || !state.issues.contains_key(&outward)
            {
                return error(404, "No issue link type with name or issue found.");
            }
            let exists = state
                .links
                .iter()
                .any(|l| l.type_name == type_name && l.inward == inward && l.outward == outward);
            if !exists {
                state.next_id += 1;
                let id = state.next_id;
                state.links.push(JiraLink {
                    id,
                    type_name,
                    inward: inward.clone(),
                    outward: outward.clone(),
                });
                state.bump(&inward);
                state.bump(&outward);
            }
            (201, Vec::new(), None)
        }
        ("DELETE", ["issueLink", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match state.links.iter().position(|l| l.id == id) {
                Some(at) => {
                    let link = state.links.remove(at);
                    state.bump(&link.inward);
                    state.bump(&link.outward);
                    (204, Vec::new(), None)
                }
                None => error(404, "No issue link with id exists."),
            }
        }
        ("GET", ["issueLinkType"]) => ok(json!({
            "issueLinkTypes": LINK_TYPES.iter().enumerate().map(|(i, (name, inward, outward))| json!({"id": (10000 + i).to_string(), "name": name, "inward": inward, "outward": outward})).collect::<Vec<_>>()
        })),
        _ => error(404, "No such resource."),
    }
}

const LINK_TYPES: &[(&str, &str, &str)] = &[
    ("Blocks", "is blocked by", "blocks"),
    ("Cloners", "is cloned by", "clones"),
    ("Duplicate", "is duplicated by", "duplicates"),
    ("Relates", "relates to", "relates to"),
];

fn status_id(name: &str) -> String {
    match name {
        "To Do" => "10000",
        "In Progress" => "3",
        _ => "10001",
    }
    .into()
}

fn requested(fields: &Value) -> Vec<String> {
    fields
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

fn is_epic(issue_type: &str) -> bool {
    issue_type == "Epic"
}

fn issue_type(state: &State, name: &str) -> Value {
    let subtask = name == "Sub-task";
    let mut value = json!({ "id": "1000", "name": name, "subtask": subtask });
    if state.flavor == Flavor::Cloud {
        let level = if subtask {
            -1
        } else if is_epic(name) {
            1
        } else {
            0
        };
        value["hierarchyLevel"] = json!(level);
    }
    value
}

/// One issue with the fields asked for, as Jira renders it.
fn render(state: &State, key: &str, fields: &[String]) -> Value {
    let issue = &state.issues[key];
    let api = state.api();
    let mut out = serde_json::Map::new();
    let wants = |name: &str| fields.iter().any(|f| f == name || f == "*all");
    if wants("summary") {
        out.insert("summary".into(), json!(issue.summary));
    }
    if wants("status") {
        let category = match issue.status.as_str() {
            "To Do" => ("new", "To Do"),
            "Done" => ("done", "Done"),
            _ => ("indeterminate", "In Progress"),
        };
        out.insert("status".into(), json!({"name": issue.status, "id": status_id(&issue.status), "statusCategory": {"key": category.0, "name": category.1}}));
    }
    if wants("issuetype") {
        out.insert("issuetype".into(), issue_type(state, &issue.issue_type));
    }
    if wants("parent")
        && let Some(parent) = issue.parent.as_ref().and_then(|p| state.issues.get(p))
    {
        out.insert("parent".into(), json!({"id": parent.id.to_string(), "key": parent.key, "self": format!("https://jira.example{api}/issue/{}", parent.id), "fields": {"summary": parent.summary, "issuetype": issue_type(state, &parent.issue_type)}}));
    }
    if wants("issuelinks") {
        let links: Vec<Value> = state
            .links
            .iter()
            .filter_map(|l| {
                let (side, other) = if l.inward == key {
                    ("outwardIssue", &l.outward)
                } else if l.outward == key {
                    ("inwardIssue", &l.inward)
                } else {
                    return None;
                };
                let (name, inward, outward) = LINK_TYPES.iter().find(|t| t.0 == l.type_name)?;
                Some(json!({
                    "id": l.id.to_string(),
                    "type": {"id": "10000", "name": name, "inward": inward, "outward": outward},
                    side: {"id": state.issues.get(other).map(|i| i.id.to_string()), "key": other, "fields": {"summary": state.issues.get(other).map(|i| i.summary.clone())}},
                }))
            })
            .collect();
        out.insert("issuelinks".into(), Value::Array(links));
    }
    if wants("updated") {
        out.insert(
            "updated".into(),
            json!(
                issue
                    .updated
                    .strftime("%Y-%m-%dT%H:%M:%S%.3f%z")
                    .to_string()
            ),
        );
    }
    if wants("priority") {
        out.insert("priority".into(), json!({"id": "3", "name": "Medium"}));
    }
    if wants("assignee") {
        out.insert("assignee".into(), Value::Null);
    }
    if wants(RANK_FIELD) {
        let at = state.order.iter().position(|k| k == key).unwrap();
        out.insert(RANK_FIELD.into(), json!(format!("0|i{:05}:", at * 8)));
    }
    if wants(EPIC_LINK_FIELD) && state.flavor == Flavor::DataCenter {
        out.insert(EPIC_LINK_FIELD.into(), json!(issue.epic));
    }
    json!({ "id": issue.id.to_string(), "key": issue.key, "self": format!("https://jira.example{api}/issue/{}", issue.id), "fields": out })
}

/// The small part of JQL the client and the tests send: clauses
/// `field op value` joined by AND, in parentheses, then ORDER BY.
fn search(state: &State, jql: &str) -> Result<Vec<String>, String> {
    let lower = jql.to_ascii_lowercase();
    let (condition, order) = match lower.find("order by") {
        Some(at) => (&jql[..at], lower[at + 8..].trim().to_owned()),
        None => (jql, String::new()),
    };
    if condition.trim().is_empty() && state.flavor == Flavor::Cloud {
        return Err("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.".into());
    }
    let clauses: Vec<String> = condition
        .split(" AND ")
        .map(|c| {
            c.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .trim()
                .to_owned()
        })
        .filter(|c| !c.is_empty())
        .collect();
    let mut keys = Vec::new();
    for issue in state.issues.values() {
        let mut all = true;
        for clause in &clauses {
            all &= matches(issue, clause)?;
        }
        if all {
            keys.push(issue.key.clone());
        }
    }
    let number = |k: &String| {
        k.rsplit_once('-')
            .map(|(_, n)| n.parse::<u64>().unwrap_or(0))
    };
    keys.sort_by_key(number);
    if order.starts_with("updated") {
        keys.sort_by_key(|k| state.issues[k].updated);
    }
    Ok(keys)
}

fn matches(issue: &JiraIssue, clause: &str) -> Result<bool, String> {
    let unquote = |v: &str| v.trim().trim_matches('"').to_owned();
    if let Some((field, values)) = clause.split_once(" in ") {
        let values: Vec<String> = values
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(unquote)
            .collect();
        return match field.trim() {
            "key" => Ok(values.contains(&issue.key)),
            "issuetype" => Ok(values.contains(&issue.issue_type)),
            other => Err(format!(
                "Field '{other}' does not exist or you do not have permission to view it."
            )),
        };
    }
    let (field, op, value) = [">=", "!=", "="]
        .iter()
        .find_map(|op| {
            clause
                .split_once(op)
                .map(|(f, v)| (f.trim(), *op, unquote(v)))
        })
        .ok_or_else(|| format!("Error in the JQL Query: expecting an operator in `{clause}`."))?;
    let actual = match field {
        "project" => issue
            .key
            .rsplit_once('-')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default(),
        "issuetype" => issue.issue_type.clone(),
        "status" => issue.status.clone(),
        "key" => issue.key.clone(),
        "parent" => issue.parent.clone().unwrap_or_default(),
        "updated" if op == ">=" => {
            let millis: i64 = value
                .parse()
                .map_err(|_| format!("Date value '{value}' for field 'updated' is invalid."))?;
            return Ok(issue.updated.as_millisecond() >= millis);
        }
        other => {
            return Err(format!(
                "Field '{other}' does not exist or you do not have permission to view it."
            ));
        }
    };
    Ok(match op {
        "=" => actual == value,
        "!=" => actual != value,
        _ => {
            return Err(format!(
                "Operator '{op}' is not supported by the '{field}' field."
            ));
        }
    })
}

fn edit(state: &mut State, key: &str, body: Value) -> Answer {
    let Some(issue) = state.issues.get(key).cloned() else {
        return error(
            404,
            "Issue does not exist or you do not have permission to see it.",
        );
    };
    let mut changed = issue.clone();
    if let Some(parent) = body["fields"].get("parent") {
        let Some(to) = parent["key"]
            .as_str()
            .filter(|k| state.issues.contains_key(*k))
        else {
            return (
                400,
                Vec::new(),
                Some(
                    json!({"errorMessages": [], "errors": {"parent": "Could not find issue by id or key."}}),
                ),
            );
        };
        if state.flavor == Flavor::DataCenter && issue.issue_type != "Sub-task" {
            return (
                400,
                Vec::new(),
                Some(
                    json!({"errorMessages": [], "errors": {"parent": "Field 'parent' cannot be set. It is not on the appropriate screen, or unknown."}}),
                ),
            );
        }
        changed.parent = Some(to.to_owned());
    }
    if body["update"]["parent"][0]["set"]["none"] == true {
        changed.parent = None;
    }
    if let Some(epic) = body["fields"].get(EPIC_LINK_FIELD) {
        if state.flavor == Flavor::Cloud {
            return (
                400,
                Vec::new(),
                Some(
                    json!({"errorMessages": [], "errors": {EPIC_LINK_FIELD: "Field does not exist."}}),
                ),
            );
        }
        changed.epic = epic.as_str().map(str::to_owned);
    }
    state.issues.insert(key.to_owned(), changed);
    state.bump(key);
    (204, Vec::new(), None)
}

/// `PUT /rest/agile/1.0/issue/rank`: moves the issues, in order, after or
/// before the anchor; issues set to fail stay and get 503 entries (207).
fn rank(state: &mut State, body: Value) -> Answer {
    let issues: Vec<String> = requested(&body["issues"]);
    if issues.is_empty() || issues.len() > 50 {
        return error(400, "At most 50 issues may be ranked at once.");
    }
    let (anchor, after) = match (
        body["rankAfterIssue"].as_str(),
        body["rankBeforeIssue"].as_str(),
    ) {
        (Some(a), None) => (a.to_owned(), true),
        (None, Some(b)) => (b.to_owned(), false),
        _ => {
            return error(
                400,
                "Give exactly one of rankBeforeIssue and rankAfterIssue.",
            );
        }
    };
    if !state.order.contains(&anchor) || issues.iter().any(|i| !state.order.contains(i)) {
        return error(400, "Issue does not exist.");
    }
    let mut entries = Vec::new();
    let mut moving = Vec::new();
    for key in &issues {
        let failing = state.rank_failures.get_mut(key).filter(|n| **n > 0);
        let id = state.issues[key].id;
        match failing {
            Some(left) => {
                *left -= 1;
                entries.push(json!({"issueId": id, "issueKey": key, "status": 503, "errors": ["JIRA Agile cannot execute the rank operation at this time. Please try again later."]}));
            }
            None => {
                entries.push(json!({"issueId": id, "issueKey": key, "status": 200}));
                moving.push(key.clone());
            }
        }
    }
    state.order.retain(|k| !moving.contains(k));
    let at = state.order.iter().position(|k| *k == anchor).unwrap() + usize::from(after);
    for (i, key) in moving.iter().enumerate() {
        state.order.insert(at + i, key.clone());
    }
    for key in &moving {
        state.bump(key);
    }
    if moving.len() == issues.len() {
        (204, Vec::new(), None)
    } else {
        (207, Vec::new(), Some(json!({ "entries": entries })))
    }
}

//! Jira Cloud (REST v3) and Jira Data Center (REST v2), with the Agile API
//! for rank.
//!
//! - Cloud signs in with the account's email and an API token (Basic), Data
//!   Center with a personal access token (Bearer). The first use reads
//!   `/myself`, so a wrong token fails there, saying where it was read from.
//! - Custom fields are found in `/field` by schema type, never by id (ids
//!   differ per site): the rank (`gh-lexo-rank`) and, on Data Center, the
//!   Epic Link (`gh-epic-link`).
//! - Reads: Cloud pages `POST /rest/api/3/search/jql` with `nextPageToken`
//!   until `isLast` (it has no total; the old `/search` answers 410), Data
//!   Center `POST /rest/api/2/search` by `startAt` until `total`: the first
//!   page says the total and the page size the server grants (it may grant
//!   a smaller `maxResults` than asked), and the other pages then go
//!   [`DC_PAGES_AT_ONCE`] at a time (Cloud's tokens chain: one at a time).
//!   Fields are always listed: Cloud's default is the id alone.
//!   Every query is the tracker's scope (`spec.jira.jql`) ANDed with the
//!   synchronizer's, each in parentheses, `ORDER BY` clauses dropped.
//! - Parent and epic: Cloud keeps both in `fields.parent` at every level
//!   (an epic parent is also the issue's epic); Data Center keeps `parent`
//!   for sub-tasks only and the epic in the Epic Link field. A parent change
//!   of an issue that is not a sub-task has no field to go to on Data
//!   Center, so it is refused against that issue (its epic is changed by an
//!   agile synchronizer).
//! - Changed issues: `updated >= <epoch ms>` (unquoted milliseconds are
//!   read in UTC; a quoted date would be read in the account's time zone),
//!   floored to the minute, as JQL compares minutes; callers keep an
//!   overlap and dedupe ([`super::Watermark`]).
//! - Writes are reported per issue with Jira's messages and what to do (a
//!   token refused part-way ends the batch as on every tracker, see
//!   `super::batch`), and parent / epic edits are read back (bulkfetch on Cloud, 100 keys a
//!   request), since Jira has been seen to accept a parent edit it did not
//!   make.

mod links;
mod rank;
mod status;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::batch::WriteBatch;
use super::http::{ApiKey, Auth, Http, HttpError, Retry};
use super::{Allowance, Capabilities, IssueFailure, Need, Tracker, TrackerError};
use crate::model::{Issue, Snapshot, Workflow};
use crate::plan::TrackerOp;

pub use wire::timestamp;
use wire::{
    BulkFetch, CustomFields, EpicModel, Field, MyPermissions, Myself, OffsetPage, TokenPage,
    WireIssue,
};

/// Issues per search page. Cloud may return fewer where many fields are
/// asked for, Data Center caps it (`jira.search.views.default.max`); loops
/// never assume full pages.
const PAGE: u64 = 100;
/// Data Center search pages in flight at once, at most (under the
/// Tracker's `rateLimit.concurrentRequests` too): a full read of 3,000
/// issues at 50 a page waits for 15 answers in turn instead of 60.
pub const DC_PAGES_AT_ONCE: usize = 4;
/// Keys per bulkfetch request (Jira's limit) and per `key in (...)` search.
pub const BULK: usize = 100;

/// Which Jira, and how it signs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// Jira Cloud: REST v3, the account's email with an API token.
    Cloud { email: String },
    /// Jira Data Center: REST v2, a personal access token.
    DataCenter,
}

/// How to reach one Jira and which of its issues are the tracker's.
pub struct Settings {
    pub url: Url,
    pub deployment: Deployment,
    pub token: ApiKey,
    /// Where the token came from, for messages (`environment variable X`).
    pub token_source: String,
    /// JQL of the tracker's issues; all visible issues when `None`.
    pub scope: Option<String>,
    pub retry: Retry,
    /// The Tracker's `spec.rateLimit`.
    pub rate_limit: Option<crate::spec::RateLimit>,
}

pub struct JiraTracker {
    http: Http,
    deployment: Deployment,
    token_source: String,
    scope: Option<String>,
    /// The account the token acts as, once the handshake succeeded.
    identity: Mutex<Option<String>>,
    custom: OnceCell<CustomFields>,
}

/// The Jira permission an operation needs, for 403 answers.
fn permission(op: &TrackerOp) -> &'static str {
    match op {
        TrackerOp::SetParent { .. } | TrackerOp::ClearParent { .. } | TrackerOp::SetEpic { .. } => {
            "Edit Issues"
        }
        TrackerOp::AddLink { .. } | TrackerOp::RemoveLink { .. } => "Link Issues",
        TrackerOp::SetStatus { .. } => "Transition Issues",
        TrackerOp::Rank { .. } => "Schedule Issues",
    }
}

impl JiraTracker {
    pub fn new(settings: Settings) -> Result<JiraTracker, TrackerError> {
        let mut url = settings.url;
        // `join` replaces the last segment of a base without a trailing
        // slash (a Data Center under a context path such as /jira).
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let auth = match &settings.deployment {
            Deployment::Cloud { email } => Auth::Basic {
                user: email,
                key: &settings.token,
            },
            Deployment::DataCenter => Auth::Bearer(&settings.token),
        };
        let http = Http::new(
            "Jira",
            url,
            auth,
            settings.retry,
            settings.rate_limit,
            describe,
        )
        .map_err(|message| TrackerError::Remote {
            operation: format!("connect with the token from {}", settings.token_source),
            message,
            status: None,
        })?;
        Ok(JiraTracker {
            http,
            deployment: settings.deployment,
            token_source: settings.token_source,
            scope: settings.scope,
            identity: Mutex::new(None),
            custom: OnceCell::new(),
        })
    }

    /// HTTP requests sent so far (retries included): for tests and benchmarks.
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn cloud(&self) -> bool {
        matches!(self.deployment, Deployment::Cloud { .. })
    }

    /// A scoped API token is refused at the site's own address (with a
    /// misleading 401 or 404): where it must go instead.
    fn scoped_token_hint(&self) -> &'static str {
        if self.http.base().host_str() == Some("api.atlassian.com") {
            ""
        } else {
            "; a scoped API token works only through Atlassian's gateway: set spec.url to https://api.atlassian.com/ex/jira/CLOUD_ID (the cloudId at https://SITE.atlassian.net/_edge/tenant_info)"
        }
    }

    /// A platform API path: REST v3 on Cloud, v2 on Data Center.
    fn api(&self, path: &str) -> String {
        let version = if self.cloud() { 3 } else { 2 };
        format!("rest/api/{version}/{path}")
    }

    fn epic_model(&self) -> EpicModel {
        if self.cloud() {
            EpicModel::Parent
        } else {
            EpicModel::EpicLink
        }
    }

    /// The account the token acts as; checks the token on first use.
    async fn handshake(&self) -> Result<String, TrackerError> {
        if let Some(account) = self.identity.lock().expect("not poisoned").clone() {
            return Ok(account);
        }
        let operation = format!("connect to Jira at {}", self.http.base());
        let me: Myself = self
            .http
            .get(&self.api("myself"), &[])
            .await
            .map_err(|e| match e.status {
                Some(StatusCode::UNAUTHORIZED) => TrackerError::Remote {
                    operation: operation.clone(),
                    message: match &self.deployment {
                        Deployment::Cloud { email } => format!(
                            "Jira refused the email {email} with the API token from {} (401 Unauthorized); check spec.jira.email and that the token was made by that account (id.atlassian.com → Security → API tokens) and has not expired{}",
                            self.token_source,
                            self.scoped_token_hint()
                        ),
                        Deployment::DataCenter => format!(
                            "Jira refused the personal access token from {} (401 Unauthorized); check that it has not expired or been revoked (Profile → Personal Access Tokens)",
                            self.token_source
                        ),
                    },
                    status: Some(401),
                },
                _ => remote(&operation, e),
            })?;
        let account = [me.email_address, me.name, me.display_name, me.account_id]
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_else(|| "(unnamed account)".into());
        tracing::debug!(url = %self.http.base(), %account, "connected to Jira");
        *self.identity.lock().expect("not poisoned") = Some(account.clone());
        Ok(account)
    }

    /// The site's rank and Epic Link fields, read once (after the
    /// handshake, so that a wrong token is reported as such).
    async fn custom_fields(&self) -> Result<&CustomFields, TrackerError> {
        self.handshake().await?;
        self.custom
            .get_or_try_init(|| async {
                let fields: Vec<Field> = self
                    .http
                    .get(&self.api("field"), &[])
                    .await
                    .map_err(|e| remote("list Jira's fields", e))?;
                let custom = CustomFields::find(&fields);
                tracing::debug!(?custom, "Jira's custom fields");
                Ok(custom)
            })
            .await
    }

    /// The fields every read asks for.
    async fn fields(&self) -> Result<Vec<String>, TrackerError> {
        let custom = self.custom_fields().await?;
        let mut fields: Vec<String> = [
            "summary",
            "status",
            "issuetype",
            "parent",
            "issuelinks",
            "updated",
            "priority",
            "assignee",
        ]
        .map(str::to_owned)
        .to_vec();
        fields.extend(custom.rank.clone());
        if !self.cloud() {
            fields.extend(custom.epic_link.clone());
        }
        Ok(fields)
    }

    /// The scope ANDed with `query`, in JQL.
    fn jql(&self, query: Option<&str>, order: &str) -> String {
        let parts: Vec<String> = [self.scope.as_deref(), query]
            .into_iter()
            .flatten()
            .map(|q| format!("({})", without_order_by(q).trim()))
            .collect();
        format!("{} ORDER BY {order}", parts.join(" AND "))
            .trim_start()
            .to_owned()
    }

    fn describe_scope(&self) -> String {
        match &self.scope {
            Some(scope) => format!("`{scope}`"),
            None => "every visible issue".into(),
        }
    }

    /// Every issue `jql` selects, with `fields`, page by page.
    async fn search_all(
        &self,
        operation: &str,
        jql: &str,
        fields: &[String],
    ) -> Result<Vec<WireIssue>, TrackerError> {
        self.handshake().await?;
        let mut issues = Vec::new();
        let failed = |e: HttpError| match e.status {
            Some(StatusCode::BAD_REQUEST) => TrackerError::Query {
                query: jql.to_owned(),
                message: format!(
                    "{}; fix the JQL (spec.jira.jql or the synchronizer's query)",
                    e.message
                ),
            },
            _ => remote(operation, e),
        };
        if self.cloud() {
            let mut token: Option<String> = None;
            loop {
                let mut body = json!({ "jql": jql, "fields": fields, "maxResults": PAGE });
                if let Some(token) = &token {
                    body["nextPageToken"] = json!(token);
                }
                let page: TokenPage = self
                    .http
                    .post_for(&self.api("search/jql"), body)
                    .await
                    .map_err(failed)?;
                issues.extend(page.issues);
                match page.next_page_token {
                    Some(next) if page.is_last != Some(true) => token = Some(next),
                    _ => return Ok(issues),
                }
            }
        }
        let page = |start: u64, asked: u64| {
            let body =
                json!({ "jql": jql, "fields": fields, "startAt": start, "maxResults": asked });
            async move {
                self.http
                    .post_for::<OffsetPage>(&self.api("search"), body)
                    .await
                    .map_err(failed)
            }
        };
        let first = page(0, PAGE).await?;
        let mut start = first.issues.len() as u64;
        // Ask for what the server grants from now on.
        let granted = first.max_results.clamp(1, PAGE);
        let mut total = first.total;
        issues.extend(first.issues);
        while start > 0 && start < total {
            let starts: Vec<u64> = (start..total).step_by(granted as usize).collect();
            let pages: Vec<OffsetPage> = futures::stream::iter(starts)
                .map(|at| page(at, granted))
                .buffered(DC_PAGES_AT_ONCE)
                .try_collect()
                .await?;
            let before = start;
            for page in pages {
                start += page.issues.len() as u64;
                // Issues made meanwhile are read too, in the next turn.
                total = total.max(page.total);
                issues.extend(page.issues);
            }
            if start == before {
                break;
            }
        }
        // Pages read at once see one moment each: an issue deleted
        // meanwhile shifts the later ones, and one may come twice.
        let mut seen = HashSet::new();
        issues.retain(|issue| seen.insert(issue.key.clone()));
        Ok(issues)
    }

    /// Reads issues by key (after writing them): bulkfetch on Cloud,
    /// `key in (...)` on Data Center, 100 keys a request. Keys Jira does
    /// not return (deleted, not visible) are missing from the map.
    async fn read_back(&self, keys: &[&str]) -> Result<HashMap<String, Issue>, TrackerError> {
        let fields = self.fields().await?;
        let custom = self.custom_fields().await?;
        let operation = "read back the written issues";
        let mut found = HashMap::new();
        for chunk in keys.chunks(BULK) {
            let issues = if self.cloud() {
                let body = json!({ "issueIdsOrKeys": chunk, "fields": fields });
                let page: BulkFetch = self
                    .http
                    .post_for(&self.api("issue/bulkfetch"), body)
                    .await
                    .map_err(|e| remote(operation, e))?;
                for error in page.issue_errors {
                    tracing::debug!(id = ?error.id, message = ?error.error_message, "bulkfetch left an issue out");
                }
                page.issues
            } else {
                let jql = format!("key in ({}) ORDER BY key", chunk.join(","));
                self.search_all(operation, &jql, &fields).await?
            };
            found.extend(issues.into_iter().map(|i| {
                let issue = i.into_issue(custom, self.epic_model());
                (issue.key.clone(), issue)
            }));
        }
        Ok(found)
    }

    /// An issue failure from Jira's answer, with what to do about it.
    fn failure(&self, op: &TrackerOp, issue: &str, e: HttpError) -> IssueFailure {
        let advice = match e.status.map(|s| s.as_u16()) {
            Some(403) => format!(
                "; the account needs Jira's “{}” permission in the issue's project",
                permission(op)
            ),
            Some(404) => "; the issue was deleted or moved, or the account cannot see it (it needs “Browse Projects”); the next run plans from what Jira has".into(),
            Some(409) => "; someone changed the issue at the same time: run again".into(),
            _ => String::new(),
        };
        IssueFailure {
            issue: issue.to_owned(),
            operation: op.to_string(),
            message: format!("{}{advice}", e.message),
        }
    }

    /// Writes the parent and epic changes of `batch`, then reads them back:
    /// Jira has been seen to accept a parent edit it did not make.
    async fn write_edits(&self, batch: &mut WriteBatch<'_>, custom: &CustomFields) {
        let mut written = Vec::new();
        for (at, op) in batch.ops() {
            if batch.ended() {
                return;
            }
            let edit = match op {
                TrackerOp::SetParent { to, .. } => Edit::Parent(Some(to.clone())),
                TrackerOp::ClearParent { .. } => Edit::Parent(None),
                TrackerOp::SetEpic { to, .. } => Edit::Epic(to.clone()),
                _ => continue,
            };
            let body = match self.edit_body(op, &edit, custom).await {
                Ok(Ok(body)) => body,
                Ok(Err(message)) => {
                    batch.fail(
                        at,
                        IssueFailure {
                            issue: op.issue().to_owned(),
                            operation: op.to_string(),
                            message,
                        },
                    );
                    continue;
                }
                Err(e) if batch.ends(&e) => return,
                Err(e) => {
                    batch.fail(at, self.failure(op, op.issue(), e));
                    continue;
                }
            };
            let path = self.api(&format!("issue/{}", op.issue()));
            match self.http.put(&path, body).await {
                Ok(()) => {
                    batch.made(at);
                    written.push((at, op, edit));
                }
                Err(e) if batch.ends(&e) => return,
                Err(e) => batch.fail(at, self.failure(op, op.issue(), e)),
            }
        }
        let keys: Vec<&str> = written.iter().map(|(_, op, _)| op.issue()).collect();
        let positions: Vec<usize> = written.iter().map(|(at, ..)| *at).collect();
        let Some(now) = batch.checked(&positions, self.read_back(&keys).await) else {
            return;
        };
        for (at, op, edit) in written {
            let message = match (now.get(op.issue()), &edit) {
                (None, _) => {
                    "written, but the issue is gone now (deleted or no longer visible to the account)"
                }
                (Some(issue), Edit::Parent(to)) if issue.parent != *to => {
                    "Jira accepted the change but did not make it: the Parent field must be on the issue's edit screen, and the new parent must be a valid parent for its type"
                }
                (Some(issue), Edit::Epic(to)) if issue.epic != *to => {
                    "Jira accepted the change but did not make it: the epic field must be on the issue's edit screen, and the epic must be in a project the issue can belong to"
                }
                _ => continue,
            };
            batch.unmade(at, message);
        }
    }

    /// The `PUT issue` body of an edit, or why it cannot be made here.
    async fn edit_body(
        &self,
        op: &TrackerOp,
        edit: &Edit,
        custom: &CustomFields,
    ) -> Result<Result<Value, String>, HttpError> {
        let parent = |to: &Option<String>| match to {
            Some(key) => json!({ "fields": { "parent": { "key": key } } }),
            // Jira's documented way to remove a standard issue's parent.
            None => json!({ "update": { "parent": [ { "set": { "none": true } } ] } }),
        };
        if self.cloud() {
            let (Edit::Parent(to) | Edit::Epic(to)) = edit;
            return Ok(Ok(parent(to)));
        }
        match edit {
            Edit::Epic(to) => Ok(match &custom.epic_link {
                Some(field) => Ok(json!({ "fields": { field.as_str(): to } })),
                None => Err("this Jira has no Epic Link field (no field of type com.pyxis.greenhopper.jira:gh-epic-link in /rest/api/2/field): Jira Software is not installed, or the field is hidden from the account".into()),
            }),
            Edit::Parent(to) => {
                let subtask = self.is_subtask(op.issue()).await?;
                Ok(match (subtask, to) {
                    (Some(true), Some(_)) => Ok(parent(to)),
                    (Some(true), None) => Err("a sub-task cannot lose its parent in Jira Data Center; convert it to an issue in Jira (More → Convert to Issue), or move it under another parent".into()),
                    (Some(false), _) => Err("on Jira Data Center only sub-tasks have a parent; an issue's epic is its Epic Link, which an agile synchronizer sets (the subtasks synchronizer cannot write it)".into()),
                    (None, _) => Err("the issue was deleted or the account cannot see it (it needs “Browse Projects”)".into()),
                })
            }
        }
    }

    /// Whether an issue is a sub-task (Data Center parent writes); `None`
    /// when Jira does not show it.
    async fn is_subtask(&self, key: &str) -> Result<Option<bool>, HttpError> {
        #[derive(serde::Deserialize)]
        struct Typed {
            fields: wire::TypeOnly,
        }
        let path = self.api(&format!("issue/{key}"));
        match self
            .http
            .get::<Typed>(&path, &[("fields", "issuetype")])
            .await
        {
            Ok(issue) => Ok(Some(issue.fields.issuetype.is_some_and(|t| t.subtask))),
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A parent or epic edit, as it should read back.
enum Edit {
    Parent(Option<String>),
    Epic(Option<String>),
}

/// The query without its `ORDER BY` clause (outside quotes), which cannot
/// stand inside parentheses.
fn without_order_by(query: &str) -> &str {
    let lower = query.to_ascii_lowercase();
    let mut quote: Option<char> = None;
    for (at, c) in lower.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if lower[at..].starts_with("order by")
                && (at == 0 || lower[..at].ends_with(char::is_whitespace)) =>
            {
                return &query[..at];
            }
            None => {}
        }
    }
    query
}

fn remote(operation: &str, e: HttpError) -> TrackerError {
    let advice = match e.status.map(|s| s.as_u16()) {
        Some(403) => {
            "; the account needs Jira's “Browse Projects” permission in the scope's projects"
        }
        _ => "",
    };
    TrackerError::Remote {
        operation: operation.to_owned(),
        message: format!("{}{advice}", e.message),
        status: e.status.map(|s| s.as_u16()),
    }
}

/// What a status means, with Jira's own messages (its error body is
/// `{"errorMessages": [...], "errors": {"field": "message"}}`).
fn describe(status: StatusCode, body: &str) -> String {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Errors {
        error_messages: Vec<String>,
        errors: std::collections::BTreeMap<String, String>,
    }
    let errors: Errors = serde_json::from_str(body).unwrap_or_default();
    let mut messages = errors.error_messages;
    messages.extend(errors.errors.into_iter().map(|(f, m)| format!("{f}: {m}")));
    let said = if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    };
    match status.as_u16() {
        401 => "Jira refused the credentials (401 Unauthorized)".into(),
        410 => format!(
            "Jira has removed this API (410 Gone){said}; this Trellis calls an API Atlassian no longer serves: upgrade Trellis"
        ),
        429 => "Jira is rate limiting requests (429 Too Many Requests)".into(),
        _ => format!("Jira answered {status}{said}"),
    }
}

impl Tracker for JiraTracker {
    async fn snapshot(&self) -> Result<Snapshot, TrackerError> {
        let fields = self.fields().await?;
        let custom = self.custom_fields().await?;
        let operation = format!("list the issues of {}", self.describe_scope());
        let issues = self
            .search_all(&operation, &self.jql(None, "key ASC"), &fields)
            .await?;
        tracing::debug!(
            issues = issues.len(),
            requests = self.requests(),
            "read Jira"
        );
        Ok(Snapshot::new(
            issues
                .into_iter()
                .map(|i| i.into_issue(custom, self.epic_model())),
        ))
    }

    async fn search(&self, query: &str) -> Result<HashSet<String>, TrackerError> {
        let jql = self.jql(Some(query), "key ASC");
        let issues = self
            .search_all(&format!("search `{query}`"), &jql, &["key".to_owned()])
            .await?;
        Ok(issues.into_iter().map(|i| i.key).collect())
    }

    /// One search per 100 keys: the query ANDed with `key in (...)`.
    async fn search_among(
        &self,
        query: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, TrackerError> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(BULK) {
            let among = format!(
                "({}) AND key in ({})",
                without_order_by(query),
                chunk.join(",")
            );
            let jql = self.jql(Some(&among), "key ASC");
            let issues = self
                .search_all(&format!("search `{query}`"), &jql, &["key".to_owned()])
                .await?;
            found.extend(issues.into_iter().map(|i| i.key));
        }
        Ok(found)
    }

    async fn apply(&self, ops: &[TrackerOp]) -> Result<(), TrackerError> {
        if ops.is_empty() {
            return Ok(());
        }
        // Read before any write, so that a refusal here is the whole answer.
        let custom = self.custom_fields().await?;
        let mut batch = WriteBatch::over(
            &self.http,
            format!("the token from {}", self.token_source),
            ops,
        );
        self.write_statuses(&mut batch).await;
        self.write_links(&mut batch).await;
        self.write_ranks(&mut batch).await;
        self.write_edits(&mut batch, custom).await;
        batch.finish()
    }

    async fn changed_since(&self, from: jiff::Timestamp) -> Result<Vec<Issue>, TrackerError> {
        let fields = self.fields().await?;
        let custom = self.custom_fields().await?;
        // JQL compares to the minute: floor, never round up past a change.
        let minute = from.as_second().div_euclid(60) * 60 * 1000;
        let query = format!("updated >= {minute}");
        let jql = self.jql(Some(&query), "updated ASC, key ASC");
        let operation = format!(
            "list the issues of {} changed since {from}",
            self.describe_scope()
        );
        let mut issues: Vec<Issue> = self
            .search_all(&operation, &jql, &fields)
            .await?
            .into_iter()
            .map(|i| i.into_issue(custom, self.epic_model()))
            .collect();
        issues.sort_by(|a, b| (a.updated, &a.key).cmp(&(b.updated, &b.key)));
        Ok(issues)
    }

    /// Jira records a link change in both issues' histories, which bumps
    /// their `updated`.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            link_changes_bump_updated: true,
            refuses_stale_writes: false,
        }
    }

    /// Jira checks each transition itself (see `status.rs`).
    async fn workflow(&self) -> Result<Option<Workflow>, TrackerError> {
        Ok(None)
    }

    /// Jira's permission for each need, from `mypermissions`. Asked
    /// without a project, Jira answers whether the account has it in at
    /// least one project: enough to find a missing grant, not to prove one
    /// in every project of the scope.
    async fn allows(&self, needs: &[Need]) -> Result<Vec<Allowance>, TrackerError> {
        self.handshake().await?;
        let key = |need: Need| match need {
            Need::Read => "BROWSE_PROJECTS",
            Need::SetParents | Need::SetEpics => "EDIT_ISSUES",
            Need::ChangeLinks => "LINK_ISSUES",
            Need::Rank => "SCHEDULE_ISSUES",
            Need::ChangeStatuses => "TRANSITION_ISSUES",
        };
        let mut keys: Vec<&str> = needs.iter().map(|&n| key(n)).collect();
        keys.sort_unstable();
        keys.dedup();
        let asked = keys.join(",");
        let mine: MyPermissions = self
            .http
            .get(
                &self.api("mypermissions"),
                &[("permissions", asked.as_str())],
            )
            .await
            .map_err(|e| remote("read the account's permissions", e))?;
        Ok(needs
            .iter()
            .map(|&need| {
                let key = key(need);
                let found = mine.permissions.get(key);
                let name = found.and_then(|p| p.name.clone()).unwrap_or_else(|| key.to_owned());
                let allowed = found.is_some_and(|p| p.have_permission);
                Allowance {
                    need,
                    allowed,
                    detail: if allowed {
                        format!("{name} ({key})")
                    } else {
                        format!(
                            "the account lacks {name} ({key}) in every project: a Jira administrator grants it in the project's permission scheme"
                        )
                    },
                }
            })
            .collect())
    }

    async fn acting_as(&self) -> Result<Option<String>, TrackerError> {
        self.handshake().await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_clauses_are_dropped_outside_quotes() {
        assert_eq!(
            without_order_by("project = PLAT ORDER BY Rank"),
            "project = PLAT "
        );
        assert_eq!(
            without_order_by(r#"summary ~ "order by" order by key"#),
            r#"summary ~ "order by" "#
        );
        assert_eq!(without_order_by("project = PLAT"), "project = PLAT");
        assert_eq!(without_order_by("ORDER BY key"), "");
    }

    #[test]
    fn jira_errors_carry_jiras_messages() {
        let message = describe(
            StatusCode::GONE,
            r#"{"errorMessages":["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."],"errors":{}}"#,
        );
        assert!(
            message.starts_with(
                "Jira has removed this API (410 Gone): The requested API has been removed."
            ),
            "{message}"
        );
        assert!(message.ends_with("upgrade Trellis"));
        let message = describe(
            StatusCode::BAD_REQUEST,
            r#"{"errorMessages":[],"errors":{"parent":"Given parent work item does not belong to appropriate hierarchy."}}"#,
        );
        assert_eq!(
            message,
            "Jira answered 400 Bad Request: parent: Given parent work item does not belong to appropriate hierarchy."
        );
    }
}

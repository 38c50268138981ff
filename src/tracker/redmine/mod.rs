//! Redmine (5.0) through its REST API.
//!
//! - Issues are keyed `#123`; Redmine's trackers (Bug, Feature, ...) are
//!   issue types; the parent is read from `parent.id` and written as
//!   `parent_issue_id` (null clears it); relations are links on the issue
//!   they start from (`include=relations` on the list: no request per issue).
//! - Lists page by id (`issue_id=>=N`, `sort=id`, 100 a page), so issues
//!   created or deleted while reading neither shift nor repeat a page: a full
//!   read of N issues takes ⌈N/100⌉ requests, plus one `/users/current.json`
//!   handshake per client. `status_id=*` is always sent: Redmine lists open
//!   issues only without it.
//! - The handshake matters: with a wrong key Redmine answers as the
//!   anonymous user where anonymous access is allowed, and issues would look
//!   missing instead of the key looking wrong.
//! - Changed issues are read with `updated_on>=T` (whole seconds, UTC, `Z`;
//!   the bound is inclusive, so callers dedupe by key and `updated`, see
//!   [`super::Watermark`]). Creating or deleting a relation does not bump
//!   `updated_on`, so [`Capabilities::link_changes_bump_updated`] is false.
//! - Writes are idempotent; each failure is reported against its issue
//!   with Redmine's message, the others go on, and a key refused part-way
//!   ends the batch as on every tracker (`super::batch`). Redmine drops a
//!   parent change silently when the user lacks "Manage subtasks", so
//!   writes are read back.

mod filter;
mod relations;
mod seen;
mod status;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use reqwest::{StatusCode, Url};
use serde_json::json;

use super::batch::WriteBatch;
use super::{Allowance, Capabilities, IssueFailure, Need, Tracker, TrackerError};
use crate::model::{Issue, Snapshot, Workflow};
use crate::plan::TrackerOp;

pub use super::http::{ApiKey, Retry};
use super::http::{Auth, Http, HttpError};
pub use filter::{Filter, FilterError};
pub use relations::{STORED_AS_WRITTEN, forward_type};
use wire::{CurrentMember, CurrentUser, IssuePage, ProjectOf, RoleOf, WireIssue};

/// Redmine's largest page. Loops go on while `total_count` says more is
/// left, never by assuming a full page: a server or proxy may cap pages lower.
const PAGE: usize = 100;
const PAGE_TEXT: &str = "100";

/// How to reach one Redmine and what part of it is the tracker's scope.
pub struct Settings {
    pub url: Url,
    pub key: ApiKey,
    /// Where the key came from, for messages (`environment variable X`).
    pub key_source: String,
    /// Project identifier or id; all visible issues when `None`.
    pub project: Option<String>,
    pub subprojects: bool,
    pub retry: Retry,
    /// The Tracker's `spec.rateLimit`.
    pub rate_limit: Option<crate::spec::RateLimit>,
}

pub struct RedmineTracker {
    http: Http,
    key_source: String,
    project: Option<String>,
    subprojects: bool,
    /// The login the key acts as, once the handshake succeeded.
    identity: Mutex<Option<String>>,
    statuses: status::StatusIds,
    /// What this client read: filters it can answer need no request.
    seen: seen::Seen,
}

impl RedmineTracker {
    pub fn new(settings: Settings) -> Result<RedmineTracker, TrackerError> {
        let mut url = settings.url;
        // `join` replaces the last segment of a base without a trailing slash
        // (a Redmine under a sub-path such as /redmine).
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let auth = Auth::Header("x-redmine-api-key", &settings.key);
        let http = Http::new(
            "Redmine",
            url,
            auth,
            settings.retry,
            settings.rate_limit,
            describe,
        )
        .map_err(|message| TrackerError::Remote {
            operation: format!("connect with the key from {}", settings.key_source),
            message,
            status: None,
        })?;
        Ok(RedmineTracker {
            http,
            key_source: settings.key_source,
            project: settings.project,
            subprojects: settings.subprojects,
            identity: Mutex::new(None),
            statuses: Default::default(),
            seen: Default::default(),
        })
    }

    /// HTTP requests sent so far (retries included): for tests and benchmarks.
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// The login the API key acts as; checks the key on first use.
    async fn handshake(&self) -> Result<String, TrackerError> {
        if let Some(login) = self.identity.lock().expect("not poisoned").clone() {
            return Ok(login);
        }
        let operation = format!("connect to Redmine at {}", self.http.base());
        let current: CurrentUser = self
            .http
            .get("users/current.json", &[])
            .await
            .map_err(|e| match e.status {
                Some(StatusCode::UNAUTHORIZED) => TrackerError::Remote {
                    operation: operation.clone(),
                    message: format!(
                        "Redmine refused the API key from {} (401 Unauthorized); copy the key from Redmine's “My account → API access key” page",
                        self.key_source
                    ),
                    status: Some(StatusCode::UNAUTHORIZED.as_u16()),
                },
                _ => remote(&operation, e),
            })?;
        let login = current.user.login;
        tracing::debug!(url = %self.http.base(), %login, "connected to Redmine");
        *self.identity.lock().expect("not poisoned") = Some(login.clone());
        Ok(login)
    }

    /// The scope's filter parameters.
    fn scope(&self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        if let Some(project) = &self.project {
            params.push(("project_id".into(), project.clone()));
            if !self.subprojects {
                params.push(("subproject_id".into(), "!*".into()));
            }
        }
        params
    }

    fn describe_scope(&self) -> String {
        match &self.project {
            Some(project) => format!("project {project}"),
            None => "all projects".into(),
        }
    }

    /// Every issue the filter `params` select, a page of 100 at a time,
    /// paged by id; with their relations if asked (pages take about twice
    /// as long to render with them).
    async fn list(
        &self,
        operation: &str,
        params: &[(String, String)],
        relations: bool,
    ) -> Result<Vec<WireIssue>, TrackerError> {
        self.handshake().await?;
        let mut issues = Vec::new();
        let mut next_id = 1;
        loop {
            let from = format!(">={next_id}");
            let mut query: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            query.extend([
                ("issue_id", from.as_str()),
                ("sort", "id"),
                ("limit", PAGE_TEXT),
            ]);
            if relations {
                query.push(("include", "relations"));
            }
            let page: IssuePage = self
                .http
                .get("issues.json", &query)
                .await
                .map_err(|e| remote(operation, e))?;
            let last = page.issues.last().map(|i| i.id);
            let count = page.issues.len();
            issues.extend(page.issues);
            match last {
                // With `issue_id>=N`, total_count counts what is left from N on.
                Some(id) if page.total_count as usize > count => next_id = id + 1,
                _ => return Ok(issues),
            }
        }
    }

    /// The permissions of the key's roles in the scope's project (in any of
    /// its projects without one; the Non member role's where it is none),
    /// and where they come from. `None`: an administrator, allowed all.
    async fn permissions(&self) -> Result<Option<(HashSet<String>, String)>, TrackerError> {
        self.handshake().await?;
        let operation = "read the API key's roles";
        let me: CurrentMember = self
            .http
            .get("users/current.json", &[("include", "memberships")])
            .await
            .map_err(|e| remote(operation, e))?;
        if me.user.admin {
            return Ok(None);
        }
        let memberships: Vec<_> = match &self.project {
            Some(project) => {
                let found: ProjectOf = self
                    .http
                    .get(&format!("projects/{project}.json"), &[])
                    .await
                    .map_err(|e| remote(&format!("read project {project}"), e))?;
                me.user
                    .memberships
                    .into_iter()
                    .filter(|m| m.project.id == found.project.id)
                    .collect()
            }
            None => me.user.memberships,
        };
        // Built in: 1 is the Non member role.
        let (roles, source): (Vec<u64>, String) = if memberships.is_empty() {
            (
                vec![1],
                format!(
                    "not a member of {}: the Non member role",
                    self.describe_scope()
                ),
            )
        } else {
            let names: Vec<String> = memberships
                .iter()
                .flat_map(|m| {
                    m.roles
                        .iter()
                        .map(move |r| format!("{} in {}", r.name, m.project.name))
                })
                .collect();
            (
                memberships
                    .iter()
                    .flat_map(|m| m.roles.iter().map(|r| r.id))
                    .collect(),
                format!("roles {}", names.join(", ")),
            )
        };
        let mut permissions = HashSet::new();
        for id in roles {
            let role: RoleOf = self
                .http
                .get(&format!("roles/{id}.json"), &[])
                .await
                .map_err(|e| remote(&format!("read role {id}"), e))?;
            tracing::debug!(role = %role.role.name, "read a role's permissions");
            permissions.extend(role.role.permissions);
        }
        Ok(Some((permissions, source)))
    }

    /// The scope's parameters with a query's, the query's winning.
    fn scoped(&self, params: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .scope()
            .into_iter()
            .filter(|(k, _)| !params.iter().any(|(p, _)| p == k))
            .collect();
        all.extend(params);
        all
    }

    /// Every issue a saved query selects. The query's own filters and sort
    /// replace any other parameter, so it pages by offset and dedupes.
    async fn list_saved(&self, query_id: u64) -> Result<Vec<WireIssue>, TrackerError> {
        self.handshake().await?;
        let operation = format!("run saved query {query_id} in {}", self.describe_scope());
        let query_id = query_id.to_string();
        let mut seen = HashSet::new();
        let mut issues = Vec::new();
        let mut offset = 0;
        loop {
            let offset_text = offset.to_string();
            let mut query = vec![
                ("query_id", query_id.as_str()),
                ("offset", offset_text.as_str()),
                ("limit", PAGE_TEXT),
            ];
            // A project's saved query is only found under its project.
            if let Some(project) = &self.project {
                query.push(("project_id", project));
            }
            let page: IssuePage = self
                .http
                .get("issues.json", &query)
                .await
                .map_err(|e| match e.status {
                    Some(StatusCode::NOT_FOUND) => TrackerError::Query {
                        query: format!("query_id={query_id}"),
                        message: format!(
                            "Redmine has no saved query {query_id} visible to this key in {} (404); /queries.json lists them, and a project's query needs spec.redmine.project set to that project",
                            self.describe_scope()
                        ),
                    },
                    _ => remote(&operation, e),
                })?;
            let count = page.issues.len();
            offset += count;
            issues.extend(page.issues.into_iter().filter(|i| seen.insert(i.id)));
            if count == 0 || offset as u64 >= page.total_count {
                return Ok(issues);
            }
        }
    }

    /// A filter's matches among `keys` (the whole scope when `None`) from
    /// what this client read, when the filter looks only at trackers and
    /// statuses and every issue asked about was read (see seen.rs): the
    /// issues are not read twice. At most one request, for which statuses
    /// are closed.
    async fn answered(
        &self,
        query: &str,
        filter: &Filter,
        keys: Option<&[String]>,
    ) -> Result<Option<HashSet<String>>, TrackerError> {
        let Some(answerable) = seen::Answerable::of(filter) else {
            return Ok(None);
        };
        if !self.seen.covers(keys) {
            return Ok(None);
        }
        let none = HashSet::new();
        let closed = if answerable.needs_closed() {
            let operation = format!("list Redmine's issue statuses for `{query}`");
            self.closed_statuses()
                .await
                .map_err(|e| remote(&operation, e))?
        } else {
            &none
        };
        let answer = self.seen.answer(&answerable, keys, closed);
        if let Some(found) = &answer {
            tracing::debug!(
                query,
                matches = found.len(),
                "answered from the issues read"
            );
        }
        Ok(answer)
    }

    /// Re-reads written issues (100 per request) to catch changes Redmine
    /// accepted with 204 but dropped.
    async fn read_back(&self, keys: &[&str]) -> Result<HashMap<String, Issue>, TrackerError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(PAGE) {
            let ids: Vec<String> = chunk
                .iter()
                .filter_map(|k| wire::id(k))
                .map(|id| id.to_string())
                .collect();
            let ids = ids.join(",");
            let page: IssuePage = self
                .http
                .get(
                    "issues.json",
                    &[("issue_id", &ids), ("status_id", "*"), ("limit", PAGE_TEXT)],
                )
                .await
                .map_err(|e| remote("read back the written issues", e))?;
            found.extend(page.issues.into_iter().map(|i| {
                let issue = i.into_issue();
                (issue.key.clone(), issue)
            }));
        }
        Ok(found)
    }
}

impl RedmineTracker {
    /// Writes the parent changes of `batch`, then reads them back: Redmine
    /// drops a parent change it does not allow and still answers 204.
    async fn write_parents(&self, batch: &mut WriteBatch<'_>) {
        let mut written = Vec::new();
        for (at, op) in batch.ops() {
            if batch.ended() {
                return;
            }
            let operation = op.to_string();
            let target = match op {
                TrackerOp::SetParent { to, .. } => Some(to.as_str()),
                TrackerOp::ClearParent { .. } => None,
                // Validation refuses agile synchronizers on Redmine, which
                // has neither epics nor ranks; an operation that gets here
                // anyway (a saved plan edited by hand) fails on its issue.
                TrackerOp::SetEpic { .. } | TrackerOp::Rank { .. } => {
                    batch.fail(
                        at,
                        IssueFailure {
                            issue: op.issue().to_owned(),
                            operation,
                            message: "Redmine has no epics and no rank; nothing was written".into(),
                        },
                    );
                    continue;
                }
                // Written before.
                TrackerOp::SetStatus { .. }
                | TrackerOp::AddLink { .. }
                | TrackerOp::RemoveLink { .. } => continue,
            };
            let ids = issue_id(op.issue(), &operation).and_then(|id| {
                let parent = target.map(|t| issue_id(t, &operation)).transpose()?;
                Ok((id, parent))
            });
            let (id, parent) = match ids {
                Ok(ids) => ids,
                Err(failure) => {
                    batch.fail(at, failure);
                    continue;
                }
            };
            let body = json!({ "issue": { "parent_issue_id": parent } });
            match self.http.put(&format!("issues/{id}.json"), body).await {
                Ok(()) => {
                    batch.made(at);
                    written.push((at, op, target));
                }
                Err(e) if batch.ends(&e) => return,
                Err(e) => batch.fail(
                    at,
                    IssueFailure {
                        issue: op.issue().to_owned(),
                        operation,
                        message: e.message,
                    },
                ),
            }
        }
        let keys: Vec<&str> = written.iter().map(|(_, op, _)| op.issue()).collect();
        let positions: Vec<usize> = written.iter().map(|(at, ..)| *at).collect();
        let Some(now) = batch.checked(&positions, self.read_back(&keys).await) else {
            return;
        };
        for (at, op, target) in written {
            let message = match now.get(op.issue()) {
                None => {
                    "written, but the issue is gone now (deleted or no longer visible to the key)"
                }
                Some(issue) if issue.parent.as_deref() != target => {
                    "Redmine accepted the change but did not make it: the API key's user needs the “Manage subtasks” permission in the issue's project, and the issue's tracker must have the “Parent task” field enabled"
                }
                Some(_) => continue,
            };
            batch.unmade(at, message);
        }
    }
}

/// What a status means for a Redmine user; a 422 carries Redmine's own
/// messages (`{"errors": [...]}`), the others have empty bodies.
fn describe(status: StatusCode, body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    match status.as_u16() {
        401 => "Redmine refused the API key (401 Unauthorized)".into(),
        403 => "Redmine answered 403 Forbidden: the API key's user lacks the permission for this, or the REST API is disabled (Administration → Settings → API)".into(),
        404 => "Redmine answered 404 Not Found: it does not exist or the API key's user cannot see it".into(),
        422 => match serde_json::from_str::<Errors>(body) {
            Ok(e) if !e.errors.is_empty() => {
                format!("Redmine refused it (422): {}", e.errors.join("; "))
            }
            _ => "Redmine refused it (422 Unprocessable Entity)".into(),
        },
        429 => "Redmine (or a proxy before it) is rate limiting requests (429 Too Many Requests)".into(),
        _ => format!("Redmine answered {status}"),
    }
}

fn remote(operation: &str, e: HttpError) -> TrackerError {
    TrackerError::Remote {
        operation: operation.to_owned(),
        message: e.message,
        status: e.status.map(|s| s.as_u16()),
    }
}

fn issue_id(key: &str, operation: &str) -> Result<u64, IssueFailure> {
    wire::id(key).ok_or_else(|| IssueFailure {
        issue: key.to_owned(),
        operation: operation.to_owned(),
        message: "not a Redmine issue key; Redmine issues are written #123".into(),
    })
}

impl Tracker for RedmineTracker {
    async fn snapshot(&self) -> Result<Snapshot, TrackerError> {
        let mut params = self.scope();
        params.push(("status_id".into(), "*".into()));
        let operation = format!("list the issues of {}", self.describe_scope());
        let issues = match self.list(&operation, &params, true).await {
            Err(TrackerError::Remote {
                operation,
                message,
                status: status @ Some(404),
            }) => {
                return Err(TrackerError::Remote {
                    operation,
                    message: format!(
                        "{message}; check spec.redmine.project (the identifier in the project's URL) and that the key's user is a member"
                    ),
                    status,
                });
            }
            result => result?,
        };
        tracing::debug!(
            issues = issues.len(),
            requests = self.requests(),
            "read Redmine"
        );
        self.seen.whole(&issues);
        Ok(Snapshot::new(issues.into_iter().map(WireIssue::into_issue)))
    }

    async fn search(&self, query: &str) -> Result<HashSet<String>, TrackerError> {
        let filter = Filter::parse(query).map_err(|e| TrackerError::Query {
            query: query.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(answer) = self.answered(query, &filter, None).await? {
            return Ok(answer);
        }
        let issues = match filter {
            Filter::SavedQuery(id) => self.list_saved(id).await?,
            Filter::Parameters(params) => {
                let all = self.scoped(params);
                self.list(&format!("search `{query}`"), &all, false).await?
            }
        };
        Ok(issues.into_iter().map(|i| wire::key(i.id)).collect())
    }

    /// Filter parameters with `issue_id=1,2,3`: one request per 100
    /// issues. A saved query takes no other parameter, so it runs whole.
    async fn search_among(
        &self,
        query: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, TrackerError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let filter = Filter::parse(query).map_err(|e| TrackerError::Query {
            query: query.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(answer) = self.answered(query, &filter, Some(keys)).await? {
            return Ok(answer);
        }
        let Filter::Parameters(params) = filter else {
            let all = self.search(query).await?;
            return Ok(keys.iter().filter(|k| all.contains(*k)).cloned().collect());
        };
        self.handshake().await?;
        let all = self.scoped(params);
        let operation = format!("search `{query}` among changed issues");
        let mut found = HashSet::new();
        for chunk in keys.chunks(PAGE) {
            let ids: Vec<&str> = chunk.iter().map(|k| k.trim_start_matches('#')).collect();
            let ids = ids.join(",");
            let mut request: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            request.extend([("issue_id", ids.as_str()), ("limit", PAGE_TEXT)]);
            let page: IssuePage = self
                .http
                .get("issues.json", &request)
                .await
                .map_err(|e| remote(&operation, e))?;
            found.extend(page.issues.into_iter().map(|i| wire::key(i.id)));
        }
        Ok(found)
    }

    async fn apply(&self, ops: &[TrackerOp]) -> Result<(), TrackerError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.handshake().await?;
        let mut batch =
            WriteBatch::over(&self.http, format!("the key from {}", self.key_source), ops);
        self.write_statuses(&mut batch).await;
        self.write_links(&mut batch).await;
        self.write_parents(&mut batch).await;
        batch.finish()
    }

    async fn changed_since(&self, from: jiff::Timestamp) -> Result<Vec<Issue>, TrackerError> {
        self.handshake().await?;
        let operation = format!(
            "list the issues of {} changed since {from}",
            self.describe_scope()
        );
        let scope = self.scope();
        // Pages by time: each page starts at the last `updated_on` seen
        // (inclusive), so an issue updated while reading moves later and is
        // read again rather than shifting another one out of view; the
        // offset only counts issues of that one second already read.
        let mut bound = from;
        let mut offset = 0;
        let mut issues: HashMap<u64, WireIssue> = HashMap::new();
        loop {
            let since = format!(">={}", bound.strftime("%Y-%m-%dT%H:%M:%SZ"));
            let offset_text = offset.to_string();
            let mut query: Vec<(&str, &str)> = scope
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            query.extend([
                ("status_id", "*"),
                ("updated_on", since.as_str()),
                ("sort", "updated_on,id"),
                ("offset", offset_text.as_str()),
                ("limit", PAGE_TEXT),
                ("include", "relations"),
            ]);
            let page: IssuePage = self
                .http
                .get("issues.json", &query)
                .await
                .map_err(|e| remote(&operation, e))?;
            let count = page.issues.len();
            let last = page.issues.last().and_then(|i| i.updated_on);
            // The page's last second starts the next page; the issues of that
            // second already read come first there (same sort) and are skipped.
            let tail = page
                .issues
                .iter()
                .rev()
                .take_while(|i| i.updated_on == last)
                .count();
            for issue in page.issues {
                issues.insert(issue.id, issue);
            }
            if count == 0 || (offset + count) as u64 >= page.total_count {
                break;
            }
            match last {
                Some(last) if last > bound => {
                    bound = last;
                    offset = tail;
                }
                _ => offset += count,
            }
        }
        let issues: Vec<WireIssue> = issues.into_values().collect();
        self.seen.changed(&issues);
        let mut issues: Vec<Issue> = issues.into_iter().map(WireIssue::into_issue).collect();
        issues.sort_by(|a, b| (a.updated, &a.key).cmp(&(b.updated, &b.key)));
        Ok(issues)
    }

    /// Redmine's permission names for each need, checked against the
    /// key's roles (`/roles/:id.json` is readable by any user).
    async fn allows(&self, needs: &[Need]) -> Result<Vec<Allowance>, TrackerError> {
        let granted = self.permissions().await?;
        Ok(needs
            .iter()
            .map(|&need| {
                let required: &[&str] = match need {
                    Need::Read => &["view_issues"],
                    Need::SetParents => &["edit_issues", "manage_subtasks"],
                    Need::ChangeLinks => &["manage_issue_relations"],
                    // Which statuses: Redmine's workflow, per role and tracker.
                    Need::ChangeStatuses => &["edit_issues"],
                    Need::SetEpics | Need::Rank => &[],
                };
                if required.is_empty() {
                    return Allowance {
                        need,
                        allowed: false,
                        detail: "Redmine has no epics or ranks".into(),
                    };
                }
                match &granted {
                    None => Allowance {
                        need,
                        allowed: true,
                        detail: format!("{} (an administrator)", required.join(" + ")),
                    },
                    Some((permissions, source)) => {
                        let missing: Vec<&str> = required
                            .iter()
                            .copied()
                            .filter(|p| !permissions.contains(*p))
                            .collect();
                        Allowance {
                            need,
                            allowed: missing.is_empty(),
                            detail: if missing.is_empty() {
                                format!("{} ({source})", required.join(" + "))
                            } else {
                                format!(
                                    "{source} lack {}: a Redmine administrator grants it under Administration → Roles and permissions",
                                    missing.join(" and ")
                                )
                            },
                        }
                    }
                }
            })
            .collect())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            link_changes_bump_updated: false,
            refuses_stale_writes: false,
        }
    }

    /// Redmine checks each status change itself (see `status.rs`).
    async fn workflow(&self) -> Result<Option<Workflow>, TrackerError> {
        Ok(None)
    }

    async fn acting_as(&self) -> Result<Option<String>, TrackerError> {
        self.handshake().await.map(Some)
    }
}

#[cfg(test)]
mod tests;

//! Status changes (statusRollup) in Redmine.
//!
//! Redmine takes a status as its id: names are mapped through
//! `/issue_statuses.json`, read once per client. Redmine's workflow decides
//! per tracker and role which changes a user may make, and it ignores a
//! change it does not allow (the answer is still 204), so written issues
//! are read back; for each change that did not happen, one
//! `/issues/ID.json?include=allowed_statuses` request says what the key's
//! user may do instead. Reading allowed statuses for every parent at plan
//! time would cost a request per parent on every plan; failures are rare.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::json;

use super::{HttpError, IssueFailure, RedmineTracker, WriteBatch, issue_id};
use crate::plan::TrackerOp;

/// Redmine's statuses, read on first use.
#[derive(Default)]
pub(super) struct StatusIds(OnceLock<Known>);

struct Known {
    /// Name → id.
    ids: HashMap<String, u64>,
    /// The closed ones (what `status_id=open` leaves out).
    closed: HashSet<u64>,
}

#[derive(Deserialize)]
struct Statuses {
    issue_statuses: Vec<Status>,
}

#[derive(Deserialize)]
struct Status {
    id: u64,
    name: String,
    #[serde(default)]
    is_closed: bool,
}

#[derive(Deserialize)]
struct AllowedStatuses {
    issue: WithAllowed,
}

#[derive(Deserialize)]
struct WithAllowed {
    #[serde(default)]
    allowed_statuses: Vec<Status>,
}

impl RedmineTracker {
    async fn statuses(&self) -> Result<&Known, HttpError> {
        if let Some(known) = self.statuses.0.get() {
            return Ok(known);
        }
        let statuses: Statuses = self.http.get("issue_statuses.json", &[]).await?;
        let known = Known {
            closed: statuses
                .issue_statuses
                .iter()
                .filter(|s| s.is_closed)
                .map(|s| s.id)
                .collect(),
            ids: statuses
                .issue_statuses
                .into_iter()
                .map(|s| (s.name, s.id))
                .collect(),
        };
        Ok(self.statuses.0.get_or_init(|| known))
    }

    /// The ids of the closed statuses.
    pub(super) async fn closed_statuses(&self) -> Result<&HashSet<u64>, HttpError> {
        Ok(&self.statuses().await?.closed)
    }

    /// Writes the status changes of `batch` (the other operations are not
    /// looked at) and reads them back; a change Redmine refused or did not
    /// make fails with what the key's user may do instead.
    pub(super) async fn write_statuses(&self, batch: &mut WriteBatch<'_>) {
        let changes: Vec<(usize, &TrackerOp, &str)> = batch
            .ops()
            .filter_map(|(at, op)| match op {
                TrackerOp::SetStatus { to, .. } => Some((at, op, to.as_str())),
                _ => None,
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        let failure = |op: &TrackerOp, message: String| IssueFailure {
            issue: op.issue().to_owned(),
            operation: op.to_string(),
            message,
        };
        let ids = match self.statuses().await {
            Ok(known) => &known.ids,
            Err(e) if batch.ends(&e) => return,
            Err(e) => {
                for (at, op, _) in changes {
                    let message = format!("listing Redmine's issue statuses failed: {}", e.message);
                    batch.fail(at, failure(op, message));
                }
                return;
            }
        };
        let mut written = Vec::new();
        for (at, op, to) in changes {
            if batch.ended() {
                return;
            }
            let id = match issue_id(op.issue(), &op.to_string()) {
                Ok(id) => id,
                Err(e) => {
                    batch.fail(at, e);
                    continue;
                }
            };
            let Some(status) = ids.get(to) else {
                let mut known: Vec<&str> = ids.keys().map(String::as_str).collect();
                known.sort_unstable();
                let message = format!(
                    "Redmine has no status `{to}` (it has: {}); fix spec.statusRollup.statuses",
                    known.join(", ")
                );
                batch.fail(at, failure(op, message));
                continue;
            };
            let body = json!({ "issue": { "status_id": status } });
            match self.http.put(&format!("issues/{id}.json"), body).await {
                Ok(()) => {
                    batch.made(at);
                    written.push((at, op, id, to));
                }
                Err(e) if batch.ends(&e) => return,
                Err(e) => batch.fail(at, failure(op, e.message)),
            }
        }
        let keys: Vec<&str> = written.iter().map(|(_, op, ..)| op.issue()).collect();
        let positions: Vec<usize> = written.iter().map(|(at, ..)| *at).collect();
        let Some(now) = batch.checked(&positions, self.read_back(&keys).await) else {
            return;
        };
        for (at, op, id, to) in written {
            let status = now.get(op.issue()).map(|i| i.status.as_str());
            if status == Some(to) {
                continue;
            }
            // Once the batch ended, nothing more is sent.
            let allowed = if batch.ended() {
                "unknown".into()
            } else {
                match self.allowed_statuses(id).await {
                    Ok(allowed) if allowed.is_empty() => "nothing".into(),
                    Ok(allowed) => allowed.join(", "),
                    Err(e) => {
                        batch.ends(&e);
                        format!("unknown, reading it failed: {}", e.message)
                    }
                }
            };
            let message = format!(
                "Redmine's workflow does not let the API key's user make this change (it may change the status to: {allowed}); allow it under Administration → Workflow for the issue's tracker and the user's role, or change the status by hand"
            );
            batch.fail(at, failure(op, message));
        }
    }

    async fn allowed_statuses(&self, id: u64) -> Result<Vec<String>, HttpError> {
        let answer: AllowedStatuses = self
            .http
            .get(
                &format!("issues/{id}.json"),
                &[("include", "allowed_statuses")],
            )
            .await?;
        Ok(answer
            .issue
            .allowed_statuses
            .into_iter()
            .map(|s| s.name)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{USER, response, scripted, tracker};
    use crate::tracker::Tracker;

    use super::*;

    const STATUSES: &str = r#"{"issue_statuses":[{"id":1,"name":"New","is_closed":false},{"id":2,"name":"In Progress","is_closed":false},{"id":5,"name":"Closed","is_closed":true}]}"#;

    fn set_status(issue: &str, from: &str, to: &str) -> TrackerOp {
        TrackerOp::SetStatus {
            issue: issue.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn issue_in(status_id: u64, status: &str) -> String {
        format!(
            r#"{{"issues":[{{"id":7,"project":{{"id":1,"name":"Demo"}},"tracker":{{"id":1,"name":"Bug"}},"status":{{"id":{status_id},"name":"{status}"}},"subject":"One"}}],"total_count":1,"offset":0,"limit":100}}"#
        )
    }

    #[tokio::test]
    async fn a_status_is_written_by_its_id_and_read_back() {
        let (url, seen) = scripted(vec![
            response("200 OK", "", USER),
            response("200 OK", "", STATUSES),
            response("204 No Content", "", ""),
            response("200 OK", "", &issue_in(5, "Closed")),
        ])
        .await;
        let redmine = tracker(url);
        redmine
            .apply(&[set_status("#7", "In Progress", "Closed")])
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen[1].starts_with("GET /issue_statuses.json"));
        assert!(seen[2].starts_with("PUT /issues/7.json"));
    }

    #[tokio::test]
    async fn a_change_the_workflow_ignores_is_reported_with_what_is_allowed() {
        let (url, seen) = scripted(vec![
            response("200 OK", "", USER),
            response("200 OK", "", STATUSES),
            response("204 No Content", "", ""),
            // Redmine answered 204 but kept the status.
            response("200 OK", "", &issue_in(2, "In Progress")),
            response(
                "200 OK",
                "",
                r#"{"issue":{"id":7,"allowed_statuses":[{"id":2,"name":"In Progress"},{"id":1,"name":"New"}]}}"#,
            ),
        ])
        .await;
        let redmine = tracker(url);
        let error = redmine
            .apply(&[set_status("#7", "In Progress", "Closed")])
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("#7: #7: status In Progress → Closed: Redmine's workflow does not let the API key's user make this change (it may change the status to: In Progress, New)"), "{error}");
        assert!(seen.lock().unwrap()[4].starts_with("GET /issues/7.json?include=allowed_statuses"));
    }

    #[tokio::test]
    async fn an_unknown_status_name_fails_that_issue_without_a_write() {
        let (url, seen) = scripted(vec![
            response("200 OK", "", USER),
            response("200 OK", "", STATUSES),
        ])
        .await;
        let redmine = tracker(url);
        let error = redmine
            .apply(&[set_status("#7", "New", "Done")])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Redmine has no status `Done` (it has: Closed, In Progress, New)"),
            "{error}"
        );
        assert_eq!(seen.lock().unwrap().len(), 2, "nothing was written");
    }
}

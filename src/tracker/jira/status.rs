//! Status changes (statusRollup) as Jira transitions.
//!
//! Jira changes a status only through a transition of the issue's
//! workflow, and which transitions the account may take depends on the
//! issue's current status, its conditions and the account's permissions.
//! So each change reads the issue's transitions first and takes the one
//! that leads to the status; when there is none, the change fails on that
//! issue, naming the statuses it can go to.

use serde_json::json;

use super::wire::Transitions;
use super::{IssueFailure, JiraTracker, WriteBatch};
use crate::plan::TrackerOp;

impl JiraTracker {
    /// Writes the status changes of `batch` (the other operations are not
    /// looked at); a change Jira refused or has no transition for fails.
    pub(super) async fn write_statuses(&self, batch: &mut WriteBatch<'_>) {
        for (at, op) in batch.ops() {
            if batch.ended() {
                return;
            }
            let TrackerOp::SetStatus { issue, from, to } = op else {
                continue;
            };
            let path = self.api(&format!("issue/{issue}/transitions"));
            let answer = match self.http.get::<Transitions>(&path, &[]).await {
                Ok(offered) => match offered.transitions.iter().find(|t| t.to.name == *to) {
                    Some(transition) => {
                        let body = json!({ "transition": { "id": transition.id } });
                        self.http.post(&path, body).await
                    }
                    None => {
                        let mut allowed: Vec<&str> = offered
                            .transitions
                            .iter()
                            .map(|t| t.to.name.as_str())
                            .collect();
                        allowed.sort_unstable();
                        allowed.dedup();
                        batch.fail(at, IssueFailure {
                            issue: issue.clone(),
                            operation: op.to_string(),
                            message: format!(
                                "Jira's workflow offers the account no transition from {from} to {to} (it may change the status to: {}); add the transition to the workflow, give the account “Transition Issues”, or change the status by hand",
                                if allowed.is_empty() { "nothing".into() } else { allowed.join(", ") }
                            ),
                        });
                        continue;
                    }
                },
                Err(e) => Err(e),
            };
            match answer {
                Ok(()) => batch.made(at),
                Err(e) if batch.ends(&e) => return,
                Err(e) => batch.fail(at, self.failure(op, issue, e)),
            }
        }
    }
}

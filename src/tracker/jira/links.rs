//! Links (the `links` synchronizer) as Jira issue links.
//!
//! A link `A Blocks B` (type name `Blocks`, read on A as an `issuelinks`
//! entry whose `outwardIssue` is B: “A blocks B”) is created by
//! `POST issueLink` with A as `inwardIssue` and B as `outwardIssue`:
//! Jira's names for the two ends are the reverse of what they read like,
//! and this is the way round that reads back as planned. Jira answers 201
//! without the link's id; a link is deleted by the id found in the issue's
//! `fields.issuelinks` (`DELETE issueLink/{id}`).
//!
//! Writes are idempotent: Jira does not duplicate an existing link, and a
//! link already gone is no failure. Jira answers 404 for an unknown link
//! type as for a missing permission, so a 404 is explained with the site's
//! link types.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::wire::WireLink;
use super::{HttpError, JiraTracker, WriteBatch};
use crate::plan::TrackerOp;

#[derive(Deserialize)]
struct Linked {
    fields: LinkFields,
}

#[derive(Deserialize)]
struct LinkFields {
    #[serde(default)]
    issuelinks: Vec<WireLink>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkTypes {
    issue_link_types: Vec<NamedType>,
}

#[derive(Deserialize)]
struct NamedType {
    name: String,
}

impl JiraTracker {
    /// Writes the link changes of `batch` in order (the other operations
    /// are not looked at).
    pub(super) async fn write_links(&self, batch: &mut WriteBatch<'_>) {
        for (at, op) in batch.ops() {
            if batch.ended() {
                return;
            }
            let answer = match op {
                TrackerOp::AddLink {
                    issue,
                    link_type,
                    target,
                } => {
                    let body = json!({
                        "type": { "name": link_type },
                        "inwardIssue": { "key": issue },
                        "outwardIssue": { "key": target },
                    });
                    self.http.post(&self.api("issueLink"), body).await
                }
                TrackerOp::RemoveLink {
                    issue,
                    link_type,
                    target,
                } => self.remove_link(issue, link_type, target).await,
                _ => continue,
            };
            match answer {
                Ok(()) => batch.made(at),
                Err(e) if batch.ends(&e) => return,
                Err(e) if e.status == Some(StatusCode::NOT_FOUND) => {
                    let mut failure = self.failure(op, op.issue(), e);
                    match self.explain_missing(op, failure.message).await {
                        Ok(message) => failure.message = message,
                        Err((message, e)) => {
                            failure.message = message;
                            batch.ends(&e);
                        }
                    }
                    batch.fail(at, failure);
                }
                Err(e) => batch.fail(at, self.failure(op, op.issue(), e)),
            }
        }
    }

    /// Deletes the link `issue link_type target`, if Jira has it.
    async fn remove_link(
        &self,
        issue: &str,
        link_type: &str,
        target: &str,
    ) -> Result<(), HttpError> {
        let Some(id) = self.find(issue, link_type, target).await? else {
            return Ok(());
        };
        match self
            .http
            .delete(&self.api(&format!("issueLink/{id}")))
            .await
        {
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => Ok(()),
            other => other,
        }
    }

    /// The id of the link `issue link_type target`, if Jira has it.
    async fn find(
        &self,
        issue: &str,
        link_type: &str,
        target: &str,
    ) -> Result<Option<String>, HttpError> {
        let path = self.api(&format!("issue/{issue}"));
        let linked: Linked = match self.http.get(&path, &[("fields", "issuelinks")]).await {
            Ok(linked) => linked,
            // The issue is gone, and its links with it.
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(linked
            .fields
            .issuelinks
            .into_iter()
            .find(|l| {
                l.link_type.name == link_type
                    && l.outward_issue.as_ref().is_some_and(|o| o.key == target)
            })
            .map(|l| l.id))
    }

    /// A 404 on a link: an unknown type is the likeliest cause to name.
    /// When the types cannot be listed, the message as it was, with why.
    async fn explain_missing(
        &self,
        op: &TrackerOp,
        message: String,
    ) -> Result<String, (String, HttpError)> {
        let TrackerOp::AddLink { link_type, .. } = op else {
            return Ok(message);
        };
        let types: LinkTypes = match self.http.get(&self.api("issueLinkType"), &[]).await {
            Ok(types) => types,
            Err(e) => return Err((message, e)),
        };
        let names: Vec<String> = types.issue_link_types.into_iter().map(|t| t.name).collect();
        if names.contains(link_type) {
            return Ok(format!(
                "{message}; or the account lacks “Link Issues”, or issue linking is switched off"
            ));
        }
        Ok(format!(
            "Jira has no link type `{link_type}` (it has: {}); fix spec.links.type, which names the type as Jira does, not its outward or inward description",
            names.join(", ")
        ))
    }
}

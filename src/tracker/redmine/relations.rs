//! Links (the `links` synchronizer) as Redmine relations.
//!
//! A link `#1 blocks #2` is the relation `POST /issues/1/relations.json`
//! creates with `issue_to_id: 2`; it is deleted by its id
//! (`DELETE /relations/ID.json`), found on the issue's relations. Redmine
//! stores reverse types normalised (`blocked` as `blocks` with the ends
//! swapped, `relates` from the smaller id), so validation only lets a links
//! synchronizer name the types Redmine keeps as written (see
//! [`STORED_AS_WRITTEN`]): what Trellis writes reads back the same.
//!
//! Writes are idempotent: creating a relation that exists (Redmine's 422
//! "has already been taken", also after a retried POST) or deleting one that
//! is gone changes nothing and is no failure. Other 422s (cross-project
//! relations switched off, a relation to an ancestor, a circular `blocks`)
//! are reported against the issue with Redmine's message.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{HttpError, IssueFailure, RedmineTracker, WriteBatch, issue_id};
use crate::plan::TrackerOp;

/// Relation types Redmine stores the way they are posted; the others are
/// the reverses of these (or `relates`, which has no direction).
pub const STORED_AS_WRITTEN: &[&str] = &["blocks", "precedes", "duplicates", "copied_to"];

/// The type to name instead of a reverse type, with the ends swapped.
pub fn forward_type(reverse: &str) -> Option<&'static str> {
    match reverse {
        "blocked" => Some("blocks"),
        "follows" => Some("precedes"),
        "duplicated" => Some("duplicates"),
        "copied_from" => Some("copied_to"),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Relations {
    relations: Vec<Relation>,
}

#[derive(Deserialize)]
struct Relation {
    id: u64,
    issue_id: u64,
    issue_to_id: u64,
    relation_type: String,
}

/// One link to write, by issue ids.
struct LinkWrite<'a> {
    from: u64,
    to: u64,
    link_type: &'a str,
    create: bool,
}

impl RedmineTracker {
    /// Writes the link changes of `batch` in order (the other operations
    /// are not looked at).
    pub(super) async fn write_links(&self, batch: &mut WriteBatch<'_>) {
        for (at, op) in batch.ops() {
            if batch.ended() {
                return;
            }
            let (issue, link_type, target, create) = match op {
                TrackerOp::AddLink {
                    issue,
                    link_type,
                    target,
                } => (issue, link_type, target, true),
                TrackerOp::RemoveLink {
                    issue,
                    link_type,
                    target,
                } => (issue, link_type, target, false),
                _ => continue,
            };
            let operation = op.to_string();
            let ids = issue_id(issue, &operation)
                .and_then(|from| Ok((from, issue_id(target, &operation)?)));
            let (from, to) = match ids {
                Ok(ids) => ids,
                Err(failure) => {
                    batch.fail(at, failure);
                    continue;
                }
            };
            let write = LinkWrite {
                from,
                to,
                link_type,
                create,
            };
            match self.write_link(&write).await {
                Ok(()) => batch.made(at),
                Err(e) if batch.ends(&e) => return,
                Err(e) => batch.fail(
                    at,
                    IssueFailure {
                        issue: issue.clone(),
                        operation,
                        message: e.message,
                    },
                ),
            }
        }
    }

    /// One link, made or found already so.
    async fn write_link(&self, write: &LinkWrite<'_>) -> Result<(), HttpError> {
        if write.create {
            let body = json!({ "relation": {
                "issue_to_id": write.to,
                "relation_type": write.link_type,
            }});
            let posted = self
                .http
                .post(&format!("issues/{}/relations.json", write.from), body)
                .await;
            match posted {
                // Already there (or made by a POST retried after a lost answer).
                Err(e) if e.status == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                    match self.find(write).await? {
                        Some(_) => Ok(()),
                        None => Err(e),
                    }
                }
                other => other,
            }
        } else {
            match self.find(write).await? {
                None => Ok(()),
                Some(relation) => {
                    match self
                        .http
                        .delete(&format!("relations/{relation}.json"))
                        .await
                    {
                        Err(e) if e.status == Some(StatusCode::NOT_FOUND) => Ok(()),
                        other => other,
                    }
                }
            }
        }
    }

    /// The id of the relation `write` is about, if Redmine has it.
    async fn find(&self, write: &LinkWrite<'_>) -> Result<Option<u64>, HttpError> {
        let relations: Relations = self
            .http
            .get(&format!("issues/{}/relations.json", write.from), &[])
            .await?;
        Ok(relations
            .relations
            .into_iter()
            .find(|r| {
                r.issue_id == write.from
                    && r.issue_to_id == write.to
                    && r.relation_type == write.link_type
            })
            .map(|r| r.id))
    }
}

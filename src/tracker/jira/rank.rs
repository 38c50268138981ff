//! Rank (agile) through the Agile API: `PUT /rest/agile/1.0/issue/rank`
//! puts at most 50 issues, in the order given, right after
//! (`rankAfterIssue`) or before (`rankBeforeIssue`) another issue.
//!
//! Jira answers 204 when all moved, and 207 with one entry per issue when
//! some did not (status 503: “cannot execute the rank operation at this
//! time”). Each run of consecutive failed issues is tried again, placed
//! against a neighbour that did move so the batch's order holds, a few
//! times with a growing pause; what still fails is reported per issue with
//! Jira's messages.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use super::wire::RankResults;
use super::{IssueFailure, JiraTracker, WriteBatch};
use crate::model::RankAnchor;
use crate::plan::{RANK_BATCH, TrackerOp};

/// Rounds of retrying the issues a 207 answer reports as failed.
const ROUNDS: u32 = 3;

const RANK_PATH: &str = "rest/agile/1.0/issue/rank";

impl JiraTracker {
    /// Writes the rank changes of `batch` (the other operations are not
    /// looked at); an issue that did not move fails.
    pub(super) async fn write_ranks(&self, batch: &mut WriteBatch<'_>) {
        for (at, op) in batch.ops() {
            if batch.ended() {
                return;
            }
            let TrackerOp::Rank { issues, anchor, .. } = op else {
                continue;
            };
            // A hand-edited plan may hold more than Jira takes at once:
            // each further batch follows the previous one.
            let mut anchor = anchor.clone();
            let mut failures = Vec::new();
            for chunk in issues.chunks(RANK_BATCH) {
                failures.extend(self.rank_batch(batch, op, chunk, &anchor).await);
                if batch.ended() {
                    break;
                }
                anchor = RankAnchor::After(chunk.last().expect("chunks are not empty").clone());
            }
            if failures.is_empty() && !batch.ended() {
                batch.made(at);
            }
            for failure in failures {
                batch.fail(at, failure);
            }
        }
    }

    /// Ranks at most [`RANK_BATCH`] issues of `op`; the issues that did not
    /// move (none when `batch` ended: it reports the operation itself).
    async fn rank_batch(
        &self,
        batch: &mut WriteBatch<'_>,
        op: &TrackerOp,
        chunk: &[String],
        anchor: &RankAnchor,
    ) -> Vec<IssueFailure> {
        // Every issue of the chunk, failed alike.
        let all_failed = |message: String| {
            chunk
                .iter()
                .map(|issue| IssueFailure {
                    issue: issue.clone(),
                    operation: op.to_string(),
                    message: message.clone(),
                })
                .collect()
        };
        // The issues still to move, by position in the chunk, with why not yet.
        let mut failed: HashMap<usize, String> = HashMap::new();
        let mut attempts: Vec<(Vec<usize>, RankAnchor)> =
            vec![((0..chunk.len()).collect(), anchor.clone())];
        for round in 0..=ROUNDS {
            if round > 0 {
                if failed.is_empty() {
                    break;
                }
                tokio::time::sleep(self.http.backoff(round)).await;
                attempts = runs(&failed, chunk, anchor);
            }
            for (positions, against) in attempts.drain(..) {
                let issues: Vec<&str> = positions.iter().map(|p| chunk[*p].as_str()).collect();
                let mut body = json!({ "issues": issues });
                match &against {
                    RankAnchor::After(key) => body["rankAfterIssue"] = json!(key),
                    RankAnchor::Before(key) => body["rankBeforeIssue"] = json!(key),
                }
                match self
                    .http
                    .send(reqwest::Method::PUT, RANK_PATH, &[], Some(body))
                    .await
                {
                    Ok((StatusCode::MULTI_STATUS, answer)) => {
                        let results: RankResults = match serde_json::from_slice(&answer) {
                            Ok(results) => results,
                            Err(e) => {
                                return all_failed(format!(
                                    "Jira's 207 answer to the rank request is not the documented JSON: {e}"
                                ));
                            }
                        };
                        let by_key: HashMap<&str, _> = results
                            .entries
                            .iter()
                            .map(|e| (e.issue_key.as_str(), e))
                            .collect();
                        for p in positions {
                            match by_key.get(chunk[p].as_str()) {
                                Some(entry) if entry.status >= 300 => {
                                    let why = if entry.errors.is_empty() {
                                        format!("Jira answered {} for this issue", entry.status)
                                    } else {
                                        entry.errors.join("; ")
                                    };
                                    failed.insert(p, why);
                                }
                                _ => {
                                    failed.remove(&p);
                                }
                            }
                        }
                    }
                    Ok(_) => positions.iter().for_each(|p| {
                        failed.remove(p);
                    }),
                    Err(e) if batch.ends(&e) => return Vec::new(),
                    // Refused as a whole (403: no “Schedule Issues”, or no
                    // Jira Software licence): every issue of it fails alike.
                    Err(e) => return all_failed(self.failure(op, &chunk[positions[0]], e).message),
                }
            }
        }
        let mut positions: Vec<usize> = failed.keys().copied().collect();
        positions.sort_unstable();
        positions
            .into_iter()
            .map(|p| IssueFailure {
                issue: chunk[p].clone(),
                operation: op.to_string(),
                message: format!(
                    "Jira did not rank it ({}), also after {ROUNDS} more tries; run again later",
                    failed[&p]
                ),
            })
            .collect()
    }
}

/// The failed issues as runs of consecutive positions, each placed after
/// the batch's issue before it (before the one after it, for a run at the
/// start of a batch that goes before its anchor), so the batch's order
/// holds whatever moved already.
fn runs(
    failed: &HashMap<usize, String>,
    batch: &[String],
    anchor: &RankAnchor,
) -> Vec<(Vec<usize>, RankAnchor)> {
    let mut positions: Vec<usize> = failed.keys().copied().collect();
    positions.sort_unstable();
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for p in positions {
        match runs.last_mut() {
            Some(run) if run.last() == Some(&(p - 1)) => run.push(p),
            _ => runs.push(vec![p]),
        }
    }
    runs.into_iter()
        .map(|run| {
            let first = run[0];
            let last = *run.last().expect("runs are not empty");
            let against = match (first, anchor) {
                (0, RankAnchor::After(_)) => anchor.clone(),
                (0, RankAnchor::Before(_)) => match batch.get(last + 1) {
                    Some(next) => RankAnchor::Before(next.clone()),
                    None => anchor.clone(),
                },
                _ => RankAnchor::After(batch[first - 1].clone()),
            };
            (run, against)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_issues_are_retried_against_neighbours_that_moved() {
        let batch: Vec<String> = ["A-1", "A-2", "A-3", "A-4"].map(String::from).to_vec();
        let failed: HashMap<usize, String> =
            [(0, String::new()), (2, String::new()), (3, String::new())].into();
        let mut runs = runs(&failed, &batch, &RankAnchor::Before("A-9".into()));
        runs.sort_by_key(|(positions, _)| positions[0]);
        assert_eq!(
            runs,
            vec![
                (vec![0], RankAnchor::Before("A-2".into())),
                (vec![2, 3], RankAnchor::After("A-2".into())),
            ]
        );
    }
}

//! One batch of tracker writes: what every tracker's `apply` reports, and how.
//!
//! Redmine and Jira write a batch in steps (statuses, links, ranks, parent
//! and epic edits, each followed or closed by a read-back that checks the
//! changes were made); every step drives the same [`WriteBatch`], so that a
//! fault ends a batch the same way whichever step and tracker meets it:
//!
//! - An operation the tracker refuses fails alone, with the tracker's
//!   message, and the others go on (a 403 too: it is one project's
//!   permission, not the key's).
//! - A refused key (401: revoked or expired during the run) ends the batch:
//!   every later write would be refused alike, so nothing more is sent, not
//!   even the read-back. The operations not made yet fail with one message
//!   that says so, last, counted as `untried` (a pass tries them again by
//!   itself); the failures collected before stay.
//! - `done` counts each operation the tracker accepted, once, whichever step
//!   wrote it. A write that reads back unmade fails instead; one that could
//!   not be read back stays done and is reported as unchecked.
//!
//! The batch ends as `Ok(())` when every operation was made, else as
//! [`TrackerError::Writes`] with `done` and every failure. Two ends stay
//! [`TrackerError::Remote`], as they are not about single operations:
//!
//! - The key refused before the batch made or failed anything (its first
//!   request, as on the handshake): nothing was written, and the refusal is
//!   the whole answer.
//! - The server stopped answering ([`Http::unreachable`]): the write that
//!   gave up may have been made all the same, so no operation can be called
//!   not made. The engine leaves its write-ahead record to the next run,
//!   which reads the tracker and journals what it holds.

use std::future::Future;
use std::iter::Enumerate;
use std::slice::Iter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::StatusCode;

use super::http::{Http, HttpError};
use super::{IssueFailure, TrackerError};
use crate::plan::TrackerOp;

tokio::task_local! {
    /// The operations the batches of one run have made, for its progress.
    static MADE: Arc<AtomicU64>;
}

/// Runs `run`, counting in `made` each operation its write batches make
/// (once each), as they are made: a run's progress, for a person watching.
pub async fn counting_made<F: Future>(made: Arc<AtomicU64>, run: F) -> F::Output {
    MADE.scope(made, run).await
}

/// The operations of one `apply` and what became of each.
pub struct WriteBatch<'a> {
    ops: &'a [TrackerOp],
    outcomes: Vec<Outcome>,
    failures: Vec<IssueFailure>,
    /// The HTTP client the batch is written with, and whose credentials it
    /// sends (`the key from environment variable X`); `None` for a tracker
    /// written without HTTP (local), whose batches never end early.
    http: Option<(&'a Http, String)>,
    end: Option<End>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NotMade,
    Made,
    Failed,
}

/// Why a batch ended before its last operation.
enum End {
    /// The credentials were refused: the server's message.
    Refused(String),
    /// The server stopped answering (see [`Http::stopped`]).
    Unreachable,
}

impl<'a> WriteBatch<'a> {
    pub fn new(ops: &'a [TrackerOp]) -> WriteBatch<'a> {
        WriteBatch {
            ops,
            outcomes: vec![Outcome::NotMade; ops.len()],
            failures: Vec::new(),
            http: None,
            end: None,
        }
    }

    /// A batch written with `http`, which sends `credentials` (for the
    /// message on the operations a refused key left unmade).
    pub fn over(http: &'a Http, credentials: String, ops: &'a [TrackerOp]) -> WriteBatch<'a> {
        WriteBatch {
            http: Some((http, credentials)),
            ..WriteBatch::new(ops)
        }
    }

    /// Every operation with its position, which the other methods take.
    /// Steps pick theirs, and stop at [`WriteBatch::ended`].
    pub fn ops(&self) -> Enumerate<Iter<'a, TrackerOp>> {
        self.ops.iter().enumerate()
    }

    /// Whether the batch ended early: nothing more may be sent.
    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// The tracker accepted operation `at`.
    pub fn made(&mut self, at: usize) {
        if self.outcomes[at] != Outcome::Made {
            let _ = MADE.try_with(|made| made.fetch_add(1, Ordering::Relaxed));
        }
        self.outcomes[at] = Outcome::Made;
    }

    /// Operation `at` failed (or, read back, turned out not made). An
    /// operation on several issues (a rank) may fail on each.
    pub fn fail(&mut self, at: usize, failure: IssueFailure) {
        self.outcomes[at] = Outcome::Failed;
        self.failures.push(failure);
    }

    /// Operation `at` read back unmade, for the reason `message`.
    pub fn unmade(&mut self, at: usize, message: &str) {
        let op = &self.ops[at];
        let failure = IssueFailure {
            issue: op.issue().to_owned(),
            operation: op.to_string(),
            message: message.to_owned(),
        };
        self.fail(at, failure);
    }

    /// Whether `e` ends the batch (the credentials refused, or the server
    /// stopped answering); records the end. Any other error is the
    /// caller's, to report against its operation.
    pub fn ends(&mut self, e: &HttpError) -> bool {
        let Some((http, _)) = self.http else {
            return false;
        };
        if http.unreachable() {
            self.end = Some(End::Unreachable);
        } else if e.status == Some(StatusCode::UNAUTHORIZED) {
            self.end = Some(End::Refused(e.message.clone()));
        }
        self.ended()
    }

    /// The result of reading back the operations `written` (positions),
    /// or `None` when it failed: then each stays done and is reported as
    /// unchecked, and a refused key ends the batch. (A server gone does
    /// not: every write was answered, and the next write fails at once.)
    pub fn checked<T>(&mut self, written: &[usize], read: Result<T, TrackerError>) -> Option<T> {
        match read {
            Ok(found) => Some(found),
            Err(e) => {
                if let TrackerError::Remote {
                    message,
                    status: Some(401),
                    ..
                } = &e
                    && self.http.is_some()
                {
                    self.end = Some(End::Refused(message.clone()));
                }
                for &at in written {
                    let op = &self.ops[at];
                    self.failures.push(IssueFailure {
                        issue: op.issue().to_owned(),
                        operation: op.to_string(),
                        message: format!("written, but reading it back to check failed: {e}"),
                    });
                }
                None
            }
        }
    }

    /// What the batch made and what failed; see the module's comment.
    pub fn finish(mut self) -> Result<(), TrackerError> {
        let done = self
            .outcomes
            .iter()
            .filter(|o| **o == Outcome::Made)
            .count();
        let mut untried = 0;
        match (self.end.take(), self.http) {
            (Some(End::Unreachable), Some((http, _))) => return Err(http.stopped()),
            (Some(End::Refused(message)), Some((_, credentials))) => {
                let mut not_made = self
                    .ops
                    .iter()
                    .zip(&self.outcomes)
                    .filter(|(_, o)| **o == Outcome::NotMade)
                    .map(|(op, _)| op)
                    .peekable();
                if done == 0 && self.failures.is_empty() {
                    let refused = not_made
                        .peek()
                        .map_or_else(String::new, |op| op.to_string());
                    return Err(TrackerError::Remote {
                        operation: format!("{refused} (with {credentials})"),
                        message,
                        status: Some(StatusCode::UNAUTHORIZED.as_u16()),
                    });
                }
                let failures: Vec<IssueFailure> = not_made
                    .map(|op| IssueFailure {
                        issue: op.issue().to_owned(),
                        operation: op.to_string(),
                        message: format!(
                            "not written: {message} ({credentials} stopped working; nothing more was sent)"
                        ),
                    })
                    .collect();
                untried = failures.len();
                self.failures.extend(failures);
            }
            _ => {}
        }
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(TrackerError::Writes {
                done,
                failures: self.failures,
                untried,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_parent(issue: &str) -> TrackerOp {
        TrackerOp::SetParent {
            issue: issue.into(),
            from: None,
            to: "A-1".into(),
        }
    }

    #[tokio::test]
    async fn a_watched_run_counts_each_operation_made_once_as_it_is_made() {
        let ops = [set_parent("A-2"), set_parent("A-3")];
        let made = Arc::new(AtomicU64::new(0));
        let seen = made.clone();
        counting_made(made.clone(), async move {
            let mut batch = WriteBatch::new(&ops);
            batch.made(0);
            // Made again by a later step (a read-back): still one.
            batch.made(0);
            assert_eq!(seen.load(Ordering::Relaxed), 1);
            batch.made(1);
        })
        .await;
        assert_eq!(made.load(Ordering::Relaxed), 2);
        // Outside a watched run nothing is counted, and nothing fails.
        let ops = [set_parent("A-4")];
        WriteBatch::new(&ops).made(0);
        assert_eq!(made.load(Ordering::Relaxed), 2);
    }
}

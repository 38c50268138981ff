//! kstatus conditions: `Ready`, `Reconciling` and `Stalled`, each with the
//! generation it describes. A condition's `lastTransitionTime` moves only
//! when its status changes, as Kubernetes tools expect.

use serde::Serialize;

use crate::spec::{
    Condition, Resync, ResyncStatus, Structure, StructureStatus, Synchronizer, SynchronizerStatus,
    Tracker, TrackerStatus,
};

/// A kind whose status carries the conditions (see `Context::finish`).
pub trait Reported {
    type Status: Serialize;
    /// The conditions its status has now (none without a status).
    fn conditions(&self) -> &[Condition];
    fn conditions_of(status: &mut Self::Status) -> &mut Vec<Condition>;
}

macro_rules! reported {
    ($($kind:ty => $status:ty),+ $(,)?) => {$(
        impl Reported for $kind {
            type Status = $status;

            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map_or(&[], |s| &s.conditions[..])
            }

            fn conditions_of(status: &mut $status) -> &mut Vec<Condition> {
                &mut status.conditions
            }
        }
    )+};
}

reported! {
    Tracker => TrackerStatus,
    Structure => StructureStatus,
    Synchronizer => SynchronizerStatus,
    Resync => ResyncStatus,
}

/// Where an object stands, in kstatus terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub state: State,
    /// A PascalCase reason (`Connected`, `AwaitingApproval`, ...).
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Done and as declared.
    Ready,
    /// Work in progress: it will change by itself.
    Reconciling,
    /// It cannot progress without someone acting (a fix, an approval).
    Stalled,
    /// Neither ready nor stuck: stopped by choice.
    Idle,
}

impl Health {
    pub fn new(state: State, reason: &str, message: impl Into<String>) -> Health {
        Health {
            state,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The three conditions, keeping transition times of unchanged ones.
    pub fn conditions(&self, previous: &[Condition], generation: Option<i64>) -> Vec<Condition> {
        let now = jiff::Timestamp::now().to_string();
        let condition = |type_: &str, on: bool| {
            let status = if on { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(self.reason.clone()),
                message: Some(self.message.clone()),
                last_transition_time: Some(since),
                observed_generation: generation,
            }
        };
        vec![
            condition("Ready", self.state == State::Ready),
            condition("Reconciling", self.state == State::Reconciling),
            condition("Stalled", self.state == State::Stalled),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let waiting = Health::new(State::Stalled, "AwaitingApproval", "approve abc");
        let mut before = waiting.conditions(&[], Some(3));
        for c in &mut before {
            c.last_transition_time = Some("2026-01-01T00:00:00Z".into());
        }
        let running = Health::new(State::Reconciling, "Running", "applying");
        let after = running.conditions(&before, Some(3));
        let time = |type_: &str| {
            after
                .iter()
                .find(|c| c.type_ == type_)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap()
        };
        assert_eq!(time("Ready"), "2026-01-01T00:00:00Z", "still False");
        assert_ne!(time("Stalled"), "2026-01-01T00:00:00Z", "True → False");
        assert_ne!(time("Reconciling"), "2026-01-01T00:00:00Z", "False → True");
        assert!(after.iter().all(|c| c.observed_generation == Some(3)));
        assert!(after.iter().all(|c| c.reason.as_deref() == Some("Running")));
    }
}

//! Which watches have listed their objects once: `/readyz` and every
//! reconcile wait for all four, so that a Synchronizer is never judged
//! before its Structure is known.
//!
//! Each watch reports its own first full list (the `InitDone` event its
//! stream carries), rather than anyone waiting on the reflector's
//! `Store::wait_until_ready`: in kube-runtime 4.2 that wait keeps the
//! waker of one waiter only, and the controller's own runner already
//! waits on it, so a second waiter could sleep for ever (the watches of a
//! real API server never "synced").

use std::sync::Mutex;

/// The kinds still waiting for their first full list.
pub struct Readiness {
    waiting: Mutex<Vec<&'static str>>,
}

impl Readiness {
    /// Waiting for a first list of each of `kinds`.
    pub fn waiting_for(kinds: &[&'static str]) -> Readiness {
        Readiness {
            waiting: Mutex::new(kinds.to_vec()),
        }
    }

    /// `kind`'s watch has listed its objects (again, after a restart: no
    /// change).
    pub fn synced(&self, kind: &str) {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        let before = waiting.len();
        waiting.retain(|k| *k != kind);
        if before > 0 && waiting.is_empty() {
            tracing::info!("watches synced");
        } else if waiting.len() < before {
            tracing::debug!(kind, waiting = ?*waiting, "watch synced");
        }
    }

    /// The kinds not listed yet (empty: ready).
    pub fn waiting(&self) -> Vec<&'static str> {
        self.waiting.lock().expect("not poisoned").clone()
    }

    pub fn is_ready(&self) -> bool {
        self.waiting.lock().expect("not poisoned").is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_kind_has_listed_and_stays_ready_after_a_relist() {
        let readiness = Readiness::waiting_for(&["Tracker", "Structure"]);
        assert!(!readiness.is_ready());
        readiness.synced("Structure");
        assert_eq!(readiness.waiting(), ["Tracker"]);
        readiness.synced("Tracker");
        readiness.synced("Tracker");
        assert!(readiness.is_ready());
    }
}

//! Named points where a test makes Trellis stop dead, as `kill -9` would,
//! to prove that a crash there loses nothing (the write-ahead record of
//! tracker writes, the structure hold's heartbeat).
//!
//! `TRELLIS_FAILPOINT=NAME` aborts the process the first time it reaches
//! point NAME; `NAME:N` at the N-th time; `NAME:pause` stops there for good
//! (the test kills the process). Unset, a point costs one comparison.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// What `TRELLIS_FAILPOINT` asks for.
struct Armed {
    point: String,
    action: Action,
}

enum Action {
    /// Abort at the n-th time the point is reached (1: the first).
    Abort(u32),
    Pause,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var("TRELLIS_FAILPOINT").ok()?;
            let (point, action) = match value.split_once(':') {
                Some((point, "pause")) => (point, Action::Pause),
                Some((point, n)) => (point, Action::Abort(n.parse().ok()?)),
                None => (value.as_str(), Action::Abort(1)),
            };
            Some(Armed {
                point: point.to_owned(),
                action,
            })
        })
        .as_ref()
}

/// Reaching point `name`: aborts or pauses when the environment asks for it.
pub fn reached(name: &str) {
    static TIMES: AtomicU32 = AtomicU32::new(0);
    let Some(armed) = armed().filter(|a| a.point == name) else {
        return;
    };
    match armed.action {
        Action::Abort(n) if TIMES.fetch_add(1, Ordering::SeqCst) + 1 == n => {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
        Action::Abort(_) => {}
        Action::Pause => {
            eprintln!("failpoint {name}: paused");
            loop {
                std::thread::park();
            }
        }
    }
}

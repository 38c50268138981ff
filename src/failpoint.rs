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

/// The points the code has: a name outside these would never fire.
const POINTS: [&str; 2] = ["tracker-write-intended", "tracker-written"];

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var("TRELLIS_FAILPOINT").ok()?;
            // Said once, on stderr: a test whose kill never comes would
            // otherwise fail far from the cause.
            parse(&value)
                .map_err(|e| eprintln!("TRELLIS_FAILPOINT={value} is ignored: {e}"))
                .ok()
        })
        .as_ref()
}

fn parse(value: &str) -> Result<Armed, String> {
    let (point, action) = match value.split_once(':') {
        Some((point, "pause")) => (point, Action::Pause),
        Some((point, n)) => match n.parse() {
            Ok(n) if n > 0 => (point, Action::Abort(n)),
            _ => return Err(format!("`{n}` is not `pause` or a count from 1")),
        },
        None => (value, Action::Abort(1)),
    };
    if !POINTS.contains(&point) {
        return Err(format!(
            "there is no point `{point}`; the points are {}",
            POINTS.join(", ")
        ));
    }
    Ok(Armed {
        point: point.to_owned(),
        action,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failpoint_that_could_never_fire_is_named_as_such() {
        assert!(matches!(
            parse("tracker-written"),
            Ok(Armed {
                action: Action::Abort(1),
                ..
            })
        ));
        assert!(matches!(
            parse("tracker-written:3"),
            Ok(Armed {
                action: Action::Abort(3),
                ..
            })
        ));
        assert!(matches!(
            parse("tracker-written:pause"),
            Ok(Armed {
                action: Action::Pause,
                ..
            })
        ));
        assert_eq!(
            parse("tracker-writen").err().unwrap(),
            "there is no point `tracker-writen`; the points are tracker-write-intended, tracker-written"
        );
        assert_eq!(
            parse("tracker-written:0").err().unwrap(),
            "`0` is not `pause` or a count from 1"
        );
    }
}

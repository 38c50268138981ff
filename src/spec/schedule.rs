//! A synchronizer's `schedule` and `safety.maxRounds`, read into the
//! planner's [`Schedule`]: strings in the spec (they make a clean CRD
//! schema), typed durations, times and zones here.

use std::fmt;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo};

use crate::plan::{MAX_ROUNDS, Schedule, Window};

use super::{ScheduleSpec, SynchronizerSpec, WindowSpec};

/// One wrong field of a schedule: its path from the resource (`spec.schedule.interval`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl SynchronizerSpec {
    /// When its passes run: the declared schedule with defaults filled in
    /// (30 s, a full read after 24 h, any time of day when none is declared).
    /// Validation has refused every declaration for which this is an error.
    pub fn schedule(&self) -> Result<Schedule, Vec<ScheduleError>> {
        self.schedule.clone().unwrap_or_default().to_schedule()
    }

    /// The cycle guard: rounds of undoing each other before synchronizers
    /// are stopped (`safety.maxRounds`, 10 when left out).
    pub fn max_rounds(&self) -> usize {
        self.safety
            .as_ref()
            .and_then(|s| s.max_rounds)
            .map_or(MAX_ROUNDS, |n| n as usize)
    }
}

impl ScheduleSpec {
    /// The schedule this declares, defaults filled in; every wrong field
    /// when any is.
    pub fn to_schedule(&self) -> Result<Schedule, Vec<ScheduleError>> {
        let mut errors = Vec::new();
        let interval = duration(
            "spec.schedule.interval",
            self.interval.as_deref(),
            Schedule::DEFAULT_INTERVAL,
            &mut errors,
        );
        let full_resync_after = duration(
            "spec.schedule.fullResyncAfter",
            self.full_resync_after.as_deref(),
            Schedule::DEFAULT_FULL_RESYNC_AFTER,
            &mut errors,
        );
        if let Some(interval) = interval
            && interval < Schedule::MIN_INTERVAL
        {
            errors.push(ScheduleError {
                field: "spec.schedule.interval",
                message: format!(
                    "{} is too short: each pass asks the tracker what changed, and more often than every {} would hammer it; give at least `5s`",
                    friendly(interval),
                    friendly(Schedule::MIN_INTERVAL),
                ),
            });
        }
        if let (Some(interval), Some(full)) = (interval, full_resync_after)
            && full < interval
            && interval >= Schedule::MIN_INTERVAL
        {
            errors.push(ScheduleError {
                field: "spec.schedule.fullResyncAfter",
                message: format!(
                    "{} is shorter than the interval ({}): every pass would read everything; give at least the interval, or leave it out for `24h`",
                    friendly(full),
                    friendly(interval),
                ),
            });
        }
        let window = self
            .window
            .as_ref()
            .and_then(|window| to_window(window, &mut errors));
        match (interval, full_resync_after) {
            (Some(interval), Some(full_resync_after)) if errors.is_empty() => Ok(Schedule {
                interval,
                full_resync_after,
                window,
            }),
            _ => Err(errors),
        }
    }
}

fn to_window(spec: &WindowSpec, errors: &mut Vec<ScheduleError>) -> Option<Window> {
    let start = clock_time("spec.schedule.window.start", &spec.start, errors);
    let end = clock_time("spec.schedule.window.end", &spec.end, errors);
    let zone = match spec.time_zone.as_deref() {
        None => Some(TimeZone::UTC),
        Some(name) => match TimeZone::get(name) {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.push(ScheduleError {
                    field: "spec.schedule.window.timeZone",
                    message: format!(
                        "`{name}` is not a known time zone; give an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`"
                    ),
                });
                None
            }
        },
    };
    let (start, end, zone) = (start?, end?, zone?);
    let window = Window::new(start, end, zone);
    if window.is_none() {
        errors.push(ScheduleError {
            field: "spec.schedule.window.end",
            message: format!(
                "the window starts and ends at {}: give it a length (end earlier than start runs past midnight), or leave `window` out to sync at any time",
                spec.end
            ),
        });
    }
    window
}

/// A duration in jiff's friendly format (`30s`, `5m`, `1h 30m`); `default`
/// when not given.
fn duration(
    field: &'static str,
    text: Option<&str>,
    default: SignedDuration,
    errors: &mut Vec<ScheduleError>,
) -> Option<SignedDuration> {
    let Some(text) = text else {
        return Some(default);
    };
    match text.parse::<SignedDuration>() {
        Ok(duration) => Some(duration),
        Err(_) => {
            // Days and weeks are calendar units jiff will not fix at 24
            // hours for a duration; say what they come to.
            let hint = text
                .parse::<Span>()
                .ok()
                .and_then(|span| span.to_duration(SpanRelativeTo::days_are_24_hours()).ok())
                .map(|d| format!("; days are written as hours here: {}", friendly(d)))
                .unwrap_or_else(|| "; write e.g. `30s`, `5m`, `1h 30m`".into());
            errors.push(ScheduleError {
                field,
                message: format!("`{text}` is not a duration{hint}"),
            });
            None
        }
    }
}

/// `HH:MM` on a 24-hour clock.
fn clock_time(field: &'static str, text: &str, errors: &mut Vec<ScheduleError>) -> Option<Time> {
    let parsed = match text.as_bytes() {
        [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) => {
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = (m1 - b'0') * 10 + (m2 - b'0');
            Time::new(hours as i8, minutes as i8, 0, 0).ok()
        }
        _ => None,
    };
    if parsed.is_none() {
        errors.push(ScheduleError {
            field,
            message: format!(
                "`{text}` is not a time of day; write `HH:MM` on a 24-hour clock, quoted, e.g. \"20:00\""
            ),
        });
    }
    parsed
}

/// `1h 30m`, as people write it in the spec.
fn friendly(duration: SignedDuration) -> String {
    format!("`{duration:#}`")
}

#[cfg(test)]
mod tests {
    use jiff::civil::time;

    use super::*;

    fn spec(yaml: &str) -> ScheduleSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn errors(yaml: &str) -> Vec<String> {
        spec(yaml)
            .to_schedule()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn nothing_declared_is_the_default_schedule() {
        assert_eq!(
            ScheduleSpec::default().to_schedule().unwrap(),
            Schedule::default()
        );
    }

    #[test]
    fn durations_times_and_zones_are_read() {
        let schedule = spec(
            "interval: 1m 30s\nfullResyncAfter: 12h\nwindow: {start: \"20:00\", end: \"03:00\", timeZone: Europe/Berlin}\n",
        )
        .to_schedule()
        .unwrap();
        assert_eq!(schedule.interval, SignedDuration::from_secs(90));
        assert_eq!(schedule.full_resync_after, SignedDuration::from_hours(12));
        let window = schedule.window.unwrap();
        assert_eq!(
            (window.start(), window.end()),
            (time(20, 0, 0, 0), time(3, 0, 0, 0))
        );
        assert_eq!(window.zone().iana_name(), Some("Europe/Berlin"));
        let utc = spec("window: {start: \"08:00\", end: \"18:30\"}\n")
            .to_schedule()
            .unwrap();
        assert_eq!(utc.window.unwrap().zone(), &TimeZone::UTC);
    }

    #[test]
    fn wrong_durations_say_how_to_write_them() {
        assert_eq!(
            errors("interval: 30 seconds please\n"),
            [
                "spec.schedule.interval: `30 seconds please` is not a duration; write e.g. `30s`, `5m`, `1h 30m`"
            ]
        );
        assert_eq!(
            errors("fullResyncAfter: 7d\n"),
            [
                "spec.schedule.fullResyncAfter: `7d` is not a duration; days are written as hours here: `168h`"
            ]
        );
        assert_eq!(
            errors("interval: 2s\n"),
            [
                "spec.schedule.interval: `2s` is too short: each pass asks the tracker what changed, and more often than every `5s` would hammer it; give at least `5s`"
            ]
        );
        assert_eq!(
            errors("interval: 10m\nfullResyncAfter: 5m\n"),
            [
                "spec.schedule.fullResyncAfter: `5m` is shorter than the interval (`10m`): every pass would read everything; give at least the interval, or leave it out for `24h`"
            ]
        );
    }

    #[test]
    fn wrong_windows_are_named_field_by_field() {
        assert_eq!(
            errors("window: {start: \"8pm\", end: \"24:00\", timeZone: Mars/Olympus}\n"),
            [
                "spec.schedule.window.start: `8pm` is not a time of day; write `HH:MM` on a 24-hour clock, quoted, e.g. \"20:00\"",
                "spec.schedule.window.end: `24:00` is not a time of day; write `HH:MM` on a 24-hour clock, quoted, e.g. \"20:00\"",
                "spec.schedule.window.timeZone: `Mars/Olympus` is not a known time zone; give an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`",
            ]
        );
        assert_eq!(
            errors("window: {start: \"20:00\", end: \"20:00\"}\n"),
            [
                "spec.schedule.window.end: the window starts and ends at 20:00: give it a length (end earlier than start runs past midnight), or leave `window` out to sync at any time"
            ]
        );
    }

    /// Validation reports each wrong field with its file and line, like
    /// every other field.
    #[test]
    fn validation_names_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("issues.yaml"), "issues: []\n").unwrap();
        let declarations = r#"apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: t}
spec: {type: local, local: {path: issues.yaml}}
---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {name: s}
spec: {trackerRef: {name: t}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: sub}
spec:
  structureRef: {name: s}
  type: subtasks
  conflictPolicy: newest
  schedule:
    interval: 1s
    window:
      start: "20:00"
      end: "03:00"
      timeZone: Europe/Berlinn
  safety:
    maxRounds: 0
"#;
        std::fs::write(dir.path().join("trellis.yaml"), declarations).unwrap();
        let errors = crate::spec::Catalog::load(&[dir.path().to_path_buf()]).unwrap_err();
        let file = dir.path().join("trellis.yaml");
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{}:25: spec.safety.maxRounds: 0 rounds would stop the synchronizer before it changes anything; give at least 1 (10 when left out)",
                    file.display()
                ),
                format!(
                    "{}:19: spec.schedule.interval: `1s` is too short: each pass asks the tracker what changed, and more often than every `5s` would hammer it; give at least `5s`",
                    file.display()
                ),
                format!(
                    "{}:23: spec.schedule.window.timeZone: `Europe/Berlinn` is not a known time zone; give an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`",
                    file.display()
                ),
            ]
        );
        // Fixed, it loads, with the policy it declares.
        let fixed = std::fs::read_to_string(&file)
            .unwrap()
            .replace("1s", "1m")
            .replace("Berlinn", "Berlin")
            .replace("maxRounds: 0", "maxRounds: 4");
        std::fs::write(&file, fixed).unwrap();
        let catalog = crate::spec::Catalog::load(&[dir.path().to_path_buf()]).unwrap();
        let sync = &catalog.synchronizers[0].resource.spec;
        assert_eq!(sync.conflict_policy, crate::spec::ConflictPolicy::Newest);
        assert_eq!(sync.max_rounds(), 4);
        assert_eq!(
            sync.schedule().unwrap().interval,
            SignedDuration::from_mins(1)
        );
    }

    #[test]
    fn max_rounds_defaults_to_the_planners_ten() {
        let sync: SynchronizerSpec =
            serde_saphyr::from_str("structureRef: {name: s}\ntype: subtasks\n").unwrap();
        assert_eq!(sync.max_rounds(), 10);
        assert_eq!(sync.schedule().unwrap(), Schedule::default());
        let sync: SynchronizerSpec = serde_saphyr::from_str(
            "structureRef: {name: s}\ntype: subtasks\nsafety: {maxRounds: 3}\n",
        )
        .unwrap();
        assert_eq!(sync.max_rounds(), 3);
    }
}

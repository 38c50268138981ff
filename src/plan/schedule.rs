//! When a synchronizer's incremental passes run: pure time arithmetic, no
//! clock (the caller passes `now`), no I/O.
//!
//! A [`Schedule`] has an `interval` between passes, the age after which a
//! pass must read everything (`full_resync_after`, BigPicture's cache
//! expiry), and optionally a daily [`Window`].
//!
//! # Windows
//!
//! A window is a daily period `[start, end)` on the wall clock of its time
//! zone; when `end` is earlier than `start` it closes on the next day
//! (`20:00`–`03:00` runs overnight). Passes run only inside it:
//!
//! - Each synchronizer's part of a window opens a fixed **offset** after
//!   `start`, so synchronizers sharing a window do not all call the tracker
//!   at the same moment. The offset comes from a SHA-256 of the
//!   synchronizer's id (stable across processes, versions and restarts,
//!   unlike Rust's randomized hasher), in whole seconds, below the window's
//!   **spread**: a quarter of its length, at most an hour.
//! - The first pass of each opening is at `start + offset`; later passes
//!   follow `interval` while the window is open. A pass that would fall at
//!   or after `end` waits for the next opening's `start + offset`. A pass
//!   that starts inside the window is not cut short when it closes (that is
//!   the engine's business; this module only says when passes start).
//! - A synchronizer that never ran also waits for its `start + offset`,
//!   even when the window is already open: after a restart, every
//!   synchronizer keeps its own moment.
//! - Daylight saving: `start` and `end` are wall-clock times resolved with
//!   jiff's *compatible* disambiguation: a time the clocks skip (02:30 on
//!   the spring-forward day in Europe/Berlin) is read as that much later
//!   (03:30), a time that happens twice as its first occurrence. The offset
//!   is added in real time after that. An opening that ends up empty (a
//!   window inside the skipped hour) does not open that day.
//!
//! Whether a pass is full is independent of the window: a full pass is a
//! pass, and runs when passes run.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use sha2::{Digest, Sha256};

/// When a synchronizer's passes run; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Time between the starts of two passes.
    pub interval: SignedDuration,
    /// A pass is a full read when the last full read is at least this old.
    pub full_resync_after: SignedDuration,
    /// Passes run only inside this daily window; always when `None`.
    pub window: Option<Window>,
}

impl Schedule {
    /// `interval` when a synchronizer declares none.
    pub const DEFAULT_INTERVAL: SignedDuration = SignedDuration::from_secs(30);
    /// `fullResyncAfter` when a synchronizer declares none.
    pub const DEFAULT_FULL_RESYNC_AFTER: SignedDuration = SignedDuration::from_hours(24);
    /// The shortest interval accepted: shorter would hammer the tracker.
    pub const MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(5);

    /// When the next pass of `synchronizer` (its id, `namespace/name`) is
    /// due, given when its last pass started (`None`: it never ran).
    ///
    /// Never earlier than `now`; `now` itself means "due now". Without a
    /// window that is `last_pass + interval` (or `now` when that has passed
    /// or the synchronizer never ran); with one, the earliest such time at
    /// which the synchronizer's part of the window is open.
    pub fn next_pass(
        &self,
        synchronizer: &str,
        last_pass: Option<Timestamp>,
        now: Timestamp,
    ) -> Timestamp {
        let due = match last_pass {
            None => now,
            Some(last) => last.saturating_add(self.interval).unwrap_or(now).max(now),
        };
        match &self.window {
            None => due,
            Some(window) => window.next_open(window.offset(synchronizer), due),
        }
    }

    /// Whether `synchronizer` may pass at `now` when an event asks for one
    /// (a webhook, an edited file): inside its part of the window, or at
    /// any time without one. Outside, the event is let go: the window's
    /// first pass reads what changed.
    pub fn open(&self, synchronizer: &str, now: Timestamp) -> bool {
        match &self.window {
            None => true,
            Some(window) => window.next_open(window.offset(synchronizer), now) == now,
        }
    }

    /// Whether a pass starting at `now` must read everything: nothing was
    /// ever read in full (`last_full` is `None`), or the last full read
    /// started at least `full_resync_after` ago.
    pub fn full_due(&self, last_full: Option<Timestamp>, now: Timestamp) -> bool {
        match last_full {
            None => true,
            Some(last) => now.duration_since(last) >= self.full_resync_after,
        }
    }
}

impl Default for Schedule {
    /// Every 30 seconds, a full read every 24 hours, at any time of day.
    fn default() -> Schedule {
        Schedule {
            interval: Schedule::DEFAULT_INTERVAL,
            full_resync_after: Schedule::DEFAULT_FULL_RESYNC_AFTER,
            window: None,
        }
    }
}

/// A daily window `[start, end)` in a time zone; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    start: Time,
    end: Time,
    zone: TimeZone,
}

impl Window {
    /// The longest a synchronizer's first pass waits after `start`.
    pub const MAX_SPREAD: SignedDuration = SignedDuration::from_hours(1);

    /// A window from `start` to `end` (on the next day when earlier) on the
    /// wall clock of `zone`. `None` when `start == end`: such a window would
    /// be either empty or the whole day, and no one can tell which was meant.
    pub fn new(start: Time, end: Time, zone: TimeZone) -> Option<Window> {
        (start != end).then_some(Window { start, end, zone })
    }

    pub fn start(&self) -> Time {
        self.start
    }

    pub fn end(&self) -> Time {
        self.end
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The window's length on the wall clock (a DST day may be an hour
    /// longer or shorter in real time).
    pub fn length(&self) -> SignedDuration {
        let length = self.start.duration_until(self.end);
        if length.is_negative() {
            length + SignedDuration::from_hours(24)
        } else {
            length
        }
    }

    /// Offsets are below this: a quarter of the window, at most [`Window::MAX_SPREAD`].
    pub fn spread(&self) -> SignedDuration {
        (self.length() / 4).min(Window::MAX_SPREAD)
    }

    /// How long after `start` `synchronizer`'s part of the window opens:
    /// whole seconds below [`Window::spread`], the same for one id in every
    /// process and version.
    pub fn offset(&self, synchronizer: &str) -> SignedDuration {
        let seconds = self.spread().as_secs().max(1) as u64;
        let digest = Sha256::digest(synchronizer.as_bytes());
        let hash = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        SignedDuration::from_secs((hash % seconds) as i64)
    }

    /// Whether `at` is inside the window (offsets aside).
    pub fn contains(&self, at: Timestamp) -> bool {
        self.next_open(SignedDuration::ZERO, at) == at
    }

    /// The opening that starts on `day`: from `start + offset` to `end`, in
    /// real time; `None` when that is empty (or out of jiff's range).
    fn opening(&self, day: Date, offset: SignedDuration) -> Option<(Timestamp, Timestamp)> {
        let end_day = if self.end > self.start {
            day
        } else {
            day.checked_add(1.day()).ok()?
        };
        let open = self.zone.to_timestamp(day.to_datetime(self.start)).ok()?;
        let open = open.checked_add(offset).ok()?;
        let close = self.zone.to_timestamp(end_day.to_datetime(self.end)).ok()?;
        (open < close).then_some((open, close))
    }

    /// The earliest time at or after `at` inside the opening of a
    /// synchronizer with `offset`.
    fn next_open(&self, offset: SignedDuration, at: Timestamp) -> Timestamp {
        let today = self.zone.to_datetime(at).date();
        // The opening holding `at` started today or, past midnight,
        // yesterday; an empty opening (DST) is skipped, once a year at most.
        for days in -1..=7 {
            let Ok(day) = today.checked_add(days.days()) else {
                continue;
            };
            if let Some((open, close)) = self.opening(day, offset)
                && at < close
            {
                return at.max(open);
            }
        }
        // Only at the very edge of jiff's time range.
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;

    fn berlin(datetime: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = datetime.parse().unwrap();
        TimeZone::get("Europe/Berlin")
            .unwrap()
            .to_timestamp(dt)
            .unwrap()
    }

    fn evenings() -> Schedule {
        Schedule {
            window: Window::new(
                time(20, 0, 0, 0),
                time(3, 0, 0, 0),
                TimeZone::get("Europe/Berlin").unwrap(),
            ),
            ..Schedule::default()
        }
    }

    #[test]
    fn defaults_are_thirty_seconds_and_a_day_at_any_time() {
        let schedule = Schedule::default();
        assert_eq!(schedule.interval, SignedDuration::from_secs(30));
        assert_eq!(schedule.full_resync_after, SignedDuration::from_hours(24));
        assert_eq!(schedule.window, None);
    }

    #[test]
    fn without_a_window_the_next_pass_is_an_interval_after_the_last() {
        let schedule = Schedule::default();
        let last: Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-03-02T10:00:10Z".parse().unwrap();
        assert_eq!(
            schedule.next_pass("default/a", Some(last), now),
            "2026-03-02T10:00:30Z".parse::<Timestamp>().unwrap()
        );
        // Never ran, or overdue (the controller was down): due now.
        assert_eq!(schedule.next_pass("default/a", None, now), now);
        let later: Timestamp = "2026-03-02T11:00:00Z".parse().unwrap();
        assert_eq!(schedule.next_pass("default/a", Some(last), later), later);
    }

    #[test]
    fn windows_past_midnight_wait_for_the_next_evening_plus_the_offset() {
        let schedule = evenings();
        let window = schedule.window.as_ref().unwrap();
        assert_eq!(window.length(), SignedDuration::from_hours(7));
        assert_eq!(window.spread(), SignedDuration::from_hours(1));
        let offset = window.offset("default/a");
        // The last pass was just before the window closed; at 03:10 it is closed.
        let last = berlin("2026-03-03T02:59:45");
        let now = berlin("2026-03-03T03:10");
        let next = schedule.next_pass("default/a", Some(last), now);
        assert_eq!(
            next,
            berlin("2026-03-03T20:00").checked_add(offset).unwrap()
        );
        assert!(!window.contains(now));
        assert!(window.contains(next));
        // Never ran, in the afternoon: the same moment.
        assert_eq!(
            schedule.next_pass("default/a", None, berlin("2026-03-03T15:00")),
            next
        );
    }

    #[test]
    fn offsets_are_stable_per_synchronizer_and_spread_between_them() {
        let window = evenings().window.unwrap();
        let a = window.offset("default/a");
        assert_eq!(a, window.offset("default/a"));
        // Pinned: SHA-256 does not change between builds, so neither may this.
        assert_eq!(a, SignedDuration::from_secs(686));
        // The README's example: 20:00–03:00 opens at 20:11:30 for it.
        assert_eq!(
            window.offset("default/children"),
            SignedDuration::from_secs(690)
        );
        let offsets: std::collections::HashSet<SignedDuration> = (0..20)
            .map(|i| window.offset(&format!("default/sync-{i}")))
            .collect();
        assert!(offsets.len() > 15, "{offsets:?}");
        assert!(
            offsets
                .iter()
                .all(|o| *o >= SignedDuration::ZERO && *o < window.spread())
        );
        // A short window spreads over a quarter of itself.
        let short = Window::new(time(9, 0, 0, 0), time(9, 20, 0, 0), TimeZone::UTC).unwrap();
        assert_eq!(short.spread(), SignedDuration::from_mins(5));
        assert!(short.offset("default/a") < SignedDuration::from_mins(5));
    }

    #[test]
    fn an_event_passes_only_while_the_window_is_open() {
        let schedule = evenings();
        let offset = schedule.window.as_ref().unwrap().offset("default/a");
        let opened = berlin("2026-03-03T20:00").checked_add(offset).unwrap();
        assert!(schedule.open("default/a", opened));
        assert!(schedule.open("default/a", berlin("2026-03-04T02:59")));
        assert!(!schedule.open("default/a", berlin("2026-03-04T12:00")));
        assert!(Schedule::default().open("default/a", berlin("2026-03-04T12:00")));
    }

    #[test]
    fn inside_the_window_passes_follow_the_interval() {
        let schedule = evenings();
        let first = berlin("2026-03-03T20:00")
            .checked_add(schedule.window.as_ref().unwrap().offset("default/a"))
            .unwrap();
        let next = schedule.next_pass("default/a", Some(first), first);
        assert_eq!(
            next,
            first.checked_add(SignedDuration::from_secs(30)).unwrap()
        );
        // After midnight too, up to the end; the pass due at 03:00 is tomorrow's.
        let late = berlin("2026-03-04T02:59:00");
        assert_eq!(
            schedule.next_pass("default/a", Some(late), late),
            berlin("2026-03-04T02:59:30")
        );
        let last = berlin("2026-03-04T02:59:30");
        assert_eq!(
            schedule.next_pass("default/a", Some(last), last),
            berlin("2026-03-04T20:00")
                .checked_add(schedule.window.as_ref().unwrap().offset("default/a"))
                .unwrap()
        );
        // An overdue pass inside the window is due now.
        let now = berlin("2026-03-03T23:00");
        assert_eq!(
            schedule.next_pass("default/a", Some(berlin("2026-03-03T22:00")), now),
            now
        );
    }

    #[test]
    fn a_synchronizer_that_never_ran_waits_for_its_offset_even_in_an_open_window() {
        let schedule = evenings();
        let offset = schedule.window.as_ref().unwrap().offset("default/a");
        let now = berlin("2026-03-03T20:00");
        assert_eq!(
            schedule.next_pass("default/a", None, now),
            now.checked_add(offset).unwrap()
        );
    }

    #[test]
    fn a_window_start_skipped_by_daylight_saving_opens_when_the_clocks_say_it() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let schedule = Schedule {
            window: Window::new(
                time(2, 30, 0, 0),
                time(6, 0, 0, 0),
                TimeZone::get("Europe/Berlin").unwrap(),
            ),
            ..Schedule::default()
        };
        let offset = schedule.window.as_ref().unwrap().offset("default/a");
        let now: Timestamp = "2026-03-28T23:00:00Z".parse().unwrap();
        // 02:30 does not exist that day: compatible reads it as 03:30 CEST,
        // which is 01:30 UTC (the day before, 02:30 CET is 01:30 UTC too).
        let open: Timestamp = "2026-03-29T01:30:00Z".parse().unwrap();
        assert_eq!(
            schedule.next_pass("default/a", None, now),
            open.checked_add(offset).unwrap()
        );
        // The window closes at 06:00 CEST = 04:00 UTC, an hour earlier in
        // UTC than the day before (05:00 UTC).
        let window = schedule.window.as_ref().unwrap();
        assert!(window.contains("2026-03-29T03:59:59Z".parse().unwrap()));
        assert!(!window.contains("2026-03-29T04:00:00Z".parse().unwrap()));
        assert!(window.contains("2026-03-28T04:30:00Z".parse().unwrap()));
        // The next day opens at 02:30 CEST = 00:30 UTC.
        let after = "2026-03-29T04:00:00Z".parse().unwrap();
        assert_eq!(
            schedule.next_pass("default/a", None, after),
            "2026-03-30T00:30:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .checked_add(offset)
                .unwrap()
        );
    }

    #[test]
    fn a_window_the_clocks_skip_does_not_open_that_day() {
        let berlin_window = |start, end| Schedule {
            window: Window::new(start, end, TimeZone::get("Europe/Berlin").unwrap()),
            ..Schedule::default()
        };
        // 02:00–03:00 on 2026-03-29 is 03:00–03:00 CEST: empty. The next
        // opening is the next night's, 02:00 CEST = 00:00 UTC.
        let skipped = berlin_window(time(2, 0, 0, 0), time(3, 0, 0, 0));
        let offset = skipped.window.as_ref().unwrap().offset("default/a");
        assert_eq!(
            skipped.next_pass("default/a", None, berlin("2026-03-29T00:00")),
            "2026-03-30T00:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .checked_add(offset)
                .unwrap()
        );
        // 02:10–02:50 moves by the hour as a whole: 03:10–03:50 CEST.
        let moved = berlin_window(time(2, 10, 0, 0), time(2, 50, 0, 0));
        let offset = moved.window.as_ref().unwrap().offset("default/a");
        assert_eq!(
            moved.next_pass("default/a", None, berlin("2026-03-29T00:00")),
            "2026-03-29T01:10:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .checked_add(offset)
                .unwrap()
        );
    }

    #[test]
    fn start_and_end_must_differ() {
        assert_eq!(
            Window::new(time(8, 0, 0, 0), time(8, 0, 0, 0), TimeZone::UTC),
            None
        );
    }

    #[test]
    fn a_full_read_is_due_when_none_happened_or_the_last_is_too_old() {
        let schedule = Schedule::default();
        let now: Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        assert!(schedule.full_due(None, now));
        assert!(!schedule.full_due(Some("2026-03-01T10:00:01Z".parse().unwrap()), now));
        assert!(schedule.full_due(Some("2026-03-01T10:00:00Z".parse().unwrap()), now));
        assert!(schedule.full_due(Some("2026-02-01T00:00:00Z".parse().unwrap()), now));
    }
}

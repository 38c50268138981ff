//! Limits on the requests to one server, shared by every client of it in
//! the process: the Tracker's `spec.rateLimit` (requests per second,
//! requests at once) and the pauses the server asks for (`Retry-After` on
//! a 429 or 503; Jira's `X-RateLimit-Reset` once `X-RateLimit-Remaining`
//! is 0). Structures passing in parallel each have their own clients; they
//! meet here, so that together they stay within one tenant's quota.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::spec::RateLimit;

/// One server's turns: a request waits for a free slot (`concurrent`),
/// then for its start time (`spacing` after the one before, and not before
/// a pause the server asked for ends).
pub struct Limiter {
    concurrent: Option<Semaphore>,
    spacing: Option<Duration>,
    clock: Mutex<Clock>,
}

#[derive(Default)]
struct Clock {
    /// When the next request may start.
    next: Option<Instant>,
    /// Until when the server asked every client to wait.
    paused_until: Option<Instant>,
}

/// A request's turn: its slot is free again when this is dropped.
pub struct Turn<'a> {
    _slot: Option<SemaphorePermit<'a>>,
}

impl Limiter {
    fn new(limit: Option<RateLimit>) -> Limiter {
        let limit = limit.unwrap_or(RateLimit {
            requests_per_second: None,
            concurrent_requests: None,
        });
        Limiter {
            concurrent: limit
                .concurrent_requests
                .map(|n| Semaphore::new(n.try_into().unwrap_or(usize::MAX))),
            spacing: limit
                .requests_per_second
                .filter(|rate| rate.is_finite() && *rate > 0.0)
                .map(|rate| Duration::from_secs_f64(1.0 / rate)),
            clock: Mutex::new(Clock::default()),
        }
    }

    /// Waits until a request may start; hold the turn until its answer
    /// has been read.
    pub async fn turn(&self) -> Turn<'_> {
        let slot = match &self.concurrent {
            Some(slots) => Some(
                slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        let now = Instant::now();
        let start = {
            let mut clock = self.clock.lock().expect("the clock is never poisoned");
            let start = [clock.next, clock.paused_until]
                .into_iter()
                .flatten()
                .fold(now, Instant::max);
            if let Some(spacing) = self.spacing {
                clock.next = Some(start + spacing);
            }
            start
        };
        tokio::time::sleep_until(start).await;
        Turn { _slot: slot }
    }

    /// The server asked that no request start for `wait`: every client of
    /// it waits, not only the one that was told.
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut clock = self.clock.lock().expect("the clock is never poisoned");
        clock.paused_until = Some(clock.paused_until.map_or(until, |u| u.max(until)));
    }
}

/// The limiter of the server at `url` (its scheme, host and port) under
/// `limit`, made at its first use; later clients of the same server and
/// limit share it.
pub fn limiter(url: &Url, limit: Option<RateLimit>) -> Arc<Limiter> {
    type Key = (String, Option<u64>, Option<u32>);
    static LIMITERS: LazyLock<Mutex<HashMap<Key, Arc<Limiter>>>> = LazyLock::new(Default::default);
    let key = (
        url.origin().ascii_serialization(),
        limit.and_then(|l| l.requests_per_second).map(f64::to_bits),
        limit.and_then(|l| l.concurrent_requests),
    );
    LIMITERS
        .lock()
        .expect("the limiters are never poisoned")
        .entry(key)
        .or_insert_with(|| Arc::new(Limiter::new(limit)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: Option<f64>, at_once: Option<u32>) -> Limiter {
        Limiter::new(Some(RateLimit {
            requests_per_second: rate,
            concurrent_requests: at_once,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn requests_start_no_faster_than_the_rate() {
        let limiter = limit(Some(4.0), None);
        let start = Instant::now();
        for _ in 0..5 {
            drop(limiter.turn().await);
        }
        // The first at once, then one every 250 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_requests_are_in_flight_than_allowed() {
        let limiter = Arc::new(limit(None, Some(2)));
        let first = limiter.turn().await;
        let _second = limiter.turn().await;
        let third = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let _turn = limiter.turn().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        let released = Instant::now();
        drop(first);
        assert_eq!(third.await.unwrap(), released, "the third waits for a slot");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_the_server_asked_for_holds_every_request() {
        let limiter = limit(None, None);
        let start = Instant::now();
        drop(limiter.turn().await);
        assert_eq!(start.elapsed(), Duration::ZERO, "no limit, no wait");
        limiter.pause(Duration::from_secs(2));
        limiter.pause(Duration::from_secs(1));
        drop(limiter.turn().await);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "the longer pause wins"
        );
    }

    #[test]
    fn clients_of_one_server_and_limit_share_a_limiter() {
        let limit = Some(RateLimit {
            requests_per_second: Some(3.0),
            concurrent_requests: None,
        });
        let a = limiter(&"https://jira.example.com/".parse().unwrap(), limit);
        let b = limiter(
            &"https://jira.example.com/rest/api/3/".parse().unwrap(),
            limit,
        );
        let other = limiter(&"https://other.example.com/".parse().unwrap(), limit);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
    }
}

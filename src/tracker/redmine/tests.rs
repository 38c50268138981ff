//! The client's retry and error behaviour against a scripted HTTP server:
//! Redmine itself never answers 429 or 503, but a proxy in front of it
//! does. Everything else is tested against a real Redmine (tests/redmine.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const KEY: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

/// Answers each connection with the next scripted response, and records
/// the request heads it received.
pub(super) async fn scripted(responses: Vec<String>) -> (Url, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for response in responses {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buffer).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buffer[..n]);
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        }
    });
    (url, seen)
}

pub(super) fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

pub(super) fn tracker(url: Url) -> RedmineTracker {
    retrying(
        url,
        Retry {
            attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            budget: Duration::from_secs(15),
        },
    )
}

/// A tracker of project demo at `url` that retries as `retry` says.
fn retrying(url: Url, retry: Retry) -> RedmineTracker {
    client(url, retry, None)
}

fn client(url: Url, retry: Retry, rate_limit: Option<crate::spec::RateLimit>) -> RedmineTracker {
    RedmineTracker::new(Settings {
        url,
        key: ApiKey::new(KEY),
        key_source: "environment variable TEST_KEY".into(),
        project: Some("demo".into()),
        subprojects: true,
        retry,
        rate_limit,
    })
    .unwrap()
}

pub(super) const USER: &str = r#"{"user":{"id":1,"login":"admin"}}"#;
const ONE_ISSUE: &str = r#"{"issues":[{"id":7,"project":{"id":1,"name":"Demo"},"tracker":{"id":1,"name":"Bug"},"status":{"id":1,"name":"New"},"subject":"One","updated_on":"2026-11-21T05:37:24Z","relations":[]}],"total_count":1,"offset":0,"limit":100}"#;

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_the_servers_delay() {
    let (url, seen) = scripted(vec![
        response("200 OK", "", USER),
        response("429 Too Many Requests", "Retry-After: 0\r\n", ""),
        response("503 Service Unavailable", "Retry-After: 0\r\n", ""),
        response("200 OK", "", ONE_ISSUE),
    ])
    .await;
    // Our own backoff would wait 20 s, then 40 s: the server's 0 s must win.
    let redmine = retrying(
        url,
        Retry {
            attempts: 3,
            base_delay: Duration::from_secs(20),
            max_delay: Duration::from_secs(60),
            budget: Duration::from_secs(15),
        },
    );
    let started = std::time::Instant::now();
    let snapshot = redmine.snapshot().await.unwrap();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(snapshot.len(), 1);
    assert_eq!(redmine.requests(), 4);
    let seen = seen.lock().unwrap();
    assert!(seen[0].starts_with("GET /users/current.json"));
    assert!(
        seen[3].starts_with("GET /issues.json?project_id=demo&status_id=*&issue_id=%3E%3D1&sort=id&limit=100&include=relations"),
        "{}",
        seen[3]
    );
    assert!(seen.iter().all(|h| {
        h.to_ascii_lowercase()
            .contains(&format!("x-redmine-api-key: {KEY}"))
    }));
}

#[tokio::test]
async fn a_servers_retry_after_is_honoured_beyond_the_retry_budget() {
    let (url, _) = scripted(vec![
        response("200 OK", "", USER),
        response("429 Too Many Requests", "Retry-After: 2\r\n", ""),
        response("200 OK", "", ONE_ISSUE),
    ])
    .await;
    // The budget is for a server that went away; one that says when to
    // come back is waited for, and not given up on.
    let redmine = retrying(
        url,
        Retry {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(60),
            budget: Duration::from_millis(500),
        },
    );
    let started = std::time::Instant::now();
    let snapshot = redmine.snapshot().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(snapshot.len(), 1);
}

#[tokio::test]
async fn persistent_failures_give_up_with_a_clear_message_and_no_key() {
    let (url, _) = scripted(vec![
        response("200 OK", "", USER),
        response("500 Internal Server Error", "", ""),
        response("500 Internal Server Error", "", ""),
        response("500 Internal Server Error", "", ""),
    ])
    .await;
    let error = tracker(url).snapshot().await.unwrap_err().to_string();
    assert_eq!(
        error,
        "list the issues of project demo: Redmine answered 500 Internal Server Error (gave up after 3 attempts)"
    );
}

#[tokio::test]
async fn a_refused_key_says_where_the_key_came_from() {
    let (url, _) = scripted(vec![response("401 Unauthorized", "", "")]).await;
    let error = tracker(url.clone())
        .snapshot()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.starts_with(&format!("connect to Redmine at {url}: Redmine refused the API key from environment variable TEST_KEY (401 Unauthorized)")), "{error}");
    assert!(!error.contains(KEY));
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_named() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let redmine = tracker(url);
    let error = redmine.snapshot().await.unwrap_err().to_string();
    assert!(
        error.contains("(gave up after 3 attempts); check spec.url"),
        "{error}"
    );
    assert_eq!(redmine.requests(), 3);
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_key_stays_with_this_server() {
    let (url, seen) = scripted(vec![response(
        "301 Moved Permanently",
        "Location: https://elsewhere.example/users/current.json\r\n",
        "",
    )])
    .await;
    let error = tracker(url).snapshot().await.unwrap_err().to_string();
    assert!(
        error.contains("redirects GET users/current.json to https://elsewhere.example/users/current.json (301 Moved Permanently); set spec.url"),
        "{error}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_asking_for_a_long_wait_is_not_hammered() {
    let (url, _) = scripted(vec![
        response("200 OK", "", USER),
        response("429 Too Many Requests", "Retry-After: 3600\r\n", ""),
    ])
    .await;
    let error = tracker(url).snapshot().await.unwrap_err().to_string();
    assert!(
        error.ends_with(
            "(429 Too Many Requests), and asks to wait 3600 s before trying again; run again later"
        ),
        "{error}"
    );
}

#[test]
fn validation_errors_carry_redmines_messages() {
    let message = describe(
        StatusCode::UNPROCESSABLE_ENTITY,
        r#"{"errors":["Parent task is invalid","Subject cannot be blank"]}"#,
    );
    assert_eq!(
        message,
        "Redmine refused it (422): Parent task is invalid; Subject cannot be blank"
    );
}

fn parent(issue: &str, to: Option<&str>) -> TrackerOp {
    match to {
        Some(to) => TrackerOp::SetParent {
            issue: issue.into(),
            from: None,
            to: to.into(),
        },
        None => TrackerOp::ClearParent {
            issue: issue.into(),
            from: "#1".into(),
        },
    }
}

#[tokio::test]
async fn a_key_refused_after_writes_fails_what_is_left_and_keeps_earlier_failures() {
    let (url, seen) = scripted(vec![
        response("200 OK", "", USER),
        response(
            "200 OK",
            "",
            r#"{"issue_statuses":[{"id":1,"name":"New"},{"id":5,"name":"Closed"}]}"#,
        ),
        // Write 1: the status, read back as made.
        response("204 No Content", "", ""),
        response(
            "200 OK",
            "",
            r#"{"issues":[{"id":7,"project":{"id":1,"name":"Demo"},"tracker":{"id":1,"name":"Bug"},"status":{"id":5,"name":"Closed"},"subject":"One"}],"total_count":1,"offset":0,"limit":100}"#,
        ),
        // Write 2: the relation.
        response("201 Created", "", "{}"),
        // A failure of its own, then write 3, then the key is revoked.
        response(
            "422 Unprocessable Entity",
            "",
            r#"{"errors":["Parent task is invalid"]}"#,
        ),
        response("204 No Content", "", ""),
        response("401 Unauthorized", "", ""),
    ])
    .await;
    let redmine = tracker(url);
    let error = redmine
        .apply(&[
            TrackerOp::SetStatus {
                issue: "#7".into(),
                from: "New".into(),
                to: "Closed".into(),
            },
            TrackerOp::AddLink {
                issue: "#8".into(),
                link_type: "blocks".into(),
                target: "#9".into(),
            },
            parent("#8", Some("#1")),
            parent("#9", Some("#1")),
            parent("#10", Some("#1")),
            parent("#11", None),
        ])
        .await
        .unwrap_err();
    let TrackerError::Writes {
        done,
        failures,
        untried,
    } = &error
    else {
        panic!("{error}")
    };
    assert_eq!(*done, 3, "{error}");
    assert_eq!(*untried, 2, "#10 and #11 were never sent: {error}");
    let failed: Vec<(&str, &str)> = failures
        .iter()
        .map(|f| (f.issue.as_str(), f.message.as_str()))
        .collect();
    let not_written = "not written: Redmine refused the API key (401 Unauthorized) (the key from environment variable TEST_KEY stopped working; nothing more was sent)";
    assert_eq!(
        failed,
        [
            ("#8", "Redmine refused it (422): Parent task is invalid"),
            ("#10", not_written),
            ("#11", not_written),
        ]
    );
    assert_eq!(failures[2].operation, "#11: parent #1 → (none)");
    // Nothing after the refusal, not even the read-back.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8);
    assert!(seen[7].starts_with("PUT /issues/10.json"), "{}", seen[7]);
}

#[tokio::test]
async fn a_key_refused_before_anything_was_written_is_the_whole_answer() {
    let (url, _) = scripted(vec![
        response("200 OK", "", USER),
        response("401 Unauthorized", "", ""),
    ])
    .await;
    let error = tracker(url)
        .apply(&[parent("#8", Some("#1")), parent("#9", Some("#1"))])
        .await
        .unwrap_err();
    let TrackerError::Remote {
        operation,
        message,
        status: Some(401),
    } = &error
    else {
        panic!("{error}")
    };
    assert_eq!(
        operation,
        "#8: parent (none) → #1 (with the key from environment variable TEST_KEY)"
    );
    assert_eq!(message, "Redmine refused the API key (401 Unauthorized)");
}

/// A client of the server at `url` under `rateLimit` (as a structure's
/// pass makes one).
fn limited(url: Url, limit: crate::spec::RateLimit) -> RedmineTracker {
    let retry = Retry {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(5),
        budget: Duration::from_secs(15),
    };
    client(url, retry, Some(limit))
}

#[tokio::test]
async fn clients_of_one_server_keep_its_rate_limit_together() {
    let (url, seen) = scripted((0..4).map(|_| response("200 OK", "", USER)).collect()).await;
    let limit = crate::spec::RateLimit {
        requests_per_second: Some(10.0),
        concurrent_requests: Some(1),
    };
    // Four structures passing at once, each with its own client.
    let clients: Vec<RedmineTracker> = (0..4).map(|_| limited(url.clone(), limit)).collect();
    let started = std::time::Instant::now();
    let logins = futures::future::join_all(clients.iter().map(|c| c.acting_as())).await;
    let waited = started.elapsed();
    assert!(
        logins
            .iter()
            .all(|l| l.as_ref().unwrap().as_deref() == Some("admin"))
    );
    assert_eq!(seen.lock().unwrap().len(), 4);
    // At 10 a second the fourth starts 300 ms after the first.
    assert!(waited >= Duration::from_millis(300), "waited {waited:?}");
}

#[tokio::test]
async fn a_wait_the_server_asks_of_one_client_holds_its_other_clients() {
    let (url, _) = scripted(vec![
        response("429 Too Many Requests", "Retry-After: 1\r\n", ""),
        response("200 OK", "", USER),
        response("200 OK", "", USER),
    ])
    .await;
    let limit = crate::spec::RateLimit {
        requests_per_second: None,
        concurrent_requests: Some(8),
    };
    let (told, other) = (limited(url.clone(), limit), limited(url, limit));
    let started = std::time::Instant::now();
    let first = async {
        told.acting_as().await.unwrap();
    };
    // The other client asks after the 429: it waits out the same second
    // rather than adding to the load.
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        other.acting_as().await.unwrap();
        started.elapsed()
    };
    let ((), other_done) = futures::future::join(first, second).await;
    assert!(other_done >= Duration::from_secs(1), "{other_done:?}");
    assert_eq!(told.requests() + other.requests(), 3);
}

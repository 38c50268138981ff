//! Structures in parallel: one round of passes (`trellis sync --once`) over
//! 200 structures whose tracker answers each request after 50 ms, with one
//! worker against 16. The tracker is a Redmine double on 127.0.0.1 (users,
//! and a project of five issues; every request waits 50 ms, as a busy
//! server would), so that the figures are the time spent waiting on the
//! server, and what parallel structures save of it.
//!
//! Each worker count starts from a new store: `trellis apply` (untimed),
//! then two timed rounds: the first passes (each reads its tracker in full)
//! and incremental passes (each asks only for the changed issues: the five
//! issues, changed again each time). With `TRELLIS_BENCH_STRUCTURES=500`
//! the incremental round is the issue's "500 structures with 5 changes
//! each" against the controller's 30 s interval.
//!
//! Run with `cargo bench --bench parallel`; `TRELLIS_BENCH_STRUCTURES=N`
//! picks another number of structures.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DELAY: Duration = Duration::from_millis(50);
const KEY: &str = "feedfacefeedfacefeedfacefeedfacefeedface";
const USER: &str = r#"{"user":{"id":1,"login":"admin"}}"#;

/// Five features of project demo, as Redmine lists them, last updated at
/// `updated_on`.
fn issues(updated_on: &str) -> String {
    let issue = |id: u32| {
        format!(
            r#"{{"id":{id},"project":{{"id":1,"name":"Demo"}},"tracker":{{"id":2,"name":"Feature"}},"status":{{"id":1,"name":"New"}},"subject":"Feature {id}","updated_on":"{updated_on}","relations":[]}}"#
        )
    };
    let all: Vec<String> = (1..=5).map(issue).collect();
    format!(
        r#"{{"issues":[{}],"total_count":5,"offset":0,"limit":100}}"#,
        all.join(",")
    )
}

/// Answers requests on kept-alive connections, each after `DELAY`; counts
/// them.
fn double() -> (String, Arc<AtomicU64>) {
    let requests = Arc::new(AtomicU64::new(0));
    let counted = requests.clone();
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the double's runtime starts");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
            ready
                .send(listener.local_addr().expect("an address"))
                .expect("the bench waits");
            let issues = Arc::new(issues("2026-01-01T00:00:00Z"));
            loop {
                let (socket, _) = listener.accept().await.expect("a connection");
                tokio::spawn(serve(socket, issues.clone(), counted.clone()));
            }
        });
    });
    let address = started.recv().expect("the double starts");
    (format!("http://{address}/"), requests)
}

async fn serve(mut socket: tokio::net::TcpStream, all: Arc<String>, requests: Arc<AtomicU64>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        buffer.drain(..end);
        requests.fetch_add(1, Ordering::Relaxed);
        let target = head.split(' ').nth(1).unwrap_or("/");
        let (status, body) = if target.starts_with("/users/current.json") {
            ("200 OK", USER.to_owned())
        } else if target.starts_with("/issues.json") && target.contains("updated_on") {
            // All five changed again since the last pass.
            let now =
                jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("in range");
            ("200 OK", issues(&now.to_string()))
        } else if target.starts_with("/issues.json") {
            ("200 OK", all.as_str().to_owned())
        } else {
            ("404 Not Found", r#"{"errors":["not found"]}"#.to_owned())
        };
        tokio::time::sleep(DELAY).await;
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn declarations(url: &str, structures: usize) -> String {
    let mut text = format!(
        "apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {{name: redmine}}
spec:
  type: redmine
  url: {url}
  credentials: {{env: REDMINE_API_KEY}}
  redmine: {{project: demo}}
"
    );
    for i in 0..structures {
        text.push_str(&format!(
            "---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {{name: s-{i}}}
spec: {{trackerRef: {{name: redmine}}}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {{name: features-{i}}}
spec:
  structureRef: {{name: s-{i}}}
  type: filter
  filter: {{query: \"tracker_id=2&status_id=*\"}}
"
        ));
    }
    text
}

/// Runs `trellis ARGS` against `state`; panics with its output if it fails.
fn trellis(dir: &Path, state: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .current_dir(dir)
        .env("REDMINE_API_KEY", KEY)
        .env("TRELLIS_STATE", state)
        .env_remove("TRELLIS_WORKERS")
        .output()
        .expect("trellis runs");
    assert!(
        out.status.success(),
        "trellis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let structures: usize = std::env::var("TRELLIS_BENCH_STRUCTURES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let (url, requests) = double();
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(
        dir.path().join("trellis.yaml"),
        declarations(&url, structures),
    )
    .expect("declarations written");
    println!(
        "trellis parallel structures benchmark: {structures} structures, one filter each, on a tracker answering each request after {} ms",
        DELAY.as_millis()
    );
    println!(
        "{:<10} {:>22} {:>10} {:>22} {:>10}",
        "workers", "first passes (full)", "requests", "incremental passes", "requests"
    );
    let mut rounds = Vec::new();
    for workers in ["1", "16"] {
        let state = dir.path().join(format!("workers-{workers}.db"));
        trellis(dir.path(), &state, &["apply", "-f", "trellis.yaml"]);
        let mut row = Vec::new();
        for _ in 0..2 {
            let before = requests.load(Ordering::Relaxed);
            let start = Instant::now();
            trellis(
                dir.path(),
                &state,
                &["sync", "--once", "-f", "trellis.yaml", "--workers", workers],
            );
            row.push((start.elapsed(), requests.load(Ordering::Relaxed) - before));
        }
        println!(
            "{workers:<10} {:>19.0} ms {:>10} {:>19.0} ms {:>10}",
            row[0].0.as_secs_f64() * 1e3,
            row[0].1,
            row[1].0.as_secs_f64() * 1e3,
            row[1].1
        );
        rounds.push(row);
    }
    for (round, name) in ["first passes", "incremental passes"].iter().enumerate() {
        println!(
            "{name}: 16 workers take {:.1}x less time than 1",
            rounds[0][round].0.as_secs_f64() / rounds[1][round].0.as_secs_f64()
        );
    }
}

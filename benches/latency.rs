//! From an edit in the tracker to the structure showing it: 100 edits, one
//! at a time, each timed from the moment the edit is made to the moment
//! the store's structure has the row where the edit puts it; p50 and p99.
//! Each edit adds a sub-task under a story (moving one issue back and
//! forth would, rightly, trip the cycle guard after ten passes).
//!
//! A real `trellis run` process on the quickstart's structure, in three
//! modes:
//! - `watch`: a local tracker; the edit rewrites its issues file and the
//!   file watcher wakes the run;
//! - `webhook`: Jira (the test double of tests/jira/double.rs); the edit
//!   makes an issue in the double, which then delivers a signed
//!   `jira:issue_created` webhook, as Jira does;
//! - `poll`: the local tracker again with `--no-watch`: only the schedule's
//!   shortest interval (5 s) brings the edit, for comparison.
//!
//! Run with `cargo bench --bench latency`; `-- watch` (or `webhook`, `poll`)
//! runs one mode; `TRELLIS_BENCH_EDITS=N` sets the edits per mode (the poll
//! mode makes a fifth as many: each waits up to an interval).

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/jira/double.rs"]
mod double;
#[allow(dead_code)]
#[path = "../tests/jira/openapi.rs"]
mod openapi;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::running::{Running, jira_event, sign};
use double::{Double, EMAIL, Flavor, TOKEN};
use trellis::store::{SqliteStore, Store};

const SECRET: &str = "whsec-bench";

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let edits: usize = std::env::var("TRELLIS_BENCH_EDITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runs = |mode: &str| wanted.is_empty() || wanted.iter().any(|w| w == mode);
    println!("edit → structure latency, {edits} edits one at a time");
    if runs("watch") {
        report("watch (local tracker, file watcher)", &local(edits, true));
    }
    if runs("webhook") {
        report("webhook (Jira double, signed delivery)", &jira(edits));
    }
    if runs("poll") {
        let edits = (edits / 5).max(5);
        report(
            "poll (local tracker, --no-watch, 5 s interval)",
            &local(edits, false),
        );
    }
}

fn report(mode: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at =
        |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!(
        "{mode}: n = {}, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        sorted.len(),
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        sorted.last().unwrap().as_secs_f64() * 1000.0
    );
}

/// The parent of `key`'s row in the structure, as the store has it now.
fn row_parent(state: &Path, structure: &str, key: &str) -> Option<String> {
    let store = SqliteStore::open_read_only(state).ok()?;
    let forest = store.structure(structure).ok()?.forest;
    let row = forest.find_issue(key)?;
    forest
        .parent(row)
        .and_then(|p| forest.row(p))
        .map(|r| r.item.to_string())
}

/// Waits until `key`'s row is under `parent`; the time since `from`.
fn shown(state: &Path, structure: &str, key: &str, parent: &str, from: Instant) -> Duration {
    loop {
        if row_parent(state, structure, key).as_deref() == Some(parent) {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < Duration::from_secs(30),
            "{key} did not move under {parent}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn trellis(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .current_dir(dir)
        .env("TRELLIS_STATE", dir.join("state.db"))
        .env("TRELLIS_USER", "bench")
        .env("JIRA_API_TOKEN", TOKEN)
        .env("HOOK_SECRET", SECRET)
        .env_remove("RUST_LOG");
    command
}

/// Every synchronizer on `interval`.
fn every(text: &str, interval: &str) -> String {
    text.lines()
        .flat_map(|line| {
            let extra = line
                .starts_with("  structureRef:")
                .then(|| format!("  schedule: {{interval: {interval}}}"));
            std::iter::once(line.to_owned()).chain(extra)
        })
        .map(|line| line + "\n")
        .collect()
}

/// The quickstart: sub-tasks added under PLAT-4 in its file.
fn local(edits: usize, watch: bool) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("quickstart")).unwrap();
    for file in ["issues.yaml", "trellis.yaml"] {
        std::fs::copy(
            format!("examples/quickstart/{file}"),
            root.join("quickstart").join(file),
        )
        .unwrap();
    }
    let declarations = root.join("quickstart/trellis.yaml");
    let interval = if watch { "1h" } else { "5s" };
    let text = every(&std::fs::read_to_string(&declarations).unwrap(), interval);
    std::fs::write(&declarations, text).unwrap();
    let applied = trellis(root)
        .args(["apply", "-f", "quickstart"])
        .output()
        .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    let mut args = vec!["run", "-f", "quickstart"];
    if !watch {
        args.push("--no-watch");
    }
    let running = Running::start(trellis(root), &args);
    std::thread::sleep(Duration::from_secs(2));
    let issues = root.join("quickstart/issues.yaml");
    let state = root.join("state.db");
    let mut latencies = Vec::new();
    for i in 0..edits {
        if !watch {
            // Edits come at any moment of an interval, not just after a
            // pass: spread them over it.
            std::thread::sleep(Duration::from_millis((i as u64 * 2_647) % 5_000));
        }
        let key = format!("PLAT-{}", 1000 + i);
        let mut text = std::fs::read_to_string(&issues).unwrap();
        text.push_str(&format!(
            "  - {{key: {key}, summary: Edit {i}, type: Sub-task, status: To Do, parent: PLAT-4, updated: {}}}\n",
            jiff::Timestamp::now()
        ));
        let from = Instant::now();
        std::fs::write(&issues, text).unwrap();
        latencies.push(shown(&state, "default/roadmap", &key, "PLAT-4", from));
    }
    drop(running);
    latencies
}

/// The Jira example's backlog: sub-tasks made under PLAT-3 in the double,
/// each followed by its webhook.
fn jira(edits: usize) -> Vec<Duration> {
    let double = Double::start(Flavor::Cloud);
    double.add("PLAT-1", "Epic", None, None);
    double.add("PLAT-2", "Epic", None, None);
    double.add("PLAT-3", "Story", Some("PLAT-1"), None);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("jira")).unwrap();
    let example = std::fs::read_to_string("examples/jira/trellis.yaml")
        .unwrap()
        .replace("https://your-domain.atlassian.net", &double.url)
        .replace("you@example.com", EMAIL)
        .replace("JIRA_WEBHOOK_SECRET", "HOOK_SECRET");
    std::fs::write(root.join("jira/trellis.yaml"), every(&example, "1h")).unwrap();
    let applied = trellis(root)
        .args(["apply", "-f", "jira"])
        .output()
        .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    let running = Running::start(trellis(root), &["run", "-f", "jira"]);
    std::thread::sleep(Duration::from_secs(2));
    let state = root.join("state.db");
    let mut latencies = Vec::new();
    for i in 0..edits {
        let key = format!("PLAT-{}", 1000 + i);
        let from = Instant::now();
        double.add(&key, "Sub-task", Some("PLAT-3"), None);
        let body = jira_event("jira:issue_created", &key);
        let signature = sign(SECRET, &body);
        let identifier = format!("bench-{i}");
        let (status, answer) = running.post(
            "/hooks/jira/default/jira",
            &[
                ("X-Hub-Signature", &signature),
                ("X-Atlassian-Webhook-Identifier", &identifier),
            ],
            &body,
        );
        assert_eq!(status, 202, "{answer}");
        latencies.push(shown(&state, "default/backlog", &key, "PLAT-3", from));
    }
    drop(running);
    latencies
}

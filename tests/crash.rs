//! A run stopped dead (as `kill -9` would) at each point of a tracker write
//! loses nothing: the write-ahead record lets the next run journal what was
//! written, so `history` shows it and `undo` reverses it; and a structure's
//! hold lives exactly as long as the process holding it. The points are the
//! `TRELLIS_FAILPOINT` hooks of `src/failpoint.rs`.

mod common;

use std::time::{Duration, Instant};

use common::Workspace;
use predicates::str::contains;
use trellis::store::{JobState, Store};

const HEADER: &str = "apiVersion: trellis.dev/v1alpha1\n";

/// The quickstart applied, with two rows moved by a person: an export of
/// `children` writes two parents.
fn two_moves() -> Workspace {
    let ws = Workspace::new();
    ws.apply();
    for (key, under) in [("PLAT-9", "PLAT-4"), ("PLAT-11", "PLAT-2")] {
        ws.trellis()
            .args(["move", "roadmap", key, "--under", under])
            .assert()
            .success();
    }
    ws
}

/// Runs `args` with the failpoint armed and checks that it died there.
fn killed_at(ws: &Workspace, point: &str, args: &[&str]) {
    let out = ws
        .trellis()
        .env("TRELLIS_FAILPOINT", point)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "aborted by a signal: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {point}: aborting")),
        "{out:?}"
    );
}

/// The journal's tracker changes, as `history -o json` shows them.
fn tracker_changes(ws: &Workspace) -> Vec<serde_json::Value> {
    let out = ws
        .trellis()
        .args(["history", "roadmap", "-o", "json"])
        .output()
        .unwrap();
    common::journaled_parents(&out.stdout)
}

#[test]
fn an_export_killed_after_writing_the_tracker_is_journaled_by_the_next_run() {
    let ws = two_moves();
    killed_at(
        &ws,
        "tracker-written",
        &["export", "children", "-f", "quickstart"],
    );
    // The tracker has the writes; the store has no record of them yet.
    assert_eq!(ws.parent_in_file("PLAT-9").as_deref(), Some("PLAT-4"));
    assert!(tracker_changes(&ws).is_empty());

    // The next run finds the interrupted one, journals its writes, and has
    // nothing left to write.
    ws.trellis()
        .args(["export", "children", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("0 tracker updates"));
    let changes = tracker_changes(&ws);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes.iter().all(|c| c["author"] == "alice"),
        "{changes:?}"
    );
    let job = ws
        .store()
        .job(changes[0]["job"].as_u64().expect("journaled with its job"))
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Interrupted, "{job:?}");
    assert!(
        job.summary.starts_with("2 of 2 tracker writes made"),
        "{job:?}"
    );

    // And it can be undone like any job.
    ws.trellis()
        .args(["undo", &job.id.to_string(), "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("PLAT-9: parent PLAT-4 → PLAT-8"));
    assert_eq!(ws.parent_in_file("PLAT-9").as_deref(), Some("PLAT-8"));
}

#[test]
fn an_export_killed_before_its_first_write_is_carried_out_by_the_next_run() {
    let ws = two_moves();
    let before = ws.read("quickstart/issues.yaml");
    killed_at(
        &ws,
        "tracker-write-intended",
        &["export", "children", "-f", "quickstart"],
    );
    assert_eq!(ws.read("quickstart/issues.yaml"), before, "nothing written");
    ws.trellis()
        .args(["export", "children", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("2 tracker updates"));
    let changes = tracker_changes(&ws);
    assert_eq!(changes.len(), 2, "journaled once: {changes:?}");
    let jobs: Vec<_> = changes
        .iter()
        .map(|c| ws.store().job(c["job"].as_u64().unwrap()).unwrap().unwrap())
        .collect();
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "no interrupted job when nothing was written: {jobs:?}"
    );
}

#[test]
fn a_pass_killed_after_writing_the_tracker_is_journaled_without_a_conflict() {
    let ws = Workspace::new();
    ws.apply();
    // The first pass reads everything; the conflict policy is manual, so a
    // pass mistaking its own write for a tracker change would hold it.
    ws.edit(
        "quickstart/trellis.yaml",
        "directions: [into, from]",
        "directions: [into, from]\n  conflictPolicy: manual",
    );
    ws.trellis()
        .args(["sync", "--once", "-f", "quickstart", "children"])
        .assert()
        .success();
    ws.trellis()
        .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-2"])
        .assert()
        .success();
    killed_at(
        &ws,
        "tracker-written",
        &["sync", "--once", "-f", "quickstart", "children"],
    );
    assert_eq!(ws.parent_in_file("PLAT-11").as_deref(), Some("PLAT-2"));

    // The killed pass's hold lapses within its lease; then the next pass runs.
    let started = Instant::now();
    let pass = loop {
        let pass = ws.pass();
        if pass.get("waiting").is_none() {
            break pass;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{pass}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(pass["summary"]["trackerUpdates"], 0, "{pass}");
    assert_eq!(pass["conflicts"], serde_json::json!([]), "{pass}");
    assert_eq!(pass["held"], serde_json::json!([]), "{pass}");
    let changes = tracker_changes(&ws);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["author"], "default/children as alice");
    let job = ws
        .store()
        .job(changes[0]["job"].as_u64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Interrupted, "{job:?}");
}

/// Tries `trellis move` until it is accepted; how long that took.
fn move_accepted_within(ws: &Workspace, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let out = ws
            .trellis()
            .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-2"])
            .output()
            .unwrap();
        if out.status.success() {
            return started.elapsed();
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is read-only while"), "{stderr}");
        assert!(
            started.elapsed() < limit,
            "still refused after {limit:?}: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_resyncs_hold_lives_as_long_as_its_process() {
    let ws = Workspace::new();
    ws.apply();
    ws.write(
        "quickstart/resync.yaml",
        &format!("{HEADER}kind: Resync\nmetadata:\n  name: export-once\nspec:\n  synchronizerRef: {{name: children}}\n  direction: from\n"),
    );
    ws.trellis()
        .args(["move", "roadmap", "PLAT-9", "--under", "PLAT-4"])
        .assert()
        .success();
    // The resync stops just before writing, holding the structure.
    let mut resync = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .current_dir(ws.path("."))
        .env("TRELLIS_STATE", ws.state())
        .env("TRELLIS_USER", "alice")
        .env("TRELLIS_FAILPOINT", "tracker-write-intended:pause")
        .args(["apply", "-f", "quickstart"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while ws
        .store()
        .structure_holder("default/roadmap")
        .unwrap()
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the resync holds the structure"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Alive past its lease, it keeps the hold: a manual edit is refused.
    std::thread::sleep(trellis::store::HOLD_LEASE.unsigned_abs() + Duration::from_secs(5));
    ws.trellis()
        .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-2"])
        .assert()
        .code(2)
        .stderr(contains(
            "structure default/roadmap is read-only while resync default/export-once runs",
        ));
    // Killed, its hold lapses within the lease and the edit goes through.
    resync.kill().unwrap();
    resync.wait().unwrap();
    let waited = move_accepted_within(&ws, Duration::from_secs(30));
    assert!(
        waited <= trellis::store::HOLD_LEASE.unsigned_abs() + Duration::from_secs(2),
        "{waited:?}"
    );
}

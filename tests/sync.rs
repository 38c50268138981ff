//! Incremental sync from the command line (`trellis sync --once`, the same
//! pass the controller makes): changes carried both ways, conflicts under
//! each policy, no echoes, held issues and `troubleshoot`, the cycle guard,
//! and manual edits refused while a resync holds a structure.

mod common;

use common::Workspace;
use predicates::prelude::*;
use predicates::str::contains;
use trellis::store::{Store, SyncState};

const HEADER: &str = "apiVersion: trellis.dev/v1alpha1\n";

fn state(ws: &Workspace) -> SyncState {
    ws.store().sync_state("default/children").unwrap()
}

/// Applies the quickstart, then makes the first pass (a full read).
fn synced() -> Workspace {
    let ws = Workspace::new();
    ws.apply();
    let first = ws.pass();
    assert_eq!(first["full"], true, "the first pass reads everything");
    ws
}

#[test]
fn a_tracker_change_comes_into_the_structure_reading_only_changed_issues() {
    let ws = synced();
    ws.set_parent("PLAT-11", Some("PLAT-2"));
    let report = ws.pass();
    assert_eq!(report["full"], false);
    assert_eq!(report["issuesRead"], 1, "only the changed issue is read");
    assert_eq!(report["trackerChanges"], 1);
    assert_eq!(report["summary"]["move"], 1);
    // Where the time went, by step, for a person tuning the schedule.
    for step in ["readMs", "mirrorMs", "planMs", "writeMs", "commitMs"] {
        let ms = report["timings"][step].as_f64();
        assert!(ms.is_some_and(|ms| ms >= 0.0), "{step}: {report}");
    }
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
    // It planned over the rows around the change, not the structure.
    let rows = ws
        .store()
        .structure("default/roadmap")
        .unwrap()
        .forest
        .len();
    assert_eq!(report["plannedOver"], "neighbourhood", "{report}");
    let loaded = report["rowsLoaded"].as_u64().unwrap() as usize;
    assert!(
        (3..rows / 2).contains(&loaded),
        "{loaded} of {rows} rows read: {report}"
    );
    // Nothing echoes: the next pass finds nothing to do.
    let again = ws.pass();
    assert_eq!(again["summary"]["move"], 0);
    assert_eq!(again["summary"]["trackerUpdates"], 0);
}

/// The README's steps: a change that does not move `updated` (PLAT-2 set
/// to Done by hand), approved and applied, is what the next pass starts from.
#[test]
fn a_pass_after_an_approved_apply_keeps_what_the_apply_removed() {
    let ws = Workspace::new();
    ws.apply();
    let sync_once = || {
        let out = ws
            .trellis()
            .args(["sync", "--once", "-f", "quickstart"])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{report}");
        report
    };
    sync_once();
    ws.edit(
        "quickstart/issues.yaml",
        "summary: Observability with OpenTelemetry\n    type: Epic\n    status: In Progress",
        "summary: Observability with OpenTelemetry\n    type: Epic\n    status: Done",
    );
    let plan = ws
        .trellis()
        .args(["plan", "-f", "quickstart"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(text.contains("6 to remove"), "{text}");
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("Plan hash: "))
        .expect("a plan hash")
        .to_owned();
    ws.trellis()
        .args(["apply", "-f", "quickstart", "--approve", &hash])
        .assert()
        .success();
    let applied = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(applied.forest.find_issue("PLAT-12"), None);

    let report = sync_once();
    let after = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(
        (after.version, after.forest.len()),
        (applied.version, applied.forest.len()),
        "the pass changed the structure the apply left: {report}"
    );
    assert_eq!(after.forest.find_issue("PLAT-2"), None, "{report}");
}

/// Sets PLAT-2 Done, so that `platform-epics` (`remove: true`) would
/// remove its row and the five under it.
fn finish_plat_2(ws: &Workspace) {
    let text = ws.read("quickstart/issues.yaml").replacen(
        "status: In Progress\n    rank: \"0|a00020:\"\n    updated: 2026-11-03T14:40:00Z",
        &format!(
            "status: Done\n    rank: \"0|a00020:\"\n    updated: {}",
            jiff::Timestamp::now()
        ),
        1,
    );
    assert!(text.contains("status: Done\n    rank: \"0|a00020:\""));
    ws.write("quickstart/issues.yaml", &text);
}

fn sync_once(ws: &Workspace, extra: &[&str]) -> std::process::Output {
    ws.trellis()
        .args(["sync", "--once", "-f", "quickstart"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_destructive_pass_is_held_until_its_hash_is_approved() {
    let ws = synced();
    sync_once(&ws, &[]);
    finish_plat_2(&ws);
    let before = ws.store().structure("default/roadmap").unwrap();
    let out = sync_once(&ws, &[]);
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("HELD for approval"), "{report}");
    assert!(report.contains("! remove PLAT-2"), "{report}");
    let hash = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("plan hash: "))
        .expect("the held plan's hash")
        .to_owned();
    let held = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(held.version, before.version, "nothing was carried out");
    assert!(held.forest.find_issue("PLAT-12").is_some());

    // The same plan is held again, with the same hash, until approved.
    let again = String::from_utf8_lossy(&sync_once(&ws, &[]).stdout).into_owned();
    assert!(again.contains(&format!("plan hash: {hash}")), "{again}");
    ws.trellis()
        .args(["status", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains(format!(
            "destructive plan {hash} held for approval"
        )));
    ws.trellis()
        .args(["troubleshoot", "platform-epics", "-f", "quickstart"])
        .assert()
        .code(1)
        .stdout(contains(
            "a destructive plan (0 to add, 0 to move, 6 to remove",
        ))
        .stdout(contains(format!("--approve {hash}")));

    ws.trellis()
        .args([
            "sync",
            "--once",
            "-f",
            "quickstart",
            "--approve",
            "0123456789abcdef",
        ])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "0123456789abcdef is not the held plan {hash}"
        )));
    assert_eq!(
        ws.store().structure("default/roadmap").unwrap().version,
        before.version
    );

    let out = sync_once(&ws, &["--approve", &hash]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    let after = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(after.forest.find_issue("PLAT-2"), None, "{report}");
    assert_eq!(after.forest.find_issue("PLAT-12"), None, "{report}");
    ws.trellis()
        .args(["status", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("held for approval").not());
}

#[test]
fn a_synchronizer_may_declare_that_its_passes_carry_out_destructive_changes() {
    let ws = synced();
    ws.edit(
        "quickstart/trellis.yaml",
        "    remove: true\n",
        "    remove: true\n  safety:\n    destructivePasses: apply\n",
    );
    sync_once(&ws, &[]);
    finish_plat_2(&ws);
    let out = sync_once(&ws, &[]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("HELD"), "{report}");
    let after = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(after.forest.find_issue("PLAT-2"), None, "{report}");
}

#[test]
fn a_structure_change_goes_to_the_tracker_once_and_does_not_come_back() {
    let ws = synced();
    ws.trellis()
        .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-2"])
        .assert()
        .success();
    let report = ws.pass();
    assert_eq!(report["structureChanges"], 1);
    assert_eq!(report["summary"]["trackerUpdates"], 1);
    assert_eq!(ws.parent_in_file("PLAT-11").as_deref(), Some("PLAT-2"));
    // The cursor moved with the commit: the person's move is behind it.
    assert_eq!(
        state(&ws).synced_version,
        report["version"].as_u64().unwrap()
    );
    // Its own write bumps `updated`: the next pass reads it and sees no change.
    let again = ws.pass();
    assert_eq!(again["trackerChanges"], 1);
    assert_eq!(again["summary"]["trackerUpdates"], 0);
    assert_eq!(again["summary"]["move"], 0);
    // History: the person's move, then the synchronizer acting as the tracker identity.
    ws.trellis()
        .args(["history", "roadmap"])
        .assert()
        .success()
        .stdout(contains("alice"))
        .stdout(contains("default/children as alice"))
        .stdout(contains(
            "incremental sync default/children (subtasks, from)",
        ));
    // The pass's job says which way it carried changes.
    let job = ws
        .store()
        .last_jobs()
        .unwrap()
        .into_iter()
        .find(|j| j.synchronizer.as_deref() == Some("default/children"))
        .unwrap();
    assert_eq!(job.direction.map(|d| d.as_str()), Some("from"), "{job:?}");
}

fn with_policy(ws: &Workspace, policy: &str) {
    ws.edit(
        "quickstart/trellis.yaml",
        "  directions: [into, from]",
        &format!("  directions: [into, from]\n  conflictPolicy: {policy}"),
    );
}

/// Both sides move PLAT-11 since the last pass: the structure under PLAT-2,
/// the tracker under PLAT-3.
fn conflict(ws: &Workspace) -> serde_json::Value {
    ws.trellis()
        .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-2"])
        .assert()
        .success();
    ws.set_parent("PLAT-11", Some("PLAT-3"));
    ws.pass()
}

#[test]
fn a_conflict_goes_to_the_tracker_by_default_and_is_recorded() {
    let ws = synced();
    // Its pass removes a row (below): carried out, not held for approval.
    ws.edit(
        "quickstart/trellis.yaml",
        "  directions: [into, from]",
        "  directions: [into, from]\n  safety: {destructivePasses: apply}",
    );
    let report = conflict(&ws);
    assert_eq!(report["conflicts"][0]["issue"], "PLAT-11");
    assert_eq!(report["conflicts"][0]["kept"], "tracker");
    assert_eq!(ws.parent_in_file("PLAT-11").as_deref(), Some("PLAT-3"));
    // PLAT-3 is a Done epic: not in the structure, so PLAT-11's row goes.
    let forest = ws.store().structure("default/roadmap").unwrap().forest;
    assert!(forest.find_issue("PLAT-11").is_none());
    assert_eq!(
        ws.store().conflicts("default/children", 5).unwrap().len(),
        1
    );
}

#[test]
fn a_conflict_under_policy_structure_writes_the_structure_side() {
    let ws = synced();
    with_policy(&ws, "structure");
    let report = conflict(&ws);
    assert_eq!(report["conflicts"][0]["kept"], "structure");
    assert_eq!(ws.parent_in_file("PLAT-11").as_deref(), Some("PLAT-2"));
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
}

#[test]
fn a_manual_conflict_holds_the_issue_until_a_person_settles_it() {
    let ws = synced();
    with_policy(&ws, "manual");
    let report = conflict(&ws);
    assert_eq!(report["conflicts"][0]["kept"], "held");
    assert_eq!(report["held"][0]["issue"], "PLAT-11");
    // Neither side changed.
    assert_eq!(ws.parent_in_file("PLAT-11").as_deref(), Some("PLAT-3"));
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
    // Later passes leave it alone; other issues go on.
    ws.set_parent("PLAT-15", Some("PLAT-1"));
    let later = ws.pass();
    assert_eq!(later["held"][0]["issue"], "PLAT-11");
    assert_eq!(ws.row_parent("PLAT-15").as_deref(), Some("PLAT-1"));
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
    ws.trellis()
        .args(["status", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("1 held (trellis troubleshoot)"));
    ws.trellis()
        .args(["troubleshoot", "children", "-f", "quickstart"])
        .assert()
        .code(1)
        .stdout(contains("PLAT-11 (conflict)"))
        .stdout(contains("--keep-structure KEY"));
    ws.trellis()
        .args([
            "troubleshoot",
            "children",
            "-f",
            "quickstart",
            "--keep-structure",
            "PLAT-11",
        ])
        .assert()
        .code(0);
    let settled = ws.pass();
    assert!(settled["held"].as_array().unwrap().is_empty());
    assert_eq!(ws.parent_in_file("PLAT-11").as_deref(), Some("PLAT-2"));
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
}

#[test]
fn troubleshoot_checks_the_connection_and_refuses_unknown_issues() {
    let ws = synced();
    ws.trellis()
        .args(["troubleshoot", "children", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains(
            "ok   connection: tracker default/quickstart-issues reachable",
        ))
        .stdout(contains("ok   permission to read issues: "))
        .stdout(contains("ok   permission to set parents: "))
        .stdout(contains("no held issues"));
    ws.trellis()
        .args([
            "troubleshoot",
            "children",
            "-f",
            "quickstart",
            "--retry",
            "PLAT-1",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "PLAT-1 is not held by default/children; nothing was changed",
        ));
}

/// Two structures on one tracker, each exporting its own parent for the
/// same issue: each pass undoes the other's. The cycle guard stops them.
#[test]
fn the_cycle_guard_stops_synchronizers_that_undo_each_other() {
    let ws = Workspace::new();
    let mut text = format!(
        "{HEADER}kind: Tracker\nmetadata:\n  name: t\nspec:\n  type: local\n  local:\n    path: issues.yaml\n"
    );
    for (name, parent) in [("a", "PLAT-1"), ("b", "PLAT-2")] {
        text.push_str(&format!(
            "---\n{HEADER}kind: Structure\nmetadata:\n  name: {name}\nspec:\n  trackerRef: {{name: t}}\n  rows:\n    - issue: {parent}\n      rows:\n        - issue: PLAT-11\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: {name}-export\nspec:\n  structureRef: {{name: {name}}}\n  type: subtasks\n  directions: [from]\n  safety: {{maxRounds: 3}}\n"
        ));
    }
    ws.write("quickstart/trellis.yaml", &text);
    for name in ["a-export", "b-export"] {
        ws.trellis()
            .args(["resync", name, "--direction", "from", "-f", "quickstart"])
            .assert()
            .success();
    }
    let mut stopped = None;
    for _ in 0..10 {
        let out = ws
            .trellis()
            .args(["sync", "--once", "-f", "quickstart"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("STOPPED by the cycle guard") {
            stopped = Some(text);
            break;
        }
    }
    let stopped = stopped.expect("the cycle guard stops one of them within 10 rounds");
    assert!(
        stopped.contains("PLAT-11 changed back after each of its last 3 passes"),
        "{stopped}"
    );
    assert!(stopped.contains("--restart"), "{stopped}");
}

#[test]
fn manual_edits_are_refused_while_a_resync_holds_the_structure() {
    let ws = synced();
    {
        let mut store = trellis::store::SqliteStore::open(&ws.state()).unwrap();
        let until = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(5);
        assert_eq!(
            store
                .hold_structure("default/roadmap", "resync default/export-once", until)
                .unwrap(),
            None
        );
    }
    ws.trellis()
        .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-2"])
        .assert()
        .code(2)
        .stderr(contains(
            "structure default/roadmap is read-only while resync default/export-once runs; nothing was changed",
        ));
    // An incremental pass waits for it too.
    let report = ws.pass();
    assert_eq!(
        report["waiting"],
        "resync default/export-once holds structure default/roadmap"
    );
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-1"));
}

#[test]
fn wrong_names_and_keys_change_nothing_not_even_the_store() {
    let ws = Workspace::new();
    ws.trellis()
        .args(["sync", "--once", "-f", "quickstart", "nope"])
        .assert()
        .code(2)
        .stderr(contains("synchronizer default/nope is not declared"));
    ws.trellis()
        .args([
            "troubleshoot",
            "children",
            "-f",
            "quickstart",
            "--skip",
            "PLAT-1",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "PLAT-1 is not held by default/children; nothing was changed",
        ));
    ws.trellis()
        .args(["troubleshoot", "children", "-f", "quickstart", "--restart"])
        .assert()
        .code(2)
        .stderr(contains(
            "was not stopped by the cycle guard; nothing was changed",
        ));
    for (flag, value) in [("--workers", "0"), ("--workers", "many")] {
        ws.trellis()
            .args(["sync", "--once", "-f", "quickstart", flag, value])
            .assert()
            .code(2)
            .stderr(contains(format!(
                "invalid value '{value}' for '--workers <N>'"
            )));
    }
    ws.trellis()
        .args(["sync", "--once", "-f", "quickstart"])
        .env("TRELLIS_WORKERS", "-3")
        .assert()
        .code(2)
        .stderr(contains("invalid value '-3' for '--workers <N>'"));
    assert!(!ws.state().exists(), "no store was made");
}

/// One pass of every synchronizer of the quickstart, one JSON report each.
fn round(ws: &Workspace, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = ws
        .trellis()
        .args(["sync", "--once", "-f", "quickstart", "-o", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// A second structure on a tracker of its own (a copy of the quickstart's
/// issues), with two synchronizers: the epics and their children.
const BACKLOG: &str = "\
---
apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: backlog-issues}
spec: {type: local, local: {path: backlog.yaml}}
---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {name: backlog}
spec: {trackerRef: {name: backlog-issues}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: backlog-epics}
spec:
  structureRef: {name: backlog}
  type: filter
  directions: [into]
  filter: {query: type = Epic}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: backlog-children}
spec:
  structureRef: {name: backlog}
  type: subtasks
  directions: [into]
";

#[test]
fn structures_pass_at_once_and_report_in_their_declared_order() {
    let ws = Workspace::new();
    let declarations = ws.read("quickstart/trellis.yaml");
    ws.write(
        "quickstart/trellis.yaml",
        &format!("{declarations}{BACKLOG}"),
    );
    let copy = |ws: &Workspace| {
        ws.write(
            "quickstart/backlog.yaml",
            &ws.read("quickstart/issues.yaml"),
        );
    };
    copy(&ws);
    ws.apply();
    let passes = |workers: &str| round(&ws, &["--workers", workers]);
    let order = |passes: &[serde_json::Value]| -> Vec<String> {
        passes
            .iter()
            .map(|p| p["synchronizer"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = passes("2");
    assert_eq!(
        order(&first),
        [
            "default/platform-epics",
            "default/mobile-epics",
            "default/children",
            "default/backlog-epics",
            "default/backlog-children",
        ]
    );
    // A change in both trackers reaches both structures, each from its own
    // pass, the two committing to one store at once.
    ws.set_parent("PLAT-11", Some("PLAT-2"));
    copy(&ws);
    let second = passes("2");
    assert_eq!(order(&second), order(&first));
    let moves: Vec<u64> = second
        .iter()
        .map(|p| p["summary"]["move"].as_u64().unwrap())
        .collect();
    assert_eq!(moves, [0, 0, 1, 0, 1], "{second:?}");
    for structure in ["default/roadmap", "default/backlog"] {
        let forest = ws.store().structure(structure).unwrap().forest;
        let row = forest.find_issue("PLAT-11").expect("PLAT-11 is in both");
        let parent = forest.parent(row).and_then(|p| forest.row(p));
        assert_eq!(
            parent.map(|r| r.item.to_string()).as_deref(),
            Some("PLAT-2"),
            "{structure}"
        );
    }
    // One worker does the same, one structure after the other.
    let third = passes("1");
    assert_eq!(order(&third), order(&first));
    assert!(third.iter().all(|p| p["summary"]["move"] == 0), "{third:?}");
}

#[test]
fn the_synchronizers_of_a_structure_read_their_tracker_once_a_round() {
    let ws = Workspace::new();
    ws.apply();
    let read = |passes: &[serde_json::Value]| -> Vec<u64> {
        passes
            .iter()
            .map(|p| p["issuesRead"].as_u64().unwrap())
            .collect()
    };
    // The first pass of each is a full read: made once, by the first.
    let first = round(&ws, &[]);
    assert!(first.iter().all(|p| p["full"] == true), "{first:?}");
    let issues = first[0]["issuesRead"].as_u64().unwrap();
    assert!(issues > 10, "{first:?}");
    assert_eq!(read(&first), [issues, 0, 0]);
    // A change is read once, and reaches the synchronizer it concerns.
    ws.set_parent("PLAT-11", Some("PLAT-2"));
    let second = round(&ws, &[]);
    assert_eq!(read(&second), [1, 0, 0], "{second:?}");
    assert_eq!(second[2]["synchronizer"], "default/children");
    assert_eq!(second[2]["summary"]["move"], 1, "{second:?}");
    assert_eq!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
}

/// The status line of each synchronizer, by name.
fn status_lines(ws: &Workspace) -> Vec<String> {
    let out = ws
        .trellis()
        .args(["status", "-f", "quickstart"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_run_that_cannot_read_its_tracker_is_a_failed_job_in_status() {
    let ws = Workspace::new();
    // The file exists (the declarations check that) but cannot be read as
    // issues: the tracker fails at the run's read.
    let text = ws.read("quickstart/issues.yaml");
    ws.write("quickstart/issues.yaml", &format!("{text}issues: [\n"));
    // A dry run records nothing; an apply, a failed job per synchronizer.
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(2);
    assert!(status_lines(&ws).iter().all(|l| l.contains("never")));
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("issues.yaml"));
    let lines = status_lines(&ws);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert!(line.contains("failed 20"), "{lines:?}");
        assert!(line.contains("issues.yaml: line"), "{lines:?}");
    }
    // A pass records its own failed job.
    let children = |ws: &Workspace| {
        ws.store()
            .last_jobs()
            .unwrap()
            .into_iter()
            .find(|j| j.synchronizer.as_deref() == Some("default/children"))
            .unwrap()
    };
    let applied = children(&ws);
    ws.trellis()
        .args(["sync", "--once", "-f", "quickstart", "children"])
        .assert()
        .failure()
        .stderr(contains("issues.yaml"));
    let passed = children(&ws);
    assert!(passed.id > applied.id);
    assert_eq!(passed.state, trellis::store::JobState::Failed);
    assert_eq!(
        passed.summary,
        "nothing planned: the tracker could not be read"
    );
}

#[test]
fn moved_rows_take_the_place_a_fresh_import_gives_them() {
    let ws = synced();
    // Tracker side: sub-tasks change parents; each joins among rows already
    // there (PLAT-5 and MOB-5 rank before their new siblings).
    ws.set_parent("PLAT-5", Some("PLAT-8"));
    ws.set_parent("MOB-5", Some("MOB-7"));
    ws.set_parent("PLAT-16", Some("PLAT-1"));
    ws.pass();
    // Structure side: a person moves a row without saying where among its
    // new siblings, and the pass exports the parent.
    ws.trellis()
        .args(["move", "roadmap", "PLAT-6", "--under", "PLAT-12"])
        .assert()
        .success();
    ws.pass();
    assert_eq!(ws.parent_in_file("PLAT-6").as_deref(), Some("PLAT-12"));

    let synced = ws.trellis().args(["show", "roadmap"]).output().unwrap();
    let fresh_state = ws.path("fresh.db");
    ws.trellis()
        .env("TRELLIS_STATE", &fresh_state)
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success();
    let fresh = ws
        .trellis()
        .env("TRELLIS_STATE", &fresh_state)
        .args(["show", "roadmap"])
        .output()
        .unwrap();
    let (synced, fresh) = (
        String::from_utf8_lossy(&synced.stdout),
        String::from_utf8_lossy(&fresh.stdout),
    );
    assert_eq!(synced, fresh, "one sibling order, whichever way rows came");
    assert!(
        synced.contains(
            "PLAT-8 [Story] Prorate charges on mid-cycle plan changes (To Do)\n      PLAT-5 "
        ),
        "{synced}"
    );
    assert!(synced.contains("(In Progress)\n      PLAT-6 "), "{synced}");
}

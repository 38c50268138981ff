//! The command line as people use it: the quickstart flow, exit codes, and
//! every kind of bad input getting a clear error that changes nothing.

mod common;

use std::path::Path;

use common::Workspace;
use predicates::prelude::*;
use predicates::str::contains;
use trellis::store::Store;

/// A Resync `export-once` of `children`, from the structure, next to the quickstart.
fn declare_export_once(ws: &Workspace) {
    ws.write(
        "quickstart/resync.yaml",
        &format!("{HEADER}kind: Resync\nmetadata:\n  name: export-once\nspec:\n  synchronizerRef: {{name: children}}\n  direction: from\n"),
    );
}

fn plan_hash(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .find(|l| l.starts_with("Plan hash: "))
        .expect("a plan hash");
    line.trim_start_matches("Plan hash: ").to_owned()
}

const HEADER: &str = "apiVersion: trellis.dev/v1alpha1\n";

fn tracker_and_structure() -> String {
    format!(
        "{HEADER}kind: Tracker\nmetadata:\n  name: t\nspec:\n  type: local\n  local:\n    path: quickstart/issues.yaml\n---\n{HEADER}kind: Structure\nmetadata:\n  name: s\nspec:\n  trackerRef: {{name: t}}\n  rows:\n    - folder: Platform\n"
    )
}

// ------------------------------------------------------------ quickstart

#[test]
fn quickstart_plan_apply_and_plan_again() {
    let ws = Workspace::new();
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(1)
        .stdout(contains("+  PLAT-1 [Epic] Billing revamp (In Progress)"))
        .stdout(contains(
            "Plan: 37 to add, 0 to move, 0 to remove; 0 tracker updates, 0 destructive",
        ));
    assert!(
        !ws.state().exists(),
        "plan writes nothing, not even the store"
    );
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("applied: default/roadmap is at version 1"));
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(0)
        .stdout(contains(
            "Plan: 0 to add, 0 to move, 0 to remove; 0 tracker updates, 0 destructive",
        ));
    ws.trellis()
        .args(["show", "roadmap"])
        .assert()
        .success()
        .stdout(contains(
            "Platform/\n  PLAT-1 [Epic] Billing revamp (In Progress)\n    PLAT-11 [Bug]",
        ));
    ws.trellis()
        .args(["status"])
        .assert()
        .success()
        .stdout(contains("default/children"))
        .stdout(contains("subtasks"))
        .stdout(contains("(into)"));
}

#[test]
fn show_as_yaml_and_json_nests_rows() {
    let ws = Workspace::new();
    ws.apply();
    let out = ws
        .trellis()
        .args(["show", "roadmap", "-o", "json"])
        .output()
        .unwrap();
    let tree: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tree[0]["folder"], "Platform");
    assert_eq!(tree[0]["rows"][0]["key"], "PLAT-1");
    assert_eq!(tree[0]["rows"][0]["rows"][1]["rows"][0]["key"], "PLAT-5");
    ws.trellis()
        .args(["show", "roadmap", "-o", "yaml"])
        .assert()
        .success()
        .stdout(contains("folder: Platform"));
}

#[test]
fn a_manual_move_is_journaled_and_exported_to_the_tracker() {
    let ws = Workspace::new();
    ws.apply();
    ws.trellis()
        .args(["move", "roadmap", "PLAT-9", "--under", "PLAT-4"])
        .assert()
        .success();
    let journal = ws.store().journal("default/roadmap").unwrap();
    let last = journal.last().unwrap();
    assert_eq!(
        (last.author.as_str(), last.cause.as_str(), last.version),
        ("alice", "manual move", 2)
    );
    // `into` would undo the move; `from` writes it to the tracker.
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(1)
        .stdout(contains("1 to move"));
    ws.trellis()
        .args(["export", "children", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("~ PLAT-9: parent PLAT-8 → PLAT-4"));
    assert!(ws.read("quickstart/issues.yaml").contains("key: PLAT-9\n  summary: Proration calculation in the pricing engine\n  type: Sub-task\n  status: To Do\n  parent: PLAT-4"));
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(0);
}

#[test]
fn plan_renders_markdown_and_json() {
    let ws = Workspace::new();
    ws.trellis()
        .args(["plan", "-f", "quickstart", "-o", "markdown"])
        .assert()
        .code(1)
        .stdout(contains("### Structure `default/roadmap`"))
        .stdout(contains("<details><summary>Outline diff</summary>"));
    let out = ws
        .trellis()
        .args(["plan", "-f", "quickstart", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["add"], 37);
    assert_eq!(plan["structures"][0]["units"][3]["type"], "subtasks");
    assert_eq!(plan["hash"].as_str().unwrap().len(), 16);
}

// ------------------------------------------------------- approval by hash

/// Marks PLAT-1 Done so that platform-epics removes it and its subtree.
fn make_destructive(ws: &Workspace) {
    ws.apply();
    ws.edit(
        "quickstart/issues.yaml",
        "summary: Billing revamp\n    type: Epic\n    status: In Progress",
        "summary: Billing revamp\n    type: Epic\n    status: Done",
    );
}

#[test]
fn a_destructive_plan_needs_its_hash_and_a_wrong_or_stale_hash_changes_nothing() {
    let ws = Workspace::new();
    make_destructive(&ws);
    let plan = ws
        .trellis()
        .args(["plan", "-f", "quickstart"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("! remove PLAT-1"), "{text}");
    let hash = plan_hash(&plan.stdout);
    let before = ws.store().structure("default/roadmap").unwrap();

    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains(format!("approve it with `--approve {hash}`")));
    ws.trellis()
        .args(["apply", "-f", "quickstart", "--approve", "0123456789abcdef"])
        .assert()
        .code(2)
        .stderr(contains(format!("approve {hash}")));
    // The base changes after review: the reviewed hash is now stale.
    ws.edit(
        "quickstart/issues.yaml",
        "summary: SLO dashboards",
        "summary: SLO dashboards (edited)",
    );
    ws.trellis()
        .args(["apply", "-f", "quickstart", "--approve", &hash])
        .assert()
        .code(2)
        .stderr(contains("is not the current plan"));
    let after = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(
        (after.version, after.forest.len()),
        (before.version, before.forest.len())
    );

    let fresh = plan_hash(
        &ws.trellis()
            .args(["plan", "-f", "quickstart"])
            .output()
            .unwrap()
            .stdout,
    );
    ws.trellis()
        .args(["apply", "-f", "quickstart", "--approve", &fresh])
        .assert()
        .success();
    let after = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(after.forest.find_issue("PLAT-1"), None);
    assert_eq!(
        after.forest.find_issue("PLAT-4"),
        None,
        "rows subtasks placed under it go with it"
    );
}

// ------------------------------------------------------------- resyncs

#[test]
fn a_direction_the_type_lacks_is_refused_with_the_supported_ones() {
    let ws = Workspace::new();
    ws.trellis()
        .args([
            "resync",
            "platform-epics",
            "--direction",
            "from",
            "-f",
            "quickstart",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "a filter synchronizer cannot sync from; supported directions: into",
        ));
    ws.trellis()
        .args([
            "resync",
            "children",
            "--direction",
            "sideways",
            "-f",
            "quickstart",
        ])
        .assert()
        .code(2)
        .stderr(contains("use into (import) or from (export)"));
    assert!(!ws.state().exists());
}

#[test]
fn import_alias_runs_one_synchronizer_into_the_structure() {
    let ws = Workspace::new();
    ws.trellis()
        .args([
            "resync",
            "platform-epics",
            "--direction",
            "import",
            "-f",
            "quickstart",
        ])
        .assert()
        .success()
        .stdout(contains("filter default/platform-epics (into)"))
        .stdout(contains("Plan: 4 to add"));
    let forest = ws.store().structure("default/roadmap").unwrap().forest;
    assert!(forest.find_issue("PLAT-1").is_some());
    assert_eq!(
        forest.find_issue("PLAT-4"),
        None,
        "only the resynced synchronizer ran"
    );
}

#[test]
fn a_cluster_resync_takes_no_files_and_says_when_no_cluster_answers() {
    let ws = Workspace::new();
    ws.trellis()
        .args(["resync", "platform-epics", "--direction", "into"])
        .assert()
        .code(2)
        .stderr(contains("--filename <PATH>"));
    for cluster_only in [["--cluster", ""], ["--run-as", "my-key"], ["-n", "team"]] {
        let args: Vec<&str> = cluster_only.into_iter().filter(|a| !a.is_empty()).collect();
        ws.trellis()
            .args([
                "resync",
                "platform-epics",
                "--direction",
                "into",
                "-f",
                "quickstart",
            ])
            .args(&args)
            .assert()
            .code(2)
            .stderr(contains("cannot be used with"))
            .stderr(contains("--filename <PATH>"));
    }
    ws.trellis()
        .args([
            "resync",
            "platform-epics",
            "--direction",
            "into",
            "--cluster",
        ])
        .env("KUBECONFIG", ws.path("no-such.kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .assert()
        .code(2)
        .stderr(contains(
            "no cluster to ask: set KUBECONFIG, or run inside one",
        ));
    assert!(!ws.state().exists(), "nothing written");
}

#[test]
fn every_command_finds_an_object_in_another_namespace_by_its_bare_name() {
    let ws = Workspace::new();
    let text = ws.read("quickstart/trellis.yaml");
    ws.write(
        "quickstart/trellis.yaml",
        &text.replace("metadata:\n", "metadata:\n  namespace: team-a\n"),
    );
    ws.trellis()
        .args([
            "resync",
            "children",
            "--direction",
            "into",
            "-f",
            "quickstart",
        ])
        .assert()
        .success()
        .stdout(contains("subtasks team-a/children (into)"));
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success();
    for args in [
        vec!["show", "roadmap"],
        vec!["history", "roadmap"],
        vec!["move", "roadmap", "PLAT-9", "--top"],
    ] {
        ws.trellis().args(&args).assert().success();
    }
    ws.trellis()
        .args(["troubleshoot", "children"])
        .assert()
        .stdout(contains("Synchronizer team-a/children"));
    ws.trellis()
        .args(["sync", "--once", "children", "-f", "quickstart"])
        .assert()
        .success();
}

#[test]
fn a_declared_resync_runs_once() {
    let ws = Workspace::new();
    ws.apply();
    declare_export_once(&ws);
    ws.trellis()
        .args(["move", "roadmap", "PLAT-9", "--under", "PLAT-4"])
        .assert()
        .success();
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("subtasks default/children (from)"));
    assert!(
        ws.read("quickstart/issues.yaml")
            .contains("parent: PLAT-4\n  rank: \"0|a00090:\"")
    );
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(0)
        .stdout(contains("subtasks default/children (into)"));
}

#[test]
fn a_declared_resync_with_run_as_runs_as_the_person_at_the_command_line() {
    let ws = Workspace::new();
    ws.apply();
    ws.write(
        "quickstart/resync.yaml",
        &format!("{HEADER}kind: Resync\nmetadata:\n  name: import-as-me\nspec:\n  synchronizerRef: {{name: children}}\n  direction: into\n  runAs: {{secretRef: {{name: my-redmine-key}}}}\n"),
    );
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .stdout(contains(
            "Resync default/import-as-me (a run of its own, carried out before the synchronizers; spec.runAs is read by the controller: here it runs as you, with the tracker's spec.credentials)",
        ));
}

// ------------------------------------------------------------ bad input

fn assert_rejected(ws: &Workspace, file: &Path, expected: &[&str]) {
    let mut assert = ws
        .trellis()
        .args(["apply", "-f"])
        .arg(file)
        .assert()
        .code(2);
    for text in expected {
        assert = assert.stderr(contains(*text));
    }
    assert.stderr(contains("nothing was changed"));
    assert!(!ws.state().exists(), "nothing was written");
}

#[test]
fn an_unknown_field_names_file_line_and_field() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "    remove: true\n",
        "    remove: true\n    removal: always\n",
    );
    let text = ws.read("quickstart/trellis.yaml");
    let line = text
        .lines()
        .position(|l| l.contains("removal: always"))
        .unwrap()
        + 1;
    assert_rejected(
        &ws,
        &ws.path("quickstart"),
        &[&format!(
            "trellis.yaml:{line}: spec.filter.removal: unknown field `removal`"
        )],
    );
}

#[test]
fn a_wrong_type_names_the_field() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "enabled: true",
        "enabled: sometimes",
    );
    assert_rejected(&ws, &ws.path("quickstart"), &["spec.enabled: "]);
}

#[test]
fn a_dangling_reference_names_the_missing_resource() {
    let ws = Workspace::new();
    let file = ws.write(
        "specs.yaml",
        &format!("{}---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: x\nspec:\n  structureRef:\n    name: nowhere\n  type: subtasks\n", tracker_and_structure()),
    );
    assert_rejected(
        &ws,
        &file,
        &[
            "specs.yaml:25: spec.structureRef.name: Structure default/nowhere is not declared",
            "declared: default/s",
        ],
    );
}

#[test]
fn duplicate_names_point_at_both_declarations() {
    let ws = Workspace::new();
    let sync = format!(
        "---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: twice\nspec:\n  structureRef: {{name: s}}\n  type: subtasks\n"
    );
    let file = ws.write(
        "specs.yaml",
        &format!("{}{sync}{sync}", tracker_and_structure()),
    );
    assert_rejected(
        &ws,
        &file,
        &[
            "specs.yaml:30: metadata.name: Synchronizer default/twice is declared twice (first at ",
            "specs.yaml:22)",
        ],
    );
}

#[test]
fn an_unsupported_declared_direction_names_the_supported_ones() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "directions: [into]",
        "directions: [into, from]",
    );
    assert_rejected(
        &ws,
        &ws.path("quickstart"),
        &["spec.directions[1]: a filter synchronizer cannot sync from; supported directions: into"],
    );
}

#[test]
fn a_bad_query_names_the_column() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "query: project = PLAT and",
        "query: project = PLAT andd",
    );
    assert_rejected(
        &ws,
        &ws.path("quickstart"),
        &["spec.filter.query: invalid query: column"],
    );
}

#[test]
fn an_unknown_kind_or_api_version_is_refused() {
    let ws = Workspace::new();
    let file = ws.write("specs.yaml", "apiVersion: trellis.dev/v1\nkind: Tracker\nmetadata: {name: t}\nspec: {type: local}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Trakcer\n");
    assert_rejected(
        &ws,
        &file,
        &[
            "specs.yaml:1: apiVersion: apiVersion trellis.dev/v1 is not served by Trellis; use trellis.dev/v1alpha1",
            "specs.yaml:7: kind: unknown kind Trakcer",
        ],
    );
}

#[test]
fn validate_checks_offline_and_reports_every_error() {
    let ws = Workspace::new();
    ws.trellis()
        .args(["validate", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains(
            "valid: 1 Tracker(s), 1 Structure(s), 3 Synchronizer(s), 0 Resync(s)",
        ));
    ws.edit(
        "quickstart/trellis.yaml",
        "under: {folder: Platform}",
        "under: {folder: Platfrom}",
    );
    ws.edit(
        "quickstart/trellis.yaml",
        "name: children\nspec:\n  structureRef: {name: roadmap}",
        "name: children\nspec:\n  structureRef: {name: roadmapp}",
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains(
            "folder Platfrom is not declared in Structure default/roadmap",
        ))
        .stderr(contains("Structure default/roadmapp is not declared"))
        .stderr(contains("2 errors in the declarations"));
}

#[test]
fn a_rate_limit_that_lets_nothing_through_is_refused_at_its_line() {
    let ws = Workspace::new();
    let tracker = "apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: redmine}
spec:
  type: redmine
  url: http://127.0.0.1:3000
  credentials: {env: REDMINE_API_KEY}
  rateLimit:
    requestsPerSecond: 0
    concurrentRequests: 0
";
    std::fs::create_dir(ws.path("limits")).unwrap();
    ws.write("limits/trackers.yaml", tracker);
    // Named as given on the command line.
    let place = "limits/trackers.yaml";
    ws.trellis()
        .args(["validate", "-f", "limits"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{place}:9: spec.rateLimit.requestsPerSecond: 0 requests per second lets no request through"
        )))
        .stderr(contains(format!(
            "{place}:10: spec.rateLimit.concurrentRequests: 0 requests at once"
        )));
    ws.write(
        "limits/trackers.yaml",
        &tracker.replace("requestsPerSecond: 0", "requestsPerSecond: fast"),
    );
    ws.trellis()
        .args(["validate", "-f", "limits"])
        .assert()
        .code(2)
        .stderr(contains(format!("{place}:9")))
        .stderr(contains("requestsPerSecond"));
    ws.edit(
        "quickstart/trellis.yaml",
        "path: issues.yaml",
        "path: issues.yaml\n  rateLimit: {requestsPerSecond: 5}",
    );
    assert_rejected(
        &ws,
        &ws.path("quickstart"),
        &["spec.rateLimit is not used by local trackers; remove it"],
    );
}

#[test]
fn a_missing_issues_file_or_path_is_reported() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "path: issues.yaml",
        "path: isues.yaml",
    );
    assert_rejected(
        &ws,
        &ws.path("quickstart"),
        &["spec.local.path: issues file", "isues.yaml does not exist"],
    );
    ws.trellis()
        .args(["plan", "-f", "nowhere"])
        .assert()
        .code(2)
        .stderr(contains("nowhere: no such file or directory"));
}

#[test]
fn a_parent_cycle_in_the_tracker_is_reported_and_nothing_is_written() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/issues.yaml",
        "summary: Billing revamp\n    type: Epic\n",
        "summary: Billing revamp\n    type: Epic\n    parent: PLAT-4\n",
    );
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("form a parent cycle"))
        .stderr(contains("PLAT-1"))
        .stderr(contains("PLAT-4"));
    let structure = ws.store().structure("default/roadmap").unwrap();
    assert_eq!(structure.version, 0);
}

#[test]
fn a_broken_issues_file_names_its_line() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/issues.yaml",
        "    summary: Billing revamp\n",
        "    summary: Billing revamp\n    owner: bob\n",
    );
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("issues.yaml: line").and(contains("unknown field `owner`")));
}

// --------------------------------------------------- after review findings

#[test]
fn a_declared_resync_with_nothing_to_do_still_completes() {
    let ws = Workspace::new();
    ws.apply();
    declare_export_once(&ws);
    // Nothing to export: the resync still runs, and is done.
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("subtasks default/children (from): no changes"));
    assert!(ws.store().resync_done("default/export-once").unwrap());
    // From now on `apply` runs `children` in its own first direction, into:
    // a manual move is undone by the tracker, not exported.
    ws.trellis()
        .args(["move", "roadmap", "PLAT-9", "--under", "PLAT-4"])
        .assert()
        .success();
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("subtasks default/children (into): 1 operation(s)"));
    assert!(
        ws.read("quickstart/issues.yaml")
            .contains("parent: PLAT-8\n    rank: \"0|a00090:\"")
    );
}

#[test]
fn two_structures_that_would_both_write_to_one_tracker_are_refused() {
    let ws = Workspace::new();
    ws.apply();
    // Both structures now disagree with the tracker and export: roadmap by a
    // manual move, `second` by the nesting it declares.
    ws.trellis()
        .args(["move", "roadmap", "PLAT-10", "--under", "PLAT-4"])
        .assert()
        .success();
    let second = "---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata:\n  name: second\nspec:\n  trackerRef: {name: quickstart-issues}\n  rows:\n    - issue: PLAT-4\n      rows:\n        - issue: PLAT-9\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata:\n  name: second-children\nspec:\n  structureRef: {name: second}\n  type: subtasks\n  directions: [from]\n";
    let text = ws
        .read("quickstart/trellis.yaml")
        .replace("directions: [into, from]", "directions: [from]");
    ws.write("quickstart/trellis.yaml", &format!("{text}{second}"));
    let issues = ws.read("quickstart/issues.yaml");
    let before = ws.store().structure("default/roadmap").unwrap().version;
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("structures default/roadmap and default/second would both write to tracker default/quickstart-issues in one run; nothing was changed"));
    assert_eq!(ws.read("quickstart/issues.yaml"), issues);
    assert_eq!(
        ws.store().structure("default/roadmap").unwrap().version,
        before
    );
    assert_eq!(ws.store().structure("default/second").unwrap().version, 0);
}

#[test]
fn move_names_folders_with_a_slash_and_refuses_loops_by_key() {
    let ws = Workspace::new();
    ws.apply();
    ws.trellis()
        .args(["move", "roadmap", "PLAT-1", "--under", "PLAT-4"])
        .assert()
        .code(2)
        .stderr(contains(
            "cannot move PLAT-1 under PLAT-4: it is PLAT-1 itself or one of the rows under it",
        ));
    ws.trellis()
        .args([
            "move",
            "roadmap",
            "Mobile/",
            "--top",
            "--after",
            "Platform/",
        ])
        .assert()
        .success();
    ws.trellis()
        .args(["move", "roadmap", "PLAT-21", "--under", "Mobile/"])
        .assert()
        .code(2)
        .stderr(contains("PLAT-21 is not in structure default/roadmap"));
    // Declared rows stay where declared: moving one is refused, not
    // accepted and silently kept against the declaration.
    let before = ws.trellis().args(["show", "roadmap"]).output().unwrap();
    ws.trellis()
        .args(["move", "roadmap", "Platform/", "--under", "MOB-1"])
        .assert()
        .code(2)
        .stderr(contains(
            "Platform/ is one of structure default/roadmap's declared rows, which stay where the Structure declares them; nothing was changed",
        ));
    let after = ws.trellis().args(["show", "roadmap"]).output().unwrap();
    assert_eq!(before.stdout, after.stdout);
}

#[test]
fn an_error_is_printed_once() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/issues.yaml",
        "summary: Billing revamp\n    type: Epic\n",
        "summary: Billing revamp\n    type: Epic\n    parent: PLAT-4\n",
    );
    let out = ws
        .trellis()
        .args(["plan", "-f", "quickstart"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("form a parent cycle").count(), 1, "{stderr}");
}

#[test]
fn redmine_trackers_need_a_bare_url_and_a_place_for_the_key() {
    let ws = Workspace::new();
    let file = ws.write(
        "redmine.yaml",
        r#"apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: no-url}
spec:
  type: redmine
  redmine: {project: Demo}
---
apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: key-in-url}
spec:
  type: redmine
  url: https://admin:secret@redmine.example.com
  credentials: {env: REDMINE_API_KEY}
  local: {path: issues.yaml}
---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {name: s}
spec:
  trackerRef: {name: key-in-url}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: bugs}
spec:
  structureRef: {name: s}
  type: filter
  filter: {query: "project = PLAT"}
"#,
    );
    assert_rejected(
        &ws,
        &file,
        &[
            "redmine.yaml:5: spec.type: this tracker needs spec.url",
            "redmine.yaml:4: spec.credentials: a redmine tracker needs its API key",
            "redmine.yaml:6: spec.redmine.project: `Demo` is not a Redmine project identifier",
            "redmine.yaml:13: spec.url: the URL carries credentials or parameters",
            "redmine.yaml:15: spec.local: spec.local is for local trackers",
            "redmine.yaml:29: spec.filter.query: invalid query: `project` is not a Redmine issue filter",
        ],
    );
}

// ------------------------------------------- Resyncs approved by their hash

#[test]
fn a_destructive_resync_in_files_runs_only_the_plan_its_approved_plan_names() {
    let ws = Workspace::new();
    ws.apply();
    // PLAT-9 moved to the top: exporting clears its parent (destructive).
    ws.trellis()
        .args(["move", "roadmap", "PLAT-9", "--top"])
        .assert()
        .success();
    declare_export_once(&ws);
    let before = ws.read("quickstart/issues.yaml");

    // `plan` shows the Resync as a run of its own, with its own hash.
    let planned = ws
        .trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(1);
    let output = String::from_utf8_lossy(&planned.get_output().stdout).into_owned();
    assert!(
        output.contains("Resync default/export-once (a run of its own"),
        "{output}"
    );
    let hash = plan_hash(output.as_bytes());
    assert!(output.contains(&format!(
        "after setting `approvedPlan: {hash}` in Resync default/export-once"
    )));

    // Without approval: refused, nothing written.
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "set `approvedPlan: {hash}` in it; nothing was changed"
        )));
    assert_eq!(ws.read("quickstart/issues.yaml"), before);

    // A stale approval: refused, naming both hashes.
    ws.edit(
        "quickstart/resync.yaml",
        "direction: from\n",
        "direction: from\n  approvedPlan: deadbeefdeadbeef\n",
    );
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "the approved plan deadbeefdeadbeef is not the current plan {hash}"
        )));
    assert_eq!(ws.read("quickstart/issues.yaml"), before);

    // The reviewed hash: exactly that plan runs, once.
    ws.edit("quickstart/resync.yaml", "deadbeefdeadbeef", &hash);
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("Resync default/export-once"));
    assert_ne!(ws.read("quickstart/issues.yaml"), before);
    assert!(ws.store().resync_done("default/export-once").unwrap());
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .stdout(contains("Resync default/export-once").not());
}

// ------------------------------------------------------------------- undo

/// The job of the first history entry whose cause contains `cause`.
fn job_of(ws: &Workspace, cause: &str) -> u64 {
    let output = ws
        .trellis()
        .args(["history", "roadmap", "-o", "json"])
        .output()
        .unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cause"].as_str().unwrap().contains(cause))
        .and_then(|e| e["job"].as_u64())
        .unwrap_or_else(|| panic!("no job for {cause}"))
}

#[test]
fn undo_reverses_one_job_under_the_approval_rules_and_refuses_once_things_moved_on() {
    let ws = Workspace::new();
    ws.apply();
    let original = ws.read("quickstart/issues.yaml");
    ws.move_and_export("PLAT-9", "PLAT-4");
    assert_ne!(ws.read("quickstart/issues.yaml"), original);

    // The export's tracker change, undone: PLAT-9's parent is PLAT-8 again.
    let export = job_of(&ws, "(subtasks, from)");
    ws.trellis()
        .args(["undo", &export.to_string(), "-f", "quickstart"])
        .assert()
        .success()
        .stdout(contains("undo job"))
        .stdout(contains("PLAT-9: parent PLAT-4 → PLAT-8"));
    let restored = ws.read("quickstart/issues.yaml");
    assert!(
        restored.contains("- key: PLAT-9\n  summary: Proration calculation in the pricing engine\n  type: Sub-task\n  status: To Do\n  parent: PLAT-8"),
        "{restored}"
    );
    // Undone once is enough: what the job left is gone now.
    ws.trellis()
        .args(["undo", &export.to_string(), "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains(format!(
            "cannot undo job {export}: the parent of PLAT-9 changed since; nothing was changed"
        )));

    // The first import of the epics: children were added under them by
    // another job since, so it is refused and names which.
    let epics = job_of(&ws, "platform-epics");
    ws.trellis()
        .args(["undo", &epics.to_string(), "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("rows were added under PLAT-"));

    // The subtasks import: refused while PLAT-9 sits where the person moved
    // it; once it is back, undoing removes rows: destructive, approved by hash.
    let children = job_of(&ws, "(subtasks, into)");
    ws.trellis()
        .args(["undo", &children.to_string(), "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("PLAT-9 was moved or removed since"));
    ws.trellis()
        .args(["move", "roadmap", "PLAT-9", "--under", "PLAT-8"])
        .assert()
        .success();
    let refused = ws
        .trellis()
        .args(["undo", &children.to_string(), "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("destructive"));
    let hash = plan_hash(&refused.get_output().stdout);
    let rows_before = ws
        .store()
        .structure("default/roadmap")
        .unwrap()
        .forest
        .walk()
        .len();
    ws.trellis()
        .args([
            "undo",
            &children.to_string(),
            "-f",
            "quickstart",
            "--approve",
            &hash,
        ])
        .assert()
        .success();
    let rows_after = ws
        .store()
        .structure("default/roadmap")
        .unwrap()
        .forest
        .walk()
        .len();
    assert!(rows_after < rows_before, "{rows_after} < {rows_before}");
    ws.trellis()
        .args(["history", "roadmap"])
        .assert()
        .stdout(contains(format!("undo of job {children}")));
}

#[test]
fn undo_of_an_unknown_job_says_so_and_writes_nothing() {
    let ws = Workspace::new();
    ws.trellis()
        .args(["undo", "999", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("there is no job 999"));
    assert!(!ws.state().exists(), "no store created");
}

// ------------------------------------------------------------ hostile use

#[test]
fn applying_an_empty_directory_or_file_is_refused_unless_allowed() {
    let ws = Workspace::new();
    ws.apply();
    std::fs::create_dir(ws.path("empty")).unwrap();
    ws.write("empty.yaml", "");
    for empty in ["empty", "empty.yaml"] {
        ws.trellis()
            .args(["apply", "-f", empty])
            .assert()
            .code(2)
            .stderr(contains(format!("{empty} declares no Structure")))
            .stderr(contains("--allow-empty"));
    }
    ws.trellis()
        .args(["show", "roadmap"])
        .assert()
        .success()
        .stdout(contains("PLAT-1 [Epic] Billing revamp"));
    ws.trellis()
        .args(["apply", "--allow-empty", "-f", "empty"])
        .assert()
        .success();
    ws.trellis()
        .args(["show", "roadmap"])
        .assert()
        .code(2)
        .stderr(contains("no declarations applied yet"));
}

#[test]
fn a_reader_that_stops_early_ends_trellis_quietly() {
    let ws = Workspace::new();
    ws.apply();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("trellis"))
        .current_dir(ws.path("."))
        .env("TRELLIS_STATE", ws.state())
        .args(["show", "roadmap"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before Trellis writes: its first write meets a broken pipe.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn logs_written_to_a_file_have_no_colours() {
    let ws = Workspace::new();
    let output = ws
        .trellis()
        .env("RUST_LOG", "trace")
        .env_remove("NO_COLOR")
        .args(["plan", "-f", "quickstart"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.is_empty(), "trace logs something");
    assert!(!stderr.contains('\x1b'), "{stderr}");
}

#[test]
fn a_symbolic_link_loop_in_a_directory_is_one_clear_error() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("quickstart/sub")).unwrap();
    std::os::unix::fs::symlink(".", ws.path("quickstart/self")).unwrap();
    std::os::unix::fs::symlink("..", ws.path("quickstart/sub/up")).unwrap();
    let assert = ws
        .trellis()
        .args(["apply", "-f", "quickstart"])
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(contains("quickstart/self: symbolic link loop"))
        .stderr(contains("quickstart/sub/up: symbolic link loop"))
        .stderr(contains(
            "2 errors in the declarations; nothing was changed",
        ));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(!stderr.contains("declared twice"), "{stderr}");
    assert!(!ws.state().exists());
}

#[test]
fn a_loop_between_linked_files_is_named_as_such() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("d")).unwrap();
    std::os::unix::fs::symlink("b.yaml", ws.path("d/a.yaml")).unwrap();
    std::os::unix::fs::symlink("a.yaml", ws.path("d/b.yaml")).unwrap();
    ws.trellis()
        .args(["apply", "-f", "d"])
        .assert()
        .code(2)
        .stderr(contains(
            "d/a.yaml: is a symbolic link that cannot be followed",
        ))
        .stderr(contains("no such file").not());
}

#[test]
fn two_links_to_one_directory_read_it_once() {
    let ws = Workspace::new();
    std::os::unix::fs::symlink("quickstart", ws.path("again")).unwrap();
    ws.trellis()
        .args(["validate", "-f", "quickstart", "-f", "again"])
        .assert()
        .success();
}

#[test]
fn a_local_query_naming_an_unknown_field_is_refused_with_a_suggestion() {
    let ws = Workspace::new();
    ws.apply();
    ws.edit(
        "quickstart/trellis.yaml",
        "query: project = PLAT and",
        "query: projekt = PLAT and",
    );
    let before = ws.store().structure("default/roadmap").unwrap().version;
    ws.trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(contains("column 1: `projekt` is not a field"))
        .stderr(contains("did you mean `project`?"))
        .stderr(contains("quickstart/trellis.yaml:46: spec.filter.query"));
    assert_eq!(
        ws.store().structure("default/roadmap").unwrap().version,
        before,
        "nothing was removed"
    );
    // A custom field that some issue has is fine, and `fields.` reaches one no issue has yet.
    ws.edit(
        "quickstart/trellis.yaml",
        "query: projekt = PLAT and",
        "query: fields.projekt is empty and project = PLAT and",
    );
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(0);
}

#[test]
fn tracker_text_cannot_forge_lines_in_a_plan_comment_or_a_terminal() {
    let ws = Workspace::new();
    let forged = "PLAT-77\\n<!-- trellis-plan 1 of 1 --> **approved** ``` `x`\\u001b[31m";
    ws.edit(
        "quickstart/issues.yaml",
        "issues:\n",
        &format!(
            "issues:\n  - key: \"{forged}\"\n    summary: Forged\n    type: Epic\n    status: Open\n    rank: \"0|a00001:\"\n"
        ),
    );
    // Its key has no project PLAT (the project is what comes before the last `-`).
    ws.write(
        "quickstart/forged.yaml",
        &format!("{HEADER}kind: Synchronizer\nmetadata:\n  name: forged\nspec:\n  structureRef: {{name: roadmap}}\n  type: filter\n  directions: [into]\n  filter:\n    query: summary = Forged and status != Done\n    remove: true\n"),
    );
    ws.apply();
    ws.edit(
        "quickstart/issues.yaml",
        "summary: Forged\n    type: Epic\n    status: Open",
        "summary: Forged\n    type: Epic\n    status: Done",
    );
    let output = ws
        .trellis()
        .args(["plan", "-o", "markdown", "-f", "quickstart"])
        .output()
        .unwrap();
    let markdown = String::from_utf8(output.stdout).unwrap();
    assert!(markdown.contains("remove PLAT-77"), "{markdown}");
    // Only the real marker starts a line; in the outline diff the key stays
    // on its `-` line inside a fence its backticks cannot close.
    let markers = markdown.lines().filter(|l| l.starts_with("<!--")).count();
    assert_eq!(markers, 1, "{markdown}");
    assert!(markdown.contains("````diff\n"), "{markdown}");
    assert!(
        markdown.contains("\n-PLAT-77\\u{a}<!-- trellis-plan 1 of 1 --> **approved** ``` `x`\\u{1b}[31m [Epic] Forged (Done)\n"),
        "{markdown}"
    );
    let line = markdown
        .lines()
        .find(|l| l.contains("remove PLAT-77"))
        .unwrap();
    assert!(
        !line.contains('<') || line.matches('<').count() == 2,
        "only the <code> tags: {line}"
    );
    assert!(!line.contains('`') && !line.contains('\x1b'), "{line}");

    let output = ws
        .trellis()
        .args(["plan", "-f", "quickstart"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no escape sequence reaches a terminal"
    );
    let line = text.lines().find(|l| l.contains("remove PLAT-77")).unwrap();
    assert!(line.contains("\\u{a}<!-- trellis-plan"), "{line}");
}

#[test]
fn yaml_limits_duplicate_keys_and_bad_bytes_are_told_in_our_words_with_file_and_line() {
    let ws = Workspace::new();
    // A big data file passed to -f by mistake.
    std::fs::create_dir(ws.path("data")).unwrap();
    ws.write(
        "data/big.yaml",
        &format!("issues:\n{}", "  - 1\n".repeat(300_000)),
    );
    let assert = ws.trellis().args(["apply", "-f", "data"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("data/big.yaml:"), "{stderr}");
    assert!(stderr.contains("too many YAML nodes"), "{stderr}");
    assert!(stderr.contains("spec.local.path"), "{stderr}");
    assert!(!stderr.contains("Nodes {"), "{stderr}");

    ws.edit(
        "quickstart/trellis.yaml",
        "    remove: true\n",
        "    remove: true\n    remove: false\n",
    );
    let line = ws
        .read("quickstart/trellis.yaml")
        .lines()
        .position(|l| l == "    remove: false")
        .unwrap()
        + 1;
    assert_rejected(
        &ws,
        &ws.path("quickstart/trellis.yaml"),
        &[&format!(
            "trellis.yaml:{line}: spec.filter.remove: `remove` is given twice in the same mapping; keep one"
        )],
    );
    let assert = ws
        .trellis()
        .args(["apply", "-f", "quickstart"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(!stderr.contains("DuplicateKeyPolicy"), "{stderr}");

    let mut latin1 = format!("{HEADER}kind: Tracker\nmetadata:\n  name: caf").into_bytes();
    latin1.extend([0xe9, b'\n']);
    std::fs::write(ws.path("latin1.yaml"), latin1).unwrap();
    assert_rejected(
        &ws,
        &ws.path("latin1.yaml"),
        &["latin1.yaml:4: byte 12 of this line is not UTF-8 text"],
    );
}

#[test]
fn show_prints_the_issues_as_last_read_without_the_tracker_and_refresh_reads_it() {
    let ws = Workspace::new();
    ws.apply();
    // The tracker cannot be read any more (as a Redmine that is down, or a
    // key that is unset): `show` needs only the store.
    let text = ws.read("quickstart/issues.yaml");
    ws.write("quickstart/issues.yaml", &format!("{text}issues: [\n"));
    ws.trellis()
        .args(["show", "roadmap"])
        .assert()
        .success()
        .stdout(contains(
            "Platform/\n  PLAT-1 [Epic] Billing revamp (In Progress)\n    PLAT-11 [Bug]",
        ))
        .stderr(contains(
            "issues of tracker default/quickstart-issues as read 20",
        ))
        .stderr(contains("s ago); `--refresh` reads them now"));
    ws.trellis()
        .args(["show", "roadmap", "--refresh"])
        .assert()
        .code(2)
        .stderr(contains("issues.yaml: line"));
}

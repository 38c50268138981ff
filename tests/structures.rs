//! statusRollup, the mass-removal guard, history and portfolio structures,
//! as people use them from the command line.

mod common;

use common::Workspace;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use trellis::store::Store;

const HEADER: &str = "apiVersion: trellis.dev/v1alpha1\n";

/// The status of `key` in an issues file as Trellis writes it.
fn status_of(issues: &str, key: &str) -> String {
    let at = issues
        .find(&format!("key: {key}\n"))
        .unwrap_or_else(|| panic!("{key} is in the file"));
    let status = issues[at..].find("status: ").unwrap() + at + "status: ".len();
    issues[status..].lines().next().unwrap().to_owned()
}

// ----------------------------------------------------------- statusRollup

#[test]
fn status_rollup_moves_parents_to_their_childrens_earliest_status() {
    let ws = Workspace::new();
    ws.copy_example("status-rollup");
    ws.trellis()
        .args(["plan", "-f", "status-rollup"])
        .assert()
        .code(1)
        .stdout(contains("statusRollup default/rollup (from): 2 operation(s)"))
        .stdout(contains(
            "note: SHOP-1: status To Do → In Progress, because the earliest status among its children: SHOP-2 is In Progress",
        ))
        .stdout(contains(
            "note: SHOP-9 stays Done: its children say To Do, but the tracker's workflow does not allow Done → To Do (allowed: In Progress)",
        ))
        .stdout(contains(
            "note: SHOP-11 stays In Progress: its child SHOP-12 is In Review",
        ))
        .stdout(contains("~ SHOP-6: status In Progress → Done"))
        .stdout(contains("2 tracker updates, 0 destructive"));
    ws.trellis()
        .args(["apply", "-f", "status-rollup"])
        .assert()
        .success();
    let issues = ws.read("status-rollup/issues.yaml");
    assert_eq!(status_of(&issues, "SHOP-1"), "In Progress");
    assert_eq!(status_of(&issues, "SHOP-6"), "Done");
    assert_eq!(status_of(&issues, "SHOP-9"), "Done");
    assert_eq!(status_of(&issues, "SHOP-11"), "In Progress");
    assert!(issues.starts_with("workflow:\n"), "the workflow stays");
    ws.trellis()
        .args(["plan", "-f", "status-rollup"])
        .assert()
        .code(0);
    // A child moving back rolls its parents back, as far as the workflow allows.
    ws.edit(
        "status-rollup/issues.yaml",
        "status: Done\n  parent: SHOP-1",
        "status: To Do\n  parent: SHOP-1",
    );
    ws.trellis()
        .args(["plan", "-f", "status-rollup"])
        .assert()
        .code(1)
        .stdout(contains("~ SHOP-1: status In Progress → To Do"));
}

#[test]
fn status_rollup_syncs_only_from_the_structure() {
    let ws = Workspace::new();
    ws.copy_example("status-rollup");
    ws.trellis()
        .args(["import", "rollup", "-f", "status-rollup"])
        .assert()
        .code(2)
        .stderr(contains(
            "a statusRollup synchronizer cannot sync into; supported directions: from",
        ));
    ws.edit(
        "status-rollup/trellis.yaml",
        "  directions: [from]",
        "  directions: [into]",
    );
    ws.trellis()
        .args(["validate", "-f", "status-rollup"])
        .assert()
        .code(2)
        .stderr(contains("trellis.yaml:50: spec.directions[0]: a statusRollup synchronizer cannot sync into; supported directions: from"));
}

#[test]
fn status_rollup_parameters_are_checked() {
    let ws = Workspace::new();
    let file = ws.write(
        "rollup.yaml",
        &format!(
            "{HEADER}kind: Synchronizer\nmetadata:\n  name: r1\nspec:\n  structureRef: {{name: roadmap}}\n  type: statusRollup\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: r2\nspec:\n  structureRef: {{name: roadmap}}\n  type: statusRollup\n  statusRollup:\n    statuses: [Done, Done]\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: r3\nspec:\n  structureRef: {{name: roadmap}}\n  type: subtasks\n  statusRollup:\n    statuses: [To Do, Done]\n"
        ),
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart", "-f"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("rollup.yaml:7: spec.type: a statusRollup synchronizer needs spec.statusRollup with its ordered statuses"))
        .stderr(contains("rollup.yaml:17: spec.statusRollup.statuses[1]: `Done` is listed twice"))
        .stderr(contains("rollup.yaml:26: spec.statusRollup: only statusRollup synchronizers take spec.statusRollup; remove it or set `type: statusRollup`"))
        .stderr(contains("3 errors in the declarations; nothing was changed"));
}

// ----------------------------------------------------- mass-removal guard

/// A structure `s` filled by one filter `f` with removal on.
fn filtered_structure(query: &str, safety: &str) -> String {
    format!(
        "{HEADER}kind: Tracker\nmetadata:\n  name: t\nspec:\n  type: local\n  local:\n    path: quickstart/issues.yaml\n---\n{HEADER}kind: Structure\nmetadata:\n  name: s\nspec:\n  trackerRef: {{name: t}}\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: f\nspec:\n  structureRef: {{name: s}}\n  type: filter\n  filter:\n    query: {query}\n    remove: true\n{safety}"
    )
}

#[test]
fn a_plan_removing_more_than_half_a_structure_is_refused_until_the_limit_is_raised() {
    let ws = Workspace::new();
    ws.write("s.yaml", &filtered_structure("project = PLAT", ""));
    ws.trellis()
        .args(["apply", "-f", "s.yaml"])
        .assert()
        .success();
    // The query breaks (a renamed project): every row would go.
    ws.write("s.yaml", &filtered_structure("project = PLATFORM", ""));
    let refusal = "synchronizer default/f would remove 22 of the 22 rows of structure default/s (100%), more than its spec.safety.maxRemovalRatio of 0.5 (the default) allows; nothing was changed. If that is intended (check its query or parameters first), set `safety: {maxRemovalRatio: 1}` in the spec of Synchronizer default/f, then plan again";
    let out = ws
        .trellis()
        .args(["plan", "-f", "s.yaml"])
        .assert()
        .code(2)
        .stdout(contains("Refused (too many removals):"))
        .stderr(contains(refusal))
        .get_output()
        .stdout
        .clone();
    // Approving the hash does not override the guard, nor does a saved plan.
    let hash = String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.strip_prefix("Plan hash: ").map(str::to_owned))
        .unwrap();
    ws.trellis()
        .args(["apply", "-f", "s.yaml", "--approve", &hash])
        .assert()
        .code(2)
        .stderr(contains(refusal));
    ws.trellis()
        .args(["plan", "-f", "s.yaml", "--out", "plan.json", "-o", "json"])
        .assert()
        .code(2);
    ws.trellis()
        .args(["apply", "plan.json"])
        .assert()
        .code(2)
        .stderr(contains(refusal));
    assert_eq!(ws.store().structure("default/s").unwrap().forest.len(), 22);
    // The override named in the message lets it through (with approval).
    ws.write(
        "s.yaml",
        &filtered_structure("project = PLATFORM", "  safety: {maxRemovalRatio: 1}\n"),
    );
    ws.trellis()
        .args(["apply", "-f", "s.yaml", "--approve", &hash])
        .assert()
        .success();
    assert_eq!(ws.store().structure("default/s").unwrap().forest.len(), 0);
}

#[test]
fn a_count_limit_applies_too_and_bad_limits_are_named() {
    let ws = Workspace::new();
    ws.write("s.yaml", &filtered_structure("project = PLAT", ""));
    ws.trellis()
        .args(["apply", "-f", "s.yaml"])
        .assert()
        .success();
    // Some of the 22 PLAT issues are done: under half, but over the count.
    ws.write(
        "s.yaml",
        &filtered_structure(
            "project = PLAT and status != Done",
            "  safety: {maxRemovals: 3}\n",
        ),
    );
    ws.trellis()
        .args(["plan", "-f", "s.yaml"])
        .assert()
        .code(2)
        .stderr(contains(
            "more than its spec.safety.maxRemovals of 3 allows",
        ))
        .stderr(contains("set `safety: {maxRemovals: "));
    ws.write(
        "s.yaml",
        &filtered_structure("project = PLAT", "  safety: {maxRemovalRatio: 50}\n"),
    );
    ws.trellis()
        .args(["validate", "-f", "s.yaml"])
        .assert()
        .code(2)
        .stderr(contains("s.yaml:27: spec.safety.maxRemovalRatio: 50 is not a share of the structure's rows; give a number from 0 to 1"));
}

// ---------------------------------------------------------------- history

#[test]
fn history_lists_who_changed_what_and_why() {
    let ws = Workspace::new();
    ws.apply();
    ws.move_and_export("PLAT-9", "PLAT-4");
    let out = ws.trellis().args(["history", "roadmap"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let columns = |line: &str| -> Vec<String> {
        line.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        columns(lines[0]),
        ["VERSION", "JOB", "TIME", "AUTHOR", "CAUSE", "CHANGE"]
    );
    // A run a person starts is theirs, declared rows and synchronizers
    // alike; the cause names the synchronizer (background passes act as
    // the tracker identity: tests/sync.rs).
    let first = columns(lines[1]);
    assert_eq!(
        [&first[0], &first[1], &first[3], &first[4], &first[5]],
        [
            "1",
            "-",
            "alice",
            "declared rows",
            "add Platform/ at the top level"
        ]
    );
    assert!(lines.iter().any(|l| {
        let c = columns(l);
        c[3] == "alice" && c[4] == "synchronizer default/platform-epics (filter, into)"
    }));
    assert!(text.contains("add PLAT-1 under Platform/"));
    let last: Vec<Vec<String>> = lines[lines.len() - 2..]
        .iter()
        .map(|l| columns(l))
        .collect();
    assert_eq!(
        [
            &last[0][0],
            &last[0][1],
            &last[0][3],
            &last[0][4],
            &last[0][5]
        ],
        [
            "2",
            "-",
            "alice",
            "manual move",
            "move PLAT-9 from under PLAT-8 to under PLAT-4"
        ]
    );
    assert_eq!(
        [
            &last[1][0],
            &last[1][1],
            &last[1][3],
            &last[1][4],
            &last[1][5]
        ],
        [
            "2",
            "4",
            "alice",
            "synchronizer default/children (subtasks, from)",
            "tracker: PLAT-9: parent PLAT-8 → PLAT-4"
        ]
    );
    let json = ws
        .trellis()
        .args(["history", "roadmap", "-o", "json"])
        .output()
        .unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let last = entries.as_array().unwrap().last().unwrap();
    assert_eq!(last["operation"]["op"], "setParent");
    assert_eq!(last["author"], "alice");
}

// -------------------------------------------------------------- portfolio

fn portfolio(refs: &str) -> String {
    format!(
        "{HEADER}kind: Structure\nmetadata:\n  name: all-teams\nspec:\n  portfolio:\n    structureRefs: {refs}\n"
    )
}

#[test]
fn a_portfolio_shows_its_structures_under_a_folder_each() {
    let ws = Workspace::new();
    ws.copy_example("status-rollup");
    ws.copy_example("portfolio");
    let files = ["-f", "quickstart", "-f", "status-rollup", "-f", "portfolio"];
    ws.trellis().arg("apply").args(files).assert().success();
    let out = ws.trellis().args(["show", "all-teams"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("roadmap/\n  Platform/\n    PLAT-1 [Epic] Billing revamp (In Progress)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\ndelivery/\n  SHOP-1 [Epic] Checkout redesign (In Progress)\n    SHOP-2 [Story]"
        ),
        "{text}"
    );
    let json = ws
        .trellis()
        .args(["show", "all-teams", "-o", "json"])
        .output()
        .unwrap();
    let tree: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(tree[0]["folder"], "roadmap");
    assert_eq!(tree[0]["rows"][0]["folder"], "Platform");
    assert_eq!(tree[1]["folder"], "delivery");
    assert_eq!(tree[1]["rows"][0]["key"], "SHOP-1");
    // Nothing to sync on a portfolio.
    ws.trellis()
        .args(["resync", "all-teams", "--direction", "into"])
        .args(files)
        .assert()
        .code(2)
        .stderr(contains(
            "default/all-teams is a portfolio structure: resync is not available on it",
        ));
}

#[test]
fn portfolio_declarations_are_checked() {
    let ws = Workspace::new();
    let sync_on_portfolio = format!(
        "{HEADER}kind: Synchronizer\nmetadata:\n  name: on-portfolio\nspec:\n  structureRef: {{name: all-teams}}\n  type: subtasks\n"
    );
    let file = ws.write(
        "all.yaml",
        &format!(
            "{}---\n{sync_on_portfolio}",
            portfolio("[{name: roadmap}, {name: nowhere}, {name: roadmap}]")
        ),
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart", "-f"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("all.yaml:7: spec.portfolio.structureRefs[1].name: Structure default/nowhere is not declared"))
        .stderr(contains("all.yaml:7: spec.portfolio.structureRefs[2].name: default/roadmap is listed twice"))
        .stderr(contains("all.yaml:14: spec.structureRef.name: Structure default/all-teams is a portfolio: it has no scope of its own, so synchronizers and resyncs are not available on it; sync one of its structures instead (default/roadmap, default/nowhere, default/roadmap)"));
    let file = ws.write(
        "all.yaml",
        &format!(
            "{HEADER}kind: Structure\nmetadata:\n  name: all-teams\nspec:\n  trackerRef: {{name: quickstart-issues}}\n  portfolio:\n    structureRefs: [{{name: roadmap}}]\n---\n{HEADER}kind: Structure\nmetadata:\n  name: nothing\nspec:\n  description: neither\n"
        ),
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart", "-f"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("all.yaml:7: spec.portfolio: a portfolio aggregates other structures and has no tracker of its own"))
        .stderr(contains("all.yaml:14: spec: a structure needs spec.trackerRef (the tracker whose issues it holds) or spec.portfolio (the structures it aggregates)"));
}

// ------------------------------------------------------------------ links

#[test]
fn links_import_hangs_stories_under_what_they_implement_and_export_relinks_a_move() {
    let ws = Workspace::new();
    ws.copy_example("links");
    ws.trellis()
        .args(["apply", "-f", "links"])
        .assert()
        .success();
    ws.trellis()
        .args(["show", "traceability"])
        .assert()
        .success()
        .stdout(contains(
            "REQ-2 [Requirement] Receipts are emailed within a minute (Approved)\n  APP-3 [Story] Receipt email template (To Do)\n  APP-4 [Story] Send receipts from a queue (To Do)\nREQ-3",
        ));
    // QA-1 implements REQ-3 too, but the child filter takes stories only.
    ws.trellis()
        .args(["show", "traceability"])
        .assert()
        .stdout(contains("QA-1").not());
    ws.trellis()
        .args(["move", "traceability", "APP-2", "--under", "REQ-2"])
        .assert()
        .success();
    // Deleting the old link is destructive: listed, and not done unapproved.
    ws.trellis()
        .args(["export", "implemented-by", "-f", "links"])
        .assert()
        .code(2)
        .stdout(contains("! APP-2: delete link implements → REQ-1"))
        .stdout(contains("~ APP-2: add link implements → REQ-2"))
        .stdout(contains("2 tracker updates, 1 destructive"));
    assert!(
        ws.read("links/issues.yaml")
            .contains("target: REQ-1\n  - key: APP-3")
    );
    // Until exported, an import would follow the tracker and move it back.
    ws.trellis()
        .args(["plan", "-f", "links"])
        .assert()
        .code(1)
        .stdout(contains(
            "+  APP-2 [Story] Retry a declined card (In Progress)",
        ));
    let out = ws
        .trellis()
        .args(["export", "implemented-by", "-f", "links"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hash = stdout
        .split("Plan hash: ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .unwrap()
        .to_owned();
    ws.trellis()
        .args([
            "export",
            "implemented-by",
            "-f",
            "links",
            "--approve",
            &hash,
        ])
        .assert()
        .success();
    let issues = ws.read("links/issues.yaml");
    let app2 = &issues[issues.find("key: APP-2").unwrap()..issues.find("key: APP-3").unwrap()];
    assert!(
        app2.contains("type: implements\n    target: REQ-2"),
        "{app2}"
    );
    assert!(!app2.contains("REQ-1"), "{app2}");
    ws.trellis()
        .args([
            "resync",
            "implemented-by",
            "--direction",
            "from",
            "-f",
            "links",
        ])
        .assert()
        .code(0)
        .stdout(contains("Plan: 0 to add"));
}

#[test]
fn links_parameters_are_checked_and_redmine_types_must_read_back_as_written() {
    let ws = Workspace::new();
    let file = ws.write(
        "links.yaml",
        &format!(
            "{HEADER}kind: Tracker\nmetadata:\n  name: rm\nspec:\n  type: redmine\n  url: https://redmine.example.com\n  credentials: {{env: KEY}}\n---\n{HEADER}kind: Structure\nmetadata:\n  name: rs\nspec:\n  trackerRef: {{name: rm}}\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: l1\nspec:\n  structureRef: {{name: rs}}\n  type: links\n  links:\n    type: blocked\n    parentEnd: source\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: l2\nspec:\n  structureRef: {{name: roadmap}}\n  type: links\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: l3\nspec:\n  structureRef: {{name: roadmap}}\n  type: links\n  links:\n    type: blocks\n    parentEnd: target\n    parentFilter: type ==\n"
        ),
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart", "-f"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("links.yaml:25: spec.links.type: Redmine stores `blocked` as `blocks` with the ends swapped; use `type: blocks` and swap `parentEnd`"))
        .stderr(contains("links.yaml:34: spec.type: a links synchronizer needs spec.links"))
        .stderr(contains("links.yaml:46: spec.links.parentFilter: invalid query"))
        .stderr(contains("3 errors in the declarations; nothing was changed"));
}

// ------------------------------------------------------------------ agile

#[test]
fn agile_import_builds_the_backlog_and_export_sets_epics_and_re_ranks() {
    let ws = Workspace::new();
    ws.copy_example("agile");
    ws.trellis()
        .args(["apply", "-f", "agile"])
        .assert()
        .success();
    ws.trellis()
        .args(["show", "backlog"])
        .assert()
        .success()
        .stdout(contains(
            "SHOP-1 [Epic] Checkout (In Progress)\n  SHOP-3 [Story] Pay by card (In Progress)\n    SHOP-5 [Sub-task] Card form (Done)\n    SHOP-6 [Sub-task] Declined card message (To Do)\n  SHOP-4 [Story] Guest checkout (To Do)\nSHOP-2",
        ));
    // Without --after a moved row takes its place by rank (no re-rank to
    // write); put after SHOP-8, it is re-ranked there.
    ws.trellis()
        .args([
            "move", "backlog", "SHOP-4", "--under", "SHOP-2", "--after", "SHOP-8",
        ])
        .assert()
        .success();
    ws.trellis()
        .args(["move", "backlog", "SHOP-9", "--top", "--after", "SHOP-1"])
        .assert()
        .success();
    ws.trellis()
        .args(["export", "sprint-backlog", "-f", "agile"])
        .assert()
        .success()
        .stdout(contains("~ SHOP-4: epic SHOP-1 → SHOP-2"))
        .stdout(contains("~ rank SHOP-9 after SHOP-1"))
        .stdout(contains("~ rank SHOP-4 after SHOP-8"));
    let issues = ws.read("agile/issues.yaml");
    let shop4 = &issues[issues.find("key: SHOP-4").unwrap()..issues.find("key: SHOP-5").unwrap()];
    assert!(shop4.contains("epic: SHOP-2"), "{shop4}");
    // Nothing left to export, and an import keeps the order the export wrote.
    ws.trellis()
        .args([
            "resync",
            "sprint-backlog",
            "--direction",
            "from",
            "-f",
            "agile",
        ])
        .assert()
        .code(0)
        .stdout(contains("Plan: 0 to add"));
    ws.trellis().args(["plan", "-f", "agile"]).assert().code(0);
    // Out of every epic: clearing SHOP-7's epic needs approval.
    ws.trellis()
        .args(["move", "backlog", "SHOP-7", "--top"])
        .assert()
        .success();
    ws.trellis()
        .args(["export", "sprint-backlog", "-f", "agile"])
        .assert()
        .code(2)
        .stdout(contains("! SHOP-7: epic SHOP-2 → (none)"));
}

#[test]
fn agile_is_refused_on_redmine_and_needs_its_query() {
    let ws = Workspace::new();
    let file = ws.write(
        "agile.yaml",
        &format!(
            "{HEADER}kind: Tracker\nmetadata:\n  name: rm\nspec:\n  type: redmine\n  url: https://redmine.example.com\n  credentials: {{env: KEY}}\n---\n{HEADER}kind: Structure\nmetadata:\n  name: rs\nspec:\n  trackerRef: {{name: rm}}\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: a1\nspec:\n  structureRef: {{name: rs}}\n  type: agile\n  agile:\n    query: status = open\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: a2\nspec:\n  structureRef: {{name: roadmap}}\n  type: agile\n---\n{HEADER}kind: Synchronizer\nmetadata:\n  name: a3\nspec:\n  structureRef: {{name: roadmap}}\n  type: agile\n  agile:\n    query: type ==\n"
        ),
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart", "-f"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains(
            "agile.yaml:23: spec.type: Redmine has no epics and no rank",
        ))
        .stderr(contains(
            "agile.yaml:33: spec.type: an agile synchronizer needs spec.agile",
        ))
        .stderr(contains("agile.yaml:43: spec.agile.query: invalid query"))
        .stderr(contains(
            "3 errors in the declarations; nothing was changed",
        ));
}

//! What a reviewer reads: snapshots (insta) of the text, markdown and JSON
//! renderings of a plan, of a large plan split into comments, and of saved
//! plans refused as stale.

mod common;

use assert_cmd::Command;
use common::Workspace;

/// The quickstart applied once, with epic PLAT-2 then marked Done: the next
/// plan removes its rows.
struct Review(Workspace);

impl Review {
    fn new() -> Review {
        let workspace = Workspace::new();
        workspace.apply();
        workspace.edit(
            "quickstart/issues.yaml",
            "summary: Observability with OpenTelemetry\n    type: Epic\n    status: In Progress",
            "summary: Observability with OpenTelemetry\n    type: Epic\n    status: Done",
        );
        Review(workspace)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.0.trellis().args(args).output().unwrap()
    }

    fn edit(&self, from: &str, to: &str) {
        self.0.edit("quickstart/issues.yaml", from, to);
    }
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn text_plan() {
    let review = Review::new();
    let out = review.run(&["plan", "-f", "quickstart"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn markdown_plan() {
    let review = Review::new();
    let out = review.run(&["plan", "-f", "quickstart", "-o", "markdown"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn json_plan() {
    let review = Review::new();
    let out = review.run(&["plan", "-f", "quickstart", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn a_saved_plan_applies_exactly() {
    let review = Review::new();
    assert_eq!(
        review
            .run(&["plan", "-f", "quickstart", "--out", "plan.json"])
            .status
            .code(),
        Some(1)
    );
    let out = review.run(&["apply", "plan.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("applied: default/roadmap is at version 2\n"));
    // Applied: the same plan is now stale (the structure moved on).
    let again = review.run(&["apply", "plan.json"]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn a_saved_plan_is_refused_when_the_structure_changed() {
    let review = Review::new();
    review.run(&["plan", "-f", "quickstart", "--out", "plan.json"]);
    review.run(&["move", "roadmap", "PLAT-9", "--under", "PLAT-4"]);
    let out = review.run(&["apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out));
}

#[test]
fn a_saved_plan_is_refused_when_the_tracker_changed() {
    let review = Review::new();
    review.run(&["plan", "-f", "quickstart", "--out", "plan.json"]);
    review.edit(
        "summary: SLO dashboards",
        "summary: SLO dashboards (edited)",
    );
    let out = review.run(&["apply", "plan.json"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out));
}

#[test]
fn a_large_plan_splits_into_comments_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut issues = String::from("issues:\n");
    for epic in 1..=40 {
        issues.push_str(&format!(
            "  - key: BIG-{epic}\n    summary: Epic {epic}\n    type: Epic\n    status: Open\n"
        ));
    }
    for story in 41..=2400 {
        let epic = story % 40 + 1;
        issues.push_str(&format!(
            "  - key: BIG-{story}\n    summary: Story {story} with a summary long enough to make the outline wide\n    type: Story\n    status: Open\n    parent: BIG-{epic}\n"
        ));
    }
    std::fs::write(dir.path().join("issues.yaml"), issues).unwrap();
    std::fs::write(
        dir.path().join("trellis.yaml"),
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {name: big}\nspec: {type: local, local: {path: issues.yaml}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {name: big}\nspec: {trackerRef: {name: big}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {name: epics}\nspec: {structureRef: {name: big}, type: filter, filter: {query: type = Epic}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {name: stories}\nspec: {structureRef: {name: big}, type: subtasks}\n",
    )
    .unwrap();
    let out = Command::cargo_bin("trellis")
        .unwrap()
        .current_dir(dir.path())
        .env("TRELLIS_STATE", dir.path().join("state.db"))
        .args([
            "plan",
            "-f",
            "trellis.yaml",
            "-o",
            "markdown",
            "--comment-dir",
            "comments",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut shape = String::new();
    let mut diff_lines = 0;
    for name in stdout(&out).lines() {
        let comment = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(
            comment.chars().count() < 60_000,
            "{name} has {} characters",
            comment.chars().count()
        );
        assert_eq!(
            comment.matches("```").count() % 2,
            0,
            "{name} closes its code blocks"
        );
        diff_lines += comment
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count();
        let headings: Vec<&str> = comment
            .lines()
            .filter(|l| l.starts_with("<!--") || l.starts_with('#') || l.starts_with("<details>"))
            .collect();
        shape.push_str(&format!("{name}:\n  {}\n", headings.join("\n  ")));
    }
    assert_eq!(
        diff_lines, 2400,
        "every added row is in one of the comments"
    );
    insta::assert_snapshot!(shape);
}

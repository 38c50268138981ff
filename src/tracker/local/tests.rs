use super::*;

const FILE: &str = "issues:\n  - key: P-1\n    summary: One\n    type: Epic\n    status: Open\n  - key: P-2\n    summary: Two\n    type: Story\n    status: Done\n    parent: P-1\n    updated: 2026-11-01T10:00:00Z\n";

fn tracker(content: &str) -> (tempfile::TempDir, LocalTracker) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issues.yaml");
    std::fs::write(&path, content).unwrap();
    (dir, LocalTracker::new(path))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn reads_issues_and_answers_queries_from_the_same_read() {
    let (_dir, t) = tracker(FILE);
    let snapshot = block_on(t.snapshot()).unwrap();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot.get("P-2").unwrap().parent.as_deref(), Some("P-1"));
    let done = block_on(t.search("status = done")).unwrap();
    assert_eq!(done, HashSet::from(["P-2".to_string()]));
}

#[test]
fn a_write_sets_the_parent_bumps_updated_and_leaves_no_temporary_file() {
    let (dir, t) = tracker(FILE);
    block_on(t.snapshot()).unwrap();
    let ops = [TrackerOp::ClearParent {
        issue: "P-2".into(),
        from: "P-1".into(),
    }];
    block_on(t.apply(&ops)).unwrap();
    let after = block_on(LocalTracker::new(&t.path).snapshot()).unwrap();
    let p2 = after.get("P-2").unwrap();
    assert_eq!(p2.parent, None);
    assert!(p2.updated.unwrap() > "2026-11-02T00:00:00Z".parse().unwrap());
    assert_eq!(
        after.get("P-1").unwrap().updated,
        None,
        "untouched issues keep their time"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Applying the same operation again changes nothing (idempotent).
    let before = std::fs::read_to_string(&t.path).unwrap();
    block_on(t.apply(&ops)).unwrap();
    assert_eq!(
        after.digest(),
        block_on(LocalTracker::new(&t.path).snapshot())
            .unwrap()
            .digest()
    );
    assert!(!before.is_empty());
}

#[test]
fn refuses_to_overwrite_a_file_that_changed_since_it_was_read() {
    let (_dir, t) = tracker(FILE);
    block_on(t.snapshot()).unwrap();
    let edited = FILE.replace("summary: One", "summary: Edited by hand");
    std::fs::write(&t.path, &edited).unwrap();
    let ops = [TrackerOp::ClearParent {
        issue: "P-2".into(),
        from: "P-1".into(),
    }];
    let err = block_on(t.apply(&ops)).unwrap_err();
    assert!(
        matches!(err, TrackerError::ChangedSinceRead { .. }),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&t.path).unwrap(),
        edited,
        "the hand edit survives"
    );
}

#[test]
fn an_operation_on_a_missing_issue_writes_nothing() {
    let (_dir, t) = tracker(FILE);
    block_on(t.snapshot()).unwrap();
    let ops = [
        TrackerOp::ClearParent {
            issue: "P-2".into(),
            from: "P-1".into(),
        },
        TrackerOp::SetParent {
            issue: "P-9".into(),
            from: None,
            to: "P-1".into(),
        },
    ];
    let err = block_on(t.apply(&ops)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("P-9: P-9: parent (none) → P-1: the issue is not in the file"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&t.path).unwrap(), FILE);
}

#[test]
fn bad_files_are_reported_with_their_line() {
    let (_dir, t) =
        tracker(&FILE.replace("    status: Done\n", "    status: Done\n    colour: red\n"));
    let err = block_on(t.snapshot()).unwrap_err().to_string();
    assert!(
        err.contains("issues.yaml: line 10: unknown field `colour`"),
        "{err}"
    );
    let (_dir, t) = tracker(&FILE.replace("key: P-2", "key: P-1"));
    let err = block_on(t.snapshot()).unwrap_err().to_string();
    assert!(
        err.contains("issues.yaml: line 6: issue P-1 is listed twice"),
        "{err}"
    );
    let (_dir, t) =
        tracker(&FILE.replace("    status: Done\n", "    status: Done\n    status: Open\n"));
    let err = block_on(t.snapshot()).unwrap_err().to_string();
    assert!(
        err.contains("issues.yaml: line 10: `status` is given twice in the same mapping; keep one"),
        "{err}"
    );
    let (dir, t) = tracker("");
    let mut latin1 = FILE.as_bytes().to_vec();
    latin1.splice(25..25, [0xe9]);
    std::fs::write(dir.path().join("issues.yaml"), latin1).unwrap();
    let err = block_on(t.snapshot()).unwrap_err().to_string();
    assert!(err.contains("issues.yaml: line 3: byte"), "{err}");
    assert!(err.contains("is not UTF-8 text"), "{err}");
}

#[test]
fn status_changes_follow_the_declared_workflow_and_keep_it_in_the_file() {
    let file = format!("workflow:\n  Open: [In Progress]\n  In Progress: [Done]\n{FILE}");
    let (_dir, t) = tracker(&file);
    block_on(t.snapshot()).unwrap();
    let workflow = block_on(t.workflow()).unwrap().expect("declared");
    assert!(workflow.allows("Open", "In Progress"));
    assert!(!workflow.allows("Done", "Open"));
    let status = |issue: &str, from: &str, to: &str| TrackerOp::SetStatus {
        issue: issue.into(),
        from: from.into(),
        to: to.into(),
    };
    let error = block_on(t.apply(&[
        status("P-1", "Open", "In Progress"),
        status("P-2", "Done", "Open"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("P-2: P-2: status Done → Open: the workflow in the issues file does not allow Done → Open"),
        "{error}"
    );
    // The allowed change was made, and the workflow is still in the file.
    let after = LocalTracker::new(&t.path);
    let snapshot = block_on(after.snapshot()).unwrap();
    assert_eq!(snapshot.get("P-1").unwrap().status, "In Progress");
    assert_eq!(snapshot.get("P-2").unwrap().status, "Done");
    assert_eq!(block_on(after.workflow()).unwrap(), Some(workflow));
}

#[test]
fn rank_and_epic_writes_keep_byte_order_and_bump_only_what_changed() {
    let file = "issues:\n  - key: P-1\n    summary: One\n    type: Epic\n    status: Open\n    rank: a\n  - key: P-2\n    summary: Two\n    type: Story\n    status: Open\n    rank: b\n  - key: P-3\n    summary: Three\n    type: Story\n    status: Open\n    epic: P-1\n    rank: c\n";
    let (_dir, t) = tracker(file);
    block_on(t.snapshot()).unwrap();
    let ops = [
        TrackerOp::SetEpic {
            issue: "P-2".into(),
            from: None,
            to: Some("P-1".into()),
        },
        TrackerOp::Rank {
            issues: vec!["P-3".into(), "P-2".into()],
            anchor: crate::model::RankAnchor::Before("P-1".into()),
            previous: vec![Some("P-2".into()), Some("P-1".into())],
        },
    ];
    block_on(t.apply(&ops)).unwrap();
    let after = block_on(LocalTracker::new(&t.path).snapshot()).unwrap();
    let rank = |k: &str| after.get(k).unwrap().rank.clone().unwrap();
    assert!(rank("P-3") < rank("P-2") && rank("P-2") < rank("P-1"));
    assert_eq!(rank("P-1"), "a", "the anchor keeps its rank");
    assert_eq!(after.get("P-2").unwrap().epic.as_deref(), Some("P-1"));
    assert!(after.get("P-1").unwrap().updated.is_none());
    assert!(after.get("P-3").unwrap().updated.is_some());
    // The same operations again find everything in place: nothing changes.
    block_on(t.apply(&ops)).unwrap();
    let again = block_on(LocalTracker::new(&t.path).snapshot()).unwrap();
    assert_eq!(again.digest(), after.digest());
    // An anchor that is gone is refused before anything is written.
    let gone = [TrackerOp::Rank {
        issues: vec!["P-1".into()],
        anchor: crate::model::RankAnchor::After("P-9".into()),
        previous: vec![None],
    }];
    let err = block_on(t.apply(&gone)).unwrap_err();
    assert!(err.to_string().contains("P-9"), "{err}");
}

#[test]
fn a_read_only_file_is_refused_and_a_writable_one_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, t) = tracker(FILE);
    let ops = [TrackerOp::ClearParent {
        issue: "P-2".into(),
        from: "P-1".into(),
    }];
    std::fs::set_permissions(&t.path, std::fs::Permissions::from_mode(0o444)).unwrap();
    block_on(t.snapshot()).unwrap();
    let err = block_on(t.apply(&ops)).unwrap_err().to_string();
    assert!(err.contains("issues.yaml"), "{err}");
    assert!(err.contains("read-only"), "{err}");
    assert!(t.writable().unwrap_err().contains("read-only"));
    assert_eq!(std::fs::read_to_string(&t.path).unwrap(), FILE);
    let mode = std::fs::metadata(&t.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o444, "the file is still read-only");

    std::fs::set_permissions(&t.path, std::fs::Permissions::from_mode(0o640)).unwrap();
    block_on(t.apply(&ops)).unwrap();
    let mode = std::fs::metadata(&t.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "rewriting keeps the mode");
    assert!(t.writable().is_ok());
}

use super::*;
use crate::model::Position;
use crate::store::{Change, StoredStructure};

const S: &str = "default/roadmap";

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("trellis.db")).unwrap();
    (dir, store)
}

fn at(under: Option<RowId>, after: Option<RowId>) -> Position {
    Position { under, after }
}

fn add(id: RowId, item: RowItem, added_by: Option<&str>, at: Position) -> StructureOp {
    let row = Row {
        id,
        item,
        added_by: added_by.map(str::to_owned),
    };
    StructureOp::Add { row, at }
}

fn issue(key: &str) -> RowItem {
    RowItem::Issue(key.to_owned())
}

/// Applies `op` to `forest` and records it, as the planner does.
fn step(forest: &mut Forest, ops: &mut Vec<StructureOp>, op: StructureOp) {
    op.apply(forest).unwrap();
    ops.push(op);
}

fn move_op(forest: &Forest, row: RowId, to: Position) -> StructureOp {
    let item = forest.row(row).unwrap().item.clone();
    StructureOp::Move {
        row,
        item,
        from: forest.position(row).unwrap(),
        to,
    }
}

fn remove_op(forest: &Forest, row: RowId) -> StructureOp {
    let item = forest.row(row).unwrap().item.clone();
    StructureOp::Remove {
        row,
        item,
        from: forest.position(row).unwrap(),
    }
}

fn baseline(synchronizer: &str, issue: &str) -> Baseline {
    Baseline {
        synchronizer: synchronizer.to_owned(),
        issue: issue.to_owned(),
        row_parent: Some("Inbox/".to_owned()),
        tracker_parent: None,
    }
}

fn job(synchronizer: Option<&str>, resync: Option<&str>, state: JobState) -> JobRecord {
    JobRecord {
        id: 0,
        structure: S.to_owned(),
        synchronizer: synchronizer.map(str::to_owned),
        resync: resync.map(str::to_owned),
        direction: Some("into".to_owned()),
        author: "alice".to_owned(),
        plan_hash: Some("abc123".to_owned()),
        state,
        summary: "1 to add".to_owned(),
        error: (state == JobState::Failed).then(|| "tracker unreachable".to_owned()),
        started: "2025-03-01T10:00:00.123456789Z".parse().unwrap(),
        finished: "2025-03-01T10:00:02Z".parse().unwrap(),
    }
}

/// Commits `ops` (already applied to `forest`) as one change.
fn commit(
    store: &mut SqliteStore,
    base_version: u64,
    forest: &Forest,
    ops: &[StructureOp],
    baselines: &[Baseline],
    jobs: &[JobRecord],
) -> Result<u64, StoreError> {
    let changes = [Change {
        cause: "manual move".to_owned(),
        ops,
    }];
    store.commit(&Commit {
        structure: S,
        base_version,
        forest,
        changes: &changes,
        author: "alice",
        jobs,
        baselines,
    })
}

fn assert_same(stored: &Forest, expected: &Forest) {
    assert_eq!(stored.walk(), expected.walk());
    assert_eq!(stored.len(), expected.len());
    for (id, _) in expected.walk() {
        assert_eq!(stored.row(id), expected.row(id), "row {id}");
        assert_eq!(stored.parent(id), expected.parent(id), "parent of {id}");
    }
    assert_eq!(stored.next_id(), expected.next_id());
}

/// A committed structure: Inbox/ [A-1, A-2], A-3 [A-4].
fn seeded(store: &mut SqliteStore) -> StoredStructure {
    let (mut forest, mut ops) = (Forest::new(), Vec::new());
    step(
        &mut forest,
        &mut ops,
        add(1, RowItem::Folder("Inbox".into()), None, at(None, None)),
    );
    step(
        &mut forest,
        &mut ops,
        add(2, issue("A-1"), Some("default/f"), at(Some(1), None)),
    );
    step(
        &mut forest,
        &mut ops,
        add(3, issue("A-2"), Some("default/f"), at(Some(1), Some(2))),
    );
    step(
        &mut forest,
        &mut ops,
        add(4, issue("A-3"), None, at(None, Some(1))),
    );
    step(
        &mut forest,
        &mut ops,
        add(5, issue("A-4"), Some("default/s"), at(Some(4), None)),
    );
    commit(
        store,
        0,
        &forest,
        &ops,
        &[baseline("default/f", "A-1")],
        &[],
    )
    .unwrap();
    store.structure(S).unwrap()
}

#[test]
fn a_structure_reads_back_exactly_as_committed() {
    let (_dir, mut store) = store();
    assert_eq!(store.structure(S).unwrap().version, 0);

    let (mut forest, mut ops) = (Forest::new(), Vec::new());
    step(
        &mut forest,
        &mut ops,
        add(1, RowItem::Folder("Inbox".into()), None, at(None, None)),
    );
    step(
        &mut forest,
        &mut ops,
        add(2, issue("A-1"), Some("default/f"), at(Some(1), None)),
    );
    step(
        &mut forest,
        &mut ops,
        add(3, issue("A-2"), Some("default/f"), at(Some(1), Some(2))),
    );
    step(
        &mut forest,
        &mut ops,
        add(4, issue("A-3"), None, at(None, Some(1))),
    );
    step(
        &mut forest,
        &mut ops,
        add(5, issue("A-4"), Some("default/s"), at(Some(4), None)),
    );
    step(
        &mut forest,
        &mut ops,
        add(6, issue("A-5"), None, at(Some(4), Some(5))),
    );
    // Between parents: A-2 leaves Inbox/ for A-3, first child.
    let op = move_op(&forest, 3, at(Some(4), None));
    step(&mut forest, &mut ops, op);
    // Reorder: A-3 goes before Inbox/ at the top level.
    let op = move_op(&forest, 4, at(None, None));
    step(&mut forest, &mut ops, op);
    assert_eq!(commit(&mut store, 0, &forest, &ops, &[], &[]).unwrap(), 1);
    let stored = store.structure(S).unwrap();
    assert_eq!(stored.version, 1);
    assert_same(&stored.forest, &forest);

    // Second commit on the stored content: move a stored row across parents
    // and remove the row with the highest id.
    let (mut forest, mut ops) = (stored.forest, Vec::new());
    let op = move_op(&forest, 5, at(Some(1), Some(2)));
    step(&mut forest, &mut ops, op);
    let op = remove_op(&forest, 6);
    step(&mut forest, &mut ops, op);
    assert_eq!(commit(&mut store, 1, &forest, &ops, &[], &[]).unwrap(), 2);
    let stored = store.structure(S).unwrap();
    assert_eq!(stored.version, 2);
    assert_same(&stored.forest, &forest);
    assert_eq!(stored.forest.next_id(), 7, "ids are never reused");
    assert_eq!(
        stored.forest.walk(),
        [(4, 0), (3, 1), (1, 0), (2, 1), (5, 1)]
    );
}

#[test]
fn a_stale_base_version_is_a_conflict_and_writes_nothing() {
    let (_dir, mut store) = store();
    let before = seeded(&mut store);
    store
        .record_jobs(&[job(Some("default/f"), None, JobState::Succeeded)])
        .unwrap();
    let (journal, jobs) = (store.journal(S).unwrap(), store.last_jobs().unwrap());

    let (mut forest, mut ops) = (before.forest.clone(), Vec::new());
    let op = remove_op(&forest, 3);
    step(&mut forest, &mut ops, op);
    let stale = [baseline("default/f", "A-9")];
    let late = [job(Some("default/f"), None, JobState::Failed)];
    let err = commit(&mut store, 0, &forest, &ops, &stale, &late).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );

    let after = store.structure(S).unwrap();
    assert_eq!(after.version, 1);
    assert_same(&after.forest, &before.forest);
    assert_eq!(store.journal(S).unwrap(), journal);
    assert_eq!(store.last_jobs().unwrap(), jobs);
    assert_eq!(
        store.baselines("default/f").unwrap(),
        [baseline("default/f", "A-1")]
    );
}

#[test]
fn the_journal_records_each_operation_with_its_version_author_and_cause() {
    let (_dir, mut store) = store();
    let start = jiff::Timestamp::now();
    let mut forest = Forest::new();
    let (mut declared, mut synced) = (Vec::new(), Vec::new());
    step(
        &mut forest,
        &mut declared,
        add(1, RowItem::Folder("Inbox".into()), None, at(None, None)),
    );
    step(
        &mut forest,
        &mut synced,
        add(2, issue("A-1"), Some("default/f"), at(Some(1), None)),
    );
    let op = move_op(&forest, 2, at(None, Some(1)));
    step(&mut forest, &mut synced, op);
    let changes = [
        Change {
            cause: "declared rows".to_owned(),
            ops: &declared,
        },
        Change {
            cause: "synchronizer default/f (into)".to_owned(),
            ops: &synced,
        },
        Change {
            cause: "nothing to do".to_owned(),
            ops: &[],
        },
    ];
    let c = Commit {
        structure: S,
        base_version: 0,
        forest: &forest,
        changes: &changes,
        author: "bob",
        jobs: &[],
        baselines: &[],
    };
    store.commit(&c).unwrap();
    let op = remove_op(&forest, 2);
    step(&mut forest, &mut synced, op);
    commit(&mut store, 1, &forest, &synced[2..], &[], &[]).unwrap();

    let journal = store.journal(S).unwrap();
    let seen: Vec<_> = journal
        .iter()
        .map(|e| (e.version, e.author.as_str(), e.cause.as_str(), &e.change))
        .collect();
    let cause = "synchronizer default/f (into)";
    assert_eq!(
        seen,
        [
            (1, "bob", "declared rows", &declared[0]),
            (1, "bob", cause, &synced[0]),
            (1, "bob", cause, &synced[1]),
            (2, "alice", "manual move", &synced[2]),
        ]
    );
    assert!(
        journal
            .iter()
            .all(|e| e.time >= start && e.time <= jiff::Timestamp::now())
    );
    assert!(store.journal("default/other").unwrap().is_empty());
}

#[test]
fn a_commit_that_fails_midway_leaves_the_previous_state() {
    let (_dir, mut store) = store();
    let before = seeded(&mut store);
    let journal = store.journal(S).unwrap();

    let (mut forest, mut ops) = (before.forest.clone(), Vec::new());
    step(
        &mut forest,
        &mut ops,
        add(6, issue("A-6"), None, at(Some(1), Some(3))),
    );
    let op = move_op(&forest, 5, at(None, None));
    step(&mut forest, &mut ops, op);
    let op = remove_op(&forest, 2);
    step(&mut forest, &mut ops, op);
    // The same (synchronizer, issue) twice: the last INSERT of the commit fails,
    // after the rows, the journal and the baseline deletion were written.
    let twice = [baseline("default/f", "A-6"), baseline("default/f", "A-6")];
    let jobs = [job(Some("default/f"), None, JobState::Succeeded)];
    let err = commit(&mut store, 1, &forest, &ops, &twice, &jobs).unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");

    let after = store.structure(S).unwrap();
    assert_eq!(after.version, 1);
    assert_same(&after.forest, &before.forest);
    assert_eq!(store.journal(S).unwrap(), journal);
    assert_eq!(
        store.baselines("default/f").unwrap(),
        [baseline("default/f", "A-1")]
    );
    assert!(store.last_jobs().unwrap().is_empty());

    // Nothing half-written is in the way of the corrected commit.
    let once = [baseline("default/f", "A-6")];
    assert_eq!(
        commit(&mut store, 1, &forest, &ops, &once, &jobs).unwrap(),
        2
    );
    assert_same(&store.structure(S).unwrap().forest, &forest);
}

#[test]
fn each_commit_replaces_the_baselines_of_the_synchronizers_that_ran() {
    let (_dir, mut store) = store();
    let forest = Forest::new();
    let first = [
        baseline("default/f", "A-1"),
        baseline("default/f", "A-2"),
        baseline("default/s", "B-1"),
    ];
    commit(&mut store, 0, &forest, &[], &first, &[]).unwrap();
    assert_eq!(store.baselines("default/f").unwrap(), first[..2]);

    let mut moved = baseline("default/f", "A-3");
    moved.tracker_parent = Some("A-1".to_owned());
    commit(
        &mut store,
        0,
        &forest,
        &[],
        std::slice::from_ref(&moved),
        &[],
    )
    .unwrap();
    assert_eq!(store.baselines("default/f").unwrap(), [moved]);
    assert_eq!(
        store.baselines("default/s").unwrap(),
        [baseline("default/s", "B-1")]
    );
    assert!(store.baselines("default/none").unwrap().is_empty());
}

#[test]
fn last_jobs_and_resyncs_count_what_actually_succeeded() {
    let (_dir, mut store) = store();
    store
        .record_jobs(&[
            job(Some("default/f"), Some("default/r1"), JobState::Failed),
            job(Some("default/s"), None, JobState::Succeeded),
        ])
        .unwrap();
    assert!(
        !store.resync_done("default/r1").unwrap(),
        "a failed resync is not done"
    );

    let later = [
        job(Some("default/f"), Some("default/r1"), JobState::Succeeded),
        job(None, None, JobState::Succeeded),
    ];
    commit(&mut store, 0, &Forest::new(), &[], &[], &later).unwrap();
    assert!(store.resync_done("default/r1").unwrap());
    assert!(!store.resync_done("default/r2").unwrap());

    let last = store.last_jobs().unwrap();
    let ids: Vec<u64> = last.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        [3, 2],
        "the newest of each synchronizer, manual edits left out"
    );
    let stripped: Vec<JobRecord> = last.into_iter().map(|j| JobRecord { id: 0, ..j }).collect();
    assert_eq!(
        stripped,
        [
            later[0].clone(),
            job(Some("default/s"), None, JobState::Succeeded)
        ]
    );
}

#[test]
fn remember_replaces_a_resource_by_kind_and_id() {
    let (_dir, mut store) = store();
    let resource = |kind: &str, id: &str, body: &str| StoredResource {
        kind: kind.to_owned(),
        id: id.to_owned(),
        body: body.to_owned(),
    };
    store
        .remember(&[
            resource("Structure", "default/a", "{}"),
            resource("Synchronizer", "default/a", "{}"),
        ])
        .unwrap();
    store
        .remember(&[resource("Structure", "default/a", r#"{"v":2}"#)])
        .unwrap();
    assert_eq!(
        store.remembered().unwrap(),
        [
            resource("Structure", "default/a", r#"{"v":2}"#),
            resource("Synchronizer", "default/a", "{}")
        ]
    );
}

#[test]
fn read_only_does_not_create_a_missing_store_and_reads_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("trellis.db");
    let empty = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(empty.structure(S).unwrap().version, 0);
    assert!(empty.remembered().unwrap().is_empty());
    assert!(!path.exists() && !path.parent().unwrap().exists());

    let mut writer = SqliteStore::open(&path).unwrap();
    let written = seeded(&mut writer);
    // While the writer is still open (status during an apply) and after.
    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_same(&reader.structure(S).unwrap().forest, &written.forest);
    drop((reader, writer));
    let mut reader = SqliteStore::open_read_only(&path).unwrap();
    let read = reader.structure(S).unwrap();
    assert_eq!(read.version, 1);
    assert_same(&read.forest, &written.forest);
    assert_eq!(reader.journal(S).unwrap().len(), 5);
    assert!(
        reader
            .record_jobs(&[job(None, None, JobState::Succeeded)])
            .is_err(),
        "read-only writes nothing"
    );
}

#[test]
fn reopening_keeps_the_data_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trellis.db");
    let written = seeded(&mut SqliteStore::open(&path).unwrap());
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.query_version().unwrap(), MIGRATIONS.len());
    assert_same(&again.structure(S).unwrap().forest, &written.forest);
    drop(again);

    let newer = MIGRATIONS.len() + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let err = SqliteStore::open(&path)
        .err()
        .expect("a newer schema is refused");
    assert!(err.to_string().contains("upgrade Trellis"), "{err}");
    assert!(SqliteStore::open_read_only(&path).is_err());
}

use super::*;
use crate::model::Position;
use crate::plan::{StructureOp, TrackerOp};
use crate::store::{Change, Recorded, StoredStructure};

const S: &str = "default/roadmap";
const F: &str = "default/filter";

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("trellis.db")).unwrap();
    (dir, store)
}

/// Operations applied one by one to a working forest, as the engine does.
struct Edit {
    forest: Forest,
    ops: Vec<StructureOp>,
}

impl Edit {
    fn on(forest: &Forest) -> Edit {
        Edit {
            forest: forest.clone(),
            ops: Vec::new(),
        }
    }

    fn apply(&mut self, op: StructureOp) -> &mut Edit {
        op.apply(&mut self.forest).unwrap();
        self.ops.push(op);
        self
    }

    /// Adds a row; an item ending in `/` is a folder.
    fn add(
        &mut self,
        id: RowId,
        item: &str,
        by: Option<&str>,
        under: Option<RowId>,
        after: Option<RowId>,
    ) -> &mut Edit {
        let item = match item.strip_suffix('/') {
            Some(name) => RowItem::Folder(name.to_owned()),
            None => RowItem::Issue(item.to_owned()),
        };
        let row = Row {
            id,
            item,
            added_by: by.map(str::to_owned),
        };
        self.apply(StructureOp::Add {
            row,
            at: Position { under, after },
        })
    }

    fn mv(&mut self, row: RowId, under: Option<RowId>, after: Option<RowId>) -> &mut Edit {
        let (item, from) = self.current(row);
        self.apply(StructureOp::Move {
            row,
            item,
            from,
            to: Position { under, after },
        })
    }

    fn rm(&mut self, row: RowId) -> &mut Edit {
        let (item, from) = self.current(row);
        self.apply(StructureOp::Remove { row, item, from })
    }

    fn current(&self, row: RowId) -> (RowItem, Position) {
        (
            self.forest.row(row).unwrap().item.clone(),
            self.forest.position(row).unwrap(),
        )
    }
}

/// Inbox/ [A-1, A-2], A-3 [A-4], added to an empty structure.
fn seed() -> Edit {
    let mut e = Edit::on(&Forest::new());
    e.add(1, "Inbox/", None, None, None)
        .add(2, "A-1", Some(F), Some(1), None)
        .add(3, "A-2", Some(F), Some(1), Some(2))
        .add(4, "A-3", None, None, Some(1))
        .add(5, "A-4", Some("default/subtasks"), Some(4), None);
    e
}

fn seeded(store: &mut SqliteStore) -> StoredStructure {
    commit(store, 0, &seed(), &[baseline(F, "A-1")], &[]).unwrap();
    store.structure(S).unwrap()
}

fn commit(
    store: &mut SqliteStore,
    base_version: u64,
    edit: &Edit,
    baselines: &[Baseline],
    jobs: &[JobRecord],
) -> Result<u64, StoreError> {
    let changes = [Change {
        cause: "manual move".to_owned(),
        author: "alice".to_owned(),
        ops: &edit.ops,
        tracker_ops: &[],
        synchronizer: None,
    }];
    // The synchronizers that ran are the ones the baselines name.
    let mut synchronizers: Vec<String> = baselines.iter().map(|b| b.synchronizer.clone()).collect();
    synchronizers.dedup();
    store.commit(&Commit {
        structure: S,
        base_version,
        forest: Some(&edit.forest),
        changes: &changes,
        jobs,
        synchronizers: &synchronizers,
        baselines,
        pass: None,
        read: None,
        settles: None,
    })
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
        direction: Some(super::JobDirection::Into),
        author: "alice".to_owned(),
        plan_hash: Some("abc123".to_owned()),
        state,
        summary: "1 to add".to_owned(),
        error: (state == JobState::Failed).then(|| "tracker unreachable".to_owned()),
        started: "2025-03-01T10:00:00.123456789Z".parse().unwrap(),
        finished: "2025-03-01T10:00:02Z".parse().unwrap(),
    }
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

#[test]
fn a_structure_reads_back_exactly_as_committed() {
    let (_dir, mut store) = store();
    assert_eq!(store.structure(S).unwrap().version, 0);

    let mut e = seed();
    e.add(6, "A-5", None, Some(4), Some(5))
        .mv(3, Some(4), None) // between parents: A-2 leaves Inbox/ for A-3
        .mv(4, None, None); // reorder: A-3 goes before Inbox/
    assert_eq!(commit(&mut store, 0, &e, &[], &[]).unwrap(), 1);
    let stored = store.structure(S).unwrap();
    assert_eq!(stored.version, 1);
    assert_same(&stored.forest, &e.forest);

    // On the stored content: reorder stored rows, move one across parents
    // and remove the row with the highest id.
    let mut e = Edit::on(&stored.forest);
    e.mv(4, None, Some(1)).mv(5, Some(1), Some(2)).rm(6);
    assert_eq!(commit(&mut store, 1, &e, &[], &[]).unwrap(), 2);
    let stored = store.structure(S).unwrap();
    assert_eq!(stored.version, 2);
    assert_same(&stored.forest, &e.forest);
    assert_eq!(
        stored.forest.walk(),
        [(1, 0), (2, 1), (5, 1), (4, 0), (3, 1)]
    );
    assert_eq!(stored.forest.next_id(), 7, "row ids are never reused");
}

#[test]
fn a_stale_base_version_is_a_conflict_and_writes_nothing() {
    let (_dir, mut store) = store();
    let before = seeded(&mut store);
    store
        .record_jobs(&[job(Some(F), None, JobState::Succeeded)])
        .unwrap();
    let (journal, jobs) = (store.journal(S).unwrap(), store.last_jobs().unwrap());

    let mut e = Edit::on(&before.forest);
    e.rm(3);
    let late = [job(Some(F), None, JobState::Failed)];
    let err = commit(&mut store, 0, &e, &[baseline(F, "A-9")], &late).unwrap_err();
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
    assert_eq!(store.baselines(F).unwrap(), [baseline(F, "A-1")]);
}

#[test]
fn the_journal_records_each_operation_with_its_version_author_and_cause() {
    let (_dir, mut store) = store();
    let start = jiff::Timestamp::now();
    let mut e = Edit::on(&Forest::new());
    e.add(1, "Inbox/", None, None, None)
        .add(2, "A-1", Some(F), Some(1), None)
        .mv(2, None, Some(1));
    let cause = "synchronizer default/filter (into)";
    let status = TrackerOp::SetStatus {
        issue: "A-1".into(),
        from: "To Do".into(),
        to: "Done".into(),
    };
    let changes = [
        Change {
            cause: "declared rows".to_owned(),
            author: "bob".to_owned(),
            ops: &e.ops[..1],
            tracker_ops: &[],
            synchronizer: None,
        },
        Change {
            cause: cause.to_owned(),
            author: "default/filter as bob".to_owned(),
            ops: &e.ops[1..],
            tracker_ops: &[],
            synchronizer: None,
        },
        Change {
            cause: "nothing to do".to_owned(),
            author: "bob".to_owned(),
            ops: &[],
            tracker_ops: &[],
            synchronizer: None,
        },
    ];
    let first = Commit {
        structure: S,
        base_version: 0,
        forest: Some(&e.forest),
        changes: &changes,
        jobs: &[],
        synchronizers: &[],
        baselines: &[],
        pass: None,
        read: None,
        settles: None,
    };
    store.commit(&first).unwrap();
    let mut removal = Edit::on(&e.forest);
    removal.rm(2);
    commit(&mut store, 1, &removal, &[], &[]).unwrap();
    // A change to an issue alone keeps the version and follows its entries.
    let rollup = [Change {
        cause: "synchronizer default/rollup (statusRollup, from)".to_owned(),
        author: "default/rollup as bob".to_owned(),
        ops: &[],
        tracker_ops: std::slice::from_ref(&status),
        synchronizer: None,
    }];
    let version = store
        .commit(&Commit {
            structure: S,
            base_version: 2,
            forest: Some(&removal.forest),
            changes: &rollup,
            jobs: &[],
            synchronizers: &[],
            baselines: &[],
            pass: None,
            read: None,
            settles: None,
        })
        .unwrap();
    assert_eq!(version, 2);

    let journal = store.journal(S).unwrap();
    let seen: Vec<_> = journal
        .iter()
        .map(|j| {
            (
                j.version,
                j.author.as_str(),
                j.cause.as_str(),
                j.change.clone(),
            )
        })
        .collect();
    let op = |op: &StructureOp| Recorded::Structure(op.clone());
    assert_eq!(
        seen,
        [
            (1, "bob", "declared rows", op(&e.ops[0])),
            (1, "default/filter as bob", cause, op(&e.ops[1])),
            (1, "default/filter as bob", cause, op(&e.ops[2])),
            (2, "alice", "manual move", op(&removal.ops[0])),
            (
                2,
                "default/rollup as bob",
                rollup[0].cause.as_str(),
                Recorded::Tracker(status)
            ),
        ]
    );
    assert!(
        journal
            .iter()
            .all(|j| j.time >= start && j.time <= jiff::Timestamp::now())
    );
    assert!(store.journal("default/other").unwrap().is_empty());
}

#[test]
fn a_commit_that_fails_midway_leaves_the_previous_state() {
    let (_dir, mut store) = store();
    let before = seeded(&mut store);
    let journal = store.journal(S).unwrap();

    let mut e = Edit::on(&before.forest);
    e.add(6, "A-6", None, Some(1), Some(3))
        .mv(5, None, None)
        .rm(2);
    // The same (synchronizer, issue) twice: an INSERT near the end of the
    // commit fails, after rows, journal and the old baselines' deletion.
    let twice = [baseline(F, "A-6"), baseline(F, "A-6")];
    let jobs = [job(Some(F), None, JobState::Succeeded)];
    let err = commit(&mut store, 1, &e, &twice, &jobs).unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");

    let after = store.structure(S).unwrap();
    assert_eq!(after.version, 1);
    assert_same(&after.forest, &before.forest);
    assert_eq!(store.journal(S).unwrap(), journal);
    assert_eq!(store.baselines(F).unwrap(), [baseline(F, "A-1")]);
    assert!(store.last_jobs().unwrap().is_empty());

    // Nothing half-written stands in the way of the corrected commit.
    assert_eq!(commit(&mut store, 1, &e, &twice[..1], &jobs).unwrap(), 2);
    assert_same(&store.structure(S).unwrap().forest, &e.forest);
}

#[test]
fn each_commit_replaces_the_baselines_of_the_synchronizers_that_ran() {
    let (_dir, mut store) = store();
    let nothing = Edit::on(&Forest::new());
    let first = [
        baseline(F, "A-1"),
        baseline(F, "A-2"),
        baseline("default/subtasks", "B-1"),
    ];
    commit(&mut store, 0, &nothing, &first, &[]).unwrap();
    assert_eq!(store.baselines(F).unwrap(), first[..2]);

    let mut moved = baseline(F, "A-3");
    moved.tracker_parent = Some("A-1".to_owned());
    commit(&mut store, 0, &nothing, std::slice::from_ref(&moved), &[]).unwrap();
    assert_eq!(store.baselines(F).unwrap(), [moved]);
    assert_eq!(store.baselines("default/subtasks").unwrap(), first[2..]);
    assert!(store.baselines("default/none").unwrap().is_empty());

    // A synchronizer that ran and now has nothing to record loses its old set.
    store
        .commit(&Commit {
            structure: S,
            base_version: 0,
            forest: Some(&nothing.forest),
            changes: &[],
            jobs: &[],
            synchronizers: &[F.to_owned()],
            baselines: &[],
            pass: None,
            read: None,
            settles: None,
        })
        .unwrap();
    assert!(store.baselines(F).unwrap().is_empty());
    assert_eq!(store.baselines("default/subtasks").unwrap(), first[2..]);
}

#[test]
fn last_jobs_and_resyncs_count_what_actually_succeeded() {
    let (_dir, mut store) = store();
    let first = [
        job(Some(F), Some("default/r1"), JobState::Failed),
        job(Some("default/s"), None, JobState::Succeeded),
    ];
    store.record_jobs(&first).unwrap();
    assert!(
        !store.resync_done("default/r1").unwrap(),
        "a failed resync is not done"
    );

    let later = [
        job(Some(F), Some("default/r1"), JobState::Succeeded),
        job(None, None, JobState::Succeeded),
    ];
    commit(&mut store, 0, &Edit::on(&Forest::new()), &[], &later).unwrap();
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
    assert_eq!(stripped, [later[0].clone(), first[1].clone()]);
}

#[test]
fn remember_replaces_the_declarations_as_a_set() {
    let (_dir, mut store) = store();
    let resource = |kind: &str, body: &str| StoredResource {
        kind: kind.to_owned(),
        id: "default/a".to_owned(),
        body: body.to_owned(),
    };
    store
        .remember(&[resource("Structure", "{}"), resource("Synchronizer", "{}")])
        .unwrap();
    // The Synchronizer was taken out of the files: it is forgotten.
    store
        .remember(&[resource("Structure", r#"{"v":2}"#)])
        .unwrap();
    assert_eq!(
        store.remembered().unwrap(),
        [resource("Structure", r#"{"v":2}"#)]
    );
}

#[test]
fn read_only_does_not_create_a_missing_store_and_reads_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("trellis.db");
    let empty = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(empty.structure(S).unwrap().version, 0);
    assert!(empty.remembered().unwrap().is_empty());
    assert!(
        !path.parent().unwrap().exists(),
        "neither the store nor its directory is created"
    );

    let mut writer = SqliteStore::open(&path).unwrap();
    let written = seeded(&mut writer);
    // While the writer is still open (`status` during an apply), and after.
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

#[test]
fn deleting_a_structure_removes_its_rows_journal_jobs_and_baselines_only() {
    let (_dir, mut store) = store();
    commit(
        &mut store,
        0,
        &seed(),
        &[baseline(F, "A-1")],
        &[job(Some(F), None, JobState::Succeeded)],
    )
    .unwrap();
    store.delete_structure(S, &[F.to_owned()]).unwrap();
    let gone = store.structure(S).unwrap();
    assert_eq!((gone.version, gone.forest.walk().len()), (0, 0));
    assert!(store.journal(S).unwrap().is_empty());
    assert!(store.baselines(F).unwrap().is_empty());
    assert!(store.last_jobs().unwrap().is_empty());
}

#[test]
fn a_new_store_opened_by_several_threads_at_once_is_made_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trellis.db");
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    SqliteStore::open(&path)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in results {
        result.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.query_version().unwrap(), MIGRATIONS.len());
}

#[test]
fn another_applications_database_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY); CREATE TABLE customers (id INTEGER);",
        )
        .unwrap();
    drop(other);
    let error = SqliteStore::open(&path).err().unwrap().to_string();
    assert!(error.contains("other.db"), "{error}");
    assert!(error.contains("not a Trellis store"), "{error}");
    assert!(error.contains("customers, invoices"), "{error}");
    let error = SqliteStore::open_read_only(&path)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("not a Trellis store"), "{error}");
    let other = Connection::open(&path).unwrap();
    let tables: i64 = other
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 2, "nothing was added to the other database");

    let marked = dir.path().join("marked.db");
    let db = Connection::open(&marked).unwrap();
    db.pragma_update(None, "application_id", 42).unwrap();
    drop(db);
    let error = SqliteStore::open(&marked).err().unwrap().to_string();
    assert!(error.contains("another application"), "{error}");
}

#[test]
fn a_store_from_before_the_mark_is_recognised_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trellis.db");
    let old = Connection::open(&path).unwrap();
    old.execute_batch(MIGRATIONS[0]).unwrap();
    old.pragma_update(None, "user_version", 1).unwrap();
    drop(old);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.application_id().unwrap(), APPLICATION_ID);
    assert_eq!(store.query_version().unwrap(), MIGRATIONS.len());

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    SqliteStore::open(&empty).unwrap();
}

/// A small deterministic generator, so that a failing case replays.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Random edits of one commit on `forest`: `count` adds, moves and removals
/// of leaves, anywhere.
fn random_edit(forest: &Forest, rng: &mut Lcg, count: usize) -> Edit {
    let mut e = Edit::on(forest);
    for _ in 0..count {
        let rows: Vec<RowId> = e.forest.walk().into_iter().map(|(id, _)| id).collect();
        let parent = match rng.below(3) {
            0 => None,
            _ => rows.get(rng.below(rows.len())).copied(),
        };
        let siblings = e.forest.children(parent).to_vec();
        let after = match rng.below(siblings.len() + 1) {
            0 => None,
            n => Some(siblings[n - 1]),
        };
        match rng.below(5) {
            0 | 1 => {
                let id = e.forest.next_id();
                e.add(id, &format!("A-{id}"), Some(F), parent, after);
            }
            2 | 3 if !rows.is_empty() => {
                let row = rows[rng.below(rows.len())];
                let cycles = parent.is_some_and(|p| p == row || e.forest.is_ancestor(row, p));
                if !cycles && after != Some(row) {
                    e.mv(row, parent, after);
                }
            }
            _ => {
                if let Some(&leaf) = rows
                    .iter()
                    .find(|&&r| e.forest.children(Some(r)).is_empty())
                {
                    e.rm(leaf);
                }
            }
        }
    }
    e
}

#[test]
fn random_edits_read_back_as_the_forest_made_them() {
    let (_dir, mut store) = store();
    let mut rng = Lcg(7);
    let mut version = 0;
    let mut forest = Forest::new();
    // Large commits sweep whole parents, small ones place rows one by one;
    // both must leave exactly the content the edits made.
    for round in 0..40 {
        let count = if round % 5 == 0 { 60 } else { 1 + rng.below(6) };
        let e = random_edit(&forest, &mut rng, count);
        version = commit(&mut store, version, &e, &[], &[]).unwrap();
        let stored = store.structure(S).unwrap();
        assert_same(&stored.forest, &e.forest);
        forest = stored.forest;
    }
}

/// A-1 ... A-`n` at the top level, in order.
fn flat(n: RowId) -> Edit {
    let mut e = Edit::on(&Forest::new());
    for id in 1..=n {
        e.add(
            id,
            &format!("A-{id}"),
            None,
            None,
            (id > 1).then_some(id - 1),
        );
    }
    e
}

#[test]
fn rows_placed_again_and_again_between_the_same_two_keep_their_order() {
    let (_dir, mut store) = store();
    let e = flat(400);
    let mut version = commit(&mut store, 0, &e, &[], &[]).unwrap();
    // Each one goes right after A-1: the gap there halves every time, until
    // the siblings are spread out again.
    let mut forest = store.structure(S).unwrap().forest;
    for row in (300..=400).rev() {
        let mut e = Edit::on(&forest);
        e.mv(row, None, Some(1));
        version = commit(&mut store, version, &e, &[], &[]).unwrap();
        forest = store.structure(S).unwrap().forest;
        assert_same(&forest, &e.forest);
    }
    assert_eq!(&forest.children(None)[..3], [1, 300, 301]);
}

/// Each row's parent and position as stored.
fn placements(store: &SqliteStore) -> Vec<(RowId, Option<RowId>, i64)> {
    let db = store.connection();
    let mut statement = db
        .prepare("SELECT id, parent, position FROM rows WHERE structure = ? ORDER BY id")
        .unwrap();
    statement
        .query_map([S], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_move_in_a_large_structure_writes_the_moved_row_alone() {
    let (_dir, mut store) = store();
    let e = flat(2_000);
    commit(&mut store, 0, &e, &[], &[]).unwrap();
    let before = placements(&store);

    // As `trellis move` commits it: the operation alone, no content.
    let a_10 = store
        .find_row(S, &RowItem::Issue("A-10".into()))
        .unwrap()
        .unwrap();
    assert_eq!(
        a_10.at,
        Position {
            under: None,
            after: Some(9)
        }
    );
    let ops = [StructureOp::Move {
        row: 10,
        item: a_10.row.item.clone(),
        from: a_10.at,
        to: Position {
            under: Some(1_500),
            after: None,
        },
    }];
    let changes = [Change {
        cause: "manual move".to_owned(),
        author: "alice".to_owned(),
        ops: &ops,
        tracker_ops: &[],
        synchronizer: None,
    }];
    let version = store
        .commit(&Commit {
            structure: S,
            base_version: 1,
            forest: None,
            changes: &changes,
            jobs: &[],
            synchronizers: &[],
            baselines: &[],
            pass: None,
            read: None,
            settles: None,
        })
        .unwrap();
    assert_eq!(version, 2);

    let after = placements(&store);
    let changed: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].1.1, Some(1_500));
    let stored = store.structure(S).unwrap();
    assert_eq!(stored.forest.parent(10), Some(1_500));
    assert_eq!(stored.forest.next_id(), 2_001, "the row counter stays");
    assert_eq!(store.ancestors(S, 10).unwrap(), [1_500]);
    assert_eq!(
        store.children(S, Some(1_500)).unwrap()[0].item,
        RowItem::Issue("A-10".into())
    );
    assert_eq!(store.children(S, None).unwrap().len(), 1_999);
    assert_eq!(store.structure_version(S).unwrap(), 2);
}

#[test]
fn ancestors_name_every_row_above_one_nearest_first() {
    let (_dir, mut store) = store();
    let mut e = seed();
    e.add(6, "A-5", None, Some(5), None);
    commit(&mut store, 0, &e, &[], &[]).unwrap();
    assert_eq!(store.ancestors(S, 6).unwrap(), [5, 4]);
    assert!(store.ancestors(S, 4).unwrap().is_empty());
    let inbox = store
        .find_row(S, &RowItem::Folder("Inbox".into()))
        .unwrap()
        .unwrap();
    assert_eq!(
        inbox.at,
        Position {
            under: None,
            after: None
        }
    );
    assert!(
        store
            .find_row(S, &RowItem::Issue("Inbox".into()))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_store_with_positions_from_before_the_gaps_reads_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trellis.db");
    let old = Connection::open(&path).unwrap();
    for sql in &MIGRATIONS[..5] {
        old.execute_batch(sql).unwrap();
    }
    old.pragma_update(None, "user_version", 5).unwrap();
    old.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    // Version 5 numbered siblings 0, 1, 2, ...
    old.execute_batch(
        "INSERT INTO structures VALUES ('default/roadmap', 3, 5);
         INSERT INTO rows VALUES ('default/roadmap', 1, NULL, 0, 'folder', 'Inbox', NULL);
         INSERT INTO rows VALUES ('default/roadmap', 4, 1, 0, 'issue', 'A-3', NULL);
         INSERT INTO rows VALUES ('default/roadmap', 2, 1, 1, 'issue', 'A-1', NULL);
         INSERT INTO rows VALUES ('default/roadmap', 3, NULL, 1, 'issue', 'A-2', NULL);",
    )
    .unwrap();
    drop(old);
    let mut store = SqliteStore::open(&path).unwrap();
    let stored = store.structure(S).unwrap();
    assert_eq!(stored.version, 3);
    assert_eq!(stored.forest.walk(), [(1, 0), (4, 1), (2, 1), (3, 0)]);
    // And a row placed between two of them finds room.
    let mut e = Edit::on(&stored.forest);
    e.mv(3, Some(1), Some(4));
    commit(&mut store, 3, &e, &[], &[]).unwrap();
    assert_same(&store.structure(S).unwrap().forest, &e.forest);
}

/// What a pass's neighbourhood is read with: rows by item, by id and by
/// parent (with their parent and stored order), the head, baselines of some
/// issues, and the mirror's issues under a parent.
#[test]
fn a_neighbourhood_reads_rows_issues_and_baselines_one_by_one() {
    let (_dir, mut store) = store();
    let stored = seeded(&mut store);
    let head = store.structure_head(S).unwrap();
    assert_eq!(head.version, stored.version);
    assert_eq!(head.next_row, stored.forest.next_id());
    assert_eq!(store.structure_head("default/none").unwrap().version, 0);
    assert_eq!(store.row_count(S).unwrap(), 5);

    let items = [
        RowItem::Issue("A-4".into()),
        RowItem::Folder("Inbox".into()),
        RowItem::Issue("NOPE-1".into()),
    ];
    let found = store.rows_of_items(S, &items).unwrap();
    let found: Vec<(RowId, Option<RowId>)> = found.iter().map(|l| (l.row.id, l.parent)).collect();
    assert_eq!(found, [(5, Some(4)), (1, None)]);
    let by_id = store.rows_of_ids(S, &[3, 99]).unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].row.item, RowItem::Issue("A-2".into()));
    assert_eq!(by_id[0].row.added_by.as_deref(), Some(F));
    // One parent's positions give its rows' order.
    let under = store.rows_under(S, Some(1)).unwrap();
    let ids: Vec<RowId> = under.iter().map(|l| l.row.id).collect();
    assert_eq!(ids, stored.forest.children(Some(1)));
    assert!(under[0].position < under[1].position);
    assert!(by_id[0].position == under[1].position);

    assert_eq!(
        store.baselines_of(F, &["A-1", "A-9"]).unwrap(),
        [baseline(F, "A-1")]
    );

    let issue = |key: &str, parent: Option<&str>| Issue {
        key: key.into(),
        summary: key.into(),
        issue_type: "Task".into(),
        status: "Open".into(),
        parent: parent.map(Into::into),
        epic: None,
        links: vec![],
        rank: None,
        updated: None,
        fields: Default::default(),
    };
    let issues = vec![
        issue("A-1", None),
        issue("A-2", Some("A-1")),
        issue("A-3", Some("A-1")),
        issue("A-4", Some("A-3")),
    ];
    store
        .refresh_mirror(
            "default/issues",
            MirrorRead::Full(issues),
            &Watermark::default(),
            jiff::Timestamp::now(),
        )
        .unwrap();
    let keys = |issues: Vec<Issue>| issues.into_iter().map(|i| i.key).collect::<Vec<_>>();
    let children = store
        .mirror_children("default/issues", &["A-1", "A-4"])
        .unwrap();
    assert_eq!(keys(children), ["A-2", "A-3"]);
    let children = store.mirror_children("default/issues", &["A-3"]).unwrap();
    assert_eq!(keys(children), ["A-4"]);
}

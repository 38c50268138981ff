//! The store in an embedded SQLite database, with versioned migrations.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{
    Baseline, Commit, ConflictRecord, HOLD_LEASE, HeldIssue, HeldPlan, HoldKeeper, JobDirection,
    JobRecord, JobState, JournalEntry, LaidRow, Mirror, MirrorRead, PassCommit, PlacedRow, Release,
    Store, StoreError, StoredResource, StoredStructure, StructureHead, SyncState, WriteIntent,
};
use crate::model::{Forest, Issue, Row, RowId, RowItem};
use crate::tracker::Watermark;

/// Schema migrations; `PRAGMA user_version` records how many have run.
/// Append new ones, never edit old ones.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE structures (
    id       TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    next_row INTEGER NOT NULL
);
CREATE TABLE rows (
    structure TEXT NOT NULL,
    id        INTEGER NOT NULL,
    parent    INTEGER,
    position  INTEGER NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('issue', 'folder')),
    item      TEXT NOT NULL,
    added_by  TEXT,
    PRIMARY KEY (structure, id)
) WITHOUT ROWID;
CREATE TABLE journal (
    structure TEXT NOT NULL,
    version   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    time      TEXT NOT NULL,
    author    TEXT NOT NULL,
    cause     TEXT NOT NULL,
    change    TEXT NOT NULL,
    PRIMARY KEY (structure, version, seq)
);
CREATE TABLE baselines (
    synchronizer TEXT NOT NULL,
    issue        TEXT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (synchronizer, issue)
) WITHOUT ROWID;
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    structure    TEXT NOT NULL,
    synchronizer TEXT,
    resync       TEXT,
    direction    TEXT,
    author       TEXT NOT NULL,
    plan_hash    TEXT,
    state        TEXT NOT NULL,
    summary      TEXT NOT NULL,
    error        TEXT,
    started      TEXT NOT NULL,
    finished     TEXT NOT NULL
);
CREATE INDEX jobs_by_synchronizer ON jobs (synchronizer, id);
CREATE INDEX jobs_by_resync ON jobs (resync, state);
CREATE TABLE resources (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"#,
    r#"
-- Each journal entry names the job that made it (none for manual edits and
-- entries older than this migration), so that a job can be undone.
ALTER TABLE journal ADD COLUMN job INTEGER;
CREATE INDEX journal_by_job ON journal (job, version, seq);
"#,
    r#"
-- Incremental sync: each tracker's mirror (issue NULL: gone from the
-- tracker) numbered by refresh, each synchronizer's cursor, its held issues
-- and recorded conflicts, and the structures a resync holds read-only.
CREATE TABLE mirror (
    tracker TEXT NOT NULL,
    key     TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    ord     INTEGER NOT NULL,
    issue   TEXT,
    PRIMARY KEY (tracker, key)
) WITHOUT ROWID;
CREATE INDEX mirror_by_seq ON mirror (tracker, seq);
CREATE TABLE mirror_state (
    tracker   TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    watermark TEXT NOT NULL,
    full_read TEXT
);
CREATE TABLE sync_state (
    synchronizer TEXT PRIMARY KEY,
    body         TEXT NOT NULL
);
CREATE TABLE held_issues (
    synchronizer TEXT NOT NULL,
    issue        TEXT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (synchronizer, issue)
) WITHOUT ROWID;
CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    synchronizer TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX conflicts_by_synchronizer ON conflicts (synchronizer, id);
CREATE TABLE structure_holds (
    structure TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until     TEXT NOT NULL
);
"#,
    r#"
-- Write-ahead records of tracker writes: each run's intended writes, kept
-- until the commit that journals them (one left behind: an interrupted run).
CREATE TABLE write_intents (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    structure TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX write_intents_by_structure ON write_intents (structure, id);
"#,
    r#"
-- When each mirror was last read, in full or for changes: how old the
-- issues are that `show` prints from it.
ALTER TABLE mirror_state ADD COLUMN read_at TEXT;
"#,
    r#"
-- Rows' positions leave gaps (rows.rs: GAP, 2^20), so that a row placed
-- between two others is one write; rows are found by their neighbours and
-- by what they show without reading the structure.
UPDATE rows SET position = (position + 1) * 1048576;
CREATE INDEX rows_by_place ON rows (structure, parent, position);
CREATE UNIQUE INDEX rows_by_item ON rows (structure, kind, item);
"#,
    r#"
-- A pass reads the issues under a changed issue from the mirror, not the
-- whole mirror, and appends the issues it finds first without a scan.
CREATE INDEX mirror_by_parent ON mirror (tracker, json_extract(issue, '$.parent'));
CREATE INDEX mirror_by_ord ON mirror (tracker, ord);
"#,
];

pub struct SqliteStore {
    /// Behind a mutex so that a store can be shared by the controller's
    /// tasks (a connection is Send, not Sync); uncontended on the CLI.
    db: Mutex<Connection>,
    path: String,
}

impl SqliteStore {
    fn connection(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().expect("a store is never left poisoned")
    }

    /// Opens (creating if needed) the store at `path` and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database {
                path: name.clone(),
                message: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let connection = Connection::open(path).map_err(|e| db_error(&name, e))?;
        let mut store = SqliteStore {
            db: Mutex::new(connection),
            path: name,
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the store for reading only: a missing store reads as empty and
    /// is not created (a dry run writes nothing anywhere).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        if !path.exists() {
            let connection = Connection::open_in_memory().map_err(|e| db_error(&name, e))?;
            let mut store = SqliteStore {
                db: Mutex::new(connection),
                path: name,
            };
            store.migrate()?;
            return Ok(store);
        }
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| db_error(&name, e))?;
        let store = SqliteStore {
            db: Mutex::new(connection),
            path: name,
        };
        store.configure()?;
        let version: usize = store.query_version()?;
        check_identity(&store.connection(), &store.path, version)?;
        let advice = match version.cmp(&MIGRATIONS.len()) {
            std::cmp::Ordering::Equal => return Ok(store),
            std::cmp::Ordering::Less => "run `trellis apply` once to migrate it",
            std::cmp::Ordering::Greater => "upgrade Trellis",
        };
        Err(StoreError::Database {
            path: store.path,
            message: format!(
                "schema version {version} is not the {} this Trellis uses; {advice}",
                MIGRATIONS.len()
            ),
        })
    }

    fn configure(&self) -> Result<(), StoreError> {
        // WAL lets `trellis status` read while an apply writes; the busy
        // timeout makes a second writer wait instead of failing at once.
        self.connection()
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.error(e))?;
        // Switching a new file to WAL needs it to itself, and SQLite answers
        // "database is locked" at once rather than calling the busy handler:
        // several processes opening a new store together retry for as long
        // as the busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let switched: rusqlite::Result<Option<String>> = self
                .connection()
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .optional();
            match switched {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return other.map(|_| ()).map_err(|e| self.error(e)),
            }
        }
    }

    fn query_version(&self) -> Result<usize, StoreError> {
        self.connection()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.error(e))
    }

    /// Brings the schema up to date and marks the file as a Trellis store.
    /// Everything is decided again inside one immediate transaction, so that
    /// two processes opening a new store at once do not both create it: the
    /// second waits (busy timeout), then finds the schema made.
    fn migrate(&mut self) -> Result<(), StoreError> {
        if self.query_version()? == MIGRATIONS.len() && self.application_id()? == APPLICATION_ID {
            return Ok(());
        }
        let path = self.path.clone();
        let mut connection = self.connection();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, e))?;
        let current: usize = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| db_error(&path, e))?;
        check_identity(&tx, &path, current)?;
        if current > MIGRATIONS.len() {
            return Err(StoreError::Database {
                path,
                message: format!(
                    "schema version {current} is newer than this Trellis knows; upgrade Trellis"
                ),
            });
        }
        for sql in MIGRATIONS.iter().skip(current) {
            tx.execute_batch(sql).map_err(|e| db_error(&path, e))?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len())
            .map_err(|e| db_error(&path, e))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(|e| db_error(&path, e))?;
        tx.commit().map_err(|e| db_error(&path, e))
    }

    fn application_id(&self) -> Result<i32, StoreError> {
        self.connection()
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.path, e)
    }
}

/// How long a second writer waits for the first before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `PRAGMA application_id` of a Trellis store ("TRLS"), so that `--state`
/// pointing at another program's database is refused instead of filled.
const APPLICATION_ID: i32 = 0x5452_4C53;

/// The tables every Trellis store has had since its first migration.
const FIRST_TABLES: &[&str] = &[
    "structures",
    "rows",
    "journal",
    "baselines",
    "jobs",
    "resources",
];

/// Refuses a database that is not a Trellis store. Accepted: one marked
/// as ours, a new empty file, and an unmarked store made by a Trellis from
/// before the mark (it has a schema version and the first migration's tables).
fn check_identity(db: &Connection, path: &str, version: usize) -> Result<(), StoreError> {
    let refuse = |message: String| StoreError::Database {
        path: path.to_owned(),
        message,
    };
    let id: i32 = db
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| db_error(path, e))?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    if id != 0 {
        return Err(refuse(format!(
            "this database belongs to another application (application_id {id:#010x}), not Trellis; nothing was changed: point --state at a Trellis store or at a new file"
        )));
    }
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut query| query.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| db_error(path, e))?;
    let new_file = version == 0 && tables.is_empty();
    let older_trellis = version > 0
        && FIRST_TABLES
            .iter()
            .all(|t| tables.iter().any(|have| have == t));
    if new_file || older_trellis {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let mut named = tables
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if tables.len() > SHOWN {
        named.push_str(&format!(" and {} more", tables.len() - SHOWN));
    }
    Err(refuse(format!(
        "this database is not a Trellis store (it holds the tables {named}); nothing was changed: point --state at a Trellis store or at a new file"
    )))
}

fn db_error(path: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Database {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn timestamp(text: String) -> rusqlite::Result<jiff::Timestamp> {
    text.parse().map_err(|e: jiff::Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn json<T: serde::de::DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn job_from_row(r: &rusqlite::Row) -> rusqlite::Result<JobRecord> {
    let state: String = r.get("state")?;
    Ok(JobRecord {
        id: r.get("id")?,
        structure: r.get("structure")?,
        synchronizer: r.get("synchronizer")?,
        resync: r.get("resync")?,
        direction: r
            .get::<_, Option<String>>("direction")?
            .map(|text| {
                JobDirection::parse(&text).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        format!("unknown job direction {text:?}").into(),
                    )
                })
            })
            .transpose()?,
        author: r.get("author")?,
        plan_hash: r.get("plan_hash")?,
        state: match state.as_str() {
            "succeeded" => JobState::Succeeded,
            "interrupted" => JobState::Interrupted,
            _ => JobState::Failed,
        },
        summary: r.get("summary")?,
        error: r.get("error")?,
        started: timestamp(r.get("started")?)?,
        finished: timestamp(r.get("finished")?)?,
    })
}

/// A journal entry from `SELECT version, time, author, cause, change, job`.
fn journal_entry(r: &rusqlite::Row) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        version: r.get(0)?,
        time: timestamp(r.get(1)?)?,
        author: r.get(2)?,
        cause: r.get(3)?,
        change: json(r.get(4)?)?,
        job: r.get(5)?,
    })
}

/// Inserts jobs; their ids, in order.
fn insert_jobs(tx: &Transaction, jobs: &[JobRecord]) -> rusqlite::Result<Vec<u64>> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO jobs (structure, synchronizer, resync, direction, author, plan_hash, state, summary, error, started, finished)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        let state = job.state.as_str();
        insert.execute(params![
            job.structure,
            job.synchronizer,
            job.resync,
            job.direction.map(JobDirection::as_str),
            job.author,
            job.plan_hash,
            state,
            job.summary,
            job.error,
            job.started.to_string(),
            job.finished.to_string(),
        ])?;
        ids.push(tx.last_insert_rowid() as u64);
    }
    Ok(ids)
}

impl Store for SqliteStore {
    fn structure(&self, id: &str) -> Result<StoredStructure, StoreError> {
        let head: Option<(u64, u64)> = self
            .connection()
            .query_row(
                "SELECT version, next_row FROM structures WHERE id = ?",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some((version, next_row)) = head else {
            return Ok(StoredStructure {
                forest: Forest::new(),
                version: 0,
            });
        };
        let connection = self.connection();
        // Read in key order and sorted here: ordering by parent and position
        // in SQL walks the placement index, a lookup per row, which takes
        // twice as long on a large structure.
        let mut statement = connection
            .prepare(
                "SELECT id, parent, position, kind, item, added_by FROM rows WHERE structure = ?",
            )
            .map_err(|e| self.error(e))?;
        let mut placed: Vec<(Option<RowId>, i64, Row)> = statement
            .query_map([id], |r| {
                Ok((
                    r.get(1)?,
                    r.get(2)?,
                    Row {
                        id: r.get(0)?,
                        item: rows::item_of(&r.get::<_, String>(3)?, r.get(4)?),
                        added_by: r.get(5)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
            .map_err(|e| self.error(e))?;
        placed.sort_unstable_by_key(|&(parent, position, _)| (parent, position));
        let mut rows = Vec::with_capacity(placed.len());
        let mut children: HashMap<Option<RowId>, Vec<RowId>> = HashMap::new();
        for (parent, _, row) in placed {
            children.entry(parent).or_default().push(row.id);
            rows.push(row);
        }
        let forest =
            Forest::from_layout(rows, children, next_row).map_err(|e| StoreError::Database {
                path: self.path.clone(),
                message: format!("structure {id} is corrupt: {e}"),
            })?;
        Ok(StoredStructure { forest, version })
    }

    fn structure_version(&self, id: &str) -> Result<u64, StoreError> {
        self.connection()
            .query_row("SELECT version FROM structures WHERE id = ?", [id], |r| {
                r.get(0)
            })
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.error(e))
    }

    fn find_row(&self, structure: &str, item: &RowItem) -> Result<Option<PlacedRow>, StoreError> {
        rows::find(&self.connection(), structure, item).map_err(|e| self.error(e))
    }

    fn ancestors(&self, structure: &str, row: RowId) -> Result<Vec<RowId>, StoreError> {
        rows::ancestors(&self.connection(), structure, row).map_err(|e| self.error(e))
    }

    fn children(&self, structure: &str, parent: Option<RowId>) -> Result<Vec<Row>, StoreError> {
        rows::under(&self.connection(), structure, parent)
            .map(|laid| laid.into_iter().map(|l| l.row).collect())
            .map_err(|e| self.error(e))
    }

    fn structure_head(&self, id: &str) -> Result<StructureHead, StoreError> {
        self.connection()
            .query_row(
                "SELECT version, next_row FROM structures WHERE id = ?",
                [id],
                |r| {
                    Ok(StructureHead {
                        version: r.get(0)?,
                        next_row: r.get(1)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.error(e))
    }

    fn rows_of_items(
        &self,
        structure: &str,
        items: &[RowItem],
    ) -> Result<Vec<LaidRow>, StoreError> {
        rows::of_items(&self.connection(), structure, items).map_err(|e| self.error(e))
    }

    fn rows_of_ids(&self, structure: &str, ids: &[RowId]) -> Result<Vec<LaidRow>, StoreError> {
        rows::of_ids(&self.connection(), structure, ids).map_err(|e| self.error(e))
    }

    fn rows_under(
        &self,
        structure: &str,
        parent: Option<RowId>,
    ) -> Result<Vec<LaidRow>, StoreError> {
        rows::under(&self.connection(), structure, parent).map_err(|e| self.error(e))
    }

    fn row_count(&self, structure: &str) -> Result<usize, StoreError> {
        self.connection()
            .prepare_cached("SELECT count(*) FROM rows WHERE structure = ?")
            .and_then(|mut s| s.query_row([structure], |r| r.get(0)))
            .map_err(|e| self.error(e))
    }

    fn child_count(&self, structure: &str, row: RowId) -> Result<usize, StoreError> {
        self.connection()
            .prepare_cached("SELECT count(*) FROM rows WHERE structure = ? AND parent = ?")
            .and_then(|mut s| s.query_row(params![structure, row], |r| r.get(0)))
            .map_err(|e| self.error(e))
    }

    fn delete_structure(
        &mut self,
        structure: &str,
        synchronizers: &[String],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            for table in [
                "structures WHERE id",
                "rows WHERE structure",
                "journal WHERE structure",
                "jobs WHERE structure",
                "structure_holds WHERE structure",
            ] {
                tx.execute(&format!("DELETE FROM {table} = ?"), [structure])?;
            }
            for synchronizer in synchronizers {
                for table in ["baselines", "sync_state", "held_issues", "conflicts"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE synchronizer = ?"),
                        [synchronizer],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn commit(&mut self, commit: &Commit) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| db_error(&path, e);
        // IMMEDIATE takes the write lock before the version check, so a
        // concurrent apply waits (busy timeout) and then sees a clean Conflict.
        let mut connection = self.connection();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let found: u64 = tx
            .query_row(
                "SELECT version FROM structures WHERE id = ?",
                [commit.structure],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?
            .unwrap_or(0);
        if found != commit.base_version {
            return Err(StoreError::Conflict {
                structure: commit.structure.to_owned(),
                expected: commit.base_version,
                found,
            });
        }
        let job_ids = insert_jobs(&tx, commit.jobs).map_err(err)?;
        let job_of = |synchronizer: Option<&str>| {
            let index = commit.jobs.iter().position(|j| {
                synchronizer.is_some() && j.synchronizer.as_deref() == synchronizer
            })?;
            Some(job_ids[index])
        };
        let has_ops = commit.changes.iter().any(|c| !c.ops.is_empty());
        let version = if has_ops { found + 1 } else { found };
        // Without the content (a manual edit) the row counter stays.
        tx.execute(
            "INSERT INTO structures (id, version, next_row) VALUES (?1, ?2, coalesce(?3, 1))
             ON CONFLICT (id) DO UPDATE SET version = ?2, next_row = coalesce(?3, next_row)",
            params![
                commit.structure,
                version,
                commit.forest.map(Forest::next_id)
            ],
        )
        .map_err(err)?;
        {
            let mut journal = tx
                .prepare_cached("INSERT INTO journal (structure, version, seq, time, author, cause, change, job) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                .map_err(err)?;
            let now = jiff::Timestamp::now().to_string();
            // Changes to issues alone keep the version: their entries follow
            // the ones already journaled at it.
            let mut seq: u64 = tx
                .query_row(
                    "SELECT coalesce(max(seq) + 1, 0) FROM journal WHERE structure = ? AND version = ?",
                    params![commit.structure, version],
                    |r| r.get(0),
                )
                .map_err(err)?;
            rows::write(&tx, commit.structure, commit.changes, commit.forest).map_err(err)?;
            for change in commit.changes {
                let bodies = change
                    .ops
                    .iter()
                    .map(serde_json::to_string)
                    .chain(change.tracker_ops.iter().map(serde_json::to_string));
                for body in bodies {
                    let body = body.expect("operations serialize");
                    journal
                        .execute(params![
                            commit.structure,
                            version,
                            seq,
                            now,
                            change.author,
                            change.cause,
                            body,
                            job_of(change.synchronizer)
                        ])
                        .map_err(err)?;
                    seq += 1;
                }
            }
            for synchronizer in commit.synchronizers {
                tx.execute(
                    "DELETE FROM baselines WHERE synchronizer = ?",
                    [synchronizer],
                )
                .map_err(err)?;
            }
            let mut baseline = tx
                .prepare_cached(
                    "INSERT INTO baselines (synchronizer, issue, body) VALUES (?, ?, ?)",
                )
                .map_err(err)?;
            for b in commit.baselines {
                let body = serde_json::to_string(b).expect("baselines serialize");
                baseline
                    .execute(params![b.synchronizer, b.issue, body])
                    .map_err(err)?;
            }
        }
        if let Some(pass) = commit.pass {
            commit_pass(&tx, pass, version).map_err(err)?;
        }
        if let Some(intent) = commit.settles {
            tx.execute("DELETE FROM write_intents WHERE id = ?", [intent])
                .map_err(err)?;
        }
        if let Some(read) = &commit.read {
            refresh_mirror(
                &tx,
                read.tracker,
                true,
                read.issues,
                read.watermark,
                read.at,
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(version)
    }

    fn record_jobs(&mut self, jobs: &[JobRecord]) -> Result<(), StoreError> {
        self.write(|tx| insert_jobs(tx, jobs).map(|_| ()))
    }

    fn intend_writes(&mut self, intent: &WriteIntent) -> Result<u64, StoreError> {
        let body = serde_json::to_string(intent).expect("write intents serialize");
        self.write(|tx| {
            tx.query_row(
                "INSERT INTO write_intents (structure, body) VALUES (?, ?) RETURNING id",
                params![intent.structure, body],
                |r| r.get(0),
            )
        })
    }

    fn interrupted_writes(&self, structure: &str) -> Result<Vec<WriteIntent>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT id, body FROM write_intents WHERE structure = ? ORDER BY id")
            .map_err(|e| self.error(e))?;
        statement
            .query_map([structure], |r| {
                let intent: WriteIntent = json(r.get(1)?)?;
                Ok(WriteIntent {
                    id: r.get(0)?,
                    ..intent
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))
    }

    fn last_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare(
                "SELECT * FROM jobs WHERE id IN (SELECT max(id) FROM jobs WHERE synchronizer IS NOT NULL GROUP BY synchronizer)
                 ORDER BY synchronizer",
            )
            .map_err(|e| self.error(e))?;
        let jobs = statement
            .query_map([], job_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        Ok(jobs)
    }

    fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT * FROM jobs ORDER BY id DESC LIMIT ?")
            .map_err(|e| self.error(e))?;
        let jobs = statement
            .query_map([limit], job_from_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        Ok(jobs)
    }

    fn resync_done(&self, resync: &str) -> Result<bool, StoreError> {
        self.connection()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE resync = ? AND state = 'succeeded')",
                [resync],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))
    }

    fn journal(&self, structure: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT version, time, author, cause, change, job FROM journal WHERE structure = ? ORDER BY version, seq")
            .map_err(|e| self.error(e))?;
        let entries = statement
            .query_map([structure], journal_entry)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        Ok(entries)
    }

    fn job(&self, id: u64) -> Result<Option<JobRecord>, StoreError> {
        self.connection()
            .query_row("SELECT * FROM jobs WHERE id = ?", [id], job_from_row)
            .optional()
            .map_err(|e| self.error(e))
    }

    fn job_changes(&self, id: u64) -> Result<Vec<JournalEntry>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT version, time, author, cause, change, job FROM journal WHERE job = ? ORDER BY version, seq")
            .map_err(|e| self.error(e))?;
        let entries = statement
            .query_map([id], journal_entry)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        Ok(entries)
    }

    fn baselines(&self, synchronizer: &str) -> Result<Vec<Baseline>, StoreError> {
        self.json_rows(
            "SELECT body FROM baselines WHERE synchronizer = ? ORDER BY issue",
            synchronizer,
        )
    }

    fn baselines_of(
        &self,
        synchronizer: &str,
        issues: &[&str],
    ) -> Result<Vec<Baseline>, StoreError> {
        self.json_rows_among(
            "SELECT body FROM baselines WHERE synchronizer = ?1
             AND issue IN (SELECT value FROM json_each(?2))",
            synchronizer,
            issues,
        )
    }

    fn remember(&mut self, resources: &[StoredResource]) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM resources", [])?;
            for r in resources {
                tx.execute(
                    "INSERT INTO resources (kind, id, body) VALUES (?1, ?2, ?3)",
                    params![r.kind, r.id, r.body],
                )?;
            }
            Ok(())
        })
    }

    fn remembered(&self) -> Result<Vec<StoredResource>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT kind, id, body FROM resources ORDER BY kind, id")
            .map_err(|e| self.error(e))?;
        let resources = statement
            .query_map([], |r| {
                Ok(StoredResource {
                    kind: r.get(0)?,
                    id: r.get(1)?,
                    body: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        Ok(resources)
    }

    fn mirror(&self, tracker: &str) -> Result<Mirror, StoreError> {
        type Head = (u64, String, Option<String>, Option<String>);
        let head: Option<Head> = self
            .connection()
            .query_row(
                "SELECT seq, watermark, full_read, read_at FROM mirror_state WHERE tracker = ?",
                [tracker],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some((seq, watermark, full_read, read_at)) = head else {
            return Ok(Mirror::default());
        };
        let watermark: Watermark = json(watermark).map_err(|e| self.error(e))?;
        let time = |t: Option<String>| t.map(timestamp).transpose().map_err(|e| self.error(e));
        Ok(Mirror {
            watermark,
            seq,
            full_read: time(full_read)?,
            read_at: time(read_at)?,
        })
    }

    fn mirror_issues(&self, tracker: &str) -> Result<Vec<Issue>, StoreError> {
        // In the tracker's own order, as a full read gives them.
        self.json_rows(
            "SELECT issue FROM mirror WHERE tracker = ? AND issue IS NOT NULL ORDER BY ord",
            tracker,
        )
    }

    fn mirror_issues_of(&self, tracker: &str, keys: &[&str]) -> Result<Vec<Issue>, StoreError> {
        self.json_rows_among(
            "SELECT issue FROM mirror WHERE tracker = ?1 AND issue IS NOT NULL
             AND key IN (SELECT value FROM json_each(?2))",
            tracker,
            keys,
        )
    }

    fn mirror_children(&self, tracker: &str, parents: &[&str]) -> Result<Vec<Issue>, StoreError> {
        // Each parent is one range of migration 7's index, asked for one by
        // one: with a list of parents, or without the index named, SQLite's
        // planner would rather scan the tracker's whole mirror.
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(
                "SELECT issue FROM mirror INDEXED BY mirror_by_parent
                 WHERE tracker = ? AND json_extract(issue, '$.parent') = ? AND issue IS NOT NULL
                 ORDER BY ord",
            )
            .map_err(|e| self.error(e))?;
        let mut issues = Vec::new();
        for parent in parents {
            let bodies = statement
                .query_map(params![tracker, parent], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.error(e))?;
            for body in bodies {
                issues.push(json(body).map_err(|e| self.error(e))?);
            }
        }
        Ok(issues)
    }

    fn search_mirror(
        &self,
        tracker: &str,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Issue>, StoreError> {
        // LIKE's wildcards in the text are matched as themselves.
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(
                "SELECT issue FROM mirror WHERE tracker = ?1 AND issue IS NOT NULL
                   AND (key = ?2 COLLATE NOCASE
                        OR json_extract(issue, '$.summary') LIKE '%' || ?3 || '%' ESCAPE '\\')
                 ORDER BY ord LIMIT ?4",
            )
            .map_err(|e| self.error(e))?;
        let issues = statement
            .query_map(params![tracker, text, escaped, limit], |r| {
                r.get::<_, String>(0)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        issues
            .into_iter()
            .map(|issue| json(issue).map_err(|e| self.error(e)))
            .collect()
    }

    fn refresh_mirror(
        &mut self,
        tracker: &str,
        read: MirrorRead,
        watermark: &Watermark,
        at: jiff::Timestamp,
    ) -> Result<u64, StoreError> {
        let (full, issues) = match &read {
            MirrorRead::Full(issues) => (true, issues),
            MirrorRead::Changed(issues) => (false, issues),
        };
        self.write(|tx| refresh_mirror(tx, tracker, full, issues, watermark, at))
    }

    fn mirror_changes(&self, tracker: &str, after: u64) -> Result<Vec<String>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT key FROM mirror WHERE tracker = ? AND seq > ? ORDER BY key")
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![tracker, after], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))
    }

    fn hold_plan(&mut self, synchronizer: &str, plan: &HeldPlan) -> Result<(), StoreError> {
        let mut state = self.sync_state(synchronizer)?;
        state.held_plan = Some(plan.clone());
        self.write(|tx| write_sync_state(tx, synchronizer, &state))
    }

    fn sync_state(&self, synchronizer: &str) -> Result<SyncState, StoreError> {
        Ok(self
            .json_rows(
                "SELECT body FROM sync_state WHERE synchronizer = ?",
                synchronizer,
            )?
            .pop()
            .unwrap_or_default())
    }

    fn journal_since(
        &self,
        structure: &str,
        version: u64,
    ) -> Result<Vec<(JournalEntry, Option<String>)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare(
                "SELECT j.version, j.time, j.author, j.cause, j.change, j.job, jobs.synchronizer
                 FROM journal j LEFT JOIN jobs ON jobs.id = j.job
                 WHERE j.structure = ? AND j.version > ? ORDER BY j.version, j.seq",
            )
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![structure, version], |r| {
                Ok((journal_entry(r)?, r.get(6)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))
    }

    fn held_issues(&self, synchronizer: &str) -> Result<Vec<HeldIssue>, StoreError> {
        self.json_rows(
            "SELECT body FROM held_issues WHERE synchronizer = ? ORDER BY issue",
            synchronizer,
        )
    }

    fn release_issue(
        &mut self,
        synchronizer: &str,
        issue: &str,
        release: Option<Release>,
    ) -> Result<bool, StoreError> {
        let Some(mut held) = self
            .held_issues(synchronizer)?
            .into_iter()
            .find(|h| h.issue == issue)
        else {
            return Ok(false);
        };
        self.write(|tx| {
            match release {
                None => {
                    tx.execute(
                        "DELETE FROM held_issues WHERE synchronizer = ? AND issue = ?",
                        params![synchronizer, issue],
                    )?;
                }
                Some(release) => {
                    held.release = Some(release);
                    tx.execute(
                        "UPDATE held_issues SET body = ? WHERE synchronizer = ? AND issue = ?",
                        params![
                            serde_json::to_string(&held).expect("serializes"),
                            synchronizer,
                            issue
                        ],
                    )?;
                }
            }
            Ok(true)
        })
    }

    fn restart(&mut self, synchronizer: &str) -> Result<(), StoreError> {
        let state = SyncState {
            stopped: None,
            rounds: 0,
            last_written: Vec::new(),
            ..self.sync_state(synchronizer)?
        };
        self.write(|tx| write_sync_state(tx, synchronizer, &state))
    }

    fn conflicts(
        &self,
        synchronizer: &str,
        limit: usize,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        let mut conflicts: Vec<ConflictRecord> = self.json_rows(
            "SELECT body FROM conflicts WHERE synchronizer = ? ORDER BY id DESC",
            synchronizer,
        )?;
        conflicts.truncate(limit);
        Ok(conflicts)
    }

    fn hold_structure(
        &mut self,
        structure: &str,
        holder: &str,
        until: jiff::Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let now = jiff::Timestamp::now().to_string();
        self.write(|tx| {
            let other: Option<String> = tx
                .query_row(
                    "SELECT holder FROM structure_holds WHERE structure = ? AND holder != ? AND until > ?",
                    params![structure, holder, now],
                    |r| r.get(0),
                )
                .optional()?;
            if other.is_none() {
                tx.execute(
                    "INSERT INTO structure_holds (structure, holder, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (structure) DO UPDATE SET holder = ?2, until = ?3",
                    params![structure, holder, until.to_string()],
                )?;
            }
            Ok(other)
        })
    }

    fn release_structure(&mut self, structure: &str, holder: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM structure_holds WHERE structure = ? AND holder = ?",
                params![structure, holder],
            )?;
            Ok(())
        })
    }

    fn keep_holding(&self, structure: &str, holder: &str) -> Result<HoldKeeper, StoreError> {
        // Its own connection: the heartbeat goes on while the engine's
        // connection is busy in a long transaction or a long tracker write.
        let connection = Connection::open(&self.path).map_err(|e| self.error(e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.error(e))?;
        let (structure, holder) = (structure.to_owned(), holder.to_owned());
        Ok(HoldKeeper::start(move || {
            let until = (jiff::Timestamp::now() + HOLD_LEASE).to_string();
            match connection.execute(
                "UPDATE structure_holds SET until = ? WHERE structure = ? AND holder = ?",
                params![until, structure, holder],
            ) {
                Ok(renewed) => renewed == 1,
                Err(e) => {
                    // One missed beat is not fatal: the lease outlasts several.
                    tracing::warn!(%structure, error = %e, "cannot renew the structure hold");
                    true
                }
            }
        }))
    }

    fn structure_holder(&self, structure: &str) -> Result<Option<String>, StoreError> {
        self.connection()
            .query_row(
                "SELECT holder FROM structure_holds WHERE structure = ? AND until > ?",
                params![structure, jiff::Timestamp::now().to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }
}

/// An incremental pass's records, inside its commit's transaction; the
/// cursor takes the version the commit leaves.
fn commit_pass(tx: &Transaction, pass: &PassCommit, version: u64) -> rusqlite::Result<()> {
    let sync = pass.synchronizer;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO baselines (synchronizer, issue, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (synchronizer, issue) DO UPDATE SET body = ?3",
        )?;
        for b in pass.baselines {
            let body = serde_json::to_string(b).expect("baselines serialize");
            upsert.execute(params![sync, b.issue, body])?;
        }
        let mut forget =
            tx.prepare_cached("DELETE FROM baselines WHERE synchronizer = ? AND issue = ?")?;
        for issue in pass.forgotten {
            forget.execute(params![sync, issue])?;
        }
    }
    tx.execute("DELETE FROM held_issues WHERE synchronizer = ?", [sync])?;
    for held in pass.held {
        tx.execute(
            "INSERT INTO held_issues (synchronizer, issue, body) VALUES (?, ?, ?)",
            params![
                sync,
                held.issue,
                serde_json::to_string(held).expect("serializes")
            ],
        )?;
    }
    for conflict in pass.conflicts {
        tx.execute(
            "INSERT INTO conflicts (synchronizer, body) VALUES (?, ?)",
            params![sync, serde_json::to_string(conflict).expect("serializes")],
        )?;
    }
    if !pass.written.is_empty() {
        let seq: u64 = tx.query_row(
            "UPDATE mirror_state SET seq = seq + 1 WHERE tracker = ? RETURNING seq",
            [pass.tracker],
            |r| r.get(0),
        )?;
        // Written issues were read before: they keep their place.
        let mut update = tx
            .prepare_cached("UPDATE mirror SET seq = ?, issue = ? WHERE tracker = ? AND key = ?")?;
        for issue in pass.written {
            let body = serde_json::to_string(issue).expect("issues serialize");
            update.execute(params![seq, body, pass.tracker, issue.key])?;
        }
    }
    let state = SyncState {
        synced_version: version,
        ..pass.state.clone()
    };
    write_sync_state(tx, sync, &state)
}

/// Takes a read of `tracker` into its mirror, numbering the rows it changes;
/// a `full` read also marks the issues it did not list as gone.
fn refresh_mirror(
    tx: &Transaction,
    tracker: &str,
    full: bool,
    issues: &[Issue],
    watermark: &Watermark,
    at: jiff::Timestamp,
) -> rusqlite::Result<u64> {
    // What the mirror holds of the issues read (of all of them for a full
    // read, which also marks the ones gone).
    let stored: HashMap<String, Option<String>> = if full {
        let mut statement = tx.prepare("SELECT key, issue FROM mirror WHERE tracker = ?")?;
        statement
            .query_map([tracker], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<_>>())?
    } else {
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        let keys = serde_json::to_string(&keys).expect("keys serialize");
        let mut statement = tx.prepare_cached(
            "SELECT key, issue FROM mirror WHERE tracker = ?1
             AND key IN (SELECT value FROM json_each(?2))",
        )?;
        statement
            .query_map(params![tracker, keys], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<_>>())?
    };
    let watermark = serde_json::to_string(watermark).expect("watermarks serialize");
    tx.execute(
        "INSERT INTO mirror_state (tracker, seq, watermark) VALUES (?, 0, '{}')
         ON CONFLICT (tracker) DO NOTHING",
        [tracker],
    )?;
    let seq: u64 = tx.query_row(
        "UPDATE mirror_state SET seq = seq + 1, watermark = ? WHERE tracker = ? RETURNING seq",
        params![watermark, tracker],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE mirror_state SET read_at = ?1, full_read = CASE WHEN ?2 THEN ?1 ELSE full_read END
         WHERE tracker = ?3",
        params![at.to_string(), full, tracker],
    )?;
    // A full read orders every issue as the tracker lists them; an issue
    // first seen in a changed read goes last.
    let mut next: i64 = tx.query_row(
        "SELECT coalesce(max(ord) + 1, 0) FROM mirror WHERE tracker = ?",
        [tracker],
        |r| r.get(0),
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT INTO mirror (tracker, key, seq, ord, issue) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tracker, key) DO UPDATE SET seq = ?3, issue = ?5",
    )?;
    let mut reorder =
        tx.prepare_cached("UPDATE mirror SET ord = ? WHERE tracker = ? AND key = ?")?;
    for (index, issue) in issues.iter().enumerate() {
        let body = serde_json::to_string(issue).expect("issues serialize");
        if stored.get(&issue.key).and_then(Option::as_ref) != Some(&body) {
            upsert.execute(params![tracker, issue.key, seq, next, body])?;
            next += 1;
        }
        if full {
            reorder.execute(params![index as i64, tracker, issue.key])?;
        }
    }
    if full {
        let present: std::collections::HashSet<&str> =
            issues.iter().map(|i| i.key.as_str()).collect();
        let mut gone = tx.prepare_cached(
            "UPDATE mirror SET seq = ?, issue = NULL WHERE tracker = ? AND key = ?",
        )?;
        for (key, body) in &stored {
            if body.is_some() && !present.contains(key.as_str()) {
                gone.execute(params![seq, tracker, key])?;
            }
        }
    }
    Ok(seq)
}

fn write_sync_state(tx: &Transaction, sync: &str, state: &SyncState) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO sync_state (synchronizer, body) VALUES (?1, ?2)
         ON CONFLICT (synchronizer) DO UPDATE SET body = ?2",
        params![sync, serde_json::to_string(state).expect("serializes")],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Runs `work` in one IMMEDIATE transaction.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let value = work(&tx).map_err(|e| self.error(e))?;
        tx.commit().map_err(|e| self.error(e))?;
        Ok(value)
    }

    /// Every value of `sql` (one text column) for one parameter, as JSON.
    /// [`Self::json_rows`] with a second parameter, a list: one statement
    /// for many keys (they arrive as a JSON array, read by `json_each`).
    fn json_rows_among<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        parameter: &str,
        among: &[&str],
    ) -> Result<Vec<T>, StoreError> {
        let among = serde_json::to_string(among).expect("strings serialize");
        let connection = self.connection();
        let mut statement = connection.prepare_cached(sql).map_err(|e| self.error(e))?;
        statement
            .query_map(params![parameter, among], |r| json(r.get(0)?))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))
    }

    fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        parameter: &str,
    ) -> Result<Vec<T>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(sql).map_err(|e| self.error(e))?;
        statement
            .query_map([parameter], |r| json(r.get(0)?))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))
    }
}

mod rows;

#[cfg(test)]
mod tests;

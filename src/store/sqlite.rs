//! The store in an embedded SQLite database, with versioned migrations.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{
    Baseline, Commit, JobRecord, JobState, JournalEntry, Store, StoreError, StoredResource,
    StoredStructure,
};
use crate::model::{Forest, Row, RowId, RowItem};
use crate::plan::StructureOp;

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
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.error(e))?;
        let _: Option<String> = self
            .connection()
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn query_version(&self) -> Result<usize, StoreError> {
        self.connection()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.error(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let current = self.query_version()?;
        if current > MIGRATIONS.len() {
            return Err(StoreError::Database {
                path: self.path.clone(),
                message: format!(
                    "schema version {current} is newer than this Trellis knows; upgrade Trellis"
                ),
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let mut connection = self.connection();
            let tx = connection
                .transaction()
                .map_err(|e| db_error(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| db_error(&self.path, e))?;
            tx.pragma_update(None, "user_version", index + 1)
                .map_err(|e| db_error(&self.path, e))?;
            tx.commit().map_err(|e| db_error(&self.path, e))?;
        }
        Ok(())
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.path, e)
    }
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
        direction: r.get("direction")?,
        author: r.get("author")?,
        plan_hash: r.get("plan_hash")?,
        state: if state == "succeeded" {
            JobState::Succeeded
        } else {
            JobState::Failed
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
        let state = match job.state {
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        };
        insert.execute(params![
            job.structure,
            job.synchronizer,
            job.resync,
            job.direction,
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

/// The parents whose children lists the operations changed.
fn touched_parents(changes: &[super::Change]) -> BTreeSet<Option<RowId>> {
    let mut parents = BTreeSet::new();
    for change in changes {
        for op in change.ops {
            match op {
                StructureOp::Add { at, .. } => {
                    parents.insert(at.under);
                }
                StructureOp::Move { from, to, .. } => {
                    parents.insert(from.under);
                    parents.insert(to.under);
                }
                StructureOp::Remove { from, .. } => {
                    parents.insert(from.under);
                }
            }
        }
    }
    parents
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
        let mut statement = connection
            .prepare("SELECT id, parent, kind, item, added_by FROM rows WHERE structure = ? ORDER BY parent, position")
            .map_err(|e| self.error(e))?;
        let mut rows = Vec::new();
        let mut children: HashMap<Option<RowId>, Vec<RowId>> = HashMap::new();
        let mut query = statement.query([id]).map_err(|e| self.error(e))?;
        while let Some(r) = query.next().map_err(|e| self.error(e))? {
            let read = || -> rusqlite::Result<(Row, Option<RowId>)> {
                let kind: String = r.get(2)?;
                let item: String = r.get(3)?;
                let item = if kind == "folder" {
                    RowItem::Folder(item)
                } else {
                    RowItem::Issue(item)
                };
                Ok((
                    Row {
                        id: r.get(0)?,
                        item,
                        added_by: r.get(4)?,
                    },
                    r.get(1)?,
                ))
            };
            let (row, parent) = read().map_err(|e| self.error(e))?;
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

    fn delete_structure(
        &mut self,
        structure: &str,
        synchronizers: &[String],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| db_error(&path, e);
        let mut connection = self.connection();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        for table in [
            "structures WHERE id",
            "rows WHERE structure",
            "journal WHERE structure",
            "jobs WHERE structure",
        ] {
            tx.execute(&format!("DELETE FROM {table} = ?"), [structure])
                .map_err(err)?;
        }
        for synchronizer in synchronizers {
            tx.execute(
                "DELETE FROM baselines WHERE synchronizer = ?",
                [synchronizer],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
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
        tx.execute(
            "INSERT INTO structures (id, version, next_row) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET version = ?2, next_row = ?3",
            params![commit.structure, version, commit.forest.next_id()],
        )
        .map_err(err)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM rows WHERE structure = ? AND id = ?")
                .map_err(err)?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO rows (structure, id, parent, position, kind, item, added_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (structure, id) DO UPDATE SET parent = ?3, position = ?4",
                )
                .map_err(err)?;
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
            for change in commit.changes {
                for op in change.ops {
                    if let StructureOp::Remove { row, .. } = op {
                        delete
                            .execute(params![commit.structure, row])
                            .map_err(err)?;
                    }
                }
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
            for parent in touched_parents(commit.changes) {
                if parent.is_some_and(|p| !commit.forest.contains(p)) {
                    continue;
                }
                for (position, &id) in commit.forest.children(parent).iter().enumerate() {
                    let row = commit.forest.row(id).expect("children exist");
                    let (kind, item) = match &row.item {
                        RowItem::Issue(key) => ("issue", key),
                        RowItem::Folder(name) => ("folder", name),
                    };
                    upsert
                        .execute(params![
                            commit.structure,
                            id,
                            parent,
                            position,
                            kind,
                            item,
                            row.added_by
                        ])
                        .map_err(err)?;
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
        tx.commit().map_err(err)?;
        Ok(version)
    }

    fn record_jobs(&mut self, jobs: &[JobRecord]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let mut connection = self.connection();
        let tx = connection.transaction().map_err(|e| db_error(&path, e))?;
        insert_jobs(&tx, jobs).map_err(|e| db_error(&path, e))?;
        tx.commit().map_err(|e| db_error(&path, e))
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
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT body FROM baselines WHERE synchronizer = ? ORDER BY issue")
            .map_err(|e| self.error(e))?;
        let baselines = statement
            .query_map([synchronizer], |r| json(r.get(0)?))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.error(e))?;
        Ok(baselines)
    }

    fn remember(&mut self, resources: &[StoredResource]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| db_error(&path, e);
        let mut connection = self.connection();
        let tx = connection.transaction().map_err(err)?;
        tx.execute("DELETE FROM resources", []).map_err(err)?;
        for r in resources {
            tx.execute(
                "INSERT INTO resources (kind, id, body) VALUES (?1, ?2, ?3)",
                params![r.kind, r.id, r.body],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
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
}

#[cfg(test)]
mod tests;

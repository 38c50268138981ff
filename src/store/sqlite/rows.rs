//! A structure's rows in SQLite: each row keeps its parent and a position
//! among its siblings. Positions leave gaps ([`GAP`] apart), so that placing
//! a row between two others is one write rather than a renumbering of its
//! siblings: a manual move on a 100,000-row structure writes the moved row
//! alone, and a pass writes the rows it changed. Under a parent that most of
//! a commit's operations go to (an import, a resync) the commit writes the
//! parent's rows whole from the new content instead, in one sweep.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::model::{Forest, Position, Row, RowId, RowItem};
use crate::plan::StructureOp;
use crate::store::{Change, LaidRow, PlacedRow};

/// The distance between neighbouring positions as a sweep writes them;
/// migration 6 spread the positions stored before it by the same.
const GAP: i64 = 1 << 20;

/// A parent is written whole when at least one operation goes to it for
/// every this many of its rows.
const SWEEP_SHARE: usize = 4;

/// Writes the structure operations of a commit. `forest` is the content
/// after them, when the caller has it; without it every row is written in
/// place.
pub(super) fn write(
    tx: &Transaction,
    structure: &str,
    changes: &[Change],
    forest: Option<&Forest>,
) -> rusqlite::Result<()> {
    let swept = forest.map(|f| crowded(changes, f)).unwrap_or_default();
    let mut delete = tx.prepare_cached("DELETE FROM rows WHERE structure = ? AND id = ?")?;
    for op in changes.iter().flat_map(|c| c.ops) {
        match op {
            StructureOp::Remove { row, .. } => {
                delete.execute(params![structure, row])?;
            }
            StructureOp::Add { row, at } if !swept.contains(&at.under) => {
                place(tx, structure, row, *at)?;
            }
            StructureOp::Move { row, item, to, .. } if !swept.contains(&to.under) => {
                // A row added under a swept parent earlier in this commit is
                // not written yet: the move writes all of it.
                let added_by = forest
                    .and_then(|f| f.row(*row))
                    .and_then(|r| r.added_by.clone());
                let row = Row {
                    id: *row,
                    item: item.clone(),
                    added_by,
                };
                place(tx, structure, &row, *to)?;
            }
            StructureOp::Add { .. } | StructureOp::Move { .. } => {}
        }
    }
    if let Some(forest) = forest {
        for parent in swept {
            if parent.is_none_or(|p| forest.contains(p)) {
                sweep(tx, structure, forest, parent)?;
            }
        }
    }
    Ok(())
}

/// The parents most of whose rows the operations put there.
fn crowded(changes: &[Change], forest: &Forest) -> HashSet<Option<RowId>> {
    let mut arriving: foldhash::HashMap<Option<RowId>, usize> = Default::default();
    for op in changes.iter().flat_map(|c| c.ops) {
        match op {
            StructureOp::Add { at: to, .. } | StructureOp::Move { to, .. } => {
                *arriving.entry(to.under).or_default() += 1;
            }
            StructureOp::Remove { .. } => {}
        }
    }
    arriving
        .into_iter()
        .filter(|&(parent, count)| count * SWEEP_SHARE >= forest.children(parent).len())
        .map(|(parent, _)| parent)
        .collect()
}

/// Writes `row` at `at`: between its new neighbours' positions.
fn place(tx: &Transaction, structure: &str, row: &Row, at: Position) -> rusqlite::Result<()> {
    let position = match free_position(tx, structure, row.id, at)? {
        Some(position) => position,
        None => {
            // No room between the neighbours: spread the siblings out once.
            renumber(tx, structure, at.under)?;
            free_position(tx, structure, row.id, at)?
                .expect("a renumbered parent has room between any two rows")
        }
    };
    upsert(tx, structure, row, at.under, position)
}

/// Writes `row` under `parent` at `position`; a row already stored keeps
/// what it shows and who added it.
fn upsert(
    tx: &Transaction,
    structure: &str,
    row: &Row,
    parent: Option<RowId>,
    position: i64,
) -> rusqlite::Result<()> {
    let (kind, item) = kind_and_item(&row.item);
    tx.prepare_cached(
        "INSERT INTO rows (structure, id, parent, position, kind, item, added_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (structure, id) DO UPDATE SET parent = ?3, position = ?4",
    )?
    .execute(params![
        structure,
        row.id,
        parent,
        position,
        kind,
        item,
        row.added_by
    ])?;
    Ok(())
}

/// A position right after `at.after` (or first) under `at.under`, before
/// the sibling that follows; `None` when the two are adjacent.
fn free_position(
    tx: &Transaction,
    structure: &str,
    row: RowId,
    at: Position,
) -> rusqlite::Result<Option<i64>> {
    let before: Option<i64> = match at.after {
        Some(anchor) => Some(
            tx.prepare_cached("SELECT position FROM rows WHERE structure = ? AND id = ?")?
                .query_row(params![structure, anchor], |r| r.get(0))?,
        ),
        None => None,
    };
    let next: Option<i64> = tx
        .prepare_cached(
            "SELECT min(position) FROM rows
             WHERE structure = ?1 AND parent IS ?2 AND position > ?3 AND id != ?4",
        )?
        .query_row(
            params![structure, at.under, before.unwrap_or(i64::MIN), row],
            |r| r.get(0),
        )?;
    Ok(match (before, next) {
        (None, None) => Some(GAP),
        (Some(before), None) => Some(before + GAP),
        (None, Some(next)) => Some(next - GAP),
        (Some(before), Some(next)) if next - before >= 2 => Some(before + (next - before) / 2),
        (Some(_), Some(_)) => None,
    })
}

/// Spreads one parent's rows [`GAP`] apart, in their order.
fn renumber(tx: &Transaction, structure: &str, parent: Option<RowId>) -> rusqlite::Result<()> {
    let ids: Vec<RowId> = tx
        .prepare_cached(
            "SELECT id FROM rows WHERE structure = ? AND parent IS ? ORDER BY position",
        )?
        .query_map(params![structure, parent], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update =
        tx.prepare_cached("UPDATE rows SET position = ? WHERE structure = ? AND id = ?")?;
    for (position, id) in sweep_positions().zip(ids) {
        update.execute(params![position, structure, id])?;
    }
    Ok(())
}

/// Writes all of one parent's rows from `forest`, [`GAP`] apart.
fn sweep(
    tx: &Transaction,
    structure: &str,
    forest: &Forest,
    parent: Option<RowId>,
) -> rusqlite::Result<()> {
    for (position, &id) in sweep_positions().zip(forest.children(parent)) {
        upsert(
            tx,
            structure,
            forest.row(id).expect("children exist"),
            parent,
            position,
        )?;
    }
    Ok(())
}

fn sweep_positions() -> impl Iterator<Item = i64> {
    (1..).map(|n: i64| n * GAP)
}

fn kind_and_item(item: &RowItem) -> (&'static str, &str) {
    match item {
        RowItem::Issue(key) => ("issue", key),
        RowItem::Folder(name) => ("folder", name),
    }
}

pub(super) fn item_of(kind: &str, item: String) -> RowItem {
    if kind == "folder" {
        RowItem::Folder(item)
    } else {
        RowItem::Issue(item)
    }
}

/// The row showing `item`, and where it sits.
pub(super) fn find(
    tx: &rusqlite::Connection,
    structure: &str,
    item: &RowItem,
) -> rusqlite::Result<Option<PlacedRow>> {
    let (kind, name) = kind_and_item(item);
    let found: Option<(RowId, Option<RowId>, i64, Option<String>)> = tx
        .prepare_cached(
            "SELECT id, parent, position, added_by FROM rows WHERE structure = ? AND kind = ? AND item = ?",
        )?
        .query_row(params![structure, kind, name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, under, position, added_by)) = found else {
        return Ok(None);
    };
    let after: Option<RowId> = tx
        .prepare_cached(
            "SELECT id FROM rows WHERE structure = ? AND parent IS ? AND position < ?
             ORDER BY position DESC LIMIT 1",
        )?
        .query_row(params![structure, under, position], |r| r.get(0))
        .optional()?;
    Ok(Some(PlacedRow {
        row: Row {
            id,
            item: item.clone(),
            added_by,
        },
        at: Position { under, after },
    }))
}

/// The rows above `row`, its parent first.
pub(super) fn ancestors(
    db: &rusqlite::Connection,
    structure: &str,
    row: RowId,
) -> rusqlite::Result<Vec<RowId>> {
    db.prepare_cached(
        "WITH RECURSIVE up (id, depth) AS (
             SELECT parent, 1 FROM rows WHERE structure = ?1 AND id = ?2 AND parent IS NOT NULL
             UNION ALL
             SELECT r.parent, up.depth + 1 FROM rows r JOIN up ON r.structure = ?1 AND r.id = up.id
             WHERE r.parent IS NOT NULL
         )
         SELECT id FROM up ORDER BY depth",
    )?
    .query_map(params![structure, row], |r| r.get(0))?
    .collect()
}

/// The rows directly under `parent` (the top level for `None`), in order.
pub(super) fn under(
    db: &rusqlite::Connection,
    structure: &str,
    parent: Option<RowId>,
) -> rusqlite::Result<Vec<LaidRow>> {
    db.prepare_cached(&format!(
        "SELECT {LAID} FROM rows WHERE structure = ? AND parent IS ? ORDER BY position"
    ))?
    .query_map(params![structure, parent], laid)?
    .collect()
}

/// The rows showing `items`, those the structure has. One lookup each:
/// given them as a list, SQLite's planner walks every row of the kind.
pub(super) fn of_items(
    db: &rusqlite::Connection,
    structure: &str,
    items: &[RowItem],
) -> rusqlite::Result<Vec<LaidRow>> {
    let mut statement = db.prepare_cached(&format!(
        "SELECT {LAID} FROM rows WHERE structure = ? AND kind = ? AND item = ?"
    ))?;
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let (kind, name) = kind_and_item(item);
        rows.extend(
            statement
                .query_row(params![structure, kind, name], laid)
                .optional()?,
        );
    }
    Ok(rows)
}

/// The rows of `ids`, those the structure has.
pub(super) fn of_ids(
    db: &rusqlite::Connection,
    structure: &str,
    ids: &[RowId],
) -> rusqlite::Result<Vec<LaidRow>> {
    let ids = serde_json::to_string(ids).expect("ids serialize");
    db.prepare_cached(&format!(
        "SELECT {LAID} FROM rows WHERE structure = ?1 AND id IN (SELECT value FROM json_each(?2))"
    ))?
    .query_map(params![structure, ids], laid)?
    .collect()
}

/// The columns [`laid`] reads.
const LAID: &str = "id, kind, item, added_by, parent, position";

fn laid(r: &rusqlite::Row) -> rusqlite::Result<LaidRow> {
    Ok(LaidRow {
        row: Row {
            id: r.get(0)?,
            item: item_of(&r.get::<_, String>(1)?, r.get(2)?),
            added_by: r.get(3)?,
        },
        parent: r.get(4)?,
        position: r.get(5)?,
    })
}

//! A structure's declared static rows: added when missing, put back in
//! their declared place when something moved them, never removed. The
//! declaration is the truth for these rows, as a Git-declared resource is
//! for Argo CD: a row found elsewhere is drift, and the plan shows its move.

use crate::model::{Forest, ForestError, Position, Row, RowId, RowItem};

use super::{StructureOp, UnitPlan, record};

/// A row declared in the Structure's spec, with the rows declared under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredRow {
    pub item: RowItem,
    pub rows: Vec<DeclaredRow>,
}

/// Every item the declared rows name, at any depth.
pub fn items(rows: &[DeclaredRow]) -> Vec<RowItem> {
    rows.iter()
        .flat_map(|r| std::iter::once(r.item.clone()).chain(items(&r.rows)))
        .collect()
}

pub(super) fn plan(
    forest: &mut Forest,
    rows: &[DeclaredRow],
    plan: &mut UnitPlan,
) -> Result<(), ForestError> {
    ensure(forest, None, rows, plan)
}

/// Adds the missing rows of `rows` under `under`, and moves back any found
/// elsewhere, each right after the declared sibling before it (or first), so
/// declared rows keep their declared order ahead of what synchronizers
/// append. Parents are placed before their rows, so a row's target parent
/// chain holds only declared rows, and the move can never close a loop.
fn ensure(
    forest: &mut Forest,
    under: Option<RowId>,
    rows: &[DeclaredRow],
    plan: &mut UnitPlan,
) -> Result<(), ForestError> {
    let mut previous: Option<RowId> = None;
    for declared in rows {
        let at = Position {
            under,
            after: previous,
        };
        let id = match forest.find(&declared.item) {
            Some(id) => {
                let from = forest.position(id).ok_or(ForestError::NoSuchRow(id))?;
                if from != at {
                    let item = declared.item.clone();
                    record(
                        forest,
                        plan,
                        StructureOp::Move {
                            row: id,
                            item,
                            from,
                            to: at,
                        },
                    )?;
                }
                id
            }
            None => {
                let id = forest.next_id();
                let row = Row {
                    id,
                    item: declared.item.clone(),
                    added_by: None,
                };
                record(forest, plan, StructureOp::Add { row, at })?;
                id
            }
        };
        previous = Some(id);
        ensure(forest, Some(id), &declared.rows, plan)?;
    }
    Ok(())
}

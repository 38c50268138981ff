//! A structure's declared static rows: added when missing, never moved back
//! once a person has moved them, never removed.

use crate::model::{Forest, ForestError, Position, Row, RowId, RowItem};

use super::{StructureOp, UnitPlan, record};

/// A row declared in the Structure's spec, with the rows declared under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredRow {
    pub item: RowItem,
    pub rows: Vec<DeclaredRow>,
}

/// Every item the declared rows name, at any depth.
pub(super) fn items(rows: &[DeclaredRow]) -> Vec<RowItem> {
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

/// Adds the missing rows of `rows` under `under`, each right after the
/// declared sibling before it (or first), so declared rows keep their
/// declared order ahead of what synchronizers append.
fn ensure(
    forest: &mut Forest,
    under: Option<RowId>,
    rows: &[DeclaredRow],
    plan: &mut UnitPlan,
) -> Result<(), ForestError> {
    let mut previous: Option<RowId> = None;
    for declared in rows {
        let id = match forest.find(&declared.item) {
            Some(id) => id,
            None => {
                let id = forest.next_id();
                let after = previous.filter(|p| forest.parent(*p) == under && forest.contains(*p));
                let row = Row {
                    id,
                    item: declared.item.clone(),
                    added_by: None,
                };
                record(
                    forest,
                    plan,
                    StructureOp::Add {
                        row,
                        at: Position { under, after },
                    },
                )?;
                id
            }
        };
        previous = Some(id);
        ensure(forest, Some(id), &declared.rows, plan)?;
    }
    Ok(())
}

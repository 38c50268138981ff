//! The operations that turn one forest into another.

use std::collections::{HashMap, HashSet};

use crate::model::{Forest, Position, RowId};

use super::StructureOp;

/// Operations that turn `current` into `target`, valid when applied in order:
/// adds and moves parent by parent from the top down (a row's new parent is
/// always in its final place before the row moves under it, so no move can
/// put a row under its own subtree), then removals, children first.
///
/// A row moves when its parent changes, or when it is not part of the longest
/// run of siblings that keep their relative order (so reordering one row
/// among many reports one move, not many).
pub(super) fn diff(current: &Forest, target: &Forest) -> Vec<StructureOp> {
    let mut ops = Vec::new();
    let mut parents: Vec<Option<RowId>> = vec![None];
    while let Some(parent) = parents.pop() {
        let children = target.children(parent);
        let in_order = longest_ordered_run(current, parent, children);
        for (index, &id) in children.iter().enumerate() {
            let to = Position {
                under: parent,
                after: index.checked_sub(1).map(|i| children[i]),
            };
            match current.row(id) {
                None => ops.push(StructureOp::Add {
                    row: target.row(id).expect("target child exists").clone(),
                    at: to,
                }),
                Some(row) if !in_order.contains(&id) => ops.push(StructureOp::Move {
                    row: id,
                    item: row.item.clone(),
                    from: current.position(id).expect("current rows have a position"),
                    to,
                }),
                Some(_) => {}
            }
            parents.push(Some(id));
        }
    }
    for (id, _) in current.walk().into_iter().rev() {
        if !target.contains(id) {
            let row = current.row(id).expect("walked rows exist");
            ops.push(StructureOp::Remove {
                row: id,
                item: row.item.clone(),
                from: current.position(id).expect("current rows have a position"),
            });
        }
    }
    ops
}

/// The children (in target order) that already sit under `parent` in
/// `current` and form its longest run in unchanged relative order.
fn longest_ordered_run(
    current: &Forest,
    parent: Option<RowId>,
    children: &[RowId],
) -> HashSet<RowId> {
    let index: HashMap<RowId, usize> = current
        .children(parent)
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let staying: Vec<(RowId, usize)> = children
        .iter()
        .filter_map(|id| index.get(id).map(|&i| (*id, i)))
        .collect();
    longest_increasing(&staying).into_iter().collect()
}

/// Ids of the longest subsequence whose positions increase (patience sorting).
fn longest_increasing(items: &[(RowId, usize)]) -> Vec<RowId> {
    // tails[k] = index into items of the smallest tail of a run of length k+1.
    let mut tails: Vec<usize> = Vec::new();
    let mut previous: Vec<Option<usize>> = vec![None; items.len()];
    for (i, &(_, position)) in items.iter().enumerate() {
        let k = tails.partition_point(|&t| items[t].1 < position);
        previous[i] = k.checked_sub(1).map(|p| tails[p]);
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut run = Vec::with_capacity(tails.len());
    let mut cursor = tails.last().copied();
    while let Some(i) = cursor {
        run.push(items[i].0);
        cursor = previous[i];
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_increasing_keeps_the_longest_run() {
        let items = [(10, 2), (11, 0), (12, 1), (13, 3)];
        let mut run = longest_increasing(&items);
        run.sort();
        assert_eq!(run, [11, 12, 13]);
    }
}

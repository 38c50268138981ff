//! The `filter` synchronizer: issues matching a query are added under one
//! placement parent; in remove mode, rows it added leave when their issue
//! stops matching.

use std::collections::HashSet;

use crate::model::{Forest, ForestError, Issue, Row, RowId, RowItem, Snapshot};

use super::{FilterRule, Placement, StructureOp, Unit, UnitPlan, record};

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    unit: &Unit,
    rule: &FilterRule,
    arrangers: &HashSet<String>,
    declared: &HashSet<RowItem>,
    plan: &mut UnitPlan,
) -> Result<(), ForestError> {
    let Some(placement) = placement_row(forest, &rule.under) else {
        // Structure for Jira: "If the parent issue is not in the structure, nothing is added."
        plan.notes.push(format!(
            "nothing added or removed: the placement parent {} is not in the structure",
            describe(&rule.under)
        ));
        return Ok(());
    };
    add_missing(forest, snapshot, unit, rule, placement, declared, plan)?;
    if rule.remove {
        remove_unmatched(forest, unit, rule, placement, arrangers, plan)?;
    }
    Ok(())
}

/// The row new issues go under: `Some(None)` is the top level, `None` a
/// placement parent that is not in the structure.
fn placement_row(forest: &Forest, under: &Placement) -> Option<Option<RowId>> {
    match under {
        Placement::Top => Some(None),
        Placement::Folder(name) => forest.find_folder(name).map(Some),
        Placement::Issue(key) => forest.find_issue(key).map(Some),
    }
}

fn describe(under: &Placement) -> String {
    match under {
        Placement::Top => "(top level)".into(),
        Placement::Folder(name) => format!("folder {name}"),
        Placement::Issue(key) => format!("issue {key}"),
    }
}

/// Adds every matching issue that is not in the structure yet, each where
/// the sibling order puts it ([`Forest::position_by_rank`]).
fn add_missing(
    forest: &mut Forest,
    snapshot: &Snapshot,
    unit: &Unit,
    rule: &FilterRule,
    under: Option<RowId>,
    declared: &HashSet<RowItem>,
    plan: &mut UnitPlan,
) -> Result<(), ForestError> {
    let mut missing: Vec<_> = rule
        .matches
        .iter()
        .filter(|key| forest.find_issue(key).is_none())
        .filter_map(|key| snapshot.get(key))
        .collect();
    missing.sort_by_cached_key(|issue| issue.order_key());
    for issue in missing {
        let id = forest.next_id();
        let at = forest.position_by_rank(
            id,
            Some(issue.order_key()),
            under,
            |s| {
                let item = &forest.row(s).expect("siblings exist").item;
                item.issue_key()
                    .and_then(|k| snapshot.get(k))
                    .map(Issue::order_key)
            },
            |s| {
                !declared.is_empty()
                    && declared.contains(&forest.row(s).expect("siblings exist").item)
            },
        );
        let row = Row {
            id,
            item: RowItem::Issue(issue.key.clone()),
            added_by: Some(unit.name.clone()),
        };
        record(forest, plan, StructureOp::Add { row, at })?;
    }
    Ok(())
}

/// Removes rows this synchronizer added whose issue left the result, where it
/// placed them ("remove only from where added": a row someone moved elsewhere
/// stays), unless a row under them must stay.
fn remove_unmatched(
    forest: &mut Forest,
    unit: &Unit,
    rule: &FilterRule,
    placement: Option<RowId>,
    arrangers: &HashSet<String>,
    plan: &mut UnitPlan,
) -> Result<(), ForestError> {
    let candidates: Vec<RowId> = forest
        .children(placement)
        .iter()
        .copied()
        .filter(|&id| {
            let row = forest.row(id).expect("child rows exist");
            row.added_by.as_deref() == Some(unit.name.as_str())
                && row
                    .item
                    .issue_key()
                    .is_some_and(|k| !rule.matches.contains(k))
        })
        .collect();
    for id in candidates {
        let subtree = subtree_post_order(forest, id);
        let staying = subtree.iter().find(|&&r| {
            r != id
                && must_stay(
                    forest.row(r).expect("subtree rows exist"),
                    unit,
                    rule,
                    arrangers,
                )
        });
        if let Some(&staying) = staying {
            let row = forest.row(id).expect("candidate exists");
            let below = &forest.row(staying).expect("subtree rows exist").item;
            plan.notes.push(format!(
                "{} no longer matches but stays: {below} under it must stay",
                row.item
            ));
            continue;
        }
        for r in subtree {
            let from = forest.position(r).expect("subtree rows have a position");
            let item = forest.row(r).expect("subtree rows exist").item.clone();
            record(forest, plan, StructureOp::Remove { row: r, item, from })?;
        }
    }
    Ok(())
}

/// A row must stay when this filter matches its issue, a person or a
/// declared row put it there, or another inserting synchronizer wants it;
/// rows an arranging synchronizer (subtasks) placed under their parent go
/// with it.
fn must_stay(row: &Row, unit: &Unit, rule: &FilterRule, arrangers: &HashSet<String>) -> bool {
    if row
        .item
        .issue_key()
        .is_some_and(|k| rule.matches.contains(k))
    {
        return true;
    }
    match row.added_by.as_deref() {
        None => true,
        Some(owner) => owner != unit.name && !arrangers.contains(owner),
    }
}

/// `id` and its descendants, children before parents.
fn subtree_post_order(forest: &Forest, id: RowId) -> Vec<RowId> {
    let mut pre = vec![];
    let mut stack = vec![id];
    while let Some(r) = stack.pop() {
        pre.push(r);
        stack.extend(forest.children(Some(r)).iter().copied());
    }
    pre.reverse();
    pre
}

//! The `subtasks` synchronizer: each issue sits under its tracker parent.
//!
//! Into the structure, every issue row gets a fate:
//! - its tracker parent has a row that stays → it goes (or stays) under it;
//! - otherwise, if it sits under an issue row that is not its parent, the
//!   relation that put it there is gone: a row this synchronizer added is
//!   removed, any other row moves to the top level;
//! - otherwise (top level or under a folder) it is left where it is.
//!
//! Then the children of every issue row that are not in the structure yet
//! are added under it, recursively. From the structure, an issue row under
//! another issue row sets that parent in the tracker, and an issue row at the
//! top level or under a folder clears a parent that is in the structure.

use std::collections::HashMap;

use crate::model::{Forest, Issue, Row, RowId, RowItem, Snapshot};

use super::diff::diff;
use super::{PlanError, TrackerOp, UnitPlan, record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Under(RowId),
    Top,
    Remove,
}

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    if let Some(cycle) = snapshot.parent_cycle() {
        return Err(PlanError::ParentCycle(cycle));
    }
    let target = target(forest, snapshot, me);
    for op in diff(forest, &target) {
        record(forest, plan, op).map_err(|source| PlanError::Internal {
            unit: me.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// The structure as it should be, built from each parent's children lists.
fn target(forest: &Forest, snapshot: &Snapshot, me: &str) -> Forest {
    let fates = Fates::decide(forest, snapshot, me);
    let walk = forest.walk();
    let mut rows: Vec<Row> = Vec::with_capacity(walk.len());
    let mut layout: HashMap<Option<RowId>, Vec<RowId>> = HashMap::new();
    // Rows joining a parent (moved in or added), sorted by rank before appending.
    let mut joining: HashMap<Option<RowId>, Vec<(&Issue, RowId)>> = HashMap::new();
    layout.insert(None, kept_children(forest, None, &fates));
    for &(id, _) in &walk {
        let fate = fates.get(id);
        if fate == Fate::Remove {
            continue;
        }
        rows.push(forest.row(id).expect("walked rows exist").clone());
        layout.insert(Some(id), kept_children(forest, Some(id), &fates));
        let destination = match fate {
            Fate::Under(parent) => Some(parent),
            Fate::Top => None,
            Fate::Keep | Fate::Remove => continue,
        };
        let issue = issue_of(forest, snapshot, id);
        joining
            .entry(destination)
            .or_default()
            .push((issue.expect("moved rows have issues"), id));
    }

    // Add the children that are missing, level by level under surviving rows.
    let children = snapshot.children_by_parent();
    let mut next_id = forest.next_id();
    let mut queue: Vec<(RowId, &str)> = walk
        .iter()
        .filter(|(id, _)| fates.get(*id) != Fate::Remove)
        .filter_map(|&(id, _)| forest.row(id)?.item.issue_key().map(|k| (id, k)))
        .collect();
    while let Some((parent_row, parent_key)) = queue.pop() {
        for &child in children.get(parent_key).into_iter().flatten() {
            if forest.find_issue(&child.key).is_some() {
                continue;
            }
            let id = next_id;
            next_id += 1;
            rows.push(Row {
                id,
                item: RowItem::Issue(child.key.clone()),
                added_by: Some(me.to_owned()),
            });
            layout.insert(Some(id), Vec::new());
            joining
                .entry(Some(parent_row))
                .or_default()
                .push((child, id));
            queue.push((id, &child.key));
        }
    }
    for (parent, mut list) in joining {
        list.sort_by(|a, b| a.0.order_key().cmp(&b.0.order_key()));
        layout
            .entry(parent)
            .or_default()
            .extend(list.into_iter().map(|(_, id)| id));
    }
    Forest::from_layout(rows, layout, next_id)
        .expect("fates never put a row under its own subtree when parents have no cycle")
}

fn kept_children(forest: &Forest, parent: Option<RowId>, fates: &Fates) -> Vec<RowId> {
    forest
        .children(parent)
        .iter()
        .copied()
        .filter(|&c| fates.get(c) == Fate::Keep)
        .collect()
}

fn issue_of<'s>(forest: &Forest, snapshot: &'s Snapshot, id: RowId) -> Option<&'s Issue> {
    forest
        .row(id)?
        .item
        .issue_key()
        .and_then(|k| snapshot.get(k))
}

/// Each row's fate; a row's fate depends on whether its tracker parent's row
/// is removed, so fates are decided up the parent chain first.
struct Fates(HashMap<RowId, Fate>);

impl Fates {
    fn decide(forest: &Forest, snapshot: &Snapshot, me: &str) -> Fates {
        let mut fates = Fates(HashMap::with_capacity(forest.len()));
        for (id, _) in forest.walk() {
            // Walk up the tracker-parent chain to the first row already decided,
            // then decide from the top down (no recursion: chains can be long).
            let mut chain = vec![id];
            while let Some(&last) = chain.last() {
                match tracker_parent_row(forest, snapshot, last) {
                    Some(parent) if !fates.0.contains_key(&parent) && !chain.contains(&parent) => {
                        chain.push(parent)
                    }
                    _ => break,
                }
            }
            for &row in chain.iter().rev() {
                if !fates.0.contains_key(&row) {
                    let fate = fates.fate_of(forest, snapshot, me, row);
                    fates.0.insert(row, fate);
                }
            }
        }
        fates
    }

    fn get(&self, id: RowId) -> Fate {
        self.0.get(&id).copied().unwrap_or(Fate::Keep)
    }

    fn fate_of(&self, forest: &Forest, snapshot: &Snapshot, me: &str, id: RowId) -> Fate {
        let row = forest.row(id).expect("decided rows exist");
        let Some(key) = row.item.issue_key() else {
            return Fate::Keep;
        };
        let current_parent = forest.parent(id);
        if let Some(parent) = tracker_parent_row(forest, snapshot, id)
            && self.get(parent) != Fate::Remove
        {
            return if current_parent == Some(parent) {
                Fate::Keep
            } else {
                Fate::Under(parent)
            };
        }
        let under_issue = current_parent
            .and_then(|p| forest.row(p))
            .is_some_and(|p| p.item.issue_key().is_some());
        match (under_issue, row.added_by.as_deref() == Some(me)) {
            (false, _) => Fate::Keep,
            (true, true) => Fate::Remove,
            (true, false) if snapshot.get(key).is_some() => Fate::Top,
            // An issue gone from the tracker that someone else placed: leave it
            // for the synchronizer or person that put it there.
            (true, false) => Fate::Keep,
        }
    }
}

/// The row of the tracker parent of the issue in row `id`.
fn tracker_parent_row(forest: &Forest, snapshot: &Snapshot, id: RowId) -> Option<RowId> {
    let parent_key = issue_of(forest, snapshot, id)?.parent.as_deref()?;
    forest.find_issue(parent_key)
}

pub(super) fn plan_from(forest: &Forest, snapshot: &Snapshot, plan: &mut UnitPlan) {
    for (id, _) in forest.walk() {
        let Some(issue) = issue_of(forest, snapshot, id) else {
            if let Some(key) = forest.row(id).and_then(|r| r.item.issue_key()) {
                plan.notes
                    .push(format!("{key} is not in the tracker; its row was skipped"));
            }
            continue;
        };
        let parent_item = forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .map(|r| &r.item);
        match parent_item {
            Some(RowItem::Issue(parent)) if snapshot.get(parent).is_none() => {
                plan.notes.push(format!(
                    "{}: parent {parent} is not in the tracker; skipped",
                    issue.key
                ))
            }
            Some(RowItem::Issue(parent)) => {
                if issue.parent.as_deref() != Some(parent) {
                    plan.tracker_ops.push(TrackerOp::SetParent {
                        issue: issue.key.clone(),
                        from: issue.parent.clone(),
                        to: parent.clone(),
                    });
                }
            }
            Some(RowItem::Folder(_)) | None => {
                if let Some(parent) = &issue.parent
                    && forest.find_issue(parent).is_some()
                {
                    plan.tracker_ops.push(TrackerOp::ClearParent {
                        issue: issue.key.clone(),
                        from: parent.clone(),
                    });
                }
            }
        }
    }
}

//! The `subtasks` synchronizer: each issue sits under its tracker parent.
//!
//! Into the structure, rows are arranged along the tracker's parent field
//! (see [`super::hierarchy`]): sub-tasks of issues in the structure join it,
//! and a row someone else put under an issue that is not its parent moves
//! to the top level.
//!
//! From the structure, an issue row under another issue row sets that parent
//! in the tracker, and an issue row at the top level or under a folder clears
//! a parent that is in the structure.

use crate::model::{Forest, RowItem, Snapshot};

use super::hierarchy::{Reach, arrange};
use super::{PlanError, TrackerOp, UnitPlan};

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    declared: &std::collections::HashSet<RowItem>,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    if let Some(cycle) = snapshot.parent_cycle() {
        return Err(PlanError::ParentCycle(cycle));
    }
    let reach = Reach {
        adds_children: true,
        roots: &[],
        lift_strays: true,
    };
    arrange(forest, snapshot, me, declared, &reach, plan)
}

pub(super) fn plan_from(forest: &Forest, snapshot: &Snapshot, plan: &mut UnitPlan) {
    for (id, _) in forest.walk() {
        let Some(key) = forest.row(id).and_then(|r| r.item.issue_key()) else {
            continue;
        };
        let Some(issue) = snapshot.get(key) else {
            plan.notes
                .push(format!("{key} is not in the tracker; its row was skipped"));
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

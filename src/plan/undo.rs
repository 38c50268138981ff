//! Undo: the reverse of one job's changes, as a planner unit, so that the
//! reversal is planned, shown, approved and applied like any other run
//! (a reverse that removes rows or clears parents needs approval).
//!
//! Changes are reversed last to first, and each only if what the job left
//! is still there: a row moved to another parent, removed, re-added or
//! given rows of its own since, an issue whose parent, status or links
//! changed since. Otherwise the whole undo is refused, naming what changed:
//! an undo that guesses would lose someone else's later work. Sibling order is the
//! one thing restored loosely: when the row a restored row followed has
//! moved away, it goes last under its parent (and the plan says so).

use crate::model::{Forest, Issue, Position, RankAnchor, Row, RowId, RowItem, Snapshot, rank};

use super::{PlanError, StructureOp, TrackerOp, UnitPlan};

/// What one job changed, as its journal recorded it, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoRule {
    pub job: u64,
    pub structure_ops: Vec<StructureOp>,
    pub tracker_ops: Vec<TrackerOp>,
}

pub(super) fn plan(
    forest: &mut Forest,
    snapshot: &mut Snapshot,
    rule: &UndoRule,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    let conflict = |reason: String| PlanError::UndoConflict {
        job: rule.job,
        reason,
    };
    for op in rule.structure_ops.iter().rev() {
        let reverse = match op {
            StructureOp::Add { row, at } => {
                let now = forest.position(row.id);
                if now.map(|p| p.under) != Some(at.under) {
                    return Err(conflict(format!("{} was moved or removed since", row.item)));
                }
                if !forest.children(Some(row.id)).is_empty() {
                    return Err(conflict(format!(
                        "rows were added under {} since",
                        row.item
                    )));
                }
                StructureOp::Remove {
                    row: row.id,
                    item: row.item.clone(),
                    from: now.expect("checked above"),
                }
            }
            StructureOp::Move {
                row,
                item,
                from,
                to,
            } => {
                let now = forest.position(*row);
                if now.map(|p| p.under) != Some(to.under) {
                    return Err(conflict(format!("{item} was moved or removed since")));
                }
                StructureOp::Move {
                    row: *row,
                    item: item.clone(),
                    from: now.expect("checked above"),
                    to: back_to(forest, *from, *row, item, plan),
                }
            }
            StructureOp::Remove { row, item, from } => {
                if forest.find(item).is_some() || forest.row(*row).is_some() {
                    return Err(conflict(format!("{item} is in the structure again")));
                }
                StructureOp::Add {
                    // Who added the row is not journaled with its removal:
                    // it comes back as a row added by hand, which no
                    // synchronizer removes by itself.
                    row: Row {
                        id: *row,
                        item: item.clone(),
                        added_by: None,
                    },
                    at: back_to(forest, *from, *row, item, plan),
                }
            }
        };
        reverse.apply(forest).map_err(|e| {
            conflict(format!(
                "{} cannot go back where it was ({e}): the rows around it changed since",
                reverse.item()
            ))
        })?;
        plan.structure_ops.push(reverse);
    }
    for op in rule.tracker_ops.iter().rev() {
        let issue = snapshot
            .get(op.issue())
            .ok_or_else(|| conflict(format!("issue {} is gone from the tracker", op.issue())))?;
        let reverse = match op {
            TrackerOp::SetParent {
                issue: key,
                from,
                to,
            } => {
                if issue.parent.as_deref() != Some(to.as_str()) {
                    return Err(conflict(format!("the parent of {key} changed since")));
                }
                match from {
                    Some(before) => TrackerOp::SetParent {
                        issue: key.clone(),
                        from: Some(to.clone()),
                        to: before.clone(),
                    },
                    None => TrackerOp::ClearParent {
                        issue: key.clone(),
                        from: to.clone(),
                    },
                }
            }
            TrackerOp::ClearParent { issue: key, from } => {
                if issue.parent.is_some() {
                    return Err(conflict(format!("the parent of {key} changed since")));
                }
                TrackerOp::SetParent {
                    issue: key.clone(),
                    from: None,
                    to: from.clone(),
                }
            }
            TrackerOp::AddLink {
                issue: key,
                link_type,
                target,
            } => {
                if !has_link(issue, link_type, target) {
                    return Err(conflict(format!(
                        "the {link_type} link from {key} to {target} is gone since"
                    )));
                }
                TrackerOp::RemoveLink {
                    issue: key.clone(),
                    link_type: link_type.clone(),
                    target: target.clone(),
                }
            }
            TrackerOp::RemoveLink {
                issue: key,
                link_type,
                target,
            } => {
                if has_link(issue, link_type, target) {
                    return Err(conflict(format!(
                        "the {link_type} link from {key} to {target} is back since"
                    )));
                }
                TrackerOp::AddLink {
                    issue: key.clone(),
                    link_type: link_type.clone(),
                    target: target.clone(),
                }
            }
            TrackerOp::SetEpic {
                issue: key,
                from,
                to,
            } => {
                if issue.epic != *to {
                    return Err(conflict(format!("the epic of {key} changed since")));
                }
                TrackerOp::SetEpic {
                    issue: key.clone(),
                    from: to.clone(),
                    to: from.clone(),
                }
            }
            TrackerOp::Rank {
                issues, previous, ..
            } => {
                for reverse in rank_back(snapshot, issues, previous).map_err(conflict)? {
                    reverse.apply(snapshot);
                    plan.tracker_ops.push(reverse);
                }
                continue;
            }
            TrackerOp::SetStatus {
                issue: key,
                from,
                to,
            } => {
                if issue.status != *to {
                    return Err(conflict(format!("the status of {key} changed since")));
                }
                TrackerOp::SetStatus {
                    issue: key.clone(),
                    from: to.clone(),
                    to: from.clone(),
                }
            }
        };
        reverse.apply(snapshot);
        plan.tracker_ops.push(reverse);
    }
    Ok(())
}

/// The rank operations that put `issues` back after the issues they
/// followed, one issue each, an issue after the one it followed when both
/// moved. Loose, like sibling order: other issues ranked since stay where
/// they are, and the order around them is what it is now.
fn rank_back(
    snapshot: &Snapshot,
    issues: &[String],
    previous: &[Option<String>],
) -> Result<Vec<TrackerOp>, String> {
    if let Some(gone) = issues.iter().find(|k| snapshot.get(k).is_none()) {
        return Err(format!("issue {gone} is gone from the tracker"));
    }
    let mut pending: Vec<(&String, Option<&String>)> = issues
        .iter()
        .zip(
            previous
                .iter()
                .map(Option::as_ref)
                .chain(std::iter::repeat(None)),
        )
        .collect();
    let mut back = Vec::with_capacity(pending.len());
    let mut working = snapshot.clone();
    while !pending.is_empty() {
        // An issue whose predecessor is still to be put back waits for it.
        let ready = pending
            .iter()
            .position(|(_, p)| !p.is_some_and(|p| pending.iter().any(|(k, _)| *k == p)))
            .unwrap_or(0);
        let (key, was_after) = pending.remove(ready);
        let order: Vec<&str> = rank::order(&working)
            .into_iter()
            .map(|at| working.at(at).key.as_str())
            .collect();
        let anchor = match was_after.filter(|p| working.get(p).is_some()) {
            Some(p) => RankAnchor::After(p.clone()),
            None => match order.iter().find(|k| **k != key.as_str()) {
                Some(first) => RankAnchor::Before((*first).to_owned()),
                None => continue,
            },
        };
        let now_after = order
            .iter()
            .position(|k| *k == key.as_str())
            .and_then(|at| at.checked_sub(1))
            .map(|at| order[at].to_owned());
        let op = TrackerOp::Rank {
            issues: vec![key.clone()],
            anchor,
            previous: vec![now_after],
        };
        op.apply(&mut working);
        back.push(op);
    }
    Ok(back)
}

fn has_link(issue: &Issue, link_type: &str, target: &str) -> bool {
    issue
        .links
        .iter()
        .any(|l| l.link_type == link_type && l.target == target)
}

/// Where a row goes back to: `at`, or last under the same parent when the
/// row it followed is no longer there.
fn back_to(
    forest: &Forest,
    at: Position,
    row: RowId,
    item: &RowItem,
    plan: &mut UnitPlan,
) -> Position {
    let Some(after) = at.after else {
        return at;
    };
    if forest.parent(after) == at.under && forest.contains(after) {
        return at;
    }
    let last = forest
        .children(at.under)
        .iter()
        .copied()
        .rfind(|&sibling| sibling != row);
    plan.notes.push(format!(
        "{item} goes back last under its parent: the row it followed has moved"
    ));
    Position {
        under: at.under,
        after: last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Direction;

    fn row(id: RowId, key: &str) -> Row {
        Row {
            id,
            item: RowItem::Issue(key.into()),
            added_by: Some("sync".into()),
        }
    }

    fn empty_plan() -> UnitPlan {
        UnitPlan {
            synchronizer: "job 7".into(),
            kind: "undo",
            direction: Direction::Into,
            round: 1,
            structure_ops: vec![],
            tracker_ops: vec![],
            notes: vec![],
        }
    }

    fn keys(forest: &Forest) -> Vec<String> {
        forest
            .walk()
            .into_iter()
            .map(|(id, depth)| format!("{}{}", "  ".repeat(depth), forest.row(id).unwrap().item))
            .collect()
    }

    /// A-1 with under it; the job removed A-3 (after A-2).
    fn removed_a3() -> (Forest, UndoRule) {
        let mut forest = Forest::new();
        forest
            .insert(
                row(0, "A-1"),
                Position {
                    under: None,
                    after: None,
                },
            )
            .unwrap();
        forest
            .insert(
                row(1, "A-2"),
                Position {
                    under: Some(0),
                    after: None,
                },
            )
            .unwrap();
        let rule = UndoRule {
            job: 7,
            structure_ops: vec![StructureOp::Remove {
                row: 2,
                item: RowItem::Issue("A-3".into()),
                from: Position {
                    under: Some(0),
                    after: Some(1),
                },
            }],
            tracker_ops: vec![],
        };
        (forest, rule)
    }

    #[test]
    fn a_removed_row_comes_back_where_it_was() {
        let (mut forest, rule) = removed_a3();
        let mut plan = empty_plan();
        super::plan(&mut forest, &mut Snapshot::new([]), &rule, &mut plan).unwrap();
        assert_eq!(keys(&forest), ["A-1", "  A-2", "  A-3"]);
        assert!(plan.notes.is_empty());
        assert!(matches!(plan.structure_ops[..], [StructureOp::Add { .. }]));
    }

    #[test]
    fn a_row_whose_neighbour_moved_away_comes_back_last_and_the_plan_says_so() {
        let (mut forest, rule) = removed_a3();
        forest
            .insert(
                row(3, "A-4"),
                Position {
                    under: Some(0),
                    after: None,
                },
            )
            .unwrap();
        forest
            .move_row(
                1,
                Position {
                    under: None,
                    after: Some(0),
                },
            )
            .unwrap();
        let mut plan = empty_plan();
        super::plan(&mut forest, &mut Snapshot::new([]), &rule, &mut plan).unwrap();
        assert_eq!(keys(&forest), ["A-1", "  A-4", "  A-3", "A-2"]);
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
    }

    #[test]
    fn a_row_added_again_since_refuses_the_whole_undo() {
        let (mut forest, rule) = removed_a3();
        forest
            .insert(
                row(5, "A-3"),
                Position {
                    under: None,
                    after: Some(0),
                },
            )
            .unwrap();
        let before = keys(&forest);
        let error = super::plan(
            &mut forest,
            &mut Snapshot::new([]),
            &rule,
            &mut empty_plan(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("cannot undo job 7: A-3 is in the structure again"),
            "{error}"
        );
        assert_eq!(keys(&forest), before);
    }
}

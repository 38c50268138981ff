//! The `subtasks` synchronizer: each issue sits under its tracker parent.
//!
//! Into the structure, first decide which issues the structure will hold:
//! an issue with a row stays unless this synchronizer placed it under an
//! issue row and its tracker parent will not be in the structure (the
//! relation that put it there is gone); an issue without a row joins when its
//! tracker parent will be in the structure. Then every issue row gets a fate:
//! - its tracker parent will be in the structure → it goes (or stays) under it;
//! - otherwise, if it sits under an issue row, it is removed (placed by this
//!   synchronizer) or moves to the top level (placed by anyone else);
//! - otherwise (top level or under a folder) it is left where it is.
//!
//! From the structure, an issue row under another issue row sets that parent
//! in the tracker, and an issue row at the top level or under a folder clears
//! a parent that is in the structure.

use std::collections::HashMap;

use crate::model::{Forest, Issue, Row, RowId, RowItem, Snapshot};

use super::diff::diff;
use super::{PlanError, TrackerOp, UnitPlan, record};

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    if let Some(cycle) = snapshot.parent_cycle() {
        return Err(PlanError::ParentCycle(cycle));
    }
    let target = Target::decide(forest, snapshot, me).build(forest, snapshot, me);
    for op in diff(forest, &target) {
        record(forest, plan, op).map_err(|source| PlanError::Internal {
            unit: me.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Which issues the target structure holds.
struct Target<'a> {
    /// Issue key → whether the target structure holds it.
    holds: HashMap<&'a str, bool>,
}

impl<'a> Target<'a> {
    fn decide(forest: &'a Forest, snapshot: &'a Snapshot, me: &str) -> Target<'a> {
        let mut target = Target {
            holds: HashMap::with_capacity(snapshot.len() + forest.len()),
        };
        let keys = forest
            .walk()
            .into_iter()
            .filter_map(|(id, _)| forest.row(id)?.item.issue_key())
            .chain(snapshot.issues().map(|i| i.key.as_str()));
        for key in keys {
            // Walk up the tracker-parent chain to the first decided issue,
            // then decide top-down (no recursion: chains can be long; the
            // snapshot was checked for cycles).
            let mut chain = vec![key];
            while let Some(parent) = snapshot
                .get(chain[chain.len() - 1])
                .and_then(|i| i.parent.as_deref())
            {
                if target.holds.contains_key(parent) || chain.contains(&parent) {
                    break;
                }
                chain.push(parent);
            }
            for &k in chain.iter().rev() {
                if !target.holds.contains_key(k) {
                    let holds = target.holds_issue(forest, snapshot, me, k);
                    target.holds.insert(k, holds);
                }
            }
        }
        target
    }

    fn holds(&self, key: &str) -> bool {
        self.holds.get(key).copied().unwrap_or(false)
    }

    /// Whether the target structure holds `key`, its tracker parent decided.
    fn holds_issue(&self, forest: &Forest, snapshot: &Snapshot, me: &str, key: &str) -> bool {
        let parent_held = parent_of(snapshot, key).is_some_and(|p| self.holds(p));
        match forest.find_issue(key) {
            Some(row) => parent_held || !(placed_by(forest, row, me) && under_issue(forest, row)),
            None => parent_held,
        }
    }

    /// The target forest: kept rows in their order, then rows joining each
    /// parent (moved in or added) in rank order.
    fn build(&self, forest: &Forest, snapshot: &Snapshot, me: &str) -> Forest {
        let walk = forest.walk();
        let mut next_id = forest.next_id();
        // New rows for held issues that have none, with ids in a stable order.
        let mut joining_issues: Vec<&Issue> = snapshot
            .issues()
            .filter(|i| self.holds(&i.key) && forest.find_issue(&i.key).is_none())
            .collect();
        joining_issues.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let mut rows: Vec<Row> = Vec::with_capacity(walk.len() + joining_issues.len());
        let mut target_row: HashMap<&str, RowId> = HashMap::new();
        for issue in &joining_issues {
            target_row.insert(&issue.key, next_id);
            rows.push(Row {
                id: next_id,
                item: RowItem::Issue(issue.key.clone()),
                added_by: Some(me.to_owned()),
            });
            next_id += 1;
        }
        let mut fates: HashMap<RowId, Fate> = HashMap::with_capacity(walk.len());
        for &(id, _) in &walk {
            let mut fate = self.fate(forest, snapshot, me, id);
            // Rows staying under a row that goes (a folder, an issue someone
            // else placed) move up to the top level instead of vanishing with it.
            if fate == Fate::Keep && forest.parent(id).is_some_and(|p| fates[&p] == Fate::Remove) {
                fate = Fate::Top;
            }
            fates.insert(id, fate);
            if fate != Fate::Remove {
                let row = forest.row(id).expect("walked rows exist");
                if let Some(key) = row.item.issue_key() {
                    target_row.insert(key, id);
                }
                rows.push(row.clone());
            }
        }
        let mut layout: HashMap<Option<RowId>, Vec<RowId>> = HashMap::new();
        let kept = |parent: Option<RowId>| -> Vec<RowId> {
            let children = forest.children(parent).iter().copied();
            children.filter(|c| fates[c] == Fate::Keep).collect()
        };
        layout.insert(None, kept(None));
        for row in &rows {
            layout.entry(Some(row.id)).or_insert_with(|| {
                if forest.contains(row.id) {
                    kept(Some(row.id))
                } else {
                    Vec::new()
                }
            });
        }
        let mut joining: HashMap<Option<RowId>, Vec<(Order, RowId)>> = HashMap::new();
        for &(id, _) in &walk {
            let destination = match fates[&id] {
                Fate::UnderParent => {
                    let key = forest
                        .row(id)
                        .and_then(|r| r.item.issue_key())
                        .expect("issue rows");
                    Some(target_row[parent_of(snapshot, key).expect("has a parent")])
                }
                Fate::Top => None,
                Fate::Keep | Fate::Remove => continue,
            };
            joining
                .entry(destination)
                .or_default()
                .push((order_of(forest, snapshot, id), id));
        }
        for issue in joining_issues {
            let parent =
                parent_of(snapshot, &issue.key).expect("joining issues have a held parent");
            joining
                .entry(Some(target_row[parent]))
                .or_default()
                .push((Some(issue.order_key()), target_row[issue.key.as_str()]));
        }
        for (parent, mut list) in joining {
            list.sort_by_key(|(order, _)| (order.is_none(), *order));
            layout
                .entry(parent)
                .or_default()
                .extend(list.into_iter().map(|(_, id)| id));
        }
        // Rows that stay where someone put them, rather than under their
        // tracker parent: only these may be lifted to break a loop.
        let in_place: Vec<RowId> = walk
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| {
                fates[id] == Fate::Keep && !self.under_tracker_parent(forest, snapshot, *id)
            })
            .collect();
        lift_rows_closing_loops(&mut layout, &in_place);
        Forest::from_layout(rows, layout, next_id)
            .expect("the layout is a forest once loops are broken")
    }

    /// Whether row `id` holds an issue that sits under its held tracker parent.
    fn under_tracker_parent(&self, forest: &Forest, snapshot: &Snapshot, id: RowId) -> bool {
        let key = forest.row(id).and_then(|r| r.item.issue_key());
        let parent = key
            .and_then(|k| parent_of(snapshot, k))
            .filter(|p| self.holds(p));
        let current = forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .and_then(|r| r.item.issue_key());
        parent.is_some() && parent == current
    }

    fn fate(&self, forest: &Forest, snapshot: &Snapshot, me: &str, id: RowId) -> Fate {
        let row = forest.row(id).expect("walked rows exist");
        let Some(key) = row.item.issue_key() else {
            return Fate::Keep;
        };
        if let Some(parent) = parent_of(snapshot, key).filter(|p| self.holds(p)) {
            let current = forest
                .parent(id)
                .and_then(|p| forest.row(p))
                .and_then(|r| r.item.issue_key());
            return if current == Some(parent) {
                Fate::Keep
            } else {
                Fate::UnderParent
            };
        }
        if !under_issue(forest, id) {
            Fate::Keep
        } else if placed_by(forest, id, me) {
            Fate::Remove
        } else if snapshot.get(key).is_some() {
            Fate::Top
        } else {
            // An issue gone from the tracker that someone else placed: leave it
            // for the synchronizer or person that put it there.
            Fate::Keep
        }
    }
}

/// Moving issues under their tracker parents can close a loop through rows
/// that stay where they are: issue A holds folder F, F holds issue B, and the
/// tracker puts A under B. A loop cannot consist of tracker parents alone (the
/// snapshot has no parent cycle), so it holds a row kept where someone put
/// it; the first such row (in display order) moves to the top level, which
/// breaks the loop.
fn lift_rows_closing_loops(layout: &mut HashMap<Option<RowId>, Vec<RowId>>, in_place: &[RowId]) {
    loop {
        let parent: HashMap<RowId, Option<RowId>> = layout
            .iter()
            .flat_map(|(p, children)| children.iter().map(move |c| (*c, *p)))
            .collect();
        let mut reachable = std::collections::HashSet::new();
        let mut stack = vec![None];
        while let Some(p) = stack.pop() {
            for &c in layout.get(&p).into_iter().flatten() {
                if reachable.insert(c) {
                    stack.push(Some(c));
                }
            }
        }
        let Some(&start) = parent.keys().filter(|id| !reachable.contains(*id)).min() else {
            return;
        };
        // Follow parents from an unreachable row until a row repeats: a loop.
        let mut seen = vec![start];
        let mut current = start;
        while let Some(Some(p)) = parent.get(&current) {
            if let Some(at) = seen.iter().position(|r| r == p) {
                seen.drain(..at);
                break;
            }
            seen.push(*p);
            current = *p;
        }
        let lifted = *in_place
            .iter()
            .find(|k| seen.contains(k))
            .expect("a loop holds a row kept in place");
        if let Some(Some(old)) = parent.get(&lifted) {
            layout
                .entry(Some(*old))
                .or_default()
                .retain(|c| *c != lifted);
        }
        layout.entry(None).or_default().push(lifted);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    UnderParent,
    Top,
    Remove,
}

/// Sibling order of rows joining a parent: issues by rank and key, then
/// rows without an issue (folders, issues gone from the tracker).
type Order<'s> = Option<(Option<&'s str>, &'s str, u64)>;

fn order_of<'s>(forest: &Forest, snapshot: &'s Snapshot, id: RowId) -> Order<'s> {
    issue_of(forest, snapshot, id).map(Issue::order_key)
}

fn parent_of<'s>(snapshot: &'s Snapshot, key: &str) -> Option<&'s str> {
    snapshot.get(key)?.parent.as_deref()
}

fn placed_by(forest: &Forest, id: RowId, me: &str) -> bool {
    forest
        .row(id)
        .is_some_and(|r| r.added_by.as_deref() == Some(me))
}

fn under_issue(forest: &Forest, id: RowId) -> bool {
    forest
        .parent(id)
        .and_then(|p| forest.row(p))
        .is_some_and(|p| p.item.issue_key().is_some())
}

fn issue_of<'s>(forest: &Forest, snapshot: &'s Snapshot, id: RowId) -> Option<&'s Issue> {
    forest
        .row(id)?
        .item
        .issue_key()
        .and_then(|k| snapshot.get(k))
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

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
//! Only the rows that change are placed, ordered by their depth in the
//! target structure, so a row's new parent is always in its final place
//! before the row moves under it (no move can put a row under its own
//! subtree); rows then removed go children first. The work beyond one pass
//! over the rows is proportional to what changes.
//!
//! From the structure, an issue row under another issue row sets that parent
//! in the tracker, and an issue row at the top level or under a folder clears
//! a parent that is in the structure.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::model::{Forest, Issue, Position, Row, RowId, RowItem, Snapshot};

use super::{PlanError, StructureOp, TrackerOp, UnitPlan, record};

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    if let Some(cycle) = snapshot.parent_cycle() {
        return Err(PlanError::ParentCycle(cycle));
    }
    let changes = Target::decide(forest, snapshot, me).changes(forest, snapshot, me);
    let internal = |source| PlanError::Internal {
        unit: me.to_owned(),
        source,
    };
    for (id, under, new_row) in changes.placements {
        let after = forest.children(under).iter().copied().rfind(|&c| c != id);
        let to = Position { under, after };
        let op = match new_row {
            Some(row) => StructureOp::Add { row, at: to },
            None => {
                let item = forest.row(id).expect("placed rows exist").item.clone();
                // `from` is filled in by `record` from the working forest.
                StructureOp::Move { row: id, item, from: to, to }
            }
        };
        record(forest, plan, op).map_err(internal)?;
    }
    for id in changes.removals {
        let item = forest.row(id).expect("removed rows exist").item.clone();
        let op = StructureOp::Remove { row: id, item, from: Position { under: None, after: None } };
        record(forest, plan, op).map_err(internal)?;
    }
    Ok(())
}

/// Which issues the target structure holds.
struct Target<'a> {
    /// Issue key → whether the target structure holds it.
    holds: HashMap<&'a str, bool>,
}

/// What `into` changes: rows to place (moved, or new with their row), in an
/// order that keeps every step valid, then rows to remove, children first.
struct Changes {
    placements: Vec<(RowId, Option<RowId>, Option<Row>)>,
    removals: Vec<RowId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    UnderParent,
    Top,
    Remove,
}

impl<'a> Target<'a> {
    fn decide(forest: &'a Forest, snapshot: &'a Snapshot, me: &str) -> Target<'a> {
        let mut target = Target {
            holds: HashMap::with_capacity(snapshot.len() + forest.len()),
        };
        let walk = forest.walk();
        let keys = walk
            .iter()
            .filter_map(|(id, _)| forest.row(*id)?.item.issue_key())
            .chain(snapshot.issues().map(|i| i.key.as_str()));
        for key in keys {
            // Walk up the tracker-parent chain to the first decided issue,
            // then decide top-down (no recursion: chains can be long; the
            // snapshot was checked for cycles).
            let mut chain = vec![key];
            while let Some(parent) = parent_of(snapshot, chain[chain.len() - 1]) {
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

    fn changes(&self, forest: &Forest, snapshot: &Snapshot, me: &str) -> Changes {
        let walk = forest.walk();
        let mut fates: HashMap<RowId, Fate> = HashMap::with_capacity(walk.len());
        // Rows staying where someone put them rather than under their
        // tracker parent, in display order: only these may be lifted to
        // break a loop.
        let mut in_place = Vec::new();
        // Row id → its parent in the target, for the rows that change place.
        let mut destination: HashMap<RowId, Option<RowId>> = HashMap::new();
        let mut new_rows: HashMap<RowId, Row> = HashMap::new();
        for &(id, _) in &walk {
            let mut fate = self.fate(forest, snapshot, me, id);
            // Rows staying under a row that goes (a folder, an issue someone
            // else placed) move up to the top level instead of vanishing with it.
            if fate == Fate::Keep && forest.parent(id).is_some_and(|p| fates[&p] == Fate::Remove) {
                fate = Fate::Top;
            }
            fates.insert(id, fate);
            match fate {
                Fate::Keep if !self.under_tracker_parent(forest, snapshot, id) => in_place.push(id),
                Fate::Top => {
                    destination.insert(id, None);
                }
                _ => {}
            }
        }
        // New rows for held issues that have none, with ids in a stable order.
        let mut joining: Vec<&Issue> = snapshot
            .issues()
            .filter(|i| self.holds(&i.key) && forest.find_issue(&i.key).is_none())
            .collect();
        joining.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let mut new_ids: HashMap<&str, RowId> = HashMap::with_capacity(joining.len());
        for (id, issue) in (forest.next_id()..).zip(&joining) {
            new_ids.insert(&issue.key, id);
        }
        let row_of = |key: &str| forest.find_issue(key).or_else(|| new_ids.get(key).copied());
        for &(id, _) in &walk {
            if fates[&id] == Fate::UnderParent {
                let key = forest.row(id).and_then(|r| r.item.issue_key()).expect("issue rows");
                let parent = parent_of(snapshot, key).and_then(row_of).expect("held parents have rows");
                destination.insert(id, Some(parent));
            }
        }
        for issue in &joining {
            let id = new_ids[issue.key.as_str()];
            let parent = parent_of(snapshot, &issue.key).and_then(row_of).expect("joining issues have a held parent");
            destination.insert(id, Some(parent));
            new_rows.insert(id, Row { id, item: RowItem::Issue(issue.key.clone()), added_by: Some(me.to_owned()) });
        }
        let depths = loop {
            match target_depths(forest, &destination) {
                Ok(depths) => break depths,
                Err(looped) => {
                    let lifted = *in_place
                        .iter()
                        .find(|r| looped.contains(*r))
                        .expect("a loop holds a row kept where someone put it");
                    destination.insert(lifted, None);
                }
            }
        };
        let order = |id: RowId| {
            let issue = match new_rows.get(&id) {
                Some(row) => row.item.issue_key().and_then(|k| snapshot.get(k)),
                None => issue_of(forest, snapshot, id),
            };
            issue.map(Issue::order_key)
        };
        let mut placements: Vec<(usize, Option<RowId>, bool, Option<(Option<&str>, &str, u64)>, RowId)> = destination
            .iter()
            .map(|(&id, &under)| {
                let rank = order(id);
                (depths[&id], under, rank.is_none(), rank, id)
            })
            .collect();
        placements.sort_unstable();
        let removals = walk.iter().rev().map(|(id, _)| *id).filter(|id| fates[id] == Fate::Remove).collect();
        Changes {
            placements: placements
                .into_iter()
                .map(|(_, under, _, _, id)| (id, under, new_rows.remove(&id)))
                .collect(),
            removals,
        }
    }

    /// Whether row `id` holds an issue that sits under its held tracker parent.
    fn under_tracker_parent(&self, forest: &Forest, snapshot: &Snapshot, id: RowId) -> bool {
        let key = forest.row(id).and_then(|r| r.item.issue_key());
        let parent = key.and_then(|k| parent_of(snapshot, k)).filter(|p| self.holds(p));
        let current = forest.parent(id).and_then(|p| forest.row(p)).and_then(|r| r.item.issue_key());
        parent.is_some() && parent == current
    }

    fn fate(&self, forest: &Forest, snapshot: &Snapshot, me: &str, id: RowId) -> Fate {
        let row = forest.row(id).expect("walked rows exist");
        let Some(key) = row.item.issue_key() else {
            return Fate::Keep;
        };
        if let Some(parent) = parent_of(snapshot, key).filter(|p| self.holds(p)) {
            let current = forest.parent(id).and_then(|p| forest.row(p)).and_then(|r| r.item.issue_key());
            return if current == Some(parent) { Fate::Keep } else { Fate::UnderParent };
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

/// The depth in the target structure of every row that changes place (rows
/// that stay keep their current parent). Moving issues under their tracker
/// parents can close a loop through rows that stay where they are (issue A
/// holds folder F, F holds issue B, and the tracker puts A under B); such a
/// loop is returned instead. A loop cannot consist of tracker parents alone
/// (the snapshot has no parent cycle), so it holds a row kept where someone
/// put it, which the caller lifts to the top level.
fn target_depths(
    forest: &Forest,
    destination: &HashMap<RowId, Option<RowId>>,
) -> Result<HashMap<RowId, usize>, HashSet<RowId>> {
    let parent = |id: RowId| match destination.get(&id) {
        Some(under) => *under,
        None => forest.parent(id),
    };
    let mut depths: HashMap<RowId, usize> = HashMap::with_capacity(destination.len());
    let mut starts: Vec<RowId> = destination.keys().copied().collect();
    starts.sort_unstable();
    for start in starts {
        let mut chain = vec![start];
        let mut on_chain = HashSet::new();
        on_chain.insert(start);
        let base = loop {
            let last = chain[chain.len() - 1];
            match parent(last) {
                None => break 0,
                Some(p) => {
                    if let Some(depth) = depths.get(&p) {
                        break depth + 1;
                    }
                    if !on_chain.insert(p) {
                        let from = chain.iter().position(|r| *r == p).expect("on the chain");
                        return Err(chain[from..].iter().copied().collect());
                    }
                    chain.push(p);
                }
            }
        };
        for (offset, id) in chain.iter().rev().enumerate() {
            depths.insert(*id, base + offset);
        }
    }
    Ok(depths)
}

fn parent_of<'s>(snapshot: &'s Snapshot, key: &str) -> Option<&'s str> {
    snapshot.get(key)?.parent.as_deref()
}

fn placed_by(forest: &Forest, id: RowId, me: &str) -> bool {
    forest.row(id).is_some_and(|r| r.added_by.as_deref() == Some(me))
}

fn under_issue(forest: &Forest, id: RowId) -> bool {
    forest
        .parent(id)
        .and_then(|p| forest.row(p))
        .is_some_and(|p| p.item.issue_key().is_some())
}

fn issue_of<'s>(forest: &Forest, snapshot: &'s Snapshot, id: RowId) -> Option<&'s Issue> {
    forest.row(id)?.item.issue_key().and_then(|k| snapshot.get(k))
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

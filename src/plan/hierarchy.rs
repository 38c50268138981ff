//! Arranging rows along a parent relation: what `subtasks` (the tracker's
//! parent field) and `links` (one link type) do into the structure.
//!
//! The relation comes as a [`Snapshot`] whose `parent` is the relation's
//! parent (the caller has checked it has no cycle). First decide which
//! issues the structure will hold: an issue with a row stays unless this
//! synchronizer placed it under an issue row and its parent will not be in
//! the structure (the relation that put it there is gone); an issue without
//! a row joins when its parent will be in the structure (if the synchronizer
//! adds children) or when it is one of the [`Reach::roots`]. Then every
//! issue row gets a fate:
//! - its parent will be in the structure → it goes (or stays) under it;
//! - otherwise, if it sits under an issue row, it is removed (placed by this
//!   synchronizer), or moves to the top level (a root this synchronizer
//!   placed, or, with [`Reach::lift_strays`], a row placed by anyone else);
//! - otherwise (top level or under a folder) it is left where it is.
//!
//! Only the rows that change are placed, ordered by their depth in the
//! target structure, so a row's new parent is always in its final place
//! before the row moves under it (no move can put a row under its own
//! subtree); rows then removed go children first. The work beyond one pass
//! over the rows is proportional to what changes.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::model::{Forest, Issue, Position, Row, RowId, RowItem, RowMap, Snapshot};

use super::{PlanError, StructureOp, UnitPlan, record};

/// Which issues an arranging synchronizer brings into the structure, and
/// what it does with rows its relation does not explain.
pub(super) struct Reach<'a> {
    /// Issues without a row join under their parent when it is held.
    pub adds_children: bool,
    /// Issues held whatever their parent, placed at the top level, by
    /// snapshot position (links with scope `all`: the roots of the link
    /// hierarchy); empty for none.
    pub roots: &'a [bool],
    /// Rows someone else put under an issue that is not their parent move
    /// to the top level (subtasks: the parent field is the issue's only
    /// parent) rather than stay (links: a row may sit under an issue for
    /// reasons this link type does not know).
    pub lift_strays: bool,
}

impl Reach<'_> {
    fn is_root(&self, position: usize) -> bool {
        self.roots.get(position).copied().unwrap_or(false)
    }
}

/// Places rows along `relation`'s parents; `relation` has no parent cycle.
pub(super) fn arrange(
    forest: &mut Forest,
    relation: &Snapshot,
    me: &str,
    declared: &std::collections::HashSet<RowItem>,
    reach: &Reach,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    let changes = Changes::compute(forest, relation, me, declared, reach);
    let internal = |source| PlanError::Internal {
        unit: me.to_owned(),
        source,
    };
    for Placing {
        id,
        under,
        new_row,
        rank,
    } in changes.placements
    {
        let item = |s: RowId| &forest.row(s).expect("siblings exist").item;
        let to = forest.position_by_rank(
            id,
            rank,
            under,
            |s| rank_of(relation, item(s)),
            // Declared rows are few; most structures have none to pass over.
            |s| !declared.is_empty() && declared.contains(item(s)),
        );
        let op = match new_row {
            Some(row) => StructureOp::Add { row, at: to },
            None => {
                let item = forest.row(id).expect("placed rows exist").item.clone();
                // `from` is filled in by `record` from the working forest.
                StructureOp::Move {
                    row: id,
                    item,
                    from: to,
                    to,
                }
            }
        };
        record(forest, plan, op).map_err(internal)?;
    }
    for id in changes.removals {
        let item = forest.row(id).expect("removed rows exist").item.clone();
        let from = Position {
            under: None,
            after: None,
        };
        record(
            forest,
            plan,
            StructureOp::Remove {
                row: id,
                item,
                from,
            },
        )
        .map_err(internal)?;
    }
    Ok(())
}

/// What rows are ordered by among their siblings: [`Issue::order_key`].
type Rank<'a> = (Option<&'a str>, &'a str, u64, &'a str);

/// A row's place in the sibling order: its issue's rank in the tracker.
fn rank_of<'a>(relation: &'a Snapshot, item: &RowItem) -> Option<Rank<'a>> {
    item.issue_key()
        .and_then(|key| relation.get(key))
        .map(Issue::order_key)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Stays: already under its parent.
    UnderParentAlready,
    /// Stays where someone put it (top level, a folder, ...).
    InPlace,
    UnderParent,
    Top,
    Remove,
}

/// The structure and the snapshot, cross-indexed by position.
struct View<'a> {
    forest: &'a Forest,
    snapshot: &'a Snapshot,
    me: &'a str,
    /// Rows the Structure declares: they stay where declared.
    declared: &'a std::collections::HashSet<RowItem>,
    reach: &'a Reach<'a>,
    /// Row id → position of its issue in the snapshot (None: a folder, or
    /// an issue the tracker no longer has).
    issue_of_row: RowMap<usize>,
    /// Snapshot position → the row holding that issue.
    row_of_issue: Vec<Option<RowId>>,
}

impl<'a> View<'a> {
    fn new(
        forest: &'a Forest,
        snapshot: &'a Snapshot,
        me: &'a str,
        declared: &'a std::collections::HashSet<RowItem>,
        reach: &'a Reach<'a>,
        walk: &[(RowId, usize)],
    ) -> View<'a> {
        let mut view = View {
            forest,
            snapshot,
            me,
            declared,
            reach,
            issue_of_row: forest.row_map(),
            row_of_issue: vec![None; snapshot.len()],
        };
        for &(id, _) in walk {
            let position = forest
                .row(id)
                .and_then(|r| r.item.issue_key())
                .and_then(|k| snapshot.position(k));
            if let Some(position) = position {
                view.issue_of_row.insert(id, position);
                view.row_of_issue[position] = Some(id);
            }
        }
        view
    }

    fn issue_of(&self, id: RowId) -> Option<usize> {
        self.issue_of_row.get(id).copied()
    }

    fn placed_by_me(&self, id: RowId) -> bool {
        self.forest
            .row(id)
            .is_some_and(|r| r.added_by.as_deref() == Some(self.me))
    }

    fn under_issue(&self, id: RowId) -> bool {
        self.forest
            .parent(id)
            .and_then(|p| self.forest.row(p))
            .is_some_and(|p| p.item.issue_key().is_some())
    }

    /// Which issues the target structure holds, by snapshot position: an
    /// issue with a row stays unless this synchronizer placed it under an
    /// issue row and its parent is not held; an issue without a row joins
    /// when its parent is held (if the synchronizer adds children). Roots
    /// are always held. Decided up each parent chain
    /// first, without recursion (chains can be long; they have no cycle).
    fn held(&self) -> Vec<bool> {
        let n = self.snapshot.len();
        let mut held: Vec<Option<bool>> = vec![None; n];
        for start in 0..n {
            let mut chain = vec![start];
            while let Some(parent) = self.snapshot.parent_position(chain[chain.len() - 1]) {
                if held[parent].is_some() {
                    break;
                }
                chain.push(parent);
            }
            for &at in chain.iter().rev() {
                let parent_held = self
                    .snapshot
                    .parent_position(at)
                    .is_some_and(|p| held[p] == Some(true));
                let holds = self.reach.is_root(at)
                    || match self.row_of_issue[at] {
                        Some(row) => {
                            parent_held || !(self.placed_by_me(row) && self.under_issue(row))
                        }
                        None => parent_held && self.reach.adds_children,
                    };
                held[at] = Some(holds);
            }
        }
        held.into_iter().map(|h| h == Some(true)).collect()
    }

    fn fate(&self, held: &[bool], id: RowId) -> Fate {
        let row = self.forest.row(id).expect("walked rows exist");
        if row.item.issue_key().is_none() || self.declared.contains(&row.item) {
            return Fate::InPlace;
        }
        let issue = self.issue_of(id);
        if let Some(parent) = issue
            .and_then(|i| self.snapshot.parent_position(i))
            .filter(|p| held[*p])
        {
            let current = self.forest.parent(id).and_then(|p| self.issue_of(p));
            return if current == Some(parent) {
                Fate::UnderParentAlready
            } else {
                Fate::UnderParent
            };
        }
        let root = issue.is_some_and(|i| self.reach.is_root(i));
        if !self.under_issue(id) {
            Fate::InPlace
        } else if self.placed_by_me(id) {
            if root { Fate::Top } else { Fate::Remove }
        } else if issue.is_some() && self.reach.lift_strays {
            Fate::Top
        } else {
            // Someone else placed it there (or its issue is gone from the
            // tracker): leave it for the synchronizer or person that did.
            Fate::InPlace
        }
    }
}

/// What `into` changes: rows to place (moved, or new with their row), in an
/// order that keeps every step valid, then rows to remove, children first.
/// Rows to place, in the order to place them, and rows to remove.
struct Changes<'s> {
    placements: Vec<Placing<'s>>,
    removals: Vec<RowId>,
}

/// A row that changes place: its new parent, the row itself when it is new,
/// and the rank it takes its place among its siblings by.
struct Placing<'s> {
    id: RowId,
    under: Option<RowId>,
    new_row: Option<Row>,
    rank: Option<Rank<'s>>,
}

impl<'s> Changes<'s> {
    fn compute(
        forest: &Forest,
        snapshot: &'s Snapshot,
        me: &str,
        declared: &std::collections::HashSet<RowItem>,
        reach: &Reach,
    ) -> Changes<'s> {
        let walk = forest.walk();
        let view = View::new(forest, snapshot, me, declared, reach, &walk);
        let held = view.held();
        let mut fates: RowMap<Fate> = forest.row_map();
        // Rows kept where someone put them, in display order: only these may
        // be lifted to break a loop.
        let mut in_place = Vec::new();
        // Row → its parent in the target, for the rows that change place.
        let mut destination: HashMap<RowId, Option<RowId>> = HashMap::new();
        let mut moving_under_parent = Vec::new();
        for &(id, _) in &walk {
            let mut fate = view.fate(&held, id);
            // Rows staying under a row that goes (a folder, an issue someone
            // else placed) move up to the top level instead of vanishing with it.
            let parent_goes = forest
                .parent(id)
                .is_some_and(|p| fates.get(p) == Some(&Fate::Remove));
            if parent_goes && matches!(fate, Fate::InPlace | Fate::UnderParentAlready) {
                fate = Fate::Top;
            }
            fates.insert(id, fate);
            match fate {
                Fate::InPlace => in_place.push(id),
                Fate::Top => {
                    destination.insert(id, None);
                }
                Fate::UnderParent => moving_under_parent.push(id),
                Fate::UnderParentAlready | Fate::Remove => {}
            }
        }
        // New rows for held issues that have none, with ids in a stable order.
        let mut joining: Vec<usize> = (0..snapshot.len())
            .filter(|&i| held[i] && view.row_of_issue[i].is_none())
            .collect();
        joining.sort_by_cached_key(|&at| snapshot.at(at).order_key());
        let mut target_row = view.row_of_issue.clone();
        let mut new_rows: HashMap<RowId, Row> = HashMap::with_capacity(joining.len());
        for (id, &at) in (forest.next_id()..).zip(&joining) {
            target_row[at] = Some(id);
            let item = RowItem::Issue(snapshot.at(at).key.clone());
            new_rows.insert(
                id,
                Row {
                    id,
                    item,
                    added_by: Some(me.to_owned()),
                },
            );
        }
        // Roots joining without a held parent go to the top level.
        let parent_row = |at: usize| {
            snapshot
                .parent_position(at)
                .filter(|p| held[*p])
                .map(|p| target_row[p].expect("held parents have rows"))
        };
        for id in moving_under_parent {
            let at = view
                .issue_of(id)
                .expect("rows moving under a parent hold an issue");
            destination.insert(id, parent_row(at));
        }
        for (id, &at) in (forest.next_id()..).zip(&joining) {
            destination.insert(id, parent_row(at));
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
        let issue_of = |id: RowId| -> Option<&'s Issue> {
            match new_rows.get(&id) {
                Some(row) => row.item.issue_key().and_then(|k| snapshot.get(k)),
                None => view.issue_of(id).map(|at| snapshot.at(at)),
            }
        };
        // By depth, then destination, then rank (rows without an issue last).
        let mut placements: Vec<_> = destination
            .iter()
            .map(|(&id, &under)| {
                let rank = issue_of(id).map(Issue::order_key);
                (depths[&id], under, rank.is_none(), rank, id)
            })
            .collect();
        placements.sort_unstable();
        let removals = walk
            .iter()
            .rev()
            .map(|(id, _)| *id)
            .filter(|id| fates.get(*id) == Some(&Fate::Remove))
            .collect();
        Changes {
            placements: placements
                .into_iter()
                .map(|(_, under, _, rank, id)| Placing {
                    id,
                    under,
                    new_row: new_rows.remove(&id),
                    rank,
                })
                .collect(),
            removals,
        }
    }
}

/// The depth in the target structure of every row that changes place (rows
/// that stay keep their current parent). Moving issues under their tracker
/// parents can close a loop through rows that stay where they are (issue A
/// holds folder F, F holds issue B, and the tracker puts A under B); such a
/// loop is returned instead. A loop cannot consist of parents alone
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
            match parent(chain[chain.len() - 1]) {
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

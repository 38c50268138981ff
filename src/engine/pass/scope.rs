//! A pass's neighbourhood: the rows and issues around what changed, read
//! from the store instead of the whole structure and mirror, so that a pass
//! after K changes of N costs O(K), not O(N).
//!
//! The rest of the structure agrees with the tracker already: the last pass
//! left it so, and everything since is in the pass's changes (the mirror's
//! changed issues, the journal's moves by others) or its held issues. The
//! planner runs unchanged over the neighbourhood, which is closed so that it
//! decides each issue in it as it would over everything:
//!
//! - every issue's row, and every row's issue (a row whose issue is absent
//!   reads as gone from the tracker; an issue whose row is absent would be
//!   added again);
//! - every row's parent rows up to the top level;
//! - for subtasks, every issue's tracker parents up to its root (whether an
//!   issue is held depends on them) and the tracker's subtree of each
//!   changed issue (issues that join or leave with it). A filter needs
//!   neither: whether an issue matches is its query's answer.
//!
//! A plan is kept only when everything it touches was read whole: each
//! parent a row goes to or leaves (its place among its siblings, by rank,
//! and the journal's "from"), each removed row's subtree, the tracker's
//! subtree of each issue it places (subtasks). If it needs more, the
//! neighbourhood grows by what it named and the pass plans again (the
//! planner is pure, so this only costs time); one that keeps growing gives
//! way to the whole structure.
//!
//! Synchronizer types whose rule reads the whole structure at once (links,
//! agile, statusRollup) plan over everything.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{Forest, Issue, RowId, RowItem, Snapshot};
use crate::plan::{StructureOp, StructurePlan};
use crate::spec::SynchronizerType;
use crate::store::{LaidRow, Store, StoreError, StructureHead};

/// How many times a pass grows its neighbourhood before it plans the whole
/// structure instead: each growth reads what a plan named, and a change
/// that reaches this far is not a small one.
const MOST_GROWTHS: usize = 6;

/// What a rule reads around an issue besides its row and the rows above it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Reach {
    /// Nothing (filter: whether an issue matches is the query's answer).
    #[default]
    Rows,
    /// Its tracker parents and, for a changed issue, its tracker subtree
    /// (subtasks: an issue is held when its parent is).
    TrackerParents,
}

/// What the neighbourhood must hold: the planner's inputs are closed over
/// it by [`Neighbourhood::grow`].
#[derive(Debug, Default)]
pub(super) struct Wants {
    /// Issues (and their rows).
    pub issues: BTreeSet<String>,
    /// Folders (and their rows).
    pub folders: BTreeSet<String>,
    /// Parents whose rows must all be read (`None`: the top level).
    pub siblings: BTreeSet<Option<RowId>>,
    /// Rows whose whole subtree must be read.
    pub subtrees: BTreeSet<RowId>,
    /// Issues whose tracker subtree must be read.
    pub tracker_subtrees: BTreeSet<String>,
}

impl Wants {
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
            && self.folders.is_empty()
            && self.siblings.is_empty()
            && self.subtrees.is_empty()
            && self.tracker_subtrees.is_empty()
    }
}

/// The part of one structure and its tracker's mirror a pass plans over.
#[derive(Debug, Default)]
pub(super) struct Neighbourhood {
    reach: Reach,
    /// Read before any row: a structure edited after it makes the pass's
    /// commit a conflict, never a mix of two versions.
    head: Option<StructureHead>,
    issues: BTreeMap<String, Issue>,
    rows: HashMap<RowId, LaidRow>,
    /// Keys looked up in the mirror, and as rows.
    issues_sought: BTreeSet<String>,
    rows_sought: BTreeSet<RowItem>,
    /// Parents whose rows are all read.
    whole: BTreeSet<Option<RowId>>,
    subtrees: BTreeSet<RowId>,
    tracker_subtrees: BTreeSet<String>,
    /// How many times it grew after its first read.
    growths: usize,
}

impl Neighbourhood {
    /// An empty neighbourhood for a synchronizer of `kind`, if its rule
    /// decides each issue from what is around it (see the module's doc).
    pub fn of(kind: SynchronizerType) -> Option<Neighbourhood> {
        let reach = match kind {
            SynchronizerType::Filter => Reach::Rows,
            SynchronizerType::Subtasks => Reach::TrackerParents,
            _ => return None,
        };
        Some(Neighbourhood {
            reach,
            ..Neighbourhood::default()
        })
    }

    /// Reads what `wants` names and everything it needs to be closed (see
    /// the module's doc).
    pub fn grow<S: Store>(
        &mut self,
        store: &S,
        structure: &str,
        tracker: &str,
        wants: Wants,
    ) -> Result<(), StoreError> {
        if self.head.is_none() {
            self.head = Some(store.structure_head(structure)?);
        }
        let mut keys: Vec<String> = wants.issues.into_iter().collect();
        let mut items: Vec<RowItem> = keys
            .iter()
            .cloned()
            .map(RowItem::Issue)
            .chain(wants.folders.into_iter().map(RowItem::Folder))
            .collect();
        let mut ids: Vec<RowId> = Vec::new();
        let mut siblings: Vec<Option<RowId>> = wants.siblings.into_iter().collect();
        let mut subtrees: Vec<RowId> = wants.subtrees.into_iter().collect();
        let mut tracker_subtrees: Vec<String> = match self.reach {
            Reach::Rows => Vec::new(),
            Reach::TrackerParents => wants.tracker_subtrees.into_iter().collect(),
        };
        loop {
            keys.retain(|k| !self.issues_sought.contains(k));
            items.retain(|i| !self.rows_sought.contains(i));
            ids.retain(|id| !self.rows.contains_key(id));
            siblings.retain(|p| !self.whole.contains(p));
            subtrees.retain(|r| !self.subtrees.contains(r));
            tracker_subtrees.retain(|k| !self.tracker_subtrees.contains(k));
            if keys.is_empty()
                && items.is_empty()
                && ids.is_empty()
                && siblings.is_empty()
                && subtrees.is_empty()
                && tracker_subtrees.is_empty()
            {
                return Ok(());
            }
            let mut found: Vec<LaidRow> = Vec::new();
            let mut read: Vec<Issue> = Vec::new();
            if !keys.is_empty() {
                keys.sort();
                keys.dedup();
                let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
                read.extend(store.mirror_issues_of(tracker, &asked)?);
                self.issues_sought.extend(keys.drain(..));
            }
            if !tracker_subtrees.is_empty() {
                tracker_subtrees.sort();
                tracker_subtrees.dedup();
                let asked: Vec<&str> = tracker_subtrees.iter().map(String::as_str).collect();
                let children = store.mirror_children(tracker, &asked)?;
                self.tracker_subtrees.extend(tracker_subtrees.drain(..));
                // The subtree goes on down.
                tracker_subtrees.extend(children.iter().map(|c| c.key.clone()));
                read.extend(children);
            }
            for issue in read {
                self.issues_sought.insert(issue.key.clone());
                items.push(RowItem::Issue(issue.key.clone()));
                if let Some(parent) = issue
                    .parent
                    .as_ref()
                    .filter(|_| self.reach == Reach::TrackerParents)
                {
                    keys.push(parent.clone());
                    items.push(RowItem::Issue(parent.clone()));
                }
                self.issues.insert(issue.key.clone(), issue);
            }
            if !items.is_empty() {
                items.sort();
                items.dedup();
                found.extend(store.rows_of_items(structure, &items)?);
                self.rows_sought.extend(items.drain(..));
            }
            if !ids.is_empty() {
                ids.sort_unstable();
                ids.dedup();
                found.extend(store.rows_of_ids(structure, &ids)?);
                ids.clear();
            }
            for parent in siblings.drain(..) {
                found.extend(store.rows_under(structure, parent)?);
                self.whole.insert(parent);
            }
            for row in std::mem::take(&mut subtrees) {
                let under = store.rows_under(structure, Some(row))?;
                self.whole.insert(Some(row));
                self.subtrees.insert(row);
                subtrees.extend(under.iter().map(|l| l.row.id));
                found.extend(under);
            }
            for laid in found {
                if let Some(key) = laid.row.item.issue_key() {
                    keys.push(key.to_owned());
                }
                self.rows_sought.insert(laid.row.item.clone());
                if let Some(parent) = laid.parent {
                    ids.push(parent);
                }
                self.rows.entry(laid.row.id).or_insert(laid);
            }
        }
    }

    /// Counts one more growth; false once there were too many, and the
    /// pass should plan over the whole structure instead.
    pub fn may_grow(&mut self) -> bool {
        self.growths += 1;
        self.growths <= MOST_GROWTHS
    }

    /// The structure's version the rows were read at.
    pub fn version(&self) -> u64 {
        self.head.unwrap_or_default().version
    }

    /// Every issue key in the neighbourhood, of its issues and its rows.
    pub fn keys(&self) -> Vec<&str> {
        let rows = self.rows.values().filter_map(|l| l.row.item.issue_key());
        let keys: BTreeSet<&str> = self.issues.keys().map(String::as_str).chain(rows).collect();
        keys.into_iter().collect()
    }

    /// The neighbourhood's rows as a forest, each parent's rows in their
    /// stored order.
    pub fn forest(&self) -> Result<Forest, crate::model::ForestError> {
        let next_row = self.head.unwrap_or_default().next_row;
        let mut placed: Vec<&LaidRow> = self.rows.values().collect();
        placed.sort_unstable_by_key(|l| (l.parent, l.position));
        let mut children: std::collections::HashMap<Option<RowId>, Vec<RowId>> =
            std::collections::HashMap::new();
        for laid in &placed {
            children.entry(laid.parent).or_default().push(laid.row.id);
        }
        let rows = placed.into_iter().map(|l| l.row.clone()).collect();
        Forest::from_layout(rows, children, next_row)
    }

    /// The neighbourhood's issues, by key.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.issues.values().cloned())
    }

    /// What `plan` touched that the neighbourhood did not read whole;
    /// empty when the plan is the one a plan over everything would make.
    pub fn lacks(&self, plan: &StructurePlan) -> Wants {
        let mut wants = Wants::default();
        let ops = plan.units.iter().flat_map(|u| &u.structure_ops);
        for op in ops {
            let (from, to, removed) = match op {
                StructureOp::Add { at, .. } => (None, Some(at.under), None),
                StructureOp::Move { from, to, .. } => (Some(from.under), Some(to.under), None),
                StructureOp::Remove { row, from, .. } => (Some(from.under), None, Some(*row)),
            };
            for parent in from.into_iter().chain(to) {
                if !self.whole.contains(&parent) {
                    wants.siblings.insert(parent);
                }
            }
            if let Some(row) = removed
                && !self.subtrees.contains(&row)
            {
                wants.subtrees.insert(row);
            }
            if let Some(key) = op.item().issue_key()
                && self.reach == Reach::TrackerParents
                && !self.tracker_subtrees.contains(key)
            {
                wants.tracker_subtrees.insert(key.to_owned());
            }
        }
        wants
    }
}

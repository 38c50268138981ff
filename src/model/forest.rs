//! A structure's content: an ordered forest of rows, each holding an issue
//! (at most once per structure) or a folder.

use foldhash::HashMap;

use super::RowMap;

use serde::{Deserialize, Serialize};

/// A row's identity inside one structure; stable across moves.
pub type RowId = u64;

/// What a row shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RowItem {
    Issue(String),
    Folder(String),
}

impl RowItem {
    pub fn issue_key(&self) -> Option<&str> {
        match self {
            RowItem::Issue(key) => Some(key),
            RowItem::Folder(_) => None,
        }
    }
}

impl std::fmt::Display for RowItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowItem::Issue(key) => f.write_str(key),
            RowItem::Folder(name) => write!(f, "{name}/"),
        }
    }
}

/// A row and who put it there. `added_by` names the synchronizer that added
/// the row; `None` means a person or the structure's declared rows did, and
/// such rows are never removed by a synchronizer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub id: RowId,
    pub item: RowItem,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_by: Option<String>,
}

/// Where a row sits: under `under` (or at the top level), right after the
/// sibling `after` (or first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub under: Option<RowId>,
    pub after: Option<RowId>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForestError {
    #[error("row {0} does not exist")]
    NoSuchRow(RowId),
    #[error("row {0} already exists")]
    DuplicateRow(RowId),
    #[error("{0} is already in the structure")]
    DuplicateItem(RowItem),
    #[error("row {row} cannot go under its own descendant {under}")]
    WouldCycle { row: RowId, under: RowId },
    #[error("row {after} is not a child of the target parent")]
    AnchorNotSibling { after: RowId },
    #[error("row {0} still has children")]
    HasChildren(RowId),
}

#[derive(Clone, Debug)]
struct Node {
    row: Row,
    parent: Option<RowId>,
    children: Vec<RowId>,
}

/// An ordered forest with indexes by row id, issue key and folder name.
///
/// Rows are stored by id in a [`RowMap`] (a vector for a whole structure:
/// ids are handed out in sequence and never reused, so it stays dense) and
/// issues and folders are found by name without allocating: planning
/// 100,000 rows does millions of lookups.
#[derive(Clone, Debug, Default)]
pub struct Forest {
    nodes: RowMap<Node>,
    len: usize,
    roots: Vec<RowId>,
    issues: HashMap<String, RowId>,
    folders: HashMap<String, RowId>,
    next_id: RowId,
}

/// The sibling `row` goes right after among `siblings` (in order), by
/// [`Forest::position_by_rank`]'s rule; for callers that hold a parent's
/// rows and not the whole forest (a manual move read from the store).
pub fn after_by_rank<K: Ord>(
    siblings: &[RowId],
    row: RowId,
    mine: Option<K>,
    rank: impl Fn(RowId) -> Option<K>,
    stay_ahead: impl Fn(RowId) -> bool,
) -> Option<RowId> {
    let mut siblings = siblings.iter().copied().filter(|&s| s != row);
    let Some(mine) = mine else {
        return siblings.next_back();
    };
    // Scanned from the end: a fresh import joins in rank order, so its
    // rows find their place at the first look.
    siblings
        .rev()
        .find(|&s| rank(s).is_some_and(|theirs| theirs < mine) || stay_ahead(s))
}

impl Forest {
    pub fn new() -> Self {
        Forest {
            next_id: 1,
            ..Forest::default()
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An empty map by row id stored as this forest's rows are: for code
    /// that keeps something per row (the planner).
    pub fn row_map<T>(&self) -> RowMap<T> {
        RowMap::like(&self.nodes)
    }

    /// The id the next added row gets; ids are never reused.
    pub fn next_id(&self) -> RowId {
        self.next_id.max(1)
    }

    fn node(&self, id: RowId) -> Option<&Node> {
        self.nodes.get(id)
    }

    pub fn row(&self, id: RowId) -> Option<&Row> {
        self.node(id).map(|n| &n.row)
    }

    pub fn contains(&self, id: RowId) -> bool {
        self.node(id).is_some()
    }

    /// The parent of `id` (`None` for a top-level row or an unknown id).
    pub fn parent(&self, id: RowId) -> Option<RowId> {
        self.node(id).and_then(|n| n.parent)
    }

    pub fn children(&self, parent: Option<RowId>) -> &[RowId] {
        match parent {
            None => &self.roots,
            Some(id) => self.node(id).map_or(&[], |n| &n.children),
        }
    }

    pub fn find(&self, item: &RowItem) -> Option<RowId> {
        match item {
            RowItem::Issue(key) => self.find_issue(key),
            RowItem::Folder(name) => self.find_folder(name),
        }
    }

    pub fn find_issue(&self, key: &str) -> Option<RowId> {
        self.issues.get(key).copied()
    }

    pub fn find_folder(&self, name: &str) -> Option<RowId> {
        self.folders.get(name).copied()
    }

    /// The current position of a row.
    pub fn position(&self, id: RowId) -> Option<Position> {
        let node = self.node(id)?;
        let siblings = self.children(node.parent);
        let index = siblings.iter().position(|&s| s == id)?;
        Some(Position {
            under: node.parent,
            after: index.checked_sub(1).map(|i| siblings[i]),
        })
    }

    /// Every row in display order with its depth (0 = top level).
    pub fn walk(&self) -> Vec<(RowId, usize)> {
        let mut out = Vec::with_capacity(self.len);
        let mut stack: Vec<(RowId, usize)> = self.roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((id, depth)) = stack.pop() {
            out.push((id, depth));
            if let Some(node) = self.node(id) {
                stack.extend(node.children.iter().rev().map(|&c| (c, depth + 1)));
            }
        }
        out
    }

    /// Where `row`, of rank `mine`, goes under `under` by the one
    /// sibling-order rule: right after the last sibling that ranks before it, past the rows that
    /// `stay_ahead` (declared rows keep their place first); right after
    /// those when none ranks before it. Siblings without a rank (folders,
    /// issues the tracker does not list) are passed over, and a row without
    /// a rank goes last. The rows already there keep their order: a person's
    /// order is never undone, and an import, a pass, an export and a move
    /// all give a joining row the same place.
    pub fn position_by_rank<K: Ord>(
        &self,
        row: RowId,
        mine: Option<K>,
        under: Option<RowId>,
        rank: impl Fn(RowId) -> Option<K>,
        stay_ahead: impl Fn(RowId) -> bool,
    ) -> Position {
        Position {
            under,
            after: after_by_rank(self.children(under), row, mine, rank, stay_ahead),
        }
    }

    pub fn is_ancestor(&self, ancestor: RowId, mut id: RowId) -> bool {
        while let Some(parent) = self.parent(id) {
            if parent == ancestor {
                return true;
            }
            id = parent;
        }
        false
    }

    /// Adds `row` at `at`.
    pub fn insert(&mut self, row: Row, at: Position) -> Result<(), ForestError> {
        if self.contains(row.id) {
            return Err(ForestError::DuplicateRow(row.id));
        }
        if self.find(&row.item).is_some() {
            return Err(ForestError::DuplicateItem(row.item));
        }
        let index = self.insertion_index(at)?;
        let id = row.id;
        match &row.item {
            RowItem::Issue(key) => self.issues.insert(key.clone(), id),
            RowItem::Folder(name) => self.folders.insert(name.clone(), id),
        };
        self.next_id = self.next_id.max(id + 1);
        self.nodes.insert(
            id,
            Node {
                row,
                parent: at.under,
                children: Vec::new(),
            },
        );
        self.len += 1;
        self.siblings_mut(at.under).insert(index, id);
        Ok(())
    }

    /// Moves `id` (with its subtree) to `at`.
    pub fn move_row(&mut self, id: RowId, at: Position) -> Result<(), ForestError> {
        if !self.contains(id) {
            return Err(ForestError::NoSuchRow(id));
        }
        if let Some(under) = at.under
            && (under == id || self.is_ancestor(id, under))
        {
            return Err(ForestError::WouldCycle { row: id, under });
        }
        // Check the whole target before touching anything: a failed move
        // leaves the forest as it was.
        if at.after == Some(id) {
            return Err(ForestError::AnchorNotSibling { after: id });
        }
        self.insertion_index(at)?;
        self.detach(id);
        let index = self.insertion_index(at).expect("checked before detaching");
        self.siblings_mut(at.under).insert(index, id);
        self.node_mut(id).parent = at.under;
        Ok(())
    }

    /// Removes a row that has no children.
    pub fn remove(&mut self, id: RowId) -> Result<Row, ForestError> {
        let node = self.node(id).ok_or(ForestError::NoSuchRow(id))?;
        if !node.children.is_empty() {
            return Err(ForestError::HasChildren(id));
        }
        self.detach(id);
        let node = self.nodes.remove(id).expect("checked above");
        self.len -= 1;
        match &node.row.item {
            RowItem::Issue(key) => self.issues.remove(key),
            RowItem::Folder(name) => self.folders.remove(name),
        };
        Ok(node.row)
    }

    fn insertion_index(&self, at: Position) -> Result<usize, ForestError> {
        if let Some(under) = at.under
            && !self.contains(under)
        {
            return Err(ForestError::NoSuchRow(under));
        }
        let siblings = self.children(at.under);
        match at.after {
            None => Ok(0),
            // Appending is the common case: search from the end.
            Some(after) => siblings
                .iter()
                .rposition(|&s| s == after)
                .map(|i| i + 1)
                .ok_or(ForestError::AnchorNotSibling { after }),
        }
    }

    fn detach(&mut self, id: RowId) {
        let parent = self.parent(id);
        let siblings = self.siblings_mut(parent);
        if let Some(index) = siblings.iter().rposition(|&s| s == id) {
            siblings.remove(index);
        }
    }

    fn siblings_mut(&mut self, parent: Option<RowId>) -> &mut Vec<RowId> {
        match parent {
            None => &mut self.roots,
            Some(id) => &mut self.node_mut(id).children,
        }
    }

    fn node_mut(&mut self, id: RowId) -> &mut Node {
        self.nodes.get_mut(id).expect("row id checked by caller")
    }

    /// Builds a forest from rows and each parent's ordered children, as a
    /// store reads them back. Fails on rows that are unreachable from the
    /// top level (a cycle) or listed twice.
    pub fn from_layout(
        rows: Vec<Row>,
        mut children: std::collections::HashMap<Option<RowId>, Vec<RowId>>,
        next_id: RowId,
    ) -> Result<Forest, ForestError> {
        let mut forest = Forest {
            next_id,
            nodes: RowMap::for_rows(rows.len(), next_id),
            ..Forest::new()
        };
        let mut rows: std::collections::HashMap<RowId, Row> =
            rows.into_iter().map(|r| (r.id, r)).collect();
        let mut pending: Vec<Option<RowId>> = vec![None];
        while let Some(parent) = pending.pop() {
            let mut after = None;
            for id in children.remove(&parent).unwrap_or_default() {
                let row = rows.remove(&id).ok_or(ForestError::DuplicateRow(id))?;
                forest.insert(
                    row,
                    Position {
                        under: parent,
                        after,
                    },
                )?;
                after = Some(id);
                pending.push(Some(id));
            }
        }
        match rows.into_keys().min() {
            Some(orphan) => Err(ForestError::NoSuchRow(orphan)),
            None => Ok(forest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue_row(id: RowId, key: &str) -> Row {
        Row {
            id,
            item: RowItem::Issue(key.into()),
            added_by: None,
        }
    }

    fn at(under: Option<RowId>, after: Option<RowId>) -> Position {
        Position { under, after }
    }

    fn keys(forest: &Forest, parent: Option<RowId>) -> Vec<String> {
        forest
            .children(parent)
            .iter()
            .map(|&id| forest.row(id).unwrap().item.to_string())
            .collect()
    }

    #[test]
    fn insert_keeps_sibling_order() {
        let mut f = Forest::new();
        f.insert(issue_row(1, "A-1"), at(None, None)).unwrap();
        f.insert(issue_row(2, "A-2"), at(None, Some(1))).unwrap();
        f.insert(issue_row(3, "A-3"), at(None, None)).unwrap();
        assert_eq!(keys(&f, None), ["A-3", "A-1", "A-2"]);
        assert_eq!(f.position(2), Some(at(None, Some(1))));
    }

    #[test]
    fn an_issue_appears_once() {
        let mut f = Forest::new();
        f.insert(issue_row(1, "A-1"), at(None, None)).unwrap();
        let err = f.insert(issue_row(2, "A-1"), at(None, None)).unwrap_err();
        assert_eq!(
            err,
            ForestError::DuplicateItem(RowItem::Issue("A-1".into()))
        );
    }

    #[test]
    fn move_refuses_a_cycle_and_changes_nothing() {
        let mut f = Forest::new();
        f.insert(issue_row(1, "A-1"), at(None, None)).unwrap();
        f.insert(issue_row(2, "A-2"), at(Some(1), None)).unwrap();
        assert_eq!(
            f.move_row(1, at(Some(2), None)),
            Err(ForestError::WouldCycle { row: 1, under: 2 })
        );
        assert_eq!(f.parent(2), Some(1));
        assert_eq!(keys(&f, None), ["A-1"]);
    }

    #[test]
    fn move_carries_the_subtree() {
        let mut f = Forest::new();
        f.insert(issue_row(1, "A-1"), at(None, None)).unwrap();
        f.insert(issue_row(2, "A-2"), at(None, Some(1))).unwrap();
        f.insert(issue_row(3, "A-3"), at(Some(1), None)).unwrap();
        f.move_row(1, at(Some(2), None)).unwrap();
        assert_eq!(f.walk(), vec![(2, 0), (1, 1), (3, 2)]);
    }

    #[test]
    fn remove_needs_a_leaf() {
        let mut f = Forest::new();
        f.insert(issue_row(1, "A-1"), at(None, None)).unwrap();
        f.insert(issue_row(2, "A-2"), at(Some(1), None)).unwrap();
        assert_eq!(f.remove(1), Err(ForestError::HasChildren(1)));
        f.remove(2).unwrap();
        f.remove(1).unwrap();
        assert!(f.is_empty());
        assert_eq!(f.find_issue("A-1"), None);
    }

    #[test]
    fn layout_round_trips() {
        let mut f = Forest::new();
        f.insert(issue_row(1, "A-1"), at(None, None)).unwrap();
        f.insert(issue_row(2, "A-2"), at(Some(1), None)).unwrap();
        f.insert(issue_row(3, "A-3"), at(Some(1), Some(2))).unwrap();
        let rows: Vec<Row> = f
            .walk()
            .iter()
            .map(|(id, _)| f.row(*id).unwrap().clone())
            .collect();
        let mut children = std::collections::HashMap::new();
        children.insert(None, vec![1]);
        children.insert(Some(1), vec![2, 3]);
        let g = Forest::from_layout(rows, children, 4).unwrap();
        assert_eq!(g.walk(), f.walk());
        assert_eq!(g.next_id(), 4);
    }

    #[test]
    fn a_joining_row_takes_its_place_by_rank_after_the_rows_that_stay_ahead() {
        // D/ stays ahead (declared); P-5 and P-3 are in a person's order.
        let mut f = Forest::new();
        let folder = Row {
            id: 1,
            item: RowItem::Folder("D".into()),
            added_by: None,
        };
        f.insert(folder, at(None, None)).unwrap();
        f.insert(issue_row(2, "P-5"), at(None, Some(1))).unwrap();
        f.insert(issue_row(3, "P-3"), at(None, Some(2))).unwrap();
        let rank = |id: RowId| match id {
            2 => Some(5),
            3 => Some(3),
            _ => None,
        };
        let ahead = |id: RowId| id == 1;
        let place = |mine| f.position_by_rank(9, mine, None, rank, ahead);
        // After the last sibling that ranks before it, scanning from the end.
        assert_eq!(place(Some(4)), at(None, Some(3)));
        assert_eq!(place(Some(6)), at(None, Some(3)));
        // None ranks before it: first after the rows that stay ahead.
        assert_eq!(place(Some(1)), at(None, Some(1)));
        // No rank: last.
        assert_eq!(place(None), at(None, Some(3)));
        // A row already there is placed among the others, not after itself.
        assert_eq!(
            f.position_by_rank(2, Some(5), None, rank, ahead),
            at(None, Some(3))
        );
    }
}

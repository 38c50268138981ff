//! The `agile` synchronizer: the issues of a query as a backlog — epics,
//! their stories under them (the `epic` field), sub-tasks under their
//! stories (the `parent` field, when `subtasks`), siblings in rank order.
//!
//! Into the structure, rows are arranged along that hierarchy (see
//! [`super::hierarchy`]): every issue of the query is held, one whose epic
//! (or story) is not in the query sits at the top level, or wherever its
//! row already is. Then the rows this synchronizer placed are put in rank
//! order among their siblings, in the places they hold (rows others placed
//! keep theirs).
//!
//! From the structure, a row under an epic row gets that epic, and a row
//! at the top level or in a folder loses an epic that is in the structure
//! (destructive, as clearing a parent is). Siblings whose row order
//! disagrees with rank are re-ranked: the longest run of siblings already
//! in rank order stays, every other one moves right after the sibling
//! before it (before the next one, at the start), in batches of at most
//! [`RANK_BATCH`] consecutive issues, as Jira's rank API takes them.

use std::collections::HashSet;

use crate::model::{Forest, Issue, Position, RankAnchor, RowId, RowItem, Snapshot, rank};

use super::hierarchy::{Reach, arrange};
use super::{AgileRule, PlanError, RANK_BATCH, StructureOp, TrackerOp, UnitPlan, record};

impl AgileRule {
    /// Sub-tasks, when this synchronizer places them: issues with a parent
    /// that is not their epic (Jira Cloud keeps a story's epic in its
    /// `parent` field too, as it does a sub-task's story).
    fn is_subtask(&self, issue: &Issue) -> bool {
        self.subtasks && issue.parent.is_some() && issue.parent != issue.epic
    }
}

fn is_epic(issue: &Issue) -> bool {
    issue.issue_type.eq_ignore_ascii_case("epic")
}

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    rule: &AgileRule,
    declared: &HashSet<RowItem>,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    let relation = relation(snapshot, rule);
    if let Some(cycle) = relation.parent_cycle() {
        return Err(PlanError::ParentCycle(cycle));
    }
    // Every issue of the query is held: those without a parent in it are
    // roots (at the top level, unless their row is elsewhere already).
    let roots: Vec<bool> = relation.issues().map(|i| i.parent.is_none()).collect();
    let reach = Reach {
        adds_children: true,
        roots: &roots,
        lift_strays: false,
    };
    arrange(forest, &relation, me, declared, &reach, plan)?;
    order_by_rank(forest, snapshot, me, plan)
}

/// The query's issues, each under its story (a sub-task, when `subtasks`)
/// or its epic, when that is in the query too; keys and ranks only, which
/// is all arranging reads.
fn relation(snapshot: &Snapshot, rule: &AgileRule) -> Snapshot {
    let held = |key: &Option<String>| key.clone().filter(|k| rule.matches.contains(k));
    Snapshot::new(
        snapshot
            .issues()
            .filter(|i| rule.matches.contains(&i.key))
            .map(|issue| Issue {
                key: issue.key.clone(),
                summary: String::new(),
                issue_type: String::new(),
                status: String::new(),
                parent: if rule.is_subtask(issue) {
                    held(&issue.parent)
                } else {
                    held(&issue.epic)
                },
                epic: None,
                links: Vec::new(),
                rank: issue.rank.clone(),
                updated: None,
                fields: Default::default(),
            }),
    )
}

/// Which of `keys` stay put so that moving the others makes them sorted:
/// a longest increasing subsequence (patience sorting, O(n log n)).
fn longest_sorted<K: Ord>(keys: &[K]) -> Vec<bool> {
    // tails[l]: index of the smallest last key of a sorted run of length l+1.
    let mut tails: Vec<usize> = Vec::new();
    let mut before: Vec<Option<usize>> = vec![None; keys.len()];
    for i in 0..keys.len() {
        let at = tails.partition_point(|&t| keys[t] < keys[i]);
        before[i] = at.checked_sub(1).map(|p| tails[p]);
        if at == tails.len() {
            tails.push(i);
        } else {
            tails[at] = i;
        }
    }
    let mut keep = vec![false; keys.len()];
    let mut at = tails.last().copied();
    while let Some(i) = at {
        keep[i] = true;
        at = before[i];
    }
    keep
}

/// Puts the rows `me` placed in rank order among their siblings, moving
/// as few as it can; other rows keep their places.
fn order_by_rank(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    let internal = |source| PlanError::Internal {
        unit: me.to_owned(),
        source,
    };
    let mine = |forest: &Forest, id: RowId| -> Option<&Issue> {
        let row = forest.row(id)?;
        if row.added_by.as_deref() != Some(me) {
            return None;
        }
        row.item.issue_key().and_then(|k| snapshot.get(k))
    };
    let mut parents: Vec<Option<RowId>> = vec![None];
    parents.extend(forest.walk().into_iter().map(|(id, _)| Some(id)));
    for under in parents {
        let rows: Vec<RowId> = forest
            .children(under)
            .iter()
            .copied()
            .filter(|id| mine(forest, *id).is_some())
            .collect();
        let keys: Vec<_> = rows
            .iter()
            .map(|id| mine(forest, *id).expect("filtered").order_key())
            .collect();
        let keep = longest_sorted(&keys);
        if keep.iter().all(|k| *k) {
            continue;
        }
        let mut sorted: Vec<usize> = (0..rows.len()).collect();
        sorted.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        let first_kept = rows[keep.iter().position(|k| *k).expect("one row is kept")];
        for (j, &i) in sorted.iter().enumerate() {
            if keep[i] {
                continue;
            }
            let after = match j {
                0 => {
                    let siblings = forest.children(under);
                    let at = siblings.iter().position(|r| *r == first_kept);
                    at.and_then(|at| at.checked_sub(1)).map(|at| siblings[at])
                }
                _ => Some(rows[sorted[j - 1]]),
            };
            let id = rows[i];
            let item = forest.row(id).expect("sibling rows exist").item.clone();
            let to = Position { under, after };
            let op = StructureOp::Move {
                row: id,
                item,
                from: to,
                to,
            };
            record(forest, plan, op).map_err(internal)?;
        }
    }
    Ok(())
}

pub(super) fn plan_from(
    forest: &Forest,
    snapshot: &mut Snapshot,
    rule: &AgileRule,
    plan: &mut UnitPlan,
) {
    let walk = forest.walk();
    let ours = |id: RowId, snapshot: &Snapshot| -> Option<String> {
        let key = forest.row(id)?.item.issue_key()?;
        (rule.matches.contains(key) && snapshot.get(key).is_some()).then(|| key.to_owned())
    };
    for &(id, _) in &walk {
        let Some(key) = ours(id, snapshot) else {
            continue;
        };
        let issue = snapshot.get(&key).expect("checked by ours");
        // Epics have no epic; a sub-task's is its story's.
        if is_epic(issue) || rule.is_subtask(issue) {
            continue;
        }
        let parent = forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .map(|r| &r.item);
        let to = match parent {
            Some(RowItem::Issue(p)) => match snapshot.get(p) {
                Some(p) if is_epic(p) => Some(p.key.clone()),
                // Under a story or another issue: a placement that is not
                // an epic's, so the epic stays as it is.
                _ => continue,
            },
            // Out of every epic: clear one the structure shows (the
            // synchronizer could put it back), not one it does not hold.
            Some(RowItem::Folder(_)) | None => match &issue.epic {
                Some(epic) if forest.find_issue(epic).is_some() => None,
                _ => continue,
            },
        };
        if issue.epic != to {
            let op = TrackerOp::SetEpic {
                issue: key,
                from: issue.epic.clone(),
                to,
            };
            op.apply(snapshot);
            plan.tracker_ops.push(op);
        }
    }
    let mut parents: Vec<Option<RowId>> = vec![None];
    parents.extend(walk.iter().map(|(id, _)| Some(*id)));
    for under in parents {
        let siblings: Vec<String> = forest
            .children(under)
            .iter()
            .filter_map(|id| ours(*id, snapshot))
            .collect();
        rerank_siblings(snapshot, &siblings, plan);
    }
}

/// Re-ranks `siblings` (in row order) so that rank order matches.
fn rerank_siblings(snapshot: &mut Snapshot, siblings: &[String], plan: &mut UnitPlan) {
    let keys: Vec<_> = siblings
        .iter()
        .map(|k| {
            snapshot
                .get(k)
                .expect("siblings are in the snapshot")
                .order_key()
        })
        .collect();
    let keep = longest_sorted(&keys);
    let mut start = 0;
    while start < siblings.len() {
        if keep[start] {
            start += 1;
            continue;
        }
        let end = (start..siblings.len())
            .find(|i| keep[*i])
            .unwrap_or(siblings.len());
        let mut anchor = match start {
            0 => RankAnchor::Before(siblings[end].clone()),
            _ => RankAnchor::After(siblings[start - 1].clone()),
        };
        for batch in siblings[start..end].chunks(RANK_BATCH) {
            let order: Vec<usize> = rank::order(snapshot);
            let previous = batch
                .iter()
                .map(|key| {
                    let at = order
                        .iter()
                        .position(|at| snapshot.at(*at).key == *key)
                        .expect("siblings are in the snapshot");
                    at.checked_sub(1).map(|p| snapshot.at(order[p]).key.clone())
                })
                .collect();
            let op = TrackerOp::Rank {
                issues: batch.to_vec(),
                anchor,
                previous,
            };
            op.apply(snapshot);
            plan.tracker_ops.push(op);
            anchor = RankAnchor::After(batch.last().expect("chunks are not empty").clone());
        }
        start = end;
    }
}

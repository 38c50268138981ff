//! The `links` synchronizer: a hierarchy read from one link type.
//!
//! Each link of the type whose ends pass the parent and child filters makes
//! its parent end (as [`LinkEnd`] says) the parent of its other end. A link
//! whose end fails its filter is not this synchronizer's: it is neither
//! followed nor deleted.
//!
//! Into the structure, rows are arranged along that hierarchy (see
//! [`super::hierarchy`]): with scope `structure` only rows already there
//! move, `expand` also adds the children found through links, and `all`
//! also adds the roots of the hierarchy at the top level. An issue with
//! several parents goes under the first in rank order (a note says so); a
//! row someone else put under an issue it is not linked to stays there.
//!
//! From the structure, an issue row under another issue row is linked to
//! it, and every link of the type that the structure contradicts is
//! deleted when the synchronizer could put it back: between two issues in
//! the structure (scopes `structure` and `expand`), or any (scope `all`,
//! Structure for Jira's dangerous "all issues" export). Deletions come
//! before additions, so a tracker that refuses circular links (Redmine)
//! never sees an old and a new link close a loop.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::{Forest, Issue, RowItem, Snapshot};

use super::hierarchy::{Reach, arrange};
use super::{LinkEnd, LinkScope, LinksRule, PlanError, TrackerOp, UnitPlan};

/// A link of the synchronizer's type, read as parent and child.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    parent: String,
    child: String,
}

impl LinksRule {
    fn accepts(&self, edge: &Edge) -> bool {
        let passes = |filter: &Option<HashSet<String>>, key: &String| {
            filter.as_ref().is_none_or(|keys| keys.contains(key))
        };
        passes(&self.parents, &edge.parent) && passes(&self.children, &edge.child)
    }

    /// The synchronizer's links between issues of the snapshot.
    fn edges(&self, snapshot: &Snapshot) -> BTreeSet<Edge> {
        snapshot
            .issues()
            .flat_map(|issue| issue.links.iter().map(move |link| (issue, link)))
            .filter(|(_, link)| link.link_type == self.link_type)
            .filter(|(_, link)| snapshot.get(&link.target).is_some())
            .map(|(issue, link)| {
                let (source, target) = (issue.key.clone(), link.target.clone());
                match self.parent_end {
                    LinkEnd::Source => Edge {
                        parent: source,
                        child: target,
                    },
                    LinkEnd::Target => Edge {
                        parent: target,
                        child: source,
                    },
                }
            })
            .filter(|edge| self.accepts(edge))
            .collect()
    }

    /// The tracker operation that creates (or deletes) the link `edge` reads.
    fn write(&self, edge: &Edge, create: bool) -> TrackerOp {
        let (issue, target) = match self.parent_end {
            LinkEnd::Source => (edge.parent.clone(), edge.child.clone()),
            LinkEnd::Target => (edge.child.clone(), edge.parent.clone()),
        };
        let link_type = self.link_type.clone();
        if create {
            TrackerOp::AddLink {
                issue,
                link_type,
                target,
            }
        } else {
            TrackerOp::RemoveLink {
                issue,
                link_type,
                target,
            }
        }
    }
}

pub(super) fn plan_into(
    forest: &mut Forest,
    snapshot: &Snapshot,
    me: &str,
    rule: &LinksRule,
    declared: &HashSet<RowItem>,
    plan: &mut UnitPlan,
) -> Result<(), PlanError> {
    let edges = rule.edges(snapshot);
    if let Some(issues) = find_cycle(&edges) {
        return Err(PlanError::LinkCycle {
            link_type: rule.link_type.clone(),
            issues,
        });
    }
    let relation = relation(snapshot, &edges, plan);
    let roots: Vec<bool> = match rule.scope {
        LinkScope::All => {
            let parents: HashSet<&str> = edges.iter().map(|e| e.parent.as_str()).collect();
            relation
                .issues()
                .map(|i| i.parent.is_none() && parents.contains(i.key.as_str()))
                .collect()
        }
        LinkScope::Structure | LinkScope::Expand => Vec::new(),
    };
    let reach = Reach {
        adds_children: rule.scope != LinkScope::Structure,
        roots: &roots,
        lift_strays: false,
    };
    arrange(forest, &relation, me, declared, &reach, plan)
}

/// The link hierarchy as a snapshot whose `parent` is each issue's link
/// parent (keys and ranks only: that is all arranging reads). An issue with
/// several parents takes the first in rank order; a note names the others.
fn relation(snapshot: &Snapshot, edges: &BTreeSet<Edge>, plan: &mut UnitPlan) -> Snapshot {
    let mut parents: BTreeMap<&str, Vec<&Issue>> = BTreeMap::new();
    for edge in edges {
        if let Some(parent) = snapshot.get(&edge.parent) {
            parents.entry(edge.child.as_str()).or_default().push(parent);
        }
    }
    for (child, candidates) in &mut parents {
        candidates.sort_by_cached_key(|issue| issue.order_key());
        if candidates.len() > 1 {
            let keys: Vec<&str> = candidates.iter().map(|i| i.key.as_str()).collect();
            plan.notes.push(format!(
                "{child} has {} parents through links ({}); it goes under {}, the first in rank order",
                keys.len(),
                keys.join(", "),
                keys[0]
            ));
        }
    }
    Snapshot::new(snapshot.issues().map(|issue| {
        Issue {
            key: issue.key.clone(),
            summary: String::new(),
            issue_type: String::new(),
            status: String::new(),
            parent: parents
                .get(issue.key.as_str())
                .map(|candidates| candidates[0].key.clone()),
            epic: None,
            links: Vec::new(),
            rank: issue.rank.clone(),
            updated: None,
            fields: Default::default(),
        }
    }))
}

pub(super) fn plan_from(
    forest: &Forest,
    snapshot: &Snapshot,
    rule: &LinksRule,
    plan: &mut UnitPlan,
) {
    let existing = rule.edges(snapshot);
    let mut in_structure: HashSet<&str> = HashSet::new();
    let mut wanted = BTreeSet::new();
    for (id, _) in forest.walk() {
        let Some(child) = forest.row(id).and_then(|r| r.item.issue_key()) else {
            continue;
        };
        in_structure.insert(child);
        let parent = forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .and_then(|r| r.item.issue_key());
        let Some(parent) = parent else { continue };
        if snapshot.get(child).is_none() || snapshot.get(parent).is_none() {
            continue;
        }
        let edge = Edge {
            parent: parent.to_owned(),
            child: child.to_owned(),
        };
        if rule.accepts(&edge) {
            wanted.insert(edge);
        } else if !existing.contains(&edge) {
            plan.notes.push(format!(
                "{child} is not linked to {parent}: the pair does not match the synchronizer's parent and child filters"
            ));
        }
    }
    let deletable = |edge: &Edge| match rule.scope {
        LinkScope::All => true,
        LinkScope::Structure | LinkScope::Expand => {
            in_structure.contains(edge.parent.as_str())
                && in_structure.contains(edge.child.as_str())
        }
    };
    let deleted = existing
        .iter()
        .filter(|e| !wanted.contains(*e) && deletable(e))
        .map(|e| rule.write(e, false));
    let created = wanted
        .iter()
        .filter(|e| !existing.contains(*e))
        .map(|e| rule.write(e, true));
    plan.tracker_ops.extend(deleted.chain(created));
}

/// A cycle among the synchronizer's links in `snapshot`, if any.
pub(super) fn cycle(snapshot: &Snapshot, rule: &LinksRule) -> Option<Vec<String>> {
    find_cycle(&rule.edges(snapshot))
}

/// A chain of links that comes back to its start (each issue under the
/// next), listed from its smallest key. Issues are visited in key order, so
/// the report does not depend on the order the tracker returned them in.
fn find_cycle(edges: &BTreeSet<Edge>) -> Option<Vec<String>> {
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in edges {
        parents
            .entry(edge.child.as_str())
            .or_default()
            .push(edge.parent.as_str());
    }
    // 1 = on the current path, 2 = known to lead to no cycle.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    for &start in parents.keys() {
        if state.contains_key(start) {
            continue;
        }
        // Depth-first without recursion: (issue, index of its next parent).
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        state.insert(start, 1);
        while let Some((at, next)) = path.last_mut() {
            let up = parents.get(*at).and_then(|p| p.get(*next)).copied();
            *next += 1;
            match up {
                None => {
                    state.insert(*at, 2);
                    path.pop();
                }
                Some(up) => match state.get(up) {
                    Some(1) => {
                        let from = path.iter().position(|(k, _)| *k == up).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|(k, _)| (*k).to_owned()).collect();
                        let smallest = (0..cycle.len())
                            .min_by(|a, b| cycle[*a].cmp(&cycle[*b]))
                            .unwrap_or(0);
                        cycle.rotate_left(smallest);
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        state.insert(up, 1);
                        path.push((up, 0));
                    }
                },
            }
        }
    }
    None
}

//! The `statusRollup` synchronizer (from only): a parent issue's status
//! follows its children's, through an ordered list of statuses.
//!
//! Structure for Jira's rules: the parent takes the earliest listed status
//! among its children (its issue rows directly under it); a child in a status
//! that is not listed leaves the parent as it is. Trellis adds: a parent in an
//! unlisted status is left as it is too (someone chose it on purpose, e.g.
//! `Blocked`), and a change the tracker's workflow does not allow is not
//! planned but noted.

use crate::model::{Forest, Issue, Snapshot};

use super::{StatusRollupRule, TrackerOp, UnitPlan};

/// Children named in a note before "and N more".
const NAMED_CHILDREN: usize = 5;

pub(super) fn plan_from(
    forest: &Forest,
    snapshot: &mut Snapshot,
    rule: &StatusRollupRule,
    plan: &mut UnitPlan,
) {
    // Children before their parents, so a change rolls up further in one run.
    let mut bottom_up = forest.walk();
    bottom_up.reverse();
    for (id, _) in bottom_up {
        let Some(parent) = forest
            .row(id)
            .and_then(|r| r.item.issue_key())
            .and_then(|key| snapshot.get(key))
        else {
            continue;
        };
        let children: Vec<&Issue> = forest
            .children(Some(id))
            .iter()
            .filter_map(|&c| forest.row(c)?.item.issue_key())
            .filter_map(|key| snapshot.get(key))
            .collect();
        if let Some(op) = rollup(parent, &children, rule, plan) {
            op.apply(snapshot);
            plan.tracker_ops.push(op);
        }
    }
}

/// The status change `parent` needs, if any; notes why a change is held back.
fn rollup(
    parent: &Issue,
    children: &[&Issue],
    rule: &StatusRollupRule,
    plan: &mut UnitPlan,
) -> Option<TrackerOp> {
    let rank = |status: &str| rule.statuses.iter().position(|s| s == status);
    let applies = rule.issue_types.is_empty() || rule.issue_types.contains(&parent.issue_type);
    if children.is_empty() || !applies || rank(&parent.status).is_none() {
        return None;
    }
    let earliest = children.iter().filter_map(|c| rank(&c.status)).min()?;
    let target = &rule.statuses[earliest];
    if *target == parent.status {
        return None;
    }
    let key = &parent.key;
    if let Some(unlisted) = children.iter().find(|c| rank(&c.status).is_none()) {
        plan.notes.push(format!(
            "{key} stays {}: its child {} is {}, a status statusRollup does not list",
            parent.status, unlisted.key, unlisted.status
        ));
        return None;
    }
    if let Some(workflow) = &rule.workflow
        && !workflow.allows(&parent.status, target)
    {
        plan.notes.push(format!(
            "{key} stays {}: its children say {target}, but the tracker's workflow does not allow {} → {target} (allowed: {})",
            parent.status,
            parent.status,
            none_if_empty(&workflow.next(&parent.status))
        ));
        return None;
    }
    let at_target: Vec<&str> = children
        .iter()
        .filter(|c| c.status == *target)
        .map(|c| c.key.as_str())
        .collect();
    let why = if at_target.len() == children.len() {
        format!("all its children are {target}")
    } else {
        format!(
            "the earliest status among its children: {} {} {target}",
            named(&at_target),
            if at_target.len() == 1 { "is" } else { "are" }
        )
    };
    plan.notes.push(format!(
        "{key}: status {} → {target}, because {why}",
        parent.status
    ));
    Some(TrackerOp::SetStatus {
        issue: key.clone(),
        from: parent.status.clone(),
        to: target.clone(),
    })
}

fn named(keys: &[&str]) -> String {
    let shown = keys[..keys.len().min(NAMED_CHILDREN)].join(", ");
    match keys.len().checked_sub(NAMED_CHILDREN) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

fn none_if_empty(statuses: &[&str]) -> String {
    if statuses.is_empty() {
        "none".into()
    } else {
        statuses.join(", ")
    }
}

//! The decision at the heart of an incremental pass, without a store or a
//! tracker: for each issue changed since the synchronizer's last pass,
//! which side wins.
//!
//! Each changed issue is compared with its baseline (where it was on each
//! side at the last pass):
//!
//! - changed in the structure only: pushed to the tracker;
//! - changed in the tracker only (or on neither side): pulled into the
//!   structure, which is what planning `into` does anyway;
//! - changed on both sides: a conflict, settled by the synchronizer's
//!   [`ConflictRule`] and recorded; `manual` holds the issue until a person
//!   decides.
//!
//! Then [`Decisions::exports`] splits the structure's planned tracker writes
//! into those the pass makes and the tracker the pass plans `into` over,
//! holding the pushed issues of a parent loop that the two sides would make
//! only together; and [`cycle_guard`] stops a synchronizer whose writes are
//! undone pass after pass. The engine reads and records; everything it
//! decides is here, and unit-tested for every policy and every "which side
//! changed" case.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::TrackerOp;
use crate::model::{Forest, Snapshot};

/// An issue's place on each side, as baselines record it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sides {
    /// The row above it (`None`: top level); `None` outside: not in the structure.
    pub row: Option<Option<String>>,
    pub tracker_parent: Option<String>,
}

impl Sides {
    /// Where `key` is now, in `forest` and in `snapshot`.
    pub fn of(key: &str, forest: &Forest, snapshot: &Snapshot) -> Sides {
        Sides {
            row: row_parent(forest, key),
            tracker_parent: snapshot.get(key).and_then(|i| i.parent.clone()),
        }
    }
}

/// What a pass does with one changed issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The structure's side goes to the tracker.
    Push,
    /// The tracker's side comes into the structure (what `into` plans anyway).
    Pull,
    /// Nothing is written for it; the structure keeps it as it is.
    Hold,
}

/// How an issue changed on both sides is settled (`conflictPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictRule {
    Tracker,
    Structure,
    /// The side changed last wins; a tie goes to the tracker.
    Newest,
    /// Held until a person keeps one side.
    Manual,
}

/// Which side a settled conflict kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kept {
    Structure,
    Tracker,
    /// Neither yet: the issue is held (`conflictPolicy: manual`).
    Held,
}

impl Kept {
    pub fn as_str(self) -> &'static str {
        match self {
            Kept::Structure => "structure",
            Kept::Tracker => "tracker",
            Kept::Held => "held",
        }
    }
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's answer to a held issue (`trellis troubleshoot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Release {
    /// Try the issue's changes again.
    Retry,
    /// Carry the structure's side to the tracker.
    KeepStructure,
}

/// What the synchronizer compares, from its declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Both directions, and not the first pass (which has no baselines and
    /// runs in the first direction alone, as `apply` would): only then are
    /// the two sides compared.
    pub compare: bool,
    /// A subtasks synchronizer: the tracker's side is the parent field
    /// alone, and a structure row under the tracker's parent is the same
    /// change made on both sides.
    pub parent_field: bool,
    pub conflict: ConflictRule,
}

/// What changed on each side since the synchronizer's last pass.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Issues the tracker changed.
    pub tracker: BTreeSet<String>,
    /// Issues moved in the structure by others, at the time of their latest move.
    pub structure: BTreeMap<String, jiff::Timestamp>,
}

/// What a pass knows when it decides.
pub struct DecideInput<'a> {
    pub synchronizer: &'a str,
    /// Where each issue was on each side at the last pass.
    pub baselines: &'a HashMap<String, Sides>,
    /// The issues held before this pass, with a person's release if any.
    pub held: &'a BTreeMap<String, Option<Release>>,
    pub changes: &'a Changes,
    /// The structure and the tracker now.
    pub forest: &'a Forest,
    pub snapshot: &'a Snapshot,
}

/// A change made on both sides of one issue, and what settled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub issue: String,
    /// The structure's side (`under #3`, `at the top level`) and the tracker's.
    pub structure_side: String,
    pub tracker_side: String,
    pub kept: Kept,
}

/// An issue newly held as a conflict, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHold {
    pub issue: String,
    pub message: String,
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    pub by_issue: BTreeMap<String, Decision>,
    pub conflicts: Vec<Conflict>,
    pub holds: Vec<NewHold>,
}

/// Decides every changed or held issue (see the module doc).
pub fn decide(input: &DecideInput, policy: &Policy) -> Decisions {
    let id = input.synchronizer;
    let mut out = Decisions::default();
    // Held issues stay held, unless a person released them: those are
    // decided again.
    for (key, release) in input.held {
        if release.is_none() {
            out.by_issue.insert(key.clone(), Decision::Hold);
        }
    }
    if !policy.compare {
        return out;
    }
    let candidates: BTreeSet<&String> = input
        .changes
        .tracker
        .iter()
        .chain(input.changes.structure.keys())
        .chain(input.held.keys())
        .collect();
    for key in candidates {
        if out.by_issue.contains_key(key) {
            continue;
        }
        let release = input.held.get(key).copied().flatten();
        let now = Sides::of(key, input.forest, input.snapshot);
        let base = input.baselines.get(key.as_str());
        // Where the row was at the last pass (`None`: not in the structure).
        let base_row = base.and_then(|b| b.row.as_ref());
        let structure_side_changed = base_row != now.row.as_ref()
            && (input.changes.structure.contains_key(key) || release.is_some());
        let tracker_side_changed = match base {
            Some(b) if policy.parent_field => b.tracker_parent != now.tracker_parent,
            Some(_) => input.changes.tracker.contains(key),
            None => false,
        } && (input.changes.tracker.contains(key) || release.is_some());
        let decision = match (structure_side_changed, tracker_side_changed) {
            _ if release == Some(Release::KeepStructure) => Decision::Push,
            (true, false) => Decision::Push,
            (false, _) => Decision::Pull,
            // Both sides made the same change (or a run that stopped after
            // writing it left it so): nothing to settle.
            (true, true) if policy.parent_field && now.row == Some(now.tracker_parent.clone()) => {
                Decision::Pull
            }
            (true, true) => {
                let structure_time = input.changes.structure.get(key).copied();
                let tracker_time = input.snapshot.get(key).and_then(|i| i.updated);
                let (decision, kept) = match policy.conflict {
                    ConflictRule::Tracker => (Decision::Pull, Kept::Tracker),
                    ConflictRule::Structure => (Decision::Push, Kept::Structure),
                    ConflictRule::Newest if structure_time > tracker_time => {
                        (Decision::Push, Kept::Structure)
                    }
                    ConflictRule::Newest => (Decision::Pull, Kept::Tracker),
                    ConflictRule::Manual => (Decision::Hold, Kept::Held),
                };
                let conflict = Conflict {
                    issue: key.clone(),
                    structure_side: describe_row(&now.row),
                    tracker_side: describe_parent(&now.tracker_parent),
                    kept,
                };
                if decision == Decision::Hold {
                    out.holds.push(NewHold {
                        issue: key.clone(),
                        message: format!(
                            "changed on both sides: the structure has it {}, the tracker {}; conflictPolicy is manual: keep one side with `trellis troubleshoot {id} --skip {key}` (the tracker's) or `--keep-structure {key}`",
                            conflict.structure_side, conflict.tracker_side
                        ),
                    });
                }
                out.conflicts.push(conflict);
                decision
            }
        };
        out.by_issue.insert(key.clone(), decision);
    }
    out
}

/// The tracker writes a pass makes, and the tracker as it plans `into`
/// over it: written, plus held issues as the structure has them.
#[derive(Clone, Debug)]
pub struct Exports {
    pub writes: Vec<TrackerOp>,
    pub planned: Snapshot,
}

impl Decisions {
    /// Whether any issue is pushed or held: only then does a two-way pass
    /// plan the structure's side at all.
    pub fn any_not_pulled(&self) -> bool {
        self.by_issue.values().any(|d| *d != Decision::Pull)
    }

    /// Splits the structure's planned tracker operations `ops`: all of
    /// them for a one-way `from` synchronizer (`everything`), else those of
    /// the issues it pushes. The structure's winners and the tracker's
    /// changes to other issues may close a parent loop together (one moved
    /// under the other's sub-task): the structure's side of the pushed
    /// issues in it is held as a conflict, and the rest goes on.
    pub fn exports(
        &mut self,
        ops: &[TrackerOp],
        everything: bool,
        snapshot: &Snapshot,
        synchronizer: &str,
    ) -> Exports {
        loop {
            let exports = split_exports(ops, &self.by_issue, everything, snapshot);
            let Some(cycle) = exports.planned.parent_cycle() else {
                return exports;
            };
            let pushed: Vec<String> = cycle
                .iter()
                .filter(|k| self.by_issue.get(*k) == Some(&Decision::Push))
                .cloned()
                .collect();
            if pushed.is_empty() {
                // A loop the tracker has itself (the planner reports it), or
                // one held issues make as the structure has them: those are
                // planned as the tracker has them.
                let pushes: BTreeMap<String, Decision> = self
                    .by_issue
                    .iter()
                    .filter(|(_, d)| **d == Decision::Push)
                    .map(|(k, d)| (k.clone(), *d))
                    .collect();
                return Exports {
                    writes: exports.writes,
                    planned: split_exports(ops, &pushes, false, snapshot).planned,
                };
            }
            for key in pushed {
                self.holds.push(NewHold {
                    message: format!(
                        "its row's move in the structure and the tracker's changes together would make a parent loop ({}); change one side, then `trellis troubleshoot {synchronizer} --retry {key}`",
                        cycle.join(" → ")
                    ),
                    issue: key.clone(),
                });
                self.by_issue.insert(key, Decision::Hold);
            }
        }
    }
}

fn split_exports(
    ops: &[TrackerOp],
    decisions: &BTreeMap<String, Decision>,
    everything: bool,
    snapshot: &Snapshot,
) -> Exports {
    let mut writes = Vec::new();
    let mut planned = snapshot.clone();
    for op in ops {
        match decisions.get(op.issue()) {
            Some(Decision::Hold) => {
                op.apply(&mut planned);
            }
            Some(Decision::Push) => {
                op.apply(&mut planned);
                writes.push(op.clone());
            }
            _ if everything => {
                op.apply(&mut planned);
                writes.push(op.clone());
            }
            _ => {}
        }
    }
    Exports { writes, planned }
}

/// The cycle guard's verdict after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrites {
    /// Passes in a row that rewrote an issue the pass before also wrote.
    pub rounds: u32,
    /// Why the synchronizer stops, once `rounds` reaches its limit.
    pub stopped: Option<String>,
}

/// The cycle guard: rewriting an issue the last pass also wrote, pass after
/// pass, means someone keeps writing it back. `written` are the issues this
/// pass wrote (either side), `last_written` the last pass's, `rounds` the
/// count so far.
pub fn cycle_guard(
    written: &[String],
    last_written: &[String],
    rounds: u32,
    max_rounds: usize,
    structure: &str,
) -> Rewrites {
    let rewritten: Vec<&str> = written
        .iter()
        .filter(|k| last_written.contains(k))
        .map(String::as_str)
        .collect();
    let rounds = if rewritten.is_empty() { 0 } else { rounds + 1 };
    let stopped = (rounds as usize >= max_rounds).then(|| {
        format!(
            "{} changed back after each of its last {rounds} passes (another synchronizer or a person keeps undoing it): find the other writer with `trellis history {structure}`, settle which one owns it, then restart",
            rewritten.join(", "),
        )
    });
    Rewrites { rounds, stopped }
}

/// The row above `key`'s row as baselines name it (`None` inside: top
/// level), or `None` when the structure does not hold `key`.
pub fn row_parent(forest: &Forest, key: &str) -> Option<Option<String>> {
    let row = forest.find_issue(key)?;
    Some(
        forest
            .parent(row)
            .and_then(|p| forest.row(p))
            .map(|r| r.item.to_string()),
    )
}

fn describe_row(row: &Option<Option<String>>) -> String {
    match row {
        None => "out of the structure".into(),
        Some(None) => "at the top level".into(),
        Some(Some(parent)) => format!("under {parent}"),
    }
}

fn describe_parent(parent: &Option<String>) -> String {
    match parent {
        None => "with no parent".into(),
        Some(parent) => format!("with parent {parent}"),
    }
}

#[cfg(test)]
mod tests;

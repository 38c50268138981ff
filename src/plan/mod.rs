//! The planner: pure code that computes what a sync would change.
//!
//! From a structure's content (a [`Forest`]), a tracker [`Snapshot`] and the
//! structure's synchronizers (as [`Unit`]s with a direction), it computes a
//! [`StructurePlan`]: structure operations (add / move / remove rows, keeping
//! sibling order) and tracker operations (set / clear parent, add / delete
//! link, set status), a summary, an
//! outline diff, the fingerprint of the state it was computed from and a hash
//! of its operations. It never reads or writes anything: the engine feeds it
//! and applies what it returns.
//!
//! Units run in order on a working copy, so each sees what the previous ones
//! did: declared rows first, then synchronizers that insert rows (filter),
//! then those that arrange them (subtasks, links), then those that read the
//! arrangement (statusRollup).

mod agile;
pub mod decide;
mod declared;
mod filter;
mod guard;
mod hierarchy;
mod links;
mod outline;
mod rollup;
pub mod schedule;
mod subtasks;
mod undo;

use std::borrow::Cow;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{
    Direction, Forest, ForestError, Issue, Link, Position, RankAnchor, Row, RowId, RowItem,
    Snapshot, Workflow, rank,
};

pub use declared::{DeclaredRow, items as declared_items};
pub use guard::{MassRemoval, RemovalLimits, mass_removals};
pub use outline::{render_outline, visible};
pub use schedule::{Schedule, Window};
pub use undo::UndoRule;

/// One synchronizer (or the structure's declared rows) to run in one direction.
#[derive(Clone, Debug)]
pub struct Unit {
    /// The synchronizer's id (`namespace/name`); rows it adds carry it.
    pub name: String,
    pub direction: Direction,
    pub rule: Rule,
}

/// What a unit keeps in agreement.
#[derive(Clone, Debug)]
pub enum Rule {
    /// The structure's declared static rows (folders and issues).
    DeclaredRows(Vec<DeclaredRow>),
    /// Issues matching a query, placed under one parent; the tracker ran the
    /// query, the planner only sees its result.
    Filter(FilterRule),
    /// Child issues under their parent issue.
    Subtasks,
    /// Issues under the issues they are linked to by one link type.
    Links(LinksRule),
    /// A query's issues as a backlog: stories under epics, sub-tasks under
    /// stories, in rank order.
    Agile(AgileRule),
    /// A parent issue's status follows its children's.
    StatusRollup(StatusRollupRule),
    /// The reverse of one job's changes (`trellis undo`).
    Undo(UndoRule),
}

impl Rule {
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::DeclaredRows(_) => "declared rows",
            Rule::Filter(_) => "filter",
            Rule::Subtasks => "subtasks",
            Rule::Links(_) => "links",
            Rule::Agile(_) => "agile",
            Rule::StatusRollup(_) => "statusRollup",
            Rule::Undo(_) => "undo",
        }
    }

    pub const FILTER_DIRECTIONS: &'static [Direction] = &[Direction::Into];
    pub const SUBTASKS_DIRECTIONS: &'static [Direction] = &[Direction::Into, Direction::From];
    pub const LINKS_DIRECTIONS: &'static [Direction] = &[Direction::Into, Direction::From];
    pub const AGILE_DIRECTIONS: &'static [Direction] = &[Direction::Into, Direction::From];
    /// Structure for Jira's rollup only ever changes issues.
    pub const STATUS_ROLLUP_DIRECTIONS: &'static [Direction] = &[Direction::From];

    pub fn supported_directions(&self) -> &'static [Direction] {
        match self {
            Rule::DeclaredRows(_) | Rule::Filter(_) => Rule::FILTER_DIRECTIONS,
            Rule::Subtasks => Rule::SUBTASKS_DIRECTIONS,
            Rule::Links(_) => Rule::LINKS_DIRECTIONS,
            Rule::Agile(_) => Rule::AGILE_DIRECTIONS,
            Rule::StatusRollup(_) => Rule::STATUS_ROLLUP_DIRECTIONS,
            // It reverses whichever side the job changed.
            Rule::Undo(_) => Rule::SUBTASKS_DIRECTIONS,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FilterRule {
    /// Keys of the issues the query matched.
    pub matches: HashSet<String>,
    pub under: Placement,
    /// Remove rows this synchronizer added once their issue stops matching.
    pub remove: bool,
}

/// A hierarchy read from one link type: which end of a link is the parent,
/// which issues may be parents and children, and how far it reaches.
#[derive(Clone, Debug)]
pub struct LinksRule {
    pub link_type: String,
    pub parent_end: LinkEnd,
    /// Keys of the issues the parent filter matched; any issue when `None`.
    /// A link whose parent does not match is not this synchronizer's.
    pub parents: Option<HashSet<String>>,
    /// Likewise for the child end.
    pub children: Option<HashSet<String>>,
    pub scope: LinkScope,
}

/// A backlog: the issues of a query, and whether sub-tasks go under their
/// stories (otherwise they are placed as any issue without an epic).
#[derive(Clone, Debug)]
pub struct AgileRule {
    /// Keys of the issues the query matched.
    pub matches: HashSet<String>,
    pub subtasks: bool,
}

/// Which end of a link is the parent: the issue that holds it (`A blocks
/// B`: A) or the one it points to (B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    Source,
    Target,
}

/// Which issues a links synchronizer works on; it also decides which links
/// an export may delete (only those the synchronizer could put back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkScope {
    /// Only issues already in the structure are arranged; an export deletes
    /// only links between two issues in the structure.
    Structure,
    /// Also adds the children found through links under their parents;
    /// exports as `Structure` does.
    Expand,
    /// Every linked issue: the roots of the link hierarchy join at the top
    /// level, and an export deletes every link of the type that the
    /// structure does not show (destructive: each is listed in the plan).
    All,
}

#[derive(Clone, Debug)]
pub struct StatusRollupRule {
    /// The rolled-up statuses in order: a parent takes the earliest status
    /// among its children.
    pub statuses: Vec<String>,
    /// Only parents of these types change; every type when empty.
    pub issue_types: Vec<String>,
    /// The tracker's allowed transitions, when it tells them before writing.
    pub workflow: Option<Workflow>,
}

/// Where a filter places the issues it adds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Placement {
    Top,
    Folder(String),
    Issue(String),
}

/// A change to the structure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum StructureOp {
    Add {
        row: Row,
        at: Position,
    },
    Move {
        row: RowId,
        item: RowItem,
        from: Position,
        to: Position,
    },
    Remove {
        row: RowId,
        item: RowItem,
        from: Position,
    },
}

impl StructureOp {
    pub fn is_destructive(&self) -> bool {
        matches!(self, StructureOp::Remove { .. })
    }

    pub fn item(&self) -> &RowItem {
        match self {
            StructureOp::Add { row, .. } => &row.item,
            StructureOp::Move { item, .. } | StructureOp::Remove { item, .. } => item,
        }
    }

    /// Applies the operation to a forest.
    pub fn apply(&self, forest: &mut Forest) -> Result<(), ForestError> {
        match self {
            StructureOp::Add { row, at } => forest.insert(row.clone(), *at),
            StructureOp::Move { row, to, .. } => forest.move_row(*row, *to),
            StructureOp::Remove { row, .. } => forest.remove(*row).map(drop),
        }
    }
}

/// A change to one issue in the tracker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum TrackerOp {
    SetParent {
        issue: String,
        from: Option<String>,
        to: String,
    },
    ClearParent {
        issue: String,
        from: String,
    },
    /// A link of `link_type` from `issue` to `target` is created.
    AddLink {
        issue: String,
        #[serde(rename = "linkType")]
        link_type: String,
        target: String,
    },
    /// The link is deleted: destructive, what it recorded is gone from the
    /// tracker.
    RemoveLink {
        issue: String,
        #[serde(rename = "linkType")]
        link_type: String,
        target: String,
    },
    /// A status change (statusRollup); not destructive: the issue keeps
    /// everything else, and a person can change the status back.
    SetStatus {
        issue: String,
        from: String,
        to: String,
    },
    /// The issue's epic changes (agile). Clearing it (`to: None`) is
    /// destructive, as clearing a parent is: the issue leaves its epic's
    /// plans and reports, and nothing in the tracker says where it was.
    /// Moving it to another epic is not: it still has one, and the journal
    /// can move it back.
    SetEpic {
        issue: String,
        from: Option<String>,
        to: Option<String>,
    },
    /// `issues` go right after (or before) the anchor in the tracker's rank
    /// order, in the order listed (agile). At most [`RANK_BATCH`] issues, as
    /// Jira's rank API takes. `previous` is, for each issue, the issue it
    /// followed before (none: it was first), so an undo can put it back.
    Rank {
        issues: Vec<String>,
        #[serde(flatten)]
        anchor: RankAnchor,
        previous: Vec<Option<String>>,
    },
}

/// The most issues one rank operation moves (Jira's `PUT
/// /rest/agile/1.0/issue/rank` takes at most 50).
pub const RANK_BATCH: usize = 50;

impl TrackerOp {
    pub fn issue(&self) -> &str {
        match self {
            TrackerOp::SetParent { issue, .. }
            | TrackerOp::ClearParent { issue, .. }
            | TrackerOp::AddLink { issue, .. }
            | TrackerOp::RemoveLink { issue, .. }
            | TrackerOp::SetStatus { issue, .. }
            | TrackerOp::SetEpic { issue, .. } => issue,
            TrackerOp::Rank { issues, .. } => issues.first().map_or("", String::as_str),
        }
    }

    /// Every issue the operation changes.
    pub fn issues(&self) -> Vec<&str> {
        match self {
            TrackerOp::Rank { issues, .. } => issues.iter().map(String::as_str).collect(),
            _ => vec![self.issue()],
        }
    }

    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            TrackerOp::ClearParent { .. }
                | TrackerOp::RemoveLink { .. }
                | TrackerOp::SetEpic { to: None, .. }
        )
    }

    /// Applies the operation to a snapshot (the planner's working copy, the
    /// local tracker's issues); returns the keys of the issues it changed.
    pub fn apply(&self, snapshot: &mut Snapshot) -> Vec<String> {
        if let TrackerOp::Rank { issues, anchor, .. } = self {
            return rank::rerank(snapshot, issues, anchor);
        }
        let mut changed = false;
        snapshot.update(self.issue(), |issue| changed = self.apply_to(issue));
        if changed {
            vec![self.issue().to_owned()]
        } else {
            Vec::new()
        }
    }

    /// Whether the tracker, as `snapshot` shows it, has this change: what a
    /// run that stopped mid-write is settled by (an issue that is gone has
    /// none of them).
    pub fn in_effect(&self, snapshot: &Snapshot) -> bool {
        if let TrackerOp::Rank { issues, anchor, .. } = self {
            return crate::model::rank::placed(snapshot, issues, anchor);
        }
        snapshot
            .get(self.issue())
            .is_some_and(|issue| !self.apply_to(&mut issue.clone()))
    }

    /// Makes the change on `issue`; false when it already had it. A rank
    /// needs the whole order: see [`TrackerOp::apply`].
    fn apply_to(&self, issue: &mut Issue) -> bool {
        match self {
            TrackerOp::SetParent { to, .. } => replace(&mut issue.parent, Some(to.clone())),
            TrackerOp::ClearParent { .. } => replace(&mut issue.parent, None),
            TrackerOp::AddLink {
                link_type, target, ..
            } => {
                let link = Link {
                    link_type: link_type.clone(),
                    target: target.clone(),
                };
                match issue.links.binary_search(&link) {
                    Ok(_) => false,
                    Err(at) => {
                        issue.links.insert(at, link);
                        true
                    }
                }
            }
            TrackerOp::RemoveLink {
                link_type, target, ..
            } => {
                let before = issue.links.len();
                issue
                    .links
                    .retain(|l| !(l.link_type == *link_type && l.target == *target));
                issue.links.len() != before
            }
            TrackerOp::SetStatus { to, .. } => replace(&mut issue.status, to.clone()),
            TrackerOp::SetEpic { to, .. } => replace(&mut issue.epic, to.clone()),
            TrackerOp::Rank { .. } => unreachable!("ranks are applied to the snapshot"),
        }
    }
}

fn replace<T: PartialEq>(field: &mut T, value: T) -> bool {
    let changed = *field != value;
    *field = value;
    changed
}

impl std::fmt::Display for StructureOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StructureOp::Add { row, .. } => write!(f, "add {}", row.item),
            StructureOp::Move { item, .. } => write!(f, "move {item}"),
            StructureOp::Remove { item, .. } => write!(f, "remove {item}"),
        }
    }
}

impl std::fmt::Display for TrackerOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackerOp::SetParent { issue, from, to } => {
                let from = from.as_deref().unwrap_or("(none)");
                write!(f, "{issue}: parent {from} → {to}")
            }
            TrackerOp::ClearParent { issue, from } => write!(f, "{issue}: parent {from} → (none)"),
            TrackerOp::AddLink {
                issue,
                link_type,
                target,
            } => write!(f, "{issue}: add link {link_type} → {target}"),
            TrackerOp::RemoveLink {
                issue,
                link_type,
                target,
            } => write!(f, "{issue}: delete link {link_type} → {target}"),
            TrackerOp::SetStatus { issue, from, to } => write!(f, "{issue}: status {from} → {to}"),
            TrackerOp::SetEpic { issue, from, to } => {
                let from = from.as_deref().unwrap_or("(none)");
                let to = to.as_deref().unwrap_or("(none)");
                write!(f, "{issue}: epic {from} → {to}")
            }
            TrackerOp::Rank { issues, anchor, .. } => {
                write!(f, "rank {} {anchor}", issues.join(", "))
            }
        }
    }
}

/// What one run of a unit would do.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitPlan {
    pub synchronizer: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub direction: Direction,
    /// 1 for every unit's first run; later rounds run when units gave each
    /// other more to do (see [`plan_structure`]).
    pub round: usize,
    pub structure_ops: Vec<StructureOp>,
    pub tracker_ops: Vec<TrackerOp>,
    /// Things a reviewer should know that are not operations (an issue kept
    /// because rows under it stay, a placement parent that is missing, ...).
    pub notes: Vec<String>,
}

impl UnitPlan {
    pub fn is_empty(&self) -> bool {
        self.structure_ops.is_empty() && self.tracker_ops.is_empty()
    }
}

/// Counts of a plan's operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub add: usize,
    #[serde(rename = "move")]
    pub move_: usize,
    pub remove: usize,
    pub tracker_updates: usize,
    /// Operations that need approval: row removals, cleared parents and
    /// deleted links.
    pub destructive: usize,
}

impl Summary {
    /// The counts of `units`' operations.
    pub fn count<'a>(units: impl IntoIterator<Item = &'a UnitPlan>) -> Summary {
        let mut s = Summary::default();
        for unit in units {
            for op in &unit.structure_ops {
                match op {
                    StructureOp::Add { .. } => s.add += 1,
                    StructureOp::Move { .. } => s.move_ += 1,
                    StructureOp::Remove { .. } => s.remove += 1,
                }
                s.destructive += usize::from(op.is_destructive());
            }
            s.tracker_updates += unit.tracker_ops.len();
            s.destructive += unit
                .tracker_ops
                .iter()
                .filter(|op| op.is_destructive())
                .count();
        }
        s
    }

    pub fn total(&self) -> usize {
        self.add + self.move_ + self.remove + self.tracker_updates
    }

    fn plus(self, other: Summary) -> Summary {
        Summary {
            add: self.add + other.add,
            move_: self.move_ + other.move_,
            remove: self.remove + other.remove,
            tracker_updates: self.tracker_updates + other.tracker_updates,
            destructive: self.destructive + other.destructive,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let updates = if self.tracker_updates == 1 {
            "update"
        } else {
            "updates"
        };
        write!(
            f,
            "{} to add, {} to move, {} to remove; {} tracker {updates}, {} destructive",
            self.add, self.move_, self.remove, self.tracker_updates, self.destructive
        )
    }
}

/// What a sync would do to one structure and its tracker.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StructurePlan {
    pub structure: String,
    pub tracker: String,
    pub units: Vec<UnitPlan>,
    pub summary: Summary,
    /// Unified diff of the structure outline; empty when rows do not change.
    pub outline_diff: String,
    /// Digest of the structure content and tracker snapshot planned from.
    pub base_fingerprint: String,
    pub hash: String,
    /// Synchronizers that would remove more rows than their safety limits
    /// allow: such a plan is shown but never applied (see [`mass_removals`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mass_removals: Vec<MassRemoval>,
}

impl StructurePlan {
    /// The operations that need approval, one line each (tracker text as
    /// it is: outputs escape it).
    pub fn destructive(&self) -> Vec<String> {
        let rows = self.units.iter().flat_map(|u| &u.structure_ops);
        let issues = self.units.iter().flat_map(|u| &u.tracker_ops);
        rows.filter(|op| op.is_destructive())
            .map(ToString::to_string)
            .chain(
                issues
                    .filter(|op| op.is_destructive())
                    .map(ToString::to_string),
            )
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "cannot undo job {job}: {reason}; nothing was changed (an undo reverses a job only while what it left is still there: undo the later jobs that changed it first, newest first)"
    )]
    UndoConflict { job: u64, reason: String },
    #[error(
        "issues {} form a parent cycle ({} → {}); give one of them another parent in the tracker, then plan again",
        .0.join(", "), .0.join(" → "), .0[0]
    )]
    ParentCycle(Vec<String>),
    #[error(
        "exporting would make issues {} a parent cycle ({} → {}): rows sit under issues the tracker puts below them; move those rows (or change a parent in the tracker), then export again",
        .0.join(", "), .0.join(" → "), .0[0]
    )]
    ExportCycle(Vec<String>),
    #[error(
        "issues {} form a cycle through `{link_type}` links ({} → {}): each is under the next; delete one of these links in the tracker (or narrow the synchronizer's filters), then plan again",
        .issues.join(", "), .issues.join(" → "), .issues[0]
    )]
    LinkCycle {
        link_type: String,
        issues: Vec<String>,
    },
    #[error(
        "exporting would make issues {} a cycle through `{link_type}` links ({} → {}): rows sit under issues that links outside the structure put below them; move those rows (or delete one of the links in the tracker), then export again",
        .issues.join(", "), .issues.join(" → "), .issues[0]
    )]
    LinkExportCycle {
        link_type: String,
        issues: Vec<String>,
    },
    #[error(
        "{unit} is a {kind} synchronizer and cannot sync {direction}; it supports: {supported}"
    )]
    UnsupportedDirection {
        unit: String,
        kind: &'static str,
        direction: Direction,
        supported: String,
    },
    #[error(
        "synchronizers {} keep undoing each other's changes (still changing after {MAX_ROUNDS} rounds); disable one of them or change its parameters",
        .0.join(", ")
    )]
    Fight(Vec<String>),
    #[error("planner bug in {unit}: {source}; please report it with the plan input")]
    Internal { unit: String, source: ForestError },
}

/// Everything the planner needs for one structure besides its content.
pub struct StructureInput<'a> {
    pub structure: &'a str,
    pub tracker: &'a str,
    pub snapshot: &'a Snapshot,
    pub units: &'a [Unit],
    /// Synchronizers whose rows exist only because of their parent row
    /// (subtasks): such rows go when their parent goes. Rows added by anyone
    /// else (a person, declared rows, a filter) must stay.
    pub arrangers: &'a HashSet<String>,
}

/// How many times the units may run over one structure before the planner
/// concludes they undo each other (Structure for Jira's cycle guard uses 10).
pub const MAX_ROUNDS: usize = 10;

/// Plans every unit of one structure.
///
/// Units run in order, and then again, until a round changes nothing: one
/// unit's changes can give another something to do (subtasks adds the issue a
/// filter places under; subtasks moves a row back where a filter removes it).
/// The plan is what repeated applies would converge to, so applying it and
/// planning again finds nothing to do. Units still changing after
/// [`MAX_ROUNDS`] rounds undo each other, and the plan is refused.
///
/// The planner works on `forest` itself (the caller has no further use for
/// the old content, and copying 100,000 rows is not free) and returns it as
/// the plan leaves it: applying the plan's operations in order to the old
/// content gives exactly this forest.
pub fn plan_structure(mut forest: Forest, input: &StructureInput) -> Result<Planned, PlanError> {
    let base_fingerprint = fingerprint(&forest, input.snapshot);
    let before = forest.walk();
    let mut snapshot = Cow::Borrowed(input.snapshot);
    for unit in input.units {
        if !unit.rule.supported_directions().contains(&unit.direction) {
            return Err(unsupported(unit));
        }
    }
    // Declared rows stay where the Structure declares them.
    let declared: HashSet<RowItem> = input
        .units
        .iter()
        .filter_map(|u| match &u.rule {
            Rule::DeclaredRows(rows) => Some(declared::items(rows)),
            _ => None,
        })
        .flatten()
        .collect();
    // Every unit's first run, then the later runs that changed something, in
    // the order they ran: applying them in this order replays the plan.
    let mut units: Vec<UnitPlan> = Vec::with_capacity(input.units.len());
    // Each unit is idempotent on its own output, so a unit runs again only
    // when another unit changed the structure or the tracker after its last run.
    let mut changes = 0usize;
    let mut seen: Vec<Option<usize>> = vec![None; input.units.len()];
    for round in 1..=MAX_ROUNDS {
        let mut changing = Vec::new();
        for (index, unit) in input.units.iter().enumerate() {
            if seen[index] == Some(changes) {
                continue;
            }
            let mut plan = UnitPlan {
                synchronizer: unit.name.clone(),
                kind: unit.rule.kind(),
                direction: unit.direction,
                round,
                structure_ops: Vec::new(),
                tracker_ops: Vec::new(),
                notes: Vec::new(),
            };
            run(
                unit,
                &mut plan,
                &mut forest,
                &mut snapshot,
                input.arrangers,
                &declared,
            )?;
            if !plan.is_empty() {
                changes += 1;
                changing.push(unit.name.clone());
            }
            seen[index] = Some(changes);
            if round == 1 {
                units.push(plan);
            } else {
                // Notes describe the final state: the latest run's replace the first's.
                units[index].notes = std::mem::take(&mut plan.notes);
                if !plan.is_empty() {
                    units.push(plan);
                }
            }
        }
        if changing.is_empty() {
            break;
        }
        if round == MAX_ROUNDS {
            return Err(PlanError::Fight(changing));
        }
    }
    let removed = units
        .iter()
        .flat_map(|u| &u.structure_ops)
        .filter_map(|op| match op {
            StructureOp::Remove { row, item, .. } => Some((*row, item)),
            _ => None,
        })
        .collect();
    let outline_diff = outline::diff(input.structure, &before, &removed, &forest, input.snapshot);
    let summary = Summary::count(&units);
    let hash = plan_hash(&base_fingerprint, &units);
    let plan = StructurePlan {
        structure: input.structure.to_owned(),
        tracker: input.tracker.to_owned(),
        units,
        summary,
        outline_diff,
        base_fingerprint,
        hash,
        mass_removals: Vec::new(),
    };
    Ok(Planned { plan, forest })
}

/// A plan and the structure content it leaves.
#[derive(Debug)]
pub struct Planned {
    pub plan: StructurePlan,
    pub forest: Forest,
}

/// Runs one unit once over the working forest and snapshot.
fn run(
    unit: &Unit,
    plan: &mut UnitPlan,
    forest: &mut Forest,
    snapshot: &mut Cow<Snapshot>,
    arrangers: &HashSet<String>,
    declared: &HashSet<RowItem>,
) -> Result<(), PlanError> {
    let internal = |source| PlanError::Internal {
        unit: unit.name.clone(),
        source,
    };
    match (&unit.rule, unit.direction) {
        (Rule::DeclaredRows(rows), _) => declared::plan(forest, rows, plan).map_err(internal),
        (Rule::Filter(rule), _) => {
            filter::plan_into(forest, snapshot, unit, rule, arrangers, declared, plan)
                .map_err(internal)
        }
        (Rule::Subtasks, Direction::Into) => {
            subtasks::plan_into(forest, snapshot, &unit.name, declared, plan)
        }
        (Rule::Links(rule), Direction::Into) => {
            links::plan_into(forest, snapshot, &unit.name, rule, declared, plan)
        }
        (Rule::Links(rule), Direction::From) => {
            links::plan_from(forest, snapshot, rule, plan);
            for op in &plan.tracker_ops {
                op.apply(snapshot.to_mut());
            }
            match links::cycle(snapshot, rule) {
                Some(issues) if !plan.tracker_ops.is_empty() => Err(PlanError::LinkExportCycle {
                    link_type: rule.link_type.clone(),
                    issues,
                }),
                _ => Ok(()),
            }
        }
        (Rule::Agile(rule), Direction::Into) => {
            agile::plan_into(forest, snapshot, &unit.name, rule, declared, plan)
        }
        (Rule::Agile(rule), Direction::From) => {
            agile::plan_from(forest, snapshot.to_mut(), rule, plan);
            Ok(())
        }
        (Rule::StatusRollup(rule), _) => {
            rollup::plan_from(forest, snapshot.to_mut(), rule, plan);
            Ok(())
        }
        (Rule::Undo(rule), _) => undo::plan(forest, snapshot.to_mut(), rule, plan),
        (Rule::Subtasks, Direction::From) => {
            subtasks::plan_from(forest, snapshot, plan);
            for op in &plan.tracker_ops {
                op.apply(snapshot.to_mut());
            }
            match snapshot.parent_cycle() {
                Some(cycle) if !plan.tracker_ops.is_empty() => Err(PlanError::ExportCycle(cycle)),
                _ => Ok(()),
            }
        }
    }
}

fn unsupported(unit: &Unit) -> PlanError {
    let supported: Vec<&str> = unit
        .rule
        .supported_directions()
        .iter()
        .map(|d| d.as_str())
        .collect();
    PlanError::UnsupportedDirection {
        unit: unit.name.clone(),
        kind: unit.rule.kind(),
        direction: unit.direction,
        supported: supported.join(", "),
    }
}

/// Records `op` in the plan after applying it to the working forest, so
/// later operations and units see its effect.
fn record(
    forest: &mut Forest,
    plan: &mut UnitPlan,
    mut op: StructureOp,
) -> Result<(), ForestError> {
    // Where a row was is read from the working forest at the moment the
    // operation applies, so the journal's "before" is exact.
    if let StructureOp::Move { row, from, .. } | StructureOp::Remove { row, from, .. } = &mut op {
        *from = forest.position(*row).ok_or(ForestError::NoSuchRow(*row))?;
    }
    op.apply(forest)?;
    plan.structure_ops.push(op);
    Ok(())
}

/// Digest of the structure content (rows, order, owners) and the tracker.
pub fn fingerprint(forest: &Forest, snapshot: &Snapshot) -> String {
    let mut hasher = Sha256::new();
    for (id, depth) in forest.walk() {
        let row = forest.row(id).expect("walked rows exist");
        hasher.update(id.to_le_bytes());
        hasher.update((depth as u64).to_le_bytes());
        let (kind, name) = match &row.item {
            RowItem::Issue(key) => (b'i', key),
            RowItem::Folder(name) => (b'f', name),
        };
        hasher.update([kind]);
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        let owner = row.added_by.as_deref().unwrap_or_default();
        hasher.update((owner.len() as u64).to_le_bytes());
        hasher.update(owner.as_bytes());
    }
    hasher.update(snapshot.digest());
    crate::model::hex(&hasher.finalize())
}

/// A plan's identity: what `--approve` and `approvedPlan` name.
pub fn plan_hash(base_fingerprint: &str, units: &[UnitPlan]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(base_fingerprint);
    hasher.update(serde_json::to_vec(units).expect("plans serialize"));
    crate::model::hex(&hasher.finalize())[..16].to_owned()
}

/// The plans of one run (one `plan`, `apply` or `resync`), approved as one.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSet {
    pub structures: Vec<StructurePlan>,
    pub summary: Summary,
    /// What `--approve` takes: a digest of every structure plan's hash.
    pub hash: String,
}

impl PlanSet {
    pub fn new(structures: Vec<StructurePlan>) -> PlanSet {
        let mut hasher = Sha256::new();
        let mut summary = Summary::default();
        for plan in &structures {
            hasher.update(&plan.hash);
            summary = summary.plus(plan.summary);
        }
        PlanSet {
            hash: crate::model::hex(&hasher.finalize())[..16].to_owned(),
            structures,
            summary,
        }
    }

    pub fn has_changes(&self) -> bool {
        self.summary.total() > 0
    }
}

#[cfg(test)]
mod tests;

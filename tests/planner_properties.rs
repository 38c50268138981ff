//! Property tests of the planner on random trackers and structures.

use std::collections::HashSet;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use trellis::model::{Direction, Forest, Issue, Position, Row, RowItem, Snapshot};
use trellis::plan::{
    FilterRule, Placement, PlanError, Rule, StructureInput, StructureOp, StructurePlan, TrackerOp,
    Unit, plan_structure,
};

const FILTER: &str = "ns/f";
const CHILDREN: &str = "ns/children";
const MAX_ISSUES: usize = 30;
const STATUSES: [&str; 4] = ["Open", "In Progress", "Done", "Closed"];
const OWNERS: [Option<&str>; 3] = [None, Some(FILTER), Some(CHILDREN)];

/// A tracker snapshot, a starting structure and the `into` synchronizers.
#[derive(Clone, Debug)]
struct Case {
    issues: Vec<Issue>,
    forest: Forest,
    filter: Option<FilterRule>,
    subtasks: bool,
}

impl Case {
    fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.issues.iter().cloned())
    }

    fn into_units(&self) -> Vec<Unit> {
        let filter = self.filter.clone().map(|rule| Unit {
            name: FILTER.into(),
            direction: Direction::Into,
            rule: Rule::Filter(rule),
        });
        filter
            .into_iter()
            .chain(self.subtasks.then(|| subtasks(Direction::Into)))
            .collect()
    }
}

fn issue(key: String, parent: Option<String>, rank: Option<String>, status: &str) -> Issue {
    Issue {
        key,
        summary: String::new(),
        issue_type: "Task".into(),
        status: status.into(),
        parent,
        epic: None,
        links: vec![],
        rank,
        updated: None,
        fields: Default::default(),
    }
}

fn subtasks(direction: Direction) -> Unit {
    Unit {
        name: CHILDREN.into(),
        direction,
        rule: Rule::Subtasks,
    }
}

fn plan(forest: &Forest, snapshot: &Snapshot, units: &[Unit]) -> Result<StructurePlan, PlanError> {
    let arrangers: HashSet<String> = [CHILDREN.to_string()].into();
    plan_structure(&StructureInput {
        structure: "ns/roadmap",
        tracker: "ns/issues",
        forest,
        snapshot,
        units,
        arrangers: &arrangers,
    })
}

fn structure_ops(plan: &StructurePlan) -> Vec<StructureOp> {
    plan.units
        .iter()
        .flat_map(|u| u.structure_ops.iter().cloned())
        .collect()
}

fn tracker_ops(plan: &StructurePlan) -> Vec<TrackerOp> {
    plan.units
        .iter()
        .flat_map(|u| u.tracker_ops.iter().cloned())
        .collect()
}

/// The same units with each filter's match set rebuilt (a new hash order).
fn with_rebuilt_matches(units: &[Unit]) -> Vec<Unit> {
    let mut units = units.to_vec();
    for unit in &mut units {
        if let Rule::Filter(rule) = &mut unit.rule {
            rule.matches = rule.matches.iter().cloned().collect();
        }
    }
    units
}

/// `forest` with every structure operation of `plan` applied in order.
fn applied(forest: &Forest, plan: &StructurePlan) -> Result<Forest, String> {
    let mut forest = forest.clone();
    for op in structure_ops(plan) {
        op.apply(&mut forest)
            .map_err(|e| format!("{op:?} failed: {e}"))?;
    }
    Ok(forest)
}

/// The snapshot a `from` subtasks sync should leave, by its documented rules:
/// an issue row under another tracker issue's row gets that parent; one at
/// the top level or under a folder loses a parent that is in the structure.
fn expected_after_from(forest: &Forest, snapshot: &Snapshot) -> Snapshot {
    let mut after = snapshot.clone();
    for (id, _) in forest.walk() {
        let Some(key) = forest.row(id).and_then(|r| r.item.issue_key()) else {
            continue;
        };
        let Some(issue) = snapshot.get(key) else {
            continue;
        };
        let new_parent = match forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .map(|r| &r.item)
        {
            Some(RowItem::Issue(p)) if snapshot.get(p).is_some() => Some(p.clone()),
            Some(RowItem::Issue(_)) => continue,
            _ if issue
                .parent
                .as_ref()
                .is_some_and(|p| forest.find_issue(p).is_some()) =>
            {
                None
            }
            _ => continue,
        };
        after.get_mut(key).expect("issue is in the snapshot").parent = new_parent;
    }
    after
}

/// Whether some row sits under an issue row with either of them unknown to
/// the tracker: `from` skips such rows, so `into` may still rearrange them.
fn has_unknown_issue_under_an_issue(forest: &Forest, snapshot: &Snapshot) -> bool {
    let unknown = |item: &RowItem| item.issue_key().is_some_and(|k| snapshot.get(k).is_none());
    forest.walk().iter().any(|&(id, _)| {
        let row = &forest.row(id).expect("walked rows exist").item;
        let parent = forest
            .parent(id)
            .and_then(|p| forest.row(p))
            .map(|r| &r.item);
        parent.is_some_and(|p| p.issue_key().is_some() && (unknown(p) || unknown(row)))
    })
}

prop_compose! {
    /// 0–30 issues in one or two projects, each parent an earlier issue.
    fn tracker_issues()(
        specs in vec((any::<bool>(), any::<Option<Index>>(), option::of("[a-c]{1,2}"), any::<Index>()), 0..=MAX_ISSUES),
        two_projects in any::<bool>(),
    ) -> Vec<Issue> {
        let mut issues: Vec<Issue> = Vec::with_capacity(specs.len());
        for (i, (second, parent, rank, status)) in specs.into_iter().enumerate() {
            let project = if two_projects && second { "Q" } else { "P" };
            let parent = parent.filter(|_| i > 0).map(|p| issues[p.index(i)].key.clone());
            issues.push(issue(format!("{project}-{}", i + 1), parent, rank, STATUSES[status.index(STATUSES.len())]));
        }
        issues
    }
}

/// Inserts `items` in the order of their sort keys, each under a random
/// existing row (or the top level) after a random sibling.
fn build_forest(items: Vec<RowItem>, specs: &[(u8, Index, Index, Index)]) -> Forest {
    let mut placed: Vec<_> = specs.iter().zip(items).collect();
    placed.sort_by_key(|((order, ..), _)| *order);
    let mut forest = Forest::new();
    for ((_, under, after, owner), item) in placed {
        let walk = forest.walk();
        let under = under
            .index(walk.len() + 1)
            .checked_sub(1)
            .map(|i| walk[i].0);
        let siblings = forest.children(under);
        let after = after
            .index(siblings.len() + 1)
            .checked_sub(1)
            .map(|i| siblings[i]);
        let added_by = OWNERS[owner.index(OWNERS.len())].map(String::from);
        let row = Row {
            id: forest.next_id(),
            item,
            added_by,
        };
        forest
            .insert(row, Position { under, after })
            .expect("generated rows fit");
    }
    forest
}

prop_compose! {
    fn case()(
        issues in tracker_issues(),
        folders in 0..=3usize,
        strangers in 0..=2usize,
        in_forest in vec(any::<bool>(), MAX_ISSUES),
        rows in vec((any::<u8>(), any::<Index>(), any::<Index>(), any::<Index>()), MAX_ISSUES + 5),
        matches in vec(any::<bool>(), MAX_ISSUES),
        (placement, place_at, remove) in (0..3usize, any::<Index>(), any::<bool>()),
        units in 0..3usize,
    ) -> Case {
        let folder_names: Vec<String> = (0..folders).map(|i| format!("F{i}")).collect();
        let items: Vec<RowItem> = folder_names.iter().cloned().map(RowItem::Folder)
            .chain(issues.iter().zip(&in_forest).filter(|(_, i)| **i).map(|(x, _)| RowItem::Issue(x.key.clone())))
            .chain((1..=strangers).map(|n| RowItem::Issue(format!("X-{n}"))))
            .collect();
        let forest = build_forest(items, &rows);
        let keys: Vec<&String> = issues.iter().map(|i| &i.key).collect();
        let under = match placement {
            1 if folders > 0 => Placement::Folder(folder_names[place_at.index(folders)].clone()),
            2 if !keys.is_empty() => Placement::Issue(keys[place_at.index(keys.len())].clone()),
            _ => Placement::Top,
        };
        let matches = keys.iter().zip(&matches).filter(|(_, m)| **m).map(|(k, _)| (*k).clone()).collect();
        let filter = (units != 1).then_some(FilterRule { matches, under, remove });
        Case { issues, forest, filter, subtasks: units != 0 }
    }
}

proptest! {
    #[test]
    fn planning_again_after_applying_finds_nothing_to_do(case in case()) {
        let (snapshot, units) = (case.snapshot(), case.into_units());
        let first = plan(&case.forest, &snapshot, &units).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after = applied(&case.forest, &first).map_err(TestCaseError::fail)?;
        let again = plan(&after, &snapshot, &units).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.summary.total(), 0, "second plan: {:#?}", again.units);
    }

    #[test]
    fn into_then_from_and_from_then_into_change_nothing(case in case()) {
        let snapshot = case.snapshot();
        let from = [subtasks(Direction::From)];
        // into, then from: the tracker already agrees with the structure.
        let into = plan(&case.forest, &snapshot, &case.into_units()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let settled = applied(&case.forest, &into).map_err(TestCaseError::fail)?;
        let back = plan(&settled, &snapshot, &from).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back.units[0].tracker_ops, &vec![], "from after into");
        prop_assert!(structure_ops(&back).is_empty());
        // from, then into: a structure whose rows the tracker knows stays put.
        let expected = expected_after_from(&case.forest, &snapshot);
        let exported = match plan(&case.forest, &snapshot, &from) {
            Err(PlanError::ParentCycle(_)) => {
                prop_assert!(expected.parent_cycle().is_some(), "cycle reported where the rules make none");
                return Ok(());
            }
            result => result.map_err(|e| TestCaseError::fail(e.to_string()))?,
        };
        let mut tracker = snapshot.clone();
        for op in &exported.units[0].tracker_ops {
            op.apply(&mut tracker);
        }
        prop_assert_eq!(tracker.digest(), expected.digest(), "from ops: {:#?}", exported.units[0].tracker_ops);
        prop_assert!(structure_ops(&exported).is_empty());
        if !has_unknown_issue_under_an_issue(&case.forest, &snapshot) {
            let reimported = plan(&case.forest, &tracker, &[subtasks(Direction::Into)])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ops = structure_ops(&reimported);
            prop_assert!(ops.iter().all(|op| matches!(op, StructureOp::Add { .. })), "into after from: {:#?}", ops);
        }
    }

    #[test]
    fn issues_stay_unique_and_rows_nobody_synced_stay(case in case()) {
        let snapshot = case.snapshot();
        let first = plan(&case.forest, &snapshot, &case.into_units()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after = applied(&case.forest, &first).map_err(TestCaseError::fail)?;
        let items: Vec<RowItem> = after.walk().iter().map(|(id, _)| after.row(*id).expect("walked").item.clone()).collect();
        prop_assert_eq!(items.iter().collect::<HashSet<_>>().len(), items.len(), "duplicate rows: {:?}", items);
        for (id, _) in case.forest.walk() {
            let row = case.forest.row(id).expect("walked rows exist");
            if row.added_by.is_none() {
                prop_assert_eq!(after.row(id), Some(row), "a person's row was removed");
            }
        }
    }

    #[test]
    fn the_plan_and_its_hash_are_deterministic(case in case()) {
        // Rebuilt hash maps (snapshot, match set) iterate in another order.
        let snapshot = case.snapshot();
        let rebuilt = Snapshot::new(case.issues.iter().rev().cloned());
        for units in [case.into_units(), vec![subtasks(Direction::From)]] {
            let one = plan(&case.forest, &snapshot, &units);
            let two = plan(&case.forest, &rebuilt, &with_rebuilt_matches(&units));
            match (one, two) {
                (Ok(one), Ok(two)) => {
                    prop_assert_eq!(&one.hash, &two.hash);
                    prop_assert_eq!(structure_ops(&one), structure_ops(&two));
                    prop_assert_eq!(tracker_ops(&one), tracker_ops(&two));
                }
                (one, two) => prop_assert_eq!(one.err().map(|e| e.to_string()), two.err().map(|e| e.to_string())),
            }
        }
    }
}

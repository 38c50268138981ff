//! Property tests of the planner on random trackers and structures.

use std::collections::HashSet;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use trellis::model::{Direction, Forest, Issue, Position, Row, RowId, RowItem, Snapshot};
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
#[derive(Clone)]
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

    fn sync_units(&self) -> Vec<Unit> {
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

/// Compact, so a shrunk counterexample reads at a glance: issues as
/// `key^parent ~rank`, rows as `item@parent [added_by] #id` in display order.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issues: Vec<String> = self
            .issues
            .iter()
            .map(|i| {
                let parent = i
                    .parent
                    .as_ref()
                    .map(|p| format!("^{p}"))
                    .unwrap_or_default();
                let rank = i
                    .rank
                    .as_ref()
                    .map(|r| format!(" ~{r}"))
                    .unwrap_or_default();
                format!("{}{parent}{rank}", i.key)
            })
            .collect();
        let rows: Vec<String> = self
            .forest
            .walk()
            .iter()
            .map(|&(id, _)| {
                let row = self.forest.row(id).expect("walked rows exist");
                let parent = self.forest.parent(id).and_then(|p| self.forest.row(p));
                let parent = parent.map(|p| format!("@{}", p.item)).unwrap_or_default();
                let owner = row.added_by.as_deref().unwrap_or("-");
                format!("{}{parent} [{owner}] #{id}", row.item)
            })
            .collect();
        let filter = self.filter.as_ref().map(|r| {
            let mut m: Vec<&String> = r.matches.iter().collect();
            m.sort();
            format!("matches {m:?} under {:?} remove {}", r.under, r.remove)
        });
        f.debug_struct("Case")
            .field("issues", &issues)
            .field("rows", &rows)
            .field("filter", &filter)
            .field("subtasks", &self.subtasks)
            .finish()
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
    let input = StructureInput {
        structure: "ns/roadmap",
        tracker: "ns/issues",
        snapshot,
        units,
        arrangers: &arrangers,
    };
    let planned = plan_structure(forest.clone(), &input)?;
    // The engine commits the planner's forest and journals its operations:
    // replaying the operations must give exactly that forest.
    let mut replayed = forest.clone();
    for op in planned.plan.units.iter().flat_map(|u| &u.structure_ops) {
        op.apply(&mut replayed).expect("planned operations replay");
    }
    let rows = |f: &Forest| -> Vec<_> {
        f.walk()
            .into_iter()
            .map(|(id, d)| (id, d, f.row(id).cloned()))
            .collect()
    };
    assert_eq!(
        rows(&replayed),
        rows(&planned.forest),
        "replayed operations differ from the planned forest"
    );
    Ok(planned.plan)
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

/// A plan that must succeed.
fn planned(
    forest: &Forest,
    snapshot: &Snapshot,
    units: &[Unit],
) -> Result<StructurePlan, TestCaseError> {
    plan(forest, snapshot, units).map_err(|e| TestCaseError::fail(format!("plan failed: {e}")))
}

/// `forest` with every structure operation of `plan` applied in order.
fn applied(forest: &Forest, plan: &StructurePlan) -> Result<Forest, TestCaseError> {
    let mut forest = forest.clone();
    for op in structure_ops(plan) {
        let result = op.apply(&mut forest);
        prop_assert!(result.is_ok(), "{:?} failed: {:?}", op, result);
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
        assert!(
            after.update(key, |issue| issue.parent = new_parent),
            "issue is in the snapshot"
        );
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

type Check = Result<(), TestCaseError>;

/// Property 1: planning again after applying a plan finds nothing to do.
fn check_settles(case: &Case) -> Check {
    let (snapshot, units) = (case.snapshot(), case.sync_units());
    let after = applied(&case.forest, &planned(&case.forest, &snapshot, &units)?)?;
    let again = planned(&after, &snapshot, &units)?;
    prop_assert_eq!(again.summary.total(), 0, "second plan: {:#?}", again.units);
    Ok(())
}

/// Property 2a: after syncing into the structure, syncing from it changes no
/// issue.
fn check_into_then_from(case: &Case) -> Check {
    let snapshot = case.snapshot();
    let units = Case {
        subtasks: true,
        ..case.clone()
    }
    .sync_units();
    let settled = applied(&case.forest, &planned(&case.forest, &snapshot, &units)?)?;
    let back = planned(&settled, &snapshot, &[subtasks(Direction::From)])?;
    prop_assert_eq!(tracker_ops(&back), vec![], "from after into");
    prop_assert!(structure_ops(&back).is_empty());
    Ok(())
}

/// Whether every row of `before` is in `after`, under its old parent, under a
/// row added since, or lifted to the top level out of the subtree of a row
/// that moved under an added row (so that it closes no loop).
fn only_follows_added_parents(before: &Forest, after: &Forest) -> bool {
    let added = |p: RowId| !before.contains(p);
    let walk = before.walk();
    let followers: Vec<RowId> = walk
        .iter()
        .map(|&(id, _)| id)
        .filter(|&id| after.parent(id).is_some_and(added))
        .collect();
    walk.iter().all(|&(id, _)| {
        let (old, new) = (before.parent(id), after.parent(id));
        let lifted = new.is_none() && followers.iter().any(|&f| before.is_ancestor(f, id));
        after.contains(id) && (new == old || new.is_some_and(added) || lifted)
    })
}

/// Property 2b: syncing from the structure sets exactly the documented
/// parents (or reports the cycle they would make), and syncing back into it
/// then removes nothing and keeps rows where they are, but for adding missing
/// children, moving rows under the parents it adds and lifting loops open.
fn check_from_then_into(case: &Case) -> Check {
    let snapshot = case.snapshot();
    let expected = expected_after_from(&case.forest, &snapshot);
    let exported = match plan(&case.forest, &snapshot, &[subtasks(Direction::From)]) {
        Err(PlanError::ExportCycle(cycle)) => {
            prop_assert!(
                expected.parent_cycle().is_some(),
                "cycle {:?} reported where none arises",
                cycle
            );
            return Ok(());
        }
        result => result.map_err(|e| TestCaseError::fail(format!("plan failed: {e}")))?,
    };
    prop_assert!(structure_ops(&exported).is_empty());
    let mut tracker = snapshot.clone();
    for op in tracker_ops(&exported) {
        op.apply(&mut tracker);
    }
    prop_assert_eq!(
        tracker.digest(),
        expected.digest(),
        "from ops: {:#?}",
        tracker_ops(&exported)
    );
    if !has_unknown_issue_under_an_issue(&case.forest, &snapshot) {
        let again = planned(&case.forest, &tracker, &[subtasks(Direction::Into)])?;
        let after = applied(&case.forest, &again)?;
        let message = format!("into after from: {:#?}", structure_ops(&again));
        prop_assert!(
            only_follows_added_parents(&case.forest, &after),
            "{}",
            message
        );
    }
    Ok(())
}

/// Property 3: applying never fails, issues stay unique, and rows no
/// synchronizer added stay, unchanged.
fn check_rows_unique_and_kept(case: &Case) -> Check {
    let snapshot = case.snapshot();
    let after = applied(
        &case.forest,
        &planned(&case.forest, &snapshot, &case.sync_units())?,
    )?;
    let items: Vec<&RowItem> = after
        .walk()
        .iter()
        .map(|&(id, _)| &after.row(id).expect("walked").item)
        .collect();
    prop_assert_eq!(
        items.iter().collect::<HashSet<_>>().len(),
        items.len(),
        "duplicate rows: {:?}",
        items
    );
    for (id, _) in case.forest.walk() {
        let row = case.forest.row(id).expect("walked rows exist");
        if row.added_by.is_none() {
            prop_assert_eq!(after.row(id), Some(row), "a row nobody synced was removed");
        }
    }
    Ok(())
}

/// Property 4: the same input plans the same operations and hash, whatever
/// order the snapshot and match set iterate in (rebuilt maps get new seeds).
fn check_deterministic(case: &Case) -> Check {
    let snapshot = case.snapshot();
    let rebuilt = Snapshot::new(case.issues.iter().rev().cloned());
    for units in [case.sync_units(), vec![subtasks(Direction::From)]] {
        let one = plan(&case.forest, &snapshot, &units);
        let two = plan(&case.forest, &rebuilt, &with_rebuilt_matches(&units));
        match (one, two) {
            (Ok(one), Ok(two)) => {
                prop_assert_eq!(&one.hash, &two.hash);
                prop_assert_eq!(structure_ops(&one), structure_ops(&two));
                prop_assert_eq!(tracker_ops(&one), tracker_ops(&two));
            }
            (one, two) => prop_assert_eq!(
                one.err().map(|e| e.to_string()),
                two.err().map(|e| e.to_string())
            ),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn planning_again_after_applying_finds_nothing_to_do(case in case()) {
        check_settles(&case)?;
    }

    #[test]
    fn into_then_from_leaves_the_tracker_unchanged(case in case()) {
        check_into_then_from(&case)?;
    }

    #[test]
    fn from_then_into_leaves_the_structure_in_place(case in case()) {
        check_from_then_into(&case)?;
    }

    #[test]
    fn issues_stay_unique_and_rows_nobody_synced_stay(case in case()) {
        check_rows_unique_and_kept(&case)?;
    }

    #[test]
    fn the_plan_and_its_hash_are_deterministic(case in case()) {
        check_deterministic(&case)?;
    }
}

// Minimal counterexamples the properties found, pinned as regression tests.

/// A case from `(key, parent)` issues and `(item, parent item, added_by)`
/// rows, each appended under its parent (`name/` is a folder), with subtasks.
fn pinned(
    issues: &[(&str, Option<&str>)],
    rows: &[(&str, Option<&str>, Option<&str>)],
    filter: Option<(&[&str], Placement, bool)>,
) -> Case {
    let item = |s: &str| match s.strip_suffix('/') {
        Some(name) => RowItem::Folder(name.into()),
        None => RowItem::Issue(s.into()),
    };
    let mut forest = Forest::new();
    for &(row, parent, added_by) in rows {
        let under = parent.map(|p| forest.find(&item(p)).expect("parent row comes first"));
        let after = forest.children(under).last().copied();
        let row = Row {
            id: forest.next_id(),
            item: item(row),
            added_by: added_by.map(Into::into),
        };
        forest
            .insert(row, Position { under, after })
            .expect("pinned rows fit");
    }
    Case {
        issues: issues
            .iter()
            .map(|&(k, p)| issue(k.into(), p.map(Into::into), None, "Open"))
            .collect(),
        forest,
        filter: filter.map(|(matches, under, remove)| FilterRule {
            matches: matches.iter().map(|k| k.to_string()).collect(),
            under,
            remove,
        }),
        subtasks: true,
    }
}

fn holds(check: Check) {
    if let Err(e) = check {
        panic!("{e}");
    }
}

const TWO: &[(&str, Option<&str>)] = &[("P-1", None), ("P-2", None)];

/// Subtasks removes P-2 (its reason is gone); the person's folder under it
/// must survive, and planning must not panic in `subtasks::target`.
#[test]
fn subtasks_removing_a_row_keeps_the_folder_under_it() {
    let rows = [
        ("P-1", None, None),
        ("P-2", Some("P-1"), Some(CHILDREN)),
        ("F/", Some("P-2"), None),
    ];
    holds(check_rows_unique_and_kept(&pinned(TWO, &rows, None)));
}

/// P-2 belongs under P-1, which sits under P-2 through a folder: the planner
/// must not panic in `subtasks::target` ("fates never put a row under its own
/// subtree when parents have no cycle").
#[test]
fn subtasks_untangles_a_parent_under_its_child_through_a_folder() {
    let issues = [("P-1", None), ("P-2", Some("P-1"))];
    let rows = [
        ("P-2", None, None),
        ("F/", Some("P-2"), None),
        ("P-1", Some("F/"), None),
    ];
    holds(check_rows_unique_and_kept(&pinned(&issues, &rows, None)));
}

/// P-3 goes under its parent P-2 in the same sync that adds P-2.
#[test]
fn subtasks_moves_a_row_under_the_parent_it_adds() {
    let issues = [("P-1", None), ("P-2", Some("P-1")), ("P-3", Some("P-2"))];
    let case = pinned(&issues, &[("P-1", None, None), ("P-3", None, None)], None);
    holds(check_settles(&case));
    holds(check_into_then_from(&case));
}

/// Subtasks removes P-2, which the filter matches (one sync used to leave
/// the next one adding it back).
#[test]
fn a_filter_match_that_subtasks_removes_settles_in_one_sync() {
    let rows = [("P-1", None, None), ("P-2", Some("P-1"), Some(CHILDREN))];
    holds(check_settles(&pinned(
        TWO,
        &rows,
        Some((&["P-2"], Placement::Top, false)),
    )));
}

/// Subtasks moves the unmatched P-2 back to the top level, where the filter
/// removes the rows it added.
#[test]
fn an_unmatched_filter_row_that_subtasks_moves_back_settles_in_one_sync() {
    let rows = [("P-1", None, None), ("P-2", Some("P-1"), Some(FILTER))];
    holds(check_settles(&pinned(
        TWO,
        &rows,
        Some((&[], Placement::Top, true)),
    )));
}

/// The filter keeps the unmatched P-1 for the person's row P-2 under it, and
/// then subtasks moves P-2 out.
#[test]
fn an_unmatched_filter_row_kept_for_a_row_subtasks_moves_out_settles_in_one_sync() {
    let rows = [("P-1", None, Some(FILTER)), ("P-2", Some("P-1"), None)];
    holds(check_settles(&pinned(
        TWO,
        &rows,
        Some((&[], Placement::Top, true)),
    )));
}

/// The filter's placement P-2 appears only when subtasks adds it.
#[test]
fn a_filter_placement_that_subtasks_adds_settles_in_one_sync() {
    let issues = [("P-1", None), ("P-2", Some("P-1")), ("P-3", None)];
    let filter = (&["P-3"][..], Placement::Issue("P-2".into()), false);
    holds(check_settles(&pinned(
        &issues,
        &[("P-1", None, None)],
        Some(filter),
    )));
}

use std::collections::HashSet;

use super::*;
use crate::model::{Issue, Position, Row, RowItem};

fn issue(key: &str, parent: Option<&str>) -> Issue {
    Issue {
        key: key.into(),
        summary: format!("Summary of {key}"),
        issue_type: "Story".into(),
        status: "Open".into(),
        parent: parent.map(Into::into),
        epic: None,
        links: vec![],
        rank: None,
        updated: None,
        fields: Default::default(),
    }
}

/// A forest from `(key, parent key, added_by)` triples, in order.
fn forest(rows: &[(&str, Option<&str>, Option<&str>)]) -> Forest {
    let mut f = Forest::new();
    for (key, parent, added_by) in rows {
        let item = if let Some(name) = key.strip_suffix('/') {
            RowItem::Folder(name.into())
        } else {
            RowItem::Issue((*key).into())
        };
        let under = parent.map(|p| {
            f.find_issue(p)
                .or_else(|| f.find(&RowItem::Folder(p.trim_end_matches('/').into())))
                .unwrap()
        });
        let after = f.children(under).last().copied();
        let row = Row {
            id: f.next_id(),
            item,
            added_by: added_by.map(Into::into),
        };
        f.insert(row, Position { under, after }).unwrap();
    }
    f
}

/// The forest as `key@parent` strings in display order.
fn layout(f: &Forest) -> Vec<String> {
    f.walk()
        .iter()
        .map(|(id, _)| {
            let item = f.row(*id).unwrap().item.to_string();
            match f.parent(*id) {
                Some(p) => format!("{item}@{}", f.row(p).unwrap().item),
                None => item,
            }
        })
        .collect()
}

fn filter(name: &str, matches: &[&str], under: Placement, remove: bool) -> Unit {
    Unit {
        name: name.into(),
        direction: Direction::Into,
        rule: Rule::Filter(FilterRule {
            matches: matches.iter().map(|s| s.to_string()).collect(),
            under,
            remove,
        }),
    }
}

fn subtasks(direction: Direction) -> Unit {
    Unit {
        name: "ns/children".into(),
        direction,
        rule: Rule::Subtasks,
    }
}

fn plan(f: &Forest, s: &Snapshot, units: &[Unit]) -> StructurePlan {
    let arrangers: HashSet<String> = ["ns/children".to_string()].into();
    let input = StructureInput {
        structure: "ns/roadmap",
        tracker: "ns/issues",
        snapshot: s,
        units,
        arrangers: &arrangers,
    };
    let planned = plan_structure(f.clone(), &input).unwrap();
    // What the engine commits is what replaying the operations gives.
    assert_eq!(applied(f, s, &planned.plan).0.walk(), planned.forest.walk());
    planned.plan
}

/// Plans with `arrangers`, checks that replaying the plan gives the planned
/// forest and that planning again after applying it finds nothing to do;
/// returns the plan and what applying it leaves.
fn plan_settled(
    f: &Forest,
    s: &Snapshot,
    units: &[Unit],
    arrangers: &[&str],
) -> Result<(StructurePlan, Forest, Snapshot), PlanError> {
    let arrangers: HashSet<String> = arrangers.iter().map(|a| a.to_string()).collect();
    let input = StructureInput {
        structure: "ns/roadmap",
        tracker: "ns/issues",
        snapshot: s,
        units,
        arrangers: &arrangers,
    };
    let planned = plan_structure(f.clone(), &input)?;
    let (replayed, after) = applied(f, s, &planned.plan);
    assert_eq!(replayed.walk(), planned.forest.walk());
    let again = plan_structure(
        replayed.clone(),
        &StructureInput {
            snapshot: &after,
            ..input
        },
    )?;
    assert_eq!(again.plan.summary.total(), 0, "{:?}", again.plan.units);
    Ok((planned.plan, replayed, after))
}

fn applied(f: &Forest, s: &Snapshot, p: &StructurePlan) -> (Forest, Snapshot) {
    let (mut f, mut s) = (f.clone(), s.clone());
    for unit in &p.units {
        for op in &unit.structure_ops {
            op.apply(&mut f).unwrap();
        }
        for op in &unit.tracker_ops {
            op.apply(&mut s);
        }
    }
    (f, s)
}

#[test]
fn filter_adds_matches_under_its_folder_in_rank_order() {
    let mut a = issue("P-2", None);
    a.rank = Some("a".into());
    let mut b = issue("P-1", None);
    b.rank = Some("b".into());
    let s = Snapshot::new([a, b, issue("P-3", None)]);
    let f = forest(&[("Platform/", None, None), ("Other/", None, None)]);
    let p = plan(
        &f,
        &s,
        &[filter(
            "ns/epics",
            &["P-1", "P-2"],
            Placement::Folder("Platform".into()),
            false,
        )],
    );
    assert_eq!(
        p.summary.to_string(),
        "2 to add, 0 to move, 0 to remove; 0 tracker updates, 0 destructive"
    );
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(
        layout(&after),
        ["Platform/", "P-2@Platform/", "P-1@Platform/", "Other/"]
    );
    assert!(
        p.outline_diff
            .contains("+  P-2 [Story] Summary of P-2 (Open)"),
        "{}",
        p.outline_diff
    );
}

#[test]
fn filter_adds_nothing_when_its_placement_issue_is_missing() {
    let s = Snapshot::new([issue("P-1", None)]);
    let p = plan(
        &Forest::new(),
        &s,
        &[filter(
            "ns/f",
            &["P-1"],
            Placement::Issue("P-9".into()),
            true,
        )],
    );
    assert_eq!(p.summary.total(), 0);
    assert!(p.units[0].notes[0].contains("issue P-9 is not in the structure"));
}

#[test]
fn filter_removes_only_its_own_rows_from_where_it_added_them() {
    let s = Snapshot::new([
        issue("P-1", None),
        issue("P-2", None),
        issue("P-3", None),
        issue("P-4", None),
    ]);
    let f = forest(&[
        ("P-1", None, Some("ns/f")), // stopped matching: removed
        ("P-2", None, None),         // added by a person: stays
        ("X/", None, None),
        ("P-3", Some("X/"), Some("ns/f")), // moved elsewhere by a person: stays
        ("P-4", None, Some("ns/f")),       // still matches
    ]);
    let p = plan(&f, &s, &[filter("ns/f", &["P-4"], Placement::Top, true)]);
    let removed: Vec<String> = p.units[0]
        .structure_ops
        .iter()
        .map(|op| op.item().to_string())
        .collect();
    assert_eq!(removed, ["P-1"]);
    assert_eq!(p.summary.destructive, 1);
}

#[test]
fn filter_removal_takes_derived_children_but_never_rows_that_must_stay() {
    let s = Snapshot::new([
        issue("P-1", None),
        issue("P-2", Some("P-1")),
        issue("P-3", None),
        issue("P-4", Some("P-3")),
    ]);
    let f = forest(&[
        ("P-1", None, Some("ns/f")),
        ("P-2", Some("P-1"), Some("ns/children")), // placed by subtasks: goes with P-1
        ("P-3", None, Some("ns/f")),
        ("P-4", Some("P-3"), None), // placed by a person: keeps P-3
    ]);
    let p = plan(&f, &s, &[filter("ns/f", &[], Placement::Top, true)]);
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(layout(&after), ["P-3", "P-4@P-3"]);
    assert!(p.units[0].notes[0].contains("P-3 no longer matches but stays: P-4"));
}

#[test]
fn subtasks_into_places_every_child_under_its_parent() {
    let s = Snapshot::new([
        issue("P-1", None),
        issue("P-2", Some("P-1")),
        issue("P-3", Some("P-2")),
        issue("P-4", Some("P-1")),
        issue("P-5", None),
    ]);
    // P-4 sits at the top level although its parent P-1 is in the structure.
    let f = forest(&[("P-1", None, None), ("P-4", None, None)]);
    let p = plan(&f, &s, &[subtasks(Direction::Into)]);
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(layout(&after), ["P-1", "P-2@P-1", "P-3@P-2", "P-4@P-1"]);
    assert_eq!(p.summary.add, 2);
    assert_eq!(p.summary.move_, 1);
}

#[test]
fn subtasks_into_follows_a_parent_change_and_drops_rows_whose_reason_is_gone() {
    let s = Snapshot::new([
        issue("P-1", None),
        issue("P-2", None),
        issue("P-3", Some("P-2")), // re-parented from P-1 to P-2
        issue("P-4", None),        // parent cleared; was added under P-1 by subtasks
        issue("P-5", None),        // parent cleared; placed under P-1 by a person
    ]);
    let f = forest(&[
        ("P-1", None, None),
        ("P-2", None, None),
        ("P-3", Some("P-1"), Some("ns/children")),
        ("P-4", Some("P-1"), Some("ns/children")),
        ("P-5", Some("P-1"), None),
    ]);
    let p = plan(&f, &s, &[subtasks(Direction::Into)]);
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(layout(&after), ["P-1", "P-2", "P-3@P-2", "P-5"]);
}

#[test]
fn subtasks_into_untangles_a_parent_placed_under_its_child() {
    let s = Snapshot::new([issue("P-1", None), issue("P-2", Some("P-1"))]);
    let f = forest(&[("P-2", None, None), ("P-1", Some("P-2"), None)]);
    let p = plan(&f, &s, &[subtasks(Direction::Into)]);
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(layout(&after), ["P-1", "P-2@P-1"]);
}

#[test]
fn subtasks_from_sets_and_clears_parents() {
    let s = Snapshot::new([
        issue("P-1", None),
        issue("P-2", None),
        issue("P-3", Some("P-1")),
        issue("P-4", Some("P-1")),
        issue("P-5", Some("Q-9")), // parent outside the structure: left alone
    ]);
    let f = forest(&[
        ("P-1", None, None),
        ("P-2", None, None),
        ("P-3", Some("P-2"), None),
        ("P-4", None, None),
        ("P-5", None, None),
    ]);
    let p = plan(&f, &s, &[subtasks(Direction::From)]);
    assert_eq!(
        p.units[0].tracker_ops,
        [
            TrackerOp::SetParent {
                issue: "P-3".into(),
                from: Some("P-1".into()),
                to: "P-2".into()
            },
            TrackerOp::ClearParent {
                issue: "P-4".into(),
                from: "P-1".into()
            },
        ]
    );
    assert_eq!(
        p.summary.to_string(),
        "0 to add, 0 to move, 0 to remove; 2 tracker updates, 1 destructive"
    );
    assert!(p.outline_diff.is_empty(), "exporting changes no row");
}

#[test]
fn a_parent_cycle_is_reported_with_its_issues() {
    let s = Snapshot::new([issue("P-1", Some("P-2")), issue("P-2", Some("P-1"))]);
    let f = forest(&[("P-1", None, None)]);
    let arrangers = HashSet::new();
    let err = plan_structure(
        f.clone(),
        &StructureInput {
            structure: "ns/r",
            tracker: "ns/t",
            snapshot: &s,
            units: &[subtasks(Direction::Into)],
            arrangers: &arrangers,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("issues P-1, P-2 form a parent cycle (P-1 → P-2 → P-1)"),
        "{err}"
    );
}

#[test]
fn a_direction_the_type_lacks_names_the_supported_ones() {
    let mut unit = filter("ns/f", &[], Placement::Top, false);
    unit.direction = Direction::From;
    let arrangers = HashSet::new();
    let err = plan_structure(
        Forest::new(),
        &StructureInput {
            structure: "ns/r",
            tracker: "ns/t",
            snapshot: &Snapshot::default(),
            units: &[unit],
            arrangers: &arrangers,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ns/f is a filter synchronizer and cannot sync from; it supports: into"
    );
}

fn declared_folder(name: &str, rows: Vec<DeclaredRow>) -> DeclaredRow {
    DeclaredRow {
        item: RowItem::Folder(name.into()),
        rows,
    }
}

#[test]
fn declared_rows_come_first_and_in_order() {
    let f = forest(&[("P-1", None, None)]);
    let declared = vec![
        declared_folder("A", vec![declared_folder("A1", vec![])]),
        declared_folder("B", vec![]),
    ];
    let unit = Unit {
        name: "ns/r".into(),
        direction: Direction::Into,
        rule: Rule::DeclaredRows(declared),
    };
    let p = plan(&f, &Snapshot::default(), std::slice::from_ref(&unit));
    let (after, _) = applied(&f, &Snapshot::default(), &p);
    assert_eq!(layout(&after), ["A/", "A1/@A/", "B/", "P-1"]);
    assert!(plan(&after, &Snapshot::default(), &[unit]).summary.total() == 0);
}

#[test]
fn declared_rows_moved_elsewhere_are_moved_back_with_what_is_under_them() {
    // A person moved the declared folder A/ under issue P-1, and the declared
    // B/ ahead of A/; the declaration puts both back, A/ first.
    let f = forest(&[
        ("P-1", None, None),
        ("B/", None, None),
        ("A/", Some("P-1"), None),
        ("P-2", Some("A/"), None),
    ]);
    let declared = vec![declared_folder("A", vec![]), declared_folder("B", vec![])];
    let unit = Unit {
        name: "ns/r".into(),
        direction: Direction::Into,
        rule: Rule::DeclaredRows(declared),
    };
    let p = plan(&f, &Snapshot::default(), std::slice::from_ref(&unit));
    assert_eq!(p.summary.total(), 2, "{:#?}", p.units);
    assert!(
        p.units[0]
            .structure_ops
            .iter()
            .all(|op| matches!(op, StructureOp::Move { .. })),
        "{:#?}",
        p.units
    );
    let (after, _) = applied(&f, &Snapshot::default(), &p);
    assert_eq!(layout(&after), ["A/", "P-2@A/", "B/", "P-1"]);
    assert!(plan(&after, &Snapshot::default(), &[unit]).summary.total() == 0);
}

#[test]
fn planning_after_applying_finds_nothing_to_do() {
    let s = Snapshot::new([
        issue("P-1", None),
        issue("P-2", Some("P-1")),
        issue("P-3", Some("P-2")),
        issue("P-4", None),
    ]);
    let units = [
        filter("ns/f", &["P-1", "P-4"], Placement::Top, true),
        subtasks(Direction::Into),
    ];
    let p = plan(&Forest::new(), &s, &units);
    let (after, _) = applied(&Forest::new(), &s, &p);
    let again = plan(&after, &s, &units);
    assert_eq!(again.summary.total(), 0, "{:#?}", again.units);
    assert_ne!(p.hash, again.hash);
}

#[test]
fn the_hash_changes_with_the_base_even_for_the_same_operations() {
    let s1 = Snapshot::new([issue("P-1", None)]);
    let mut changed = issue("P-1", None);
    changed.summary = "Renamed".into();
    let s2 = Snapshot::new([changed]);
    let units = [filter("ns/f", &["P-1"], Placement::Top, false)];
    assert_ne!(
        plan(&Forest::new(), &s1, &units).hash,
        plan(&Forest::new(), &s2, &units).hash
    );
    assert_eq!(
        plan(&Forest::new(), &s1, &units).hash,
        plan(&Forest::new(), &s1, &units).hash
    );
}

#[test]
fn a_loop_through_a_folder_is_broken_by_lifting_the_folder_not_a_placed_issue() {
    // Tracker: P-5 > P-6 > P-7 > P-3. Structure: P-7 > P-3 > F/ > P-5.
    let s = Snapshot::new([
        issue("P-3", Some("P-7")),
        issue("P-5", None),
        issue("P-6", Some("P-5")),
        issue("P-7", Some("P-6")),
    ]);
    let f = forest(&[
        ("P-7", None, None),
        ("P-3", Some("P-7"), None),
        ("F/", Some("P-3"), None),
        ("P-5", Some("F/"), None),
    ]);
    let p = plan(&f, &s, &[subtasks(Direction::Into)]);
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(
        layout(&after),
        ["F/", "P-5@F/", "P-6@P-5", "P-7@P-6", "P-3@P-7"]
    );
    assert_eq!(
        p.summary.total(),
        3,
        "add P-6, move P-7 under it, lift F/: {:#?}",
        p.units
    );
}

#[test]
fn a_filter_keeps_an_unmatched_row_that_holds_a_row_it_matches() {
    // P-2 sits under P-1 because subtasks put it there; the filter matches
    // P-2 but not P-1. Removing P-1's subtree would take P-2, which the same
    // filter would add back on the next run.
    let s = Snapshot::new([issue("P-1", None), issue("P-2", None)]);
    let f = forest(&[
        ("P-1", None, Some("ns/f")),
        ("P-2", Some("P-1"), Some("ns/children")),
    ]);
    let units = [filter("ns/f", &["P-2"], Placement::Top, true)];
    let p = plan(&f, &s, &units);
    assert_eq!(p.summary.total(), 0);
    assert!(
        p.units[0].notes[0].contains("P-1 no longer matches but stays: P-2"),
        "{:?}",
        p.units[0].notes
    );
}

#[test]
fn subtasks_leaves_declared_rows_where_the_structure_declares_them() {
    // Declared: A-1 holding A-2, and folder F/ holding A-3. The tracker puts
    // A-3 under A-1, and A-2 under nobody.
    let s = Snapshot::new([
        issue("A-1", None),
        issue("A-2", None),
        issue("A-3", Some("A-1")),
    ]);
    let declared = vec![
        DeclaredRow {
            item: RowItem::Issue("A-1".into()),
            rows: vec![DeclaredRow {
                item: RowItem::Issue("A-2".into()),
                rows: vec![],
            }],
        },
        DeclaredRow {
            item: RowItem::Folder("F".into()),
            rows: vec![DeclaredRow {
                item: RowItem::Issue("A-3".into()),
                rows: vec![],
            }],
        },
    ];
    let units = [
        Unit {
            name: "ns/roadmap".into(),
            direction: Direction::Into,
            rule: Rule::DeclaredRows(declared),
        },
        subtasks(Direction::Into),
    ];
    let p = plan(&Forest::new(), &s, &units);
    let (after, _) = applied(&Forest::new(), &s, &p);
    assert_eq!(layout(&after), ["A-1", "A-2@A-1", "F/", "A-3@F/"]);
}

#[test]
fn an_export_that_would_close_a_cycle_says_so() {
    // Tracker: B-1 → X-1 → A-1 (X-1 is not in the structure); the structure
    // puts A-1 under B-1, which would make A-1 an ancestor of itself.
    let s = Snapshot::new([
        issue("A-1", None),
        issue("X-1", Some("A-1")),
        issue("B-1", Some("X-1")),
    ]);
    let f = forest(&[("B-1", None, None), ("A-1", Some("B-1"), None)]);
    let arrangers = HashSet::new();
    let input = StructureInput {
        structure: "ns/r",
        tracker: "ns/t",
        snapshot: &s,
        units: &[subtasks(Direction::From)],
        arrangers: &arrangers,
    };
    let err = plan_structure(f, &input).unwrap_err().to_string();
    assert!(
        err.starts_with("exporting would make issues A-1, B-1, X-1 a parent cycle"),
        "{err}"
    );
}

#[test]
fn the_outline_shows_control_characters_as_escapes() {
    let mut forged = issue("P-1", None);
    forged.summary = "Harmless\n+  P-9 [Story] Forged line (Open)".into();
    let s = Snapshot::new([forged]);
    let p = plan(
        &Forest::new(),
        &s,
        &[filter("ns/f", &["P-1"], Placement::Top, false)],
    );
    assert_eq!(
        p.outline_diff
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count(),
        1
    );
    assert!(
        p.outline_diff.contains("Harmless\\u{a}+  P-9"),
        "{}",
        p.outline_diff
    );
}

#[test]
fn plans_do_not_depend_on_hash_order_when_keys_sort_alike() {
    // `X-1` and `X-01` have the same project and number: the key breaks the tie.
    let s = Snapshot::new([issue("X-01", None), issue("X-1", None)]);
    let units = [filter("ns/f", &["X-1", "X-01"], Placement::Top, false)];
    let hashes: HashSet<String> = (0..8)
        .map(|_| plan(&Forest::new(), &s, &units).hash)
        .collect();
    assert_eq!(hashes.len(), 1);
}

// ----------------------------------------------------------- statusRollup

fn rollup(statuses: &[&str], issue_types: &[&str], workflow: Option<Workflow>) -> Unit {
    Unit {
        name: "ns/rollup".into(),
        direction: Direction::From,
        rule: Rule::StatusRollup(StatusRollupRule {
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
            issue_types: issue_types.iter().map(|s| s.to_string()).collect(),
            workflow,
        }),
    }
}

fn with_status(key: &str, parent: Option<&str>, status: &str) -> Issue {
    Issue {
        status: status.into(),
        ..issue(key, parent)
    }
}

const FLOW: &[&str] = &["To Do", "In Progress", "Done"];

fn status_changes(p: &StructurePlan) -> Vec<String> {
    p.units
        .iter()
        .flat_map(|u| &u.tracker_ops)
        .map(|op| op.to_string())
        .collect()
}

#[test]
fn a_parent_takes_the_earliest_status_among_its_children_and_it_rolls_up() {
    // E-1 ← S-1 ← (T-1 Done, T-2 In Progress); E-1 also has S-2 Done.
    let s = Snapshot::new([
        with_status("E-1", None, "To Do"),
        with_status("S-1", Some("E-1"), "To Do"),
        with_status("S-2", Some("E-1"), "Done"),
        with_status("T-1", Some("S-1"), "Done"),
        with_status("T-2", Some("S-1"), "In Progress"),
    ]);
    let f = forest(&[
        ("E-1", None, None),
        ("S-1", Some("E-1"), None),
        ("T-1", Some("S-1"), None),
        ("T-2", Some("S-1"), None),
        ("S-2", Some("E-1"), None),
    ]);
    let p = plan(&f, &s, &[rollup(FLOW, &[], None)]);
    // S-1 goes first, and E-1 sees its new status in the same plan.
    assert_eq!(
        status_changes(&p),
        [
            "S-1: status To Do → In Progress",
            "E-1: status To Do → In Progress"
        ]
    );
    assert_eq!(p.summary.tracker_updates, 2);
    assert_eq!(
        p.summary.destructive, 0,
        "a status change is not destructive"
    );
    let notes = &p.units[0].notes;
    assert!(notes.contains(&"S-1: status To Do → In Progress, because the earliest status among its children: T-2 is In Progress".to_owned()), "{notes:?}");
    assert!(notes.contains(&"E-1: status To Do → In Progress, because the earliest status among its children: S-1 is In Progress".to_owned()), "{notes:?}");
    // Applied, the plan is settled.
    let (_, after) = applied(&f, &s, &p);
    assert_eq!(
        plan(&f, &after, &[rollup(FLOW, &[], None)]).summary.total(),
        0
    );
}

#[test]
fn all_children_done_close_the_parent() {
    let s = Snapshot::new([
        with_status("E-1", None, "In Progress"),
        with_status("S-1", Some("E-1"), "Done"),
        with_status("S-2", Some("E-1"), "Done"),
    ]);
    let f = forest(&[
        ("E-1", None, None),
        ("S-1", Some("E-1"), None),
        ("S-2", Some("E-1"), None),
    ]);
    let p = plan(&f, &s, &[rollup(FLOW, &[], None)]);
    assert_eq!(status_changes(&p), ["E-1: status In Progress → Done"]);
    assert_eq!(
        p.units[0].notes,
        ["E-1: status In Progress → Done, because all its children are Done"]
    );
}

#[test]
fn a_child_in_an_unlisted_status_leaves_its_parent_unchanged() {
    let s = Snapshot::new([
        with_status("E-1", None, "In Progress"),
        with_status("S-1", Some("E-1"), "Done"),
        with_status("S-2", Some("E-1"), "In Review"),
        // A parent in an unlisted status is left alone too.
        with_status("E-2", None, "Blocked"),
        with_status("S-3", Some("E-2"), "Done"),
    ]);
    let f = forest(&[
        ("E-1", None, None),
        ("S-1", Some("E-1"), None),
        ("S-2", Some("E-1"), None),
        ("E-2", None, None),
        ("S-3", Some("E-2"), None),
    ]);
    let p = plan(&f, &s, &[rollup(FLOW, &[], None)]);
    assert!(status_changes(&p).is_empty());
    assert_eq!(
        p.units[0].notes,
        ["E-1 stays In Progress: its child S-2 is In Review, a status statusRollup does not list"]
    );
}

#[test]
fn only_parents_of_the_listed_types_and_allowed_transitions_change() {
    let mut epic = with_status("E-1", None, "Done");
    epic.issue_type = "Epic".into();
    let s = Snapshot::new([
        epic,
        with_status("S-1", Some("E-1"), "To Do"),
        with_status("T-1", Some("S-1"), "In Progress"),
    ]);
    let f = forest(&[
        ("E-1", None, None),
        ("S-1", Some("E-1"), None),
        ("T-1", Some("S-1"), None),
    ]);
    // Stories are not rolled up: S-1 stays To Do, and E-1 follows it...
    let p = plan(&f, &s, &[rollup(FLOW, &["Epic"], None)]);
    assert_eq!(status_changes(&p), ["E-1: status Done → To Do"]);
    // ...unless the tracker's workflow does not allow reopening.
    let workflow = Workflow::new([
        ("To Do", &["In Progress"][..]),
        ("In Progress", &["Done"][..]),
        ("Done", &[][..]),
    ]);
    let p = plan(&f, &s, &[rollup(FLOW, &["Epic"], Some(workflow))]);
    assert!(status_changes(&p).is_empty());
    assert_eq!(
        p.units[0].notes,
        [
            "E-1 stays Done: its children say To Do, but the tracker's workflow does not allow Done → To Do (allowed: none)"
        ]
    );
}

#[test]
fn status_rollup_only_syncs_from_the_structure() {
    let unit = Unit {
        direction: Direction::Into,
        ..rollup(FLOW, &[], None)
    };
    let arrangers = HashSet::new();
    let input = StructureInput {
        structure: "ns/r",
        tracker: "ns/t",
        snapshot: &Snapshot::default(),
        units: &[unit],
        arrangers: &arrangers,
    };
    let err = plan_structure(Forest::new(), &input)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "ns/rollup is a statusRollup synchronizer and cannot sync into; it supports: from"
    );
}

mod agile;
mod links;

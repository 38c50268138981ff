//! Every conflict rule against every "which side changed" case, without a
//! store: the table the pass's behaviour is built on.

use super::*;
use crate::model::{Issue, Position, Row, RowItem};

const T0: i64 = 1_700_000_000;

fn at(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(T0 + seconds).unwrap()
}

fn issue(key: &str, parent: Option<&str>, updated: i64) -> Issue {
    Issue {
        key: key.into(),
        summary: key.into(),
        issue_type: "Task".into(),
        status: "Open".into(),
        parent: parent.map(Into::into),
        epic: None,
        links: vec![],
        rank: None,
        updated: Some(at(updated)),
        fields: Default::default(),
    }
}

/// A forest of `(key, parent key)` rows, in order.
fn forest(rows: &[(&str, Option<&str>)]) -> Forest {
    let mut f = Forest::new();
    for (key, parent) in rows {
        let under = parent.map(|p| f.find_issue(p).unwrap());
        let after = f.children(under).last().copied();
        let row = Row {
            id: f.next_id(),
            item: RowItem::Issue((*key).into()),
            added_by: None,
        };
        f.insert(row, Position { under, after }).unwrap();
    }
    f
}

/// Which side moved issue A since the last pass, when A sat under P on both.
#[derive(Clone, Copy, Debug)]
enum Case {
    Neither,
    StructureOnly,
    TrackerOnly,
    /// Both, to different places.
    BothApart,
    /// Both, to the same parent.
    BothAlike,
}

const CASES: [Case; 5] = [
    Case::Neither,
    Case::StructureOnly,
    Case::TrackerOnly,
    Case::BothApart,
    Case::BothAlike,
];

struct World {
    forest: Forest,
    snapshot: Snapshot,
    changes: Changes,
    baselines: HashMap<String, Sides>,
}

/// The structure's move is at second 20; the tracker's at `tracker_time`.
fn world(case: Case, tracker_time: i64) -> World {
    let (row, tracker) = match case {
        Case::Neither => ("P", "P"),
        Case::StructureOnly => ("Q", "P"),
        Case::TrackerOnly => ("P", "R"),
        Case::BothApart => ("Q", "R"),
        Case::BothAlike => ("Q", "Q"),
    };
    let forest = forest(&[("P", None), ("Q", None), ("R", None), ("A", Some(row))]);
    let snapshot = Snapshot::new([
        issue("P", None, 0),
        issue("Q", None, 0),
        issue("R", None, 0),
        issue("A", Some(tracker), tracker_time),
    ]);
    let mut changes = Changes::default();
    if row != "P" {
        changes.structure.insert("A".into(), at(20));
    }
    if tracker != "P" {
        changes.tracker.insert("A".into());
    }
    let baselines = HashMap::from([(
        "A".to_owned(),
        Sides {
            row: Some(Some("P".into())),
            tracker_parent: Some("P".into()),
        },
    )]);
    World {
        forest,
        snapshot,
        changes,
        baselines,
    }
}

fn run(world: &World, held: &BTreeMap<String, Option<Release>>, policy: Policy) -> Decisions {
    decide(
        &DecideInput {
            synchronizer: "team/sync",
            baselines: &world.baselines,
            held,
            changes: &world.changes,
            forest: &world.forest,
            snapshot: &world.snapshot,
        },
        &policy,
    )
}

fn policy(conflict: ConflictRule, parent_field: bool) -> Policy {
    Policy {
        compare: true,
        parent_field,
        conflict,
    }
}

/// The expected decision for A and the side a conflict keeps (`None`: no
/// conflict).
fn expected(
    case: Case,
    rule: ConflictRule,
    tracker_newer: bool,
    parent_field: bool,
) -> (Option<Decision>, Option<Kept>) {
    let conflict = |rule| match rule {
        ConflictRule::Tracker => (Some(Decision::Pull), Some(Kept::Tracker)),
        ConflictRule::Structure => (Some(Decision::Push), Some(Kept::Structure)),
        ConflictRule::Newest if tracker_newer => (Some(Decision::Pull), Some(Kept::Tracker)),
        ConflictRule::Newest => (Some(Decision::Push), Some(Kept::Structure)),
        ConflictRule::Manual => (Some(Decision::Hold), Some(Kept::Held)),
    };
    match case {
        Case::Neither => (None, None),
        Case::StructureOnly => (Some(Decision::Push), None),
        Case::TrackerOnly => (Some(Decision::Pull), None),
        Case::BothApart => conflict(rule),
        // The same parent on both sides is no conflict where the tracker's
        // side is the parent field (subtasks): the pull changes nothing.
        Case::BothAlike if parent_field => (Some(Decision::Pull), None),
        Case::BothAlike => conflict(rule),
    }
}

#[test]
fn every_rule_against_every_case() {
    let rules = [
        ConflictRule::Tracker,
        ConflictRule::Structure,
        ConflictRule::Newest,
        ConflictRule::Manual,
    ];
    for parent_field in [true, false] {
        for rule in rules {
            for tracker_newer in [true, false] {
                for case in CASES {
                    let world = world(case, if tracker_newer { 30 } else { 10 });
                    let out = run(&world, &BTreeMap::new(), policy(rule, parent_field));
                    let (decision, kept) = expected(case, rule, tracker_newer, parent_field);
                    let context = format!(
                        "{case:?} under {rule:?} (tracker newer: {tracker_newer}, parent field: {parent_field})"
                    );
                    assert_eq!(out.by_issue.get("A").copied(), decision, "{context}");
                    assert_eq!(out.conflicts.first().map(|c| c.kept), kept, "{context}");
                    assert_eq!(
                        out.holds
                            .iter()
                            .map(|h| h.issue.as_str())
                            .collect::<Vec<_>>(),
                        if kept == Some(Kept::Held) {
                            vec!["A"]
                        } else {
                            vec![]
                        },
                        "{context}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_conflict_names_both_sides_and_the_way_out() {
    let world = world(Case::BothApart, 30);
    let out = run(&world, &BTreeMap::new(), policy(ConflictRule::Manual, true));
    assert_eq!(
        out.conflicts,
        vec![Conflict {
            issue: "A".into(),
            structure_side: "under Q".into(),
            tracker_side: "with parent R".into(),
            kept: Kept::Held,
        }]
    );
    let message = &out.holds[0].message;
    assert!(
        message.contains("trellis troubleshoot team/sync --skip A"),
        "{message}"
    );
    assert!(message.contains("--keep-structure A"), "{message}");
}

#[test]
fn a_held_issue_stays_held_until_released() {
    let world = world(Case::StructureOnly, 10);
    let held = BTreeMap::from([("A".to_owned(), None)]);
    let out = run(&world, &held, policy(ConflictRule::Tracker, true));
    assert_eq!(out.by_issue.get("A"), Some(&Decision::Hold));
    assert!(out.conflicts.is_empty() && out.holds.is_empty());
}

#[test]
fn keep_structure_pushes_even_a_conflict_and_retry_decides_again() {
    let world = world(Case::BothApart, 30);
    let keep = BTreeMap::from([("A".to_owned(), Some(Release::KeepStructure))]);
    let out = run(&world, &keep, policy(ConflictRule::Manual, true));
    assert_eq!(out.by_issue.get("A"), Some(&Decision::Push));
    assert!(out.conflicts.is_empty());

    // Released with retry and changed on neither side since: the release
    // alone counts as the change on each side that differs from the
    // baseline, so a row moved while the issue was held is pushed.
    let world = self::world(Case::StructureOnly, 10);
    let mut world = world;
    world.changes = Changes::default();
    let retry = BTreeMap::from([("A".to_owned(), Some(Release::Retry))]);
    let out = run(&world, &retry, policy(ConflictRule::Manual, true));
    assert_eq!(out.by_issue.get("A"), Some(&Decision::Push));
}

#[test]
fn the_first_pass_and_one_way_synchronizers_compare_nothing() {
    let world = world(Case::BothApart, 30);
    let held = BTreeMap::from([("B".to_owned(), None)]);
    let out = run(
        &world,
        &held,
        Policy {
            compare: false,
            ..policy(ConflictRule::Manual, true)
        },
    );
    assert_eq!(
        out.by_issue,
        BTreeMap::from([("B".to_owned(), Decision::Hold)])
    );
    assert!(out.conflicts.is_empty());
}

#[test]
fn an_issue_new_to_the_structure_is_pushed_and_new_in_the_tracker_pulled() {
    let mut world = world(Case::Neither, 10);
    world.baselines.clear();
    world.changes.structure.insert("A".into(), at(20));
    let out = run(
        &world,
        &BTreeMap::new(),
        policy(ConflictRule::Tracker, true),
    );
    assert_eq!(out.by_issue.get("A"), Some(&Decision::Push));

    world.changes = Changes::default();
    world.changes.tracker.insert("A".into());
    let out = run(
        &world,
        &BTreeMap::new(),
        policy(ConflictRule::Tracker, true),
    );
    assert_eq!(out.by_issue.get("A"), Some(&Decision::Pull));
}

#[test]
fn a_parent_loop_both_sides_make_together_holds_the_pushed_issue() {
    // The structure moves A under B; the tracker moved B under A.
    let snapshot = Snapshot::new([issue("A", None, 0), issue("B", Some("A"), 30)]);
    let push = TrackerOp::SetParent {
        issue: "A".into(),
        from: None,
        to: "B".into(),
    };
    let mut decisions = Decisions {
        by_issue: BTreeMap::from([("A".to_owned(), Decision::Push)]),
        ..Decisions::default()
    };
    let exports = decisions.exports(std::slice::from_ref(&push), false, &snapshot, "team/sync");
    assert!(exports.writes.is_empty(), "{:?}", exports.writes);
    assert_eq!(decisions.by_issue.get("A"), Some(&Decision::Hold));
    assert_eq!(decisions.holds.len(), 1);
    assert!(
        decisions.holds[0].message.contains("parent loop")
            && decisions.holds[0].message.contains("--retry A"),
        "{}",
        decisions.holds[0].message
    );
    // `into` plans over the tracker as it is: A at the top level.
    assert_eq!(exports.planned.get("A").unwrap().parent, None);
    assert!(exports.planned.parent_cycle().is_none());
}

#[test]
fn exports_are_what_the_structure_won_or_everything_one_way() {
    let snapshot = Snapshot::new([
        issue("A", None, 0),
        issue("B", None, 0),
        issue("C", None, 0),
    ]);
    let op = |key: &str| TrackerOp::SetParent {
        issue: key.into(),
        from: None,
        to: "C".into(),
    };
    let ops = [op("A"), op("B")];
    let mut decisions = Decisions {
        by_issue: BTreeMap::from([
            ("A".to_owned(), Decision::Push),
            ("B".to_owned(), Decision::Hold),
        ]),
        ..Decisions::default()
    };
    let exports = decisions.exports(&ops, false, &snapshot, "team/sync");
    assert_eq!(exports.writes, vec![op("A")]);
    // A held issue is planned as the structure has it, and not written.
    assert_eq!(
        exports.planned.get("B").unwrap().parent.as_deref(),
        Some("C")
    );

    let mut none = Decisions::default();
    let exports = none.exports(&ops, true, &snapshot, "team/sync");
    assert_eq!(exports.writes, ops.to_vec());
}

#[test]
fn the_cycle_guard_counts_rewrites_in_a_row_and_stops_at_the_limit() {
    let a = vec!["A".to_owned()];
    let once = cycle_guard(&a, &a, 0, 3, "team/plan");
    assert_eq!(
        once,
        Rewrites {
            rounds: 1,
            stopped: None
        }
    );
    let limit = cycle_guard(&a, &a, 2, 3, "team/plan");
    assert_eq!(limit.rounds, 3);
    let stopped = limit.stopped.unwrap();
    assert!(
        stopped.starts_with("A changed back after each of its last 3 passes")
            && stopped.contains("trellis history team/plan"),
        "{stopped}"
    );
    // A pass that rewrites nothing the last one wrote starts counting anew.
    let other = cycle_guard(&["B".to_owned()], &a, 2, 3, "team/plan");
    assert_eq!(
        other,
        Rewrites {
            rounds: 0,
            stopped: None
        }
    );
}

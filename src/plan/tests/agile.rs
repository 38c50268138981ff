//! The agile synchronizer: epics, stories, sub-tasks and rank, both directions.

use super::*;

/// An issue of `issue_type` with `epic`, `parent` and `rank`.
fn backlog_item(
    key: &str,
    issue_type: &str,
    epic: Option<&str>,
    parent: Option<&str>,
    rank: &str,
) -> Issue {
    let mut i = issue(key, parent);
    i.issue_type = issue_type.into();
    i.epic = epic.map(Into::into);
    i.rank = Some(rank.into());
    i
}

fn agile(direction: Direction, matches: &[&str], subtasks: bool) -> Unit {
    Unit {
        name: "ns/backlog".into(),
        direction,
        rule: Rule::Agile(AgileRule {
            matches: matches.iter().map(|s| s.to_string()).collect(),
            subtasks,
        }),
    }
}

/// An agile plan, checked to settle (see `plan_settled`).
fn plan_agile(f: &Forest, s: &Snapshot, units: &[Unit]) -> (StructurePlan, Forest, Snapshot) {
    plan_settled(f, s, units, &["ns/backlog"]).unwrap()
}

fn tracker_ops(p: &StructurePlan) -> Vec<String> {
    p.units
        .iter()
        .flat_map(|u| &u.tracker_ops)
        .map(ToString::to_string)
        .collect()
}

/// Keys in rank order.
fn ranked(s: &Snapshot) -> Vec<String> {
    crate::model::rank::order(s)
        .into_iter()
        .map(|at| s.at(at).key.clone())
        .collect()
}

fn backlog() -> Snapshot {
    Snapshot::new([
        backlog_item("A-1", "Epic", None, None, "m"),
        backlog_item("A-2", "Epic", None, None, "c"),
        backlog_item("A-3", "Story", Some("A-1"), None, "t"),
        backlog_item("A-4", "Story", Some("A-1"), None, "d"),
        backlog_item("A-5", "Story", Some("A-2"), None, "a"),
        backlog_item("A-6", "Sub-task", None, Some("A-3"), "b"),
        backlog_item("A-7", "Story", None, None, "z"),
        // Not in the query: neither it nor its story joins.
        backlog_item("A-8", "Story", Some("A-1"), None, "e"),
    ])
}

const QUERY: &[&str] = &["A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7"];

#[test]
fn into_puts_stories_under_epics_and_sub_tasks_under_stories_in_rank_order() {
    let (p, f, _) = plan_agile(
        &Forest::new(),
        &backlog(),
        &[agile(Direction::Into, QUERY, true)],
    );
    assert_eq!(p.summary.add, 7);
    assert_eq!(
        layout(&f),
        [
            "A-2", "A-5@A-2", "A-1", "A-4@A-1", "A-3@A-1", "A-6@A-3", "A-7"
        ]
    );
    // Without sub-tasks, a sub-task is placed as an issue without an epic.
    let (_, f, _) = plan_agile(
        &Forest::new(),
        &backlog(),
        &[agile(Direction::Into, QUERY, false)],
    );
    assert_eq!(
        layout(&f),
        ["A-6", "A-2", "A-5@A-2", "A-1", "A-4@A-1", "A-3@A-1", "A-7"]
    );
}

#[test]
fn into_follows_an_epic_change_and_a_rank_change_and_leaves_rows_others_placed() {
    let (_, f, s) = plan_agile(
        &Forest::new(),
        &backlog(),
        &[agile(Direction::Into, QUERY, true)],
    );
    let mut s = s;
    s.update("A-4", |i| i.epic = Some("A-2".into()));
    s.update("A-7", |i| i.rank = Some("0".into()));
    // A row someone put at the top level stays there, in its place.
    let mut f = f;
    let by_hand = Row {
        id: f.next_id(),
        item: RowItem::Folder("Notes".into()),
        added_by: None,
    };
    let first = f.children(None)[0];
    f.insert(
        by_hand,
        Position {
            under: None,
            after: Some(first),
        },
    )
    .unwrap();
    let (p, f, _) = plan_agile(&f, &s, &[agile(Direction::Into, QUERY, true)]);
    assert_eq!(p.summary.move_, 2, "{:?}", p.units);
    assert_eq!(
        layout(&f),
        [
            "A-7", "A-2", "A-5@A-2", "A-4@A-2", "Notes/", "A-1", "A-3@A-1", "A-6@A-3"
        ]
    );
}

#[test]
fn from_sets_and_clears_epics_and_re_ranks_siblings_that_disagree() {
    let (_, f, s) = plan_agile(
        &Forest::new(),
        &backlog(),
        &[agile(Direction::Into, QUERY, true)],
    );
    let mut f = f;
    // A-3 under epic A-2 after A-5; A-7 under epic A-1 first; A-4 out of
    // every epic, to the top level after A-7's old place; A-2 below A-1.
    let row = |f: &Forest, k: &str| f.find_issue(k).unwrap();
    let (a1, a2, a5) = (row(&f, "A-1"), row(&f, "A-2"), row(&f, "A-5"));
    f.move_row(
        row(&f, "A-3"),
        Position {
            under: Some(a2),
            after: Some(a5),
        },
    )
    .unwrap();
    f.move_row(
        row(&f, "A-7"),
        Position {
            under: Some(a1),
            after: None,
        },
    )
    .unwrap();
    f.move_row(
        row(&f, "A-4"),
        Position {
            under: None,
            after: Some(a1),
        },
    )
    .unwrap();
    f.move_row(
        a2,
        Position {
            under: None,
            after: Some(a1),
        },
    )
    .unwrap();
    let (p, _, after) = plan_agile(&f, &s, &[agile(Direction::From, QUERY, true)]);
    // At the top level A-1 (m), A-2 (c), A-4 (d): moving A-1 is enough.
    assert_eq!(
        tracker_ops(&p),
        [
            "A-7: epic (none) → A-1",
            "A-3: epic A-1 → A-2",
            "A-4: epic A-1 → (none)",
            "rank A-1 before A-2",
        ]
    );
    assert_eq!(p.summary.destructive, 1, "clearing an epic needs approval");
    let top: Vec<String> = ranked(&after)
        .into_iter()
        .filter(|k| ["A-1", "A-2", "A-4"].contains(&k.as_str()))
        .collect();
    assert_eq!(top, ["A-1", "A-2", "A-4"]);
    assert_eq!(after.get("A-7").unwrap().epic.as_deref(), Some("A-1"));
}

#[test]
fn re_ranking_goes_in_batches_of_fifty_that_keep_their_order() {
    // 120 stories, ranked in reverse of their row order but for the first.
    let keys: Vec<String> = (1..=120).map(|n| format!("S-{n}")).collect();
    let issues = keys.iter().enumerate().map(|(n, k)| {
        let rank = if n == 0 {
            "0".into()
        } else {
            format!("{:04}", 1000 - n)
        };
        backlog_item(k, "Story", None, None, &rank)
    });
    let s = Snapshot::new(issues);
    let mut f = Forest::new();
    for k in &keys {
        let after = f.children(None).last().copied();
        let row = Row {
            id: f.next_id(),
            item: RowItem::Issue(k.clone()),
            added_by: None,
        };
        f.insert(row, Position { under: None, after }).unwrap();
    }
    let matches: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (p, _, after) = plan_agile(&f, &s, &[agile(Direction::From, &matches, true)]);
    let ranks: Vec<&TrackerOp> = p.units.iter().flat_map(|u| &u.tracker_ops).collect();
    let sizes: Vec<usize> = ranks
        .iter()
        .map(|op| match op {
            TrackerOp::Rank { issues, .. } => issues.len(),
            other => panic!("{other}"),
        })
        .collect();
    // S-1 and one more stay (the longest run already in rank order).
    assert_eq!(sizes.iter().sum::<usize>(), 118);
    assert!(sizes.iter().all(|n| *n <= RANK_BATCH), "{sizes:?}");
    assert_eq!(ranked(&after), keys);
}

#[test]
fn undo_puts_ranks_and_epics_back() {
    let (_, f, s) = plan_agile(
        &Forest::new(),
        &backlog(),
        &[agile(Direction::Into, QUERY, true)],
    );
    let mut f = f;
    let a1 = f.find_issue("A-1").unwrap();
    let a2 = f.find_issue("A-2").unwrap();
    f.move_row(
        a2,
        Position {
            under: None,
            after: Some(a1),
        },
    )
    .unwrap();
    f.move_row(
        f.find_issue("A-5").unwrap(),
        Position {
            under: Some(a1),
            after: None,
        },
    )
    .unwrap();
    let (p, f, after) = plan_agile(&f, &s, &[agile(Direction::From, QUERY, true)]);
    let undo = Unit {
        name: "job 1".into(),
        direction: Direction::From,
        rule: Rule::Undo(UndoRule {
            job: 1,
            structure_ops: Vec::new(),
            tracker_ops: p.units.iter().flat_map(|u| u.tracker_ops.clone()).collect(),
        }),
    };
    // An undo is planned once (planning it again would undo twice).
    let arrangers = HashSet::new();
    let input = StructureInput {
        structure: "ns/roadmap",
        tracker: "ns/issues",
        snapshot: &after,
        units: &[undo],
        arrangers: &arrangers,
    };
    let planned = plan_structure(f.clone(), &input).unwrap();
    let (_, back) = applied(&f, &after, &planned.plan);
    assert_eq!(ranked(&back), ranked(&s));
    assert_eq!(back.get("A-5").unwrap().epic.as_deref(), Some("A-2"));
}

#[test]
fn rank_operations_round_trip_through_json() {
    let op = TrackerOp::Rank {
        issues: vec!["A-1".into(), "A-2".into()],
        anchor: RankAnchor::Before("A-3".into()),
        previous: vec![None, Some("A-1".into())],
    };
    let json = serde_json::to_string(&op).unwrap();
    assert!(json.contains(r#""before":"A-3""#), "{json}");
    assert_eq!(serde_json::from_str::<TrackerOp>(&json).unwrap(), op);
}

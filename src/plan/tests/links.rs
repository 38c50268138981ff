//! The links synchronizer: hierarchy from one link type, both directions.

use super::*;

/// `key` with `blocks` links to `targets`.
fn blocking(key: &str, targets: &[&str]) -> Issue {
    let mut i = issue(key, None);
    i.links = targets
        .iter()
        .map(|t| Link {
            link_type: "blocks".into(),
            target: (*t).into(),
        })
        .collect();
    i
}

fn rule(scope: LinkScope) -> LinksRule {
    LinksRule {
        link_type: "blocks".into(),
        parent_end: LinkEnd::Source,
        parents: None,
        children: None,
        scope,
    }
}

fn links(direction: Direction, rule: LinksRule) -> Unit {
    Unit {
        name: "ns/links".into(),
        direction,
        rule: Rule::Links(rule),
    }
}

fn plan_links(f: &Forest, s: &Snapshot, units: &[Unit]) -> Result<StructurePlan, PlanError> {
    plan_settled(f, s, units, &["ns/children", "ns/links"]).map(|(plan, ..)| plan)
}

fn link_ops(p: &StructurePlan) -> Vec<String> {
    p.units
        .iter()
        .flat_map(|u| &u.tracker_ops)
        .map(|op| op.to_string())
        .collect()
}

/// E-1 blocks; A-1 blocks A-3; X-1 blocks X-2 (outside the structure).
fn tracker() -> Snapshot {
    Snapshot::new([
        blocking("E-1", &["A-1", "A-2"]),
        blocking("A-1", &["A-3"]),
        blocking("A-2", &[]),
        blocking("A-3", &[]),
        blocking("X-1", &["X-2"]),
        blocking("X-2", &[]),
    ])
}

#[test]
fn scope_structure_only_arranges_rows_already_there() {
    let f = forest(&[
        ("E-1", None, None),
        ("A-1", None, None),
        ("A-3", None, None),
    ]);
    let p = plan_links(
        &f,
        &tracker(),
        &[links(Direction::Into, rule(LinkScope::Structure))],
    )
    .unwrap();
    let (after, _) = applied(&f, &tracker(), &p);
    assert_eq!(layout(&after), ["E-1", "A-1@E-1", "A-3@A-1"]);
    assert_eq!(p.summary.add, 0, "A-2 is not in the structure: not added");
}

#[test]
fn scope_expand_adds_the_children_found_through_links() {
    let f = forest(&[("E-1", None, None)]);
    let p = plan_links(
        &f,
        &tracker(),
        &[links(Direction::Into, rule(LinkScope::Expand))],
    )
    .unwrap();
    let (after, _) = applied(&f, &tracker(), &p);
    assert_eq!(layout(&after), ["E-1", "A-1@E-1", "A-3@A-1", "A-2@E-1"]);
}

#[test]
fn scope_all_adds_every_linked_issue_under_its_roots() {
    let p = plan_links(
        &Forest::new(),
        &tracker(),
        &[links(Direction::Into, rule(LinkScope::All))],
    )
    .unwrap();
    let (after, _) = applied(&Forest::new(), &tracker(), &p);
    assert_eq!(
        layout(&after),
        ["E-1", "A-1@E-1", "A-3@A-1", "A-2@E-1", "X-1", "X-2@X-1"]
    );
}

#[test]
fn the_parent_end_and_the_filters_choose_the_links() {
    // parentEnd target: the blocked issue is the parent.
    let mut reversed = rule(LinkScope::Expand);
    reversed.parent_end = LinkEnd::Target;
    let f = forest(&[("A-3", None, None)]);
    let p = plan_links(&f, &tracker(), &[links(Direction::Into, reversed)]).unwrap();
    let (after, _) = applied(&f, &tracker(), &p);
    assert_eq!(layout(&after), ["A-3", "A-1@A-3", "E-1@A-1"]);
    // A child filter leaves A-2's link alone.
    let mut filtered = rule(LinkScope::Expand);
    filtered.children = Some(["A-1".to_string(), "A-3".to_string()].into());
    let f = forest(&[("E-1", None, None)]);
    let p = plan_links(&f, &tracker(), &[links(Direction::Into, filtered)]).unwrap();
    let (after, _) = applied(&f, &tracker(), &p);
    assert_eq!(layout(&after), ["E-1", "A-1@E-1", "A-3@A-1"]);
}

#[test]
fn a_deleted_link_takes_the_row_links_added_but_not_one_a_person_placed() {
    let s = Snapshot::new([
        blocking("E-1", &[]),
        blocking("A-1", &[]),
        blocking("A-2", &[]),
    ]);
    let f = forest(&[
        ("E-1", None, None),
        ("A-1", Some("E-1"), Some("ns/links")),
        ("A-2", Some("E-1"), None),
    ]);
    let p = plan_links(&f, &s, &[links(Direction::Into, rule(LinkScope::Expand))]).unwrap();
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(layout(&after), ["E-1", "A-2@E-1"]);
}

#[test]
fn an_issue_with_two_parents_goes_under_the_first_and_a_note_says_so() {
    let s = Snapshot::new([
        blocking("E-2", &["A-1"]),
        blocking("E-1", &["A-1"]),
        blocking("A-1", &[]),
    ]);
    let f = forest(&[("E-1", None, None), ("E-2", None, None)]);
    let p = plan_links(&f, &s, &[links(Direction::Into, rule(LinkScope::Expand))]).unwrap();
    let (after, _) = applied(&f, &s, &p);
    assert_eq!(layout(&after), ["E-1", "A-1@E-1", "E-2"]);
    assert_eq!(
        p.units[0].notes,
        ["A-1 has 2 parents through links (E-1, E-2); it goes under E-1, the first in rank order"]
    );
}

#[test]
fn exporting_a_move_links_the_new_parent_and_unlinks_the_old() {
    // A-1 was moved by hand from E-1 to E-2.
    let s = Snapshot::new([
        blocking("E-1", &["A-1"]),
        blocking("E-2", &[]),
        blocking("A-1", &[]),
    ]);
    let f = forest(&[
        ("E-1", None, None),
        ("E-2", None, None),
        ("A-1", Some("E-2"), None),
    ]);
    let p = plan_links(
        &f,
        &s,
        &[links(Direction::From, rule(LinkScope::Structure))],
    )
    .unwrap();
    assert_eq!(
        link_ops(&p),
        [
            "E-1: delete link blocks → A-1",
            "E-2: add link blocks → A-1"
        ]
    );
    assert_eq!(
        p.summary.to_string(),
        "0 to add, 0 to move, 0 to remove; 2 tracker updates, 1 destructive"
    );
}

#[test]
fn only_scope_all_deletes_links_the_structure_does_not_hold() {
    // E-1 is in the structure with no children; its links to,
    // and X-1's to X-2, are not shown.
    let f = forest(&[("E-1", None, None), ("A-1", None, None)]);
    let p = plan_links(
        &f,
        &tracker(),
        &[links(Direction::From, rule(LinkScope::Expand))],
    )
    .unwrap();
    assert_eq!(
        link_ops(&p),
        ["E-1: delete link blocks → A-1"],
        "only the link between two issues in the structure goes"
    );
    let p = plan_links(
        &f,
        &tracker(),
        &[links(Direction::From, rule(LinkScope::All))],
    )
    .unwrap();
    assert_eq!(
        link_ops(&p),
        [
            "A-1: delete link blocks → A-3",
            "E-1: delete link blocks → A-1",
            "E-1: delete link blocks → A-2",
            "X-1: delete link blocks → X-2",
        ]
    );
    assert_eq!(
        p.summary.destructive, 4,
        "every deleted link needs approval"
    );
}

#[test]
fn a_link_cycle_is_reported_with_its_issues_and_nothing_is_planned() {
    let s = Snapshot::new([
        blocking("C-1", &["C-2"]),
        blocking("C-2", &["C-3"]),
        blocking("C-3", &["C-1"]),
    ]);
    let err = plan_links(
        &Forest::new(),
        &s,
        &[links(Direction::Into, rule(LinkScope::All))],
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "issues C-1, C-3, C-2 form a cycle through `blocks` links (C-1 → C-3 → C-2 → C-1)"
        ),
        "{err}"
    );
}

#[test]
fn an_export_that_would_close_a_link_cycle_says_so() {
    // X-1 blocks X-2 outside the structure's reach; the structure puts X-1 under X-2.
    let f = forest(&[("X-2", None, None), ("X-1", Some("X-2"), None)]);
    let s = Snapshot::new([
        blocking("X-1", &["X-3"]),
        blocking("X-3", &["X-2"]),
        blocking("X-2", &[]),
    ]);
    let err = plan_links(
        &f,
        &s,
        &[links(Direction::From, rule(LinkScope::Structure))],
    )
    .unwrap_err();
    assert!(
        matches!(&err, PlanError::LinkExportCycle { issues, .. } if issues == &["X-1", "X-2", "X-3"]),
        "{err}"
    );
}

#[test]
fn links_and_subtasks_that_disagree_on_a_parent_are_reported_as_a_fight() {
    // A-1's tracker parent is E-2, but E-1 blocks it.
    let s = Snapshot::new([blocking("E-1", &["A-1"]), blocking("E-2", &[]), {
        let mut a = blocking("A-1", &[]);
        a.parent = Some("E-2".into());
        a
    }]);
    let f = forest(&[
        ("E-1", None, None),
        ("E-2", None, None),
        ("A-1", None, None),
    ]);
    let err = plan_links(
        &f,
        &s,
        &[
            subtasks(Direction::Into),
            links(Direction::Into, rule(LinkScope::Structure)),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(&err, PlanError::Fight(units) if units == &["ns/children", "ns/links"]),
        "{err}"
    );
}

#[test]
fn a_filter_removing_its_row_takes_the_rows_links_added_under_it() {
    // The documented Filter (remove) + Links case: in Structure for Jira the
    // filter removes the linked children because they fail its query, and
    // links puts them back. Here a filter removes only rows it added, from
    // where it added them, and the children links added go with their parent.
    let f = forest(&[("E-1", None, Some("ns/epics"))]);
    let units = [
        filter("ns/epics", &["E-1"], Placement::Top, true),
        links(Direction::Into, rule(LinkScope::Expand)),
    ];
    let p = plan_links(&f, &tracker(), &units).unwrap();
    let (after, s) = applied(&f, &tracker(), &p);
    assert_eq!(layout(&after), ["E-1", "A-1@E-1", "A-3@A-1", "A-2@E-1"]);
    let units = [
        filter("ns/epics", &[], Placement::Top, true),
        links(Direction::Into, rule(LinkScope::Expand)),
    ];
    let p = plan_links(&after, &s, &units).unwrap();
    let (after, _) = applied(&after, &s, &p);
    assert!(layout(&after).is_empty(), "{:?}", layout(&after));
}

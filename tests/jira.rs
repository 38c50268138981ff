//! The Jira tracker against a Jira test double (tests/jira/double.rs) that
//! answers as Atlassian's OpenAPI documents say, and checks every request
//! the client makes against them (tests/jira/openapi.rs): each test ends by
//! asserting that nothing strayed from the documents.

mod common;
#[path = "jira/double.rs"]
mod double;
#[path = "jira/openapi.rs"]
mod openapi;

use std::time::Duration;

use predicates::str::contains;
use trellis::model::{Link, RankAnchor};
use trellis::plan::TrackerOp;
use trellis::tracker::http::{ApiKey, Retry};
use trellis::tracker::jira::{Deployment, JiraTracker, Settings};
use trellis::tracker::{Tracker, TrackerError, Watermark};

use common::Workspace;
use double::{DC_PAGE_CAP, Double, EMAIL, EPIC_LINK_FIELD, Flavor, TOKEN};

fn client(double: &Double, token: &str) -> JiraTracker {
    client_at(double, &double.url, token)
}

/// A client of the double at `url` (its address, or a path under it).
fn client_at(double: &Double, url: &str, token: &str) -> JiraTracker {
    let flavor = double.state().flavor;
    JiraTracker::new(Settings {
        url: url.parse().unwrap(),
        deployment: match flavor {
            Flavor::Cloud => Deployment::Cloud {
                email: EMAIL.into(),
            },
            Flavor::DataCenter => Deployment::DataCenter,
        },
        token: ApiKey::new(token),
        token_source: "environment variable JIRA_API_TOKEN".into(),
        scope: Some("project = PLAT".into()),
        retry: Retry {
            attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            budget: Duration::from_secs(15),
        },
        rate_limit: None,
    })
    .unwrap()
}

/// PLAT-1 (Epic) ← PLAT-2 (Story) ← PLAT-3 (Sub-task); PLAT-4 a story of
/// no epic; OTHER-1 outside the scope.
fn small(flavor: Flavor) -> Double {
    let double = Double::start(flavor);
    let epic_parent = |epic| match flavor {
        Flavor::Cloud => (Some(epic), None),
        Flavor::DataCenter => (None, Some(epic)),
    };
    double.add("PLAT-1", "Epic", None, None);
    let (parent, epic) = epic_parent("PLAT-1");
    double.add("PLAT-2", "Story", parent, epic);
    double.add("PLAT-3", "Sub-task", Some("PLAT-2"), None);
    double.add("PLAT-4", "Story", None, None);
    double.add("OTHER-1", "Story", None, None);
    double
}

fn writes_failed(error: TrackerError) -> Vec<String> {
    match error {
        TrackerError::Writes { failures, .. } => failures
            .into_iter()
            .map(|f| format!("{}: {}: {}", f.issue, f.operation, f.message))
            .collect(),
        other => panic!("expected per-issue failures, got {other}"),
    }
}

// ------------------------------------------------------------------ reads

#[tokio::test]
async fn cloud_reads_parents_at_every_level_and_pages_by_token() {
    let double = Double::start(Flavor::Cloud);
    double.add("PLAT-1", "Epic", None, None);
    for n in 2..=250 {
        let parent = if n % 10 == 0 {
            "PLAT-1".to_owned()
        } else {
            format!("PLAT-{}", n - n % 10)
        };
        let kind = if n % 10 == 0 { "Story" } else { "Sub-task" };
        double.add(&format!("PLAT-{n}"), kind, Some(&parent), None);
    }
    double.add("OTHER-1", "Story", None, None);
    let jira = client(&double, TOKEN);
    let snapshot = jira.snapshot().await.unwrap();
    assert_eq!(snapshot.len(), 250, "OTHER-1 is outside the scope");
    let story = snapshot.get("PLAT-20").unwrap();
    assert_eq!(story.parent.as_deref(), Some("PLAT-1"));
    assert_eq!(
        story.epic.as_deref(),
        Some("PLAT-1"),
        "an epic parent is the epic"
    );
    let subtask = snapshot.get("PLAT-21").unwrap();
    assert_eq!(subtask.parent.as_deref(), Some("PLAT-20"));
    assert_eq!(subtask.epic, None);
    assert!(snapshot.get("PLAT-2").unwrap().rank < snapshot.get("PLAT-3").unwrap().rank);
    // /myself, /field, then ⌈250/100⌉ pages.
    assert_eq!(jira.requests(), 5);
    assert_eq!(double.count("POST /rest/api/3/search/jql"), 3);
    let state = double.state();
    let (_, body) = &state.requests[3];
    let body = body.as_ref().unwrap();
    assert_eq!(body["jql"], "(project = PLAT) ORDER BY key ASC");
    assert_eq!(body["nextPageToken"], "page-100");
    assert!(
        body["fields"]
            .as_array()
            .unwrap()
            .contains(&"customfield_10019".into())
    );
    drop(state);
    double.assert_conformant();
}

#[tokio::test]
async fn data_center_pages_by_offset_rereading_the_granted_page_size() {
    let double = Double::start(Flavor::DataCenter);
    double.add("PLAT-1", "Epic", None, None);
    for n in 2..=120 {
        double.add(&format!("PLAT-{n}"), "Story", None, Some("PLAT-1"));
    }
    double.add("PLAT-121", "Sub-task", Some("PLAT-2"), None);
    let jira = client(&double, TOKEN);
    let snapshot = jira.snapshot().await.unwrap();
    assert_eq!(snapshot.len(), 121);
    let story = snapshot.get("PLAT-2").unwrap();
    assert_eq!(
        story.epic.as_deref(),
        Some("PLAT-1"),
        "from the Epic Link field"
    );
    assert_eq!(story.parent, None);
    assert_eq!(
        snapshot.get("PLAT-121").unwrap().parent.as_deref(),
        Some("PLAT-2")
    );
    // The server grants 50 of the 100 asked: ⌈121/50⌉ pages.
    assert_eq!(
        double.count("POST /rest/api/2/search"),
        121usize.div_ceil(DC_PAGE_CAP)
    );
    let state = double.state();
    let mut asked: Vec<(u64, u64)> = state
        .requests
        .iter()
        .filter(|(r, _)| r.starts_with("POST /rest/api/2/search"))
        .map(|(_, b)| {
            let b = b.as_ref().unwrap();
            (
                b["startAt"].as_u64().unwrap(),
                b["maxResults"].as_u64().unwrap(),
            )
        })
        .collect();
    // The first page says the total and the page size granted; the others
    // go at once, in any order.
    assert_eq!(asked[0], (0, 100));
    asked.sort();
    assert_eq!(asked, [(0, 100), (50, 50), (100, 50)]);
    let fields = state.requests[2].1.as_ref().unwrap()["fields"].clone();
    assert!(
        fields.as_array().unwrap().contains(&EPIC_LINK_FIELD.into()),
        "found by schema type: {fields}"
    );
    drop(state);
    assert!(double.count("GET /rest/api/2/field") == 1);
    double.assert_conformant();
}

/// After the first page, Data Center's pages go a few at a time: a slow
/// server's full read waits for fewer answers in turn.
#[tokio::test]
async fn data_center_reads_its_later_pages_a_few_at_a_time() {
    let double = Double::start(Flavor::DataCenter);
    for n in 1..=300 {
        double.add(&format!("PLAT-{n}"), "Story", None, None);
    }
    let jira = client(&double, TOKEN);
    jira.snapshot().await.unwrap();
    double.state().delay = Duration::from_millis(50);
    double.state().most_in_flight = 0;
    let snapshot = jira.snapshot().await.unwrap();
    assert_eq!(snapshot.len(), 300, "every issue, once");
    assert_eq!(double.count("POST /rest/api/2/search"), 2 * 6);
    // Six pages: the first alone, then five, four at a time at most.
    let most = double.state().most_in_flight;
    assert!(
        most > 1 && most <= trellis::tracker::jira::DC_PAGES_AT_ONCE,
        "{most} pages in flight at once"
    );
    double.assert_conformant();
}

#[tokio::test]
async fn changed_issues_are_read_from_an_epoch_millisecond_bound_and_deduped() {
    let double = small(Flavor::Cloud);
    let jira = client(&double, TOKEN);
    let from: jiff::Timestamp = "2026-11-20T09:59:30Z".parse().unwrap();
    let mut mark = Watermark::default();
    let first = mark.advance(jira.changed_since(from).await.unwrap());
    assert_eq!(first.len(), 4);
    let body = double.state().requests.last().unwrap().1.clone().unwrap();
    // Floored to the minute, unquoted: milliseconds since the epoch, in UTC.
    let minute: jiff::Timestamp = "2026-11-20T09:59:00Z".parse().unwrap();
    assert_eq!(
        body["jql"],
        format!(
            "(project = PLAT) AND (updated >= {}) ORDER BY updated ASC, key ASC",
            minute.as_millisecond()
        )
    );
    // Read again from the watermark (with its overlap): nothing new.
    let again = jira.changed_since(mark.read_from().unwrap()).await.unwrap();
    assert_eq!(again.len(), 4, "the overlap reads them again");
    assert!(mark.advance(again).is_empty());
    double.assert_conformant();
}

#[tokio::test]
async fn a_filter_query_is_jql_anded_with_the_scope() {
    let double = small(Flavor::Cloud);
    let jira = client(&double, TOKEN);
    let keys = jira
        .search("issuetype = Story ORDER BY Rank")
        .await
        .unwrap();
    assert_eq!(keys, ["PLAT-2", "PLAT-4"].map(String::from).into());
    let body = double.state().requests.last().unwrap().1.clone().unwrap();
    assert_eq!(
        body["jql"],
        "(project = PLAT) AND (issuetype = Story) ORDER BY key ASC"
    );
    let error = jira
        .search("sprint in openSprints()")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("invalid query `(project = PLAT) AND (sprint in openSprints()) ORDER BY key ASC`: Jira answered 400 Bad Request: Field 'sprint"), "{error}");
    double.assert_conformant();
}

// ----------------------------------------------------------------- writes

#[tokio::test]
async fn cloud_writes_parents_epics_and_links_that_read_back_as_planned() {
    let double = small(Flavor::Cloud);
    double.add("PLAT-5", "Epic", None, None);
    double.link("Blocks", "PLAT-4", "PLAT-1");
    let jira = client(&double, TOKEN);
    let before = jira.snapshot().await.unwrap();
    assert_eq!(
        before.get("PLAT-4").unwrap().links,
        [Link {
            link_type: "Blocks".into(),
            target: "PLAT-1".into()
        }]
    );
    assert!(
        before.get("PLAT-1").unwrap().links.is_empty(),
        "the inward end holds no link"
    );
    jira.apply(&[
        TrackerOp::SetEpic {
            issue: "PLAT-4".into(),
            from: None,
            to: Some("PLAT-5".into()),
        },
        TrackerOp::SetParent {
            issue: "PLAT-3".into(),
            from: Some("PLAT-2".into()),
            to: "PLAT-4".into(),
        },
        TrackerOp::ClearParent {
            issue: "PLAT-2".into(),
            from: "PLAT-1".into(),
        },
        TrackerOp::AddLink {
            issue: "PLAT-2".into(),
            link_type: "Blocks".into(),
            target: "PLAT-5".into(),
        },
        TrackerOp::RemoveLink {
            issue: "PLAT-4".into(),
            link_type: "Blocks".into(),
            target: "PLAT-1".into(),
        },
    ])
    .await
    .unwrap();
    let after = jira.snapshot().await.unwrap();
    assert_eq!(after.get("PLAT-4").unwrap().epic.as_deref(), Some("PLAT-5"));
    assert_eq!(
        after.get("PLAT-3").unwrap().parent.as_deref(),
        Some("PLAT-4")
    );
    assert_eq!(after.get("PLAT-2").unwrap().parent, None);
    assert_eq!(
        after.get("PLAT-2").unwrap().links,
        [Link {
            link_type: "Blocks".into(),
            target: "PLAT-5".into()
        }],
        "PLAT-2 blocks PLAT-5, read back the way it was planned"
    );
    assert!(after.get("PLAT-4").unwrap().links.is_empty());
    let state = double.state();
    let link = state.links.iter().find(|l| l.outward == "PLAT-5").unwrap();
    assert_eq!(
        (link.inward.as_str(), link.outward.as_str()),
        ("PLAT-2", "PLAT-5")
    );
    assert!(
        state
            .requests
            .iter()
            .any(|(r, _)| r.starts_with("DELETE /rest/api/3/issueLink/"))
    );
    let clear = state
        .requests
        .iter()
        .find(|(r, _)| r == "PUT /rest/api/3/issue/PLAT-2")
        .unwrap();
    assert_eq!(
        clear.1.as_ref().unwrap()["update"]["parent"][0]["set"]["none"],
        true
    );
    drop(state);
    assert_eq!(
        double.count("POST /rest/api/3/issue/bulkfetch"),
        1,
        "read back once"
    );
    double.assert_conformant();
}

#[tokio::test]
async fn written_issues_are_read_back_at_most_100_a_bulkfetch() {
    let double = Double::start(Flavor::Cloud);
    double.add("PLAT-1", "Epic", None, None);
    for n in 2..=151 {
        double.add(&format!("PLAT-{n}"), "Story", None, None);
    }
    let jira = client(&double, TOKEN);
    let ops: Vec<TrackerOp> = (2..=151)
        .map(|n| TrackerOp::SetEpic {
            issue: format!("PLAT-{n}"),
            from: None,
            to: Some("PLAT-1".into()),
        })
        .collect();
    jira.apply(&ops).await.unwrap();
    let state = double.state();
    let sizes: Vec<usize> = state
        .requests
        .iter()
        .filter(|(r, _)| r.starts_with("POST /rest/api/3/issue/bulkfetch"))
        .map(|(_, b)| {
            b.as_ref().unwrap()["issueIdsOrKeys"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [100, 50]);
    drop(state);
    double.assert_conformant();
}

#[tokio::test]
async fn data_center_sets_epic_links_and_parents_of_sub_tasks_only() {
    let double = small(Flavor::DataCenter);
    double.add("PLAT-5", "Epic", None, None);
    let jira = client(&double, TOKEN);
    let failures = writes_failed(
        jira.apply(&[
            TrackerOp::SetEpic {
                issue: "PLAT-4".into(),
                from: None,
                to: Some("PLAT-5".into()),
            },
            TrackerOp::SetEpic {
                issue: "PLAT-2".into(),
                from: Some("PLAT-1".into()),
                to: None,
            },
            TrackerOp::SetParent {
                issue: "PLAT-3".into(),
                from: Some("PLAT-2".into()),
                to: "PLAT-4".into(),
            },
            TrackerOp::SetParent {
                issue: "PLAT-4".into(),
                from: None,
                to: "PLAT-1".into(),
            },
        ])
        .await
        .unwrap_err(),
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("PLAT-4: PLAT-4: parent (none) → PLAT-1: on Jira Data Center only sub-tasks have a parent; an issue's epic is its Epic Link"), "{}", failures[0]);
    let failures = writes_failed(
        jira.apply(&[TrackerOp::ClearParent {
            issue: "PLAT-3".into(),
            from: "PLAT-4".into(),
        }])
        .await
        .unwrap_err(),
    );
    assert!(failures[0].starts_with("PLAT-3: PLAT-3: parent PLAT-4 → (none): a sub-task cannot lose its parent in Jira Data Center"), "{failures:?}");
    let state = double.state();
    assert_eq!(state.issues["PLAT-4"].epic.as_deref(), Some("PLAT-5"));
    assert_eq!(state.issues["PLAT-2"].epic, None);
    assert_eq!(state.issues["PLAT-3"].parent.as_deref(), Some("PLAT-4"));
    let epic = state
        .requests
        .iter()
        .find(|(r, _)| r == "PUT /rest/api/2/issue/PLAT-2")
        .unwrap();
    assert_eq!(
        epic.1.as_ref().unwrap()["fields"][EPIC_LINK_FIELD],
        serde_json::Value::Null
    );
    // Read back by `key in (...)`: Data Center has no bulkfetch.
    assert!(
        state
            .requests
            .iter()
            .any(|(_, b)| b.as_ref().is_some_and(|b| b["jql"]
                .as_str()
                .is_some_and(|q| q.starts_with("key in (PLAT-4,PLAT-2,PLAT-3)"))))
    );
    drop(state);
    double.assert_conformant();
}

/// Jira Cloud's scoped API tokens work only through Atlassian's gateway,
/// `https://api.atlassian.com/ex/jira/{cloudId}`: every request, the Agile
/// API's included, goes under that path.
#[tokio::test]
async fn a_scoped_token_reaches_jira_cloud_through_the_gateway_path() {
    let double = small(Flavor::Cloud);
    let cloud_id = "11223344-a1b2-c3d4-e5f6-112233445566";
    let jira = client_at(
        &double,
        &format!("{}/ex/jira/{cloud_id}", double.url),
        TOKEN,
    );
    let snapshot = jira.snapshot().await.unwrap();
    assert_eq!(snapshot.len(), 4);
    jira.apply(&[rank(&["PLAT-4"], RankAnchor::Before("PLAT-1".into()))])
        .await
        .unwrap();
    let state = double.state();
    let gateway = format!("/ex/jira/{cloud_id}/rest/");
    assert!(
        state
            .requests
            .iter()
            .any(|(line, _)| line.contains("/rest/agile/1.0/issue/rank"))
    );
    for (line, _) in &state.requests {
        assert!(line.contains(&gateway), "{line} goes through the gateway");
    }
    drop(state);
    double.assert_conformant();
}

fn rank(issues: &[&str], anchor: RankAnchor) -> TrackerOp {
    TrackerOp::Rank {
        issues: issues.iter().map(|i| (*i).to_owned()).collect(),
        anchor,
        previous: vec![None; issues.len()],
    }
}

#[tokio::test]
async fn ranks_go_50_a_call_and_a_partial_failure_is_retried_then_reported_per_issue() {
    let double = Double::start(Flavor::Cloud);
    for n in 1..=70 {
        double.add(&format!("PLAT-{n}"), "Story", None, None);
    }
    // PLAT-61 fails once (retried), PLAT-65 keeps failing.
    double
        .state()
        .rank_failures
        .extend([("PLAT-61".to_owned(), 1), ("PLAT-65".to_owned(), 99)]);
    let jira = client(&double, TOKEN);
    let moving: Vec<String> = (11..=70).rev().map(|n| format!("PLAT-{n}")).collect();
    let moving: Vec<&str> = moving.iter().map(String::as_str).collect();
    let failures = writes_failed(
        jira.apply(&[rank(&moving, RankAnchor::After("PLAT-1".into()))])
            .await
            .unwrap_err(),
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("PLAT-65: rank PLAT-70"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("JIRA Agile cannot execute the rank operation at this time"),
        "{}",
        failures[0]
    );
    let state = double.state();
    let sizes: Vec<usize> = state
        .requests
        .iter()
        .filter(|(r, _)| r.starts_with("PUT /rest/agile/1.0/issue/rank"))
        .map(|(_, b)| b.as_ref().unwrap()["issues"].as_array().unwrap().len())
        .collect();
    // 50, PLAT-61 and PLAT-65 again (once and three times), then 10.
    assert_eq!(sizes, [50, 1, 1, 1, 1, 10]);
    let order: Vec<&str> = state.order.iter().map(String::as_str).collect();
    let expected: Vec<&str> = std::iter::once("PLAT-1")
        .chain(moving.iter().copied().filter(|k| *k != "PLAT-65"))
        .collect();
    let without: Vec<&str> = order
        .iter()
        .copied()
        .filter(|k| *k != "PLAT-65")
        .take(expected.len())
        .collect();
    assert_eq!(
        without, expected,
        "the retried issue went back between its neighbours"
    );
    drop(state);
    double.assert_conformant();
}

#[tokio::test]
async fn statuses_change_by_transitions_and_a_missing_one_names_the_allowed() {
    let double = small(Flavor::Cloud);
    let jira = client(&double, TOKEN);
    let failures = writes_failed(
        jira.apply(&[
            TrackerOp::SetStatus {
                issue: "PLAT-2".into(),
                from: "To Do".into(),
                to: "In Progress".into(),
            },
            TrackerOp::SetStatus {
                issue: "PLAT-4".into(),
                from: "To Do".into(),
                to: "Done".into(),
            },
        ])
        .await
        .unwrap_err(),
    );
    assert_eq!(
        failures,
        [
            "PLAT-4: PLAT-4: status To Do → Done: Jira's workflow offers the account no transition from To Do to Done (it may change the status to: In Progress); add the transition to the workflow, give the account “Transition Issues”, or change the status by hand"
        ]
    );
    assert_eq!(double.state().issues["PLAT-2"].status, "In Progress");
    double.assert_conformant();
}

// ----------------------------------------------------------------- errors

#[tokio::test]
async fn a_refused_token_says_where_it_came_from_and_never_shows_it() {
    let double = small(Flavor::Cloud);
    let error = client(&double, "wrong-token")
        .snapshot()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("Jira refused the email {EMAIL} with the API token from environment variable JIRA_API_TOKEN (401 Unauthorized)")), "{error}");
    assert!(!error.contains("wrong-token"));
    let double = small(Flavor::DataCenter);
    let error = client(&double, "wrong-token")
        .snapshot()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Jira refused the personal access token from environment variable JIRA_API_TOKEN (401 Unauthorized)"), "{error}");
    double.assert_conformant();
}

#[tokio::test]
async fn write_failures_name_the_issue_the_operation_and_the_permission() {
    let double = small(Flavor::Cloud);
    let jira = client(&double, TOKEN);
    jira.snapshot().await.unwrap();
    double.fail("PUT", "/rest/api/3/issue/PLAT-4", 403, None, 1);
    double.fail("PUT", "/rest/api/3/issue/PLAT-2", 409, None, 1);
    double.fail("PUT", "/rest/api/3/issue/PLAT-3", 404, None, 1);
    double.fail("PUT", "/rest/agile/1.0/issue/rank", 403, None, 1);
    let failures = writes_failed(
        jira.apply(&[
            TrackerOp::SetEpic {
                issue: "PLAT-4".into(),
                from: None,
                to: Some("PLAT-1".into()),
            },
            TrackerOp::ClearParent {
                issue: "PLAT-2".into(),
                from: "PLAT-1".into(),
            },
            TrackerOp::SetParent {
                issue: "PLAT-3".into(),
                from: Some("PLAT-2".into()),
                to: "PLAT-4".into(),
            },
            rank(&["PLAT-4"], RankAnchor::Before("PLAT-1".into())),
        ])
        .await
        .unwrap_err(),
    );
    let expected = [
        "PLAT-4: rank PLAT-4 before PLAT-1: Jira answered 403 Forbidden: You do not have permission to perform this operation.; the account needs Jira's “Schedule Issues” permission in the issue's project",
        "PLAT-4: PLAT-4: epic (none) → PLAT-1: Jira answered 403 Forbidden: You do not have permission to perform this operation.; the account needs Jira's “Edit Issues” permission in the issue's project",
        "PLAT-2: PLAT-2: parent PLAT-1 → (none): Jira answered 409 Conflict: A conflicting update is in progress; try again.; someone changed the issue at the same time: run again",
        "PLAT-3: PLAT-3: parent PLAT-2 → PLAT-4: Jira answered 404 Not Found: Issue does not exist or you do not have permission to see it.; the issue was deleted or moved, or the account cannot see it (it needs “Browse Projects”); the next run plans from what Jira has",
    ];
    assert_eq!(failures, expected);
    double.assert_conformant();
}

/// A token revoked after three writes: what was made counts once, the
/// failure before stays, and what is left fails as not written, with nothing
/// more sent; the next batch, refused before writing anything, is the
/// refusal alone. The same on Cloud and Data Center, as on Redmine.
#[tokio::test]
async fn a_token_revoked_after_writes_fails_what_is_left_and_keeps_earlier_failures() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let double = small(flavor);
        let jira = client(&double, TOKEN);
        jira.snapshot().await.unwrap();
        double.fail("PUT", "/rest/agile/1.0/issue/rank", 403, None, 1);
        double.revoke_after(3);
        let error = jira
            .apply(&[
                TrackerOp::SetStatus {
                    issue: "PLAT-2".into(),
                    from: "To Do".into(),
                    to: "In Progress".into(),
                },
                TrackerOp::AddLink {
                    issue: "PLAT-2".into(),
                    link_type: "Blocks".into(),
                    target: "PLAT-4".into(),
                },
                rank(&["PLAT-4"], RankAnchor::Before("PLAT-1".into())),
                TrackerOp::SetEpic {
                    issue: "PLAT-4".into(),
                    from: None,
                    to: Some("PLAT-1".into()),
                },
                TrackerOp::SetParent {
                    issue: "PLAT-3".into(),
                    from: Some("PLAT-2".into()),
                    to: "PLAT-4".into(),
                },
                TrackerOp::ClearParent {
                    issue: "PLAT-2".into(),
                    from: "PLAT-1".into(),
                },
            ])
            .await
            .unwrap_err();
        let TrackerError::Writes { done, untried, .. } = &error else {
            panic!("{flavor:?}: {error}")
        };
        assert_eq!(*done, 3, "{flavor:?}: {error}");
        assert_eq!(*untried, 2, "{flavor:?}: PLAT-3 and PLAT-2 were never sent");
        let not_written = "not written: Jira refused the credentials (401 Unauthorized) (the token from environment variable JIRA_API_TOKEN stopped working; nothing more was sent)";
        assert_eq!(
            writes_failed(error),
            [
                "PLAT-4: rank PLAT-4 before PLAT-1: Jira answered 403 Forbidden: You do not have permission to perform this operation.; the account needs Jira's “Schedule Issues” permission in the issue's project".to_owned(),
                format!("PLAT-3: PLAT-3: parent PLAT-2 → PLAT-4: {not_written}"),
                format!("PLAT-2: PLAT-2: parent PLAT-1 → (none): {not_written}"),
            ],
            "{flavor:?}"
        );
        let api = match flavor {
            Flavor::Cloud => "/rest/api/3",
            Flavor::DataCenter => "/rest/api/2",
        };
        assert_eq!(double.count(&format!("PUT {api}/issue/PLAT-2")), 0);
        assert_eq!(
            double.count(&format!("POST {api}/issue/bulkfetch"))
                + double.count(&format!("POST {api}/search")),
            1,
            "{flavor:?}: only the snapshot searched; nothing was read back"
        );
        assert_eq!(double.state().issues["PLAT-2"].status, "In Progress");

        let error = jira
            .apply(&[TrackerOp::ClearParent {
                issue: "PLAT-2".into(),
                from: "PLAT-1".into(),
            }])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                TrackerError::Remote {
                    status: Some(401),
                    ..
                }
            ),
            "{flavor:?}: {error}"
        );
        double.assert_conformant();
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_removed_apis_explained() {
    let double = small(Flavor::Cloud);
    let jira = client(&double, TOKEN);
    double.fail("POST", "/rest/api/3/search/jql", 429, Some("0"), 1);
    double.fail("POST", "/rest/api/3/search/jql", 503, None, 1);
    assert_eq!(jira.snapshot().await.unwrap().len(), 4);
    double.fail("POST", "/rest/api/3/search/jql", 500, None, 3);
    let error = jira.snapshot().await.unwrap_err().to_string();
    assert_eq!(
        error,
        "list the issues of `project = PLAT`: Jira answered 500 Internal Server Error (gave up after 3 attempts)"
    );
    double.fail("POST", "/rest/api/3/search/jql", 429, Some("3600"), 1);
    let error = jira.snapshot().await.unwrap_err().to_string();
    assert!(error.ends_with("Jira is rate limiting requests (429 Too Many Requests), and asks to wait 3600 s before trying again; run again later"), "{error}");
    // Were Cloud to remove this search as it removed /rest/api/3/search:
    double.fail("POST", "/rest/api/3/search/jql", 410, None, 1);
    let error = jira.snapshot().await.unwrap_err().to_string();
    assert!(
        error.contains("Jira has removed this API (410 Gone)"),
        "{error}"
    );
    assert!(error.ends_with("upgrade Trellis"), "{error}");
    double.assert_conformant();
}

#[test]
fn the_removed_search_api_answers_410_as_documented() {
    // The double itself: the old API is gone on Cloud, as Atlassian says.
    let double = small(Flavor::Cloud);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/rest/api/3/search", double.url))
            .basic_auth(EMAIL, Some(TOKEN))
            .json(&serde_json::json!({"jql": "project = PLAT"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 410);
    double.assert_conformant();
}

// ------------------------------------------------------------ conformance

/// Every response field the client's wire structs (src/tracker/jira/)
/// read, by the component schema that documents it.
#[test]
fn every_field_the_client_reads_is_in_atlassians_documents() {
    let read: &[(&str, &[&str])] = &[
        (
            "SearchAndReconcileResults",
            &["issues", "nextPageToken", "isLast"],
        ),
        ("SearchResults", &["issues", "maxResults", "total"]),
        ("BulkIssueResults", &["issues", "issueErrors"]),
        ("IssueError", &["id", "errorMessage"]),
        ("IssueBean", &["key", "fields"]),
        (
            "Fields",
            &["summary", "status", "issuetype", "priority", "assignee"],
        ),
        ("StatusDetails", &["name"]),
        ("IssueTypeDetails", &["name", "subtask", "hierarchyLevel"]),
        ("Priority", &["name"]),
        ("UserDetails", &["displayName"]),
        ("IssueLink", &["id", "type", "outwardIssue", "inwardIssue"]),
        ("IssueLinkType", &["name"]),
        ("IssueLinkTypes", &["issueLinkTypes"]),
        ("LinkedIssue", &["key"]),
        ("FieldDetails", &["id", "schema"]),
        ("JsonTypeBean", &["custom"]),
        (
            "User",
            &["emailAddress", "name", "displayName", "accountId"],
        ),
        ("Permissions", &["permissions"]),
        ("UserPermission", &["name", "havePermission"]),
        ("Transitions", &["transitions"]),
        ("IssueTransition", &["id", "to"]),
        ("ErrorCollection", &["errorMessages", "errors"]),
    ];
    let missing: Vec<String> = read
        .iter()
        .flat_map(|(component, fields)| fields.iter().map(move |f| (component, f)))
        .filter(|(component, field)| !openapi::has_field(component, field))
        .map(|(component, field)| format!("{component}.{field}"))
        .collect();
    assert!(missing.is_empty(), "not documented: {missing:?}");
    // The rank API's 207 has an example and no schema.
    for path in [
        ["entries", "issueKey"],
        ["entries", "status"],
        ["entries", "errors"],
    ] {
        assert!(
            openapi::example_has("PUT", "/rest/agile/1.0/issue/rank", 207, &path),
            "{path:?}"
        );
    }
}

#[test]
fn the_checker_catches_what_the_documents_do_not_allow() {
    let docs = openapi::docs();
    let search = docs.operation("POST", "/rest/api/3/search/jql").unwrap();
    assert_eq!(search.template, "/rest/api/3/search/jql");
    let wrong = search.check_request(&[], Some(&serde_json::json!({"jql": "x", "startAt": 0})));
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    let wrong = search.check_response(200, Some(&serde_json::json!({"issues": [], "total": 3})));
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    let bulk = docs
        .operation("POST", "/rest/api/3/issue/bulkfetch")
        .unwrap();
    assert_eq!(
        bulk.template, "/rest/api/3/issue/bulkfetch",
        "literal segments win over {{issueIdOrKey}}"
    );
    let wrong = bulk.check_request(&[], Some(&serde_json::json!({"fields": ["summary"]})));
    assert!(
        wrong[0].contains("required field `issueIdsOrKeys`"),
        "{wrong:?}"
    );
    let issue = docs.operation("GET", "/rest/api/2/issue/PLAT-1").unwrap();
    assert!(
        issue
            .check_request(&[("fields".into(), "issuelinks".into())], None)
            .is_empty()
    );
    assert!(
        !issue
            .check_request(&[("startAt".into(), "0".into())], None)
            .is_empty()
    );
    let rank = docs.operation("PUT", "/rest/agile/1.0/issue/rank").unwrap();
    let wrong = rank.check_response(
        207,
        Some(&serde_json::json!({"entries": [{"issueKey": "A-1", "status": "bad"}]})),
    );
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(docs.operation("GET", "/rest/api/3/nowhere").is_err());
}

// ------------------------------------------------------- the command line

/// examples/jira against the double: its URL, and on Data Center its
/// deployment, rewritten.
fn workspace(double: &Double) -> Workspace {
    let ws = Workspace::new();
    ws.copy_example("jira");
    ws.edit(
        "jira/trellis.yaml",
        "https://your-domain.atlassian.net",
        &double.url,
    );
    ws.edit("jira/trellis.yaml", "you@example.com", EMAIL);
    if double.state().flavor == Flavor::DataCenter {
        ws.edit(
            "jira/trellis.yaml",
            "deployment: cloud",
            "deployment: datacenter",
        );
        ws.edit(
            "jira/trellis.yaml",
            &format!(
                "    email: {EMAIL}      # the account the API token belongs to (Cloud only)\n"
            ),
            "",
        );
    }
    ws
}

fn trellis(ws: &Workspace) -> assert_cmd::Command {
    let mut cmd = ws.trellis();
    cmd.env("JIRA_API_TOKEN", TOKEN);
    cmd
}

fn import_and_export(flavor: Flavor) {
    let double = small(flavor);
    double.add("PLAT-5", "Epic", None, None);
    double.link("Blocks", "PLAT-1", "PLAT-4");
    let ws = workspace(&double);
    trellis(&ws)
        .args(["apply", "-f", "jira"])
        .assert()
        .success();
    trellis(&ws)
        .args(["show", "backlog"])
        .assert()
        .success()
        .stdout(contains("PLAT-1 [Epic] Epic PLAT-1 (To Do)\n  PLAT-2 [Story] Story PLAT-2 (To Do)\n    PLAT-3 [Sub-task] Sub-task PLAT-3 (To Do)\nPLAT-4"));
    trellis(&ws)
        .args(["show", "dependencies"])
        .assert()
        .success()
        .stdout(contains(
            "PLAT-1 [Epic] Epic PLAT-1 (To Do)\n  PLAT-4 [Story] Story PLAT-4 (To Do)",
        ));
    // Move a story to another epic and re-rank: the agile export writes both.
    trellis(&ws)
        .args(["move", "backlog", "PLAT-4", "--under", "PLAT-5"])
        .assert()
        .success();
    trellis(&ws)
        .args(["move", "backlog", "PLAT-1", "--top", "--after", "PLAT-5"])
        .assert()
        .success();
    trellis(&ws)
        .args(["export", "sprint-backlog", "-f", "jira"])
        .assert()
        .success()
        .stdout(contains("~ PLAT-4: epic (none) → PLAT-5"))
        .stdout(contains("~ rank PLAT-5 before PLAT-1"));
    let state = double.state();
    assert_eq!(state.order.first().map(String::as_str), Some("PLAT-5"));
    let epic = match flavor {
        Flavor::Cloud => state.issues["PLAT-4"].parent.clone(),
        Flavor::DataCenter => state.issues["PLAT-4"].epic.clone(),
    };
    assert_eq!(epic.as_deref(), Some("PLAT-5"));
    drop(state);
    // Nothing left to do.
    trellis(&ws)
        .args([
            "resync",
            "sprint-backlog",
            "--direction",
            "from",
            "-f",
            "jira",
        ])
        .assert()
        .code(0)
        .stdout(contains("Plan: 0 to add"));
    double.assert_conformant();
}

#[test]
fn cloud_import_and_export_through_the_command_line() {
    import_and_export(Flavor::Cloud);
}

#[test]
fn data_center_import_and_export_through_the_command_line() {
    import_and_export(Flavor::DataCenter);
}

#[test]
fn links_export_creates_a_link_that_reads_back_under_its_parent() {
    let double = small(Flavor::Cloud);
    double.add("PLAT-5", "Epic", None, None);
    let ws = workspace(&double);
    trellis(&ws)
        .args(["apply", "-f", "jira"])
        .assert()
        .success();
    trellis(&ws)
        .args(["move", "dependencies", "PLAT-5", "--under", "PLAT-1"])
        .assert()
        .success();
    trellis(&ws)
        .args(["export", "blocks", "-f", "jira"])
        .assert()
        .success()
        .stdout(contains("PLAT-1: add link Blocks → PLAT-5"));
    let state = double.state();
    assert!(
        state
            .links
            .iter()
            .any(|l| l.inward == "PLAT-1" && l.outward == "PLAT-5"),
        "PLAT-1 blocks PLAT-5"
    );
    drop(state);
    trellis(&ws).args(["plan", "-f", "jira"]).assert().code(0);
    double.assert_conformant();
}

#[test]
fn secrets_never_show_even_in_trace_logs() {
    let double = small(Flavor::Cloud);
    let ws = workspace(&double);
    let output = trellis(&ws)
        .env("RUST_LOG", "trace")
        .args(["apply", "-f", "jira"])
        .output()
        .unwrap();
    assert!(output.status.success());
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"));
    for text in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(text);
        assert!(
            !text.contains(TOKEN) && !text.contains(&basic),
            "a secret in the output"
        );
    }
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("connected to Jira"),
        "trace logs were on"
    );
    // A wrong token: the error says where it came from, not what it is.
    let out = trellis(&ws)
        .env("JIRA_API_TOKEN", "not-the-token")
        .args(["plan", "-f", "jira"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Jira refused the email ada@example.com with the API token from environment variable JIRA_API_TOKEN"), "{stderr}");
    assert!(
        stderr.contains("a scoped API token works only through Atlassian's gateway: set spec.url to https://api.atlassian.com/ex/jira/CLOUD_ID"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-token"));
}

#[test]
fn the_api_gateway_address_must_name_a_cloud_id_and_a_cloud_deployment() {
    let ws = Workspace::new();
    let tracker = |name: &str, url: &str, deployment: &str| {
        let email = if deployment == "cloud" {
            ", email: a@b.c, jql: project = P"
        } else {
            ""
        };
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: {name}}}\nspec:\n  type: jira\n  url: {url}\n  credentials: {{env: T}}\n  jira: {{deployment: {deployment}{email}}}\n"
        )
    };
    let good = ws.write(
        "good.yaml",
        &tracker(
            "scoped",
            "https://api.atlassian.com/ex/jira/11223344-a1b2-c3d4-e5f6-112233445566",
            "cloud",
        ),
    );
    ws.trellis()
        .args(["validate", "-f"])
        .arg(&good)
        .assert()
        .success();
    let bad = ws.write(
        "bad.yaml",
        &[
            tracker("no-id", "https://api.atlassian.com", "cloud"),
            tracker("site", "https://api.atlassian.com/ex/jira/my-site", "cloud"),
            tracker(
                "dc",
                "https://api.atlassian.com/ex/jira/11223344-a1b2-c3d4-e5f6-112233445566",
                "datacenter",
            ),
        ]
        .join("---\n"),
    );
    ws.trellis()
        .args(["validate", "-f"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(contains("bad.yaml:6: spec.url: through Atlassian's API gateway (scoped API tokens) the address is https://api.atlassian.com/ex/jira/CLOUD_ID"))
        .stderr(contains("bad.yaml:15: spec.url: through Atlassian's API gateway"))
        .stderr(contains("bad.yaml:24: spec.url: api.atlassian.com is Jira Cloud's API gateway"));
}

#[test]
fn bad_jira_declarations_are_named_with_file_and_line() {
    let ws = Workspace::new();
    let file = ws.write(
        "jira.yaml",
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata:\n  name: j1\nspec:\n  type: jira\n  url: https://user:pw@jira.example.com\n  credentials: {env: T}\n  jira:\n    deployment: cloud\n---\napiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata:\n  name: j2\nspec:\n  type: jira\n  url: https://jira.example.com\n  jira:\n    deployment: datacenter\n    email: a@b.c\n---\napiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata:\n  name: j3\nspec:\n  type: jira\n  url: https://jira.example.com\n  credentials: {env: T}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata:\n  name: r1\nspec:\n  type: redmine\n  url: https://redmine.example.com\n  credentials: {env: T}\n  jira:\n    deployment: cloud\n",
    );
    ws.trellis()
        .args(["validate", "-f"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("jira.yaml:7: spec.url: the URL carries credentials"))
        .stderr(contains("jira.yaml:10: spec.jira.deployment: Jira Cloud refuses unbounded searches"))
        .stderr(contains("jira.yaml:10: spec.jira.deployment: Jira Cloud signs in with the account's email and an API token"))
        .stderr(contains("jira.yaml:16: spec.credentials: a jira tracker needs its API key: `credentials: {env: JIRA_API_TOKEN}`"))
        .stderr(contains("jira.yaml:21: spec.jira.email: Jira Data Center signs in with a personal access token alone"))
        .stderr(contains("jira.yaml:28: spec.type: a jira tracker needs spec.jira.deployment"))
        .stderr(contains("jira.yaml:40: spec.jira: spec.jira is for jira trackers; remove it from this redmine tracker"));
}

#[test]
fn incremental_passes_read_only_changed_issues_from_jira() {
    let double = small(Flavor::Cloud);
    double.add("PLAT-5", "Epic", None, None);
    let ws = workspace(&double);
    trellis(&ws)
        .args(["apply", "-f", "jira"])
        .assert()
        .success();
    let pass = || {
        let out = trellis(&ws)
            .args([
                "sync",
                "--once",
                "-f",
                "jira",
                "sprint-backlog",
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(pass()["full"], true);
    // In Jira, a person moves PLAT-4 under the other epic.
    {
        let mut state = double.state();
        let issue = state.issues.get_mut("PLAT-4").unwrap();
        issue.parent = Some("PLAT-5".into());
        issue.updated = jiff::Timestamp::now();
    }
    let searches = double.count("POST /rest/api/3/search/jql");
    let requests = double.count("");
    let report = pass();
    assert_eq!(report["full"], false, "{report}");
    // Every request the pass made is in its report.
    assert_eq!(report["requests"], double.count("") - requests, "{report}");
    // PLAT-4, and the four others again: they all have the same `updated`,
    // inside the watermark's overlap window; deduplicated, one change is left.
    assert_eq!(report["issuesRead"], 5, "{report}");
    assert_eq!(report["trackerChanges"], 1, "{report}");
    // One search for the changed issues and one for the agile query among
    // them: no page of the whole project.
    assert_eq!(double.count("POST /rest/api/3/search/jql") - searches, 2);
    trellis(&ws)
        .args(["show", "backlog"])
        .assert()
        .success()
        .stdout(contains(
            "PLAT-5 [Epic] Epic PLAT-5 (To Do)\n  PLAT-4 [Story]",
        ));
    double.assert_conformant();
}

#[test]
fn a_pass_whose_token_is_revoked_part_way_tries_the_unsent_writes_again_by_itself() {
    let double = small(Flavor::Cloud);
    double.add("PLAT-5", "Epic", None, None);
    double.add("PLAT-6", "Story", None, None);
    let ws = workspace(&double);
    trellis(&ws)
        .args(["apply", "-f", "jira"])
        .assert()
        .success();
    let pass = || {
        trellis(&ws)
            .args([
                "sync",
                "--once",
                "-f",
                "jira",
                "sprint-backlog",
                "-o",
                "json",
            ])
            .output()
            .unwrap()
    };
    assert!(pass().status.success());
    // Two stories moved under the new epic in the structure; the token is
    // revoked after the first write of the pass that carries them.
    for story in ["PLAT-4", "PLAT-6"] {
        trellis(&ws)
            .args(["move", "backlog", story, "--under", "PLAT-5"])
            .assert()
            .success();
    }
    double.revoke_after(1);
    let out = pass();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let held = report["held"].as_array().unwrap();
    assert!(!held.is_empty(), "{report}");
    assert!(
        held.iter()
            .all(|h| h["release"] == "retry"
                && h["message"].as_str().unwrap().contains("not written")),
        "unsent writes are not a person's to settle: {report}"
    );
    // A new token: the next pass writes what was left, with no troubleshoot.
    double.restore_token();
    let report: serde_json::Value = serde_json::from_slice(&pass().stdout).unwrap();
    assert_eq!(report["held"], serde_json::json!([]), "{report}");
    let state = double.state();
    for story in ["PLAT-4", "PLAT-6"] {
        assert_eq!(
            state.issues[story].parent.as_deref(),
            Some("PLAT-5"),
            "{story}: {report}"
        );
    }
    drop(state);
    double.assert_conformant();
}

#[test]
fn troubleshoot_asks_jira_for_the_permissions_a_synchronizer_needs() {
    let double = small(Flavor::Cloud);
    double.state().denied = vec!["SCHEDULE_ISSUES".into()];
    let ws = workspace(&double);
    trellis(&ws)
        .args(["troubleshoot", "sprint-backlog", "-f", "jira"])
        .assert()
        .code(1)
        .stdout(contains("ok   permission to read issues: Browse Projects (BROWSE_PROJECTS)"))
        .stdout(contains("ok   permission to set epics: Edit Issues (EDIT_ISSUES)"))
        .stdout(contains(
            "FAIL permission to rank issues: the account lacks Schedule Issues (SCHEDULE_ISSUES) in every project",
        ));
    // Asked, not tried: nothing was written.
    assert_eq!(double.count("PUT "), 0);
    assert_eq!(double.count("POST /rest/api/3/issue"), 0);
    double.assert_conformant();
}

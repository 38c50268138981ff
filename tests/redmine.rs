//! The Redmine tracker against a real Redmine 5.0 server, installed and
//! started by `scripts/redmine.sh setup` (`scripts/test.sh` does it).
//!
//! Tests take turns (a file lock, so separate test processes take turns
//! too) and each starts from the empty database `scripts/redmine.sh reset`
//! restores, then works in a project of its own. Without a server these
//! tests fail, with the command that starts one; `TRELLIS_SKIP_REDMINE=1`
//! skips them loudly, except in CI (`CI=true`) where nothing is skipped.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{Value, json};
use trellis::model::Link;
use trellis::plan::TrackerOp;
use trellis::tracker::redmine::{ApiKey, Retry, Settings};
use trellis::tracker::{RedmineTracker, Tracker, TrackerError, Watermark};

const DEFAULT_URL: &str = "http://127.0.0.1:3000";
/// The fixed test key `scripts/redmine.sh` gives the admin user.
const DEFAULT_KEY: &str = "0123456789abcdef0123456789abcdef01234567";
/// Redmine's default data: trackers Bug = 1, Feature = 2, Support = 3.
const BUG: u64 = 1;
const FEATURE: u64 = 2;

struct Redmine {
    url: String,
    key: String,
    http: reqwest::Client,
    /// This test's turn: a lock on a file, released when the test ends.
    _turn: std::fs::File,
}

/// The test server, or `None` when skipping was asked for outside CI.
async fn redmine() -> Option<Redmine> {
    let url = std::env::var("TRELLIS_REDMINE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let key = std::env::var("TRELLIS_REDMINE_API_KEY").unwrap_or_else(|_| DEFAULT_KEY.into());
    let turn = std::fs::File::create(std::env::temp_dir().join("trellis-redmine-tests.lock"))
        .and_then(|file| file.lock().map(|()| file))
        .expect("the lock file that orders the Redmine tests");
    let redmine = Redmine {
        url,
        key,
        http: reqwest::Client::new(),
        _turn: turn,
    };
    let up = redmine
        .http
        .get(format!("{}/users/current.json", redmine.url))
        .header("X-Redmine-API-Key", &redmine.key)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if up {
        // No request is in flight between tests: the online restore is safe.
        script(&["reset"]);
        return Some(redmine);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("TRELLIS_SKIP_REDMINE").is_ok_and(|v| v == "1");
    if skip && !ci {
        eprintln!(
            "SKIPPED: no Redmine at {} and TRELLIS_SKIP_REDMINE=1",
            redmine.url
        );
        return None;
    }
    panic!(
        "no Redmine answers at {} with the test key: start one with `sudo scripts/redmine.sh setup` (or run `scripts/test.sh`); set TRELLIS_SKIP_REDMINE=1 to skip these tests outside CI",
        redmine.url
    );
}

impl Redmine {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/{path}", self.url))
            .header("X-Redmine-API-Key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// A project of the test's own: `t-<name>-<time>`.
    async fn project(&self, name: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let identifier = format!("t-{name}-{nanos}");
        self.call(
            reqwest::Method::POST,
            "projects.json",
            Some(json!({"project": {"name": identifier, "identifier": identifier}})),
        )
        .await;
        identifier
    }

    /// A project of its own with a feature, a story under it, a bug under
    /// the story, and a bug under nothing.
    async fn checkout(&self, name: &str) -> Checkout {
        let project = self.project(name).await;
        let epic = self.issue(&project, FEATURE, "Checkout", None).await;
        let story = self
            .issue(&project, FEATURE, "Pay by card", Some(&epic))
            .await;
        let bug = self
            .issue(&project, BUG, "Card declined", Some(&story))
            .await;
        let loose = self.issue(&project, BUG, "Typo on receipt", None).await;
        Checkout {
            project,
            epic,
            story,
            bug,
            loose,
        }
    }

    /// Creates an issue and returns its key (`#id`).
    async fn issue(
        &self,
        project: &str,
        tracker: u64,
        subject: &str,
        parent: Option<&str>,
    ) -> String {
        let mut issue = json!({"project_id": project, "tracker_id": tracker, "subject": subject});
        if let Some(parent) = parent {
            issue["parent_issue_id"] = json!(id(parent));
        }
        let created = self
            .call(
                reqwest::Method::POST,
                "issues.json",
                Some(json!({ "issue": issue })),
            )
            .await;
        format!("#{}", created["issue"]["id"])
    }

    async fn relate(&self, from: &str, to: &str, relation: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("issues/{}/relations.json", id(from)),
            Some(json!({"relation": {"issue_to_id": id(to), "relation_type": relation}})),
        )
        .await;
    }

    async fn parent_of(&self, key: &str) -> Option<String> {
        let issue = self
            .call(
                reqwest::Method::GET,
                &format!("issues/{}.json", id(key)),
                None,
            )
            .await;
        issue["issue"]["parent"]["id"]
            .as_u64()
            .map(|p| format!("#{p}"))
    }

    async fn delete(&self, key: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("issues/{}.json", id(key)),
            None,
        )
        .await;
    }

    async fn rename(&self, key: &str, subject: &str) {
        self.call(
            reqwest::Method::PUT,
            &format!("issues/{}.json", id(key)),
            Some(json!({"issue": {"subject": subject}})),
        )
        .await;
    }

    fn tracker(&self, project: &str) -> RedmineTracker {
        self.tracker_with_key(project, &self.key)
    }

    fn tracker_with_key(&self, project: &str, key: &str) -> RedmineTracker {
        RedmineTracker::new(Settings {
            url: self.url.parse().unwrap(),
            key: ApiKey::new(key),
            key_source: "the test".into(),
            project: Some(project.into()),
            subprojects: true,
            retry: Retry::default(),
            rate_limit: None,
        })
        .unwrap()
    }

    /// A workspace with declarations for `project`: a Redmine tracker, a
    /// structure `plan` and the synchronizers given as YAML documents.
    fn workspace(&self, project: &str, synchronizers: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let declarations = format!(
            r#"apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {{name: redmine}}
spec:
  type: redmine
  url: {url}
  credentials: {{env: TEST_REDMINE_KEY}}
  redmine: {{project: {project}}}
---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {{name: plan}}
spec:
  trackerRef: {{name: redmine}}
{synchronizers}"#,
            url = self.url
        );
        std::fs::write(dir.path().join("trellis.yaml"), declarations).unwrap();
        Workspace {
            dir,
            key: self.key.clone(),
        }
    }
}

/// The issues [`Redmine::checkout`] makes, by key.
struct Checkout {
    project: String,
    epic: String,
    story: String,
    bug: String,
    loose: String,
}

fn id(key: &str) -> u64 {
    key.trim_start_matches('#').parse().unwrap()
}

/// Runs `scripts/redmine.sh` (as root: it runs Rails as Redmine's user).
fn script(args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redmine.sh");
    let root = Process::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut command = if root {
        Process::new("bash")
    } else {
        let mut sudo = Process::new("sudo");
        sudo.args(["-n", "bash"]);
        sudo
    };
    let output = command.arg(path).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "scripts/redmine.sh {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

struct Workspace {
    dir: tempfile::TempDir,
    key: String,
}

impl Workspace {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn trellis(&self) -> Command {
        let mut cmd = Command::cargo_bin("trellis").unwrap();
        cmd.current_dir(self.dir.path())
            .env("TRELLIS_STATE", self.path("state/trellis.db"))
            .env("TRELLIS_USER", "alice")
            .env("TEST_REDMINE_KEY", &self.key)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        cmd
    }

    /// One incremental pass of `hierarchy` (see [`SUBTASKS`]), as JSON.
    fn pass(&self) -> Value {
        self.pass_with(&[])
    }

    fn pass_with(&self, extra: &[&str]) -> Value {
        let mut args = vec![
            "sync",
            "--once",
            "-f",
            "trellis.yaml",
            "hierarchy",
            "-o",
            "json",
        ];
        args.extend(extra);
        let (code, stdout, stderr) = self.run(&args);
        assert_eq!(code, 0, "{stdout}{stderr}");
        serde_json::from_str(&stdout).unwrap()
    }

    /// Points trellis.yaml's Redmine URL `from` at `to` (a path that
    /// vanishes, a closed port, the real server again).
    fn point_at(&self, from: &str, to: &str) {
        let path = self.path("trellis.yaml");
        let declarations = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, declarations.replace(from, to)).unwrap();
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.trellis().args(args).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }
}

/// Every issue of the project, each under its parent.
const SUBTASKS: &str = r#"---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: everything}
spec:
  structureRef: {name: plan}
  type: filter
  filter: {query: "status_id=*"}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: hierarchy}
spec:
  structureRef: {name: plan}
  type: subtasks
  directions: [into, from]
"#;

#[tokio::test]
async fn import_builds_the_hierarchy_and_export_writes_parents_to_redmine() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let Checkout {
        project,
        epic,
        story,
        bug,
        loose,
    } = redmine.checkout("hierarchy").await;
    let ws = redmine.workspace(&project, SUBTASKS);

    let (code, _, stderr) = ws.run(&["apply", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, outline, _) = ws.run(&["show", "plan"]);
    let expected = format!(
        "{epic} [Feature] Checkout (New)\n  {story} [Feature] Pay by card (New)\n    {bug} [Bug] Card declined (New)\n{loose} [Bug] Typo on receipt (New)\n"
    );
    assert!(outline.contains(&expected), "{outline}");

    // A person moves the loose bug under the story; exporting sets its parent.
    let (code, _, stderr) = ws.run(&["move", "plan", &loose, "--under", &story]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(redmine.parent_of(&loose).await, Some(story.clone()));

    // Moving the story to the top clears its parent: destructive, so it
    // needs the plan's hash, and a wrong one changes nothing.
    ws.run(&["move", "plan", &story, "--top"]);
    let (code, _, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("destructive"), "{stderr}");
    assert_eq!(redmine.parent_of(&story).await, Some(epic.clone()));
    let hash = approval_hash(&stderr);
    let (code, _, stderr) = ws.run(&[
        "export",
        "hierarchy",
        "-f",
        "trellis.yaml",
        "--approve",
        "deadbeefdeadbeef",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(redmine.parent_of(&story).await, Some(epic.clone()));
    let (code, _, stderr) = ws.run(&[
        "export",
        "hierarchy",
        "-f",
        "trellis.yaml",
        "--approve",
        &hash,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(redmine.parent_of(&story).await, None);
    assert_eq!(
        redmine.parent_of(&bug).await,
        Some(story.clone()),
        "untouched"
    );
}

#[tokio::test]
async fn relations_are_links_on_the_issue_they_start_from() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("links").await;
    let a = redmine.issue(&project, BUG, "A", None).await;
    let b = redmine.issue(&project, BUG, "B", None).await;
    let c = redmine.issue(&project, BUG, "C", None).await;
    redmine.relate(&a, &b, "precedes").await;
    // Redmine stores `blocked` as `blocks` from the other end.
    redmine.relate(&a, &c, "blocked").await;
    let snapshot = redmine.tracker(&project).snapshot().await.unwrap();
    let links = |key: &str| snapshot.get(key).unwrap().links.clone();
    let link = |t: &str, target: &str| Link {
        link_type: t.into(),
        target: target.into(),
    };
    assert_eq!(links(&a), vec![link("precedes", &b)]);
    assert_eq!(links(&b), vec![]);
    assert_eq!(links(&c), vec![link("blocks", &a)]);
    assert_eq!(snapshot.get(&a).unwrap().issue_type, "Bug");
    assert_eq!(snapshot.get(&a).unwrap().status, "New");
}

#[tokio::test]
async fn a_full_read_takes_one_request_per_hundred_issues() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = format!("t-paging-{}", jiff::Timestamp::now().as_nanosecond());
    // 250 issues in one Rails process rather than 250 requests.
    script(&["seed", &project, "250"]);
    let tracker = redmine.tracker(&project);
    let snapshot = tracker.snapshot().await.unwrap();
    assert_eq!(snapshot.len(), 250);
    assert_eq!(
        tracker.requests(),
        1 + 3,
        "one handshake and ⌈250/100⌉ pages, relations included"
    );
    // The seeded tree: every tenth issue is a root with children and grandchildren.
    let roots = snapshot.issues().filter(|i| i.parent.is_none()).count();
    assert_eq!(roots, 25);
    // A second read on the same client needs no second handshake.
    tracker.snapshot().await.unwrap();
    assert_eq!(tracker.requests(), 1 + 3 + 3);
    // Changed issues page by time; the seeded issues all share one second,
    // so the pages move on by offset within it and miss none.
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
    let changed = tracker.changed_since(start).await.unwrap();
    assert_eq!(changed.len(), 250);
    assert_eq!(tracker.requests(), 1 + 3 + 3 + 3);
}

#[tokio::test]
async fn filters_use_saved_queries_and_filter_parameters() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("filters").await;
    let bug = redmine.issue(&project, BUG, "Crash", None).await;
    let feature = redmine.issue(&project, FEATURE, "Dark mode", None).await;
    let query_id = script(&["query", &project, "Open bugs", &BUG.to_string()]);
    let query_id = query_id.trim();
    let tracker = redmine.tracker(&project);

    let saved = tracker
        .search(&format!("query_id={query_id}"))
        .await
        .unwrap();
    assert_eq!(saved.into_iter().collect::<Vec<_>>(), vec![bug.clone()]);
    let features = tracker
        .search(&format!("tracker_id={FEATURE}&status_id=*"))
        .await
        .unwrap();
    assert_eq!(
        features.into_iter().collect::<Vec<_>>(),
        vec![feature.clone()]
    );

    let missing = tracker.search("query_id=999999").await.unwrap_err();
    assert!(
        missing.to_string().contains("no saved query 999999"),
        "{missing}"
    );

    // Through the command line: the filter adds only the open bugs.
    let ws = redmine.workspace(
        &project,
        &format!(
            r#"---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {{name: open-bugs}}
spec:
  structureRef: {{name: plan}}
  type: filter
  filter: {{query: "query_id={query_id}"}}
"#
        ),
    );
    let (code, _, stderr) = ws.run(&["apply", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, outline, _) = ws.run(&["show", "plan"]);
    assert_eq!(outline, format!("{bug} [Bug] Crash (New)\n"));
    assert!(!outline.contains("Dark mode"), "{outline}");
}

#[tokio::test]
async fn a_typo_in_a_filter_is_refused_before_redmine_ignores_it() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("typo").await;
    let ws = redmine.workspace(
        &project,
        r#"---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: bugs}
spec:
  structureRef: {name: plan}
  type: filter
  filter: {query: "trackr_id=1"}
"#,
    );
    let (code, _, stderr) = ws.run(&["plan", "-f", "trellis.yaml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("trellis.yaml:22: spec.filter.query: invalid query: `trackr_id` is not a Redmine issue filter"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_named_by_where_it_came_from_and_never_shown() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("badkey").await;
    redmine.issue(&project, BUG, "Anything", None).await;
    let mut ws = redmine.workspace(&project, SUBTASKS);
    let wrong = "feedfacefeedfacefeedfacefeedfacefeedface";
    ws.key = wrong.into();
    let output = ws
        .trellis()
        .args(["plan", "-f", "trellis.yaml"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("Redmine refused the API key from environment variable TEST_REDMINE_KEY (401 Unauthorized)"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "the key leaked into the output");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(wrong));

    // A missing variable says which one, and where it is declared.
    let output = ws
        .trellis()
        .args(["plan", "-f", "trellis.yaml"])
        .env_remove("TEST_REDMINE_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("trellis.yaml:7: spec.credentials.env: tracker default/redmine: environment variable TEST_REDMINE_KEY is not set"),
        "{stderr}"
    );

    // And a good key, traced at the finest level, is not shown either.
    let ws = redmine.workspace(&project, SUBTASKS);
    let output = ws
        .trellis()
        .args(["plan", "-f", "trellis.yaml"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&redmine.key));
}

#[tokio::test]
async fn an_issue_deleted_after_planning_stops_the_saved_plan_and_fails_alone_in_a_write() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("deleted").await;
    let epic = redmine.issue(&project, FEATURE, "Epic", None).await;
    let doomed = redmine.issue(&project, BUG, "Doomed", None).await;
    let kept = redmine.issue(&project, BUG, "Kept", None).await;
    let ws = redmine.workspace(&project, SUBTASKS);
    assert_eq!(ws.run(&["apply", "-f", "trellis.yaml"]).0, 0);
    ws.run(&["move", "plan", &doomed, "--under", &epic]);
    // `apply` now runs the synchronizer `from` the structure: an export plan.
    let yaml = std::fs::read_to_string(ws.path("trellis.yaml")).unwrap();
    std::fs::write(
        ws.path("trellis.yaml"),
        yaml.replace("directions: [into, from]", "directions: [from, into]"),
    )
    .unwrap();
    let (code, stdout, stderr) = ws.run(&["plan", "-f", "trellis.yaml", "--out", "plan.json"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{doomed}: parent (none) → {epic}")),
        "{stdout}"
    );
    redmine.delete(&doomed).await;
    let (code, _, stderr) = ws.run(&["apply", "plan.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is stale"), "{stderr}");
    assert!(
        stderr.contains(&doomed),
        "names the issue that changed: {stderr}"
    );
    assert_eq!(redmine.parent_of(&kept).await, None);

    // At the tracker: the write to the deleted issue fails with Redmine's
    // answer, the other one is made.
    let tracker = redmine.tracker(&project);
    let error = tracker
        .apply(&[
            TrackerOp::SetParent {
                issue: doomed.clone(),
                from: None,
                to: epic.clone(),
            },
            TrackerOp::SetParent {
                issue: kept.clone(),
                from: None,
                to: epic.clone(),
            },
        ])
        .await
        .unwrap_err();
    let TrackerError::Writes { done, failures, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!(*done, 1);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].issue, doomed);
    assert!(failures[0].message.contains("404 Not Found"), "{error}");
    assert_eq!(redmine.parent_of(&kept).await, Some(epic.clone()));
}

#[tokio::test]
async fn redmines_validation_errors_are_reported_against_the_issue() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("invalid").await;
    let parent = redmine.issue(&project, FEATURE, "Parent", None).await;
    let child = redmine.issue(&project, BUG, "Child", Some(&parent)).await;
    let tracker = redmine.tracker(&project);
    // A parent under its own child: Redmine refuses with 422.
    let error = tracker
        .apply(&[TrackerOp::SetParent {
            issue: parent.clone(),
            from: None,
            to: child.clone(),
        }])
        .await
        .unwrap_err();
    let TrackerError::Writes {
        done: 0, failures, ..
    } = &error
    else {
        panic!("{error}")
    };
    assert_eq!(failures[0].issue, parent);
    assert!(
        failures[0]
            .message
            .starts_with("Redmine refused it (422): Parent task is invalid"),
        "{error}"
    );
    assert_eq!(redmine.parent_of(&parent).await, None);
    // Writes are idempotent: setting the parent it has changes nothing.
    tracker
        .apply(&[TrackerOp::SetParent {
            issue: child.clone(),
            from: Some(parent.clone()),
            to: parent.clone(),
        }])
        .await
        .unwrap();
}

#[tokio::test]
async fn changed_issues_are_read_from_a_watermark_without_repeats() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("changes").await;
    let a = redmine.issue(&project, BUG, "A", None).await;
    let b = redmine.issue(&project, BUG, "B", None).await;
    let tracker = redmine.tracker(&project);
    let mut mark = Watermark::default();
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600);
    let first = mark.advance(tracker.changed_since(start).await.unwrap());
    assert_eq!(first.len(), 2);
    // Read again from the watermark: the overlap returns both, both are dropped.
    let from = mark.read_from().unwrap();
    assert!(
        mark.advance(tracker.changed_since(from).await.unwrap())
            .is_empty()
    );
    redmine.rename(&b, "B renamed").await;
    let changed = mark.advance(
        tracker
            .changed_since(mark.read_from().unwrap())
            .await
            .unwrap(),
    );
    let keys: Vec<&str> = changed.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, [b.as_str()]);
    assert_eq!(changed[0].summary, "B renamed");
    assert!(!keys.contains(&a.as_str()));
    // Redmine does not bump `updated_on` for relations: the tracker says so.
    assert!(!tracker.capabilities().link_changes_bump_updated);
}

#[tokio::test]
async fn a_wrong_key_at_the_tracker_is_an_error_not_an_empty_tracker() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("anonymous").await;
    let error = redmine
        .tracker_with_key(&project, "0000000000000000000000000000000000000000")
        .snapshot()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("401 Unauthorized"), "{error}");
}

#[tokio::test]
async fn status_changes_are_written_by_name_and_refusals_name_the_allowed_ones() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("status").await;
    let parent = redmine.issue(&project, FEATURE, "Parent", None).await;
    let tracker = redmine.tracker(&project);
    tracker
        .apply(&[TrackerOp::SetStatus {
            issue: parent.clone(),
            from: "New".into(),
            to: "In Progress".into(),
        }])
        .await
        .unwrap();
    let snapshot = tracker.snapshot().await.unwrap();
    assert_eq!(snapshot.get(&parent).unwrap().status, "In Progress");
    let error = tracker
        .apply(&[TrackerOp::SetStatus {
            issue: parent.clone(),
            from: "In Progress".into(),
            to: "Nonexistent".into(),
        }])
        .await
        .unwrap_err();
    let TrackerError::Writes { failures, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!(failures[0].issue, parent);
    assert!(failures[0].message.contains("Nonexistent"), "{error}");
}

#[tokio::test]
async fn links_import_and_export_write_relations_and_deletions_need_approval() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("relations").await;
    let epic = redmine.issue(&project, FEATURE, "Checkout", None).await;
    let other = redmine.issue(&project, FEATURE, "Receipts", None).await;
    let story = redmine.issue(&project, BUG, "Pay by card", None).await;
    redmine.relate(&epic, &story, "blocks").await;
    let ws = redmine.workspace(
        &project,
        &format!(
            r#"---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {{name: epics}}
spec:
  structureRef: {{name: plan}}
  type: filter
  filter: {{query: "tracker_id={FEATURE}&status_id=*"}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {{name: blocking}}
spec:
  structureRef: {{name: plan}}
  type: links
  directions: [into, from]
  links: {{type: blocks, parentEnd: source, scope: expand}}
"#
        ),
    );
    let (code, _, stderr) = ws.run(&["apply", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, outline, _) = ws.run(&["show", "plan"]);
    assert_eq!(
        outline,
        format!(
            "{epic} [Feature] Checkout (New)\n  {story} [Bug] Pay by card (New)\n{other} [Feature] Receipts (New)\n"
        )
    );

    // The story moves to the other epic: the export links it there and
    // deletes the old relation, which needs the plan's hash.
    ws.run(&["move", "plan", &story, "--under", &other]);
    let (code, stdout, stderr) = ws.run(&["export", "blocking", "-f", "trellis.yaml"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("! {epic}: delete link blocks → {story}")),
        "{stdout}"
    );
    let hash = approval_hash(&stderr);
    let (code, stdout, stderr) = ws.run(&[
        "export",
        "blocking",
        "-f",
        "trellis.yaml",
        "--approve",
        &hash,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let snapshot = redmine.tracker(&project).snapshot().await.unwrap();
    let blocks = |key: &str| snapshot.get(key).unwrap().links.clone();
    let link = |target: &str| Link {
        link_type: "blocks".into(),
        target: target.into(),
    };
    assert_eq!(blocks(&epic), vec![]);
    assert_eq!(blocks(&other), vec![link(&story)]);

    // Writes are idempotent: creating a relation Redmine has (its 422) and
    // deleting one it no longer has change nothing.
    let tracker = redmine.tracker(&project);
    let again = [
        TrackerOp::AddLink {
            issue: other.clone(),
            link_type: "blocks".into(),
            target: story.clone(),
        },
        TrackerOp::RemoveLink {
            issue: epic.clone(),
            link_type: "blocks".into(),
            target: story.clone(),
        },
    ];
    tracker.apply(&again).await.unwrap();
    // Redmine's own refusals are reported against the issue: no circular `blocks`.
    let error = tracker
        .apply(&[TrackerOp::AddLink {
            issue: story.clone(),
            link_type: "blocks".into(),
            target: other.clone(),
        }])
        .await
        .unwrap_err();
    let TrackerError::Writes {
        done: 0, failures, ..
    } = &error
    else {
        panic!("{error}")
    };
    assert_eq!(failures[0].issue, story);
    assert!(failures[0].message.contains("422"), "{error}");
}

#[tokio::test]
async fn incremental_passes_carry_changes_both_ways_on_a_real_redmine() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let Checkout {
        project,
        story,
        bug,
        loose,
        ..
    } = redmine.checkout("incremental").await;
    let ws = redmine.workspace(&project, SUBTASKS);
    let (code, _, stderr) = ws.run(&["apply", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ws.pass()["full"], true);

    // In Redmine, a person puts the loose bug under the story; in the
    // structure, another takes the bug to the top level.
    redmine
        .call(
            reqwest::Method::PUT,
            &format!("issues/{}.json", id(&loose)),
            Some(json!({"issue": {"parent_issue_id": id(&story)}})),
        )
        .await;
    let (code, _, stderr) = ws.run(&["move", "plan", &bug, "--top"]);
    assert_eq!(code, 0, "{stderr}");
    // Clearing the bug's parent is destructive: held until approved.
    let held = ws.pass();
    let hash = held["heldPlan"]["hash"]
        .as_str()
        .expect("a held plan")
        .to_owned();
    assert!(
        held["heldPlan"]["destructive"][0]
            .as_str()
            .unwrap()
            .contains(&format!("{bug}: parent {story}")),
        "{held}"
    );
    assert_eq!(
        redmine.parent_of(&bug).await,
        Some(story.clone()),
        "not written yet"
    );
    let report = ws.pass_with(&["--approve", &hash]);
    assert_eq!(report["full"], false);
    assert_eq!(report["structureChanges"], 1);
    // Changed issues are read with an overlap window (the four made a
    // moment ago), twice: to refresh, and again just before writing.
    assert!(report["issuesRead"].as_u64().unwrap() <= 8, "{report}");
    assert_eq!(redmine.parent_of(&bug).await, None, "cleared in Redmine");
    let (_, outline, _) = ws.run(&["show", "plan"]);
    assert!(
        outline.contains(&format!(
            "  {story} [Feature] Pay by card (New)\n    {loose} [Bug] Typo on receipt (New)\n"
        )),
        "{outline}"
    );
    // Its own write to Redmine does not come back as a change.
    let again = ws.pass();
    assert_eq!(again["summary"]["trackerUpdates"], 0, "{again}");
    assert_eq!(again["summary"]["move"], 0, "{again}");
    // A pass with nothing to write: the key check and one page of changes.
    assert_eq!(again["requests"], 2, "{again}");
}

#[tokio::test]
async fn a_filter_is_asked_only_about_the_changed_issues() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("among").await;
    let bug = redmine.issue(&project, BUG, "Crash", None).await;
    let feature = redmine.issue(&project, FEATURE, "Export", None).await;
    let other_bug = redmine.issue(&project, BUG, "Typo", None).await;
    let tracker = redmine.tracker(&project);
    let among = tracker
        .search_among(
            &format!("tracker_id={BUG}"),
            &[bug.clone(), feature.clone()],
        )
        .await
        .unwrap();
    // Only the asked issues, and of them only the bug: the other bug
    // matches the filter but was not asked about.
    assert_eq!(among, HashSet::from([bug.clone()]));
    assert!(!among.contains(&other_bug));
}

#[tokio::test]
async fn tracker_and_status_filters_are_answered_from_the_read_as_redmine_answers_them() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("answered").await;
    let bug = redmine.issue(&project, BUG, "Crash", None).await;
    redmine.issue(&project, FEATURE, "Export", None).await;
    let fixed = redmine.issue(&project, BUG, "Fixed long ago", None).await;
    // Redmine's default data: Closed = 5, a closed status.
    redmine
        .call(
            reqwest::Method::PUT,
            &format!("issues/{}.json", id(&fixed)),
            Some(json!({"issue": {"status_id": 5}})),
        )
        .await;
    let queries = [
        format!("tracker_id={BUG}"),
        format!("tracker_id={BUG}&status_id=*"),
        format!("tracker_id=!{BUG}&status_id=*"),
        "status_id=closed".to_owned(),
        "status_id=5".to_owned(),
        "status_id=*".to_owned(),
    ];
    // One client asks Redmine (it read nothing); the other read the
    // project first, and answers from that read just as Redmine does.
    let asking = redmine.tracker(&project);
    let reader = redmine.tracker(&project);
    reader.snapshot().await.unwrap();
    let read = reader.requests();
    for query in &queries {
        assert_eq!(
            reader.search(query).await.unwrap(),
            asking.search(query).await.unwrap(),
            "{query}"
        );
    }
    assert_eq!(
        reader.requests(),
        read + 1,
        "no issue read twice; one request says which statuses are closed"
    );
    let among = reader
        .search_among(&queries[0], &[bug.clone(), fixed.clone()])
        .await
        .unwrap();
    assert_eq!(among, HashSet::from([bug.clone()]));
    assert_eq!(reader.requests(), read + 1);
    // A filter on anything else is Redmine's to answer.
    let subject = format!("tracker_id={BUG}&subject=~Crash");
    assert_eq!(
        reader.search(&subject).await.unwrap(),
        HashSet::from([bug.clone()])
    );
    assert_eq!(reader.requests(), read + 2);

    // A round of first passes (a filter on every status, then subtasks):
    // one key check and one page between them.
    let ws = redmine.workspace(&project, SUBTASKS);
    let (code, stdout, stderr) = ws.run(&["sync", "--once", "-f", "trellis.yaml", "-o", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let passes: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(passes.len(), 2, "{stdout}");
    assert_eq!(passes[0]["summary"]["add"], 3, "{stdout}");
    let requests: Vec<u64> = passes
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(requests, [2, 0], "{stdout}");
}

#[tokio::test]
async fn a_refused_write_holds_its_issue_while_the_others_go_on() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("held").await;
    let epic = redmine.issue(&project, FEATURE, "Checkout", None).await;
    let target = redmine.issue(&project, FEATURE, "Wallets", None).await;
    let loose = redmine.issue(&project, BUG, "Typo on receipt", None).await;
    let extra = redmine.issue(&project, BUG, "Slow page", None).await;
    let ws = redmine.workspace(&project, SUBTASKS);
    let troubleshoot = |args: &[&str]| {
        let mut all = vec!["troubleshoot", "hierarchy", "-f", "trellis.yaml"];
        all.extend(args);
        ws.run(&all)
    };
    assert_eq!(ws.run(&["apply", "-f", "trellis.yaml"]).0, 0);
    ws.pass();

    // Two moves in the structure; the first one's new parent is deleted in
    // Redmine before the pass, which refuses that write alone.
    ws.run(&["move", "plan", &loose, "--under", &target]);
    ws.run(&["move", "plan", &extra, "--under", &epic]);
    redmine.delete(&target).await;
    let report = ws.pass();
    assert_eq!(redmine.parent_of(&extra).await, Some(epic.clone()));
    assert_eq!(report["held"][0]["issue"], loose.as_str(), "{report}");
    assert_eq!(report["held"][0]["attempts"], 1);
    let message = report["held"][0]["message"].as_str().unwrap();
    assert!(message.contains("Parent task is invalid"), "{message}");
    let (code, stdout, _) = troubleshoot(&[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains(&format!("{loose} (failed)")), "{stdout}");

    // Retried: it fails again, counted, first seen kept.
    let first_seen = report["held"][0]["firstSeen"].clone();
    assert_eq!(troubleshoot(&["--retry", &loose]).0, 0);
    let again = ws.pass();
    assert_eq!(again["held"][0]["attempts"], 2, "{again}");
    assert_eq!(again["held"][0]["firstSeen"], first_seen);
    // Skipped: the hold goes, nothing needs a person any more.
    assert_eq!(troubleshoot(&["--skip", &loose]).0, 0);
    let (code, stdout, _) = troubleshoot(&[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(redmine.parent_of(&loose).await, None);
}

#[tokio::test]
async fn troubleshoot_reads_the_keys_roles_and_names_a_missing_permission() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("permissions").await;
    redmine.issue(&project, FEATURE, "Checkout", None).await;
    // A reporter: may read issues, not give them parents.
    let user = redmine
        .call(
            reqwest::Method::POST,
            "users.json",
            Some(json!({"user": {"login": "reporter1", "firstname": "Re", "lastname": "Porter", "mail": "reporter1@example.net", "password": "reporter-pass-1"}})),
        )
        .await;
    let reporter_role = 5;
    redmine
        .call(
            reqwest::Method::POST,
            &format!("projects/{project}/memberships.json"),
            Some(
                json!({"membership": {"user_id": user["user"]["id"], "role_ids": [reporter_role]}}),
            ),
        )
        .await;
    let reporter_key = "5eb0ae5eb0ae5eb0ae5eb0ae5eb0ae5eb0ae0001";
    script(&["key", "reporter1", reporter_key]);

    let mut ws = redmine.workspace(&project, SUBTASKS);
    let (code, stdout, stderr) = ws.run(&["troubleshoot", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "ok   permission to set parents: edit_issues + manage_subtasks (an administrator)"
        ),
        "{stdout}"
    );
    ws.key = reporter_key.into();
    let (code, stdout, stderr) = ws.run(&["troubleshoot", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("writes are made as reporter1"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "ok   permission to read issues: view_issues (roles Reporter in {project})"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "FAIL permission to set parents: roles Reporter in {project} lack"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("manage_subtasks"), "{stdout}");
    assert!(!stdout.contains(reporter_key) && !stderr.contains(reporter_key));
}

/// A TCP path to Redmine that vanishes: it forwards everything until the
/// client starts a request after `allowed` `PUT`s, then drops every connection
/// and stops listening, so that further connections are refused (a server
/// that went down, or a network path that broke, in the middle of a run).
fn vanishing_path(allowed: usize) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let upstream = DEFAULT_URL.trim_start_matches("http://").to_string();
    let gone = Arc::new(AtomicBool::new(false));
    let puts = Arc::new(AtomicUsize::new(0));
    // Every open connection, both ends, so that vanishing can cut them all.
    let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if gone.load(Ordering::SeqCst) {
                // Dropping the listener here: later connections are refused.
                return;
            }
            let server = TcpStream::connect(&upstream).unwrap();
            {
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
            }
            let (mut from_server, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
            });
            let (gone, puts, open) = (gone.clone(), puts.clone(), open.clone());
            let (mut from_client, mut to_server) = (client, server);
            std::thread::spawn(move || {
                let mut buffer = vec![0; 64 * 1024];
                while let Ok(n) = from_client.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buffer[..n];
                    let request = ["GET ", "PUT ", "POST ", "DELETE "]
                        .iter()
                        .any(|method| chunk.starts_with(method.as_bytes()));
                    if request && puts.load(Ordering::SeqCst) >= allowed {
                        gone.store(true, Ordering::SeqCst);
                        for stream in open.lock().unwrap().drain(..) {
                            let _ = stream.shutdown(Shutdown::Both);
                        }
                        // Wake the accept loop so that it drops the listener.
                        let _ = TcpStream::connect(address);
                        return;
                    }
                    if chunk.starts_with(b"PUT ") {
                        puts.fetch_add(1, Ordering::SeqCst);
                    }
                    if to_server.write_all(chunk).is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

/// A project with one feature and `n` loose bugs, imported, and each bug
/// moved under the feature by a person: an export writes `n` parents.
async fn bugs_to_move(redmine: &Redmine, n: usize, url: &str) -> (Workspace, String, Vec<String>) {
    let project = redmine.project("vanish").await;
    let feature = redmine.issue(&project, FEATURE, "Checkout", None).await;
    let mut bugs = Vec::new();
    for i in 0..n {
        bugs.push(
            redmine
                .issue(&project, BUG, &format!("Bug {i}"), None)
                .await,
        );
    }
    let ws = redmine.workspace(&project, SUBTASKS);
    ws.point_at(&redmine.url, url);
    let (code, stdout, stderr) = ws.run(&["apply", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for bug in &bugs {
        let (code, _, stderr) = ws.run(&["move", "plan", bug, "--under", &feature]);
        assert_eq!(code, 0, "{stderr}");
    }
    (ws, feature, bugs)
}

/// The hash a refusal of a destructive plan asks to approve.
fn approval_hash(refusal: &str) -> String {
    refusal
        .split("--approve ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .expect("the refusal names the hash")
        .to_owned()
}

/// The parent changes `history` journaled.
fn journaled_parents(ws: &Workspace) -> Vec<Value> {
    let (_, stdout, _) = ws.run(&["history", "plan", "-o", "json"]);
    common::journaled_parents(stdout.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_stops_within_seconds_when_redmine_goes_away_and_the_next_run_completes_it() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let path = vanishing_path(5);
    let (ws, feature, bugs) = bugs_to_move(&redmine, 12, &path).await;

    let started = std::time::Instant::now();
    let (code, stdout, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    let took = started.elapsed();
    eprintln!("the export stopped {took:.1?} after it started, Redmine gone after 5 writes");
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(took < Duration::from_secs(30), "stopped after {took:?}");
    assert!(stderr.contains("stopped answering"), "{stderr}");
    assert!(
        stderr.contains("5 write(s) were made before that and nothing more was tried"),
        "{stderr}"
    );
    let mut parented = 0;
    for bug in &bugs {
        if redmine.parent_of(bug).await == Some(feature.clone()) {
            parented += 1;
        }
    }
    assert_eq!(parented, 5);

    // Redmine is reachable again: the next run journals the 5 writes the
    // stopped one made, and writes the other 7.
    ws.point_at(&path, &redmine.url);
    let (code, stdout, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("7 tracker updates"), "{stdout}");
    for bug in &bugs {
        assert_eq!(redmine.parent_of(bug).await, Some(feature.clone()));
    }
    let journaled = journaled_parents(&ws);
    assert_eq!(journaled.len(), 12, "each write journaled once");
    use trellis::store::Store;
    let store = trellis::store::SqliteStore::open_read_only(&ws.path("state/trellis.db")).unwrap();
    let interrupted = store
        .job(journaled[0]["job"].as_u64().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        interrupted
            .summary
            .starts_with("5 of 12 tracker writes made"),
        "{interrupted:?}"
    );
}

#[tokio::test]
async fn an_export_killed_after_writing_redmine_is_journaled_by_the_next_run() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let (ws, feature, bugs) = bugs_to_move(&redmine, 3, &redmine.url).await;
    let output = ws
        .trellis()
        .env("TRELLIS_FAILPOINT", "tracker-written")
        .args(["export", "hierarchy", "-f", "trellis.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), None, "killed: {output:?}");
    for bug in &bugs {
        assert_eq!(redmine.parent_of(bug).await, Some(feature.clone()));
    }
    assert!(journaled_parents(&ws).is_empty());

    let (code, stdout, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("0 tracker updates"), "{stdout}");
    let journaled = journaled_parents(&ws);
    assert_eq!(journaled.len(), 3, "{journaled:?}");
    // The journal can take them back (clearing parents: approved by hash).
    let job = journaled[0]["job"].as_u64().unwrap().to_string();
    let (code, _, stderr) = ws.run(&["undo", &job, "-f", "trellis.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    let hash = approval_hash(&stderr);
    let (code, stdout, stderr) = ws.run(&["undo", &job, "-f", "trellis.yaml", "--approve", &hash]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for bug in &bugs {
        assert_eq!(redmine.parent_of(bug).await, None);
    }
}

/// Issue ids are Redmine's rank: rows that change parent in Redmine or in
/// the structure end where a fresh import puts them, and `show` needs no
/// Redmine.
#[tokio::test]
async fn rows_that_change_parent_keep_the_order_a_fresh_import_gives_on_redmine() {
    let Some(redmine) = redmine().await else {
        return;
    };
    let project = redmine.project("order").await;
    let first = redmine.issue(&project, FEATURE, "First", None).await;
    let mut under_first = Vec::new();
    for i in 0..6 {
        let bug = format!("First bug {i}");
        under_first.push(redmine.issue(&project, BUG, &bug, Some(&first)).await);
    }
    let second = redmine.issue(&project, FEATURE, "Second", None).await;
    for i in 0..3 {
        let bug = format!("Second bug {i}");
        redmine.issue(&project, BUG, &bug, Some(&second)).await;
    }
    let ws = redmine.workspace(&project, SUBTASKS);
    let (code, _, stderr) = ws.run(&["apply", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    ws.pass();

    // In Redmine, two of the first feature's bugs move to the second (their
    // ids are lower than its bugs': they go first); in the structure, a
    // person moves the lowest one there too, without saying where.
    for bug in [&under_first[2], &under_first[4]] {
        redmine
            .call(
                reqwest::Method::PUT,
                &format!("issues/{}.json", id(bug)),
                Some(json!({"issue": {"parent_issue_id": id(&second)}})),
            )
            .await;
    }
    ws.pass();
    let (code, _, stderr) = ws.run(&["move", "plan", &under_first[0], "--under", &second]);
    assert_eq!(code, 0, "{stderr}");
    ws.pass();
    assert_eq!(
        redmine.parent_of(&under_first[0]).await,
        Some(second.clone())
    );

    let (_, synced, _) = ws.run(&["show", "plan"]);
    let fresh = ws
        .trellis()
        .env("TRELLIS_STATE", ws.path("fresh.db"))
        .args(["apply", "-f", "trellis.yaml"])
        .output()
        .unwrap();
    assert!(fresh.status.success(), "{fresh:?}");
    let fresh = ws
        .trellis()
        .env("TRELLIS_STATE", ws.path("fresh.db"))
        .args(["show", "plan"])
        .output()
        .unwrap();
    assert_eq!(synced, String::from_utf8_lossy(&fresh.stdout));
    let under_second = format!(
        "{second} [Feature] Second (New)\n  {} [Bug] First bug 0 (New)\n  {} [Bug] First bug 2 (New)\n  {} [Bug] First bug 4 (New)\n",
        under_first[0], under_first[2], under_first[4]
    );
    assert!(synced.contains(&under_second), "{synced}");

    // Redmine unreachable: `show` prints the issues as last read.
    ws.point_at(&redmine.url, "http://127.0.0.1:9");
    let (code, shown, stderr) = ws.run(&["show", "plan", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(shown, synced);
    assert!(stderr.contains("as read 20"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_reached_redmine_before_the_read_back_failed_are_counted_and_journaled() {
    let Some(redmine) = redmine().await else {
        return;
    };
    // Every parent is written; Redmine goes away before the check that
    // reads them back.
    let path = vanishing_path(3);
    let (ws, feature, bugs) = bugs_to_move(&redmine, 3, &path).await;
    let (code, stdout, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("and 3 succeeded"), "{stderr}");
    assert!(
        stderr.contains("reading it back to check failed"),
        "{stderr}"
    );
    for bug in &bugs {
        assert_eq!(redmine.parent_of(bug).await, Some(feature.clone()));
    }
    // Back: the next run journals the three writes and has nothing to write.
    ws.point_at(&path, &redmine.url);
    let (code, stdout, stderr) = ws.run(&["export", "hierarchy", "-f", "trellis.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("0 tracker updates"), "{stdout}");
    assert_eq!(journaled_parents(&ws).len(), 3, "each write journaled once");
}

//! Opt-in: the controller against a real cluster, whichever KUBECONFIG
//! names (kind, k3d, a real one, or a bare kube-apiserver with etcd).
//! Ignored by default, since no cluster runs on the build machines; run it
//! with an admin kubeconfig and `kubectl` on the PATH:
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test cluster -- --ignored
//! ```
//!
//! Setup is what a user does: `kubectl apply -k deploy/` (CRDs, namespace,
//! RBAC; the Deployment is scaled to 0 so that no pod competes for the
//! work), then a token for deploy/'s ServiceAccount from `kubectl create
//! token`. Each test runs `trellis controller` on this machine as that
//! ServiceAccount — exactly deploy/'s permissions, so a missing one is a
//! real 403 — in a namespace of its own with a Lease of its own, and
//! deletes the namespace at the end. The Redmine test needs the suite's
//! Redmine (`sudo scripts/redmine.sh setup`; `TRELLIS_REDMINE_URL` and
//! `TRELLIS_REDMINE_API_KEY` name another).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis::store::{SqliteStore, Store};

const LEASE_NAMESPACE: &str = "trellis-system";
const SERVICE_ACCOUNT: &str = "trellis-controller";

/// `kubectl ARGS` (with `stdin`), its stdout; panics with its stderr.
fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    try_kubectl(args, stdin).unwrap_or_else(|stderr| panic!("kubectl {}: {stderr}", args.join(" ")))
}

/// `kubectl ARGS` (with `stdin`): its stdout, or its stderr when it fails.
fn try_kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on the PATH");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// deploy/ applied once per run; the path of a kubeconfig that acts as its
/// ServiceAccount.
fn service_account_kubeconfig() -> &'static Path {
    static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
    KUBECONFIG.get_or_init(|| {
        std::env::var("KUBECONFIG").expect("KUBECONFIG names the cluster's admin kubeconfig");
        kubectl(&["apply", "-k", "deploy/"], None);
        kubectl(
            &[
                "scale",
                "deployment/trellis-controller",
                "-n",
                LEASE_NAMESPACE,
                "--replicas=0",
            ],
            None,
        );
        kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/trackers.trellis.dev",
                "crd/structures.trellis.dev",
                "crd/synchronizers.trellis.dev",
                "crd/resyncs.trellis.dev",
            ],
            None,
        );
        // The token controller may take a moment to see a new ServiceAccount.
        let deadline = Instant::now() + Duration::from_secs(30);
        let token = loop {
            let out = Command::new("kubectl")
                .args(["create", "token", SERVICE_ACCOUNT, "-n", LEASE_NAMESPACE])
                .args(["--duration", "2h"])
                .output()
                .unwrap();
            if out.status.success() {
                break String::from_utf8(out.stdout).unwrap().trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "kubectl create token: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let admin: Value = serde_json::from_str(&kubectl(
            &["config", "view", "--minify", "--flatten", "-o", "json"],
            None,
        ))
        .unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "cluster", "user": SERVICE_ACCOUNT}}],
            "current-context": "sa",
        });
        let path = std::env::temp_dir().join(format!(
            "trellis-cluster-test-{}.kubeconfig",
            std::process::id()
        ));
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        path
    })
}

/// One test's namespace, directory (tracker files, store, logs) and Lease.
struct Test {
    namespace: String,
    dir: tempfile::TempDir,
}

/// A `trellis controller` child process; killed however the test ends.
struct Controller {
    child: Child,
    log: PathBuf,
    listen: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn passes(&self) -> usize {
        self.log().matches("incremental pass").count()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Test {
    fn new(name: &str) -> Test {
        service_account_kubeconfig();
        let namespace = format!("trellis-{name}-{}", std::process::id());
        kubectl(&["create", "namespace", &namespace], None);
        Test {
            namespace,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the controller as deploy/'s ServiceAccount, watching this
    /// test's namespace, with `identity` in the Lease.
    fn controller(&self, identity: &str) -> Controller {
        self.controller_with(identity, &[])
    }

    /// The controller, with more arguments.
    fn controller_with(&self, identity: &str, more: &[&str]) -> Controller {
        self.controller_in(identity, more, &[])
    }

    /// The controller, with more arguments and environment.
    fn controller_in(&self, identity: &str, more: &[&str], env: &[(&str, &str)]) -> Controller {
        let listen = free_address();
        let log = self.path(&format!("{identity}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["controller", "--namespace", &self.namespace])
            .args(["--lease-namespace", LEASE_NAMESPACE])
            .args(["--lease-name", &self.namespace, "--identity", identity])
            .args(["--listen", &listen, "--log-format", "text"])
            .arg("--local-trackers")
            .arg(self.dir.path())
            .arg("--state")
            .arg(self.path("state.db"))
            .args(more)
            .envs(env.iter().copied())
            .env("KUBECONFIG", service_account_kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Controller { child, log, listen }
    }

    /// `kubectl apply` of YAML or JSON in this namespace, as its user would.
    fn apply(&self, manifest: &str) {
        kubectl(&["apply", "-n", &self.namespace, "-f", "-"], Some(manifest));
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", &self.namespace]);
        kubectl(&all, None)
    }

    /// `kubectl patch KIND NAME --type merge -p PATCH`, as its user would.
    fn patch(&self, kind: &str, name: &str, patch: Value) {
        self.kubectl(&[
            "patch",
            kind,
            name,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// The object, or `None` when it does not exist.
    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let out = Command::new("kubectl")
            .args(["get", kind, name, "-n", &self.namespace, "-o", "json"])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn status(&self, kind: &str, name: &str) -> Value {
        self.get(kind, name)
            .map(|o| o["status"].clone())
            .unwrap_or(Value::Null)
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open_read_only(&self.path("state.db")).unwrap()
    }

    fn id(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    /// The quickstart's objects in this namespace, its tracker file here.
    fn quickstart(&self) {
        let issues = self.path("issues.yaml");
        std::fs::copy("examples/quickstart/issues.yaml", &issues).unwrap();
        let manifest = std::fs::read_to_string("examples/quickstart/trellis.yaml")
            .unwrap()
            .replace(
                "    path: issues.yaml",
                &format!("    path: {}", issues.display()),
            );
        self.apply(&manifest);
    }

    /// The parent row of `key`'s row in the quickstart's roadmap, as stored.
    fn parent_of(&self, key: &str) -> Option<String> {
        let forest = self.store().structure(&self.id("roadmap")).unwrap().forest;
        let row = forest.find_issue(key)?;
        forest
            .parent(row)
            .and_then(|p| forest.row(p))
            .map(|r| r.item.to_string())
    }

    /// Finishes PLAT-2 in the quickstart's tracker file and waits for
    /// platform-epics to hold the destructive plan that removes its rows;
    /// returns the plan's hash.
    fn hold_plat_2_removal(&self, controller: &Controller) -> String {
        finish_plat_2(&self.path("issues.yaml"));
        let held = within(
            Duration::from_secs(60),
            "platform-epics holds the destructive plan",
            controller,
            || {
                let status = self.status("synchronizer", "platform-epics");
                (status["phase"] == "AwaitingApproval").then(|| status["heldPlan"].clone())
            },
        );
        held["hash"].as_str().unwrap().to_owned()
    }

    /// Whether the quickstart's roadmap has a row of `key`, as stored.
    fn in_roadmap(&self, key: &str) -> bool {
        let stored = self.store().structure(&self.id("roadmap")).unwrap();
        stored.forest.find_issue(key).is_some()
    }

    /// Waits for the quickstart's first passes to lay out the roadmap.
    fn wait_for_roadmap(&self, controller: &Controller) {
        within(
            Duration::from_secs(90),
            "the first passes lay out the roadmap",
            controller,
            || (self.parent_of("PLAT-11").as_deref() == Some("PLAT-1")).then_some(()),
        );
    }

    /// Deletes the namespace while the controller still runs, so that its
    /// finalizers are let go.
    fn finish(self, controller: Controller) {
        kubectl(
            &["delete", "namespace", &self.namespace, "--timeout=90s"],
            None,
        );
        drop(controller);
    }
}

/// An address on this machine no one listens on.
fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Polls `check` every 500 ms until it gives a value, for at most `limit`.
fn within<T>(
    limit: Duration,
    what: &str,
    controller: &Controller,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}; the controller's log:\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn ready(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// Sets PLAT-2 Done in the quickstart's issues file (as a person would,
/// moving `updated`): `platform-epics` would remove its row and five more.
fn finish_plat_2(issues: &Path) {
    // By PLAT-2's own lines: the file may have been written back by an
    // export, in Trellis's own layout.
    let text = std::fs::read_to_string(issues).unwrap();
    let start = text.find("key: PLAT-2\n").unwrap();
    let end = text[start + 4..]
        .find("- key:")
        .map_or(text.len(), |i| start + 4 + i);
    let block: String = text[start..end]
        .split_inclusive('\n')
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            if line.trim_start().starts_with("status:") {
                format!("{indent}status: Done\n")
            } else if line.trim_start().starts_with("updated:") {
                format!("{indent}updated: {}\n", jiff::Timestamp::now())
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(block.contains("status: Done\n"), "{block}");
    std::fs::write(issues, format!("{}{block}{}", &text[..start], &text[end..])).unwrap();
}

fn event_reasons(test: &Test) -> Vec<String> {
    let events: Value =
        serde_json::from_str(&test.kubectl(&["get", "events", "-o", "json"])).unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

fn assert_no_forbidden(controller: &Controller) {
    let log = controller.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "deploy/'s ServiceAccount was refused something:\n{log}"
    );
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn the_quickstart_reconciles_and_every_status_follows_its_runs() {
    let test = Test::new("quickstart");
    let controller = test.controller("replica-a");
    test.quickstart();

    for name in ["platform-epics", "mobile-epics", "children"] {
        within(
            Duration::from_secs(90),
            &format!("{name} runs"),
            &controller,
            || {
                let status = test.status("synchronizer", name);
                let ready = ready(&status)?;
                (status["phase"] == "Running"
                    && ready["status"] == "True"
                    && ready["observedGeneration"] == 1
                    && status["lastSync"].is_string())
                .then_some(())
            },
        );
    }
    let tracker = within(
        Duration::from_secs(30),
        "the tracker connects",
        &controller,
        || {
            let status = test.status("tracker", "quickstart-issues");
            (status["phase"] == "Connected").then_some(status)
        },
    );
    assert!(tracker["identity"].is_string(), "{tracker}");

    let roadmap = test.id("roadmap");
    let stored = || {
        let s = test.store().structure(&roadmap).unwrap();
        (s.forest.walk().len() as i64, s.version as i64)
    };
    let shown = || {
        let status = test.status("structure", "roadmap");
        Some((status["rows"].as_i64()?, status["version"].as_i64()?))
    };
    // All 37 rows: synchronizers of one structure take turns, and a pass
    // still shaping it would change the base (and hash) of the plan below.
    within(
        Duration::from_secs(30),
        "the Structure's status shows the store's 37 rows and version",
        &controller,
        || (shown() == Some(stored()) && stored().0 == 37).then_some(()),
    );

    // The overview a user asks for.
    let overview = kubectl(&["get", "synchronizers", "-A"], None);
    let header = overview.lines().next().unwrap();
    for column in [
        "STRUCTURE",
        "TYPE",
        "ENABLED",
        "STATUS",
        "LAST SYNC",
        "ERRORS",
    ] {
        assert!(header.contains(column), "{overview}");
    }
    let ours: Vec<&str> = overview
        .lines()
        .filter(|l| l.starts_with(&test.namespace))
        .collect();
    assert_eq!(ours.len(), 3, "{overview}");
    for line in ours {
        assert!(
            line.contains("Running") && line.contains("roadmap"),
            "{overview}"
        );
    }

    // A destructive change waits for approval, then runs; the Structure's
    // status follows within seconds.
    let hash = test.hold_plat_2_removal(&controller);
    assert!(test.in_roadmap("PLAT-12"));
    let reasons = event_reasons(&test);
    assert!(
        reasons.iter().any(|r| r == "AwaitingApproval"),
        "{reasons:?}"
    );
    test.patch(
        "synchronizer",
        "platform-epics",
        json!({"spec": {"approvedPlan": hash}}),
    );
    within(
        Duration::from_secs(60),
        "the approved plan runs and the Structure's status follows",
        &controller,
        || {
            let status = test.status("synchronizer", "platform-epics");
            let gone = !test.in_roadmap("PLAT-2");
            (status["phase"] == "Running"
                && status.get("heldPlan").is_none()
                && gone
                && shown() == Some(stored()))
            .then_some(())
        },
    );

    let metrics = reqwest::blocking_get(&format!("http://{}/metrics", controller.listen));
    assert!(
        metrics.contains("trellis_reconciles_total{kind=\"Synchronizer\"}"),
        "{metrics}"
    );
    // Nothing failed: the error counter has no series yet.
    assert!(
        !metrics.contains("trellis_reconcile_errors_total{"),
        "{metrics}"
    );
    // Every row added and the six the approved plan removed.
    let rows = stored().0 as f64;
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("trellis_sync_operations") && l.contains("target=\"structure\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(
        counted >= rows + 6.0,
        "{counted} operations for {rows} rows: {metrics}"
    );
    assert_no_forbidden(&controller);
    test.finish(controller);
}

/// reqwest without a runtime of our own: the tests are plain threads.
mod reqwest {
    use serde_json::Value;

    fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    }

    pub fn blocking_get(url: &str) -> String {
        block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }

    /// A JSON `POST` to Redmine with `key`; the answer's JSON (null if none).
    pub fn redmine_post(url: &str, key: &str, body: &Value) -> Value {
        block_on(async {
            let response = ::reqwest::Client::new()
                .post(url)
                .header("X-Redmine-API-Key", key)
                .json(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "POST {url}: {status} {text}");
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
    }
}

/// The username the admin kubeconfig acts as (what the admission policy
/// wants in `trellis.dev/requested-by`).
fn admin_username() -> String {
    kubectl(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    )
}

const SMALL: &str = "issues:\n- {key: A-1, summary: Epic, type: Epic, status: Open}\n- {key: A-2, summary: Story, type: Story, status: Open, parent: A-1}\n";

fn small(test: &Test, structure_extra: &str) -> PathBuf {
    let issues = test.path("issues.yaml");
    std::fs::write(&issues, SMALL).unwrap();
    test.apply(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: local}}\nspec: {{type: local, local: {{path: {}}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {{name: plan}}\nspec: {{trackerRef: {{name: local}}, rows: [{{issue: A-1}}, {{issue: A-2}}]{structure_extra}}}\n",
        issues.display()
    ));
    issues
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn a_destructive_resync_runs_only_with_its_hash_and_then_enables_its_synchronizer() {
    let test = Test::new("resync");
    let controller = test.controller("replica-a");
    let issues = small(&test, "");
    test.apply(
        "apiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {name: children}\nspec: {structureRef: {name: plan}, type: subtasks, enabled: false}\n",
    );
    // From the command line first: it waits for the plan, shows it, and
    // says how to approve exactly that hash.
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["resync", "children", "--direction", "from", "--cluster"])
        .args(["-n", &test.namespace, "--timeout", "60"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let hash = stdout
        .strip_prefix("Plan ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("the plan is shown: {stdout}"));
    assert!(
        stderr.contains("kubectl patch resync children-from-")
            && stderr.contains(&format!(r#"{{"approvedPlan":"{hash}"}}"#)),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("requested by {}", admin_username())));
    test.kubectl(&["delete", "resyncs", "--all"]);
    test.apply(
        &format!("apiVersion: trellis.dev/v1alpha1\nkind: Resync\nmetadata: {{name: export, labels: {{trellis.dev/structure: plan}}, annotations: {{trellis.dev/requested-by: {}}}}}\nspec: {{synchronizerRef: {{name: children}}, direction: from, enableAfter: true, approvedPlan: 0123456789abcdef}}\n", admin_username()),
    );
    let status = within(
        Duration::from_secs(60),
        "the Resync waits for approval",
        &controller,
        || {
            let status = test.status("resync", "export");
            (status["phase"] == "AwaitingApproval").then_some(status)
        },
    );
    let hash = status["plan"]["hash"].as_str().unwrap().to_owned();
    let message = ready(&status).unwrap()["message"].as_str().unwrap();
    assert!(
        message.contains("0123456789abcdef is not the current plan") && message.contains(&hash),
        "{message}"
    );
    assert!(
        std::fs::read_to_string(&issues)
            .unwrap()
            .contains("parent: A-1")
    );
    assert_eq!(test.status("synchronizer", "children")["phase"], "Stopped");

    test.patch("resync", "export", json!({"spec": {"approvedPlan": hash}}));
    within(
        Duration::from_secs(60),
        "the approved Resync succeeds",
        &controller,
        || (test.status("resync", "export")["phase"] == "Succeeded").then_some(()),
    );
    assert!(
        !std::fs::read_to_string(&issues)
            .unwrap()
            .contains("parent: A-1")
    );
    within(
        Duration::from_secs(60),
        "enableAfter enables the synchronizer",
        &controller,
        || {
            let sync = test.get("synchronizer", "children")?;
            (sync["spec"]["enabled"] == true && sync["status"]["phase"] == "Running").then_some(())
        },
    );
    let reasons = event_reasons(&test);
    for reason in ["AwaitingApproval", "ResyncStarted", "ResyncSucceeded"] {
        assert!(reasons.iter().any(|r| r == reason), "{reasons:?}");
    }
    assert_no_forbidden(&controller);
    test.finish(controller);
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn disabled_and_deleted_synchronizers_stop_and_structures_follow_their_deletion_policy() {
    let test = Test::new("delete");
    let controller = test.controller("replica-a");
    small(&test, ", deletionPolicy: Delete");
    test.apply(
        "apiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {name: kept}\nspec: {trackerRef: {name: local}, rows: [{issue: A-1}]}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {name: children}\nspec: {structureRef: {name: plan}, type: subtasks}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {name: kept-children}\nspec: {structureRef: {name: kept}, type: subtasks}\n",
    );
    // Both first passes made: the two structures share one issues file,
    // so kept-children's waits its turn behind children's.
    for name in ["children", "kept-children"] {
        within(
            Duration::from_secs(60),
            &format!("{name} runs"),
            &controller,
            || (test.status("synchronizer", name)["phase"] == "Running").then_some(()),
        );
    }
    test.patch(
        "synchronizer",
        "children",
        json!({"spec":{"enabled":false}}),
    );
    within(
        Duration::from_secs(30),
        "enabled: false stops it",
        &controller,
        || (test.status("synchronizer", "children")["phase"] == "Stopped").then_some(()),
    );
    let passes = controller.passes();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        controller.passes(),
        passes,
        "a stopped synchronizer makes no passes"
    );

    test.kubectl(&["delete", "synchronizer", "children", "--timeout=60s"]);
    assert!(test.get("synchronizer", "children").is_none());

    let rows = |id: &str| test.store().structure(id).unwrap().forest.len();
    within(
        Duration::from_secs(30),
        "both structures have their rows",
        &controller,
        || (rows(&test.id("plan")) == 2 && rows(&test.id("kept")) == 2).then_some(()),
    );
    test.kubectl(&["delete", "structure", "plan", "kept", "--timeout=60s"]);
    assert_eq!(
        rows(&test.id("plan")),
        0,
        "deletionPolicy: Delete removes the content"
    );
    assert_eq!(
        rows(&test.id("kept")),
        2,
        "deletionPolicy: Keep (the default) keeps it"
    );
    assert_no_forbidden(&controller);
    test.finish(controller);
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names and the suite's Redmine"]
fn a_redmine_key_is_read_only_from_a_labelled_secret() {
    let url =
        std::env::var("TRELLIS_REDMINE_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let key = std::env::var("TRELLIS_REDMINE_API_KEY")
        .unwrap_or_else(|_| "0123456789abcdef0123456789abcdef01234567".into());
    let test = Test::new("redmine");
    let controller = test.controller("replica-a");
    test.kubectl(&[
        "create",
        "secret",
        "generic",
        "redmine-api-key",
        &format!("--from-literal=apiKey={key}"),
    ]);
    test.apply(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: redmine}}\nspec: {{type: redmine, url: '{url}', credentials: {{secretRef: {{name: redmine-api-key}}}}}}\n"
    ));
    let refused = within(
        Duration::from_secs(60),
        "an unlabelled Secret is refused",
        &controller,
        || {
            let status = test.status("tracker", "redmine");
            let message = ready(&status)?["message"].as_str()?.to_owned();
            message
                .contains("trellis.dev/credentials=true")
                .then_some(message)
        },
    );
    assert!(!refused.contains(&key), "the key never shows: {refused}");
    let events = test.kubectl(&["get", "events", "-o", "json"]);
    assert!(
        events.contains("trellis.dev/credentials=true"),
        "an event says so"
    );
    assert!(!events.contains(&key));

    test.kubectl(&[
        "label",
        "secret",
        "redmine-api-key",
        "trellis.dev/credentials=true",
    ]);
    // The Tracker retries on its own; a touch makes it look now.
    test.kubectl(&[
        "annotate",
        "tracker",
        "redmine",
        "trellis.dev/touched=1",
        "--overwrite",
    ]);
    let status = within(
        Duration::from_secs(90),
        "the labelled Secret's key connects",
        &controller,
        || {
            let status = test.status("tracker", "redmine");
            (status["phase"] == "Connected").then_some(status)
        },
    );
    assert_eq!(status["identity"], "admin", "{status}");
    assert!(
        !controller.log().contains(&key),
        "the key never shows in the log"
    );
    assert_no_forbidden(&controller);
    test.finish(controller);
}

/// `kubectl ARGS` in the test's namespace as `user` (impersonated by the
/// admin), with `stdin`: its stdout, or its stderr when refused.
fn kubectl_as(
    test: &Test,
    user: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    let mut all = args.to_vec();
    all.extend(["-n", &test.namespace, "--as", user]);
    try_kubectl(&all, stdin)
}

fn resync_manifest(name: &str, structure: &str, requested_by: &str, run_as: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Resync\nmetadata: {{name: {name}, labels: {{trellis.dev/structure: {structure}}}, annotations: {{trellis.dev/requested-by: {requested_by}}}}}\nspec: {{synchronizerRef: {{name: issues}}, direction: into{run_as}}}\n"
    )
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names and the suite's Redmine"]
fn only_control_runs_a_resync_and_it_runs_as_the_person_who_asked() {
    let url =
        std::env::var("TRELLIS_REDMINE_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let admin_key = std::env::var("TRELLIS_REDMINE_API_KEY")
        .unwrap_or_else(|_| "0123456789abcdef0123456789abcdef01234567".into());
    let test = Test::new("permissions");
    let controller = test.controller("replica-a");

    // A project with two public issues and a private one, and a reporter
    // who sees only the public ones.
    let pid = std::process::id();
    let project = format!("perm-{pid}");
    let post = |path: &str, body: Value| {
        reqwest::redmine_post(&format!("{url}/{path}"), &admin_key, &body)
    };
    post(
        "projects.json",
        json!({"project": {"name": project, "identifier": project}}),
    );
    for (subject, private) in [
        ("Public one", false),
        ("Public two", false),
        ("Private", true),
    ] {
        post(
            "issues.json",
            json!({"issue": {"project_id": project, "tracker_id": 2, "subject": subject, "is_private": private}}),
        );
    }
    let login = format!("reader{pid}");
    let user = post(
        "users.json",
        json!({"user": {"login": login, "firstname": "Re", "lastname": "Ader", "mail": format!("{login}@example.net"), "password": "reader-pass-1"}}),
    );
    let reporter_role = 5;
    post(
        &format!("projects/{project}/memberships.json"),
        json!({"membership": {"user_id": user["user"]["id"], "role_ids": [reporter_role]}}),
    );
    let reader_key = format!("{:0>40x}", u64::from(pid) * 7919);
    let script = Command::new("bash")
        .args(["scripts/redmine.sh", "key", &login, &reader_key])
        .status()
        .unwrap();
    assert!(script.success(), "scripts/redmine.sh key");

    for (secret, key) in [("redmine-api-key", &admin_key), ("reader-key", &reader_key)] {
        test.kubectl(&[
            "create",
            "secret",
            "generic",
            secret,
            &format!("--from-literal=apiKey={key}"),
        ]);
        test.kubectl(&["label", "secret", secret, "trellis.dev/credentials=true"]);
    }
    test.apply(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: redmine}}\nspec: {{type: redmine, url: '{url}', credentials: {{secretRef: {{name: redmine-api-key}}}}, redmine: {{project: {project}}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {{name: plan}}\nspec: {{trackerRef: {{name: redmine}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {{name: other}}\nspec: {{trackerRef: {{name: redmine}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {{name: issues}}\nspec: {{structureRef: {{name: plan}}, type: filter, enabled: false, filter: {{query: 'status_id=*'}}}}\n"
    ));
    // vera may view; rita may create Resyncs but control nothing; sam may
    // control structure plan alone, and read his own key's Secret.
    test.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: resync-creator}\nrules:\n- {apiGroups: [trellis.dev], resources: [resyncs], verbs: [create, get]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: plan-control}\nrules:\n- {apiGroups: [trellis.dev], resources: [resyncs, synchronizers], verbs: [create, get, list, patch]}\n- {apiGroups: [trellis.dev], resources: [structures], resourceNames: [plan], verbs: [control]}\n- {apiGroups: [''], resources: [secrets], resourceNames: [reader-key], verbs: [get]}\n",
    );
    test.kubectl(&[
        "create",
        "rolebinding",
        "vera",
        "--clusterrole=trellis-view",
        "--user=vera",
    ]);
    test.kubectl(&[
        "create",
        "rolebinding",
        "rita",
        "--role=resync-creator",
        "--user=rita",
    ]);
    test.kubectl(&[
        "create",
        "rolebinding",
        "sam",
        "--role=plan-control",
        "--user=sam",
    ]);

    let can_i = |user: &str, what: &str| {
        kubectl_as(&test, user, &["auth", "can-i", "control", what], None).is_ok()
    };
    assert!(can_i("sam", "structures/plan"));
    assert!(!can_i("sam", "structures/other"));
    assert!(!can_i("vera", "structures/plan"));

    let create = |user: &str, manifest: &str| {
        kubectl_as(&test, user, &["create", "-f", "-"], Some(manifest))
    };
    let refused = create("vera", &resync_manifest("by-vera", "plan", "vera", "")).unwrap_err();
    assert!(
        refused.contains("cannot create resource \"resyncs\""),
        "{refused}"
    );
    let refused = create("rita", &resync_manifest("by-rita", "plan", "rita", "")).unwrap_err();
    assert!(
        refused.contains("needs the verb control on structures/plan")
            && refused.contains("rita lacks it"),
        "{refused}"
    );
    let refused = create("sam", &resync_manifest("on-other", "other", "sam", "")).unwrap_err();
    assert!(refused.contains("control on structures/other"), "{refused}");
    let refused = create("sam", &resync_manifest("as-vera", "plan", "vera", "")).unwrap_err();
    assert!(
        refused.contains("must be annotated trellis.dev/requested-by: sam"),
        "{refused}"
    );
    let admins = ", runAs: {secretRef: {name: redmine-api-key}}";
    let refused = create("sam", &resync_manifest("as-admin", "plan", "sam", admins)).unwrap_err();
    assert!(
        refused.contains("runs as Secret redmine-api-key, which sam may not get"),
        "{refused}"
    );
    let move_to_other = r#"{"spec":{"structureRef":{"name":"other"}}}"#;
    let patch = [
        "patch",
        "synchronizer",
        "issues",
        "--type",
        "merge",
        "-p",
        move_to_other,
    ];
    let refused = kubectl_as(&test, "vera", &patch, None).unwrap_err();
    assert!(refused.contains("cannot patch"), "RBAC first: {refused}");
    let refused = kubectl_as(&test, "sam", &patch, None).unwrap_err();
    assert!(
        refused.contains("changing Synchronizer issues needs the verb control on structures/other"),
        "{refused}"
    );
    let synchronizer = test.get("synchronizer", "issues").unwrap();
    assert_eq!(synchronizer["spec"]["structureRef"]["name"], "plan");
    assert!(
        test.kubectl(&["get", "resyncs", "-o", "name"])
            .trim()
            .is_empty(),
        "nothing refused was created"
    );

    // sam asks, with his own key: the import holds what he can see.
    let admin: Value = serde_json::from_str(&kubectl(
        &["config", "view", "--minify", "--flatten", "-o", "json"],
        None,
    ))
    .unwrap();
    let mut as_sam = admin.clone();
    as_sam["users"][0]["user"]["as"] = json!("sam");
    let kubeconfig = test.path("sam.kubeconfig");
    std::fs::write(&kubeconfig, as_sam.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["resync", "issues", "--direction", "into", "--cluster"])
        .args([
            "-n",
            &test.namespace,
            "--run-as",
            "reader-key",
            "--timeout",
            "120",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{stdout}{stderr}\n{}",
        controller.log()
    );
    assert!(stderr.contains("requested by sam"), "{stderr}");
    assert!(
        stdout.contains("2 to add") && stdout.contains("succeeded"),
        "{stdout}"
    );

    let structure = test.store().structure(&test.id("plan")).unwrap();
    assert_eq!(structure.forest.len(), 2, "only the issues the reader sees");
    let history = test.store().journal_since(&test.id("plan"), 0).unwrap();
    assert!(!history.is_empty());
    assert!(
        history.iter().all(|(entry, _)| entry.author == "sam"),
        "the journal names who asked: {:?}",
        history.iter().map(|(e, _)| &e.author).collect::<Vec<_>>()
    );
    let resync = test.kubectl(&["get", "resyncs", "-o", "json"]);
    let resyncs: Value = serde_json::from_str(&resync).unwrap();
    assert_eq!(
        resyncs["items"][0]["status"]["requestedBy"], "sam",
        "{resync}"
    );
    for key in [&admin_key, &reader_key] {
        assert!(!controller.log().contains(key.as_str()) && !resync.contains(key.as_str()));
    }
    assert_no_forbidden(&controller);
    test.finish(controller);
}

/// The Lease's holder, `""` once released.
fn holder(test: &Test) -> Option<String> {
    let out = Command::new("kubectl")
        .args([
            "get",
            "lease",
            &test.namespace,
            "-n",
            LEASE_NAMESPACE,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let lease: Value = serde_json::from_slice(&out.stdout).ok()?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Runs of one structure in the store, as (started, finished), in order.
fn runs(test: &Test) -> Vec<(String, String, String)> {
    let db = rusqlite::Connection::open(test.path("state.db")).unwrap();
    let mut statement = db
        .prepare("SELECT structure, started, finished FROM jobs ORDER BY structure, started")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn of_two_replicas_only_the_leader_runs_and_the_other_takes_over_after_kill_9() {
    let test = Test::new("failover");
    let a = test.controller("replica-a");
    within(
        Duration::from_secs(30),
        "replica-a holds the Lease",
        &a,
        || (holder(&test).as_deref() == Some("replica-a")).then_some(()),
    );
    let b = test.controller("replica-b");
    test.quickstart();
    within(
        Duration::from_secs(90),
        "the leader runs the synchronizers",
        &a,
        || (test.status("synchronizer", "children")["phase"] == "Running").then_some(()),
    );
    std::thread::sleep(Duration::from_secs(10));
    assert!(a.passes() > 0);
    assert_eq!(
        b.passes(),
        0,
        "the other replica runs nothing:\n{}",
        b.log()
    );

    a.signal("-KILL");
    let killed = Instant::now();
    within(
        Duration::from_secs(40),
        "replica-b takes the Lease",
        &b,
        || (holder(&test).as_deref() == Some("replica-b")).then_some(()),
    );
    let leading = killed.elapsed();
    within(Duration::from_secs(40), "replica-b runs a pass", &b, || {
        (b.passes() > 0).then_some(())
    });
    let running = killed.elapsed();
    eprintln!(
        "failover after kill -9: Lease taken in {:.1} s, first pass in {:.1} s",
        leading.as_secs_f64(),
        running.as_secs_f64()
    );
    assert!(
        leading <= Duration::from_secs(25),
        "within the 15 s lease and a renewal"
    );

    // No structure was ever run by both: its runs do not overlap.
    let runs = runs(&test);
    assert!(!runs.is_empty());
    for pair in runs.windows(2) {
        let ((s1, _, finished), (s2, started, _)) = (&pair[0], &pair[1]);
        if s1 == s2 {
            let finished: jiff::Timestamp = finished.parse().unwrap();
            let started: jiff::Timestamp = started.parse().unwrap();
            assert!(started >= finished, "runs of {s1} overlap: {pair:?}");
        }
    }
    assert_no_forbidden(&b);
    drop(a);
    test.finish(b);
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn sigterm_lets_the_in_flight_run_finish_and_releases_the_lease() {
    let test = Test::new("sigterm");
    let controller = test.controller("replica-a");
    // Big enough that the first pass is still running when SIGTERM comes.
    let mut text = String::from("issues:\n");
    for i in 1..=20_000 {
        text.push_str(&format!(
            "- {{key: B-{i}, summary: Issue {i}, type: Story, status: Open}}\n"
        ));
    }
    let issues = test.path("issues.yaml");
    std::fs::write(&issues, text).unwrap();
    test.apply(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: local}}\nspec: {{type: local, local: {{path: {}}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {{name: plan}}\nspec: {{trackerRef: {{name: local}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {{name: stories}}\nspec: {{structureRef: {{name: plan}}, type: filter, filter: {{query: type = Story}}}}\n",
        issues.display()
    ));
    within(
        Duration::from_secs(60),
        "the first pass starts",
        &controller,
        || (test.status("synchronizer", "stories")["phase"] == "Handshake").then_some(()),
    );
    controller.signal("-TERM");
    let mut controller = controller;
    let exit = controller.child.wait().unwrap();
    assert!(
        exit.success(),
        "exits 0 after SIGTERM:\n{}",
        controller.log()
    );
    let state = test.store().sync_state(&test.id("stories")).unwrap();
    assert!(
        state.last_pass.is_some(),
        "the in-flight pass finished:\n{}",
        controller.log()
    );
    assert_eq!(
        test.store()
            .structure(&test.id("plan"))
            .unwrap()
            .forest
            .len(),
        20_000
    );
    assert_eq!(holder(&test).as_deref(), Some(""), "the Lease is released");
    assert_no_forbidden(&controller);
    // A new controller lets the namespace's finalizers go.
    let next = test.controller("replica-b");
    test.finish(next);
}

/// `curl -X POST` with a bearer token: the HTTP status.
fn post_with_token(url: &str, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {token}"), url])
        .output()
        .expect("curl on the PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn an_edited_issues_file_and_a_webhook_make_passes_at_once_and_the_tracker_shows_the_event() {
    let test = Test::new("hooks");
    let hooks = free_address();
    let controller = test.controller_with("replica-a", &["--webhook-listen", &hooks]);
    let secret = "whsec-cluster-0123456789";
    test.kubectl(&[
        "create",
        "secret",
        "generic",
        "hooks",
        &format!("--from-literal=webhookSecret={secret}"),
    ]);
    test.kubectl(&["label", "secret", "hooks", "trellis.dev/credentials=true"]);
    let issues = test.path("issues.yaml");
    std::fs::copy("examples/quickstart/issues.yaml", &issues).unwrap();
    // Hourly passes: whatever runs during the test was asked for.
    let manifest = std::fs::read_to_string("examples/quickstart/trellis.yaml")
        .unwrap()
        .replace(
            "    path: issues.yaml",
            &format!(
                "    path: {}\n  webhook:\n    secret:\n      secretRef: {{name: hooks, key: webhookSecret}}",
                issues.display()
            ),
        )
        .replace(
            "  structureRef: {name: roadmap}\n",
            "  structureRef: {name: roadmap}\n  schedule: {interval: 1h}\n",
        );
    test.apply(&manifest);
    for name in ["platform-epics", "mobile-epics", "children"] {
        within(
            Duration::from_secs(90),
            &format!("{name} runs"),
            &controller,
            || (test.status("synchronizer", name)["phase"] == "Running").then_some(()),
        );
    }
    test.wait_for_roadmap(&controller);

    // A person edits the tracker's file: the watch, not the hour, brings it
    // (a new Tracker's file is watched within 2 s of its declaration).
    within(
        Duration::from_secs(10),
        "the issues file is watched",
        &controller,
        || {
            let log = controller.log();
            (log.contains("watching for edits") && log.contains(&*issues.to_string_lossy()))
                .then_some(())
        },
    );
    let text = std::fs::read_to_string(&issues).unwrap();
    let edited = common::with_parent(&text, "PLAT-11", Some("PLAT-2"));
    let edited_at = Instant::now();
    std::fs::write(&issues, edited).unwrap();
    within(
        Duration::from_secs(10),
        "the edit reaches the structure",
        &controller,
        || (test.parent_of("PLAT-11").as_deref() == Some("PLAT-2")).then_some(()),
    );
    eprintln!("issues file edit to structure: {:?}", edited_at.elapsed());

    // A webhook: a wrong token changes nothing; the right one passes now
    // and the Tracker's status shows the delivery.
    let url = format!(
        "http://{hooks}/hooks/synchronizers/{}/children",
        test.namespace
    );
    assert_eq!(post_with_token(&url, "wrong"), "401");
    let before = controller.passes();
    assert_eq!(post_with_token(&url, secret), "202");
    within(
        Duration::from_secs(10),
        "the delivery makes a pass",
        &controller,
        || (controller.passes() > before).then_some(()),
    );
    let event = within(
        Duration::from_secs(10),
        "the Tracker shows the last event",
        &controller,
        || {
            let status = test.status("tracker", "quickstart-issues");
            (status["lastEvent"]["event"] == "trigger").then(|| status["lastEvent"].clone())
        },
    );
    assert_eq!(event["synchronizers"][0], test.id("children"), "{event}");
    let metrics = Command::new("curl")
        .args(["-s", &format!("http://{}/metrics", controller.listen)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("trellis_webhook_events_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trellis_webhook_events_total{outcome=\"unauthorized\"} 1"),
        "{metrics}"
    );
    assert!(
        !controller.log().contains(secret),
        "the secret is never logged"
    );
    assert_no_forbidden(&controller);
    test.finish(controller);
}

/// `curl` of the UI: the HTTP status and the body. `form` makes it a POST.
fn ui_request(url: &str, token: Option<&str>, form: &[(&str, &str)]) -> (String, String) {
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "\n%{http_code}", url]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    for (name, value) in form {
        command.args(["--data-urlencode", &format!("{name}={value}")]);
    }
    let out = command.output().expect("curl on the PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_owned(), body.to_owned())
}

/// A ServiceAccount of the test's namespace bound to `role` (none: no
/// binding), and a token for it.
fn person(test: &Test, name: &str, role: Option<&str>) -> String {
    test.kubectl(&["create", "serviceaccount", name]);
    if let Some(role) = role {
        let account = format!("{}:{name}", test.namespace);
        test.kubectl(&[
            "create",
            "rolebinding",
            name,
            &format!("--clusterrole={role}"),
            &format!("--serviceaccount={account}"),
        ]);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_kubectl(&["create", "token", name, "-n", &test.namespace], None) {
            Ok(token) => return token.trim().to_owned(),
            Err(e) => assert!(Instant::now() < deadline, "kubectl create token: {e}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn the_ui_signs_people_in_with_their_own_tokens_and_the_cluster_decides_what_they_see_and_do() {
    let test = Test::new("ui");
    let address = free_address();
    let controller = test.controller_with("replica-a", &["--ui-listen", &address]);
    test.quickstart();
    let roadmap = test.id("roadmap");
    test.wait_for_roadmap(&controller);
    let vera = person(&test, "vera", Some("trellis-view"));
    let ed = person(&test, "ed", Some("trellis-edit"));
    let carol = person(&test, "carol", Some("trellis-control"));
    let nobody = person(&test, "nobody", None);
    let url = |path: &str| format!("http://{address}{path}");
    let ns = &test.namespace;

    // Without a token: the sign-in page, nothing else.
    let (code, _) = ui_request(&url("/"), None, &[]);
    assert_eq!(code, "303");
    // vera sees the three synchronizers and the tree; nobody sees nothing.
    let (code, overview) = ui_request(&url("/"), Some(&vera), &[]);
    assert_eq!(code, "200", "{overview}");
    assert_eq!(
        overview.matches("<tr data-synchronizer").count(),
        3,
        "{overview}"
    );
    assert!(overview.contains(&format!("signed in as system:serviceaccount:{ns}:vera")));
    let (code, tree) = ui_request(&url(&format!("/structures/{roadmap}")), Some(&vera), &[]);
    assert_eq!(code, "200", "{tree}");
    assert!(tree.contains(r#"data-row="Platform/""#));
    let (_, empty) = ui_request(&url("/"), Some(&nobody), &[]);
    assert_eq!(empty.matches("<tr data-synchronizer").count(), 0);
    let (code, _) = ui_request(&url(&format!("/structures/{roadmap}")), Some(&nobody), &[]);
    assert_eq!(code, "403");
    let (code, _) = ui_request(&url("/"), Some("not-a-token"), &[]);
    assert_eq!(code, "303", "an unknown token is sent to sign in");

    // vera may not move a row (view); ed may (edit), and is its author.
    let csrf = {
        let at = overview.find(r#"name="csrf-token" content=""#).unwrap() + 27;
        overview[at..at + 48].to_owned()
    };
    let moving = [
        ("csrf", csrf.as_str()),
        ("key", "PLAT-15"),
        ("under", "PLAT-1"),
    ];
    let move_url = url(&format!("/structures/{roadmap}/move"));
    let (code, refused) = ui_request(&move_url, Some(&vera), &moving);
    assert_eq!(code, "403");
    assert!(
        refused.contains("may not edit structures/roadmap"),
        "{refused}"
    );
    assert_eq!(test.parent_of("PLAT-15").as_deref(), Some("PLAT-2"));
    let (code, body) = ui_request(&move_url, Some(&ed), &moving);
    assert_eq!(code, "303", "{body}");
    assert_eq!(test.parent_of("PLAT-15").as_deref(), Some("PLAT-1"));
    let journal = test.store().journal(&roadmap).unwrap();
    assert_eq!(
        journal.last().unwrap().author,
        format!("system:serviceaccount:{ns}:ed")
    );

    // The two-way children synchronizer carries the move to the tracker:
    // until then a plan made now would be stale at once.
    within(
        Duration::from_secs(30),
        "the move reaches the issues file",
        &controller,
        || {
            let text = std::fs::read_to_string(test.path("issues.yaml")).unwrap();
            let block = &text[text.find("key: PLAT-15\n")?..];
            let block = &block[..block[4..].find("- key:").map_or(block.len(), |i| i + 4)];
            block.contains("parent: PLAT-1\n").then_some(())
        },
    );

    // A destructive pass waits; ed may not approve it, carol may, with
    // her own token: the synchronizer carries her approval and runs it.
    let hash = test.hold_plat_2_removal(&controller);
    let (code, plans) = ui_request(&url("/plans"), Some(&carol), &[]);
    assert_eq!(code, "200");
    assert!(
        plans.contains(&format!("Synchronizer {ns}/platform-epics")),
        "{plans}"
    );
    assert!(plans.contains(&hash), "{plans}");
    let sync_id = test.id("platform-epics");
    let approving = [
        ("csrf", csrf.as_str()),
        ("holder", "synchronizer"),
        ("id", sync_id.as_str()),
        ("hash", hash.as_str()),
    ];
    let (code, refused) = ui_request(&url("/approve"), Some(&ed), &approving);
    assert_eq!(code, "403");
    assert!(refused.contains("may not control"), "{refused}");
    let (code, body) = ui_request(&url("/approve"), Some(&carol), &approving);
    assert_eq!(code, "303", "{body}");
    let spec = test.get("synchronizer", "platform-epics").unwrap()["spec"].clone();
    assert_eq!(spec["approvedPlan"], hash.as_str());
    within(
        Duration::from_secs(60),
        "the approved plan runs",
        &controller,
        || {
            let gone = !test.in_roadmap("PLAT-2");
            gone.then_some(())
        },
    );
    // Stopping a synchronizer is carol's too (control), made as her.
    let stop_url = url(&format!("/synchronizers/{ns}/mobile-epics/enabled"));
    let stopping = [("csrf", csrf.as_str()), ("enabled", "false")];
    let (code, _) = ui_request(&stop_url, Some(&ed), &stopping);
    assert_eq!(code, "403");
    assert_eq!(
        test.get("synchronizer", "mobile-epics").unwrap()["spec"]["enabled"],
        true
    );
    let (code, body) = ui_request(&stop_url, Some(&carol), &stopping);
    assert_eq!(code, "303", "{body}");
    within(
        Duration::from_secs(30),
        "mobile-epics stops",
        &controller,
        || (test.status("synchronizer", "mobile-epics")["phase"] == "Stopped").then_some(()),
    );
    assert_eq!(
        test.get("synchronizer", "mobile-epics").unwrap()["spec"]["enabled"],
        false
    );

    // No token is ever written to the log.
    let log = controller.log();
    for token in [&vera, &ed, &carol, &nobody] {
        assert!(!log.contains(token.as_str()), "a token is in the log");
    }
    test.finish(controller);
}

#[test]
#[ignore = "needs the cluster KUBECONFIG names"]
fn a_running_resync_shows_its_tracker_writes_as_they_are_made() {
    let test = Test::new("progress");
    // The run stops right after its tracker writes, before it records them.
    let controller = test.controller_in(
        "replica-a",
        &[],
        &[("TRELLIS_FAILPOINT", "tracker-written:pause")],
    );
    let issues = test.path("issues.yaml");
    std::fs::write(
        &issues,
        "issues:\n- {key: A-1, summary: Epic, type: Epic, status: Open}\n- {key: A-2, summary: Story, type: Story, status: Open}\n",
    )
    .unwrap();
    test.apply(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Tracker\nmetadata: {{name: local}}\nspec: {{type: local, local: {{path: {}}}}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Structure\nmetadata: {{name: plan}}\nspec: {{trackerRef: {{name: local}}, rows: [{{issue: A-1, rows: [{{issue: A-2}}]}}]}}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Synchronizer\nmetadata: {{name: issues}}\nspec: {{structureRef: {{name: plan}}, type: subtasks, enabled: false}}\n",
        issues.display()
    ));
    // An export: A-2's parent becomes A-1 in the tracker (one write), and
    // the declared rows come into the empty structure (two rows).
    let manifest = resync_manifest("export", "plan", &admin_username(), "")
        .replace("direction: into", "direction: from");
    test.apply(&manifest);
    let status = within(
        Duration::from_secs(60),
        "the running Resync shows its write",
        &controller,
        || {
            let status = test.status("resync", "export");
            (status["phase"] == "Running" && status["done"] == 1).then_some(status)
        },
    );
    // Its one tracker write is made; its two rows are not committed yet.
    assert_eq!(status["total"], 3, "{status}");
    assert!(
        std::fs::read_to_string(&issues)
            .unwrap()
            .contains("parent: A-1")
    );
    assert!(
        controller
            .log()
            .contains("failpoint tracker-written: paused")
    );
    // A new controller settles the paused run and lets the namespace go.
    drop(controller);
    let next = test.controller("replica-b");
    within(
        Duration::from_secs(60),
        "the next controller finishes the Resync",
        &next,
        || (test.status("resync", "export")["phase"] == "Succeeded").then_some(()),
    );
    test.finish(next);
}

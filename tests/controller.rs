//! The `trellis controller` binary, whole, against an API server that
//! lists and watches as a real one does (tests/kube/apiserver.rs): the
//! watches must sync, `/readyz` answer, and every kind reconcile through
//! the list → watch protocol — what the reconcile tests in
//! src/controller/tests.rs, which fill the watched stores by hand, cannot
//! see.

#[path = "kube/apiserver.rs"]
mod apiserver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::ApiServer;
use serde_json::{Value, json};
use trellis::spec::Catalog;
use trellis::store::{SqliteStore, Store};

const NS: &str = "trellis-bar";
const API: &str = "trellis.dev/v1alpha1";

/// The controller process, killed however the test ends; its log is kept
/// for the failure message.
struct Controller {
    child: Child,
    log: PathBuf,
    listen: String,
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quickstart in a folder of its own, with synchronizers that pass
/// every 5 s, as `kubectl apply` would put it on the server.
fn quickstart(dir: &Path, server: &ApiServer) {
    for file in ["issues.yaml", "trellis.yaml"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/quickstart")
                .join(file),
            dir.join(file),
        )
        .unwrap();
    }
    let catalog = Catalog::load(&[dir.join("trellis.yaml")]).unwrap();
    let object = |value: Value| {
        let mut value = value;
        value["metadata"]["namespace"] = json!(NS);
        value
    };
    for tracker in &catalog.trackers {
        let mut value = object(serde_json::to_value(&tracker.resource).unwrap());
        value["spec"]["local"]["path"] = json!(dir.join("issues.yaml"));
        server.put("trackers", value);
    }
    for structure in &catalog.structures {
        server.put(
            "structures",
            object(serde_json::to_value(&structure.resource).unwrap()),
        );
    }
    for sync in &catalog.synchronizers {
        let mut value = object(serde_json::to_value(&sync.resource).unwrap());
        value["spec"]["schedule"] = json!({"interval": "5s"});
        server.put("synchronizers", value);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, server: &ApiServer) -> Controller {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let log = dir.join("controller.log");
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["--state"])
        .arg(dir.join("state.db"))
        .args(["controller", "--log-format", "text", "--listen", &listen])
        .args([
            "--lease-namespace",
            "trellis-system",
            "--identity",
            "replica-a",
        ])
        .arg("--local-trackers")
        .arg(dir)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Controller { child, log, listen }
}

/// Polls `check` every 200 ms until it gives a value, for at most `limit`.
async fn within<T>(
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn readyz(controller: &Controller) -> Option<u16> {
    let answer = reqwest::get(format!("http://{}/readyz", controller.listen))
        .await
        .ok()?;
    Some(answer.status().as_u16())
}

fn phase(server: &ApiServer, plural: &str, name: &str) -> Option<String> {
    server.get(plural, NS, name)?["status"]["phase"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_gets_ready_and_reconciles_every_kind_through_list_and_watch() {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), &server);
    let controller = start(dir.path(), &server);

    let started = Instant::now();
    loop {
        if readyz(&controller).await == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/readyz never answered 200 (watches not synced); the controller's log:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for name in ["platform-epics", "mobile-epics", "children"] {
        within(Duration::from_secs(30), name, &controller, || {
            (phase(&server, "synchronizers", name).as_deref() == Some("Running")).then_some(())
        })
        .await;
        let status = server.get("synchronizers", NS, name).unwrap()["status"].clone();
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "True", "{name}: {status}");
        assert_eq!(ready["observedGeneration"], 1, "{name}: {status}");
        assert!(status["lastSync"].is_string(), "{name}: {status}");
    }
    within(
        Duration::from_secs(10),
        "the tracker connects",
        &controller,
        || {
            (phase(&server, "trackers", "quickstart-issues").as_deref() == Some("Connected"))
                .then_some(())
        },
    )
    .await;

    // The Structure's status follows the store within seconds of a run.
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let id = format!("{NS}/roadmap");
    let stored = |store: &SqliteStore| {
        let s = store.structure(&id).unwrap();
        (s.forest.walk().len() as i64, s.version as i64)
    };
    let shown = |server: &ApiServer| {
        let status = server.get("structures", NS, "roadmap")?["status"].clone();
        Some((status["rows"].as_i64()?, status["version"].as_i64()?))
    };
    within(
        Duration::from_secs(10),
        "the Structure's status shows its rows and version",
        &controller,
        || {
            let (rows, version) = stored(&store);
            (version > 0 && shown(&server) == Some((rows, version))).then_some(())
        },
    )
    .await;

    // A new epic in the tracker: the next pass adds it, and the
    // Structure's status follows without waiting for its refresh (60 s).
    let issues = dir.path().join("issues.yaml");
    let mut text = std::fs::read_to_string(&issues).unwrap();
    text = text.replacen(
        "issues:\n",
        &format!(
            "issues:\n  - {{key: PLAT-99, summary: A new epic, type: Epic, status: Open, updated: '{}'}}\n",
            jiff::Timestamp::now()
        ),
        1,
    );
    std::fs::write(&issues, text).unwrap();
    // Passes of one structure take turns (5 s apart when busy), so the
    // filter's next pass may come after the other two.
    within(
        Duration::from_secs(45),
        "the new epic shows in the store and the Structure's status",
        &controller,
        || {
            let s = store.structure(&id).unwrap();
            (s.forest.find_issue("PLAT-99").is_some() && shown(&server) == Some(stored(&store)))
                .then_some(())
        },
    )
    .await;

    // An object created after the watches started arrives by the watch.
    server.put(
        "resyncs",
        json!({
            "apiVersion": API, "kind": "Resync",
            "metadata": {"name": "import-children", "namespace": NS},
            "spec": {"synchronizerRef": {"name": "children"}, "direction": "into"}
        }),
    );
    within(
        Duration::from_secs(20),
        "a Resync created later runs",
        &controller,
        || {
            (phase(&server, "resyncs", "import-children").as_deref() == Some("Succeeded"))
                .then_some(())
        },
    )
    .await;
    let events: Vec<String> = server
        .all("events")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        events.iter().any(|r| r == "ResyncSucceeded"),
        "events: {events:?}"
    );

    // The Lease names this replica.
    let lease = server
        .get("leases", "trellis-system", "trellis-controller")
        .expect("a Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_watches_list_again_and_a_deleted_synchronizer_is_let_go() {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), &server);
    let controller = start(dir.path(), &server);
    // Every synchronizer has made its first pass and the structure holds
    // all 37 rows (they take turns on it): PLAT-2 must be in it before it
    // is done, and a later pass must not change the held plan's base.
    within(
        Duration::from_secs(30),
        "every synchronizer runs and the structure is complete",
        &controller,
        || {
            let running = ["children", "mobile-epics", "platform-epics"]
                .iter()
                .all(|s| phase(&server, "synchronizers", s).as_deref() == Some("Running"));
            let rows = server.get("structures", NS, "roadmap")?["status"]["rows"].as_i64();
            (running && rows == Some(37)).then_some(())
        },
    )
    .await;
    let lists = |server: &ApiServer| {
        server
            .requests()
            .iter()
            .filter(|r| {
                r.starts_with("GET /apis/trellis.dev/v1alpha1/synchronizers?")
                    && !r.contains("watch=true")
            })
            .count()
    };
    let before = lists(&server);

    // The watches end and their versions are gone: each lists again
    // (410 Expired) and goes on from there.
    server.restart_compacted();
    within(
        Duration::from_secs(20),
        "the synchronizers listed again",
        &controller,
        || (lists(&server) > before).then_some(()),
    )
    .await;
    assert!(
        readyz(&controller).await == Some(200),
        "still ready after a relist"
    );

    // PLAT-2 done: platform-epics would remove its row and the five under
    // it. The pass holds the plan until spec.approvedPlan names its hash.
    let issues = dir.path().join("issues.yaml");
    let text = std::fs::read_to_string(&issues).unwrap().replacen(
        "status: In Progress\n    rank: \"0|a00020:\"\n    updated: 2026-11-03T14:40:00Z",
        &format!(
            "status: Done\n    rank: \"0|a00020:\"\n    updated: {}",
            jiff::Timestamp::now()
        ),
        1,
    );
    std::fs::write(&issues, text).unwrap();
    let held = within(
        Duration::from_secs(45),
        "platform-epics awaits approval",
        &controller,
        || {
            let sync = server.get("synchronizers", NS, "platform-epics")?;
            (sync["status"]["phase"] == "AwaitingApproval")
                .then(|| sync["status"]["heldPlan"].clone())
        },
    )
    .await;
    let hash = held["hash"].as_str().unwrap().to_owned();
    assert!(
        held["diffExcerpt"]
            .as_str()
            .unwrap()
            .contains("remove PLAT-12"),
        "{held}"
    );
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let roadmap = format!("{NS}/roadmap");
    let has = |key: &str| {
        store
            .structure(&roadmap)
            .unwrap()
            .forest
            .find_issue(key)
            .is_some()
    };
    assert!(has("PLAT-12"), "nothing of a held plan is carried out");
    assert!(
        server.all("events").iter().any(
            |e| e["reason"] == "AwaitingApproval" && e["regarding"]["name"] == "platform-epics"
        ),
        "an AwaitingApproval event"
    );
    let mut sync = server.get("synchronizers", NS, "platform-epics").unwrap();
    sync["spec"]["approvedPlan"] = json!(hash);
    server.put("synchronizers", sync);
    within(
        Duration::from_secs(30),
        "the approved plan is carried out",
        &controller,
        || {
            let sync = server.get("synchronizers", NS, "platform-epics")?;
            (sync["status"]["phase"] == "Running"
                && sync["status"].get("heldPlan").is_none()
                && !has("PLAT-2")
                && !has("PLAT-12"))
            .then_some(())
        },
    )
    .await;

    // Deleted: held by its finalizer until stopped, then gone.
    server.delete("synchronizers", API, NS, "children");
    within(
        Duration::from_secs(20),
        "the deleted synchronizer is let go",
        &controller,
        || {
            server
                .get("synchronizers", NS, "children")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let stopped = server
        .all("events")
        .iter()
        .any(|e| e["reason"] == "Stopped" && e["regarding"]["name"] == "children");
    assert!(stopped, "a Stopped event for children");
}

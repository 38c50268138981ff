//! Reconcile tests against a mocked API server (kube-rs's tower-test
//! pattern, as in controller-rs): each test scripts the exact requests a
//! reconcile must make — status patches, events, finalizer patches — and
//! fails on any other. The engine, the SQLite store and the local tracker
//! behind it are real. Tests run on a multi-threaded runtime, as the
//! controller does: its runs leave the runtime with `block_in_place`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher};
use kube::{Client, Resource};
use serde_json::{Value, json};
use tower_test::mock::{Handle, pair};

use super::context::{Context, Stores};
use super::{resync, structure, synchronizer};
use crate::engine::Engine;
use crate::spec::{Resync, Structure, Synchronizer, Tracker};
use crate::store::{SqliteStore, Store};

type ApiServer = Handle<Request<Body>, Response<Body>>;

/// A workspace: an issues file (A-1, and A-2 under it), a Tracker on it,
/// a Structure declaring both issues at the top level, a subtasks
/// Synchronizer, and a store.
struct World {
    dir: tempfile::TempDir,
    tracker: Tracker,
    structure: Structure,
    synchronizer: Synchronizer,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let issues = dir.path().join("issues.yaml");
        std::fs::write(
            &issues,
            "issues:\n- {key: A-1, summary: Epic, type: Epic, status: Open}\n- {key: A-2, summary: Story, type: Story, status: Open, parent: A-1}\n",
        )
        .unwrap();
        let tracker: Tracker = serde_json::from_value(json!({
            "apiVersion": "trellis.dev/v1alpha1", "kind": "Tracker",
            "metadata": {"name": "local", "namespace": "default"},
            "spec": {"type": "local", "local": {"path": issues}}
        }))
        .unwrap();
        let structure: Structure = serde_json::from_value(json!({
            "apiVersion": "trellis.dev/v1alpha1", "kind": "Structure",
            "metadata": {"name": "plan", "namespace": "default", "generation": 1},
            "spec": {"trackerRef": {"name": "local"}, "rows": [{"issue": "A-1"}, {"issue": "A-2"}]}
        }))
        .unwrap();
        let synchronizer: Synchronizer = serde_json::from_value(json!({
            "apiVersion": "trellis.dev/v1alpha1", "kind": "Synchronizer",
            "metadata": {"name": "children", "namespace": "default", "generation": 1},
            "spec": {"structureRef": {"name": "plan"}, "type": "subtasks", "enabled": false, "directions": ["into", "from"]}
        }))
        .unwrap();
        World {
            dir,
            tracker,
            structure,
            synchronizer,
        }
    }

    /// A Resync of the synchronizer `from` the structure, asked for by
    /// carol: its plan lays out the declared rows and clears A-2's parent
    /// (destructive).
    fn resync(&self, approved: Option<&str>) -> Resync {
        serde_json::from_value(json!({
            "apiVersion": "trellis.dev/v1alpha1", "kind": "Resync",
            "metadata": {"name": "export", "namespace": "default", "generation": 1,
                         "labels": {"trellis.dev/structure": "plan"},
                         "annotations": {"trellis.dev/requested-by": "carol"}},
            "spec": {"synchronizerRef": {"name": "children"}, "direction": "from", "approvedPlan": approved}
        }))
        .unwrap()
    }

    /// A context whose watches hold this world (and `resyncs`), on a mocked client.
    fn context(&self, resyncs: &[Resync]) -> (Arc<Context>, ApiServer) {
        let (service, handle) = pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "trellis-controller".into(),
                instance: None,
            },
        );
        let stores = Stores {
            trackers: watched(std::slice::from_ref(&self.tracker)),
            structures: watched(std::slice::from_ref(&self.structure)),
            synchronizers: watched(std::slice::from_ref(&self.synchronizer)),
            resyncs: watched(resyncs),
        };
        let mut ctx = Context::new(
            client,
            recorder,
            &self.dir.path().join("trellis.db"),
            stores,
            2,
        )
        .unwrap();
        ctx.leading.store(true, Ordering::SeqCst);
        for kind in super::KINDS {
            ctx.ready.synced(kind);
        }
        ctx.local_root = Some(self.dir.path().to_owned());
        (Arc::new(ctx), handle)
    }

    fn issues(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("issues.yaml")).unwrap()
    }
}

fn watched<K>(objects: &[K]) -> reflector::Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(object.clone()));
    }
    reader
}

/// The next request: checks its method and path, answers with `answer`
/// (the request's own body when `None`), and returns the request body.
async fn expect(server: &mut ApiServer, method: &str, path: &str, answer: Option<Value>) -> Value {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
        .expect("the client is alive");
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    assert_eq!(request.uri().path(), path);
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let answer = answer.unwrap_or_else(|| body.clone());
    respond.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    body
}

const RESYNC_STATUS: &str = "/apis/trellis.dev/v1alpha1/namespaces/default/resyncs/export/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn condition<'v>(status: &'v Value, type_: &str) -> &'v Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_resync_waits_for_approval_with_its_hash_and_writes_nothing() {
    let world = World::new();
    let resync_object = world.resync(None);
    let (ctx, mut server) = world.context(std::slice::from_ref(&resync_object));
    let before = world.issues();
    let reconcile = tokio::spawn(resync::reconcile(Arc::new(resync_object.clone()), ctx));

    let planning = expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(resync_object)),
    )
    .await;
    assert_eq!(planning["status"]["phase"], "Planning");
    let event = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(event["reason"], "AwaitingApproval");
    let patch = expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(resync_object)),
    )
    .await;
    let status = &patch["status"];
    assert_eq!(status["phase"], "AwaitingApproval");
    assert_eq!(status["plan"]["destructive"], true);
    let hash = status["plan"]["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 16);
    let stalled = condition(status, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["observedGeneration"], 1);
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains(&format!("\"approvedPlan\":\"{hash}\"")),
        "the message shows how to approve: {stalled}"
    );
    assert!(
        status["plan"]["diffExcerpt"]
            .as_str()
            .unwrap()
            .contains("+A-2")
    );
    assert_eq!(
        reconcile.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
    assert_eq!(world.issues(), before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_resync_runs_exactly_that_plan_and_a_stale_approval_is_refused() {
    let world = World::new();
    // First learn the hash, as a reviewer would from the status.
    let (ctx, mut server) = world.context(&[world.resync(None)]);
    let waiting = tokio::spawn(resync::reconcile(Arc::new(world.resync(None)), ctx));
    expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(world.resync(None))),
    )
    .await;
    expect(&mut server, "POST", EVENTS, None).await;
    let patch = expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(world.resync(None))),
    )
    .await;
    let hash = patch["status"]["plan"]["hash"].as_str().unwrap().to_owned();
    waiting.await.unwrap().unwrap();

    // A stale approval: still waiting, and the message names both hashes.
    let stale = world.resync(Some("deadbeefdeadbeef"));
    let (ctx, mut server) = world.context(std::slice::from_ref(&stale));
    let refused = tokio::spawn(resync::reconcile(Arc::new(stale.clone()), ctx));
    expect(&mut server, "PATCH", RESYNC_STATUS, Some(json!(stale))).await;
    expect(&mut server, "POST", EVENTS, None).await;
    let patch = expect(&mut server, "PATCH", RESYNC_STATUS, Some(json!(stale))).await;
    assert_eq!(patch["status"]["phase"], "AwaitingApproval");
    let message = condition(&patch["status"], "Stalled")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(&format!(
            "the approved plan deadbeefdeadbeef is not the current plan {hash}"
        )),
        "{message}"
    );
    refused.await.unwrap().unwrap();
    assert!(world.issues().contains("parent: A-1"), "nothing written");

    // The right hash: Running, then Succeeded, and the tracker changed.
    let approved = world.resync(Some(&hash));
    let (ctx, mut server) = world.context(std::slice::from_ref(&approved));
    let run = tokio::spawn(resync::reconcile(Arc::new(approved.clone()), ctx.clone()));
    expect(&mut server, "PATCH", RESYNC_STATUS, Some(json!(approved))).await;
    let running = expect(&mut server, "PATCH", RESYNC_STATUS, Some(json!(approved))).await;
    assert_eq!(running["status"]["phase"], "Running");
    assert_eq!(
        condition(&running["status"], "Reconciling")["status"],
        "True"
    );
    let started = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(started["reason"], "ResyncStarted");
    let succeeded = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(succeeded["reason"], "ResyncSucceeded");
    let done = expect(&mut server, "PATCH", RESYNC_STATUS, Some(json!(approved))).await;
    assert_eq!(done["status"]["phase"], "Succeeded");
    assert_eq!(done["status"]["requestedBy"], "carol");
    assert_eq!(condition(&done["status"], "Ready")["status"], "True");
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    assert!(
        !world.issues().contains("parent: A-1"),
        "A-2's parent is cleared"
    );
    let journal = ctx.store().journal_since("default/plan", 0).unwrap();
    assert!(!journal.is_empty());
    for (entry, _) in &journal {
        assert_eq!(entry.author, "carol", "who asked is the author: {entry:?}");
    }
    // Done, keyed by the object (its uid: none in this test).
    assert!(ctx.store().resync_done("default/export#").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_labelled_with_another_structure_than_its_synchronizers_never_runs() {
    let world = World::new();
    let mut resync_object = world.resync(None);
    resync_object
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("trellis.dev/structure".into(), "roadmap".into());
    let (ctx, mut server) = world.context(std::slice::from_ref(&resync_object));
    let before = world.issues();
    let reconcile = tokio::spawn(resync::reconcile(Arc::new(resync_object.clone()), ctx));
    let patch = expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(resync_object)),
    )
    .await;
    assert_eq!(patch["status"]["phase"], "Pending");
    let stalled = condition(&patch["status"], "Stalled");
    assert_eq!(stalled["reason"], "WrongStructure");
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.contains("names structure roadmap")
            && message.contains("syncs structure plan")
            && message.contains("trellis.dev/structure=plan"),
        "{message}"
    );
    assert_eq!(
        reconcile.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
    assert_eq!(world.issues(), before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronizer_gets_a_finalizer_then_reports_stopped_while_disabled() {
    let world = World::new();
    let (ctx, mut server) = world.context(&[]);
    let path = "/apis/trellis.dev/v1alpha1/namespaces/default/synchronizers/children";
    let fresh = Arc::new(world.synchronizer.clone());
    let run = tokio::spawn(synchronizer::reconcile(fresh, ctx.clone()));
    let mut with_finalizer = world.synchronizer.clone();
    with_finalizer.metadata.finalizers = Some(vec![synchronizer::FINALIZER.into()]);
    let patch = expect(&mut server, "PATCH", path, Some(json!(with_finalizer))).await;
    assert!(
        patch.to_string().contains(synchronizer::FINALIZER),
        "{patch}"
    );
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());

    let run = tokio::spawn(synchronizer::reconcile(
        Arc::new(with_finalizer.clone()),
        ctx,
    ));
    let status = expect(
        &mut server,
        "PATCH",
        &format!("{path}/status"),
        Some(json!(with_finalizer)),
    )
    .await;
    assert_eq!(status["status"]["phase"], "Stopped");
    assert_eq!(condition(&status["status"], "Ready")["status"], "False");
    assert_eq!(condition(&status["status"], "Stalled")["status"], "False");
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_synchronizer_stops_it_then_lets_it_go() {
    let world = World::new();
    let (ctx, mut server) = world.context(&[]);
    let mut deleted = world.synchronizer.clone();
    deleted.metadata.finalizers = Some(vec![synchronizer::FINALIZER.into()]);
    deleted.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    // A run holds the structure: deletion waits for it.
    let claim = ctx.claim(&ctx.catalog().0, "default/plan").unwrap();
    let run = tokio::spawn(synchronizer::reconcile(
        Arc::new(deleted.clone()),
        ctx.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!run.is_finished(), "waits for the in-flight run");
    drop(claim);
    let event = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(event["reason"], "Stopped");
    let mut gone = deleted.clone();
    gone.metadata.finalizers = None;
    let patch = expect(
        &mut server,
        "PATCH",
        "/apis/trellis.dev/v1alpha1/namespaces/default/synchronizers/children",
        Some(json!(gone)),
    )
    .await;
    assert!(
        patch.to_string().contains("remove"),
        "removes the finalizer: {patch}"
    );
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_structure_with_policy_delete_removes_its_content_from_the_store() {
    let mut world = World::new();
    world.structure.spec.deletion_policy = crate::spec::DeletionPolicy::Delete;
    // Content first: an approved export lays out the declared rows.
    let (ctx, _server) = world.context(&[]);
    {
        let (catalog, errors) = ctx.catalog();
        assert!(errors.is_empty(), "{errors:?}");
        let mut engine = ctx.engine().await;
        let scope = crate::engine::Scope::Apply;
        let run = engine.plan(&catalog, &scope).await.unwrap();
        engine
            .apply(&catalog, run, &crate::engine::Approval::None)
            .await
            .unwrap();
        assert_eq!(
            engine
                .store()
                .structure("default/plan")
                .unwrap()
                .forest
                .walk()
                .len(),
            2
        );
    }
    let (ctx, mut server) = world.context(&[]);
    let mut deleted = world.structure.clone();
    deleted.metadata.finalizers = Some(vec![structure::FINALIZER.into()]);
    deleted.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    let run = tokio::spawn(structure::reconcile(Arc::new(deleted.clone()), ctx.clone()));
    let event = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(event["reason"], "ContentDeleted");
    let mut gone = deleted.clone();
    gone.metadata.finalizers = None;
    expect(
        &mut server,
        "PATCH",
        "/apis/trellis.dev/v1alpha1/namespaces/default/structures/plan",
        Some(json!(gone)),
    )
    .await;
    run.await.unwrap().unwrap();
    let stored = ctx
        .engine()
        .await
        .store()
        .structure("default/plan")
        .unwrap();
    assert_eq!((stored.version, stored.forest.walk().len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hash_to_approve_is_the_same_from_files_and_in_the_cluster() {
    let world = World::new();
    let resync_object = world.resync(None);
    let (ctx, mut server) = world.context(std::slice::from_ref(&resync_object));
    let reconcile = tokio::spawn(resync::reconcile(Arc::new(resync_object.clone()), ctx));
    expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(resync_object)),
    )
    .await;
    expect(&mut server, "POST", EVENTS, None).await;
    let patch = expect(
        &mut server,
        "PATCH",
        RESYNC_STATUS,
        Some(json!(resync_object)),
    )
    .await;
    reconcile.await.unwrap().unwrap();
    let in_cluster = patch["status"]["plan"]["hash"].as_str().unwrap().to_owned();

    // The same declarations as files, planned as `trellis plan -f` does.
    let file = world.dir.path().join("trellis.yaml");
    let documents: Vec<String> = [
        serde_json::to_value(&world.tracker).unwrap(),
        serde_json::to_value(&world.structure).unwrap(),
        serde_json::to_value(&world.synchronizer).unwrap(),
        serde_json::to_value(&resync_object).unwrap(),
    ]
    .iter()
    .map(|d| serde_json::to_string(d).unwrap())
    .collect();
    std::fs::write(&file, documents.join("\n---\n")).unwrap();
    let catalog = crate::spec::Catalog::load(&[file]).unwrap();
    let store = SqliteStore::open(&world.dir.path().join("files.db")).unwrap();
    let engine = Engine::new(store, "alice");
    let scope = crate::engine::Scope::of_resync(&catalog, "default/export").unwrap();
    let from_files = engine.plan(&catalog, &scope).await.unwrap().set.hash;
    assert_eq!(from_files, in_cluster);
}

const TRACKER_STATUS: &str = "/apis/trellis.dev/v1alpha1/namespaces/default/trackers/local/status";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_tracker_is_connected_and_a_local_one_outside_the_allowed_folder_is_refused() {
    let world = World::new();
    let (ctx, mut server) = world.context(&[]);
    let run = tokio::spawn(super::tracker::reconcile(
        Arc::new(world.tracker.clone()),
        ctx,
    ));
    let patch = expect(
        &mut server,
        "PATCH",
        TRACKER_STATUS,
        Some(json!(world.tracker)),
    )
    .await;
    assert_eq!(patch["status"]["phase"], "Connected");
    assert_eq!(patch["status"]["identity"], "trellis-controller");
    assert!(
        patch["status"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("parent"))
    );
    assert_eq!(condition(&patch["status"], "Ready")["status"], "True");
    run.await.unwrap().unwrap();

    // Without --local-trackers, a local tracker could name any file of the
    // controller's (its store included): refused.
    let (ctx, mut server) = world.context(&[]);
    let mut unconfined = Arc::try_unwrap(ctx).ok().unwrap();
    unconfined.local_root = None;
    let run = tokio::spawn(super::tracker::reconcile(
        Arc::new(world.tracker.clone()),
        Arc::new(unconfined),
    ));
    let patch = expect(
        &mut server,
        "PATCH",
        TRACKER_STATUS,
        Some(json!(world.tracker)),
    )
    .await;
    let stalled = condition(&patch["status"], "Stalled");
    assert_eq!(stalled["status"], "True");
    assert!(
        stalled["message"].as_str().unwrap().contains("local trackers are refused in the cluster unless the controller runs with --local-trackers DIR"),
        "{stalled}"
    );
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_sent_to_a_tracker_only_when_labelled_for_it() {
    let mut world = World::new();
    world.tracker = serde_json::from_value(json!({
        "apiVersion": "trellis.dev/v1alpha1", "kind": "Tracker",
        "metadata": {"name": "local", "namespace": "default"},
        "spec": {"type": "redmine", "url": "https://redmine.example.com",
                 "credentials": {"secretRef": {"name": "redmine-api"}}}
    }))
    .unwrap();
    let (ctx, mut server) = world.context(&[]);
    let run = tokio::spawn(super::tracker::reconcile(
        Arc::new(world.tracker.clone()),
        ctx,
    ));
    let unlabelled = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "redmine-api", "namespace": "default"},
        "data": {"apiKey": "c2VjcmV0LWtleQ=="}
    });
    expect(
        &mut server,
        "GET",
        "/api/v1/namespaces/default/secrets/redmine-api",
        Some(unlabelled),
    )
    .await;
    let event = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(event["reason"], "Unauthorized");
    let patch = expect(
        &mut server,
        "PATCH",
        TRACKER_STATUS,
        Some(json!(world.tracker)),
    )
    .await;
    assert_eq!(patch["status"]["phase"], "Unauthorized");
    let message = condition(&patch["status"], "Stalled")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("lacks the label trellis.dev/credentials=true"),
        "{message}"
    );
    assert!(
        !patch.to_string().contains("secret-key"),
        "the key never shows"
    );
    assert!(!event.to_string().contains("secret-key"));
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enabled_synchronizer_runs_and_reports_its_last_sync() {
    let mut world = World::new();
    world.synchronizer.spec.enabled = true;
    world.synchronizer.metadata.finalizers = Some(vec![synchronizer::FINALIZER.into()]);
    let (ctx, mut server) = world.context(&[]);
    let run = tokio::spawn(synchronizer::reconcile(
        Arc::new(world.synchronizer.clone()),
        ctx.clone(),
    ));
    let handshake = expect(
        &mut server,
        "PATCH",
        "/apis/trellis.dev/v1alpha1/namespaces/default/synchronizers/children/status",
        Some(json!(world.synchronizer)),
    )
    .await;
    assert_eq!(handshake["status"]["phase"], "Handshake");
    let patch = expect(
        &mut server,
        "PATCH",
        "/apis/trellis.dev/v1alpha1/namespaces/default/synchronizers/children/status",
        Some(json!(world.synchronizer)),
    )
    .await;
    let status = &patch["status"];
    assert_eq!(status["phase"], "Running");
    assert!(status["lastSync"].is_string());
    assert_eq!(status["lastSync"], status["lastAttempt"]);
    assert_eq!(status["errorCount"], 0);
    assert_eq!(condition(status, "Ready")["status"], "True");
    // Requeued for the next pass, 30 s after this one started.
    let next = run.await.unwrap().unwrap();
    assert!(
        next != Action::requeue(Duration::ZERO)
            && next != Action::await_change()
            && format!("{next:?}").contains("requeue_after: Some(29."),
        "{next:?}"
    );
    // The declared rows are in the store now.
    let stored = ctx.store().structure("default/plan").unwrap();
    assert_eq!(stored.forest.walk().len(), 2);

    // Woken again by its own status write: not due, no run, no write.
    let mut synced = world.synchronizer.clone();
    synced.status = serde_json::from_value(status.clone()).unwrap();
    let again = synchronizer::reconcile(Arc::new(synced), ctx)
        .await
        .unwrap();
    assert!(again != Action::await_change(), "requeued for the next run");
    // The client is gone with the context: any request would be waiting here.
    assert!(
        server.next_request().await.is_none(),
        "no request when not due"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_makes_a_synchronizer_pass_before_its_interval() {
    use futures::StreamExt;
    let mut world = World::new();
    world.synchronizer.spec.enabled = true;
    world.synchronizer.metadata.finalizers = Some(vec![synchronizer::FINALIZER.into()]);
    // It passed a moment ago: its next pass is 30 s away.
    world.synchronizer.status = Some(crate::spec::SynchronizerStatus {
        phase: Some(crate::spec::SynchronizerPhase::Running),
        observed_generation: Some(1),
        last_attempt: Some(jiff::Timestamp::now().to_string()),
        ..Default::default()
    });
    let (ctx, mut server) = world.context(&[]);
    let mut wakes = ctx.due_passes();
    let sync = Arc::new(world.synchronizer.clone());
    let idle = synchronizer::reconcile(sync.clone(), ctx.clone())
        .await
        .unwrap();
    assert!(idle != Action::await_change(), "requeued for its interval");

    // A webhook (or an edited issues file) marks it due and wakes it.
    ctx.make_due(&["default/children".to_owned()]);
    let woken = wakes.next().await.unwrap();
    assert_eq!(woken.name, "children");
    let run = tokio::spawn(synchronizer::reconcile(sync, ctx.clone()));
    let patch = expect(
        &mut server,
        "PATCH",
        "/apis/trellis.dev/v1alpha1/namespaces/default/synchronizers/children/status",
        Some(json!(world.synchronizer)),
    )
    .await;
    assert_eq!(patch["status"]["phase"], "Running");
    run.await.unwrap().unwrap();
    assert!(
        !ctx.due.is_marked("default/children"),
        "the mark is used up"
    );
    assert!(
        ctx.metrics
            .encode()
            .contains("trellis_event_to_pass_seconds_count 1"),
        "{}",
        ctx.metrics.encode()
    );
    let stored = ctx.store().structure("default/plan").unwrap();
    assert_eq!(stored.forest.walk().len(), 2, "the pass ran");
}

/// The cycle guard's stop, as the store records it after a pass.
fn stop_by_the_cycle_guard(world: &World) {
    let mut store = SqliteStore::open(&world.dir.path().join("trellis.db")).unwrap();
    let state = crate::store::SyncState {
        last_pass: Some(jiff::Timestamp::now()),
        stopped: Some("A-2 changed back after each of its last 10 passes".into()),
        ..Default::default()
    };
    let pass = crate::store::PassCommit {
        synchronizer: "default/children",
        tracker: "default/local",
        state,
        baselines: &[],
        forgotten: &[],
        held: &[],
        conflicts: &[],
        written: &[],
    };
    store
        .commit(&crate::store::Commit {
            structure: "default/plan",
            base_version: 0,
            forest: Some(&crate::model::Forest::new()),
            changes: &[],
            jobs: &[],
            synchronizers: &[],
            baselines: &[],
            pass: Some(&pass),
            read: None,
            settles: None,
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronizer_the_cycle_guard_stopped_waits_for_a_spec_change() {
    let mut world = World::new();
    world.synchronizer.spec.enabled = true;
    world.synchronizer.metadata.finalizers = Some(vec![synchronizer::FINALIZER.into()]);
    // It ran before (its status says so) and was stopped at its last pass.
    world.synchronizer.status = Some(crate::spec::SynchronizerStatus {
        observed_generation: Some(1),
        phase: Some(crate::spec::SynchronizerPhase::Running),
        last_attempt: Some("2026-01-01T00:00:00Z".into()),
        ..Default::default()
    });
    stop_by_the_cycle_guard(&world);
    let (ctx, mut server) = world.context(&[]);
    let path = "/apis/trellis.dev/v1alpha1/namespaces/default/synchronizers/children/status";
    let run = tokio::spawn(synchronizer::reconcile(
        Arc::new(world.synchronizer.clone()),
        ctx.clone(),
    ));
    let event = expect(&mut server, "POST", EVENTS, None).await;
    assert_eq!(event["reason"], "RestartRequired");
    let patch = expect(&mut server, "PATCH", path, Some(json!(world.synchronizer))).await;
    let status = &patch["status"];
    assert_eq!(status["phase"], "RestartRequired");
    let stalled = condition(status, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("A-2 changed back after each of its last 10 passes"),
        "{stalled}"
    );
    assert_eq!(run.await.unwrap().unwrap(), Action::await_change());
    assert!(
        ctx.store()
            .sync_state("default/children")
            .unwrap()
            .stopped
            .is_some()
    );

    // A person changes the spec: the controller restarts it and it passes.
    let mut changed = world.synchronizer.clone();
    changed.status = serde_json::from_value(status.clone()).unwrap();
    changed.metadata.generation = Some(2);
    let run = tokio::spawn(synchronizer::reconcile(
        Arc::new(changed.clone()),
        ctx.clone(),
    ));
    let patch = expect(&mut server, "PATCH", path, Some(json!(changed))).await;
    assert_eq!(patch["status"]["phase"], "Running", "{patch}");
    assert_eq!(patch["status"]["observedGeneration"], 2);
    run.await.unwrap().unwrap();
    assert!(
        ctx.store()
            .sync_state("default/children")
            .unwrap()
            .stopped
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structure_a_command_line_run_holds_is_read_only_until_it_lets_go() {
    let mut world = World::new();
    world.structure.metadata.finalizers = Some(vec![structure::FINALIZER.into()]);
    let (ctx, mut server) = world.context(&[]);
    // `trellis sync` on the same store, in another process: no claim of
    // this controller's, only the store's hold.
    let holder = "incremental sync default/children (process 4242)";
    let mut cli = SqliteStore::open(&world.dir.path().join("trellis.db")).unwrap();
    let until = jiff::Timestamp::now() + crate::store::HOLD_LEASE;
    assert_eq!(
        cli.hold_structure("default/plan", holder, until).unwrap(),
        None
    );
    assert!(!ctx.is_busy("default/plan"));

    let path = "/apis/trellis.dev/v1alpha1/namespaces/default/structures/plan/status";
    let object = Arc::new(world.structure.clone());
    let run = tokio::spawn(structure::reconcile(object.clone(), ctx.clone()));
    let patch = expect(&mut server, "PATCH", path, Some(json!(world.structure))).await;
    assert_eq!(patch["status"]["phase"], "ReadOnly", "{patch}");
    let reconciling = condition(&patch["status"], "Reconciling");
    assert_eq!(reconciling["status"], "True");
    assert_eq!(reconciling["reason"], "ReadOnly");
    assert_eq!(reconciling["message"], format!("held by {holder}"));
    // Looked at again soon: nobody tells the controller when it ends.
    assert_eq!(
        run.await.unwrap().unwrap(),
        Action::requeue(crate::store::HOLD_RENEWAL)
    );

    cli.release_structure("default/plan", holder).unwrap();
    let run = tokio::spawn(structure::reconcile(object, ctx));
    let patch = expect(&mut server, "PATCH", path, Some(json!(world.structure))).await;
    assert_eq!(patch["status"]["phase"], "Ready", "{patch}");
    assert_eq!(condition(&patch["status"], "Ready")["status"], "True");
    assert_eq!(
        run.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
}

#[test]
fn a_failed_reconcile_is_labelled_by_what_failed_even_inside_a_finalizer() {
    use super::context::Error;
    use crate::engine::EngineError;
    use kube::runtime::finalizer::Error as Finalizer;
    let credentials = || {
        Error::Engine(EngineError::Credentials {
            tracker: "default/redmine".into(),
            problem: crate::spec::SpecErrors(Vec::new()),
        })
    };
    assert_eq!(credentials().metric_label(), "credentials");
    assert_eq!(
        Error::Finalizer(Box::new(Finalizer::ApplyFailed(credentials()))).metric_label(),
        "credentials"
    );
    assert_eq!(
        Error::Finalizer(Box::new(Finalizer::CleanupFailed(Error::Engine(
            EngineError::TrackerChanged {
                tracker: "default/redmine".into()
            }
        ))))
        .metric_label(),
        "tracker"
    );
    assert_eq!(
        Error::Finalizer(Box::new(Finalizer::UnnamedObject)).metric_label(),
        "finalizer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_different_structures_each_get_an_engine_and_the_rest_wait() {
    let world = World::new();
    let (ctx, _server) = world.context(&[]);
    // The test context has two engines: two runs at once, a third waits
    // (counted in the queue depth) until one of them ends.
    let first = ctx.engine().await;
    let second = tokio::time::timeout(Duration::from_secs(1), ctx.engine())
        .await
        .expect("a second engine is free");
    let waiting = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _third = ctx.engine().await;
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "no third engine");
    assert_eq!(ctx.metrics.queue_depth.get(), 1);
    drop(first);
    tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the engine went back to the pool")
        .unwrap();
    assert_eq!(ctx.metrics.queue_depth.get(), 0);
    drop(second);
}

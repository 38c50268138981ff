//! What every reconcile shares: the cluster client, the event recorder,
//! metrics, the engines (runs of different structures at once, one engine
//! and store connection each), the watched objects, leadership, and which
//! structures have a run in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::conditions::{Health, Reported};
use super::metrics::Metrics;
use super::readiness::Readiness;
use crate::engine::{Credentials, Engine, EngineError, PersonalKey};
use crate::spec::{
    Catalog, EventStatus, Resync, RunAs, SecretKeyRef, SpecError, Structure, Synchronizer, Tracker,
    Turn, local_issues_file,
};
use crate::store::{SqliteStore, StoreError};
use crate::tracker::redmine::ApiKey;
use crate::trigger::Due;

/// The field manager of every status Trellis writes, and the author of
/// what the controller's own runs change.
pub const MANAGER: &str = "trellis-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The kind of error, as the `error` label of
    /// `trellis_reconcile_errors_total` says it: what failed inside a
    /// finalizer's step is labelled as itself.
    pub fn metric_label(&self) -> &'static str {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Error::Kube(_) => "kube",
            Error::Engine(e) => e.kind(),
            Error::Finalizer(e) => match &**e {
                Finalizer::ApplyFailed(e) | Finalizer::CleanupFailed(e) => e.metric_label(),
                Finalizer::AddFinalizer(_) | Finalizer::RemoveFinalizer(_) => "kube",
                Finalizer::UnnamedObject | Finalizer::InvalidFinalizer => "finalizer",
            },
        }
    }
}

/// A synchronizer and what it depends on, by id (empty when a reference
/// does not resolve: its problem is reported on the object that makes it).
pub struct Chain {
    pub synchronizer: String,
    pub structure: String,
    pub tracker: String,
    /// `Kind namespace/name` of each, whose spec problems stop a run.
    pub objects: Vec<String>,
}

impl Chain {
    pub fn of(catalog: &Catalog, synchronizer: String) -> Chain {
        let structure = catalog
            .synchronizer(&synchronizer)
            .map(|s| s.resource.structure_id())
            .unwrap_or_default();
        let tracker = catalog
            .structure(&structure)
            .and_then(|s| s.resource.tracker_id())
            .unwrap_or_default();
        let objects = vec![
            format!("Synchronizer {synchronizer}"),
            format!("Structure {structure}"),
            format!("Tracker {tracker}"),
        ];
        Chain {
            synchronizer,
            structure,
            tracker,
            objects,
        }
    }
}

/// The watched objects of each kind.
#[derive(Clone)]
pub struct Stores {
    pub trackers: Store<Tracker>,
    pub structures: Store<Structure>,
    pub synchronizers: Store<Synchronizer>,
    pub resyncs: Store<Resync>,
}

/// The label a Secret needs before Trellis sends its value to a tracker:
/// without it, anyone allowed to declare a Tracker could have any Secret of
/// the namespace sent to a URL of their choosing.
pub const CREDENTIALS_LABEL: &str = "trellis.dev/credentials";

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Runs take an engine each: as many at once as there are engines,
    /// never two on one structure (see [`Context::claim`]).
    engines: Engines,
    /// A second connection for reads, which need not wait for a run.
    reader: SqliteStore,
    pub stores: Stores,
    /// Whether this replica holds the Lease.
    pub leading: Arc<AtomicBool>,
    /// Which watches have listed their objects once.
    pub ready: Arc<Readiness>,
    /// The folder local trackers' files must be in (`--local-trackers`);
    /// none: local trackers are refused in the cluster.
    pub local_root: Option<PathBuf>,
    busy: Mutex<HashSet<String>>,
    /// Structures whose content a run changed, for the Structure
    /// controller to report again (taken once by `structure_changes`).
    changed: UnboundedSender<ObjectRef<Structure>>,
    changes: Mutex<Option<UnboundedReceiver<ObjectRef<Structure>>>>,
    /// Synchronizers an event (a webhook, an edited issues file, a
    /// structure's edit) made due before their interval, and the wake-up
    /// of their reconciles (taken once by `due_passes`).
    pub due: Due,
    woke: UnboundedSender<ObjectRef<Synchronizer>>,
    wakes: Mutex<Option<UnboundedReceiver<ObjectRef<Synchronizer>>>>,
    /// The last webhook delivery accepted per tracker, for its status.
    pub last_events: Mutex<HashMap<String, EventStatus>>,
}

/// One key of a Secret's data, trimmed.
fn value_of(data: &BTreeMap<String, ByteString>, key: &str) -> Result<String, String> {
    match data.get(key) {
        Some(value) => Ok(String::from_utf8_lossy(&value.0).trim().to_owned()),
        None => Err(format!("the Secret has no key {key}")),
    }
}

/// A structure's turn: while held, no other run touches the structure (nor,
/// on a local tracker, its issues file).
pub struct Claim<'c> {
    busy: &'c Mutex<HashSet<String>>,
    held: Vec<String>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut busy = self.busy.lock().expect("not poisoned");
        for key in &self.held {
            busy.remove(key);
        }
    }
}

/// Engines waiting for a run, each with its own store connection.
struct Engines {
    idle: Mutex<Vec<Engine<SqliteStore>>>,
    free: tokio::sync::Semaphore,
}

/// An engine lent to one run; it goes back to the pool when dropped.
pub struct Lent<'c> {
    engine: Option<Engine<SqliteStore>>,
    engines: &'c Engines,
    _turn: tokio::sync::SemaphorePermit<'c>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Engine<SqliteStore>;
    fn deref(&self) -> &Engine<SqliteStore> {
        self.engine.as_ref().expect("lent until dropped")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Engine<SqliteStore> {
        self.engine.as_mut().expect("lent until dropped")
    }
}

impl Drop for Lent<'_> {
    /// The engine goes back acting as the controller, whoever it ran for.
    fn drop(&mut self) {
        if let Some(mut engine) = self.engine.take() {
            engine.set_author(MANAGER);
            engine.set_credentials(Credentials::default());
            self.engines.idle.lock().expect("not poisoned").push(engine);
        }
    }
}

impl Context {
    /// A context on the store at `state` with `workers` engines (runs of
    /// that many structures at once); not leading, not ready, and refusing
    /// local trackers until told otherwise.
    pub fn new(
        client: Client,
        recorder: Recorder,
        state: &Path,
        stores: Stores,
        workers: usize,
    ) -> Result<Context, StoreError> {
        let (changed, changes) = unbounded();
        let (woke, wakes) = unbounded();
        let idle = (0..workers.max(1))
            .map(|_| Ok(Engine::new(SqliteStore::open(state)?, MANAGER)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Context {
            client,
            recorder,
            metrics: Arc::default(),
            engines: Engines {
                free: tokio::sync::Semaphore::new(idle.len()),
                idle: Mutex::new(idle),
            },
            reader: SqliteStore::open(state)?,
            stores,
            leading: Arc::default(),
            ready: Arc::new(Readiness::waiting_for(&super::KINDS)),
            local_root: None,
            busy: Mutex::default(),
            changed,
            changes: Mutex::new(Some(changes)),
            due: Due::default(),
            woke,
            wakes: Mutex::new(Some(wakes)),
            last_events: Mutex::default(),
        })
    }

    /// Makes synchronizers `ids` pass now, not at their interval.
    pub fn make_due(&self, ids: &[String]) {
        self.due.mark(ids);
        for id in ids {
            if let Some(id) = crate::spec::ObjectId::parse(id) {
                let _ = self
                    .woke
                    .unbounded_send(ObjectRef::new(&id.name).within(&id.namespace));
            }
        }
    }

    /// The synchronizers events made due, as a stream for the
    /// Synchronizer controller's `reconcile_on` (empty after the first
    /// call).
    pub fn due_passes(&self) -> UnboundedReceiver<ObjectRef<Synchronizer>> {
        self.wakes
            .lock()
            .expect("not poisoned")
            .take()
            .unwrap_or_else(|| unbounded().1)
    }

    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    pub fn ready(&self) -> bool {
        self.ready.is_ready()
    }

    /// The structures runs changed, as a stream for the Structure
    /// controller's `reconcile_on` (empty after the first call).
    pub fn structure_changes(&self) -> UnboundedReceiver<ObjectRef<Structure>> {
        self.changes
            .lock()
            .expect("not poisoned")
            .take()
            .unwrap_or_else(|| unbounded().1)
    }

    /// Asks for the status of structure `id` (`namespace/name`) to be
    /// reported again, after a run changed its content.
    pub fn structure_changed(&self, id: &str) {
        if let Some(id) = crate::spec::ObjectId::parse(id) {
            // Nobody listening (the tests) is fine: the refresh comes later.
            let _ = self
                .changed
                .unbounded_send(ObjectRef::new(&id.name).within(&id.namespace));
        }
    }

    /// The store, for reads.
    pub fn store(&self) -> &SqliteStore {
        &self.reader
    }

    /// Every watched object as one catalog, and the problems found in it.
    pub fn catalog(&self) -> (Catalog, Vec<SpecError>) {
        let (catalog, mut errors) = self.watched();
        // A local tracker writes a file of the controller's own: only
        // under the folder it was given, so that nobody can point one at
        // the store or anything else.
        for tracker in &catalog.trackers {
            let Some(path) = local_issues_file(tracker) else {
                continue;
            };
            let inside = self.local_root.as_ref().is_some_and(|root| {
                path.is_absolute()
                    && std::fs::canonicalize(&path)
                        .is_ok_and(|p| std::fs::canonicalize(root).is_ok_and(|r| p.starts_with(r)))
            });
            if !inside {
                errors.push(tracker.origin.error(
                    "spec.local.path",
                    match &self.local_root {
                        Some(root) => format!(
                            "a local tracker in the cluster must name an absolute path inside {} (the controller's --local-trackers)",
                            root.display()
                        ),
                        None => "local trackers are refused in the cluster unless the controller runs with --local-trackers DIR; use a redmine or jira tracker".into(),
                    },
                ));
            }
        }
        (catalog, errors)
    }

    fn watched(&self) -> (Catalog, Vec<SpecError>) {
        fn all<K: Clone + Resource<DynamicType = ()> + 'static>(store: &Store<K>) -> Vec<K>
        where
            K::DynamicType: std::hash::Hash + Eq + Clone,
        {
            store.state().iter().map(|k| (**k).clone()).collect()
        }
        Catalog::assemble(
            all(&self.stores.trackers),
            all(&self.stores.structures),
            all(&self.stores.synchronizers),
            all(&self.stores.resyncs),
        )
    }

    /// The problems of the objects named (by `Kind namespace/name`).
    pub fn problems(errors: &[SpecError], objects: &[String]) -> Vec<String> {
        errors
            .iter()
            .filter(|e| objects.iter().any(|o| e.file.as_os_str() == o.as_str()))
            .map(ToString::to_string)
            .collect()
    }

    /// The key of one tracker (`namespace/name`), read now from the Secret
    /// it names.
    pub async fn credentials(
        &self,
        catalog: &Catalog,
        tracker: &str,
    ) -> Result<Credentials, Error> {
        let mut keys = HashMap::new();
        let Some((namespace, name, key)) =
            catalog.tracker(tracker).and_then(Credentials::secret_of)
        else {
            return Ok(Credentials::Secrets(keys));
        };
        let value = self
            .labelled_secret(&namespace, &name)
            .await?
            .and_then(|data| value_of(&data, &key).map(ApiKey::new));
        keys.insert(format!("{namespace}/{name}/{key}"), value);
        Ok(Credentials::Secrets(keys))
    }

    /// The requester's own key that a Resync's `spec.runAs` names (in the
    /// Resync's namespace), read now; or why it cannot be used.
    pub async fn personal_key(
        &self,
        namespace: &str,
        run_as: &RunAs,
    ) -> Result<Result<PersonalKey, String>, Error> {
        let SecretKeyRef { name, key } = &run_as.secret_ref;
        let source = format!("key {key} of Secret {namespace}/{name}");
        let key = self
            .labelled_secret(namespace, name)
            .await?
            .and_then(|data| {
                Ok(PersonalKey {
                    key: ApiKey::new(value_of(&data, key)?),
                    email: value_of(&data, "email").ok(),
                    source: source.clone(),
                })
            });
        Ok(key.map_err(|why| format!("spec.runAs: {source}: {why}")))
    }

    /// Tracker `id`'s webhook secret, read now from the Secret its
    /// `spec.webhook.secret.secretRef` names (labelled, as every Secret
    /// Trellis reads), or why it cannot be used.
    pub async fn webhook_secret(
        &self,
        catalog: &Catalog,
        id: &str,
    ) -> Result<Result<ApiKey, String>, Error> {
        let tracker = catalog.tracker(id);
        let namespace = tracker
            .and_then(|t| t.resource.metadata.namespace.clone())
            .unwrap_or_else(|| "default".into());
        let reference = tracker
            .and_then(|t| t.resource.spec.webhook.as_ref())
            .and_then(|w| w.secret.secret_ref.as_ref());
        let Some(SecretKeyRef { name, key }) = reference else {
            return Ok(Err(format!(
                "tracker {id}: in a cluster the webhook secret comes from a Secret: set spec.webhook.secret.secretRef"
            )));
        };
        let value = self
            .labelled_secret(&namespace, name)
            .await?
            .and_then(|data| value_of(&data, key).map(ApiKey::new));
        Ok(value
            .map_err(|why| format!("tracker {id}: key {key} of Secret {namespace}/{name}: {why}")))
    }

    /// A Secret's data, if it is labelled for Trellis to send to a tracker.
    async fn labelled_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Result<BTreeMap<String, ByteString>, String>, Error> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        Ok(match secrets.get_opt(name).await? {
            None => Err("the Secret does not exist".to_owned()),
            Some(secret)
                if secret.labels().get(CREDENTIALS_LABEL).map(String::as_str) != Some("true") =>
            {
                Err(format!(
                    "the Secret lacks the label {CREDENTIALS_LABEL}=true that lets Trellis send it to a tracker; add it with `kubectl label secret {name} -n {namespace} {CREDENTIALS_LABEL}=true`"
                ))
            }
            Some(secret) => Ok(secret.data.unwrap_or_default()),
        })
    }

    /// The structure's turn ([`Catalog::turn`]), unless another run holds
    /// it.
    pub fn claim(&self, catalog: &Catalog, structure: &str) -> Option<Claim<'_>> {
        let mut held = vec![structure.to_owned()];
        if let Turn::IssuesFile(issues) = catalog.turn(structure) {
            held.push(format!("issues file {}", issues.display()));
        }
        let mut busy = self.busy.lock().expect("not poisoned");
        if held.iter().any(|key| busy.contains(key)) {
            return None;
        }
        busy.extend(held.iter().cloned());
        Some(Claim {
            busy: &self.busy,
            held,
        })
    }

    pub fn is_busy(&self, structure: &str) -> bool {
        self.busy.lock().expect("not poisoned").contains(structure)
    }

    /// An engine for one run, counted in the queue depth while waiting
    /// for one to be free.
    pub async fn engine(&self) -> Lent<'_> {
        self.metrics.queue_depth.inc();
        let turn = self
            .engines
            .free
            .acquire()
            .await
            .expect("the pool is never closed");
        self.metrics.queue_depth.dec();
        let engine = self.engines.idle.lock().expect("not poisoned").pop();
        Lent {
            engine: Some(engine.expect("a free turn has an idle engine")),
            engines: &self.engines,
            _turn: turn,
        }
    }

    /// The API of `object`'s kind in its namespace.
    pub fn api_of<K>(&self, object: &K) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(
            self.client.clone(),
            &object.namespace().unwrap_or_else(|| "default".into()),
        )
    }

    /// Writes `status` with server-side apply on the status subresource.
    pub async fn patch_status<K, S>(&self, object: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
        S: Serialize,
    {
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        self.api_of(object)
            .patch_status(
                &object.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        Ok(())
    }

    /// Finishes a reconcile: `object`'s status becomes `next` with the
    /// conditions `health` says (transition times kept from the previous
    /// ones), written with server-side apply; then `action`.
    pub async fn finish<K>(
        &self,
        object: &K,
        mut next: K::Status,
        health: Health,
        action: Action,
    ) -> Result<Action, Error>
    where
        K: Reported
            + Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        *K::conditions_of(&mut next) =
            health.conditions(object.conditions(), object.meta().generation);
        self.patch_status(object, &next).await?;
        Ok(action)
    }

    /// Publishes an event about `object`; a failure is logged, not fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an event");
        }
    }
}

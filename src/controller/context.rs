//! What every reconcile shares: the cluster client, the event recorder,
//! metrics, the engine (one run at a time writes the store), the watched
//! objects, leadership, and which structures have a run in flight.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::metrics::Metrics;
use crate::engine::{Credentials, Engine, EngineError};
use crate::spec::{Catalog, Resync, SpecError, Structure, Synchronizer, Tracker};
use crate::store::SqliteStore;
use crate::tracker::redmine::ApiKey;

/// The field manager of every status Trellis writes.
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
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Engine(_) => "engine",
            Error::Finalizer(_) => "finalizer",
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

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub engine: tokio::sync::Mutex<Engine<SqliteStore>>,
    pub stores: Stores,
    pub leading: Arc<AtomicBool>,
    busy: Mutex<HashSet<String>>,
}

/// A structure's turn: while held, no other run touches the structure.
pub struct Claim<'c> {
    busy: &'c Mutex<HashSet<String>>,
    structure: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.busy
            .lock()
            .expect("not poisoned")
            .remove(&self.structure);
    }
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        engine: Engine<SqliteStore>,
        stores: Stores,
        leading: Arc<AtomicBool>,
    ) -> Context {
        Context {
            client,
            recorder,
            metrics,
            engine: tokio::sync::Mutex::new(engine),
            stores,
            leading,
            busy: Mutex::default(),
        }
    }

    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Every watched object as one catalog, and the problems found in it.
    pub fn catalog(&self) -> (Catalog, Vec<SpecError>) {
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

    /// The keys the catalog's trackers name in Secrets, read now.
    pub async fn credentials(&self, catalog: &Catalog) -> Result<Credentials, Error> {
        let mut keys = HashMap::new();
        for tracker in &catalog.trackers {
            let Some((namespace, name, key)) = Credentials::secret_of(tracker) else {
                continue;
            };
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
            let value = secrets
                .get_opt(&name)
                .await?
                .and_then(|s| s.data)
                .and_then(|mut data| data.remove(&key));
            if let Some(value) = value {
                let text = String::from_utf8_lossy(&value.0).trim().to_owned();
                keys.insert(format!("{namespace}/{name}/{key}"), ApiKey::new(text));
            }
        }
        Ok(Credentials::Secrets(keys))
    }

    /// The structure's turn, unless another run holds it.
    pub fn claim(&self, structure: &str) -> Option<Claim<'_>> {
        let mut busy = self.busy.lock().expect("not poisoned");
        busy.insert(structure.to_owned()).then(|| Claim {
            busy: &self.busy,
            structure: structure.to_owned(),
        })
    }

    pub fn is_busy(&self, structure: &str) -> bool {
        self.busy.lock().expect("not poisoned").contains(structure)
    }

    /// The engine, counted in the queue depth while waiting for it.
    pub async fn engine(&self) -> tokio::sync::MutexGuard<'_, Engine<SqliteStore>> {
        self.metrics.queue_depth.inc();
        let engine = self.engine.lock().await;
        self.metrics.queue_depth.dec();
        engine
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
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            &object.namespace().unwrap_or_else(|| "default".into()),
        );
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
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

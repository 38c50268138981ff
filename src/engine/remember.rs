//! The declarations last applied from the command line, kept in the store so
//! that `show`, `status` and `move` work without `-f` (like `kubectl get`).

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Forest, Snapshot};
use crate::spec::{
    Catalog, Declared, Origin, Resync, Structure, Synchronizer, Tracker, local_issues_file,
};
use crate::store::{Store, StoredResource};
use crate::tracker::Tracker as _;

use super::connect::{Credentials, client};
use super::{Engine, EngineError};

impl<S: Store> Engine<S> {
    /// Remembers `catalog`'s declarations, with local paths made absolute.
    pub fn remember(&mut self, catalog: &Catalog) -> Result<(), EngineError> {
        let mut resources = Vec::new();
        for tracker in &catalog.trackers {
            let mut resource = tracker.resource.clone();
            if let (Some(local), Some(path)) =
                (resource.spec.local.as_mut(), local_issues_file(tracker))
            {
                let absolute = std::fs::canonicalize(&path).unwrap_or(path);
                local.path = absolute.display().to_string();
            }
            resources.push(stored("Tracker", &tracker.id(), &resource));
        }
        resources.extend(
            catalog
                .structures
                .iter()
                .map(|d| stored("Structure", &d.id(), &d.resource)),
        );
        resources.extend(
            catalog
                .synchronizers
                .iter()
                .map(|d| stored("Synchronizer", &d.id(), &d.resource)),
        );
        resources.extend(
            catalog
                .resyncs
                .iter()
                .map(|d| stored("Resync", &d.id(), &d.resource)),
        );
        self.store.remember(&resources)?;
        Ok(())
    }
}

fn stored<T: Serialize>(kind: &str, id: &str, resource: &T) -> StoredResource {
    StoredResource {
        kind: kind.to_owned(),
        id: id.to_owned(),
        body: serde_json::to_string(resource).expect("resources serialize"),
    }
}

/// The declarations last applied, as a catalog.
pub fn remembered<S: Store>(store: &S) -> Result<Catalog, EngineError> {
    let origin = Origin::remembered(Path::new("(declarations remembered in the store)"));
    let mut catalog = Catalog::default();
    for resource in store.remembered()? {
        match resource.kind.as_str() {
            "Tracker" => catalog.trackers.push(read::<Tracker>(&resource, &origin)?),
            "Structure" => catalog
                .structures
                .push(read::<Structure>(&resource, &origin)?),
            "Synchronizer" => catalog
                .synchronizers
                .push(read::<Synchronizer>(&resource, &origin)?),
            "Resync" => catalog.resyncs.push(read::<Resync>(&resource, &origin)?),
            _ => {}
        }
    }
    Ok(catalog)
}

fn read<T: DeserializeOwned>(
    resource: &StoredResource,
    origin: &Origin,
) -> Result<Declared<T>, EngineError> {
    let parsed = serde_json::from_str(&resource.body).map_err(|e| {
        EngineError::Invalid(format!(
            "the store's copy of {} {} is unreadable ({e}); apply the declarations again with -f",
            resource.kind, resource.id
        ))
    })?;
    Ok(Declared {
        resource: parsed,
        origin: origin.clone(),
    })
}

/// A structure's stored content and its tracker's issues, for display.
pub async fn structure_view<S: Store>(
    store: &S,
    catalog: &Catalog,
    structure: &str,
) -> Result<(Forest, Snapshot), EngineError> {
    let declared = catalog
        .structure(structure)
        .ok_or_else(|| EngineError::NotFound(format!("structure {structure} is not declared")))?;
    let tracker_id =
        Catalog::referenced(&declared.resource, &declared.resource.spec.tracker_ref.name);
    let tracker = catalog
        .tracker(&tracker_id)
        .ok_or_else(|| EngineError::NotFound(format!("tracker {tracker_id} is not declared")))?;
    let snapshot = client(tracker, &Credentials::CommandLine)?
        .snapshot()
        .await
        .map_err(|source| EngineError::Tracker {
            tracker: tracker_id,
            source,
        })?;
    Ok((store.structure(structure)?.forest, snapshot))
}

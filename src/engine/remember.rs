//! The declarations last applied from the command line, kept in the store so
//! that `show`, `status` and `move` work without `-f` (like `kubectl get`).

use std::collections::HashMap;
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

/// What `show` prints of a structure: its content with its tracker's
/// issues, under a folder named after the structure when it is a portfolio's.
pub struct Section {
    pub folder: Option<String>,
    pub forest: Forest,
    pub snapshot: Snapshot,
}

/// A structure's stored content and its tracker's issues, for display; for
/// a portfolio, each of its structures in a section of its own (an issue
/// may be in several of them, and their trackers' keys may overlap).
pub async fn structure_view<S: Store>(
    store: &S,
    catalog: &Catalog,
    structure: &str,
) -> Result<Vec<Section>, EngineError> {
    let declared = catalog
        .structure(structure)
        .ok_or_else(|| EngineError::NotFound(format!("structure {structure} is not declared")))?;
    let mut snapshots: HashMap<String, Snapshot> = HashMap::new();
    let Some(portfolio) = &declared.resource.spec.portfolio else {
        let snapshot = tracker_snapshot(catalog, declared, &mut snapshots).await?;
        return Ok(vec![Section {
            folder: None,
            forest: store.structure(structure)?.forest,
            snapshot,
        }]);
    };
    let mut sections = Vec::new();
    for reference in &portfolio.structure_refs {
        let id = Catalog::referenced(&declared.resource, &reference.name);
        let member = catalog
            .structure(&id)
            .ok_or_else(|| EngineError::NotFound(format!("structure {id} is not declared")))?;
        sections.push(Section {
            folder: Some(reference.name.clone()),
            snapshot: tracker_snapshot(catalog, member, &mut snapshots).await?,
            forest: store.structure(&id)?.forest,
        });
    }
    Ok(sections)
}

/// The issues of `structure`'s tracker, read once per tracker.
async fn tracker_snapshot(
    catalog: &Catalog,
    structure: &Declared<Structure>,
    snapshots: &mut HashMap<String, Snapshot>,
) -> Result<Snapshot, EngineError> {
    let tracker_id = Catalog::tracker_of(&structure.resource)
        .expect("validated: structures that are not portfolios have a tracker");
    if let Some(snapshot) = snapshots.get(&tracker_id) {
        return Ok(snapshot.clone());
    }
    let tracker = catalog
        .tracker(&tracker_id)
        .ok_or_else(|| EngineError::NotFound(format!("tracker {tracker_id} is not declared")))?;
    let snapshot = client(tracker, &Credentials::CommandLine)?
        .snapshot()
        .await
        .map_err(|source| EngineError::Tracker {
            tracker: tracker_id.clone(),
            source,
        })?;
    snapshots.insert(tracker_id, snapshot.clone());
    Ok(snapshot)
}

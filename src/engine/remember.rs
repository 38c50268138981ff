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

use super::connect::{Credentials, Trackers};
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
    let (mut trackers, mut structures, mut synchronizers, mut resyncs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for resource in store.remembered()? {
        match resource.kind.as_str() {
            "Tracker" => trackers.push(read::<Tracker>(&resource, &origin)?),
            "Structure" => structures.push(read::<Structure>(&resource, &origin)?),
            "Synchronizer" => synchronizers.push(read::<Synchronizer>(&resource, &origin)?),
            "Resync" => resyncs.push(read::<Resync>(&resource, &origin)?),
            _ => {}
        }
    }
    Ok(Catalog::new(trackers, structures, synchronizers, resyncs))
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
    pub tracker: String,
    /// When the issues were read: `None` for a read just now, else the
    /// store's copy from that run.
    pub read_at: Option<jiff::Timestamp>,
}

/// A structure's stored content and its tracker's issues, for display; for
/// a portfolio, each of its structures in a section of its own (an issue
/// may be in several of them, and their trackers' keys may overlap). The
/// issues are the store's copy from the last run that read the tracker
/// (so that showing a structure needs no tracker, and costs no requests),
/// unless `refresh` asks for a read now or no run has read it yet.
pub async fn structure_view<S: Store>(
    store: &S,
    catalog: &Catalog,
    structure: &str,
    refresh: bool,
) -> Result<Vec<Section>, EngineError> {
    let declared = catalog
        .structure(structure)
        .ok_or_else(|| EngineError::NotFound(format!("structure {structure} is not declared")))?;
    let mut issues = Issues {
        store,
        catalog,
        refresh,
        read: HashMap::new(),
    };
    let members = match &declared.resource.spec.portfolio {
        None => vec![(None, structure.to_owned())],
        Some(portfolio) => portfolio
            .structure_refs
            .iter()
            .map(|r| {
                let id = crate::spec::ObjectId::referenced(&declared.resource, &r.name).to_string();
                (Some(r.name.clone()), id)
            })
            .collect(),
    };
    let mut sections = Vec::new();
    for (folder, id) in members {
        let member = catalog
            .structure(&id)
            .ok_or_else(|| EngineError::NotFound(format!("structure {id} is not declared")))?;
        let tracker = member.resource.tracker_id().ok_or_else(|| {
            EngineError::Invalid(format!(
                "structure {id} has no spec.trackerRef: a portfolio's members each sync with a tracker"
            ))
        })?;
        let (snapshot, read_at) = issues.of(&tracker).await?;
        sections.push(Section {
            folder,
            forest: store.structure(&id)?.forest,
            snapshot,
            tracker,
            read_at,
        });
    }
    Ok(sections)
}

/// Each tracker's issues, found once per tracker.
struct Issues<'a, S> {
    store: &'a S,
    catalog: &'a Catalog,
    refresh: bool,
    read: HashMap<String, (Snapshot, Option<jiff::Timestamp>)>,
}

impl<S: Store> Issues<'_, S> {
    async fn of(
        &mut self,
        tracker_id: &str,
    ) -> Result<(Snapshot, Option<jiff::Timestamp>), EngineError> {
        if let Some(found) = self.read.get(tracker_id) {
            return Ok(found.clone());
        }
        let stored = match self.store.mirror(tracker_id)?.read_at {
            Some(at) if !self.refresh => Some(at),
            _ => None,
        };
        let snapshot = match stored {
            Some(_) => Snapshot::new(self.store.mirror_issues(tracker_id)?),
            None => Trackers::new(Credentials::CommandLine)
                .get(self.catalog, tracker_id)?
                .snapshot()
                .await
                .map_err(|source| EngineError::Tracker {
                    tracker: tracker_id.to_owned(),
                    source,
                })?,
        };
        self.read
            .insert(tracker_id.to_owned(), (snapshot.clone(), stored));
        Ok((snapshot, stored))
    }
}

//! Structures: the status shows their rows and version in the store, and
//! `ReadOnly` while a run holds them. Deleting a Structure object keeps its
//! content in the store (`deletionPolicy: Keep`, the default: re-creating
//! it finds rows and history again) or deletes it (`Delete`), under a
//! finalizer so that the choice is carried out before the object goes.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::conditions::{Health, State};
use super::context::{Context, Error};
use crate::engine::EngineError;
use crate::spec::{Catalog, DeletionPolicy, Structure, StructureStatus, resource_id};
use crate::store::Store;

pub const FINALIZER: &str = "trellis.dev/structure-content";
const REFRESH: Duration = Duration::from_secs(60);

pub async fn reconcile(structure: Arc<Structure>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api = ctx.api_of(&*structure);
    finalizer(&api, FINALIZER, structure, |event| async {
        match event {
            Finalizer::Apply(structure) => report(structure, &ctx).await,
            Finalizer::Cleanup(structure) => delete(structure, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn report(structure: Arc<Structure>, ctx: &Context) -> Result<Action, Error> {
    let id = resource_id(&*structure);
    let (_, errors) = ctx.catalog();
    let problems = Context::problems(&errors, &[format!("Structure {id}")]);
    let stored = ctx.store().structure(&id).map_err(EngineError::from)?;
    let read_only = ctx.is_busy(&id);
    let mut next = StructureStatus {
        rows: Some(stored.forest.walk().len() as i64),
        version: Some(stored.version as i64),
        phase: Some(if read_only { "ReadOnly" } else { "Ready" }.into()),
        observed_generation: structure.metadata.generation,
        conditions: Vec::new(),
    };
    let health = if !problems.is_empty() {
        Health::new(State::Stalled, "InvalidSpec", problems.join("; "))
    } else if read_only {
        Health::new(State::Reconciling, "ReadOnly", "a run is changing it")
    } else {
        Health::new(
            State::Ready,
            "Ready",
            format!(
                "{} rows at version {}",
                stored.forest.walk().len(),
                stored.version
            ),
        )
    };
    let previous = structure
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.conditions[..]);
    next.conditions = health.conditions(previous, structure.metadata.generation);
    ctx.patch_status(&*structure, &next).await?;
    Ok(Action::requeue(REFRESH))
}

async fn delete(structure: Arc<Structure>, ctx: &Context) -> Result<Action, Error> {
    let id = resource_id(&*structure);
    if structure.spec.deletion_policy == DeletionPolicy::Delete {
        let (catalog, _) = ctx.catalog();
        let synchronizers: Vec<String> = catalog
            .synchronizers
            .iter()
            .filter(|s| Catalog::referenced(&s.resource, &s.resource.spec.structure_ref.name) == id)
            .map(|s| s.id())
            .collect();
        let _claim = loop {
            if let Some(claim) = ctx.claim(&id) {
                break claim;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ctx.engine().await.delete_structure(&id, &synchronizers)?;
        ctx.event(
            &*structure,
            false,
            "ContentDeleted",
            "Delete",
            "deletionPolicy Delete: rows, journal and jobs removed from the store".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}

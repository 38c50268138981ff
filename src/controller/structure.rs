//! Structures: the status shows their rows and version in the store, and
//! `ReadOnly` while a run holds them (a run of this controller, or of the
//! command line on the same store). Deleting a Structure object keeps its
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
use crate::spec::{
    DeletionPolicy, Structure, StructurePhase as Phase, StructureStatus, resource_id,
};
use crate::store::{HOLD_RENEWAL, Store};

pub const FINALIZER: &str = "trellis.dev/structure-content";
const REFRESH: Duration = Duration::from_secs(60);

#[tracing::instrument(skip_all, fields(kind = "Structure", object = %resource_id(&*structure)))]
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
    // A run of this controller claims the structure; a run anywhere else
    // on the store (`trellis sync`, `trellis resync`) holds it there.
    let holder = if ctx.is_busy(&id) {
        None
    } else {
        ctx.store()
            .structure_holder(&id)
            .map_err(EngineError::from)?
    };
    let read_only = holder.is_some() || ctx.is_busy(&id);
    let rows = stored.forest.walk().len();
    let next = StructureStatus {
        rows: Some(rows as i64),
        version: Some(stored.version as i64),
        phase: Some(if read_only {
            Phase::ReadOnly
        } else {
            Phase::Ready
        }),
        observed_generation: structure.metadata.generation,
        conditions: Vec::new(),
    };
    let health = if !problems.is_empty() {
        Health::new(State::Stalled, "InvalidSpec", problems.join("; "))
    } else if let Some(holder) = &holder {
        Health::new(State::Reconciling, "ReadOnly", format!("held by {holder}"))
    } else if read_only {
        Health::new(State::Reconciling, "ReadOnly", "a run is changing it")
    } else {
        Health::new(
            State::Ready,
            "Ready",
            format!("{rows} rows at version {}", stored.version),
        )
    };
    // Nobody tells this controller when another process lets go: look
    // again as often as a live holder renews its hold.
    let again = if holder.is_some() {
        HOLD_RENEWAL
    } else {
        REFRESH
    };
    ctx.finish(&*structure, next, health, Action::requeue(again))
        .await
}

async fn delete(structure: Arc<Structure>, ctx: &Context) -> Result<Action, Error> {
    let id = resource_id(&*structure);
    if structure.spec.deletion_policy == DeletionPolicy::Delete {
        let (catalog, _) = ctx.catalog();
        let synchronizers: Vec<String> = catalog
            .synchronizers
            .iter()
            .filter(|s| s.resource.structure_id() == id)
            .map(|s| s.id())
            .collect();
        let _claim = loop {
            if let Some(claim) = ctx.claim(&catalog, &id) {
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

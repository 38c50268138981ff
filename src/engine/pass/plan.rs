//! Steps 4 and 5 of a pass: plan exactly as a resync does, from the mirror
//! instead of a fresh full read — the tracker writes the structure won, then
//! `into` over the tracker as those writes leave it — and the guards: the
//! mass-removal limit, and destructive plans held for a person. Planning
//! calls the tracker only for filter queries the mirror cannot answer; the
//! guards call nothing.

use super::Run;
use super::read::{Read, SinceLastPass};
use crate::engine::approval::approves;
use crate::engine::units::{self, Searches, Selected, UnitSource};
use crate::engine::{Engine, EngineError};
use crate::model::{Direction, Forest, Snapshot};
use crate::plan::decide::Decisions;
use crate::plan::{
    Planned, StructureInput, StructurePlan, Summary, TrackerOp, mass_removals, plan_hash,
    plan_structure,
};
use crate::spec::DestructivePasses;
use crate::store::{HeldPlan, Store, SyncState};

/// What a pass plans to do.
pub(super) struct PassPlan {
    /// The structure's changes (the `into` units, and the exporting units
    /// with their tracker operations taken out: those are `writes`).
    pub plan: StructurePlan,
    pub forest: Forest,
    /// The tracker writes the pass makes.
    pub writes: Vec<TrackerOp>,
    /// The filter queries' matches, for the next pass.
    pub searches: Searches,
}

/// Plans the pass. A one-way `from` synchronizer writes everything the
/// structure says; a two-way one only what the structure won.
pub(super) async fn plan_pass(
    run: &Run<'_>,
    since: &SinceLastPass,
    read: &Read,
    decisions: &mut Decisions,
    mut searches: Searches,
) -> Result<PassPlan, EngineError> {
    let (forest, snapshot) = (&since.stored.forest, &read.snapshot);
    let everything = !run.into;
    let mut exported = None;
    if run.from && (everything || decisions.any_not_pulled()) {
        exported = Some(
            plan_in(
                run,
                Direction::From,
                forest.clone(),
                snapshot,
                &mut searches,
            )
            .await?,
        );
    }
    let export_ops: Vec<TrackerOp> = exported
        .iter()
        .flat_map(|p| {
            p.plan
                .units
                .iter()
                .flat_map(|u| u.tracker_ops.iter().cloned())
        })
        .collect();
    let exports = decisions.exports(&export_ops, everything, snapshot, &run.id);
    let exported = exported.map(|mut planned| {
        for unit in &mut planned.plan.units {
            unit.tracker_ops.clear();
        }
        planned
    });
    let planned = match exported {
        Some(planned) if !run.into => planned,
        _ => {
            plan_in(
                run,
                Direction::Into,
                forest.clone(),
                &exports.planned,
                &mut searches,
            )
            .await?
        }
    };
    Ok(PassPlan {
        plan: planned.plan,
        forest: planned.forest,
        writes: exports.writes,
        searches,
    })
}

impl<S: Store> Engine<S> {
    /// The guards, no tracker call: a plan removing more rows than the
    /// synchronizers' limits allow is an error; a destructive one (in the
    /// structure or in the writes) waits for a person under
    /// `safety.destructivePasses: hold` unless `approval` or the
    /// synchronizer's `spec.approvedPlan` is its hash. Returns the plan
    /// held, and what it would have done.
    pub(super) fn hold_destructive(
        &mut self,
        run: &Run<'_>,
        state: &SyncState,
        planned: &mut PassPlan,
        rows_before: usize,
        approval: Option<&str>,
    ) -> Result<Option<(HeldPlan, Summary)>, EngineError> {
        let plan = &mut planned.plan;
        plan.mass_removals = mass_removals(plan, rows_before, |sync| {
            units::removal_limits(run.catalog, sync)
        });
        if let Some(m) = plan.mass_removals.first() {
            return Err(EngineError::MassRemoval(vec![m.message.clone()]));
        }
        let destructive: Vec<String> = plan
            .destructive()
            .into_iter()
            .chain(
                planned
                    .writes
                    .iter()
                    .filter(|op| op.is_destructive())
                    .map(ToString::to_string),
            )
            .collect();
        let policy = run.spec.safety.as_ref().map(|s| s.destructive_passes);
        if destructive.is_empty() || policy.unwrap_or_default() != DestructivePasses::Hold {
            return Ok(None);
        }
        let mut units = plan.units.clone();
        units.push(run.writes_unit(&planned.writes));
        let hash = plan_hash(&plan.base_fingerprint, &units);
        let approved = [approval, run.spec.approved_plan.as_deref()];
        if approved
            .into_iter()
            .flatten()
            .any(|given| approves(given, &hash).is_ok())
        {
            return Ok(None);
        }
        let since = match &state.held_plan {
            Some(held) if held.hash == hash => held.since,
            _ => run.now,
        };
        let held = HeldPlan {
            hash,
            summary: Summary::count(&units).to_string(),
            destructive,
            since,
        };
        tracing::info!(synchronizer = %run.id, hash = %held.hash, summary = %held.summary, "destructive plan held for approval");
        self.store.hold_plan(&run.id, &held)?;
        Ok(Some((held, Summary::count(&units))))
    }
}

/// Plans the structure in one direction. Declared rows are where subtasks
/// and links start from: they take part in `into`, as in a resync.
async fn plan_in(
    run: &Run<'_>,
    direction: Direction,
    forest: Forest,
    snapshot: &Snapshot,
    searches: &mut Searches,
) -> Result<Planned, EngineError> {
    let mut selected = Vec::new();
    if direction == Direction::Into && !run.structure.resource.spec.rows.is_empty() {
        selected.push(Selected {
            source: UnitSource::DeclaredRows,
            direction,
        });
    }
    selected.push(Selected {
        source: run.source(),
        direction,
    });
    let units = units::build(run.catalog, run.structure, &selected, run.client, searches)
        .await
        .map_err(|e| run.tracker_error(e))?;
    plan_structure(
        forest,
        &StructureInput {
            structure: &run.structure_id,
            tracker: &run.tracker_id,
            snapshot,
            units: &units,
            arrangers: &run.arrangers,
        },
    )
    .map_err(|source| EngineError::Plan {
        structure: run.structure_id.clone(),
        source,
    })
}

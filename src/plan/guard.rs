//! The mass-removal guard: a synchronizer may not remove more of a
//! structure in one plan than its limits allow.
//!
//! A filter whose query suddenly matches nothing (a renamed project, a
//! tracker answering from a broken index: BigPicture's corrupted-index case)
//! would otherwise empty the structure. Argo CD refuses to sync to empty for
//! the same reason. By default a synchronizer may remove at most half of the
//! structure's rows; more needs an explicit, reviewed override in its spec.

use serde::Serialize;

use super::{StructureOp, StructurePlan};

/// How much of a structure one synchronizer may remove in one plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RemovalLimits {
    /// At most this many rows (`spec.safety.maxRemovals`), if set.
    pub max_removals: Option<usize>,
    /// At most this share of the rows before the plan (`spec.safety.maxRemovalRatio`).
    pub max_ratio: f64,
    /// Whether `max_ratio` is the default, for the message.
    pub default_ratio: bool,
}

impl RemovalLimits {
    pub const DEFAULT_MAX_RATIO: f64 = 0.5;
}

impl Default for RemovalLimits {
    fn default() -> RemovalLimits {
        RemovalLimits {
            max_removals: None,
            max_ratio: RemovalLimits::DEFAULT_MAX_RATIO,
            default_ratio: true,
        }
    }
}

/// A synchronizer that would remove more rows than its limits allow.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MassRemoval {
    pub synchronizer: String,
    pub structure: String,
    pub removals: usize,
    /// Rows in the structure before the plan.
    pub rows: usize,
    /// The override that would let the plan through, as a spec field and value.
    pub needs: String,
    pub message: String,
}

/// The synchronizers of `plan` that remove more than `limits_of` allows
/// them, out of the `rows` the structure had before the plan.
pub fn mass_removals(
    plan: &StructurePlan,
    rows: usize,
    limits_of: impl Fn(&str) -> RemovalLimits,
) -> Vec<MassRemoval> {
    let mut removers: Vec<(&str, usize)> = Vec::new();
    for unit in &plan.units {
        let removed = unit
            .structure_ops
            .iter()
            .filter(|op| matches!(op, StructureOp::Remove { .. }))
            .count();
        match removers.iter_mut().find(|(s, _)| *s == unit.synchronizer) {
            Some((_, count)) => *count += removed,
            None => removers.push((&unit.synchronizer, removed)),
        }
    }
    removers
        .into_iter()
        .filter(|(_, removals)| *removals > 0)
        .filter_map(|(synchronizer, removals)| {
            let limits = limits_of(synchronizer);
            let (broken, needs) = match limits.max_removals {
                Some(max) if removals > max => (
                    format!("spec.safety.maxRemovals of {max}"),
                    format!("maxRemovals: {removals}"),
                ),
                // Compared in whole per mille, so the suggested ratio passes.
                _ if removals * 1000 > (limits.max_ratio * 1000.0).round() as usize * rows => {
                    let default = if limits.default_ratio {
                        " (the default)"
                    } else {
                        ""
                    };
                    let needed = (removals * 1000).div_ceil(rows.max(1)) as f64 / 1000.0;
                    (
                        format!("spec.safety.maxRemovalRatio of {}{default}", limits.max_ratio),
                        format!("maxRemovalRatio: {needed}"),
                    )
                }
                _ => return None,
            };
            let message = format!(
                "synchronizer {synchronizer} would remove {removals} of the {rows} rows of structure {} ({}%), more than its {broken} allows; nothing was changed. If that is intended (check its query or parameters first), set `safety: {{{needs}}}` in the spec of Synchronizer {synchronizer}, then plan again",
                plan.structure,
                (removals * 100).div_ceil(rows.max(1)),
            );
            Some(MassRemoval {
                synchronizer: synchronizer.to_owned(),
                structure: plan.structure.clone(),
                removals,
                rows,
                needs,
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, RowItem};
    use crate::plan::{Summary, UnitPlan};

    /// A plan in which `ns/f` removes `removals` rows.
    fn removing(removals: usize) -> StructurePlan {
        let remove = StructureOp::Remove {
            row: 1,
            item: RowItem::Issue("P-1".into()),
            from: Position {
                under: None,
                after: None,
            },
        };
        let unit = UnitPlan {
            synchronizer: "ns/f".into(),
            kind: "filter",
            direction: crate::model::Direction::Into,
            round: 1,
            structure_ops: vec![remove; removals],
            tracker_ops: vec![],
            notes: vec![],
        };
        StructurePlan {
            structure: "ns/s".into(),
            tracker: "ns/t".into(),
            summary: Summary::count([&unit]),
            units: vec![unit],
            outline_diff: String::new(),
            base_fingerprint: String::new(),
            hash: String::new(),
            mass_removals: vec![],
        }
    }

    fn ratio(max_ratio: f64) -> RemovalLimits {
        RemovalLimits {
            max_ratio,
            default_ratio: false,
            ..RemovalLimits::default()
        }
    }

    #[test]
    fn half_a_structure_may_go_by_default_but_not_more() {
        assert!(mass_removals(&removing(50), 100, |_| RemovalLimits::default()).is_empty());
        let refused = mass_removals(&removing(51), 100, |_| RemovalLimits::default());
        assert_eq!(refused[0].needs, "maxRemovalRatio: 0.51");
    }

    #[test]
    fn the_suggested_ratio_lets_the_plan_through() {
        for (removals, rows) in [(29, 100), (1, 3), (2, 3), (7, 39)] {
            let refused = mass_removals(&removing(removals), rows, |_| ratio(0.0));
            let needed: f64 = refused[0].needs["maxRemovalRatio: ".len()..]
                .parse()
                .unwrap();
            assert!(
                mass_removals(&removing(removals), rows, |_| ratio(needed)).is_empty(),
                "{removals} of {rows} with {needed}"
            );
        }
    }
}

//! Which synchronizers a run covers, and turning them into planner units.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::{Direction, RowItem};
use crate::plan::{
    AgileRule, DeclaredRow, FilterRule, LinkEnd, LinkScope, LinksRule, Placement, RemovalLimits,
    Rule, StatusRollupRule, UndoRule, Unit,
};
use crate::spec::{
    Catalog, Declared, FilterSpec, Kind, LinkEndSpec, LinkScopeSpec, LinksSpec, Origin, RowSpec,
    Structure, SyncKind, SynchronizerType, supported, unsupported_direction,
};
use crate::tracker::{AnyTracker, Need, Tracker, TrackerError};

use super::{EngineError, primary_direction};

/// What a run covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every enabled synchronizer in its first declared direction, and
    /// every structure's declared rows. (Each pending Resync is a run of its
    /// own, [`Scope::of_resync`], so that its hash is the one its
    /// `approvedPlan` names, in files as in a cluster.)
    Apply,
    /// One synchronizer in one direction: `trellis resync`, or one Resync
    /// object (`resync`, whose job records it as carried out).
    Resync {
        synchronizer: String,
        direction: Direction,
        resync: Option<String>,
    },
    /// The reverse of one job (`trellis undo`), alone on the job's structure.
    Undo {
        structure: String,
        direction: Direction,
        rule: UndoRule,
    },
}

impl Scope {
    /// A resync of `name` (`name` or `namespace/name`), checked against the
    /// directions its type supports.
    pub fn resync(
        catalog: &Catalog,
        name: &str,
        direction: Direction,
    ) -> Result<Scope, EngineError> {
        let id = match catalog.resolve(Kind::Synchronizer, name) {
            Ok(id) => id,
            Err(missing) => {
                if let Ok(structure) = catalog.resolve(Kind::Structure, name)
                    && catalog
                        .structure(&structure)
                        .is_some_and(|s| s.resource.spec.portfolio.is_some())
                {
                    return Err(EngineError::Invalid(format!(
                        "{structure} is a portfolio structure: resync is not available on it (it has no scope of its own); resync the synchronizers of the structures it aggregates"
                    )));
                }
                return Err(EngineError::NotFound(missing.to_string()));
            }
        };
        let sync = catalog.synchronizer(&id).expect("just resolved");
        let kind = sync.resource.spec.type_;
        if !supported(kind).contains(&direction) {
            return Err(EngineError::Invalid(format!(
                "synchronizer {id}: {}",
                unsupported_direction(kind, direction)
            )));
        }
        Ok(Scope::Resync {
            synchronizer: id,
            direction,
            resync: None,
        })
    }

    /// The run of one Resync declaration (`namespace/name`), as the
    /// controller carries it out: its own plan, its own hash.
    pub fn of_resync(catalog: &Catalog, id: &str) -> Result<Scope, EngineError> {
        let resync = catalog
            .resyncs
            .iter()
            .find(|r| r.id() == id)
            .ok_or_else(|| EngineError::NotFound(format!("resync {id} is not declared")))?;
        let spec = &resync.resource.spec;
        Ok(Scope::Resync {
            synchronizer: resync.resource.synchronizer_id(),
            direction: spec.direction.into(),
            resync: Some(id.to_owned()),
        })
    }
}

/// Where a planner unit came from: what its job record and journal name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitSource {
    DeclaredRows,
    Synchronizer { id: String, resync: Option<String> },
    Undo(UndoRule),
}

impl UnitSource {
    pub fn synchronizer(&self) -> Option<&str> {
        match self {
            UnitSource::DeclaredRows | UnitSource::Undo(_) => None,
            UnitSource::Synchronizer { id, .. } => Some(id),
        }
    }

    pub fn resync(&self) -> Option<&str> {
        match self {
            UnitSource::Synchronizer {
                resync: Some(r), ..
            } => Some(r),
            _ => None,
        }
    }

    /// The journal's cause for changes this unit made.
    pub fn cause(&self, kind: &str, direction: Direction) -> String {
        match self {
            UnitSource::DeclaredRows => "declared rows".into(),
            UnitSource::Undo(rule) => format!("undo of job {}", rule.job),
            UnitSource::Synchronizer { id, resync: None } => {
                format!("synchronizer {id} ({kind}, {direction})")
            }
            UnitSource::Synchronizer {
                id,
                resync: Some(r),
            } => {
                format!("resync {r} of synchronizer {id} ({kind}, {direction})")
            }
        }
    }
}

/// A selected unit and the direction it runs in.
pub(super) struct Selected {
    pub source: UnitSource,
    pub direction: Direction,
}

/// The units `scope` runs on `structure`, in planning order: declared rows,
/// then synchronizers that insert rows (filter), then those that arrange
/// them (subtasks, links), then those that read the arrangement (statusRollup).
pub(super) fn select(
    catalog: &Catalog,
    structure: &Declared<Structure>,
    scope: &Scope,
) -> Result<Vec<Selected>, EngineError> {
    let id = structure.id();
    if let Scope::Undo {
        structure: target,
        direction,
        rule,
    } = scope
    {
        // Alone: declared rows or synchronizers would redo what it undoes.
        return Ok(if *target == id {
            vec![Selected {
                source: UnitSource::Undo(rule.clone()),
                direction: *direction,
            }]
        } else {
            Vec::new()
        });
    }
    // synchronizer id → (direction, resync id)
    let mut chosen: BTreeMap<String, (Direction, Option<String>)> = BTreeMap::new();
    match scope {
        Scope::Apply => {
            for sync in catalog.synchronizers_of(&id) {
                if sync.resource.spec.enabled {
                    chosen.insert(sync.id(), (primary_direction(&sync.resource.spec), None));
                }
            }
        }
        Scope::Undo { .. } => unreachable!("returned above"),
        Scope::Resync {
            synchronizer,
            direction,
            resync,
        } => {
            if catalog
                .synchronizers_of(&id)
                .any(|s| &s.id() == synchronizer)
            {
                chosen.insert(synchronizer.clone(), (*direction, resync.clone()));
            }
        }
    }
    let declares_rows = !structure.resource.spec.rows.is_empty();
    if chosen.is_empty() && !(declares_rows && *scope == Scope::Apply) {
        return Ok(Vec::new());
    }
    let mut selected = Vec::new();
    if declares_rows {
        selected.push(Selected {
            source: UnitSource::DeclaredRows,
            direction: Direction::Into,
        });
    }
    let mut syncs: Vec<(u8, String, Direction, Option<String>)> = chosen
        .into_iter()
        .map(|(sync, (direction, resync))| {
            let kind = catalog
                .synchronizer(&sync)
                .expect("selected from the catalog")
                .resource
                .spec
                .type_;
            let order = match kind {
                SynchronizerType::Filter => 0,
                SynchronizerType::Subtasks | SynchronizerType::Links | SynchronizerType::Agile => 1,
                SynchronizerType::StatusRollup => 2,
            };
            (order, sync, direction, resync)
        })
        .collect();
    syncs.sort();
    selected.extend(
        syncs
            .into_iter()
            .map(|(_, id, direction, resync)| Selected {
                source: UnitSource::Synchronizer { id, resync },
                direction,
            }),
    );
    Ok(selected)
}

/// The queries a run asks the tracker (filters, agile, links' filters),
/// and their answers. An incremental pass knows each query's matches from
/// its last pass: it asks only about the issues changed since.
#[derive(Default)]
pub(super) struct Searches {
    earlier: BTreeMap<String, BTreeSet<String>>,
    changed: Vec<String>,
    results: BTreeMap<String, BTreeSet<String>>,
}

impl Searches {
    /// Searches of an incremental pass; a full pass asks every query whole.
    pub fn incremental(
        earlier: BTreeMap<String, BTreeSet<String>>,
        changed: Vec<String>,
        full: bool,
    ) -> Searches {
        Searches {
            earlier: if full { BTreeMap::new() } else { earlier },
            changed,
            results: BTreeMap::new(),
        }
    }

    /// Each query's matches, for the next pass.
    pub fn into_results(self) -> BTreeMap<String, BTreeSet<String>> {
        self.results
    }

    /// `query`'s matches; a query the tracker refuses is named by where it
    /// is declared (`at`: the declaration and its field).
    async fn search(
        &mut self,
        tracker: &AnyTracker,
        query: &str,
        at: (&Origin, &str),
    ) -> Result<HashSet<String>, TrackerError> {
        self.search_in(tracker, query).await.map_err(|e| match e {
            TrackerError::Query { query, message } => TrackerError::Query {
                query,
                message: format!("{message} ({}: {})", at.0.place(at.1), at.1),
            },
            other => other,
        })
    }

    async fn search_in(
        &mut self,
        tracker: &AnyTracker,
        query: &str,
    ) -> Result<HashSet<String>, TrackerError> {
        let matches: BTreeSet<String> = match (self.results.get(query), self.earlier.get(query)) {
            (Some(known), _) => known.clone(),
            (None, Some(earlier)) => {
                let now = tracker.search_among(query, &self.changed).await?;
                let changed: HashSet<&String> = self.changed.iter().collect();
                earlier
                    .iter()
                    .filter(|k| !changed.contains(k))
                    .cloned()
                    .chain(now)
                    .collect()
            }
            (None, None) => tracker.search(query).await?.into_iter().collect(),
        };
        self.results.insert(query.to_owned(), matches.clone());
        Ok(matches.into_iter().collect())
    }
}

/// Where a filter places the issues it adds.
pub(super) fn placement(filter: &FilterSpec) -> Placement {
    match filter.under.as_ref().map(|p| (&p.folder, &p.issue)) {
        Some((Some(folder), _)) => Placement::Folder(folder.clone()),
        Some((None, Some(issue))) => Placement::Issue(issue.clone()),
        _ => Placement::Top,
    }
}

/// Planner units for the selected sources; filters run their query on the tracker.
pub(super) async fn build(
    catalog: &Catalog,
    structure: &Declared<Structure>,
    selected: &[Selected],
    tracker: &AnyTracker,
    searches: &mut Searches,
) -> Result<Vec<Unit>, TrackerError> {
    let mut units = Vec::with_capacity(selected.len());
    for s in selected {
        let (name, rule) = match &s.source {
            UnitSource::DeclaredRows => (
                structure.id(),
                Rule::DeclaredRows(declared(&structure.resource.spec.rows)),
            ),
            UnitSource::Undo(rule) => (format!("job {}", rule.job), Rule::Undo(rule.clone())),
            UnitSource::Synchronizer { id, .. } => {
                let declared = catalog.synchronizer(id).expect("selected from the catalog");
                let resolved = catalog
                    .resolved_synchronizer(id)
                    .expect("a catalog with errors does not plan");
                let origin = &declared.origin;
                let rule = match &resolved.kind {
                    SyncKind::Filter(filter) => Rule::Filter(FilterRule {
                        matches: searches
                            .search(tracker, &filter.query, (origin, "spec.filter.query"))
                            .await?,
                        under: placement(filter),
                        remove: filter.remove,
                    }),
                    SyncKind::Subtasks => Rule::Subtasks,
                    SyncKind::Links(links) => {
                        Rule::Links(links_rule(links, origin, tracker, searches).await?)
                    }
                    SyncKind::Agile(agile) => Rule::Agile(AgileRule {
                        matches: searches
                            .search(tracker, &agile.query, (origin, "spec.agile.query"))
                            .await?,
                        subtasks: agile.subtasks,
                    }),
                    SyncKind::StatusRollup(rollup) => Rule::StatusRollup(StatusRollupRule {
                        statuses: rollup.statuses.clone(),
                        issue_types: rollup.issue_types.clone(),
                        workflow: tracker.workflow().await?,
                    }),
                };
                (id.clone(), rule)
            }
        };
        units.push(Unit {
            name,
            direction: s.direction,
            rule,
        });
    }
    Ok(units)
}

/// The links rule, with its filters run on the tracker.
async fn links_rule(
    links: &LinksSpec,
    origin: &Origin,
    tracker: &AnyTracker,
    searches: &mut Searches,
) -> Result<LinksRule, TrackerError> {
    let parents = match &links.parent_filter {
        Some(query) => Some(
            searches
                .search(tracker, query, (origin, "spec.links.parentFilter"))
                .await?,
        ),
        None => None,
    };
    let children = match &links.child_filter {
        Some(query) => Some(
            searches
                .search(tracker, query, (origin, "spec.links.childFilter"))
                .await?,
        ),
        None => None,
    };
    Ok(LinksRule {
        link_type: links.type_.clone(),
        parent_end: match links.parent_end {
            LinkEndSpec::Source => LinkEnd::Source,
            LinkEndSpec::Target => LinkEnd::Target,
        },
        parents,
        children,
        scope: match links.scope {
            LinkScopeSpec::Structure => LinkScope::Structure,
            LinkScopeSpec::Expand => LinkScope::Expand,
            LinkScopeSpec::All => LinkScope::All,
        },
    })
}

pub(super) fn declared(rows: &[RowSpec]) -> Vec<DeclaredRow> {
    rows.iter()
        .map(|r| DeclaredRow {
            item: match (&r.folder, &r.issue) {
                (Some(folder), _) => RowItem::Folder(folder.clone()),
                (None, Some(issue)) => RowItem::Issue(issue.clone()),
                (None, None) => unreachable!("validated: rows have a folder or an issue"),
            },
            rows: declared(&r.rows),
        })
        .collect()
}

/// Synchronizers on `structure` whose rows go with their parent row.
pub(super) fn arrangers(catalog: &Catalog, structure: &str) -> HashSet<String> {
    catalog
        .synchronizers_of(structure)
        .filter(|s| {
            matches!(
                s.resource.spec.type_,
                SynchronizerType::Subtasks | SynchronizerType::Links | SynchronizerType::Agile
            )
        })
        .map(|s| s.id())
        .collect()
}

/// What a synchronizer needs its tracker to allow: reading, and for the
/// directions it writes the tracker in, what its type writes.
pub fn needs(spec: &crate::spec::SynchronizerSpec) -> Vec<Need> {
    let writes = spec
        .directions
        .iter()
        .any(|&d| Direction::from(d) == Direction::From)
        || supported(spec.type_) == [Direction::From];
    let mut needs = vec![Need::Read];
    if writes {
        needs.extend_from_slice(match spec.type_ {
            SynchronizerType::Filter => &[],
            SynchronizerType::Subtasks => &[Need::SetParents],
            SynchronizerType::Links => &[Need::ChangeLinks],
            SynchronizerType::Agile => &[Need::SetEpics, Need::Rank],
            SynchronizerType::StatusRollup => &[Need::ChangeStatuses],
        });
    }
    needs
}

/// The removal limits of a synchronizer (declared rows never remove rows).
pub(super) fn removal_limits(catalog: &Catalog, synchronizer: &str) -> RemovalLimits {
    let safety = catalog
        .synchronizer(synchronizer)
        .and_then(|s| s.resource.spec.safety.clone())
        .unwrap_or_default();
    RemovalLimits {
        max_removals: safety.max_removals.map(|n| n as usize),
        max_ratio: safety
            .max_removal_ratio
            .unwrap_or(RemovalLimits::DEFAULT_MAX_RATIO),
        default_ratio: safety.max_removal_ratio.is_none(),
    }
}

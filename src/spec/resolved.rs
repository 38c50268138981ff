//! Declarations as validation leaves them, so that the code downstream
//! never asserts again what validation checked: a synchronizer with its
//! structure and tracker resolved, its schedule parsed and its kind
//! carrying its parameters; a tracker's connection with its URL parsed and
//! what its type needs present. The CRD structs stay as the schema needs
//! them; these are built from them once, when a catalog is made
//! ([`Catalog::new`]). An object validation refused has none (in a
//! cluster the others still run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{
    AgileSpec, Catalog, Declared, FilterSpec, JiraDeployment, LinksSpec, Resync, StatusRollupSpec,
    Structure, Synchronizer, SynchronizerType, Tracker, TrackerType, local_issues_file,
};
use crate::plan::Schedule;

/// What a synchronizer does, with what it needs to do it.
#[derive(Clone, Debug)]
pub enum SyncKind {
    Filter(FilterSpec),
    Subtasks,
    Links(LinksSpec),
    Agile(AgileSpec),
    StatusRollup(StatusRollupSpec),
}

/// A valid synchronizer, resolved.
#[derive(Clone, Debug)]
pub struct ResolvedSync {
    pub structure: String,
    /// Its structure's tracker.
    pub tracker: String,
    pub schedule: Schedule,
    pub kind: SyncKind,
}

/// How to reach a valid tracker.
#[derive(Clone, Debug)]
pub enum Connection {
    /// The issues file, resolved against the declaring file.
    Local { issues: PathBuf },
    Redmine {
        url: reqwest::Url,
        project: Option<String>,
        subprojects: bool,
    },
    Jira {
        url: reqwest::Url,
        access: JiraAccess,
        jql: Option<String>,
    },
}

/// A Jira deployment with what signing in to it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JiraAccess {
    Cloud { email: String },
    DataCenter,
}

/// The resolved part of a catalog, by id.
#[derive(Clone, Debug, Default)]
pub(super) struct Resolved {
    synchronizers: HashMap<String, ResolvedSync>,
    trackers: HashMap<String, Connection>,
}

impl Resolved {
    fn of(catalog: &Catalog) -> Resolved {
        Resolved {
            synchronizers: catalog
                .synchronizers
                .iter()
                .filter_map(|s| Some((s.id(), resolve_sync(catalog, s)?)))
                .collect(),
            trackers: catalog
                .trackers
                .iter()
                .filter_map(|t| Some((t.id(), connection(t)?)))
                .collect(),
        }
    }
}

fn resolve_sync(catalog: &Catalog, sync: &Declared<Synchronizer>) -> Option<ResolvedSync> {
    let spec = &sync.resource.spec;
    let structure = sync.resource.structure_id();
    let tracker = catalog.structure(&structure)?.resource.tracker_id()?;
    let kind = match spec.type_ {
        SynchronizerType::Filter => SyncKind::Filter(spec.filter.clone()?),
        SynchronizerType::Subtasks => SyncKind::Subtasks,
        SynchronizerType::Links => SyncKind::Links(spec.links.clone()?),
        SynchronizerType::Agile => SyncKind::Agile(spec.agile.clone()?),
        SynchronizerType::StatusRollup => SyncKind::StatusRollup(spec.status_rollup.clone()?),
    };
    Some(ResolvedSync {
        structure,
        tracker,
        schedule: spec.schedule().ok()?,
        kind,
    })
}

fn connection(tracker: &Declared<Tracker>) -> Option<Connection> {
    let spec = &tracker.resource.spec;
    let url = || spec.url.as_deref()?.parse().ok();
    Some(match spec.type_ {
        TrackerType::Local => Connection::Local {
            issues: local_issues_file(tracker)?,
        },
        TrackerType::Redmine => {
            let redmine = spec.redmine.clone().unwrap_or_default();
            Connection::Redmine {
                url: url()?,
                project: redmine.project,
                subprojects: redmine.subprojects,
            }
        }
        TrackerType::Jira => {
            let jira = spec.jira.clone()?;
            Connection::Jira {
                url: url()?,
                access: match jira.deployment {
                    JiraDeployment::Cloud => JiraAccess::Cloud { email: jira.email? },
                    JiraDeployment::Datacenter => JiraAccess::DataCenter,
                },
                jql: jira.jql,
            }
        }
    })
}

impl Catalog {
    /// A catalog of these declarations, resolved as far as they are valid.
    pub fn new(
        trackers: Vec<Declared<Tracker>>,
        structures: Vec<Declared<Structure>>,
        synchronizers: Vec<Declared<Synchronizer>>,
        resyncs: Vec<Declared<Resync>>,
    ) -> Catalog {
        let mut catalog = Catalog {
            trackers,
            structures,
            synchronizers,
            resyncs,
            resolved: Resolved::default(),
        };
        catalog.resolved = Resolved::of(&catalog);
        catalog
    }

    /// Synchronizer `id`, resolved; `None` when it is not declared or its
    /// declaration is wrong (validation says how).
    pub fn resolved_synchronizer(&self, id: &str) -> Option<&ResolvedSync> {
        self.resolved.synchronizers.get(id)
    }

    /// How to reach tracker `id`; `None` when it is not declared or its
    /// declaration is wrong.
    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.resolved.trackers.get(id)
    }

    /// The enabled synchronizers of the structures on tracker `id`: those
    /// an event in that tracker makes due.
    pub fn synchronizers_on(&self, tracker: &str) -> Vec<String> {
        self.synchronizers
            .iter()
            .filter(|s| s.resource.spec.enabled)
            .map(Declared::id)
            .filter(|id| {
                self.resolved_synchronizer(id)
                    .is_some_and(|r| r.tracker == tracker)
            })
            .collect()
    }

    /// The local trackers and their issues files.
    pub fn local_trackers(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.resolved.trackers.iter().filter_map(|(id, c)| match c {
            Connection::Local { issues } => Some((id.as_str(), issues.as_path())),
            _ => None,
        })
    }

    /// What runs on `structure` must take turns with: the structure, or for
    /// a local tracker its issues file, which every write replaces whole
    /// (two runs writing it at once would make one of them stale).
    pub fn turn(&self, structure: &str) -> Turn {
        let tracker = self
            .structure(structure)
            .and_then(|s| s.resource.tracker_id());
        match tracker.and_then(|t| self.connection(&t)) {
            Some(Connection::Local { issues }) => Turn::IssuesFile(issues.clone()),
            _ => Turn::Structure(structure.to_owned()),
        }
    }
}

/// Runs that never overlap (see [`Catalog::turn`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Turn {
    Structure(String),
    IssuesFile(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_on_one_issues_file_take_turns_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("issues.yaml"), "issues: []\n").unwrap();
        let mut text = String::from(
            "apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: local}
spec: {type: local, local: {path: issues.yaml}}
---
apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: redmine}
spec: {type: redmine, url: 'http://127.0.0.1:3000', credentials: {env: REDMINE_API_KEY}}
",
        );
        for (name, tracker) in [
            ("a", "local"),
            ("b", "local"),
            ("c", "redmine"),
            ("d", "redmine"),
        ] {
            text.push_str(&format!(
                "---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {{name: {name}}}
spec: {{trackerRef: {{name: {tracker}}}}}
"
            ));
        }
        let file = dir.path().join("trellis.yaml");
        std::fs::write(&file, text).unwrap();
        let catalog = Catalog::load(&[file]).unwrap();
        let issues = std::fs::canonicalize(dir.path().join("issues.yaml")).unwrap();
        let on_file = |t: Turn| match t {
            Turn::IssuesFile(path) => std::fs::canonicalize(path).unwrap() == issues,
            Turn::Structure(_) => false,
        };
        assert!(on_file(catalog.turn("default/a")));
        assert_eq!(catalog.turn("default/a"), catalog.turn("default/b"));
        assert_eq!(
            catalog.turn("default/c"),
            Turn::Structure("default/c".into())
        );
        assert_ne!(catalog.turn("default/c"), catalog.turn("default/d"));
    }
}

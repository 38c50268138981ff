//! Object ids and the names people type: one type for `namespace/name`,
//! the references between the kinds resolved in one place, and one
//! resolver for names given on the command line, so that every command
//! finds `team-a/plan` by `plan` alike.

use std::fmt;

use super::{Catalog, Declared, Resync, Structure, Synchronizer};

/// `namespace/name` of a declared object (`default` when it names no
/// namespace).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    pub fn of<T: kube::Resource>(resource: &T) -> ObjectId {
        let meta = resource.meta();
        ObjectId {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// The object `from` refers to by `name`: references stay within a
    /// namespace.
    pub fn referenced<T: kube::Resource>(from: &T, name: &str) -> ObjectId {
        ObjectId {
            namespace: from
                .meta()
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: name.to_owned(),
        }
    }

    /// An id as ids are written, `namespace/name`.
    pub fn parse(id: &str) -> Option<ObjectId> {
        let (namespace, name) = id.split_once('/')?;
        Some(ObjectId {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Synchronizer {
    /// The structure it syncs.
    pub fn structure_id(&self) -> String {
        ObjectId::referenced(self, &self.spec.structure_ref.name).to_string()
    }
}

impl Structure {
    /// The tracker it syncs with (none for a portfolio).
    pub fn tracker_id(&self) -> Option<String> {
        let tracker = self.spec.tracker_ref.as_ref()?;
        Some(ObjectId::referenced(self, &tracker.name).to_string())
    }
}

impl Resync {
    /// The synchronizer it runs.
    pub fn synchronizer_id(&self) -> String {
        ObjectId::referenced(self, &self.spec.synchronizer_ref.name).to_string()
    }
}

/// The kinds a name on the command line can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Structure,
    Synchronizer,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Structure => "structure",
            Kind::Synchronizer => "synchronizer",
        })
    }
}

/// A name that names no object, or more than one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} {id} is not declared (declared: {})", list(.declared))]
    NotDeclared {
        kind: Kind,
        /// The id the name stands for (`default/NAME` for a bare name).
        id: String,
        declared: Vec<String>,
    },
    #[error("{kind} {name} is ambiguous: {}; use namespace/name", .matches.join(", "))]
    Ambiguous {
        kind: Kind,
        name: String,
        matches: Vec<String>,
    },
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

impl Catalog {
    /// The id `name` stands for: `namespace/name` as written; a bare name
    /// is `default/NAME` if that is declared, else the one object of that
    /// name in any namespace.
    pub fn resolve(&self, kind: Kind, name: &str) -> Result<String, NameError> {
        let declared: Vec<String> = match kind {
            Kind::Structure => self.structures.iter().map(Declared::id).collect(),
            Kind::Synchronizer => self.synchronizers.iter().map(Declared::id).collect(),
        };
        if let Some(id) = ObjectId::parse(name) {
            let id = id.to_string();
            return if declared.contains(&id) {
                Ok(id)
            } else {
                Err(NameError::NotDeclared { kind, id, declared })
            };
        }
        let default = format!("default/{name}");
        if declared.contains(&default) {
            return Ok(default);
        }
        let matches: Vec<String> = declared
            .iter()
            .filter(|id| ObjectId::parse(id).is_some_and(|id| id.name == name))
            .cloned()
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(NameError::NotDeclared {
                kind,
                id: default,
                declared,
            }),
            _ => Err(NameError::Ambiguous {
                kind,
                name: name.to_owned(),
                matches,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SynchronizerSpec;

    fn sync(namespace: &str, name: &str) -> Declared<Synchronizer> {
        let spec: SynchronizerSpec = serde_json::from_value(
            serde_json::json!({"structureRef": {"name": "plan"}, "type": "subtasks"}),
        )
        .unwrap();
        let mut resource = Synchronizer::new(name, spec);
        resource.metadata.namespace = Some(namespace.into());
        Declared {
            resource,
            origin: crate::spec::Origin::cluster("Synchronizer", &format!("{namespace}/{name}")),
        }
    }

    #[test]
    fn a_bare_name_finds_default_first_then_the_only_one_anywhere() {
        let synchronizers = vec![
            sync("team-a", "children"),
            sync("default", "epics"),
            sync("team-a", "epics"),
            sync("team-a", "links"),
            sync("team-b", "links"),
        ];
        let catalog = Catalog::new(Vec::new(), Vec::new(), synchronizers, Vec::new());
        let resolve = |name| catalog.resolve(Kind::Synchronizer, name);
        assert_eq!(resolve("children").unwrap(), "team-a/children");
        assert_eq!(resolve("epics").unwrap(), "default/epics");
        assert_eq!(resolve("team-a/epics").unwrap(), "team-a/epics");
        assert!(matches!(resolve("links"), Err(NameError::Ambiguous { .. })));
        let missing = resolve("nope").unwrap_err().to_string();
        assert!(
            missing.starts_with(
                "synchronizer default/nope is not declared (declared: team-a/children"
            ),
            "{missing}"
        );
        assert!(resolve("team-b/children").is_err());
    }
}

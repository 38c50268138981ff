//! Reading declarations from files and directories.
//!
//! `-f` takes files and directories (recursive, `.yaml`/`.yml`,
//! multi-document). Every problem found is reported, each naming the file,
//! line and field; when any is found nothing is returned, so nothing can be
//! written anywhere.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::source::{LineIndex, split_documents};
use super::validate::validate;
use super::{Resync, Structure, Synchronizer, Tracker, TrackerType};

pub const API_VERSION: &str = "trellis.dev/v1alpha1";
const KINDS: &str = "Tracker, Structure, Synchronizer, Resync";

/// One problem in the declarations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one load.
#[derive(Debug, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "{n} error{} in the declarations; nothing was changed",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Where a resource was declared.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: PathBuf,
    /// Lines before the document in its file.
    offset: usize,
    index: LineIndex,
}

impl Origin {
    /// An error about `field` of this resource.
    pub fn error(&self, field: &str, message: impl Into<String>) -> SpecError {
        SpecError {
            file: self.file.clone(),
            line: self.index.line(field).map(|l| l + self.offset),
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// `file:line` of `field`, for messages that point at another declaration.
    pub fn place(&self, field: &str) -> String {
        match self.index.line(field) {
            Some(line) => format!("{}:{}", self.file.display(), line + self.offset),
            None => self.file.display().to_string(),
        }
    }

    /// The origin of a declaration read back from the store (no file to point at).
    pub fn remembered(store: &Path) -> Origin {
        Origin {
            file: store.to_path_buf(),
            offset: 0,
            index: LineIndex::default(),
        }
    }

    /// The origin of an object read from a cluster: errors name it as
    /// `Kind namespace/name` (there is no file or line).
    pub fn cluster(kind: &str, id: &str) -> Origin {
        Origin {
            file: PathBuf::from(format!("{kind} {id}")),
            offset: 0,
            index: LineIndex::default(),
        }
    }

    /// The folder relative paths in this declaration start from.
    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }
}

/// A resource and where it was declared.
#[derive(Clone, Debug)]
pub struct Declared<T> {
    pub resource: T,
    pub origin: Origin,
}

impl<T: kube::Resource> Declared<T> {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        resource_id(&self.resource)
    }
}

/// `namespace/name` of a resource (`default` when it names no namespace).
pub fn resource_id<T: kube::Resource>(resource: &T) -> String {
    super::ObjectId::of(resource).to_string()
}

/// Validated declarations.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub trackers: Vec<Declared<Tracker>>,
    pub structures: Vec<Declared<Structure>>,
    pub synchronizers: Vec<Declared<Synchronizer>>,
    pub resyncs: Vec<Declared<Resync>>,
    /// Built from the above by [`Catalog::new`], the one way to make a
    /// catalog of declarations.
    pub(super) resolved: super::resolved::Resolved,
}

impl Catalog {
    /// Reads and validates every declaration under `paths`.
    pub fn load(paths: &[PathBuf]) -> Result<Catalog, SpecErrors> {
        let mut collector = Collector {
            files: Vec::new(),
            seen: HashSet::new(),
            errors: Vec::new(),
        };
        for path in paths {
            collector.collect(path, &mut Vec::new());
        }
        let Collector {
            files, mut errors, ..
        } = collector;
        let mut parsed: Vec<(PathBuf, Result<Parsed, SpecError>)> = Vec::new();
        for file in files {
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(e) => {
                    errors.push(file_error(&file, format!("cannot read the file: {e}")));
                    continue;
                }
            };
            match crate::yaml::utf8(&bytes) {
                Ok(text) => {
                    for (offset, document) in split_documents(text) {
                        parsed.push((file.clone(), parse_document(&file, offset, document)));
                    }
                }
                Err((line, message)) => errors.push(SpecError {
                    line: Some(line),
                    ..file_error(&file, message)
                }),
            }
        }
        // A directory usually holds the local tracker's issues file next to
        // the declarations: it is data, not a declaration.
        let data_files: HashSet<PathBuf> = parsed
            .iter()
            .filter_map(|(_, p)| match p {
                Ok(Parsed::Tracker(t)) => local_issues_file(t),
                _ => None,
            })
            .map(|p| normalize(&p))
            .collect();
        let (mut trackers, mut structures, mut synchronizers, mut resyncs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (file, result) in parsed {
            if data_files.contains(&normalize(&file)) {
                continue;
            }
            match result {
                Ok(Parsed::Tracker(d)) => trackers.push(d),
                Ok(Parsed::Structure(d)) => structures.push(d),
                Ok(Parsed::Synchronizer(d)) => synchronizers.push(*d),
                Ok(Parsed::Resync(d)) => resyncs.push(d),
                Err(e) => errors.push(e),
            }
        }
        let catalog = Catalog::new(trackers, structures, synchronizers, resyncs);
        // References are only checked when every document parsed: a
        // document that failed would show up as a dangling reference too.
        errors.extend(validate(&catalog, errors.is_empty()));
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(SpecErrors(errors))
        }
    }

    /// A catalog of objects read from a cluster, and every problem found in
    /// them. Unlike files, one wrong object must not stop the others: the
    /// controller reports each problem on the object it belongs to.
    pub fn assemble(
        trackers: Vec<Tracker>,
        structures: Vec<Structure>,
        synchronizers: Vec<Synchronizer>,
        resyncs: Vec<Resync>,
    ) -> (Catalog, Vec<SpecError>) {
        fn declare<T: kube::Resource<DynamicType = ()>>(objects: Vec<T>) -> Vec<Declared<T>> {
            objects
                .into_iter()
                .map(|resource| Declared {
                    origin: Origin::cluster(&T::kind(&()), &resource_id(&resource)),
                    resource,
                })
                .collect()
        }
        let catalog = Catalog::new(
            declare(trackers),
            declare(structures),
            declare(synchronizers),
            declare(resyncs),
        );
        let errors = validate(&catalog, true);
        (catalog, errors)
    }

    pub fn tracker(&self, id: &str) -> Option<&Declared<Tracker>> {
        self.trackers.iter().find(|d| d.id() == id)
    }

    pub fn structure(&self, id: &str) -> Option<&Declared<Structure>> {
        self.structures.iter().find(|d| d.id() == id)
    }

    pub fn synchronizer(&self, id: &str) -> Option<&Declared<Synchronizer>> {
        self.synchronizers.iter().find(|d| d.id() == id)
    }

    pub fn synchronizers_of<'a>(
        &'a self,
        structure: &'a str,
    ) -> impl Iterator<Item = &'a Declared<Synchronizer>> {
        self.synchronizers
            .iter()
            .filter(move |s| s.resource.structure_id() == structure)
    }
}

/// The issues file of a local tracker, resolved against its declaring file.
pub fn local_issues_file(tracker: &Declared<Tracker>) -> Option<PathBuf> {
    let spec = &tracker.resource.spec;
    match spec.type_ {
        TrackerType::Local => spec
            .local
            .as_ref()
            .map(|l| tracker.origin.base_dir().join(&l.path)),
        TrackerType::Redmine | TrackerType::Jira => None,
    }
}

fn normalize(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn file_error(file: &Path, message: String) -> SpecError {
    SpecError {
        file: file.to_path_buf(),
        line: None,
        field: None,
        message,
    }
}

/// The files under the `-f` paths, each real file and directory once
/// (by canonical path: two links to one directory read it once). A link to
/// a directory that contains it would be read forever: it is one error
/// naming the link, and its contents are not read again.
struct Collector {
    files: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
    errors: Vec<SpecError>,
}

impl Collector {
    fn collect(&mut self, path: &Path, ancestors: &mut Vec<PathBuf>) {
        let real = match std::fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) => return self.unreachable(path, e),
        };
        if real.is_dir() {
            if ancestors.contains(&real) {
                return self.errors.push(file_error(
                    path,
                    format!(
                        "symbolic link loop: this leads back to {}, which contains it; remove the link or pass -f the directories you mean",
                        real.display()
                    ),
                ));
            }
            if !self.seen.insert(real.clone()) {
                return;
            }
            let entries = match std::fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) => {
                    return self
                        .errors
                        .push(file_error(path, format!("cannot read the directory: {e}")));
                }
            };
            let mut children: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            ancestors.push(real);
            for child in children {
                let is_yaml = child.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if child.is_dir() || is_yaml {
                    self.collect(&child, ancestors);
                }
            }
            ancestors.pop();
        } else if self.seen.insert(real) {
            self.files.push(path.to_path_buf());
        }
    }

    /// A path that cannot be followed: missing, or a link that leads nowhere.
    fn unreachable(&mut self, path: &Path, error: std::io::Error) {
        let message = if path.is_symlink() {
            format!("is a symbolic link that cannot be followed ({error}); fix or remove the link")
        } else if error.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory".to_owned()
        } else {
            format!("cannot read it: {error}")
        };
        self.errors.push(file_error(path, message));
    }
}

enum Parsed {
    Tracker(Declared<Tracker>),
    Structure(Declared<Structure>),
    // Boxed: the largest variant by some 300 bytes (clippy::large_enum_variant).
    Synchronizer(Box<Declared<Synchronizer>>),
    Resync(Declared<Resync>),
}

/// The fields every document must have, read leniently to pick the kind.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

/// A whole document of one kind, read strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<S> {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: ObjectMeta,
    spec: S,
    /// Accepted so that `kubectl get -o yaml` output loads; never read.
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

fn parse_document(file: &Path, offset: usize, document: &str) -> Result<Parsed, SpecError> {
    let origin = Origin {
        file: file.to_path_buf(),
        offset,
        index: LineIndex::of(document),
    };
    let header: Header = parse(&origin, document)?;
    if header.api_version.is_none() && header.kind.is_none() {
        return Err(SpecError {
            file: origin.file.clone(),
            line: Some(origin.offset + 1),
            field: None,
            message: "not a Trellis declaration (no apiVersion or kind); if this is a local tracker's issues file, check the path in that Tracker's spec.local.path".into(),
        });
    }
    match header.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(origin.error(
                "apiVersion",
                format!("apiVersion {other} is not served by Trellis; use {API_VERSION}"),
            ));
        }
        None => {
            return Err(origin.error(
                "apiVersion",
                format!("apiVersion is missing; add `apiVersion: {API_VERSION}`"),
            ));
        }
    }
    let kind = header.kind.unwrap_or_default();
    match kind.as_str() {
        "Tracker" => declared(origin, document, Tracker::new).map(Parsed::Tracker),
        "Structure" => declared(origin, document, Structure::new).map(Parsed::Structure),
        "Synchronizer" => {
            declared(origin, document, Synchronizer::new).map(|d| Parsed::Synchronizer(Box::new(d)))
        }
        "Resync" => declared(origin, document, Resync::new).map(Parsed::Resync),
        "" => Err(origin.error("kind", format!("kind is missing; use one of {KINDS}"))),
        other => Err(origin.error("kind", format!("unknown kind {other}; use one of {KINDS}"))),
    }
}

fn declared<S, T>(
    origin: Origin,
    document: &str,
    new: fn(&str, S) -> T,
) -> Result<Declared<T>, SpecError>
where
    S: DeserializeOwned,
    T: kube::Resource,
{
    let envelope: Envelope<S> = parse(&origin, document)?;
    let Some(name) = envelope.metadata.name.clone().filter(|n| !n.is_empty()) else {
        return Err(origin.error("metadata", "metadata.name is missing"));
    };
    if !is_dns_label(&name) {
        return Err(origin.error(
            "metadata.name",
            format!("`{name}` is not a valid name: use lower-case letters, digits and '-', at most 63 characters"),
        ));
    }
    let mut resource = new(&name, envelope.spec);
    *resource.meta_mut() = envelope.metadata;
    resource
        .meta_mut()
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    Ok(Declared { resource, origin })
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Parses with serde-saphyr and turns its error into one naming the line and field.
fn parse<T: DeserializeOwned>(origin: &Origin, document: &str) -> Result<T, SpecError> {
    serde_saphyr::from_str(document).map_err(|e| {
        let (line, mut message) = crate::yaml::describe_error(&e);
        if crate::yaml::is_over_budget(&e) {
            message.push_str(
                ", and a declaration is small: if this is a local tracker's issues file, pass -f the declarations and name the file in the Tracker's spec.local.path",
            );
        }
        SpecError {
            file: origin.file.clone(),
            line: line.map(|l| l + origin.offset),
            field: line
                .and_then(|l| origin.index.field_at(l))
                .map(str::to_owned),
            message,
        }
    })
}

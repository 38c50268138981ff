//! Tracker clients from declarations, with their credentials.
//!
//! The command line reads a key from `spec.credentials.env`, else from
//! `spec.credentials.file`; the key is never in the spec, and errors say
//! where Trellis looked, never what it found.

use std::collections::HashMap;

use crate::spec::{
    Catalog, Declared, SpecErrors, Tracker as TrackerResource, TrackerType, local_issues_file,
};
use crate::tracker::redmine::{ApiKey, Retry, Settings};
use crate::tracker::{AnyTracker, LocalTracker, RedmineTracker};

use super::EngineError;

/// Clients for the trackers a run uses, each made on first use and kept
/// for the run (one handshake per tracker).
#[derive(Default)]
pub(super) struct Trackers {
    clients: HashMap<String, AnyTracker>,
}

impl Trackers {
    pub fn get(&mut self, catalog: &Catalog, id: &str) -> Result<&AnyTracker, EngineError> {
        if !self.clients.contains_key(id) {
            let tracker = catalog
                .tracker(id)
                .ok_or_else(|| EngineError::NotFound(format!("tracker {id} is not declared")))?;
            self.clients.insert(id.to_owned(), client(tracker)?);
        }
        Ok(&self.clients[id])
    }
}

pub(super) fn client(tracker: &Declared<TrackerResource>) -> Result<AnyTracker, EngineError> {
    let spec = &tracker.resource.spec;
    match spec.type_ {
        TrackerType::Local => Ok(AnyTracker::Local(LocalTracker::new(
            local_issues_file(tracker).expect("validated local trackers have a path"),
        ))),
        TrackerType::Redmine => {
            let url = spec
                .url
                .as_deref()
                .expect("validated redmine trackers have a url");
            let (key, key_source) = api_key(tracker)?;
            let redmine = spec.redmine.clone().unwrap_or_default();
            let client = RedmineTracker::new(Settings {
                url: url.parse().expect("validated URL"),
                key,
                key_source,
                project: redmine.project,
                subprojects: redmine.subprojects,
                retry: Retry::default(),
            })
            .map_err(|source| EngineError::Tracker {
                tracker: tracker.id(),
                source,
            })?;
            Ok(AnyTracker::Redmine(client))
        }
    }
}

/// The key and a description of where it came from.
fn api_key(tracker: &Declared<TrackerResource>) -> Result<(ApiKey, String), EngineError> {
    let credentials = tracker
        .resource
        .spec
        .credentials
        .clone()
        .unwrap_or_default();
    let refuse = |field: &str, message: String| {
        let error = tracker
            .origin
            .error(field, format!("tracker {}: {message}", tracker.id()));
        EngineError::Spec(SpecErrors(vec![error]))
    };
    if let Some(name) = &credentials.env {
        match std::env::var(name) {
            Ok(key) if !key.trim().is_empty() => {
                return Ok((
                    ApiKey::new(key.trim()),
                    format!("environment variable {name}"),
                ));
            }
            _ if credentials.file.is_some() => {}
            _ => {
                return Err(refuse(
                    "spec.credentials.env",
                    format!(
                        "environment variable {name} is not set or empty; export it with the API key (Redmine: My account → API access key)"
                    ),
                ));
            }
        }
    }
    if let Some(file) = &credentials.file {
        let path = tracker.origin.base_dir().join(file);
        return match std::fs::read_to_string(&path) {
            Ok(key) if !key.trim().is_empty() => {
                Ok((ApiKey::new(key.trim()), format!("file {}", path.display())))
            }
            Ok(_) => Err(refuse(
                "spec.credentials.file",
                format!("{} is empty; write the API key into it", path.display()),
            )),
            Err(e) => Err(refuse(
                "spec.credentials.file",
                format!(
                    "cannot read the API key from {}: {e}{}",
                    path.display(),
                    credentials
                        .env
                        .as_ref()
                        .map(|n| format!(" (environment variable {n} is not set either)"))
                        .unwrap_or_default()
                ),
            )),
        };
    }
    Err(refuse(
        "spec.credentials",
        "the command line reads the API key from spec.credentials.env or spec.credentials.file, and neither is given (secretRef is read by the controller)".into(),
    ))
}

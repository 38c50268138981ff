//! What a person does about a synchronizer's held issues and a stopped
//! synchronizer (`trellis troubleshoot`, a changed spec in a cluster), and
//! a structure's content going with its declaration: checked first, on a
//! store that may be read-only, then carried out.

use super::{Engine, EngineError};
use crate::store::{Release, Store};

/// A person's answers, checked against the store: every key is held by the
/// synchronizer, and a restart is asked only of a stopped one.
#[derive(Debug)]
pub struct Releases {
    synchronizer: String,
    /// Each held issue with its release (`None`: skipped, the tracker's
    /// side stays).
    issues: Vec<(String, Option<Release>)>,
    restart: bool,
}

impl Releases {
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty() && !self.restart
    }
}

impl<S: Store> Engine<S> {
    /// Checks `issues` and `restart` for synchronizer `id`; nothing is
    /// changed, and a wrong key or restart is an error saying so.
    pub fn check_releases(
        &self,
        id: &str,
        issues: Vec<(String, Option<Release>)>,
        restart: bool,
    ) -> Result<Releases, EngineError> {
        let held = self.store.held_issues(id)?;
        if let Some((key, _)) = issues
            .iter()
            .find(|(k, _)| !held.iter().any(|h| &h.issue == k))
        {
            return Err(EngineError::Invalid(format!(
                "{key} is not held by {id}; nothing was changed"
            )));
        }
        if restart && self.store.sync_state(id)?.stopped.is_none() {
            return Err(EngineError::Invalid(format!(
                "{id} was not stopped by the cycle guard; nothing was changed"
            )));
        }
        Ok(Releases {
            synchronizer: id.to_owned(),
            issues,
            restart,
        })
    }

    /// Carries out checked releases: the next pass acts on them.
    pub fn release(&mut self, releases: Releases) -> Result<(), EngineError> {
        for (key, release) in &releases.issues {
            self.store
                .release_issue(&releases.synchronizer, key, *release)?;
        }
        if releases.restart {
            self.store.restart(&releases.synchronizer)?;
        }
        Ok(())
    }

    /// Lets a synchronizer the cycle guard stopped run again, if it was
    /// stopped (a changed spec in a cluster is what a person does about it).
    pub fn restart_if_stopped(&mut self, id: &str) -> Result<bool, EngineError> {
        if self.store.sync_state(id)?.stopped.is_none() {
            return Ok(false);
        }
        self.store.restart(id)?;
        Ok(true)
    }

    /// Removes a structure's rows, journal and jobs, and its synchronizers'
    /// state (`deletionPolicy: Delete`).
    pub fn delete_structure(
        &mut self,
        structure: &str,
        synchronizers: &[String],
    ) -> Result<(), EngineError> {
        Ok(self.store.delete_structure(structure, synchronizers)?)
    }
}

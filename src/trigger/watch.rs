//! Files watched for edits (inotify through `notify`, not a poll): local
//! trackers' issues files, and the store, which `trellis move` and `undo`
//! change from another process. Editors replace a file rather than write
//! it, so the folder is watched and its events matched by file name.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Watches files and calls `changed` with each one edited.
pub struct Files {
    watcher: RecommendedWatcher,
    /// The files watched, by their folder (canonical paths).
    wanted: Arc<Mutex<HashMap<PathBuf, HashSet<PathBuf>>>>,
}

impl Files {
    pub fn new(changed: impl Fn(&Path) + Send + 'static) -> notify::Result<Files> {
        let wanted: Arc<Mutex<HashMap<PathBuf, HashSet<PathBuf>>>> = Arc::default();
        let seen = wanted.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                return;
            }
            let wanted = seen.lock().expect("not poisoned");
            for path in &event.paths {
                let file = canonical_file(path);
                let is_wanted = file
                    .parent()
                    .and_then(|dir| wanted.get(dir))
                    .is_some_and(|files| files.contains(&file));
                if is_wanted {
                    changed(&file);
                }
            }
        })?;
        Ok(Files { watcher, wanted })
    }

    /// Watches exactly `files` from now on (folders no longer needed are
    /// let go). A folder that cannot be watched is said in the log: the
    /// schedule still polls it.
    pub fn set(&mut self, files: impl IntoIterator<Item = PathBuf>) {
        let mut next: HashMap<PathBuf, HashSet<PathBuf>> = HashMap::new();
        for file in files {
            let file = canonical_file(&file);
            if let Some(dir) = file.parent() {
                next.entry(dir.to_path_buf())
                    .or_default()
                    .insert(file.clone());
            }
        }
        let mut wanted = self.wanted.lock().expect("not poisoned");
        for file in next.values().flatten() {
            if !wanted.values().any(|files| files.contains(file)) {
                tracing::info!(file = %file.display(), "watching for edits");
            }
        }
        for dir in wanted.keys().filter(|d| !next.contains_key(*d)) {
            let _ = self.watcher.unwatch(dir);
        }
        for dir in next.keys().filter(|d| !wanted.contains_key(*d)) {
            if let Err(e) = self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(folder = %dir.display(), error = %e, "cannot watch for edits; its schedule still polls");
            }
        }
        *wanted = next;
    }
}

/// `path` with its folder made canonical (the file itself may be gone for
/// a moment while an editor replaces it).
pub fn canonical_file(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .join(name)
        }
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_edit_or_a_replacement_of_a_watched_file_is_reported_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let issues = dir.path().join("issues.yaml");
        std::fs::write(&issues, "issues: []\n").unwrap();
        let (send, receive) = std::sync::mpsc::channel();
        let mut files = Files::new(move |path| send.send(path.to_path_buf()).unwrap()).unwrap();
        files.set([issues.clone()]);
        std::fs::write(dir.path().join("other.yaml"), "x").unwrap();
        // An editor's save: write a new file, rename it over the old one.
        let temporary = dir.path().join(".issues.yaml.swp");
        std::fs::write(&temporary, "issues: [{key: A-1}]\n").unwrap();
        std::fs::rename(&temporary, &issues).unwrap();
        let reported = receive.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(reported, canonical_file(&issues));
        while let Ok(path) = receive.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(path, canonical_file(&issues), "only the watched file");
        }
        files.set([]);
        std::fs::write(&issues, "issues: []\n").unwrap();
        assert!(receive.recv_timeout(Duration::from_millis(300)).is_err());
    }
}

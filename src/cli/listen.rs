//! What wakes a running `trellis sync` before the schedule: the webhook
//! receiver (`--listen`), edits of local trackers' files, and edits of the
//! store by `trellis move` and `undo` in another process.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::engine::webhook_secret;
use crate::spec::{Catalog, EventStatus};
use crate::store::Store;
use crate::tracker::http::ApiKey;
use crate::trigger::receiver::{self, Hooks};
use crate::trigger::webhook::Rejection;
use crate::trigger::{Due, due_for_file, due_for_structure_edit, watch};

/// The receiver's view of a running sync.
struct RunHooks {
    catalog: RwLock<Arc<Catalog>>,
    /// The synchronizers this run passes (`trellis sync NAME…`).
    selected: RwLock<HashSet<String>>,
    due: Arc<Due>,
}

impl RunHooks {
    fn mark(&self, ids: Vec<String>) {
        let selected = self.selected.read().expect("not poisoned");
        let ids: Vec<String> = ids.into_iter().filter(|i| selected.contains(i)).collect();
        self.due.mark(&ids);
    }
}

impl Hooks for RunHooks {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("not poisoned").clone()
    }

    async fn secret(&self, catalog: &Catalog, tracker: &str) -> Result<ApiKey, String> {
        let declared = catalog
            .tracker(tracker)
            .ok_or_else(|| format!("tracker {tracker} is not declared"))?;
        webhook_secret(declared).map_err(|e| e.to_string())
    }

    fn accepted(&self, _tracker: &str, event: &EventStatus) {
        self.mark(event.synchronizers.clone());
    }

    fn rejected(&self, _rejection: &Rejection) {}
}

/// The triggers of one running sync.
pub struct Triggers {
    hooks: Arc<RunHooks>,
    files: watch::Files,
    state: PathBuf,
    /// Each structure's version after the last round: a later one was
    /// made by someone else.
    versions: HashMap<String, u64>,
    /// Marked passes that found their structure held: tried again soon.
    waiting: HashSet<String>,
    /// Whether files are watched (`--no-watch`: not).
    watch: bool,
}

impl Triggers {
    /// Starts receiving on `listen`, if given (the files are watched from
    /// the first [`Triggers::follow`], if `watch`).
    pub async fn start(
        state: &Path,
        catalog: Catalog,
        listen: Option<SocketAddr>,
        watch: bool,
    ) -> anyhow::Result<Triggers> {
        let due = Arc::new(Due::default());
        let hooks = Arc::new(RunHooks {
            catalog: RwLock::new(Arc::new(catalog)),
            selected: RwLock::default(),
            due: due.clone(),
        });
        let store_files = [state.to_path_buf(), wal_of(state)].map(|f| watch::canonical_file(&f));
        let watcher_hooks = hooks.clone();
        let files = watch::Files::new(move |path| {
            if store_files.iter().any(|f| f == path) {
                watcher_hooks.due.wake();
            } else {
                let ids = due_for_file(&watcher_hooks.catalog(), path);
                tracing::info!(file = %path.display(), due = ?ids, "issues file edited");
                watcher_hooks.mark(ids);
            }
        })?;
        if let Some(address) = listen {
            let listener = receiver::bind(address).await?;
            // Said on stderr for scripts and tests that listen on port 0.
            eprintln!("receiving webhooks on http://{}", listener.local_addr()?);
            let hooks = hooks.clone();
            tokio::spawn(async move {
                if let Err(e) = receiver::serve(listener, hooks, std::future::pending()).await {
                    tracing::error!(error = %e, "the webhook receiver stopped");
                }
            });
        }
        Ok(Triggers {
            hooks,
            files,
            state: state.to_path_buf(),
            versions: HashMap::new(),
            waiting: HashSet::new(),
            watch,
        })
    }

    /// Follows the declarations read for a round: the synchronizers it
    /// runs, and the issues files (and the store) to watch.
    pub fn follow(&mut self, catalog: &Catalog, selected: &[String]) {
        *self.hooks.catalog.write().expect("not poisoned") = Arc::new(catalog.clone());
        *self.hooks.selected.write().expect("not poisoned") = selected.iter().cloned().collect();
        if self.watch {
            let issues = catalog.local_trackers().map(|(_, path)| path.to_path_buf());
            self.files
                .set(issues.chain([self.state.clone(), wal_of(&self.state)]));
        }
    }

    /// The synchronizers due now by an event, each with when the first
    /// event for it came: deliveries and file edits since the last round,
    /// edits of their structures by someone else, and marked passes that
    /// waited.
    pub fn take(
        &mut self,
        catalog: &Catalog,
        store: &impl Store,
    ) -> anyhow::Result<HashMap<String, Instant>> {
        let mut due = self.hooks.due.take_all();
        let now = Instant::now();
        for (structure, before) in &self.versions {
            if store.structure_version(structure)? != *before {
                for id in due_for_structure_edit(catalog, structure) {
                    due.entry(id).or_insert(now);
                }
            }
        }
        for id in self.waiting.drain() {
            due.entry(id).or_insert(now);
        }
        let selected = self.hooks.selected.read().expect("not poisoned");
        due.retain(|id, _| selected.contains(id));
        Ok(due)
    }

    /// After a round: the structures' versions as the round left them.
    pub fn settle(&mut self, catalog: &Catalog, store: &impl Store) -> anyhow::Result<()> {
        self.versions.clear();
        for structure in &catalog.structures {
            let id = structure.id();
            self.versions
                .insert(id.clone(), store.structure_version(&id)?);
        }
        Ok(())
    }

    /// A marked pass that found its structure held.
    pub fn wait_for(&mut self, id: &str) {
        self.waiting.insert(id.to_owned());
    }

    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Until an event marks something; then the burst is let finish.
    pub async fn woken(&self) {
        self.hooks.due.woken().await;
        tokio::time::sleep(crate::trigger::DEBOUNCE).await;
    }
}

/// SQLite's write-ahead log beside the store, where commits land first.
fn wal_of(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

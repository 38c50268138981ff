//! What makes a synchronizer pass before its interval: webhook deliveries
//! ([`receiver`], checked by [`webhook`]), edits of local trackers' files
//! and of the store ([`watch`]). Each only marks synchronizers [`Due`]; the
//! pass still reads the tracker, and polling on the schedule stays the
//! truth (Jira Cloud may deliver late or twice, Data Center does not retry,
//! Redmine sends nothing).

pub mod receiver;
pub mod watch;
pub mod webhook;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Direction;
use crate::spec::Catalog;

/// How long a burst of events is collected before the passes they ask for
/// start: a thousand deliveries for one change make one pass.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The synchronizers events have made due, each since the first event
/// that marked it (for the event-to-pass delay), and a wake-up for the
/// loop that runs them.
#[derive(Debug, Default)]
pub struct Due {
    marked: Mutex<HashMap<String, Instant>>,
    wake: tokio::sync::Notify,
}

impl Due {
    /// Marks `ids` due now (an earlier mark of one is kept) and wakes the
    /// loop.
    pub fn mark<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let now = Instant::now();
        let mut marked = self.marked.lock().expect("not poisoned");
        for id in ids {
            marked.entry(id.clone()).or_insert(now);
        }
        drop(marked);
        self.wake.notify_one();
    }

    /// Wakes the loop with nothing marked (the store changed: it looks
    /// for edits itself).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Until something marks or wakes.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Every mark, taken.
    pub fn take_all(&self) -> HashMap<String, Instant> {
        std::mem::take(&mut *self.marked.lock().expect("not poisoned"))
    }

    /// The mark of `id`, taken.
    pub fn take(&self, id: &str) -> Option<Instant> {
        self.marked.lock().expect("not poisoned").remove(id)
    }

    pub fn is_marked(&self, id: &str) -> bool {
        self.marked.lock().expect("not poisoned").contains_key(id)
    }
}

/// The synchronizers an edit of the issues file `path` makes due: those on
/// every local tracker kept in it.
pub fn due_for_file(catalog: &Catalog, path: &Path) -> Vec<String> {
    let file = watch::canonical_file(path);
    catalog
        .local_trackers()
        .filter(|(_, issues)| watch::canonical_file(issues) == file)
        .flat_map(|(tracker, _)| catalog.synchronizers_on(tracker))
        .collect()
}

/// The synchronizers a pass of `synchronizer` that changed rows of
/// `structure` makes due: the structure's other enabled ones, whose plans
/// may read those rows (a filter adds epics; subtasks brings their
/// children). A resync runs all its units in rounds for the same reason;
/// passes that change nothing make nothing due, so they settle.
pub fn due_after_pass(catalog: &Catalog, structure: &str, synchronizer: &str) -> Vec<String> {
    catalog
        .synchronizers
        .iter()
        .filter(|s| s.resource.spec.enabled && s.resource.structure_id() == structure)
        .map(|s| s.id())
        .filter(|id| id != synchronizer)
        .collect()
}

/// The synchronizers a person's edit of `structure` (a move, an undo)
/// makes due: the enabled ones that carry the structure to the tracker.
pub fn due_for_structure_edit(catalog: &Catalog, structure: &str) -> Vec<String> {
    catalog
        .synchronizers
        .iter()
        .filter(|s| s.resource.spec.enabled && s.resource.structure_id() == structure)
        .filter(|s| {
            let spec = &s.resource.spec;
            crate::engine::primary_direction(spec) == Direction::From
                || spec
                    .directions
                    .iter()
                    .any(|&d| Direction::from(d) == Direction::From)
        })
        .map(|s| s.id())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quickstart: a pass of one synchronizer that moved rows makes
    /// the structure's two others due, not itself.
    #[test]
    fn a_pass_that_changed_rows_makes_the_structures_other_synchronizers_due() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let catalog = Catalog::load(&[dir.join("trellis.yaml")]).unwrap();
        let mut due = due_after_pass(&catalog, "default/roadmap", "default/platform-epics");
        due.sort();
        assert_eq!(due, ["default/children", "default/mobile-epics"]);
        assert!(due_after_pass(&catalog, "default/other", "default/children").is_empty());
    }

    #[tokio::test]
    async fn marks_keep_the_first_event_and_wake_one_waiter() {
        let due = Due::default();
        let ids = ["default/a".to_owned(), "default/b".to_owned()];
        due.mark(&ids[..1]);
        let first = due.marked.lock().unwrap()["default/a"];
        due.mark(&ids);
        // The permit of the marks is kept for the next wait.
        tokio::time::timeout(Duration::from_secs(1), due.woken())
            .await
            .expect("a mark wakes the loop");
        assert!(due.is_marked("default/b"));
        assert_eq!(due.take("default/a"), Some(first));
        assert_eq!(due.take_all().len(), 1);
        assert!(due.take_all().is_empty());
    }
}

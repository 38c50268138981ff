//! What a tracker reported at one moment: the planner's view of the tracker.

use std::sync::{Arc, OnceLock};

use foldhash::HashMap;

use sha2::{Digest, Sha256};

use super::Issue;

/// Issues by key, as read in one scan of a tracker.
///
/// Cloning is cheap (the issues are shared); changing an issue copies them
/// first, so the engine, the tracker and the planner hold one copy of a
/// large tracker. The digest is computed once, on first use.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    issues: Arc<HashMap<String, Issue>>,
    digest: Arc<OnceLock<String>>,
}

impl Snapshot {
    pub fn new(issues: impl IntoIterator<Item = Issue>) -> Self {
        Snapshot {
            issues: Arc::new(issues.into_iter().map(|i| (i.key.clone(), i)).collect()),
            digest: Arc::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Issue> {
        self.issues.get(key)
    }

    /// An issue to change; the snapshot stops sharing its issues and its digest.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Issue> {
        self.digest = Arc::default();
        Arc::make_mut(&mut self.issues).get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.issues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    pub fn issues(&self) -> impl Iterator<Item = &Issue> {
        self.issues.values()
    }

    /// Each parent's children, ordered by rank then key.
    pub fn children_by_parent(&self) -> HashMap<&str, Vec<&Issue>> {
        let mut children: HashMap<&str, Vec<&Issue>> = HashMap::default();
        for issue in self.issues.values() {
            if let Some(parent) = &issue.parent {
                children.entry(parent.as_str()).or_default().push(issue);
            }
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        }
        children
    }

    /// A chain of parents that loops back on itself (`A` under `B` under `A`),
    /// listed from the first issue found on the loop, if there is one.
    pub fn parent_cycle(&self) -> Option<Vec<String>> {
        // 1 = on the current chain, 2 = known to end at a root.
        let mut state: HashMap<&str, u8> = HashMap::with_capacity_and_hasher(self.issues.len(), Default::default());
        let mut keys: Vec<&str> = self.issues.keys().map(String::as_str).collect();
        keys.sort_unstable();
        for start in keys {
            let mut chain = Vec::new();
            let mut current = Some(start);
            while let Some(key) = current {
                match state.get(key).copied().unwrap_or(0) {
                    2 => break,
                    1 => {
                        let from = chain.iter().position(|k| *k == key).unwrap_or(0);
                        return Some(chain[from..].iter().map(|k: &&str| k.to_string()).collect());
                    }
                    _ => {
                        state.insert(key, 1);
                        chain.push(key);
                        current = self.issues.get(key).and_then(|i| i.parent.as_deref());
                    }
                }
            }
            for key in chain {
                state.insert(key, 2);
            }
        }
        None
    }

    /// A digest of every issue's content, independent of read order: two
    /// snapshots with the same digest plan the same way.
    pub fn digest(&self) -> &str {
        self.digest.get_or_init(|| {
            let mut keys: Vec<&String> = self.issues.keys().collect();
            keys.sort_unstable();
            let mut hasher = Sha256::new();
            for key in keys {
                hash_issue(&mut hasher, &self.issues[key]);
            }
            hex(&hasher.finalize())
        })
    }
}

/// Feeds every field of an issue to the hasher, each length-prefixed so
/// that no two different issues feed the same bytes.
fn hash_issue(hasher: &mut Sha256, issue: &Issue) {
    fn text(hasher: &mut Sha256, value: &str) {
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    fn optional(hasher: &mut Sha256, value: Option<&str>) {
        match value {
            Some(v) => {
                hasher.update([1]);
                text(hasher, v);
            }
            None => hasher.update([0]),
        }
    }
    text(hasher, &issue.key);
    text(hasher, &issue.summary);
    text(hasher, &issue.issue_type);
    text(hasher, &issue.status);
    optional(hasher, issue.parent.as_deref());
    optional(hasher, issue.epic.as_deref());
    hasher.update((issue.links.len() as u64).to_le_bytes());
    for link in &issue.links {
        text(hasher, &link.link_type);
        text(hasher, &link.target);
    }
    optional(hasher, issue.rank.as_deref());
    match issue.updated {
        Some(t) => {
            hasher.update([1]);
            hasher.update(t.as_nanosecond().to_le_bytes());
        }
        None => hasher.update([0]),
    }
    hasher.update((issue.fields.len() as u64).to_le_bytes());
    for (name, value) in &issue.fields {
        text(hasher, name);
        text(hasher, value);
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(key: &str, parent: Option<&str>) -> Issue {
        Issue {
            key: key.into(),
            summary: key.into(),
            issue_type: "Task".into(),
            status: "Open".into(),
            parent: parent.map(Into::into),
            epic: None,
            links: vec![],
            rank: None,
            updated: None,
            fields: Default::default(),
        }
    }

    #[test]
    fn finds_a_parent_cycle() {
        let s = Snapshot::new([
            issue("A-1", Some("A-2")),
            issue("A-2", Some("A-3")),
            issue("A-3", Some("A-1")),
            issue("A-4", Some("A-1")),
        ]);
        let mut cycle = s.parent_cycle().unwrap();
        cycle.sort();
        assert_eq!(cycle, ["A-1", "A-2", "A-3"]);
    }

    #[test]
    fn no_cycle_in_a_tree() {
        let s = Snapshot::new([
            issue("A-1", None),
            issue("A-2", Some("A-1")),
            issue("A-3", Some("X-9")),
        ]);
        assert_eq!(s.parent_cycle(), None);
    }

    #[test]
    fn digest_ignores_read_order_but_not_content() {
        let a = Snapshot::new([issue("A-1", None), issue("A-2", Some("A-1"))]);
        let b = Snapshot::new([issue("A-2", Some("A-1")), issue("A-1", None)]);
        let c = Snapshot::new([issue("A-2", None), issue("A-1", None)]);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
    }
}

//! What a tracker reported at one moment: the planner's view of the tracker.

use std::sync::{Arc, OnceLock};

use foldhash::HashMap;

use sha2::{Digest, Sha256};

use super::Issue;

/// Issues by key, as read in one scan of a tracker.
///
/// The issues are indexed once: each has a position, and each position the
/// position of its parent, so planners walk parent chains over integers
/// instead of hashing keys (100,000 issues mean millions of steps). Cloning
/// is cheap (the issues are shared); changing an issue copies them first, so
/// the engine, the tracker and the planner hold one copy of a large tracker.
/// The digest is computed once, on first use.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    indexed: Arc<Indexed>,
    digest: Arc<OnceLock<String>>,
}

#[derive(Clone, Debug, Default)]
struct Indexed {
    issues: Vec<Issue>,
    positions: HashMap<String, usize>,
    /// The position of each issue's parent, when the parent is in the snapshot.
    parents: Vec<Option<usize>>,
}

impl Snapshot {
    /// Indexes `issues`; of two issues with one key, the later wins.
    pub fn new(issues: impl IntoIterator<Item = Issue>) -> Self {
        let mut indexed = Indexed::default();
        for issue in issues {
            match indexed.positions.get(&issue.key) {
                Some(&at) => indexed.issues[at] = issue,
                None => {
                    indexed
                        .positions
                        .insert(issue.key.clone(), indexed.issues.len());
                    indexed.issues.push(issue);
                }
            }
        }
        indexed.parents = (0..indexed.issues.len())
            .map(|i| indexed.parent_position(i))
            .collect();
        Snapshot {
            indexed: Arc::new(indexed),
            digest: Arc::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Issue> {
        self.position(key).map(|i| &self.indexed.issues[i])
    }

    /// Changes one issue; the snapshot stops sharing its issues and its digest.
    /// Returns false when there is no such issue.
    pub fn update(&mut self, key: &str, change: impl FnOnce(&mut Issue)) -> bool {
        let Some(at) = self.position(key) else {
            return false;
        };
        self.digest = Arc::default();
        let indexed = Arc::make_mut(&mut self.indexed);
        change(&mut indexed.issues[at]);
        indexed.parents[at] = indexed.parent_position(at);
        true
    }

    pub fn len(&self) -> usize {
        self.indexed.issues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indexed.issues.is_empty()
    }

    /// The issues, in the order the tracker returned them.
    pub fn issues(&self) -> impl Iterator<Item = &Issue> {
        self.indexed.issues.iter()
    }

    /// Where the issue with `key` is (an index below [`Snapshot::len`]).
    pub fn position(&self, key: &str) -> Option<usize> {
        self.indexed.positions.get(key).copied()
    }

    /// The issue at `position`.
    pub fn at(&self, position: usize) -> &Issue {
        &self.indexed.issues[position]
    }

    /// The position of the parent of the issue at `position`, if the parent
    /// is in the snapshot.
    pub fn parent_position(&self, position: usize) -> Option<usize> {
        self.indexed.parents[position]
    }

    /// A chain of parents that loops back on itself (`A` under `B` under `A`),
    /// listed from its smallest key, if there is one. With several loops,
    /// the one reached first in key order, whatever order the tracker used.
    pub fn parent_cycle(&self) -> Option<Vec<String>> {
        self.find_cycle(0..self.len())?;
        // Rare: search again in key order so the report does not depend on
        // the order the tracker returned issues in.
        let mut by_key: Vec<usize> = (0..self.len()).collect();
        by_key.sort_unstable_by(|a, b| self.at(*a).key.cmp(&self.at(*b).key));
        let mut cycle: Vec<String> = self
            .find_cycle(by_key.into_iter())?
            .into_iter()
            .map(|at| self.at(at).key.clone())
            .collect();
        let smallest = (0..cycle.len())
            .min_by(|a, b| cycle[*a].cmp(&cycle[*b]))
            .unwrap_or(0);
        cycle.rotate_left(smallest);
        Some(cycle)
    }

    fn find_cycle(&self, starts: impl Iterator<Item = usize>) -> Option<Vec<usize>> {
        // 0 = not visited, 1 = on the current chain, 2 = known to end at a root.
        let mut state = vec![0u8; self.len()];
        for start in starts {
            let mut chain = Vec::new();
            let mut current = Some(start);
            while let Some(at) = current {
                match state[at] {
                    2 => break,
                    1 => {
                        let from = chain.iter().position(|c| *c == at).unwrap_or(0);
                        return Some(chain.split_off(from));
                    }
                    _ => {
                        state[at] = 1;
                        chain.push(at);
                        current = self.parent_position(at);
                    }
                }
            }
            for at in chain {
                state[at] = 2;
            }
        }
        None
    }

    /// A digest of every issue's content, independent of read order: two
    /// snapshots with the same digest plan the same way.
    pub fn digest(&self) -> &str {
        self.digest.get_or_init(|| {
            // Each issue is hashed where it lies (visiting 100,000 issues in
            // any other order is dominated by cache misses), then the sorted
            // per-issue digests are hashed: the order the tracker used does
            // not matter.
            let mut buffer = Vec::with_capacity(512);
            let mut digests: Vec<[u8; 32]> = self
                .indexed
                .issues
                .iter()
                .map(|issue| {
                    buffer.clear();
                    write_issue(&mut buffer, issue);
                    Sha256::digest(&buffer).into()
                })
                .collect();
            digests.sort_unstable();
            let mut hasher = Sha256::new();
            for digest in &digests {
                hasher.update(digest);
            }
            hex(&hasher.finalize())
        })
    }
}

impl Snapshot {
    /// Each issue's key with a short digest of its content, in tracker order:
    /// what a saved plan keeps to tell later which issues changed.
    pub fn issue_digests(&self) -> Vec<(&str, String)> {
        let mut buffer = Vec::with_capacity(512);
        self.indexed
            .issues
            .iter()
            .map(|issue| {
                buffer.clear();
                write_issue(&mut buffer, issue);
                (issue.key.as_str(), hex(&Sha256::digest(&buffer)[..8]))
            })
            .collect()
    }
}

impl Indexed {
    fn parent_position(&self, at: usize) -> Option<usize> {
        let parent = self.issues[at].parent.as_deref()?;
        self.positions.get(parent).copied()
    }
}

/// Every field of an issue, each length-prefixed so that no two different
/// issues write the same bytes.
fn write_issue(bytes: &mut Vec<u8>, issue: &Issue) {
    fn text(bytes: &mut Vec<u8>, value: &str) {
        bytes.extend_from_slice(&(value.len() as u64).to_le_bytes());
        bytes.extend_from_slice(value.as_bytes());
    }
    fn optional(bytes: &mut Vec<u8>, value: Option<&str>) {
        match value {
            Some(v) => {
                bytes.push(1);
                text(bytes, v);
            }
            None => bytes.push(0),
        }
    }
    text(bytes, &issue.key);
    text(bytes, &issue.summary);
    text(bytes, &issue.issue_type);
    text(bytes, &issue.status);
    optional(bytes, issue.parent.as_deref());
    optional(bytes, issue.epic.as_deref());
    bytes.extend_from_slice(&(issue.links.len() as u64).to_le_bytes());
    for link in &issue.links {
        text(bytes, &link.link_type);
        text(bytes, &link.target);
    }
    optional(bytes, issue.rank.as_deref());
    match issue.updated {
        Some(t) => {
            bytes.push(1);
            bytes.extend_from_slice(&t.as_nanosecond().to_le_bytes());
        }
        None => bytes.push(0),
    }
    bytes.extend_from_slice(&(issue.fields.len() as u64).to_le_bytes());
    for (name, value) in &issue.fields {
        text(bytes, name);
        text(bytes, value);
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

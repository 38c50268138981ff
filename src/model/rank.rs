//! Rank: one order over all of a tracker's issues (Jira's backlog order), as
//! strings whose byte order is the order (see [`Issue::order_key`]).
//!
//! Re-ranking places issues right after (or before) an anchor issue, keeping
//! their relative order, as Jira's rank API does. Trackers that keep ranks as
//! strings (the local one) get new strings strictly between the neighbours
//! in the whole order, so no rank is reused and none collides; the planner
//! does the same on its working snapshot, so a plan sees what it will write.

use serde::{Deserialize, Serialize};

use super::{Issue, Snapshot};

/// Where re-ranked issues go, relative to one other issue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RankAnchor {
    After(String),
    Before(String),
}

impl RankAnchor {
    pub fn issue(&self) -> &str {
        match self {
            RankAnchor::After(key) | RankAnchor::Before(key) => key,
        }
    }
}

impl std::fmt::Display for RankAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RankAnchor::After(key) => write!(f, "after {key}"),
            RankAnchor::Before(key) => write!(f, "before {key}"),
        }
    }
}

/// The characters new ranks are made of (in byte order): readable, and safe
/// in a YAML file without quotes.
const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Issue positions in rank order.
pub fn order(snapshot: &Snapshot) -> Vec<usize> {
    let mut order: Vec<usize> = (0..snapshot.len()).collect();
    // Keys computed once each: comparing `order_key`s would split both keys
    // on every comparison (a fifth of planning a million issues).
    order.sort_by_cached_key(|&at| snapshot.at(at).order_key());
    order
}

/// Whether `issues` already stand right after (or before) `anchor` in
/// rank order, in the order listed: a rank the tracker has.
pub fn placed(snapshot: &Snapshot, issues: &[String], anchor: &RankAnchor) -> bool {
    let keys: Vec<&str> = order(snapshot)
        .into_iter()
        .map(|at| snapshot.at(at).key.as_str())
        .collect();
    let mut expected: Vec<&str> = issues.iter().map(String::as_str).collect();
    match anchor {
        RankAnchor::After(key) => expected.insert(0, key),
        RankAnchor::Before(key) => expected.push(key),
    }
    keys.windows(expected.len())
        .any(|w| w == expected.as_slice())
}

/// Gives `issues` new ranks right after (or before) `anchor`, in the order
/// listed; returns the keys whose rank changed. Issues not in the snapshot
/// are skipped. An anchor without a rank first has every unranked issue
/// ranked in the order they already sort in (unranked issues sort first),
/// so there is a string to place the others against; nothing else moves.
pub fn rerank(snapshot: &mut Snapshot, issues: &[String], anchor: &RankAnchor) -> Vec<String> {
    let mut changed = Vec::new();
    if snapshot
        .get(anchor.issue())
        .is_some_and(|a| a.rank.is_none())
    {
        changed.extend(rank_unranked(snapshot));
    }
    let moving: std::collections::HashSet<&str> = issues.iter().map(String::as_str).collect();
    let rest: Vec<usize> = order(snapshot)
        .into_iter()
        .filter(|at| !moving.contains(snapshot.at(*at).key.as_str()))
        .collect();
    let Some(anchor_at) = rest
        .iter()
        .position(|at| snapshot.at(*at).key == anchor.issue())
    else {
        return changed;
    };
    let rank_of = |i: Option<&usize>| i.and_then(|at| snapshot.at(*at).rank.clone());
    let (lo, hi) = match anchor {
        RankAnchor::After(_) => (
            rank_of(rest.get(anchor_at)),
            rank_of(rest.get(anchor_at + 1)),
        ),
        RankAnchor::Before(_) => (
            anchor_at.checked_sub(1).and_then(|p| rank_of(rest.get(p))),
            rank_of(rest.get(anchor_at)),
        ),
    };
    let present: Vec<&String> = issues
        .iter()
        .filter(|k| snapshot.get(k).is_some())
        .collect();
    let ranks = between_n(lo.as_deref(), hi.as_deref(), present.len());
    for (key, rank) in present.into_iter().zip(ranks) {
        snapshot.update(key, |issue| {
            if issue.rank.as_deref() != Some(rank.as_str()) {
                issue.rank = Some(rank);
                changed.push(issue.key.clone());
            }
        });
    }
    changed
}

/// Ranks every unranked issue, in the order they sort in now, before the
/// first ranked one.
fn rank_unranked(snapshot: &mut Snapshot) -> Vec<String> {
    let order = order(snapshot);
    let unranked: Vec<String> = order
        .iter()
        .map(|at| snapshot.at(*at))
        .take_while(|i| i.rank.is_none())
        .map(|i| i.key.clone())
        .collect();
    let first_ranked = order
        .get(unranked.len())
        .and_then(|at| snapshot.at(*at).rank.clone());
    let ranks = between_n(None, first_ranked.as_deref(), unranked.len());
    for (key, rank) in unranked.iter().zip(ranks) {
        snapshot.update(key, |issue: &mut Issue| issue.rank = Some(rank));
    }
    unranked
}

/// `n` strings in increasing byte order, all strictly between `lo` and `hi`
/// (no bound when `None`); `lo` < `hi`. Bisected, so their length grows
/// with the logarithm of `n`, not with `n`.
pub fn between_n(lo: Option<&str>, hi: Option<&str>, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    fill(lo.map(str::to_owned), hi.map(str::to_owned), n, &mut out);
    out
}

fn fill(lo: Option<String>, hi: Option<String>, n: usize, out: &mut Vec<String>) {
    if n == 0 {
        return;
    }
    let mid = between(lo.as_deref(), hi.as_deref());
    let left = (n - 1) / 2;
    fill(lo, Some(mid.clone()), left, out);
    out.push(mid.clone());
    fill(Some(mid), hi, n - 1 - left, out);
}

/// A string strictly between `lo` and `hi` in byte order. Works on
/// characters, whose order is the byte order of their UTF-8, so any
/// existing rank (Jira's `0|hzzzzz:` included) is a valid bound.
pub fn between(lo: Option<&str>, hi: Option<&str>) -> String {
    let lo: Vec<char> = lo.unwrap_or("").chars().collect();
    let mut hi: Option<Vec<char>> = hi.map(|h| h.chars().collect());
    let mut out = String::new();
    for i in 0.. {
        let l = lo.get(i).copied();
        let h = hi.as_ref().and_then(|h| h.get(i).copied());
        // Once `out` is longer than `lo` with `lo` as its prefix, it is
        // above `lo` whatever follows; `l` is None then.
        let fits = |c: char| l.is_none_or(|l| c > l) && h.is_none_or(|h| c < h);
        let candidates: Vec<char> = DIGITS
            .iter()
            .map(|&d| d as char)
            .filter(|&c| fits(c))
            .collect();
        if !candidates.is_empty() {
            out.push(candidates[candidates.len() / 2]);
            return out;
        }
        match (l, h) {
            // Equal so far: copy and look further.
            (Some(l), Some(h)) if l == h => out.push(l),
            // Below `hi` from here on, so only `lo` bounds the rest.
            (Some(l), _) => {
                out.push(l);
                hi = None;
            }
            // `lo` is a prefix of `out` and `hi` starts with a character
            // below every digit: take any character below it.
            (None, Some(h)) => {
                let below = (0..u32::from(h))
                    .rev()
                    .find_map(char::from_u32)
                    .expect("lo < hi, so something lies below hi here");
                out.push(below);
                return out;
            }
            (None, None) => unreachable!("a digit fits when nothing bounds"),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(key: &str, rank: Option<&str>) -> Issue {
        Issue {
            key: key.into(),
            summary: String::new(),
            issue_type: "Story".into(),
            status: "Open".into(),
            parent: None,
            epic: None,
            links: Vec::new(),
            rank: rank.map(Into::into),
            updated: None,
            fields: Default::default(),
        }
    }

    fn keys_in_order(snapshot: &Snapshot) -> Vec<String> {
        order(snapshot)
            .into_iter()
            .map(|at| snapshot.at(at).key.clone())
            .collect()
    }

    #[test]
    fn between_lies_strictly_between_any_bounds() {
        let cases = [
            (None, None),
            (Some("a"), Some("b")),
            (Some("a"), Some("a0")),
            (Some("a"), Some("a00001")),
            (Some("0|hzzzzz:"), Some("0|i00007:")),
            (Some("zzz"), None),
            (None, Some("0")),
            (None, Some("!")),
            (Some("é"), Some("éa")),
            (Some("1"), Some("2")),
        ];
        for (lo, hi) in cases {
            let mid = between(lo, hi);
            assert!(lo.is_none_or(|l| l < mid.as_str()), "{lo:?} < {mid:?}");
            assert!(hi.is_none_or(|h| mid.as_str() < h), "{mid:?} < {hi:?}");
        }
    }

    #[test]
    fn between_n_is_increasing_unique_and_short() {
        let ranks = between_n(Some("m"), Some("n"), 1000);
        assert_eq!(ranks.len(), 1000);
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
        assert!(ranks.first().unwrap().as_str() > "m" && ranks.last().unwrap().as_str() < "n");
        assert!(ranks.iter().all(|r| r.len() <= 5), "{:?}", ranks.last());
    }

    #[test]
    fn rerank_places_issues_after_or_before_the_anchor_in_the_given_order() {
        let mut snapshot = Snapshot::new([
            issue("P-1", Some("b")),
            issue("P-2", Some("d")),
            issue("P-3", Some("f")),
            issue("P-4", Some("h")),
        ]);
        let moved = rerank(
            &mut snapshot,
            &["P-4".into(), "P-3".into()],
            &RankAnchor::After("P-1".into()),
        );
        assert_eq!(moved, ["P-4", "P-3"]);
        assert_eq!(keys_in_order(&snapshot), ["P-1", "P-4", "P-3", "P-2"]);
        rerank(
            &mut snapshot,
            &["P-2".into()],
            &RankAnchor::Before("P-1".into()),
        );
        assert_eq!(keys_in_order(&snapshot), ["P-2", "P-1", "P-4", "P-3"]);
        let ranks: std::collections::HashSet<_> =
            snapshot.issues().map(|i| i.rank.clone()).collect();
        assert_eq!(ranks.len(), 4, "no rank is shared");
    }

    #[test]
    fn an_unranked_anchor_ranks_the_unranked_issues_in_their_order_first() {
        let mut snapshot = Snapshot::new([
            issue("P-1", None),
            issue("P-2", None),
            issue("P-3", Some("a")),
        ]);
        rerank(
            &mut snapshot,
            &["P-3".into()],
            &RankAnchor::After("P-1".into()),
        );
        assert_eq!(keys_in_order(&snapshot), ["P-1", "P-3", "P-2"]);
        assert!(snapshot.issues().all(|i| i.rank.is_some()));
    }
}

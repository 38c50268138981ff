//! The issues both benchmarks work on: a generated local tracker in five
//! levels (keys PLAT-1.., each issue below the top under a random issue of
//! the level above), the same for the same size.

// Each benchmark uses only part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;

use trellis::model::Issue;

/// The size targets are stated for.
pub const FULL_SIZE: usize = 100_000;
const QUICK_SIZE: usize = 2_000;

/// How big and how often: 100,000 issues and 5 runs; `-- --quick` 2,000
/// issues and 3 runs; `TRELLIS_BENCH_ISSUES=N` another size.
pub struct Config {
    pub issues: usize,
    pub runs: usize,
}

impl Config {
    /// The configuration asked for, at least `min` issues.
    pub fn from_env(min: usize) -> Config {
        // `cargo bench` passes `--bench` to custom harnesses: ignore other arguments.
        let quick = std::env::args().any(|a| a == "--quick");
        let issues = match std::env::var("TRELLIS_BENCH_ISSUES") {
            Ok(n) => n.replace(['_', ','], "").parse().unwrap_or_else(|_| {
                panic!("TRELLIS_BENCH_ISSUES must be a number of issues, not {n:?}")
            }),
            Err(_) if quick => QUICK_SIZE,
            Err(_) => FULL_SIZE,
        };
        assert!(
            issues >= min,
            "the benchmark needs at least {min} issues, not {issues}"
        );
        Config {
            issues,
            runs: if quick { 3 } else { 5 },
        }
    }
}

/// Level sizes in issues per thousand, top (epics) first; the last level
/// takes the rest.
pub const LEVEL_PER_MILLE: [usize; 4] = [1, 9, 90, 400];
pub const LEVEL_TYPES: [&str; 5] = ["Epic", "Feature", "Story", "Task", "Sub-task"];
pub const STATUSES: [&str; 6] = [
    "To Do",
    "In Progress",
    "In Review",
    "Blocked",
    "Done",
    "Open",
];
pub const PRIORITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];
pub const COMPONENTS: [&str; 6] = ["Api", "Billing", "Web", "Mobile", "Search", "Platform"];
pub const VERBS: [&str; 8] = [
    "Migrate", "Refactor", "Document", "Harden", "Speed up", "Redesign", "Test", "Monitor",
];
pub const OBJECTS: [&str; 8] = [
    "invoice export",
    "login flow",
    "search index",
    "payment retries",
    "audit log",
    "user settings page",
    "webhook delivery",
    "report scheduler",
];
pub const SUFFIXES: [&str; 6] = [
    "for the new API",
    "before the release",
    "across all regions",
    "in the admin console",
    "behind a feature flag",
    "for enterprise plans",
];

/// A 64-bit linear congruential generator (Knuth's MMIX constants).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    pub fn in_range(&mut self, range: &Range<usize>) -> usize {
        range.start + self.below(range.len())
    }
}

pub fn key(index: usize) -> String {
    format!("PLAT-{}", index + 1)
}

/// Index ranges of the five levels, top first, summing to `n`.
pub fn levels(n: usize) -> Vec<Range<usize>> {
    let mut sizes: Vec<usize> = LEVEL_PER_MILLE
        .iter()
        .map(|p| (n * p / 1000).max(1))
        .collect();
    sizes.push(n - sizes.iter().sum::<usize>());
    let mut start = 0;
    sizes
        .into_iter()
        .map(|size| {
            start += size;
            start - size..start
        })
        .collect()
}

pub fn summary(rng: &mut Lcg) -> String {
    format!(
        "{} {} {}",
        rng.pick(&VERBS),
        rng.pick(&OBJECTS),
        rng.pick(&SUFFIXES)
    )
}

/// The same issues for the same `n`: keys PLAT-1.. level by level, each
/// issue below the top under a random issue of the level above.
pub fn generate(n: usize) -> Vec<Issue> {
    let mut rng = Lcg(0x7e11_15be_0c4a_2026);
    let levels = levels(n);
    let base = jiff::Timestamp::from_second(1_780_000_000).expect("valid time");
    let mut issues = Vec::with_capacity(n);
    for (level, range) in levels.iter().enumerate() {
        for index in range.clone() {
            let parent = level
                .checked_sub(1)
                .map(|above| key(rng.in_range(&levels[above])));
            let mut fields = BTreeMap::new();
            fields.insert("component".to_owned(), rng.pick(&COMPONENTS).to_owned());
            fields.insert("priority".to_owned(), rng.pick(&PRIORITIES).to_owned());
            let updated = base
                .checked_add(jiff::SignedDuration::from_secs(
                    rng.below(90 * 86_400) as i64
                ))
                .expect("valid time");
            issues.push(Issue {
                key: key(index),
                summary: summary(&mut rng),
                issue_type: LEVEL_TYPES[level].to_owned(),
                status: rng.pick(&STATUSES).to_owned(),
                parent,
                epic: None,
                links: vec![],
                rank: Some(format!("0|{:010}:", rng.next() % 10_000_000_000)),
                updated: Some(updated),
                fields,
            });
        }
    }
    issues
}

/// A local tracker (issues.yaml beside the declarations), one structure, a
/// filter placing the top level and a two-way subtasks synchronizer: what
/// the sync and UI benchmarks run.
pub const DECLARATIONS: &str = "\
apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {name: issues}
spec: {type: local, local: {path: issues.yaml}}
---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {name: roadmap}
spec: {trackerRef: {name: issues}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: top}
spec:
  structureRef: {name: roadmap}
  type: filter
  directions: [into]
  filter: {query: project = PLAT and parent is empty, remove: true}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {name: children}
spec:
  structureRef: {name: roadmap}
  type: subtasks
  directions: [into, from]
";

#[derive(serde::Serialize)]
struct IssuesFile<'a> {
    issues: &'a [Issue],
}

/// Writes `issues` as a local tracker's file; returns its size in bytes.
pub fn write_issues(path: &std::path::Path, issues: &[Issue]) -> usize {
    let text = serde_saphyr::to_string(&IssuesFile { issues }).expect("issues serialize");
    std::fs::write(path, &text).expect("the issues file is written");
    text.len()
}

//! Planning benchmark: a generated local tracker of 100,000 issues in five
//! levels, synced `into` a structure by a top-level filter and subtasks.
//!
//! Targets (2-core machine), at 100,000 issues:
//! - A: planning a full `into` resync into an empty structure ≤ 1 s;
//! - B: planning after 1 % of the issues changed ≤ 200 ms;
//! - peak RSS ≤ 300 MB, outline diff rendering included;
//!
//! and at 1,000,000 issues (ten times Structure for Jira's limit): A ≤ 8 s,
//! peak RSS ≤ 2.5 GB.
//!
//! C (loading the issues from the local tracker's YAML file) is informational.
//!
//! Run with `cargo bench --bench plan`; `-- --quick` (2,000 issues, 3 runs)
//! or `TRELLIS_BENCH_ISSUES=N` picks another size (1000000 for the second
//! set of targets; other sizes have none).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Config, FULL_SIZE, Lcg, STATUSES, generate, key, levels, summary};
use trellis::model::{Direction, Forest, Issue, Snapshot};
use trellis::plan::{
    FilterRule, Placement, Planned, Rule, StructureInput, StructurePlan, Unit, plan_structure,
};
use trellis::tracker::local::Query;
use trellis::tracker::{LocalTracker, Tracker};

const FILTER: &str = "bench/top";
const SUBTASKS: &str = "bench/children";
const TOP_QUERY: &str = "project = PLAT and parent is empty";
const SEARCH_QUERY: &str = "project = PLAT and status != Done";
/// What a size must meet.
struct Targets {
    full: Duration,
    changed: Option<Duration>,
    rss_kb: u64,
}

fn targets(issues: usize) -> Option<Targets> {
    match issues {
        FULL_SIZE => Some(Targets {
            full: Duration::from_millis(1_000),
            changed: Some(Duration::from_millis(200)),
            rss_kb: 300 * 1024,
        }),
        1_000_000 => Some(Targets {
            full: Duration::from_secs(8),
            changed: None,
            rss_kb: 2560 * 1024,
        }),
        _ => None,
    }
}

/// Changes 1 % of the issues in place (distinct issues): half re-parented to
/// another issue of the level above, a quarter renamed, a quarter moved to
/// another status.
fn change_one_percent(snapshot: &mut Snapshot, n: usize) -> [usize; 3] {
    let mut rng = Lcg(0x0001_c4a4_9e5d_2026);
    let levels = levels(n);
    let level_of = |index: usize| {
        levels
            .iter()
            .position(|r| r.contains(&index))
            .expect("in a level")
    };
    let changes = n / 100;
    let reparent = changes / 2;
    let rename = changes / 4;
    let restatus = changes - reparent - rename;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut done = [0; 3];
    for index in order {
        let mut changed = snapshot.get(&key(index)).expect("generated issue").clone();
        let issue = &mut changed;
        let level = level_of(index);
        if done[0] < reparent {
            if level == 0 || levels[level - 1].len() < 2 {
                continue;
            }
            loop {
                let parent = key(rng.in_range(&levels[level - 1]));
                if issue.parent.as_deref() != Some(parent.as_str()) {
                    issue.parent = Some(parent);
                    break;
                }
            }
            done[0] += 1;
        } else if done[1] < rename {
            issue.summary = format!("{} (revised)", summary(&mut rng));
            done[1] += 1;
        } else if done[2] < restatus {
            let status = loop {
                let status = rng.pick(&STATUSES);
                if status != issue.status {
                    break status;
                }
            };
            issue.status = status.to_owned();
            done[2] += 1;
        } else {
            break;
        }
        snapshot.update(&key(index), |issue| *issue = changed);
    }
    done
}

/// What the tracker's filter query matches, as the engine would ask it.
fn matching(snapshot: &Snapshot, query: &str) -> HashSet<String> {
    let query = Query::parse(query).expect("valid query");
    snapshot
        .issues()
        .filter(|i| query.matches(i))
        .map(|i| i.key.clone())
        .collect()
}

fn units(top: HashSet<String>) -> Vec<Unit> {
    vec![
        Unit {
            name: FILTER.into(),
            direction: Direction::Into,
            rule: Rule::Filter(FilterRule {
                matches: top,
                under: Placement::Top,
                remove: true,
            }),
        },
        Unit {
            name: SUBTASKS.into(),
            direction: Direction::Into,
            rule: Rule::Subtasks,
        },
    ]
}

/// Plans from `forest`, which the planner consumes (the engine hands it the
/// content it just read from the store, so copying it is no part of planning).
fn plan(
    forest: Forest,
    snapshot: &Snapshot,
    units: &[Unit],
    arrangers: &HashSet<String>,
) -> Planned {
    let input = StructureInput {
        structure: "bench/roadmap",
        tracker: "bench/issues",
        snapshot,
        units,
        arrangers,
    };
    plan_structure(forest, &input).expect("the generated issues plan")
}

fn applied(forest: &Forest, plan: &StructurePlan) -> Forest {
    let mut forest = forest.clone();
    for unit in &plan.units {
        for op in &unit.structure_ops {
            op.apply(&mut forest).expect("planned operations apply");
        }
    }
    forest
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Runs `f` `runs` times on inputs made by `setup` (not timed), dropping each
/// result before the next run (not timed either: return the inputs with the
/// result so that freeing them is not measured), and returns the timings and
/// the last result.
fn time<I, T>(runs: usize, mut setup: impl FnMut() -> I, mut f: impl FnMut(I) -> T) -> (Stats, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        drop(last.take());
        let input = setup();
        let start = Instant::now();
        let result = f(input);
        times.push(start.elapsed());
        last = Some(result);
    }
    times.sort();
    let stats = Stats {
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
    };
    (stats, last.expect("at least one run"))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}

/// A `kB` figure from /proc/self/status (`VmHWM` = peak RSS, `VmRSS` = now).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Table {
    rows: Vec<String>,
}

impl Table {
    fn header() -> String {
        format!(
            "{:<34} {:>11} {:>11} {:>11} {:>10}  {}",
            "scenario", "median", "min", "max", "target", "result"
        )
    }

    fn print(&self) {
        println!("{}", Table::header());
        for row in &self.rows {
            println!("{row}");
        }
    }

    fn row(&mut self, scenario: &str, stats: &Stats, target: Option<Duration>) {
        let (target_text, verdict) = match target {
            Some(t) => (
                format!("≤ {}", ms(t)),
                if stats.median <= t { "PASS" } else { "FAIL" },
            ),
            None => ("-".to_owned(), "info"),
        };
        self.rows.push(format!(
            "{:<34} {:>11} {:>11} {:>11} {:>10}  {}",
            scenario,
            ms(stats.median),
            ms(stats.min),
            ms(stats.max),
            target_text,
            verdict
        ));
    }
}

fn describe(plan: &StructurePlan) -> String {
    format!(
        "{} ops ({}); outline diff {} bytes, {} lines",
        plan.summary.total(),
        plan.summary,
        plan.outline_diff.len(),
        plan.outline_diff.lines().count()
    )
}

fn main() {
    let config = Config::from_env(100);
    let n = config.issues;
    let targets = targets(n);
    let sizes: Vec<String> = levels(n).iter().map(|r| r.len().to_string()).collect();
    println!(
        "trellis plan benchmark: {n} issues in 5 levels ({}), {} runs per scenario{}",
        sizes.join(" / "),
        config.runs,
        if targets.is_some() {
            ""
        } else {
            " — targets apply to 100000 and 1000000 issues only"
        }
    );

    let start = Instant::now();
    // Each run plans from a freshly read snapshot (its digest not computed
    // yet, as after a tracker read) and consumes a forest, as the engine does.
    let fresh = || Snapshot::new(generate(n));
    let snapshot = fresh();
    println!(
        "generated in {}; RSS before planning {}",
        ms(start.elapsed()),
        mb(status_kb("VmRSS"))
    );
    let arrangers: HashSet<String> = [SUBTASKS.to_owned()].into();
    let mut table = Table { rows: vec![] };
    let mut notes = vec![];

    // A: a full `into` resync into an empty structure.
    let top = matching(&snapshot, TOP_QUERY);
    let units_a = units(top.clone());
    drop(snapshot);
    let (stats, (planned_a, _)) = time(
        config.runs,
        || (Forest::new(), fresh()),
        |(forest, snapshot)| (plan(forest, &snapshot, &units_a, &arrangers), snapshot),
    );
    table.row(
        "A full into resync",
        &stats,
        targets.as_ref().map(|t| t.full),
    );
    notes.push(format!("A: {}", describe(&planned_a.plan)));
    let synced = applied(&Forest::new(), &planned_a.plan);
    assert_eq!(
        synced.walk(),
        planned_a.forest.walk(),
        "replaying gives the planned forest"
    );
    assert_eq!(synced.len(), n, "every issue has a row after the resync");
    drop(planned_a);
    let peak_after_a = status_kb("VmHWM");

    // Nothing changed: the resync finds nothing to do (informational).
    let (stats, (again, _)) = time(
        config.runs,
        || (synced.clone(), fresh()),
        |(forest, snapshot)| (plan(forest, &snapshot, &units_a, &arrangers), snapshot),
    );
    assert_eq!(
        again.plan.summary.total(),
        0,
        "planning after applying finds nothing to do"
    );
    assert!(again.plan.outline_diff.is_empty());
    table.row("A' resync again, nothing changed", &stats, None);
    drop(again);

    // B: 1 % of the issues changed in the tracker.
    let changed = || {
        let mut snapshot = fresh();
        let counts = change_one_percent(&mut snapshot, n);
        (snapshot, counts)
    };
    let (snapshot, [reparented, renamed, restatused]) = changed();
    let top_b = matching(&snapshot, TOP_QUERY);
    assert_eq!(top_b, top, "the top level does not change");
    drop(snapshot);
    let units_b = units(top_b);
    let (stats, (planned_b, _)) = time(
        config.runs,
        || (synced.clone(), changed().0),
        |(forest, snapshot)| (plan(forest, &snapshot, &units_b, &arrangers), snapshot),
    );
    table.row(
        "B 1 % changed",
        &stats,
        targets.as_ref().and_then(|t| t.changed),
    );
    notes.push(format!(
        "B: {reparented} re-parented, {renamed} renamed, {restatused} status changes → {}",
        describe(&planned_b.plan)
    ));
    drop(planned_b);
    let peak_planning = status_kb("VmHWM");
    drop((synced, units_a, units_b));

    println!();
    table.print();
    println!();
    for note in &notes {
        println!("{note}");
    }
    println!();
    let (rss_target, verdict) = match &targets {
        None => ("-".to_owned(), "n/a (size)"),
        Some(t) => (
            format!("≤ {}", mb(t.rss_kb)),
            if peak_planning <= t.rss_kb {
                "PASS"
            } else {
                "FAIL"
            },
        ),
    };
    println!(
        "peak RSS (VmHWM) after scenario A:       {}",
        mb(peak_after_a)
    );
    println!(
        "peak RSS (VmHWM) after planning (A, B):  {}  target {rss_target}  {verdict}",
        mb(peak_planning)
    );

    load(n, config.runs);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IssuesFile {
    issues: Vec<Issue>,
}

/// C: loading the same issues from the local tracker's YAML file (informational).
fn load(n: usize, runs: usize) {
    println!();
    println!("C: loading {n} issues from a local tracker YAML file (informational)");
    let mut table = Table { rows: vec![] };
    let mut notes = vec![];
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("issues.yaml");
    let start = Instant::now();
    let text = serde_saphyr::to_string(&IssuesFile {
        issues: generate(n),
    })
    .expect("issues serialize");
    std::fs::write(&path, &text).expect("the YAML file is written");
    notes.push(format!(
        "C: {} YAML file written in {} (serde-saphyr to_string + write)",
        mb(text.len() as u64 / 1024),
        ms(start.elapsed())
    ));
    drop(text);

    let (stats, tracker) = time(
        runs.min(3),
        || (),
        |()| {
            let tracker = LocalTracker::new(&path);
            let snapshot = block_on(tracker.snapshot()).expect("the issues file reads");
            assert_eq!(snapshot.len(), n);
            tracker
        },
    );
    table.row("C LocalTracker::snapshot()", &stats, None);
    let (stats, found) = time(
        runs,
        || (),
        |()| block_on(tracker.search(SEARCH_QUERY)).expect("query runs"),
    );
    table.row("C search(status != Done)", &stats, None);
    notes.push(format!(
        "C: `{SEARCH_QUERY}` matched {} issues",
        found.len()
    ));
    drop(tracker);

    table.print();
    println!();
    for note in &notes {
        println!("{note}");
    }
    println!(
        "peak RSS (VmHWM) after loading the YAML: {}  (informational)",
        mb(status_kb("VmHWM"))
    );
}

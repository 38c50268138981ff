//! Incremental sync benchmark: one pass (`Engine::sync_pass`) after K = 100
//! changes among N = 100,000 issues of a local tracker, in five levels.
//!
//! The issue's claim: with K changed issues out of N, a pass reads O(K)
//! issues from the tracker plus one query page, not N, and O(K) rows and
//! issues from the store (the neighbourhood of its changes, `rowsLoaded`).
//! "Issues read" is what the tracker returned (`Pass::issues_read`). The
//! local tracker is a YAML file: to find the changed issues it parses the
//! whole file, so its time dominates a pass and the benchmark shows it
//! apart.
//!
//! Scenarios, after one apply and a first (full) pass of each synchronizer:
//! - T: K issues re-parented in the tracker file (`updated` = now), then a
//!   pass of the two-way subtasks synchronizer (K rows move) and one of the
//!   top-level filter synchronizer (nothing to do);
//! - S: K rows moved in the structure (`Engine::move_row`), then the same
//!   two passes (the subtasks one writes K parents to the tracker);
//! - then K drags: top-level rows moved to an explicit place among all the
//!   top-level rows. Each move is timed apart (the target: <= 5 ms).
//!
//! - P: K more tracker changes, then one subtasks pass in a process of its
//!   own, so that its peak RSS is the pass's and not the setup's
//!   (generating N issues, the apply); the local tracker's read of the
//!   changes is measured the same way apart (it parses the whole file and
//!   keeps it for the pass's searches and writes: the tracker's share).
//!
//! Run with `cargo bench --bench sync`; `-- --quick` (2,000 issues, 3 runs)
//! or `TRELLIS_BENCH_ISSUES=N` picks another size.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Config, DECLARATIONS, Lcg, generate, key, levels, write_issues};
use trellis::engine::{Approval, Engine, Pass, Scope};
use trellis::model::Issue;
use trellis::spec::Catalog;
use trellis::store::{SqliteStore, Store};
use trellis::tracker::{LocalTracker, Tracker};

const CHANGES: usize = 100;
const TRACKER: &str = "default/issues";
const STRUCTURE: &str = "default/roadmap";
const FILTER: &str = "default/top";
const SUBTASKS: &str = "default/children";

/// The current time in whole seconds, as trackers show it.
fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("in range")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A `kB` figure from /proc/self/status (`VmHWM` = peak RSS).
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Median, min and max.
fn stats(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    format!(
        "{:>10} {:>10} {:>10}",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    )
}

/// `CHANGES` distinct issues below the top level, each with a new parent:
/// another issue of the level above (not its current parent).
fn pick_changes(issues: &[Issue], seed: u64) -> Vec<(usize, String)> {
    let levels = levels(issues.len());
    let mut rng = Lcg(seed);
    let mut chosen = std::collections::BTreeSet::new();
    let mut changes = Vec::with_capacity(CHANGES);
    while changes.len() < CHANGES {
        let index = levels[1].start + rng.below(issues.len() - levels[1].start);
        let level = levels
            .iter()
            .position(|r| r.contains(&index))
            .expect("in a level");
        let above = &levels[level - 1];
        if above.len() < 2 || !chosen.insert(index) {
            continue;
        }
        let parent = loop {
            let parent = key(rng.in_range(above));
            if issues[index].parent.as_deref() != Some(parent.as_str()) {
                break parent;
            }
        };
        changes.push((index, parent));
    }
    changes
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    engine: Engine<SqliteStore>,
    catalog: Catalog,
    path: PathBuf,
    rows: Vec<String>,
}

impl Bench {
    fn pass(&mut self, id: &str) -> (Duration, Pass) {
        let start = Instant::now();
        let pass = self
            .runtime
            .block_on(
                self.engine
                    .sync_pass(&self.catalog, id, jiff::Timestamp::now(), None),
            )
            .unwrap_or_else(|e| panic!("pass of {id}: {e}"));
        let elapsed = start.elapsed();
        assert!(pass.waiting.is_none() && pass.stopped.is_none(), "{pass:?}");
        assert!(pass.held.is_empty(), "nothing is held: {:?}", pass.held);
        (elapsed, pass)
    }

    fn row(&mut self, scenario: &str, run: usize, id: &str, time: Duration, pass: &Pass) {
        self.rows.push(format!(
            "{scenario:<3} {run:>3}  {id:<17} {:>10} {:>5} {:>7} {:>7} {:>8} {:>9} {:>6} {:>8}  {:>7.0} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
            ms(time),
            if pass.full { "yes" } else { "no" },
            pass.issues_read,
            pass.rows_loaded,
            pass.tracker_changes,
            pass.structure_changes,
            pass.summary.move_,
            pass.summary.tracker_updates,
            pass.timings.read_ms,
            pass.timings.mirror_ms,
            pass.timings.plan_ms,
            pass.timings.write_ms,
            pass.timings.commit_ms,
        ));
    }
}

fn header() -> String {
    format!(
        "{:<3} {:>3}  {:<17} {:>10} {:>5} {:>7} {:>7} {:>8} {:>9} {:>6} {:>8}  {:>7} {:>7} {:>7} {:>7} {:>7}",
        "",
        "run",
        "synchronizer",
        "time",
        "full",
        "read",
        "rows",
        "tracker",
        "structure",
        "moves",
        "written",
        "read ms",
        "mirror",
        "plan ms",
        "write ms",
        "commit ms"
    )
}

/// Set in the bench's own child processes: `pass` or `read` (see P above),
/// with [`CHILD_DIR`] the folder of the store and the declarations.
const CHILD: &str = "TRELLIS_BENCH_CHILD";
const CHILD_DIR: &str = "TRELLIS_BENCH_CHILD_DIR";

/// What a child prints: the pass's time and report fields (or the issues
/// read), then its peak RSS in kB, one per line.
fn child(mode: &str, dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let start = Instant::now();
    match mode {
        "read" => {
            let tracker = LocalTracker::new(dir.join("issues.yaml"));
            let from = now() - jiff::SignedDuration::from_secs(60);
            let found = runtime
                .block_on(tracker.changed_since(from))
                .expect("the file reads")
                .len();
            println!("{} {found}", start.elapsed().as_secs_f64() * 1000.0);
        }
        _ => {
            let catalog =
                Catalog::load(&[dir.join("trellis.yaml")]).expect("the declarations load");
            let mut engine = Engine::new(
                SqliteStore::open(&dir.join("trellis.db")).expect("the store opens"),
                "bench",
            );
            let pass = runtime
                .block_on(engine.sync_pass(&catalog, SUBTASKS, jiff::Timestamp::now(), None))
                .expect("the pass runs");
            assert_eq!(pass.summary.move_, CHANGES, "{pass:?}");
            let t = pass.timings;
            println!(
                "{} {} {} {} {} {} {} {}",
                start.elapsed().as_secs_f64() * 1000.0,
                pass.rows_loaded,
                pass.issues_loaded,
                t.read_ms,
                t.mirror_ms,
                t.plan_ms,
                t.write_ms,
                t.commit_ms
            );
        }
    }
    println!(
        "{}",
        status_kb("VmHWM").expect("/proc/self/status has VmHWM")
    );
}

/// Runs [`child`] in a process of its own; returns its figures and peak RSS in MB.
fn in_child(mode: &str, dir: &Path) -> (Vec<f64>, f64) {
    let out = std::process::Command::new(std::env::current_exe().expect("the bench binary"))
        .env(CHILD, mode)
        .env(CHILD_DIR, dir)
        .output()
        .expect("the child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {mode}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let figures = lines
        .next()
        .expect("figures")
        .split(' ')
        .map(|f| f.parse().expect("a number"))
        .collect();
    let kb: f64 = lines.next().expect("the peak RSS").parse().expect("kB");
    (figures, kb / 1024.0)
}

fn main() {
    if let (Ok(mode), Ok(dir)) = (std::env::var(CHILD), std::env::var(CHILD_DIR)) {
        child(&mode, Path::new(&dir));
        return;
    }
    let config = Config::from_env(1_000);
    let n = config.issues;
    let sizes: Vec<String> = levels(n).iter().map(|r| r.len().to_string()).collect();
    println!(
        "trellis incremental sync benchmark: {n} issues in 5 levels ({}), K = {CHANGES} changes, {} runs per scenario",
        sizes.join(" / "),
        config.runs
    );
    println!(
        "Measured: the wall time of one `Engine::sync_pass` (refresh the mirror, find the changes on\n\
         each side, compare with baselines, plan, write the tracker, commit), per synchronizer.\n\
         `read` counts the issues the tracker returned (`changed_since`; Redmine and Jira\n\
         read the changed issues once more before writing, the local tracker refuses a stale\n\
         write itself); `rows` is the rows (and as many issues) the pass read from the store,\n\
         the neighbourhood of its changes. The local tracker cannot read less than its whole file: each\n\
         `changed_since` parses all of it (see the phases below). `read` also holds issues\n\
         changed within the watermark's 60 s overlap (earlier runs' changes, read again and\n\
         dropped as unchanged)."
    );
    println!();

    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("issues.yaml");
    let declarations = dir.path().join("trellis.yaml");
    std::fs::write(&declarations, DECLARATIONS).expect("declarations written");
    let start = Instant::now();
    let mut issues = generate(n);
    let bytes = write_issues(&path, &issues);
    println!(
        "setup: {:.1} MB issues file written in {}",
        bytes as f64 / 1_048_576.0,
        ms(start.elapsed())
    );
    let catalog = Catalog::load(&[declarations]).expect("the declarations load");
    let mut bench = Bench {
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime"),
        engine: Engine::new(
            SqliteStore::open(&dir.path().join("trellis.db")).expect("the store opens"),
            "bench",
        ),
        catalog,
        path,
        rows: vec![],
    };

    let start = Instant::now();
    let run = bench
        .runtime
        .block_on(bench.engine.plan(&bench.catalog, &Scope::Apply))
        .expect("the apply plans");
    assert_eq!(run.set.summary.add, n, "every issue gets a row");
    bench
        .runtime
        .block_on(
            bench
                .engine
                .apply(&bench.catalog, run, &Approval::Confirmed),
        )
        .expect("the apply applies");
    println!(
        "setup: apply (every issue a row) in {}",
        ms(start.elapsed())
    );
    for id in [FILTER, SUBTASKS] {
        let (time, pass) = bench.pass(id);
        assert!(pass.full, "the first pass is a full read");
        assert_eq!(
            pass.summary.total(),
            0,
            "{id}: nothing to do after the apply"
        );
        bench.row("0", 0, id, time, &pass);
    }

    // T: K issues re-parented in the tracker.
    let mut times: [Vec<Duration>; 2] = [vec![], vec![]];
    let mut edit_times = vec![];
    for run in 1..=config.runs {
        let edited = Instant::now();
        let stamp = now();
        for (index, parent) in pick_changes(&issues, 0x71ac_e000 + run as u64) {
            issues[index].parent = Some(parent);
            issues[index].updated = Some(stamp);
        }
        write_issues(&bench.path, &issues);
        edit_times.push(edited.elapsed());
        let (time, pass) = bench.pass(SUBTASKS);
        assert!(!pass.full);
        assert_eq!(pass.tracker_changes, CHANGES, "{pass:?}");
        assert_eq!(
            pass.summary.move_, CHANGES,
            "each re-parented issue's row moves"
        );
        assert_eq!(pass.summary.tracker_updates, 0);
        times[0].push(time);
        bench.row("T", run, SUBTASKS, time, &pass);
        let (time, pass) = bench.pass(FILTER);
        assert_eq!(pass.summary.total(), 0, "no top-level issue changed");
        times[1].push(time);
        bench.row("T", run, FILTER, time, &pass);
    }
    let t_times = times;

    // P: the same again, the pass in a process of its own.
    let stamp = now();
    for (index, parent) in pick_changes(&issues, 0x0bad_cafe) {
        issues[index].parent = Some(parent);
        issues[index].updated = Some(stamp);
    }
    write_issues(&bench.path, &issues);
    let (read_alone, read_rss) = in_child("read", dir.path());
    let (alone, pass_rss) = in_child("pass", dir.path());

    // S: K rows moved in the structure.
    let mut times: [Vec<Duration>; 2] = [vec![], vec![]];
    let mut move_times = vec![];
    for run in 1..=config.runs {
        for (index, parent) in pick_changes(&issues, 0x0005_7a0c_0000 + run as u64) {
            let moved = Instant::now();
            bench
                .engine
                .move_row(STRUCTURE, &key(index), Some(&parent), None)
                .expect("the row moves");
            move_times.push(moved.elapsed());
            issues[index].parent = Some(parent);
        }
        let (time, pass) = bench.pass(SUBTASKS);
        assert_eq!(pass.structure_changes, CHANGES, "{pass:?}");
        assert_eq!(
            pass.summary.tracker_updates, CHANGES,
            "each move is written"
        );
        assert_eq!(pass.summary.move_, 0);
        times[0].push(time);
        bench.row("S", run, SUBTASKS, time, &pass);
        let (time, pass) = bench.pass(FILTER);
        assert_eq!(pass.summary.total(), 0, "no top-level issue changed");
        times[1].push(time);
        bench.row("S", run, FILTER, time, &pass);
    }
    let s_times = times;

    // Drags at the top level: each row to an explicit place among all the
    // top-level rows (`trellis move KEY --after OTHER`, the UI's drop).
    let top: Vec<String> = bench
        .engine
        .store()
        .children(STRUCTURE, None)
        .expect("the top level reads")
        .iter()
        .filter_map(|r| r.item.issue_key().map(str::to_owned))
        .collect();
    let mut drag_times = vec![];
    for i in 0..CHANGES.min(top.len() / 2) {
        let moved = Instant::now();
        bench
            .engine
            .move_row(STRUCTURE, &top[top.len() - 1 - i], None, Some(&top[i]))
            .expect("the row moves");
        drag_times.push(moved.elapsed());
    }

    println!();
    println!("{}", header());
    for row in &bench.rows {
        println!("{row}");
    }
    println!(
        "(read: issues returned by the tracker; tracker/structure: changed issues found on each side;\n\
         moves: rows moved; written: parents written to the tracker; the last five: the pass's own\n\
         timings by step (`Pass::timings`: reading the tracker, writing its answer to the mirror,\n\
         deciding and planning, writing the tracker, the commit). Row 0: first passes, full reads.)"
    );

    println!();
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "pass time", "median", "min", "max"
    );
    for (name, times) in [
        ("T: subtasks, K tracker changes", &t_times[0]),
        ("T: filter after it", &t_times[1]),
        ("S: subtasks, K structure changes", &s_times[0]),
        ("S: filter after it", &s_times[1]),
    ] {
        println!("{name:<40} {}", stats(times));
    }

    // Phases, measured apart on the same data (untimed steps of the runs
    // above: editing the file, moving rows, are informational).
    println!();
    println!("phases, measured apart (3 runs each):");
    println!("{:<40} {:>10} {:>10} {:>10}", "", "median", "min", "max");
    let from = now() - jiff::SignedDuration::from_secs(60);
    let mut read = vec![];
    let mut found = 0;
    for _ in 0..3 {
        let tracker = LocalTracker::new(&bench.path);
        let start = Instant::now();
        found = bench
            .runtime
            .block_on(tracker.changed_since(from))
            .expect("the file reads")
            .len();
        read.push(start.elapsed());
    }
    println!(
        "{:<40} {}",
        "local changed_since (parses whole file)",
        stats(&read)
    );
    let mut mirror = vec![];
    let mut structure = vec![];
    for _ in 0..3 {
        let start = Instant::now();
        let issues = bench
            .engine
            .store()
            .mirror_issues(TRACKER)
            .expect("the mirror loads");
        mirror.push(start.elapsed());
        assert_eq!(issues.len(), n);
        let start = Instant::now();
        let s = bench
            .engine
            .store()
            .structure(STRUCTURE)
            .expect("the structure loads");
        structure.push(start.elapsed());
        assert_eq!(s.forest.len(), n);
    }
    println!(
        "{:<40} {}",
        "SQLite: load the mirror (N issues)",
        stats(&mirror)
    );
    println!(
        "{:<40} {}",
        "SQLite: load the structure (N rows)",
        stats(&structure)
    );
    println!(
        "{:<40} {}",
        "(setup) edit + write the issues file",
        stats(&edit_times)
    );
    println!();
    println!("P: one subtasks pass after K tracker changes, in a process of its own:");
    let [
        total,
        rows,
        loaded,
        read_ms,
        mirror_ms,
        plan_ms,
        write_ms,
        commit_ms,
    ] = alone[..]
    else {
        panic!("eight figures: {alone:?}")
    };
    println!(
        "  the process {total:.1} ms: the tracker's read {read_ms:.1}, the mirror {mirror_ms:.1}, \
         plan {plan_ms:.1}, write {write_ms:.1}, commit {commit_ms:.1};\n  \
         {rows:.0} rows and {loaded:.0} issues read from the store; peak RSS {pass_rss:.1} MB"
    );
    println!(
        "  the local tracker's read alone: {:.1} ms ({:.0} issues), peak RSS {read_rss:.1} MB",
        read_alone[0], read_alone[1]
    );
    println!(
        "  store + plan + commit (mirror, plan, commit): {:.1} ms (target <= 100 ms); \
         the pass's memory beyond the tracker's read: {:.1} MB",
        mirror_ms + plan_ms + commit_ms,
        pass_rss - read_rss
    );
    println!();
    println!("manual moves (`Engine::move_row`, what `trellis move` runs; target <= 5 ms):");
    println!("{:<40} {:>10} {:>10} {:>10}", "", "median", "min", "max");
    println!(
        "{:<40} {}",
        "by rank under a parent (--under)",
        stats(&move_times)
    );
    println!(
        "{:<40} {}",
        format!("placed among {} top-level rows", top.len()),
        stats(&drag_times)
    );
    println!(
        "the last changed_since found {found} issues; the whole mirror and structure loads above\n\
         are what a pass over the whole structure reads (a full read; links, agile, statusRollup)."
    );
    if let Some(kb) = status_kb("VmHWM") {
        println!("peak RSS (VmHWM): {:.1} MB", kb as f64 / 1024.0);
    }
}

//! Redmine import benchmark: 2,000 issues (a tree: every tenth a root with
//! children and grandchildren) seeded into the test Redmine, then
//! - A: a full read of them (`snapshot`, the handshake included): wall time
//!   and HTTP requests, counted by the client and cross-checked against
//!   the requests Redmine's own log records;
//! - B: a whole import through the engine, as `trellis apply` runs it: a
//!   filter (`status_id=*`) adds every issue, subtasks arranges them, into
//!   an empty SQLite store.
//!
//! Needs the test Redmine: `sudo scripts/redmine.sh setup`, then
//! `cargo bench --bench redmine`. Seeding is done once per Redmine database,
//! with `scripts/redmine.sh seed` (one Rails process, not 2,000 requests).
//! `TRELLIS_BENCH_ISSUES=N` picks another size.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trellis::engine::{Approval, Engine, Scope};
use trellis::spec::Catalog;
use trellis::store::SqliteStore;
use trellis::tracker::redmine::{ApiKey, Retry, Settings};
use trellis::tracker::{RedmineTracker, Tracker};

const URL: &str = "http://127.0.0.1:3000";
const KEY: &str = "0123456789abcdef0123456789abcdef01234567";
const RUNS: usize = 5;
const RAILS_LOG: &str = "/var/log/redmine/default/production.log";

fn main() {
    let issues: usize = std::env::var("TRELLIS_BENCH_ISSUES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let url = std::env::var("TRELLIS_REDMINE_URL").unwrap_or_else(|_| URL.into());
    let key = std::env::var("TRELLIS_REDMINE_API_KEY").unwrap_or_else(|_| KEY.into());
    let project = format!("bench-{issues}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tracker = || {
        RedmineTracker::new(Settings {
            url: url.parse().unwrap(),
            key: ApiKey::new(&key),
            key_source: "the benchmark".into(),
            project: Some(project.clone()),
            subprojects: true,
            retry: Retry::default(),
            rate_limit: None,
        })
        .unwrap()
    };

    let present = runtime.block_on(async { tracker().snapshot().await });
    match present {
        Ok(snapshot) if snapshot.len() == issues => {}
        Ok(_) | Err(trellis::tracker::TrackerError::Remote { .. }) => {
            let started = Instant::now();
            seed(&project, issues);
            println!(
                "seeded {issues} issues into project {project} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => panic!("{e}"),
    }

    println!("A: full read of {issues} issues ({RUNS} runs, a new client each)");
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let client = tracker();
        let logged = rails_requests();
        let started = Instant::now();
        let snapshot = runtime.block_on(client.snapshot()).unwrap();
        let took = started.elapsed();
        assert_eq!(snapshot.len(), issues);
        let server = rails_requests()
            .zip(logged)
            .map(|(after, before)| after - before);
        println!(
            "  {:>7.0} ms, {} requests by the client, {} seen by Redmine (⌈{issues}/100⌉ = {} pages + 1 handshake)",
            took.as_secs_f64() * 1000.0,
            client.requests(),
            server.map_or("?".into(), |n| n.to_string()),
            issues.div_ceil(100)
        );
        times.push(took);
    }
    println!(
        "  median {:.0} ms",
        median(&mut times).as_secs_f64() * 1000.0
    );

    println!("B: import through the engine into an empty store ({RUNS} runs)");
    let dir = tempfile::tempdir().unwrap();
    let declarations = dir.path().join("trellis.yaml");
    std::fs::write(&declarations, declarations_for(&url, &project)).unwrap();
    // SAFETY: set before any other thread of this program reads the environment.
    unsafe { std::env::set_var("TRELLIS_BENCH_REDMINE_KEY", &key) };
    let catalog = Catalog::load(&[declarations]).unwrap();
    let mut times = Vec::new();
    for run in 0..RUNS {
        let store = SqliteStore::open(&dir.path().join(format!("run-{run}.db"))).unwrap();
        let mut engine = Engine::new(store, "bench");
        let logged = rails_requests();
        let started = Instant::now();
        runtime.block_on(async {
            let planned = engine.plan(&catalog, &Scope::Apply).await.unwrap();
            assert_eq!(planned.set.summary.add, issues);
            engine
                .apply(&catalog, planned, &Approval::None)
                .await
                .unwrap();
        });
        let took = started.elapsed();
        let server = rails_requests()
            .zip(logged)
            .map(|(after, before)| after - before);
        println!(
            "  {:>7.0} ms, {} requests seen by Redmine",
            took.as_secs_f64() * 1000.0,
            server.map_or("?".into(), |n| n.to_string())
        );
        times.push(took);
    }
    println!(
        "  median {:.0} ms",
        median(&mut times).as_secs_f64() * 1000.0
    );
}

fn seed(project: &str, issues: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redmine.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(["seed", project, &issues.to_string()])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "seeding failed: is the test Redmine set up?"
    );
}

/// Requests Redmine has logged so far, if its log is readable here.
fn rails_requests() -> Option<usize> {
    let log = std::fs::read_to_string(RAILS_LOG).ok()?;
    Some(log.matches("] Started ").count())
}

fn declarations_for(url: &str, project: &str) -> String {
    format!(
        r#"apiVersion: trellis.dev/v1alpha1
kind: Tracker
metadata: {{name: redmine}}
spec:
  type: redmine
  url: {url}
  credentials: {{env: TRELLIS_BENCH_REDMINE_KEY}}
  redmine: {{project: {project}}}
---
apiVersion: trellis.dev/v1alpha1
kind: Structure
metadata: {{name: imported}}
spec:
  trackerRef: {{name: redmine}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {{name: everything}}
spec:
  structureRef: {{name: imported}}
  type: filter
  filter: {{query: "status_id=*"}}
---
apiVersion: trellis.dev/v1alpha1
kind: Synchronizer
metadata: {{name: hierarchy}}
spec:
  structureRef: {{name: imported}}
  type: subtasks
"#
    )
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

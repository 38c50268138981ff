//! Redmine import benchmark: 3,000 issues in one project (a tree: every
//! tenth a root with children and grandchildren) seeded into the test
//! Redmine, then
//! - A: a full read of them (`snapshot`, the handshake included): wall time
//!   and HTTP requests, counted by the client and cross-checked against
//!   the requests Redmine's own log records;
//! - B: a whole import through the engine, as `trellis apply` runs it: a
//!   filter (`status_id=*`) adds every issue, subtasks arranges them, into
//!   an empty SQLite store; the filter is answered from the run's read;
//! - C: the peer: python-redmine pulling the same project, every status,
//!   with relations (benches/peers/python_redmine_pull.py, in a virtualenv
//!   the benchmark makes under target/ on first run); then B's ratio to it
//!   and B's requests against the target ⌈N/100⌉ + 2;
//! - D: the first round of incremental passes after the import (both
//!   synchronizers): one read between them.
//!
//! Needs the test Redmine: `sudo scripts/redmine.sh setup`, then
//! `cargo bench --bench redmine`. Seeding is done once per Redmine database,
//! with `scripts/redmine.sh seed` (one Rails process, not 3,000 requests).
//! `TRELLIS_BENCH_ISSUES=N` picks another size; `TRELLIS_PYTHON` a Python
//! that has python-redmine already.

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
        .unwrap_or(3_000);
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
    let mut import_requests = None;
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
        import_requests = server;
        times.push(took);
    }
    let import = median(&mut times);
    println!("  median {:.0} ms", import.as_secs_f64() * 1000.0);
    let import_requests = import_requests.expect("Redmine's log is readable");

    let python = peer_python();
    println!("C: python-redmine pulls the same issues ({RUNS} runs)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/python_redmine_pull.py");
    let mut times = Vec::new();
    let mut peer_requests = None;
    for _ in 0..RUNS {
        let logged = rails_requests();
        let out = Command::new(&python)
            .arg(&script)
            .args([&url, &key, &project])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = rails_requests()
            .zip(logged)
            .map(|(after, before)| after - before);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["issues"], issues);
        let took = Duration::from_secs_f64(report["seconds"].as_f64().unwrap());
        println!(
            "  {:>7.0} ms, {} requests seen by Redmine",
            took.as_secs_f64() * 1000.0,
            server.map_or("?".into(), |n| n.to_string())
        );
        peer_requests = server;
        times.push(took);
    }
    let peer = median(&mut times);
    println!("  median {:.0} ms", peer.as_secs_f64() * 1000.0);
    println!(
        "  Trellis's import / python-redmine's pull: {:.2} (target ≤ 1.10); requests {import_requests} (python-redmine {}, target ≤ ⌈{issues}/100⌉ + 2 = {})",
        import.as_secs_f64() / peer.as_secs_f64(),
        peer_requests.map_or("?".into(), |n| n.to_string()),
        issues.div_ceil(100) + 2
    );

    println!("D: the first round of incremental passes after the import");
    let store = SqliteStore::open(&dir.path().join("run-0.db")).unwrap();
    let mut engine = Engine::new(store, "bench");
    let logged = rails_requests();
    let started = Instant::now();
    let now = jiff::Timestamp::now();
    let mut read = Vec::new();
    for synchronizer in ["default/everything", "default/hierarchy"] {
        let pass = runtime
            .block_on(engine.sync_pass(&catalog, synchronizer, now, None))
            .unwrap();
        read.push(format!("{synchronizer}: {} issues read", pass.issues_read));
    }
    let server = rails_requests()
        .zip(logged)
        .map(|(after, before)| after - before);
    println!(
        "  {:>7.0} ms, {} requests seen by Redmine ({})",
        started.elapsed().as_secs_f64() * 1000.0,
        server.map_or("?".into(), |n| n.to_string()),
        read.join(", ")
    );
}

/// A Python with python-redmine: `TRELLIS_PYTHON`, else a virtualenv made
/// once under target/ (PyPI is reachable where the benchmark runs).
fn peer_python() -> std::path::PathBuf {
    if let Ok(python) = std::env::var("TRELLIS_PYTHON") {
        return python.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-python");
    let python = venv.join("bin/python");
    let has_peer = |python: &Path| {
        Command::new(python)
            .args(["-c", "import redminelib"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_peer(&python) {
        println!(
            "making a virtualenv with python-redmine in {}",
            venv.display()
        );
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "python-redmine==2.5.0"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            made && has_peer(&python),
            "python-redmine could not be installed; set TRELLIS_PYTHON to a Python that has it"
        );
    }
    python
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

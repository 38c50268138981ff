//! Web UI benchmark: a structure of N = 100,000 rows (the generated tracker
//! in five levels, every issue a row) served by `trellis ui`'s server in
//! this process, asked over HTTP as a browser asks.
//!
//! The issue's target: the first screen of a 100,000-row structure in under
//! 1 s. Timed from the request to the last byte of the page:
//! - the first screen (the closed tree: a page of the top level);
//! - the tree opened down to a row four levels deep (what a search result
//!   links to), the first 20 top-level rows opened, and a search by key
//!   and by text;
//! - the overview, and a move by form (a drag posts the same).
//!
//! With Chromium and tests/ui/node_modules present (`scripts/browser.sh`),
//! it also times the first screen in the browser: navigation to the load
//! event, page rendered (tests/ui/first_screen.mjs).
//!
//! Run with `cargo bench --bench ui`; `-- --quick` (2,000 issues) or
//! `TRELLIS_BENCH_ISSUES=N` picks another size.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Config, DECLARATIONS, generate, key, write_issues};
use trellis::engine::{Approval, Engine, Scope};
use trellis::spec::Catalog;
use trellis::store::{SqliteStore, Store};

const RUNS: usize = 20;
const TARGET: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Median and max of `RUNS` requests of `url`, checking each answer.
fn time_get(runtime: &tokio::runtime::Runtime, url: &str, expect: &str) -> (Duration, Duration) {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(RUNS);
    let mut size = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let body = runtime.block_on(async {
            let answer = client.get(url).send().await.expect("the UI answers");
            assert!(answer.status().is_success(), "{url}: {}", answer.status());
            answer.text().await.expect("a page")
        });
        times.push(start.elapsed());
        assert!(body.contains(expect), "{url} does not show {expect}");
        size = body.len();
    }
    times.sort();
    println!(
        "  {:<44} {:>10} {:>10} {:>8} kB",
        url.split_once("/structures").map_or(url, |(_, p)| p),
        ms(times[RUNS / 2]),
        ms(times[RUNS - 1]),
        size / 1024
    );
    (times[RUNS / 2], times[RUNS - 1])
}

fn main() {
    let config = Config::from_env(2_000);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let declarations = dir.path().join("trellis.yaml");
    std::fs::write(&declarations, DECLARATIONS).expect("declarations written");
    let issues = generate(config.issues);
    write_issues(&dir.path().join("issues.yaml"), &issues);
    let state = dir.path().join("trellis.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let catalog = Catalog::load(std::slice::from_ref(&declarations)).expect("declarations load");
    let start = Instant::now();
    let mut engine = Engine::new(SqliteStore::open(&state).expect("the store"), "bench");
    let run = runtime
        .block_on(engine.plan(&catalog, &Scope::Apply))
        .expect("the apply plans");
    runtime
        .block_on(engine.apply(&catalog, run, &Approval::Confirmed))
        .expect("the apply applies");
    engine.remember(&catalog).expect("declarations remembered");
    let rows = engine
        .store()
        .structure("default/roadmap")
        .expect("the structure")
        .forest
        .len();
    println!(
        "setup: {rows} rows applied in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    drop(engine);

    let ui =
        trellis::web::Ui::local(state.clone(), vec![declarations], "bench".into()).expect("the UI");
    let listener = runtime
        .block_on(trellis::web::bind(
            "127.0.0.1:0".parse().expect("an address"),
        ))
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    runtime.spawn(trellis::web::serve(
        listener,
        Arc::new(ui),
        std::future::pending(),
    ));

    // A row four levels down, and the rows above it, as a search finds it.
    let deep = key(issues.len() - 1);
    let store = SqliteStore::open_read_only(&state).expect("the store");
    let placed = store
        .find_row(
            "default/roadmap",
            &trellis::model::RowItem::Issue(deep.clone()),
        )
        .expect("the store answers")
        .expect("the row");
    let above: Vec<String> = store
        .ancestors("default/roadmap", placed.row.id)
        .expect("the store answers")
        .iter()
        .map(ToString::to_string)
        .collect();

    println!(
        "\n{} rows; {RUNS} requests each (median, max, page size)",
        rows
    );
    let structure = format!("{base}/structures/default/roadmap");
    let (first, first_max) = time_get(&runtime, &structure, "PLAT-1<");
    time_get(
        &runtime,
        &format!("{structure}?open={}", above.join(",")),
        &format!(">{deep}<"),
    );
    // The first 20 top-level rows opened: some 200 rows more.
    let top: Vec<String> = store
        .children("default/roadmap", None)
        .expect("the store answers")
        .iter()
        .take(20)
        .map(|r| r.id.to_string())
        .collect();
    time_get(
        &runtime,
        &format!("{structure}?open={}", top.join(",")),
        "PLAT-1<",
    );
    time_get(&runtime, &format!("{structure}?q={deep}"), "at depth");
    // By text: every summary is searched (50 shown).
    let word = issues[issues.len() / 2]
        .summary
        .split(' ')
        .next()
        .expect("a word")
        .to_owned();
    time_get(&runtime, &format!("{structure}?q={word}"), "at depth");
    time_get(&runtime, &format!("{base}/"), "default/children");

    // A move by form, as a drag posts it: the UI's page token first.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let page = runtime
        .block_on(async { client.get(&structure).send().await?.text().await })
        .expect("the page");
    let at = page
        .find(r#"name="csrf-token" content=""#)
        .expect("a token")
        + 27;
    let token = page[at..at + 48].to_owned();
    let mut moves = Vec::new();
    for i in 0..RUNS {
        let form = [
            ("csrf", token.clone()),
            ("key", key(i + 2)),
            ("under", key(1)),
        ];
        let start = Instant::now();
        let answer = runtime
            .block_on(client.post(format!("{structure}/move")).form(&form).send())
            .expect("the UI answers");
        moves.push(start.elapsed());
        assert_eq!(answer.status(), 303, "a move is made");
    }
    moves.sort();
    println!(
        "  {:<44} {:>10} {:>10}",
        "move by form (POST /move)",
        ms(moves[RUNS / 2]),
        ms(moves[RUNS - 1])
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/first_screen.mjs");
    let browser =
        Path::new("/usr/bin/chromium").exists() && script.with_file_name("node_modules").exists();
    if browser {
        let out = std::process::Command::new("node")
            .arg(&script)
            .arg(&structure)
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("  Chromium: {}", String::from_utf8_lossy(&out.stdout));
    } else {
        println!("  Chromium: not timed (run scripts/browser.sh)");
    }
    println!(
        "\nfirst screen of {rows} rows: median {} (max {}); target under {}: {}",
        ms(first),
        ms(first_max),
        ms(TARGET),
        if first_max < TARGET { "PASS" } else { "FAIL" }
    );
}

//! The web UI: `trellis ui` over the quickstart, in Debian's Chromium
//! (tests/ui/e2e.mjs, playwright-core; `scripts/browser.sh` installs both),
//! and its defences over plain HTTP. Without a browser the browser test
//! fails, unless TRELLIS_SKIP_BROWSER=1 outside CI.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::Workspace;
use trellis::store::Store;

/// `trellis ui -f quickstart` on a free port, stopped by its PID when dropped.
struct Ui {
    child: Child,
    url: String,
}

impl Ui {
    fn start(ws: &Workspace) -> Ui {
        Ui::start_with(ws, &[])
    }

    /// With more environment (a failpoint).
    fn start_with(ws: &Workspace, env: &[(&str, &str)]) -> Ui {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"));
        command
            .envs(env.iter().copied())
            .current_dir(ws.path(""))
            .env("TRELLIS_STATE", ws.state())
            .env("TRELLIS_USER", "ada")
            .env("RUST_LOG", "warn")
            .args(["ui", "-f", "quickstart", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("trellis ui said {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Ui { child, url }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the browser and playwright-core are, or `None` when skipping was
/// asked for outside CI.
fn browser() -> Option<PathBuf> {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let ready = Path::new("/usr/bin/chromium").exists()
        && tests.join("node_modules/playwright-core").exists();
    if ready {
        return Some(tests);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !ci && std::env::var("TRELLIS_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: no Chromium or playwright-core, and TRELLIS_SKIP_BROWSER=1");
        return None;
    }
    panic!(
        "the browser tests need /usr/bin/chromium and tests/ui/node_modules: run `bash scripts/browser.sh` (or `scripts/test.sh`); set TRELLIS_SKIP_BROWSER=1 to skip them outside CI"
    );
}

/// Runs one step of e2e.mjs in the browser; its screenshots go to
/// target/ui-screenshots (the README's come from there).
fn step(tests: &Path, ui: &Ui, ws: &Workspace, name: &str) {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("node")
        .arg(tests.join("e2e.mjs"))
        .arg(&ui.url)
        .arg(name)
        .arg(&shots)
        .arg(ws.path("quickstart/issues.yaml"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser step {name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn shown(ws: &Workspace) -> String {
    let out = ws.trellis().args(["show", "roadmap"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn in_a_browser_the_overview_tree_drag_keyboard_and_approval_work_as_the_command_line_does() {
    let Some(tests) = browser() else { return };
    let ws = Workspace::new();
    ws.apply();
    let ui = Ui::start(&ws);

    step(&tests, &ui, &ws, "overview");

    step(&tests, &ui, &ws, "drag");
    // `trellis show` agrees, and the journal names the person and the move.
    let tree = shown(&ws);
    let plat1 = &tree[tree.find("  PLAT-1 ").unwrap()..tree.find("  PLAT-2 ").unwrap()];
    assert!(
        plat1.contains("\n    PLAT-15 [Task]"),
        "after the drag:\n{tree}"
    );
    assert_eq!(ws.row_parent("PLAT-15").as_deref(), Some("PLAT-1"));
    let history = ws
        .trellis()
        .args(["history", "roadmap", "-o", "json"])
        .output()
        .unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last["author"], "ada");
    assert!(
        last["change"].as_str().unwrap().contains("PLAT-15"),
        "{last}"
    );

    step(&tests, &ui, &ws, "keyboard");
    let forest = ws.store().structure("default/roadmap").unwrap().forest;
    let plat2 = forest.find_issue("PLAT-2").unwrap();
    let under: Vec<String> = forest
        .children(Some(plat2))
        .iter()
        .map(|&r| forest.row(r).unwrap().item.to_string())
        .collect();
    assert_eq!(
        under.iter().position(|k| k == "PLAT-12"),
        Some(1),
        "{under:?}"
    );

    let version = ws.store().structure_version("default/roadmap").unwrap();
    step(&tests, &ui, &ws, "approve");
    // Applied once, by ada: the subtasks synchronizer put the rows back
    // where the tracker has them (PLAT-16 under PLAT-1, as edited).
    assert_eq!(
        ws.store().structure_version("default/roadmap").unwrap(),
        version + 1
    );
    assert_eq!(ws.row_parent("PLAT-15").as_deref(), Some("PLAT-2"));
    assert_eq!(ws.row_parent("PLAT-16").as_deref(), Some("PLAT-1"));
    let jobs = ws.store().last_jobs().unwrap();
    assert!(jobs.iter().all(|j| j.author == "ada"), "{jobs:?}");
}

/// `answer` is a refusal with `status`, whose page says `says`.
async fn refused(answer: reqwest::Response, status: u16, says: &str) {
    assert_eq!(answer.status(), status);
    let page = answer.text().await.unwrap();
    assert!(page.contains(says), "{page}");
}

/// The body of a GET of `url`.
async fn text(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// An HTTP client that does not follow redirects.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn csrf_of(ui: &Ui) -> String {
    let page = reqwest::get(format!("{}/", ui.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find(r#"name="csrf-token" content=""#).unwrap() + 27;
    page[at..at + 48].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_need_this_pages_token_and_origin_and_change_nothing_otherwise() {
    let ws = Workspace::new();
    ws.apply();
    let ui = Ui::start(&ws);
    let token = csrf_of(&ui).await;
    let version = || ws.store().structure_version("default/roadmap").unwrap();
    let before = version();
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut request = client()
            .post(format!("{}/structures/default/roadmap/move", ui.url))
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let moving = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("key", "PLAT-15".to_owned()),
            ("under", "PLAT-1".to_owned()),
        ]
    };
    // No token, a wrong token, another site's page: refused, nothing moved.
    for (form, origin) in [
        (moving(""), None),
        (
            moving("0123456789abcdef0123456789abcdef0123456789abcdef"),
            None,
        ),
        (moving(&token), Some("http://evil.example")),
    ] {
        let answer = post(form, origin).await.unwrap();
        assert_eq!(answer.status(), 403);
        assert_eq!(version(), before);
    }
    // A name someone else's DNS points here (rebinding) is not this UI's.
    let rebound = client()
        .get(format!("{}/", ui.url))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    // A move of a row under itself is refused with the engine's words.
    let answer = post(
        vec![
            ("csrf", token.clone()),
            ("key", "PLAT-1".into()),
            ("under", "PLAT-4".into()),
        ],
        None,
    )
    .await
    .unwrap();
    refused(answer, 400, "cannot move PLAT-1 under PLAT-4").await;
    assert_eq!(version(), before);
    // With the token, from the page: moved, and back to the page.
    let answer = post(moving(&token), Some("http://placeholder"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 403, "an origin that is not this host");
    let answer = post(moving(&token), None).await.unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(version(), before + 1);
    assert_eq!(ws.row_parent("PLAT-15").as_deref(), Some("PLAT-1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tracker_text_is_escaped_and_pages_allow_only_their_own_script() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/issues.yaml",
        "summary: Billing revamp",
        r#"summary: "<img src=x onerror=alert(1)> Billing & co""#,
    );
    ws.apply();
    let ui = Ui::start(&ws);
    let answer = reqwest::get(format!("{}/structures/default/roadmap?open=1,2", ui.url))
        .await
        .unwrap();
    let policy = answer.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    assert_eq!(answer.headers()["x-frame-options"], "DENY");
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt; Billing &amp; co"),
        "{page}"
    );
    assert!(!page.contains("<img"));
    // Found by text, with the way to its row.
    let found = reqwest::get(format!("{}/structures/default/roadmap?q=ledger", ui.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains("PLAT-4"), "{found}");
    assert!(found.contains("at depth 3"), "{found}");
}

/// The cluster as the controller's UI sees it, with two people: vera may
/// view the roadmap, ed may also edit it, and nobody else is known (nobody
/// may control it).
struct FakeCluster {
    catalog: std::sync::Arc<trellis::spec::Catalog>,
    /// The spec changes made, as (person, object, change).
    changes: std::sync::Mutex<Vec<(String, String, serde_json::Value)>>,
}

impl trellis::web::Cluster for FakeCluster {
    fn catalog(&self) -> std::sync::Arc<trellis::spec::Catalog> {
        self.catalog.clone()
    }

    fn person<'a>(
        &'a self,
        token: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<trellis::web::Person, String>> {
        let name = match token {
            "vera-token" => Ok("vera"),
            "ed-token" => Ok("ed"),
            _ => Err("the cluster does not know this token".to_owned()),
        };
        Box::pin(async move {
            Ok(trellis::web::Person {
                name: name?.to_owned(),
                token: Some(token.to_owned()),
                ..Default::default()
            })
        })
    }

    fn may<'a>(
        &'a self,
        person: &'a trellis::web::Person,
        verb: trellis::web::Verb,
        structure: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<bool, String>> {
        use trellis::web::Verb;
        let allowed = structure == "default/roadmap"
            && match person.name.as_str() {
                "vera" => verb == Verb::View,
                "ed" => verb != Verb::Control,
                _ => false,
            };
        Box::pin(async move { Ok(allowed) })
    }

    fn change_spec<'a>(
        &'a self,
        person: &'a trellis::web::Person,
        _: trellis::web::Object,
        id: &'a str,
        spec: serde_json::Value,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        self.changes
            .lock()
            .unwrap()
            .push((person.name.clone(), id.to_owned(), spec));
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_cluster_people_sign_in_and_see_and_do_only_what_the_cluster_lets_them() {
    let ws = Workspace::new();
    ws.apply();
    let catalog = trellis::spec::Catalog::load(&[ws.path("quickstart")]).unwrap();
    let cluster = std::sync::Arc::new(FakeCluster {
        catalog: std::sync::Arc::new(catalog),
        changes: std::sync::Mutex::default(),
    });
    let ui = trellis::web::Ui::in_cluster(ws.state(), cluster.clone()).unwrap();
    let listener = trellis::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(trellis::web::serve(
        listener,
        std::sync::Arc::new(ui),
        std::future::pending(),
    ));
    let http = client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{url}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // Without a token: nothing but the sign-in page.
    let answer = get("/", None).await.unwrap();
    assert_eq!(answer.status(), 303);
    assert!(
        answer.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let answer = get("/structures/default/roadmap", None).await.unwrap();
    assert_eq!(answer.status(), 303);
    let login = get("/login", None).await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"name="token""#));
    assert!(!login.contains("PLAT-"));
    // vera sees the roadmap's synchronizers and its tree.
    let overview = get("/", Some("vera-token"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(overview.matches("<tr data-synchronizer").count(), 3);
    assert!(overview.contains("signed in as vera"));
    // Behind an ingress's name: its people sign in, so the name is fine.
    let named = http
        .get(format!("{url}/"))
        .header("host", "trellis.example.com")
        .bearer_auth("vera-token")
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 200);
    let answer = get("/structures/default/roadmap", Some("vera-token"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // She may not move a row; ed may, and the journal names him.
    let token = {
        let at = overview.find(r#"name="csrf-token" content=""#).unwrap() + 27;
        overview[at..at + 48].to_owned()
    };
    let version = || ws.store().structure_version("default/roadmap").unwrap();
    let before = version();
    let moving = [
        ("csrf", token.as_str()),
        ("key", "PLAT-15"),
        ("under", "PLAT-1"),
    ];
    let post = |path: &str, who: &str, form: &[(&str, &str)]| {
        http.post(format!("{url}{path}"))
            .bearer_auth(who)
            .form(form)
            .send()
    };
    let answer = post("/structures/default/roadmap/move", "vera-token", &moving)
        .await
        .unwrap();
    refused(answer, 403, "vera may not edit structures/roadmap").await;
    assert_eq!(version(), before);
    let answer = post("/structures/default/roadmap/move", "ed-token", &moving)
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(version(), before + 1);
    let history = ws
        .trellis()
        .args(["history", "roadmap", "-o", "json"])
        .output()
        .unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(entries.last().unwrap()["author"], "ed");
    // Stopping a synchronizer needs control, which ed lacks: nothing is
    // asked of the cluster.
    assert!(overview.contains(r#"action="/synchronizers/default/children/enabled""#));
    let answer = post(
        "/synchronizers/default/children/enabled",
        "ed-token",
        &[("csrf", &token), ("enabled", "false")],
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(cluster.changes.lock().unwrap().is_empty());
    // Applying and undoing are the controller's Resyncs' work here.
    let answer = post(
        "/apply",
        "ed-token",
        &[("csrf", &token), ("hash", "0123456789abcdef")],
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 404);
    // A token the cluster does not know signs nobody in; a known one is
    // kept in a cookie scripts cannot read.
    let sign_in = |with: &'static str| {
        http.post(format!("{url}/login"))
            .form(&[("csrf", token.as_str()), ("token", with)])
            .send()
    };
    assert_eq!(sign_in("stolen").await.unwrap().status(), 401);
    let answer = sign_in("ed-token").await.unwrap();
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = http
        .get(format!("{url}/"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("signed in as ed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jobs_page_shows_what_runs_now_and_follows_it_until_it_ends() {
    let ws = Workspace::new();
    ws.apply();
    let ui = Ui::start(&ws);
    let jobs = || text(format!("{}/jobs", ui.url));
    let idle = jobs().await;
    assert!(!idle.contains("Running now") && !idle.contains("http-equiv=\"refresh\""));
    assert_eq!(
        idle.matches("<tr class=\"succeeded\">").count(),
        3,
        "{idle}"
    );
    // A pass of another process holds the structure: the page shows it and
    // reloads itself until it is done.
    let mut store = trellis::store::SqliteStore::open(&ws.state()).unwrap();
    let holder = "incremental sync default/children (process 4242)";
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(20);
    assert!(
        store
            .hold_structure("default/roadmap", holder, until)
            .unwrap()
            .is_none()
    );
    let busy = jobs().await;
    assert!(
        busy.contains("Running now") && busy.contains(holder),
        "{busy}"
    );
    assert!(busy.contains("http-equiv=\"refresh\" content=\"2\""));
    store.release_structure("default/roadmap", holder).unwrap();
    assert!(!jobs().await.contains("Running now"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_started_in_the_ui_shows_its_progress_while_it_runs() {
    let ws = Workspace::new();
    ws.apply();
    // An export writes PLAT-9's new parent to the tracker: its undo writes
    // the tracker again.
    ws.move_and_export("PLAT-9", "PLAT-4");
    let job = ws.store().last_jobs().unwrap()[0].id;
    // The run stops right after its tracker writes, before it commits.
    let ui = Ui::start_with(&ws, &[("TRELLIS_FAILPOINT", "tracker-written:pause")]);
    let token = csrf_of(&ui).await;
    let http = client();
    let planned = http
        .post(format!("{}/undo", ui.url))
        .form(&[("csrf", token.as_str()), ("job", &job.to_string())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = planned.find(r#"data-hash=""#).expect("the undo's plan") + 11;
    let hash = &planned[at..at + 16];
    let started = http
        .post(format!("{}/undo/apply", ui.url))
        .form(&[
            ("csrf", token.as_str()),
            ("job", &job.to_string()),
            ("hash", hash),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let run = started.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(run, "/runs/1");
    let mut page = String::new();
    for _ in 0..100 {
        page = text(format!("{}{run}", ui.url)).await;
        if page.contains(r#"<span class="counts">1 of 1</span>"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Its tracker write is made, its rows not yet committed: still running,
    // and the page follows it.
    assert!(
        page.contains("Tracker writes: <progress value=\"1\" max=\"1\">"),
        "{page}"
    );
    assert!(page.contains(r#"class="state running""#), "{page}");
    assert!(page.contains(r#"http-equiv="refresh" content="1""#));
    let jobs = text(format!("{}/jobs", ui.url)).await;
    assert!(jobs.contains(r#"<a href="/runs/1">Undo of job"#), "{jobs}");
}

//! A running `trellis run` woken by events rather than its schedule (every
//! interval here is an hour, so any pass the tests see was asked for):
//! Jira's signed and token deliveries through the Jira double, refused
//! deliveries that change nothing, replays, bursts, a delivery while a
//! resync holds the structure, edits of a local tracker's file and of the
//! structure by `trellis move`.

mod common;
// The Jira tests' double, of which these tests use a part.
#[allow(dead_code)]
#[path = "jira/double.rs"]
mod double;
#[allow(dead_code)]
#[path = "jira/openapi.rs"]
mod openapi;

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use trellis::store::Store;

use common::Workspace;
use common::running::{Running, SETTLE, jira_event, sign};
use double::{Double, EMAIL, Flavor, TOKEN};

const SECRET: &str = "whsec-0123456789abcdef";

/// `trellis run -f FILES` in `ws`, woken by events.
fn run(ws: &Workspace, files: &str) -> Running {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .current_dir(ws.path(""))
        .env("TRELLIS_STATE", ws.state())
        .env("TRELLIS_USER", "alice")
        .env("JIRA_API_TOKEN", TOKEN)
        .env("HOOK_SECRET", SECRET);
    Running::start(command, &["run", "-f", files])
}

/// Every synchronizer of `file` passes on an hour's interval: only events
/// make passes during a test.
fn hourly(ws: &Workspace, file: &str) {
    let text = ws.read(file);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("  structureRef:") {
            out.push_str("  schedule: {interval: 1h}\n");
        }
    }
    ws.write(file, &out);
}

/// The quickstart with a webhook secret on its local tracker.
fn quickstart() -> Workspace {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "  local:\n    path: issues.yaml\n",
        "  local:\n    path: issues.yaml\n  webhook:\n    secret: {env: HOOK_SECRET}\n",
    );
    hourly(&ws, "quickstart/trellis.yaml");
    ws.apply();
    ws
}

/// The Jira example against the double, its webhook secret from HOOK_SECRET.
fn jira() -> (Double, Workspace) {
    let double = Double::start(Flavor::Cloud);
    double.add("PLAT-1", "Epic", None, None);
    double.add("PLAT-2", "Story", Some("PLAT-1"), None);
    let ws = Workspace::new();
    ws.copy_example("jira");
    ws.edit(
        "jira/trellis.yaml",
        "https://your-domain.atlassian.net",
        &double.url,
    );
    ws.edit("jira/trellis.yaml", "you@example.com", EMAIL);
    ws.edit("jira/trellis.yaml", "JIRA_WEBHOOK_SECRET", "HOOK_SECRET");
    hourly(&ws, "jira/trellis.yaml");
    ws.trellis()
        .env("JIRA_API_TOKEN", TOKEN)
        .args(["apply", "-f", "jira"])
        .assert()
        .success();
    (double, ws)
}

fn shows(ws: &Workspace, structure: &str) -> String {
    let out = ws
        .trellis()
        .env("JIRA_API_TOKEN", TOKEN)
        .args(["show", structure])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Waits for the first round (each synchronizer's first pass after apply,
/// due as its schedule says) to end: no new pass for a second.
fn settled(running: &Running) -> usize {
    let mut count = running.passes().len();
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = running.passes().len();
        if now == count {
            return count;
        }
        count = now;
    }
}

#[test]
fn a_signed_jira_delivery_brings_the_change_at_once_and_a_forged_one_changes_nothing() {
    let (double, ws) = jira();
    let running = run(&ws, "jira");
    let before = settled(&running);
    double.add("PLAT-3", "Story", Some("PLAT-1"), None);
    let body = jira_event("jira:issue_created", "PLAT-3");

    // Forged: signed with another secret, or not at all, or tampered.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"not-the-secret").unwrap();
    mac.update(body.as_bytes());
    let forged = format!(
        "sha256={}",
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let path = "/hooks/jira/default/jira";
    let (status, answer) = running.post(path, &[("X-Hub-Signature", &forged)], &body);
    assert_eq!(status, 401, "{answer}");
    assert!(!answer.contains(SECRET), "the secret is never said");
    let (status, _) = running.post(path, &[], &body);
    assert_eq!(status, 401);
    let signature = sign(SECRET, &body);
    let tampered = body.replace("issue_created", "issue_deleted");
    let (status, _) = running.post(path, &[("X-Hub-Signature", &signature)], &tampered);
    assert_eq!(status, 401);
    assert!(
        running.quiet_after(before).is_empty(),
        "refused deliveries make no pass"
    );
    assert!(!shows(&ws, "backlog").contains("PLAT-3"));

    let started = Instant::now();
    let (status, answer) = running.post(
        path,
        &[
            ("X-Hub-Signature", &signature),
            ("X-Atlassian-Webhook-Identifier", "delivery-1"),
        ],
        &body,
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(status, 202, "{answer}");
    let due: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        due["due"].as_array().unwrap().len(),
        5,
        "every enabled synchronizer on the tracker: {answer}"
    );
    let passes = running.wait_for(before + 5);
    assert!(
        passes[before..].iter().all(|p| p["full"] == false),
        "incremental passes: {passes:#?}"
    );
    assert!(shows(&ws, "backlog").contains("PLAT-3"));

    // Jira's retry of the same delivery makes no second pass.
    let after = running.passes().len();
    let (status, answer) = running.post(
        path,
        &[
            ("X-Hub-Signature", &signature),
            ("X-Atlassian-Webhook-Identifier", "delivery-1"),
        ],
        &body,
    );
    assert_eq!(status, 202);
    assert!(answer.contains("received before"), "{answer}");
    assert!(running.quiet_after(after).is_empty());
    double.assert_conformant();
}

#[test]
fn a_token_delivery_is_accepted_and_unknown_or_oversized_ones_are_refused() {
    let (double, ws) = jira();
    let running = run(&ws, "jira");
    let before = settled(&running);
    let body = jira_event("jira:issue_updated", "PLAT-2");
    // Jira Data Center without a secret: the token in the registered URL.
    let (status, _) = running.post(
        &format!("/hooks/jira/default/jira?token={SECRET}"),
        &[],
        &body,
    );
    assert_eq!(status, 202);
    running.wait_for(before + 5);
    let after = running.passes().len();
    let (status, answer) = running.post(
        "/hooks/jira/default/nope",
        &[("Authorization", &format!("Bearer {SECRET}"))],
        &body,
    );
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("tracker default/nope is not declared"));
    let huge = format!("{{\"webhookEvent\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, _) = running.post(
        "/hooks/jira/default/jira",
        &[("Authorization", &format!("Bearer {SECRET}"))],
        &huge,
    );
    assert_eq!(status, 413);
    let (status, _) = running.post(
        "/hooks/jira/default/jira",
        &[("Authorization", &format!("Bearer {SECRET}"))],
        r#"{"webhookEvent":"comment_created"}"#,
    );
    assert_eq!(status, 202, "answered, and dropped");
    assert!(running.quiet_after(after).is_empty());
    double.assert_conformant();
}

#[test]
fn a_burst_of_a_thousand_triggers_makes_a_few_passes_and_loses_nothing() {
    let ws = quickstart();
    let running = run(&ws, "quickstart");
    let before = settled(&running);
    let auth = format!("Bearer {SECRET}");
    let path = "/hooks/synchronizers/default/children";
    for i in 0..1000 {
        if i == 500 {
            // An edit in the middle of the burst: the passes after it
            // bring it in.
            ws.set_parent("PLAT-11", Some("PLAT-2"));
        }
        let (status, _) = running.post(path, &[("Authorization", &auth)], "");
        assert_eq!(status, 202);
    }
    std::thread::sleep(Duration::from_secs(2));
    let passes = running.passes()[before..].to_vec();
    assert!(
        !passes.is_empty() && passes.len() <= 30,
        "a burst collapses into a few passes, not a thousand: {}",
        passes.len()
    );
    // Nothing lost: the structure is where a full resync would leave it.
    running.wait_for(before + passes.len());
    drop(running);
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(0);
}

#[test]
fn a_delivery_while_a_resync_holds_the_structure_waits_then_runs() {
    let ws = quickstart();
    let running = run(&ws, "quickstart");
    let before = settled(&running);
    let mut store = trellis::store::SqliteStore::open(&ws.state()).unwrap();
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    assert_eq!(
        store
            .hold_structure("default/roadmap", "resync default/children (test)", until)
            .unwrap(),
        None
    );
    ws.set_parent("PLAT-11", Some("PLAT-2"));
    let (status, _) = running.post(
        "/hooks/synchronizers/default/children",
        &[("Authorization", &format!("Bearer {SECRET}"))],
        "",
    );
    assert_eq!(status, 202);
    let waiting = running.wait_for(before + 1);
    assert!(
        waiting[before..]
            .iter()
            .all(|p| p["waiting"].as_str().is_some_and(|w| w.contains("(test)"))),
        "{waiting:#?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    store
        .release_structure("default/roadmap", "resync default/children (test)")
        .unwrap();
    let start = Instant::now();
    loop {
        let passes = running.passes();
        if passes[before..]
            .iter()
            .any(|p| p["synchronizer"] == "default/children" && p["version"].as_u64() > Some(0))
        {
            break;
        }
        assert!(start.elapsed() < SETTLE, "{passes:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(running);
    ws.trellis()
        .args(["plan", "-f", "quickstart"])
        .assert()
        .code(0);
}

#[test]
fn an_edit_of_the_issues_file_and_a_move_in_the_structure_pass_without_any_delivery() {
    let ws = quickstart();
    let running = run(&ws, "quickstart");
    let before = settled(&running);
    assert_ne!(ws.row_parent("PLAT-11").as_deref(), Some("PLAT-2"));
    ws.set_parent("PLAT-11", Some("PLAT-2"));
    running.wait_for(before + 1);
    let start = Instant::now();
    while ws.row_parent("PLAT-11").as_deref() != Some("PLAT-2") {
        assert!(start.elapsed() < SETTLE, "the edit came into the structure");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A person moves a row: the two-way synchronizer writes it to the file.
    ws.trellis()
        .args(["move", "roadmap", "PLAT-11", "--under", "PLAT-1"])
        .assert()
        .success();
    let start = Instant::now();
    while ws.parent_in_file("PLAT-11").as_deref() != Some("PLAT-1") {
        assert!(start.elapsed() < SETTLE, "the move reached the tracker");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_webhook_without_a_secret_is_refused_with_file_line_and_field() {
    let ws = Workspace::new();
    ws.edit(
        "quickstart/trellis.yaml",
        "  local:\n    path: issues.yaml\n",
        "  local:\n    path: issues.yaml\n  webhook:\n    secret: {}\n",
    );
    ws.trellis()
        .args(["validate", "-f", "quickstart"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "trellis.yaml:18: spec.webhook.secret: a webhook needs the secret its deliveries prove themselves with",
        ));
    // A running sync is refused before it listens: nothing is made.
    ws.trellis()
        .args(["run", "-f", "quickstart", "--listen", "127.0.0.1:0"])
        .assert()
        .code(2);
    assert!(!ws.state().exists(), "no store was made");
}

//! `trellis sync` (alias `run`): incremental passes, once or on each
//! synchronizer's schedule; `trellis troubleshoot`: one synchronizer's
//! connection, declaration, held issues and conflicts, and what to do.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::bail;
use serde::Serialize;

use super::listen::Triggers;
use super::{OutputFormat, author, catalog_or_remembered};
use crate::engine::{Engine, EngineError, Pass, PlannedOver, check_tracker, needs};
use crate::plan::visible;
use crate::spec::{Catalog, Kind, Turn};
use crate::store::{HeldIssue, HeldPlan, HoldKind, Release, SqliteStore, Store};

/// The longest sleep between looks at the declarations while running.
const LOOK_AGAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The enabled synchronizers `names` select (all when empty).
fn selected(catalog: &Catalog, names: &[String]) -> anyhow::Result<Vec<String>> {
    let enabled: Vec<String> = catalog
        .synchronizers
        .iter()
        .filter(|s| s.resource.spec.enabled)
        .map(|s| s.id())
        .collect();
    if names.is_empty() {
        return Ok(enabled);
    }
    names
        .iter()
        .map(|name| {
            let id = catalog.resolve(Kind::Synchronizer, name)?;
            match catalog.synchronizer(&id) {
                Some(s) if s.resource.spec.enabled => Ok(id),
                _ => bail!("synchronizer {id} has `enabled: false`; it does not sync"),
            }
        })
        .collect()
}

/// What `trellis sync` was asked to do.
pub struct Run<'a> {
    pub files: &'a [PathBuf],
    /// The synchronizers to run (all enabled ones when empty).
    pub names: &'a [String],
    pub once: bool,
    /// The hash of a held destructive plan to carry out.
    pub approval: Option<&'a str>,
    pub output: OutputFormat,
    /// How many structures run at once.
    pub workers: usize,
    /// Where to receive webhooks.
    pub listen: Option<std::net::SocketAddr>,
    /// Whether edits of issues files and of the store wake passes.
    pub watch: bool,
}

/// One pass of each selected synchronizer (`--once`), or passes on their
/// schedules until interrupted, and at once when a webhook, an edit of a
/// local tracker's file or a person's edit of a structure asks for one
/// ([`Triggers`]). The declarations are read again before each round, so
/// edits to the files take effect without a restart.
pub async fn sync(state: &Path, run: Run<'_>) -> anyhow::Result<ExitCode> {
    let Run {
        files,
        names,
        once,
        approval,
        output,
        workers,
        listen,
        watch,
    } = run;
    // Wrong declarations or names are refused before the store is made.
    let mut loaded = Some(Catalog::load(files)?);
    if let Some(catalog) = &loaded {
        selected(catalog, names)?;
    }
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    let mut triggers = match &loaded {
        Some(catalog) if !once => {
            Some(Triggers::start(state, catalog.clone(), listen, watch).await?)
        }
        _ => None,
    };
    loop {
        let catalog = match loaded.take() {
            Some(catalog) => catalog,
            None => Catalog::load(files)?,
        };
        let now = jiff::Timestamp::now();
        let mut next = now + jiff::SignedDuration::try_from(LOOK_AGAIN)?;
        let mut due = Vec::new();
        let chosen = selected(&catalog, names)?;
        let marked = match &mut triggers {
            Some(triggers) => {
                triggers.follow(&catalog, &chosen);
                triggers.take(&catalog, engine.store())?
            }
            None => Default::default(),
        };
        for id in chosen {
            let last = engine.store().sync_state(&id)?.last_pass;
            let schedule = schedule(&catalog, &id);
            let next_pass = schedule.next_pass(&id, last, now);
            if let Some(since) = marked.get(&id)
                && schedule.open(&id, now)
            {
                tracing::info!(synchronizer = %id, after_ms = since.elapsed().as_millis() as u64, "passing at once: an event asked for it");
                due.push(id);
            } else if once || next_pass <= now {
                due.push(id);
            } else {
                next = next.min(next_pass);
            }
        }
        let round = Round {
            state,
            catalog: &catalog,
            now,
            approval,
        };
        let mut failed = false;
        // The round's passes block this thread; the receiver answers on
        // the others meanwhile.
        let results = match triggers {
            Some(_) => tokio::task::block_in_place(|| round.run(&due, workers)),
            None => round.run(&due, workers),
        };
        for (id, result) in due.iter().zip(results) {
            match result {
                Ok(pass) => {
                    if let (Some(triggers), Some(_)) = (&mut triggers, &pass.waiting)
                        && marked.contains_key(id)
                    {
                        triggers.wait_for(id);
                    }
                    out!("{}", report(&pass, output)?);
                    if let (Some(given), Some(held)) = (approval, &pass.held_plan)
                        && once
                    {
                        bail!(
                            "{id}: {given} is not the held plan {}; nothing of it was carried out: review the plan above, then approve its hash",
                            held.hash
                        );
                    }
                }
                Err(e) if once => return Err(anyhow::anyhow!("{id}: {e}")),
                // A long-running sync reports a failed pass and goes on:
                // the next one plans from what this one left.
                Err(e) => {
                    failed = true;
                    eprintln!("error: {id}: {e}");
                }
            }
            let after = engine.store().sync_state(id)?.last_pass;
            next = next.min(schedule(&catalog, id).next_pass(id, after.or(Some(now)), now));
        }
        engine.remember(&catalog)?;
        let Some(triggers) = &mut triggers else {
            return Ok(ExitCode::SUCCESS);
        };
        triggers.settle(&catalog, engine.store())?;
        if failed {
            // Failed passes leave `last_pass` as it was: wait one interval.
            next = next.max(now + jiff::SignedDuration::from_secs(5));
        }
        if triggers.has_waiting() {
            next = next.min(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1));
        }
        let wait = std::time::Duration::try_from(next.duration_since(jiff::Timestamp::now()))
            .unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            () = triggers.woken() => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn schedule(catalog: &Catalog, id: &str) -> crate::plan::Schedule {
    catalog
        .resolved_synchronizer(id)
        .map(|r| r.schedule.clone())
        .unwrap_or_default()
}

/// The passes due at one moment.
struct Round<'a> {
    state: &'a Path,
    catalog: &'a Catalog,
    now: jiff::Timestamp,
    approval: Option<&'a str>,
}

impl Round<'_> {
    /// Runs the passes of `due`, different structures at once on up to
    /// `workers` threads (each with its own engine, store connection and
    /// runtime, so that one structure's store work or slow tracker holds up
    /// no other) and the passes of one [`Turn`] one after another,
    /// in their order. The results come back in the order of `due`.
    fn run(&self, due: &[String], workers: usize) -> Vec<Result<Pass, EngineError>> {
        let mut turns: Vec<(Turn, Vec<usize>)> = Vec::new();
        for (index, id) in due.iter().enumerate() {
            let turn = self.turn(id);
            match turns.iter_mut().find(|(t, _)| *t == turn) {
                Some((_, passes)) => passes.push(index),
                None => turns.push((turn, vec![index])),
            }
        }
        let queue = Mutex::new(turns.into_iter().map(|(_, passes)| passes));
        let mut results: Vec<Option<Result<Pass, EngineError>>> =
            due.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..workers.min(due.len()))
                .map(|_| scope.spawn(|| self.work(due, &queue)))
                .collect();
            for thread in threads {
                let done = thread.join().expect("a sync worker does not panic");
                for (index, result) in done {
                    results[index] = Some(result);
                }
            }
        });
        results
            .into_iter()
            .map(|r| r.expect("every due pass ran"))
            .collect()
    }

    /// The turn a synchronizer's pass takes; an invalid synchronizer
    /// passes alone (its pass says what is wrong).
    fn turn(&self, id: &str) -> Turn {
        match self.catalog.resolved_synchronizer(id) {
            Some(sync) => self.catalog.turn(&sync.structure),
            None => Turn::Structure(id.to_owned()),
        }
    }

    /// One worker: takes a structure's passes from `queue` until none are
    /// left.
    fn work(
        &self,
        due: &[String],
        queue: &Mutex<impl Iterator<Item = Vec<usize>>>,
    ) -> Vec<(usize, Result<Pass, EngineError>)> {
        let mut done = Vec::new();
        let take = || queue.lock().expect("the queue is never poisoned").next();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a worker's runtime starts");
        let mut engine = match SqliteStore::open(self.state) {
            Ok(store) => Engine::new(store, author()),
            Err(e) => {
                while let Some(passes) = take() {
                    done.extend(passes.into_iter().map(|i| (i, Err(e.clone().into()))));
                }
                return done;
            }
        };
        while let Some(passes) = take() {
            for index in passes {
                let pass = engine.sync_pass(self.catalog, &due[index], self.now, self.approval);
                done.push((index, runtime.block_on(pass)));
            }
        }
        done
    }
}

fn report(pass: &Pass, output: OutputFormat) -> anyhow::Result<String> {
    if output == OutputFormat::Json {
        return Ok(format!("{}\n", serde_json::to_string(pass)?));
    }
    let mut out = String::new();
    let id = &pass.synchronizer;
    if let Some(holder) = &pass.waiting {
        writeln!(out, "{id}: waiting: {holder}")?;
        return Ok(out);
    }
    let stopped = |out: &mut String| match &pass.stopped {
        Some(reason) => writeln!(
            out,
            "  STOPPED by the cycle guard: {reason}\n  restart with: trellis troubleshoot {id} --restart"
        ),
        None => Ok(()),
    };
    if pass.stopped.is_some() && pass.version == 0 {
        writeln!(out, "{id}: makes no passes")?;
        stopped(&mut out)?;
        return Ok(out);
    }
    let outcome = match pass.held_plan {
        Some(_) => format!("would do {}; {} unchanged", pass.summary, pass.structure),
        None => format!(
            "{}; {} at version {}",
            pass.summary, pass.structure, pass.version
        ),
    };
    let over = match pass.planned_over {
        PlannedOver::Neighbourhood => "the rows around its changes",
        PlannedOver::Structure => "the whole structure",
    };
    writeln!(
        out,
        "{}: {} pass, {} issue(s) read ({} changed in the tracker, {} in the structure), planned over {over} ({} rows): {outcome}",
        pass.synchronizer,
        if pass.full { "full" } else { "incremental" },
        pass.issues_read,
        pass.tracker_changes,
        pass.structure_changes,
        pass.rows_loaded,
    )?;
    for c in &pass.conflicts {
        writeln!(
            out,
            "  conflict on {}: the structure has it {}, the tracker {}; kept: {}",
            c.issue, c.structure_side, c.tracker_side, c.kept
        )?;
    }
    if let Some(plan) = &pass.held_plan {
        writeln!(
            out,
            "  HELD for approval (destructive, safety.destructivePasses: hold): nothing of this pass was carried out"
        )?;
        writeln!(out, "  plan hash: {}", plan.hash)?;
        held_plan_text(&mut out, id, plan)?;
    }
    for h in &pass.held {
        writeln!(out, "  held: {}", describe_held(h))?;
    }
    stopped(&mut out)?;
    Ok(out)
}

/// A held plan's destructive operations and how to carry it out.
fn held_plan_text(out: &mut String, id: &str, plan: &HeldPlan) -> std::fmt::Result {
    for line in &plan.destructive {
        writeln!(out, "    ! {}", visible(line))?;
    }
    writeln!(
        out,
        "  to carry it out: `trellis sync --once {id} --approve {}` with the same -f, or `approvedPlan: {}` in the Synchronizer's spec",
        plan.hash, plan.hash
    )
}

fn describe_held(h: &HeldIssue) -> String {
    let release = match h.release {
        None => "",
        Some(Release::Retry) => "; released: tried again at the next pass",
        Some(Release::KeepStructure) => {
            "; released: the structure's side is written at the next pass"
        }
    };
    format!(
        "{} ({}): {}: {} (first seen {}, {} attempt(s){release})",
        h.issue,
        match h.kind {
            HoldKind::Error => "failed",
            HoldKind::Conflict => "conflict",
        },
        h.operation,
        h.message,
        h.first_seen.strftime("%Y-%m-%d %H:%M:%SZ"),
        h.attempts
    )
}

/// What `troubleshoot` does besides checking.
pub struct Actions {
    pub retry: Vec<String>,
    pub skip: Vec<String>,
    pub keep_structure: Vec<String>,
    pub restart: bool,
}

/// What `troubleshoot` found.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Findings {
    synchronizer: String,
    checks: Vec<Check>,
    held: Vec<HeldIssue>,
    conflicts: Vec<crate::store::ConflictRecord>,
    stopped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_plan: Option<HeldPlan>,
    last_pass: Option<jiff::Timestamp>,
}

#[derive(Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

pub async fn troubleshoot(
    state: &Path,
    files: &[PathBuf],
    name: &str,
    actions: Actions,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    // Read-only until every action is known to apply: a wrong name or key
    // changes nothing, not even by creating the store.
    let reader = SqliteStore::open_read_only(state)?;
    let catalog = catalog_or_remembered(&reader, files)?;
    let id = &catalog.resolve(Kind::Synchronizer, name)?;
    let releases: Vec<(&String, Option<Release>)> = [
        (&actions.retry, Some(Release::Retry)),
        (&actions.skip, None),
        (&actions.keep_structure, Some(Release::KeepStructure)),
    ]
    .into_iter()
    .flat_map(|(keys, release)| keys.iter().map(move |key| (key, release)))
    .collect();
    let checker = Engine::new(reader, author());
    let checked = checker.check_releases(
        id,
        releases
            .into_iter()
            .map(|(key, release)| (key.clone(), release))
            .collect(),
        actions.restart,
    )?;
    if !checked.is_empty() {
        let mut engine = Engine::new(SqliteStore::open(state)?, author());
        engine.release(checked)?;
    }
    let store = checker.store();
    let sync = catalog.synchronizer(id).expect("selected");
    let structure = sync.resource.structure_id();
    let tracker = catalog
        .structure(&structure)
        .and_then(|s| s.resource.tracker_id());
    let mut checks = vec![Check {
        check: "declaration".into(),
        ok: true,
        detail: format!(
            "{} on structure {structure}, {}",
            sync.resource.spec.type_.as_str(),
            if sync.resource.spec.enabled {
                "enabled"
            } else {
                "disabled (enabled: false)"
            }
        ),
    }];
    if let Some(tracker) = &tracker {
        // Permissions are asked, not tried: nothing is written.
        let needs = needs(&sync.resource.spec);
        match check_tracker(&catalog, tracker, Default::default(), &author(), &needs).await {
            Ok((identity, allowances)) => {
                checks.push(Check {
                    check: "connection".into(),
                    ok: true,
                    detail: format!("tracker {tracker} reachable; writes are made as {identity}"),
                });
                checks.extend(allowances.into_iter().map(|a| Check {
                    check: format!("permission to {}", a.need.describe()),
                    ok: a.allowed,
                    detail: a.detail,
                }));
            }
            Err(e) => checks.push(Check {
                check: "connection".into(),
                ok: false,
                detail: e.to_string(),
            }),
        }
    }
    let sync_state = store.sync_state(id)?;
    let findings = Findings {
        synchronizer: id.clone(),
        checks,
        held: store.held_issues(id)?,
        conflicts: store.conflicts(id, 20)?,
        stopped: sync_state.stopped,
        held_plan: sync_state.held_plan,
        last_pass: sync_state.last_pass,
    };
    let healthy = findings.checks.iter().all(|c| c.ok)
        && findings.held.iter().all(|h| h.release.is_some())
        && findings.stopped.is_none()
        && findings.held_plan.is_none();
    match output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&findings)?),
        OutputFormat::Text => out!("{}", findings_text(&findings)?),
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The id of a declared synchronizer, enabled or not.
fn findings_text(f: &Findings) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "Synchronizer {}", f.synchronizer)?;
    for c in &f.checks {
        writeln!(
            out,
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.check,
            c.detail
        )?;
    }
    match &f.last_pass {
        Some(t) => writeln!(out, "  last pass: {}", t.strftime("%Y-%m-%d %H:%M:%SZ"))?,
        None => writeln!(out, "  last pass: never")?,
    }
    if let Some(reason) = &f.stopped {
        writeln!(
            out,
            "  STOPPED by the cycle guard: {reason}\n  restart with: trellis troubleshoot {} --restart",
            f.synchronizer
        )?;
    }
    if let Some(plan) = &f.held_plan {
        writeln!(
            out,
            "  HELD since {}: a destructive plan ({}) waits for approval; its passes carry out nothing until then:",
            plan.since.strftime("%Y-%m-%d %H:%M:%SZ"),
            plan.summary
        )?;
        held_plan_text(&mut out, &f.synchronizer, plan)?;
    }
    if f.held.is_empty() {
        writeln!(out, "  no held issues")?;
    } else {
        writeln!(
            out,
            "  held issues (their later changes wait; --retry KEY tries again, --skip KEY gives the change up and keeps the tracker's side, --keep-structure KEY writes the structure's side):"
        )?;
        for h in &f.held {
            writeln!(out, "    {}", describe_held(h))?;
        }
    }
    if !f.conflicts.is_empty() {
        writeln!(out, "  recent conflicts:")?;
        for c in &f.conflicts {
            writeln!(
                out,
                "    {} {}: structure {}, tracker {}; kept {}",
                c.time.strftime("%Y-%m-%d %H:%M:%SZ"),
                c.issue,
                c.structure_side,
                c.tracker_side,
                c.kept
            )?;
        }
    }
    Ok(out)
}

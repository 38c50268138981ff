//! The commands that plan and apply runs: `plan`, `apply` (declarations or
//! a saved plan), `resync`/`import`/`export` and `undo`. The engine decides
//! the order of runs and whether each may be applied; this shell shows the
//! plans, and asks the question at a terminal when the engine says a person
//! may confirm.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::{OptionalFiles, PlanFormat, Progress, author, catalog_or_remembered, markdown, render};
use crate::engine::{APPROVAL_PREFIX, Approval, Engine, EngineError, PlanFile, Run, Scope};
use crate::model::Direction;
use crate::spec::{Catalog, Declared, Resync};
use crate::store::SqliteStore;

/// `trellis plan`: every run `apply` would make, pending Resyncs first;
/// writes nothing. Exit 1 when anything would change.
pub(super) async fn plan_command(
    state: &Path,
    files: &[PathBuf],
    output: PlanFormat,
    comment_dir: Option<PathBuf>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(files)?;
    let engine = Engine::new(SqliteStore::open_read_only(state)?, author());
    let mut resyncs = Vec::new();
    let mut declared = None;
    for scope in engine.apply_order(&catalog)? {
        let run = plan(&engine, &catalog, &scope).await?;
        match ResyncRun::declared(&catalog, &scope) {
            Some(resync) => resyncs.push(ResyncRun::new(resync, run)),
            None => declared = Some(run),
        }
    }
    let run = declared.expect("the declarations' run comes last");
    let apply = match &out {
        Some(file) => format!("trellis apply {}", file.display()),
        None => render::command("apply", files),
    };
    if let Some(file) = &out {
        std::fs::write(file, run.to_plan_file(files))
            .with_context(|| format!("cannot write the plan to {}", file.display()))?;
    }
    let terminal = std::io::stdout().is_terminal();
    let apply_files = render::command("apply", files);
    match output {
        PlanFormat::Text => {
            for resync in &resyncs {
                out!("{}", resync.text(&apply_files, terminal));
            }
            out!("{}", render::plan_text(&run.set, Some(&apply), terminal));
        }
        PlanFormat::Markdown => {
            let replan = render::command("plan", files);
            let mut comments = Vec::new();
            for resync in &resyncs {
                comments.extend(markdown::plan_comments(
                    &resync.run.set,
                    &resync.how_to_apply(&apply_files),
                    &replan,
                ));
            }
            comments.extend(markdown::plan_comments(&run.set, &apply, &replan));
            match comment_dir {
                Some(dir) => write_comments(&dir, &comments)?,
                None => out!("{}", comments.join("\n")),
            }
        }
        PlanFormat::Json => {
            let output = render::PlanOutput {
                set: &run.set,
                resyncs: resyncs
                    .iter()
                    .map(|r| render::ResyncPlan {
                        resync: &r.id,
                        approved_plan: r.approved.as_deref(),
                        plan: &r.run.set,
                    })
                    .collect(),
            };
            outln!("{}", serde_json::to_string_pretty(&output)?);
        }
    }
    // Shown in full, but a plan that cannot be applied is an error.
    for resync in &resyncs {
        resync.run.check_safety()?;
    }
    run.check_safety()?;
    let changes = run.set.has_changes() || resyncs.iter().any(|r| r.run.set.has_changes());
    Ok(if changes {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `trellis apply -f`: refuses declarations with no Structure unless
/// `allow_empty` (they would replace the remembered ones with nothing).
pub(super) async fn apply_files(
    state: &Path,
    files: &[PathBuf],
    approve: Option<String>,
    allow_empty: bool,
) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(files)?;
    if catalog.structures.is_empty() && !allow_empty {
        bail!(
            "{} declare{} no Structure; applying it would forget the declarations last applied (what `show`, `status` and `history` read); nothing was changed: pass the right -f PATH, or add --allow-empty if that is what you mean",
            render::paths(files),
            if files.len() == 1 { "s" } else { "" }
        );
    }
    sync(state, catalog, files, None, approve).await
}

/// `trellis resync` (and `import`, `export`): one synchronizer, one direction.
pub(super) async fn resync_command(
    state: &Path,
    files: &[PathBuf],
    synchronizer: String,
    direction: Direction,
    approve: Option<String>,
) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(files)?;
    sync(
        state,
        catalog,
        files,
        Some((synchronizer, direction)),
        approve,
    )
    .await
}

/// `trellis undo JOB`: the reverse of a job, planned and approved like any run.
pub(super) async fn undo_command(
    state: &Path,
    job: u64,
    files: &OptionalFiles,
    approve: Option<String>,
) -> anyhow::Result<ExitCode> {
    // Checked read-only first: a wrong job or store path writes nothing.
    let reader = Engine::new(SqliteStore::open_read_only(state)?, author());
    let catalog = catalog_or_remembered(reader.store(), &files.files)?;
    let scope = reader.undo_scope(job)?;
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    let run = plan_to_apply(&mut engine, &catalog, &scope).await?;
    approve_and_apply(&mut engine, &catalog, run, approve).await?;
    Ok(ExitCode::SUCCESS)
}

/// Applies a saved plan: plans again from the same declarations and applies
/// only if that gives the saved plan (same hash), which the plan file stands
/// approved as; otherwise says what changed.
pub(super) async fn apply_saved(state: &Path, path: &Path) -> anyhow::Result<ExitCode> {
    let saved = PlanFile::read(path)?;
    let catalog = Catalog::load(&saved.files)?;
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    let run = plan_to_apply(&mut engine, &catalog, &Scope::Apply).await?;
    saved.check(path, &run)?;
    out!(
        "{}",
        render::plan_text(&run.set, None, std::io::stdout().is_terminal())
    );
    apply(&mut engine, &catalog, run, &Approval::Confirmed).await?;
    Ok(ExitCode::SUCCESS)
}

/// Plans and applies: every run the engine orders for `apply` (pending
/// Resyncs first, each its own run and approval), or one resync.
async fn sync(
    state: &Path,
    catalog: Catalog,
    files: &[PathBuf],
    resync: Option<(String, Direction)>,
    approve: Option<String>,
) -> anyhow::Result<ExitCode> {
    // A wrong name or direction is refused before the store is made.
    let resync = resync
        .map(|(name, direction)| Scope::resync(&catalog, &name, direction))
        .transpose()?;
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    let order = match resync {
        Some(scope) => vec![scope],
        None => engine.apply_order(&catalog)?,
    };
    for scope in order {
        let run = plan_to_apply(&mut engine, &catalog, &scope).await?;
        match ResyncRun::declared(&catalog, &scope) {
            Some(resync) => {
                let resync = ResyncRun::new(resync, run);
                carry_out(&mut engine, &catalog, resync, files).await?
            }
            None => approve_and_apply(&mut engine, &catalog, run, approve.clone()).await?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows a run, gets its approval (the given hash, or a person's answer at a
/// terminal), and applies it. A run with nothing to change still goes
/// through apply: it records each synchronizer's run (and completes a
/// declared Resync).
async fn approve_and_apply(
    engine: &mut Engine<SqliteStore>,
    catalog: &Catalog,
    run: Run,
    approve: Option<String>,
) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    out!("{}", render::plan_text(&run.set, None, terminal));
    let approval = approval(engine, &run, Approval::given(approve.as_deref()), || {
        "not applied: the plan was not confirmed".to_owned()
    })?;
    apply(engine, catalog, run, &approval).await
}

/// The approval `run` is applied with: `given` if the engine accepts it;
/// else, when a person at a terminal may confirm the plan, their answer to
/// the question (judged by the engine too: `unconfirmed` says what a wrong
/// answer means); else the engine's refusal.
fn approval<S: crate::store::Store>(
    engine: &Engine<S>,
    run: &Run,
    given: Approval,
    unconfirmed: impl Fn() -> String,
) -> anyhow::Result<Approval> {
    match engine.may_apply(run, &given) {
        Ok(()) => Ok(given),
        Err(EngineError::Refused(refusal))
            if refusal.may_confirm() && std::io::stdin().is_terminal() =>
        {
            let answer = Approval::Hash(ask(refusal.hash())?);
            match engine.may_apply(run, &answer) {
                Ok(()) => Ok(answer),
                Err(_) => bail!("{}", unconfirmed()),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// The question at the terminal; the answer is what the person typed.
fn ask(hash: &str) -> anyhow::Result<String> {
    out!(
        "This plan is destructive. Type the first {APPROVAL_PREFIX} characters of its hash ({hash}) to apply it: "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().to_owned())
}

/// A pending Resync's own run: planned alone, so that its hash is the one
/// its `approvedPlan` names — the same as in a cluster.
struct ResyncRun {
    id: String,
    approved: Option<String>,
    /// It names a Secret in `spec.runAs`, which only the controller reads.
    runs_as_secret: bool,
    run: Run,
}

impl ResyncRun {
    /// The declared Resync `scope` carries out, if it is one.
    fn declared<'c>(catalog: &'c Catalog, scope: &Scope) -> Option<&'c Declared<Resync>> {
        let Scope::Resync {
            resync: Some(id), ..
        } = scope
        else {
            return None;
        };
        catalog.resyncs.iter().find(|r| &r.id() == id)
    }

    fn new(resync: &Declared<Resync>, run: Run) -> ResyncRun {
        ResyncRun {
            id: resync.id(),
            approved: resync.resource.spec.approved_plan.clone(),
            runs_as_secret: resync.resource.spec.run_as.is_some(),
            run,
        }
    }

    fn how_to_apply(&self, apply_files: &str) -> String {
        if self.run.set.summary.destructive > 0 {
            format!(
                "{apply_files} after setting `approvedPlan: {}` in Resync {}",
                self.run.set.hash, self.id
            )
        } else {
            apply_files.to_owned()
        }
    }

    fn text(&self, apply_files: &str, colour: bool) -> String {
        let approved = match &self.approved {
            Some(hash) => format!("; approvedPlan {hash}"),
            None => String::new(),
        };
        // The command line acts as its user already: the key it is given,
        // and the author `$TRELLIS_USER`.
        let runs_as = if self.runs_as_secret {
            "; spec.runAs is read by the controller: here it runs as you, with the tracker's spec.credentials"
        } else {
            ""
        };
        format!(
            "Resync {} (a run of its own, carried out before the synchronizers{approved}{runs_as})\n{}To carry it out: {}\n\n",
            self.id,
            render::plan_text(&self.run.set, None, colour),
            self.how_to_apply(apply_files)
        )
    }
}

/// Applies a Resync's run: exactly the plan its `approvedPlan` names, or,
/// without one, a non-destructive plan (or one confirmed at a terminal).
async fn carry_out(
    engine: &mut Engine<SqliteStore>,
    catalog: &Catalog,
    resync: ResyncRun,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let apply_files = render::command("apply", files);
    out!(
        "{}",
        resync.text(&apply_files, std::io::stdout().is_terminal())
    );
    let id = resync.id.clone();
    let given = Approval::given(resync.approved.as_deref());
    let approval = approval(engine, &resync.run, given, || {
        format!("not applied: the plan of Resync {id} was not confirmed")
    })
    .map_err(|error| match error.downcast::<EngineError>() {
        Ok(EngineError::Refused(refusal)) => {
            let approve = format!("set `approvedPlan: {}` in it", refusal.hash());
            anyhow::anyhow!("Resync {id}: {}", refusal.explain("approvedPlan", &approve))
        }
        Ok(error) => error.into(),
        Err(error) => error,
    })?;
    apply(engine, catalog, resync.run, &approval)
        .await
        .map_err(|e| anyhow::anyhow!("Resync {id}: {e}"))
}

/// Plans `scope`, with a spinner on a terminal.
async fn plan(
    engine: &Engine<SqliteStore>,
    catalog: &Catalog,
    scope: &Scope,
) -> anyhow::Result<Run> {
    let _progress = Progress::start("reading trackers and planning");
    Ok(engine.plan(catalog, scope).await?)
}

/// Plans `scope` to apply it (a tracker that cannot be read is a failed job
/// of each synchronizer on it), with a spinner on a terminal.
async fn plan_to_apply(
    engine: &mut Engine<SqliteStore>,
    catalog: &Catalog,
    scope: &Scope,
) -> anyhow::Result<Run> {
    let _progress = Progress::start("reading trackers and planning");
    Ok(engine.plan_to_apply(catalog, scope).await?)
}

/// Applies an approved run, remembers the declarations and reports the
/// structures' new versions.
async fn apply(
    engine: &mut Engine<SqliteStore>,
    catalog: &Catalog,
    run: Run,
    approval: &Approval,
) -> anyhow::Result<()> {
    let applied = {
        let _progress = Progress::start("applying");
        engine.apply(catalog, run, approval).await?
    };
    engine.remember(catalog)?;
    for (structure, version) in applied.structures {
        outln!("applied: {structure} is at version {version}");
    }
    Ok(())
}
/// Writes each comment to DIR/comment-N.md (replacing the files of an
/// earlier plan) and lists them on stdout.
fn write_comments(dir: &std::path::Path, comments: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("comment-") && name.ends_with(".md") {
            std::fs::remove_file(&path)?;
        }
    }
    for (i, comment) in comments.iter().enumerate() {
        let path = dir.join(format!("comment-{}.md", i + 1));
        std::fs::write(&path, comment)?;
        outln!("{}", path.display());
    }
    Ok(())
}

//! The `trellis` command line: a thin shell over the engine.

/// `print!` that returns the write error instead of panicking: when stdout
/// is a pipe closed early (`trellis show big | head -1`) the command stops
/// there, and `main` ends it quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)*))?
    };
}

/// `println!` as `out!` does it.
macro_rules! outln {
    ($($arg:tt)*) => {{
        out!($($arg)*);
        out!("\n");
    }};
}

mod markdown;
mod render;
mod sync;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Approval, Engine, PlanFile, Run, Scope, remembered};
use crate::model::Direction;
use crate::spec::Catalog;
use crate::store::{SqliteStore, Store};

/// Keep structures (ordered hierarchies of issues) and issue trackers in
/// agreement, declaratively.
///
/// Declare Trackers, Structures and Synchronizers in YAML, review what a sync
/// would change with `plan`, then `apply` it. Exit codes: 0 success (for
/// `plan`: no changes), 1 `plan` found changes, 2 error.
#[derive(Parser)]
#[command(name = "trellis", version, max_term_width = 100)]
pub struct Cli {
    /// The Trellis store (an SQLite file; created on first write).
    #[arg(
        long,
        global = true,
        env = "TRELLIS_STATE",
        default_value = ".trellis/trellis.db",
        value_name = "PATH"
    )]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Files {
    /// Declaration files or directories (recursive; .yaml/.yml; multi-document).
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct OptionalFiles {
    /// Declaration files or directories; defaults to the declarations last applied.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct ControllerArgs {
    /// Watch this namespace only (default: all namespaces).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDRESS")]
    listen: std::net::SocketAddr,
    /// The namespace of the leader-election Lease (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "trellis-system")]
    lease_namespace: String,
    #[arg(long, default_value = "trellis-controller")]
    lease_name: String,
    /// This replica's name in the Lease (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "trellis-controller")]
    identity: String,
    /// Log lines as JSON (the default) or as text.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Allow `local` trackers whose files are inside DIR (absolute paths);
    /// without it they are refused: their files are the controller's own.
    #[arg(long, value_name = "DIR")]
    local_trackers: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Args)]
struct Approve {
    /// Apply only if the plan has this hash (from `trellis plan`); needed for
    /// destructive plans when no terminal can confirm.
    #[arg(long, value_name = "HASH")]
    approve: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check declarations offline; writes nothing.
    Validate(Files),
    /// Reconcile the Trackers, Structures, Synchronizers and Resyncs of a
    /// Kubernetes cluster (in-cluster config or KUBECONFIG); logs JSON.
    Controller(ControllerArgs),
    /// Show what `apply` would do; writes nothing. Exit 0: no changes, 1: changes.
    Plan {
        #[command(flatten)]
        files: Files,
        #[arg(short, long, value_enum, default_value_t = PlanFormat::Text)]
        output: PlanFormat,
        /// With `--output markdown`: write the pull-request comments (each
        /// under 60,000 characters) to DIR/comment-1.md, comment-2.md, ...
        #[arg(long, value_name = "DIR")]
        comment_dir: Option<PathBuf>,
        /// Also save the plan to FILE, for `trellis apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run every enabled synchronizer (in its first direction) and every pending Resync,
    /// or apply a plan saved with `trellis plan --out FILE`.
    Apply {
        /// A saved plan: applied exactly, or refused if anything changed since.
        #[arg(value_name = "PLAN", required_unless_present = "files", conflicts_with_all = ["files", "approve"])]
        plan: Option<PathBuf>,
        /// Declaration files or directories (recursive; .yaml/.yml; multi-document).
        #[arg(short = 'f', long = "filename", value_name = "PATH")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        approve: Approve,
        /// Apply even if the files declare no Structure: the declarations
        /// remembered for `show` and `status` become that empty set.
        #[arg(long, requires = "files")]
        allow_empty: bool,
    },
    /// Run one synchronizer once, in one direction.
    Resync {
        /// The synchronizer (`name` or `namespace/name`).
        synchronizer: String,
        /// `into` the structure (alias `import`) or `from` it (alias `export`).
        #[arg(long, value_parser = parse_direction)]
        direction: Direction,
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        approve: Approve,
    },
    /// Resync into the structure: the tracker has the final say.
    Import {
        synchronizer: String,
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        approve: Approve,
    },
    /// Resync from the structure: the tracker's issues change.
    Export {
        synchronizer: String,
        #[command(flatten)]
        files: Files,
        #[command(flatten)]
        approve: Approve,
    },
    /// Print a structure as a tree, with its issues as the last run read them.
    Show {
        /// The structure (`name` or `namespace/name`).
        structure: String,
        #[command(flatten)]
        files: OptionalFiles,
        /// Read the tracker now, rather than show the issues as the last
        /// run read them (needs the tracker and its key).
        #[arg(long)]
        refresh: bool,
        #[arg(short, long, value_enum, default_value_t = ShowFormat::Text)]
        output: ShowFormat,
    },
    /// A structure's journal: version, time, author, cause and change of each entry.
    History {
        /// The structure (`name` or `namespace/name`).
        structure: String,
        #[command(flatten)]
        files: OptionalFiles,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Reverse one job's changes to its structure and tracker (the JOB
    /// column of `history`); planned and approved like any run.
    Undo {
        job: u64,
        #[command(flatten)]
        files: OptionalFiles,
        #[command(flatten)]
        approve: Approve,
    },
    /// A line per synchronizer: structure, type, enabled, last sync, errors.
    Status {
        #[command(flatten)]
        files: OptionalFiles,
    },
    /// Move a row by hand (journaled with you as the author).
    Move {
        structure: String,
        /// The row to move: an issue key, or a folder as `NAME/`.
        key: String,
        /// The new parent row: an issue key, or a folder as `NAME/`.
        #[arg(
            long,
            required_unless_present = "top",
            conflicts_with = "top",
            value_name = "KEY"
        )]
        under: Option<String>,
        /// Move to the top level.
        #[arg(long)]
        top: bool,
        /// Place right after this sibling (default: last).
        #[arg(long, value_name = "KEY")]
        after: Option<String>,
    },
    /// Incremental sync: each enabled synchronizer carries what changed on
    /// either side since its last pass to the other, on its schedule, until
    /// interrupted (`--once`: one pass each, now). A pass whose plan is
    /// destructive (rows removed, parents or links cleared) carries out
    /// nothing and waits for its hash to be approved, unless the
    /// synchronizer declares `safety.destructivePasses: apply`; its `safety`
    /// limits refuse a pass that would remove too much either way.
    #[command(visible_alias = "run")]
    Sync {
        /// Only these synchronizers (`name` or `namespace/name`).
        synchronizers: Vec<String>,
        #[command(flatten)]
        files: Files,
        /// One pass of each synchronizer, then exit.
        #[arg(long)]
        once: bool,
        /// Carry out the held destructive plan with this hash (shown by the
        /// pass that held it and by `trellis status`).
        #[arg(long, value_name = "HASH")]
        approve: Option<String>,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Check a synchronizer's declaration and tracker connection, list its
    /// held issues (failed writes, manual conflicts) and recent conflicts,
    /// and retry, skip or resolve them. Exit 1 when something needs a person.
    Troubleshoot {
        synchronizer: String,
        #[command(flatten)]
        files: OptionalFiles,
        /// Try a held issue's changes again at the next pass.
        #[arg(long, value_name = "KEY")]
        retry: Vec<String>,
        /// Give up a held issue's pending change: the tracker's side stays.
        #[arg(long, value_name = "KEY")]
        skip: Vec<String>,
        /// Settle a held issue for the structure: its side is written at the next pass.
        #[arg(long, value_name = "KEY")]
        keep_structure: Vec<String>,
        /// Let a synchronizer the cycle guard stopped run again.
        #[arg(long)]
        restart: bool,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print the CustomResourceDefinitions (as committed in crds/).
    Crds,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowFormat {
    Text,
    Yaml,
    Json,
}

fn parse_direction(value: &str) -> Result<Direction, String> {
    match value {
        "into" | "import" => Ok(Direction::Into),
        "from" | "export" => Ok(Direction::From),
        other => Err(format!(
            "`{other}` is not a direction; use into (import) or from (export)"
        )),
    }
}

/// Who is running Trellis: the author of the changes it makes.
fn author() -> String {
    std::env::var("TRELLIS_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The controller is a server: its logs are for a log pipeline.
    let (default_level, json) = match &cli.command {
        Command::Controller(args) => ("info", args.log_format == LogFormat::Json),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    // Colour only for a person at a terminal: a log file keeps plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && render::colour_wanted())
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader went away (`| head`): nothing is left to tell, as ripgrep does.
        Err(error) if closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // Engine errors already carry their causes in their message.
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Controller(args) => {
            crate::controller::run(crate::controller::Settings {
                state: cli.state,
                namespace: args.namespace,
                listen: args.listen,
                lease: crate::controller::LeaseSettings {
                    namespace: args.lease_namespace,
                    name: args.lease_name,
                    identity: args.identity,
                    ttl: std::time::Duration::from_secs(15),
                },
                local_trackers: args.local_trackers,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crds => {
            out!("{}", crate::spec::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(files) => {
            let catalog = Catalog::load(&files.files)?;
            outln!(
                "valid: {} Tracker(s), {} Structure(s), {} Synchronizer(s), {} Resync(s)",
                catalog.trackers.len(),
                catalog.structures.len(),
                catalog.synchronizers.len(),
                catalog.resyncs.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            files,
            output,
            comment_dir,
            out,
        } => {
            let catalog = Catalog::load(&files.files)?;
            let engine = Engine::new(SqliteStore::open_read_only(&cli.state)?, author());
            let resyncs = plan_resyncs(&engine, &catalog).await?;
            let run = plan(&engine, &catalog, &Scope::Apply).await?;
            let apply = match &out {
                Some(file) => format!("trellis apply {}", file.display()),
                None => render::command("apply", &files.files),
            };
            if let Some(file) = &out {
                std::fs::write(file, run.to_plan_file(&files.files))
                    .with_context(|| format!("cannot write the plan to {}", file.display()))?;
            }
            let terminal = std::io::stdout().is_terminal();
            let apply_files = render::command("apply", &files.files);
            match output {
                PlanFormat::Text => {
                    for resync in &resyncs {
                        out!("{}", resync.text(&apply_files, terminal));
                    }
                    out!("{}", render::plan_text(&run.set, Some(&apply), terminal));
                }
                PlanFormat::Markdown => {
                    let replan = render::command("plan", &files.files);
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
        Command::Apply {
            plan: Some(plan), ..
        } => apply_saved(&cli.state, &plan).await,
        Command::Apply {
            files,
            approve,
            allow_empty,
            ..
        } => {
            let catalog = Catalog::load(&files)?;
            if catalog.structures.is_empty() && !allow_empty {
                bail!(
                    "{} declare{} no Structure; applying it would forget the declarations last applied (what `show`, `status` and `history` read); nothing was changed: pass the right -f PATH, or add --allow-empty if that is what you mean",
                    render::paths(&files),
                    if files.len() == 1 { "s" } else { "" }
                );
            }
            sync(&cli.state, catalog, &files, None, approve.approve).await
        }
        Command::Resync {
            synchronizer,
            direction,
            files,
            approve,
        } => {
            sync(
                &cli.state,
                Catalog::load(&files.files)?,
                &files.files,
                Some((synchronizer, direction)),
                approve.approve,
            )
            .await
        }
        Command::Import {
            synchronizer,
            files,
            approve,
        } => {
            sync(
                &cli.state,
                Catalog::load(&files.files)?,
                &files.files,
                Some((synchronizer, Direction::Into)),
                approve.approve,
            )
            .await
        }
        Command::Export {
            synchronizer,
            files,
            approve,
        } => {
            sync(
                &cli.state,
                Catalog::load(&files.files)?,
                &files.files,
                Some((synchronizer, Direction::From)),
                approve.approve,
            )
            .await
        }
        Command::Show {
            structure,
            files,
            refresh,
            output,
        } => {
            let store = SqliteStore::open_read_only(&cli.state)?;
            let catalog = catalog_or_remembered(&store, &files.files)?;
            let id = structure_id(&catalog, &structure)?;
            let sections = {
                let _progress = Progress::start("reading the structure and its tracker");
                crate::engine::structure_view(&store, &catalog, &id, refresh).await?
            };
            let depth = sections
                .iter()
                .flat_map(|s| s.forest.walk())
                .map(|(_, d)| d + 1)
                .max()
                .unwrap_or(0);
            if !matches!(output, ShowFormat::Text) && depth > render::MAX_TREE_DEPTH {
                bail!(
                    "{id} is {depth} rows deep; YAML and JSON nest one level per row and stop at {}: use --output text",
                    render::MAX_TREE_DEPTH
                );
            }
            match output {
                ShowFormat::Text => out!("{}", render::outline(&sections)),
                ShowFormat::Yaml => {
                    out!("{}", serde_saphyr::to_string(&render::tree(&sections))?)
                }
                ShowFormat::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&render::tree(&sections))?
                ),
            }
            // After the output, on stderr: a reader that stopped early
            // hears nothing, and stdout stays the tree alone.
            for note in render::issues_as_read(&sections, jiff::Timestamp::now()) {
                eprintln!("{note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Undo {
            job,
            files,
            approve,
        } => {
            // Checked read-only first: a wrong job or store path writes nothing.
            let reader = Engine::new(SqliteStore::open_read_only(&cli.state)?, author());
            let catalog = catalog_or_remembered(reader.store(), &files.files)?;
            let scope = reader.undo_scope(job)?;
            let mut engine = Engine::new(SqliteStore::open(&cli.state)?, author());
            let run = plan_to_apply(&mut engine, &catalog, &scope).await?;
            approve_and_apply(&mut engine, &catalog, run, approve.approve).await
        }
        Command::History {
            structure,
            files,
            output,
        } => {
            let store = SqliteStore::open_read_only(&cli.state)?;
            let catalog = catalog_or_remembered(&store, &files.files)?;
            let id = structure_id(&catalog, &structure)?;
            let entries = crate::engine::history(&store, &id)?;
            match output {
                OutputFormat::Text => out!("{}", render::history_table(&entries)),
                OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&entries)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { files } => {
            let store = SqliteStore::open_read_only(&cli.state)?;
            let catalog = catalog_or_remembered(&store, &files.files)?;
            let mut views = std::collections::HashMap::new();
            for sync in &catalog.synchronizers {
                let id = sync.id();
                let state = store.sync_state(&id)?;
                let view = render::SyncView {
                    last_pass: state.last_pass,
                    held: store.held_issues(&id)?.len(),
                    stopped: state.stopped.is_some(),
                    held_plan: state.held_plan.map(|p| p.hash),
                };
                views.insert(id, view);
            }
            out!(
                "{}",
                render::status_table(&catalog, &store.last_jobs()?, &views)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync {
            synchronizers,
            files,
            once,
            approve,
            output,
        } => {
            let run = sync::Run {
                files: &files.files,
                names: &synchronizers,
                once,
                approval: approve.as_deref(),
                output,
            };
            sync::sync(&cli.state, run).await
        }
        Command::Troubleshoot {
            synchronizer,
            files,
            retry,
            skip,
            keep_structure,
            restart,
            output,
        } => {
            let actions = sync::Actions {
                retry,
                skip,
                keep_structure,
                restart,
            };
            sync::troubleshoot(&cli.state, &files.files, &synchronizer, actions, output).await
        }
        Command::Move {
            structure,
            key,
            under,
            top: _,
            after,
        } => {
            let mut engine = Engine::new(SqliteStore::open(&cli.state)?, author());
            let catalog = catalog_or_remembered(engine.store(), &[])?;
            let id = structure_id(&catalog, &structure)?;
            let version = engine.move_row(&id, &key, under.as_deref(), after.as_deref())?;
            outln!("moved {key} in {id}; structure version {version}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Plans and applies one run, asking for confirmation at a terminal when
/// the plan is destructive and no hash was given.
async fn sync(
    state: &std::path::Path,
    catalog: Catalog,
    files: &[PathBuf],
    resync: Option<(String, Direction)>,
    approve: Option<String>,
) -> anyhow::Result<ExitCode> {
    let scope = match &resync {
        Some((name, direction)) => Scope::resync(&catalog, name, *direction)?,
        None => Scope::Apply,
    };
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    if scope == Scope::Apply {
        // Pending Resyncs first, each its own run and approval, so that the
        // synchronizers then run from what they left.
        for resync in plan_resyncs(&engine, &catalog).await? {
            carry_out(&mut engine, &catalog, resync, files).await?;
        }
    }
    let run = plan_to_apply(&mut engine, &catalog, &scope).await?;
    approve_and_apply(&mut engine, &catalog, run, approve).await
}

/// Shows a run, asks for (or checks) approval when it is destructive, and
/// applies it. A run with nothing to change still goes through apply: it
/// records each synchronizer's run (and completes a declared Resync).
async fn approve_and_apply(
    engine: &mut Engine<SqliteStore>,
    catalog: &Catalog,
    run: Run,
    approve: Option<String>,
) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stdout().is_terminal();
    out!("{}", render::plan_text(&run.set, None, terminal));
    run.check_safety()?;
    let approval = match approve {
        Some(hash) => Approval::Hash(hash),
        None if run.set.summary.destructive > 0 && std::io::stdin().is_terminal() => {
            if !confirm(&run.set.hash)? {
                bail!("not applied: the plan was not confirmed");
            }
            Approval::Confirmed
        }
        None => Approval::None,
    };
    apply(engine, catalog, run, &approval).await
}

/// Applies a saved plan: plans again from the same declarations and applies
/// only if that gives the saved plan (same hash), which the plan file stands
/// approved as; otherwise says what changed.
async fn apply_saved(state: &std::path::Path, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let saved = PlanFile::read(path)?;
    let catalog = Catalog::load(&saved.files)?;
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    let run = plan_to_apply(&mut engine, &catalog, &Scope::Apply).await?;
    saved.check(path, &run)?;
    out!(
        "{}",
        render::plan_text(&run.set, None, std::io::stdout().is_terminal())
    );
    apply(&mut engine, &catalog, run, &Approval::Confirmed).await
}

/// A pending Resync's own run: planned alone, so that its hash is the one
/// its `approvedPlan` names — the same as in a cluster.
struct ResyncRun {
    id: String,
    approved: Option<String>,
    run: Run,
}

impl ResyncRun {
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
        format!(
            "Resync {} (a run of its own, carried out before the synchronizers{approved})\n{}To carry it out: {}\n\n",
            self.id,
            render::plan_text(&self.run.set, None, colour),
            self.how_to_apply(apply_files)
        )
    }
}

async fn plan_resyncs(
    engine: &Engine<SqliteStore>,
    catalog: &Catalog,
) -> anyhow::Result<Vec<ResyncRun>> {
    let mut runs = Vec::new();
    for id in engine.pending_resyncs(catalog)? {
        let run = plan(engine, catalog, &Scope::of_resync(catalog, &id)?).await?;
        let approved = catalog
            .resyncs
            .iter()
            .find(|r| r.id() == id)
            .and_then(|r| r.resource.spec.approved_plan.clone());
        runs.push(ResyncRun { id, approved, run });
    }
    Ok(runs)
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
    resync.run.check_safety()?;
    let set = &resync.run.set;
    let approval = match &resync.approved {
        Some(hash) => Approval::Hash(hash.clone()),
        None if set.summary.destructive > 0 && std::io::stdin().is_terminal() => {
            if !confirm(&set.hash)? {
                bail!(
                    "not applied: the plan of Resync {} was not confirmed",
                    resync.id
                );
            }
            Approval::Confirmed
        }
        None if set.summary.destructive > 0 => bail!(
            "Resync {} is destructive ({}); review its plan above, then set `approvedPlan: {}` in it; nothing was changed",
            resync.id,
            set.summary,
            set.hash
        ),
        None => Approval::None,
    };
    let id = resync.id.clone();
    apply(engine, catalog, resync.run, &approval)
        .await
        .map_err(|e| anyhow::anyhow!("Resync {id}: {e}"))?;
    Ok(())
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
) -> anyhow::Result<ExitCode> {
    let applied = {
        let _progress = Progress::start("applying");
        engine.apply(catalog, run, approval).await?
    };
    engine.remember(catalog)?;
    for (structure, version) in applied.structures {
        outln!("applied: {structure} is at version {version}");
    }
    Ok(ExitCode::SUCCESS)
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

/// A spinner on stderr naming what Trellis is doing, shown only when stderr
/// is a terminal: reading and planning 100,000 issues takes seconds.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn start(message: &'static str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn confirm(hash: &str) -> anyhow::Result<bool> {
    out!(
        "This plan is destructive. Type the first 8 characters of its hash ({hash}) to apply it: "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let answer = answer.trim();
    Ok(answer.len() >= 8 && hash.starts_with(answer))
}

fn catalog_or_remembered<S: Store>(store: &S, files: &[PathBuf]) -> anyhow::Result<Catalog> {
    if files.is_empty() {
        let catalog = remembered(store)?;
        if catalog.structures.is_empty() {
            bail!(
                "no declarations applied yet; pass -f PATH, or run `trellis apply -f PATH` first"
            );
        }
        Ok(catalog)
    } else {
        Ok(Catalog::load(files)?)
    }
}

fn structure_id(catalog: &Catalog, name: &str) -> anyhow::Result<String> {
    let matches: Vec<String> = catalog
        .structures
        .iter()
        .map(|s| s.id())
        .filter(|id| id == name || id.rsplit_once('/').is_some_and(|(_, n)| n == name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let known: Vec<String> = catalog.structures.iter().map(|s| s.id()).collect();
            bail!(
                "structure {name} is not declared (declared: {})",
                known.join(", ")
            )
        }
        many => bail!(
            "structure {name} is ambiguous: {}; use namespace/name",
            many.join(", ")
        ),
    }
}

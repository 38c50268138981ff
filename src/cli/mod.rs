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

mod apply;
mod cluster;
mod listen;
mod markdown;
mod render;
mod sync;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Engine, remembered};
use crate::model::Direction;
use crate::spec::{Catalog, Kind};
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

/// `trellis resync --cluster`: ask the cluster's controller, as yourself.
#[derive(Args)]
struct ClusterArgs {
    /// Create a Resync in the cluster (KUBECONFIG) for its controller to
    /// run, with your username as `trellis.dev/requested-by` and its
    /// structure's label, and wait for it: the cluster checks that you may
    /// control the structure. A destructive plan prints the command that
    /// approves it.
    #[arg(long, conflicts_with = "files")]
    cluster: bool,
    /// The namespace, unless the synchronizer names it (default: the
    /// kubeconfig's).
    #[arg(short = 'n', long, conflicts_with = "files")]
    namespace: Option<String>,
    /// Run with your own tracker key, from this Secret (key `apiKey`,
    /// labelled trellis.dev/credentials=true) rather than the Tracker's.
    #[arg(long, value_name = "SECRET", conflicts_with = "files")]
    run_as: Option<String>,
    /// How long to wait for the controller's answer (10 minutes unless given).
    #[arg(long, value_name = "SECONDS", conflicts_with = "files")]
    timeout: Option<u64>,
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
    /// How many structures run at once (a structure's runs always take
    /// turns).
    #[arg(long, env = "TRELLIS_WORKERS", default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Receive webhooks on this address (e.g. 0.0.0.0:8081; off unless
    /// given): Jira's at /hooks/jira/NAMESPACE/TRACKER, anything else's at
    /// /hooks/synchronizers/NAMESPACE/NAME.
    #[arg(long, env = "TRELLIS_WEBHOOK_LISTEN", value_name = "ADDRESS")]
    webhook_listen: Option<std::net::SocketAddr>,
    /// Serve the web UI on this address (e.g. 0.0.0.0:8082; off unless
    /// given). People sign in with their own Kubernetes token; what they
    /// see and do is what the cluster lets them (view, edit, control).
    #[arg(long, env = "TRELLIS_UI_LISTEN", value_name = "ADDRESS")]
    ui_listen: Option<std::net::SocketAddr>,
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
    /// Run one synchronizer once, in one direction: here with `-f`, or by
    /// the cluster's controller with `--cluster`.
    Resync {
        /// The synchronizer (`name` or `namespace/name`).
        synchronizer: String,
        /// `into` the structure (alias `import`) or `from` it (alias `export`).
        #[arg(long, value_parser = parse_direction)]
        direction: Direction,
        /// Declaration files or directories (recursive; .yaml/.yml; multi-document).
        #[arg(
            short = 'f',
            long = "filename",
            value_name = "PATH",
            required_unless_present = "cluster"
        )]
        files: Vec<PathBuf>,
        #[command(flatten)]
        approve: Approve,
        #[command(flatten)]
        cluster: ClusterArgs,
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
        /// How many structures pass at once (the synchronizers of one
        /// structure always run one after another).
        #[arg(long, env = "TRELLIS_WORKERS", default_value_t = 4, value_name = "N",
              value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: u16,
        /// Receive webhooks on this address (e.g. 127.0.0.1:8081): Jira's at
        /// /hooks/jira/NAMESPACE/TRACKER, anything else's at
        /// /hooks/synchronizers/NAMESPACE/NAME; each makes the synchronizers
        /// it concerns pass at once. Edits of local trackers' files and of
        /// the structures are noticed without it.
        #[arg(
            long,
            env = "TRELLIS_WEBHOOK_LISTEN",
            value_name = "ADDRESS",
            conflicts_with = "once"
        )]
        listen: Option<std::net::SocketAddr>,
        /// Do not watch files: only the schedule (and webhooks) make passes,
        /// for file systems that report no changes (NFS, some container
        /// mounts).
        #[arg(long, conflicts_with = "once")]
        no_watch: bool,
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
    /// Serve the web UI (overview, structures, plans, jobs, history) on
    /// this machine, acting as you: moves and approvals are journaled with
    /// you as the author, as at the command line.
    Ui {
        #[command(flatten)]
        files: OptionalFiles,
        /// Where to serve it (port 0: any free port). It has no login: keep
        /// it on a loopback address.
        #[arg(
            long,
            env = "TRELLIS_UI_LISTEN",
            default_value = "127.0.0.1:8090",
            value_name = "ADDRESS"
        )]
        listen: std::net::SocketAddr,
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
    // The controller runs structures at once on every core (its engines'
    // planning is CPU work), and a running sync's receiver answers while a
    // round passes; any other command runs one thing, on one thread.
    let runtime = match &cli.command {
        Command::Controller(_) | Command::Sync { once: false, .. } | Command::Ui { .. } => {
            tokio::runtime::Builder::new_multi_thread()
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .expect("the runtime starts");
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

/// One function per command, as ripgrep dispatches on its mode.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state = cli.state.as_path();
    match cli.command {
        Command::Controller(args) => controller(cli.state, args).await,
        Command::Crds => {
            out!("{}", crate::spec::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(files) => validate(&files.files),
        Command::Plan {
            files,
            output,
            comment_dir,
            out,
        } => apply::plan_command(state, &files.files, output, comment_dir, out).await,
        Command::Apply {
            plan: Some(plan), ..
        } => apply::apply_saved(state, &plan).await,
        Command::Apply {
            files,
            approve,
            allow_empty,
            ..
        } => apply::apply_files(state, &files, approve.approve, allow_empty).await,
        Command::Resync {
            synchronizer,
            direction,
            approve,
            cluster,
            ..
        } if cluster.cluster => {
            cluster::resync(cluster::ClusterResync {
                synchronizer,
                direction,
                namespace: cluster.namespace,
                approve: approve.approve,
                run_as: cluster.run_as,
                timeout: std::time::Duration::from_secs(cluster.timeout.unwrap_or(600)),
            })
            .await
        }
        Command::Resync {
            synchronizer,
            direction,
            files,
            approve,
            ..
        } => apply::resync_command(state, &files, synchronizer, direction, approve.approve).await,
        Command::Import {
            synchronizer,
            files,
            approve,
        } => {
            apply::resync_command(
                state,
                &files.files,
                synchronizer,
                Direction::Into,
                approve.approve,
            )
            .await
        }
        Command::Export {
            synchronizer,
            files,
            approve,
        } => {
            apply::resync_command(
                state,
                &files.files,
                synchronizer,
                Direction::From,
                approve.approve,
            )
            .await
        }
        Command::Show {
            structure,
            files,
            refresh,
            output,
        } => show(state, &structure, &files, refresh, output).await,
        Command::Undo {
            job,
            files,
            approve,
        } => apply::undo_command(state, job, &files, approve.approve).await,
        Command::History {
            structure,
            files,
            output,
        } => history(state, &structure, &files, output),
        Command::Status { files } => status(state, &files),
        Command::Sync {
            synchronizers,
            files,
            once,
            approve,
            output,
            workers,
            listen,
            no_watch,
        } => {
            let run = sync::Run {
                files: &files.files,
                names: &synchronizers,
                once,
                approval: approve.as_deref(),
                output,
                workers: workers.into(),
                listen,
                watch: !no_watch,
            };
            sync::sync(state, run).await
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
            sync::troubleshoot(state, &files.files, &synchronizer, actions, output).await
        }
        Command::Move {
            structure,
            key,
            under,
            top: _,
            after,
        } => move_row(state, &structure, &key, under.as_deref(), after.as_deref()),
        Command::Ui { files, listen } => ui(cli.state, files.files, listen).await,
    }
}

/// `trellis ui`: checks the declarations and the store first, then serves
/// until interrupted.
async fn ui(
    state: PathBuf,
    files: Vec<PathBuf>,
    listen: std::net::SocketAddr,
) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_read_only(&state)?;
    catalog_or_remembered(&store, &files)?;
    drop(store);
    let listener = crate::web::bind(listen).await?;
    let author = author();
    outln!(
        "serving the Trellis UI on http://{}/ as {author} (Ctrl-C stops it)",
        listener.local_addr()?
    );
    let ui = std::sync::Arc::new(crate::web::Ui::local(state, files, author)?);
    crate::web::serve(listener, ui, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn controller(state: PathBuf, args: ControllerArgs) -> anyhow::Result<ExitCode> {
    crate::controller::run(crate::controller::Settings {
        state,
        namespace: args.namespace,
        listen: args.listen,
        lease: crate::controller::LeaseSettings {
            namespace: args.lease_namespace,
            name: args.lease_name,
            identity: args.identity,
            ttl: std::time::Duration::from_secs(15),
        },
        local_trackers: args.local_trackers,
        workers: args.workers.into(),
        webhook_listen: args.webhook_listen,
        ui_listen: args.ui_listen,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(files)?;
    outln!(
        "valid: {} Tracker(s), {} Structure(s), {} Synchronizer(s), {} Resync(s)",
        catalog.trackers.len(),
        catalog.structures.len(),
        catalog.synchronizers.len(),
        catalog.resyncs.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn show(
    state: &Path,
    structure: &str,
    files: &OptionalFiles,
    refresh: bool,
    output: ShowFormat,
) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_read_only(state)?;
    let catalog = catalog_or_remembered(&store, &files.files)?;
    let id = catalog.resolve(Kind::Structure, structure)?;
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

fn history(
    state: &Path,
    structure: &str,
    files: &OptionalFiles,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_read_only(state)?;
    let catalog = catalog_or_remembered(&store, &files.files)?;
    let id = catalog.resolve(Kind::Structure, structure)?;
    let entries = crate::engine::history(&store, &id)?;
    match output {
        OutputFormat::Text => out!("{}", render::history_table(&entries)),
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&entries)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn status(state: &Path, files: &OptionalFiles) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_read_only(state)?;
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

fn move_row(
    state: &Path,
    structure: &str,
    key: &str,
    under: Option<&str>,
    after: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut engine = Engine::new(SqliteStore::open(state)?, author());
    let catalog = catalog_or_remembered(engine.store(), &[])?;
    let id = catalog.resolve(Kind::Structure, structure)?;
    let version = engine.move_row(&id, key, under, after)?;
    outln!("moved {key} in {id}; structure version {version}");
    Ok(ExitCode::SUCCESS)
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

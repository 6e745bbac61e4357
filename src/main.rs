//! The `agora` binary: parses the command line and hands over to the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use agora::config::{Overrides, Settings};
use agora::node::{offline, shutdown_signal, Listeners, Node};
use clap::{Args, Parser, Subcommand};

// sled allocates a fresh I/O buffer per flush and the saga many small
// records per checkout; glibc's malloc returned those pages to the kernel
// and took them back zeroed (`clear_page_erms` was 8.5% of the server's
// samples under the checkout benchmark). mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Agora: an actor-based reactive marketplace server.
///
/// With no command it runs a node, and takes `serve`'s options:
/// `agora --http 127.0.0.1:9000 --data-dir ./scratch`.
#[derive(Parser)]
#[command(name = "agora", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `serve`'s options, for when no command is given.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default when no command is given).
    Serve(ServeArgs),
    /// Rebuild the search index from the stored items (after a schema
    /// change, or if the index was lost). The node must be stopped.
    Reindex(StoreArgs),
    /// The event log (the node must be stopped).
    #[command(subcommand)]
    Events(EventsCommand),
    /// The recommender's aggregates (the node must be stopped).
    #[command(subcommand)]
    Recommendations(RecommendationsCommand),
    /// Load a running node (or several) with a scenario, then check its
    /// invariants through the API. Loopback targets only, unless told.
    ///
    /// Runs the harness `agora-load`, built beside `agora`; `agora load
    /// --help` lists its options.
    // The harness parses its own options (and --help), so they pass through.
    #[command(disable_help_flag = true)]
    Load(LoadArgs),
}

#[derive(Args)]
struct LoadArgs {
    /// The harness's options, passed to `agora-load` as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Write the event log as JSON lines (one event per line, oldest first;
    /// order events joined with their lines), for batch engines.
    Export(ExportArgs),
    /// The log's size: events in sled (entries, bytes) and in the archive
    /// (segments, compressed bytes), as JSON.
    Stats(StoreArgs),
}

#[derive(Subcommand)]
enum RecommendationsCommand {
    /// Rebuild the aggregates from the whole event log.
    Rebuild(StoreArgs),
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct StoreArgs {
    /// Settings file (default: ./cluster.toml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Settings file (default: ./cluster.toml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listen address, e.g. 127.0.0.1:8080 (port 0 picks one).
    #[arg(long)]
    http: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This node's id in cluster.toml.
    #[arg(long)]
    node_id: Option<String>,
    /// Requests per second per token (or client IP); 0 disables.
    #[arg(long)]
    rate_limit_per_sec: Option<u32>,
    /// Seconds an order may stay PAYMENT_PENDING.
    #[arg(long)]
    payment_ttl_secs: Option<u64>,
    /// Latency of the simulated payment gateway.
    #[arg(long)]
    payment_latency_ms: Option<u64>,
    /// How long POST /checkout waits before answering 202.
    #[arg(long)]
    checkout_wait_ms: Option<u64>,
    /// Serve /metrics on this address only (not on --http).
    #[arg(long)]
    admin_http: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command whose output is data logs to stderr.
    let data_on_stdout = matches!(
        cli.command,
        Some(Command::Events(_)) | Some(Command::Load(_))
    );
    agora::telemetry::init_tracing(data_on_stdout);
    match cli.command {
        Some(Command::Serve(args)) => serve_command(args),
        Some(Command::Reindex(args)) => reindex(args),
        Some(Command::Events(EventsCommand::Export(args))) => export(args),
        Some(Command::Events(EventsCommand::Stats(args))) => event_stats(args),
        Some(Command::Recommendations(RecommendationsCommand::Rebuild(args))) => rebuild(args),
        Some(Command::Load(options)) => load(options),
        None => serve_command(cli.serve),
    }
}

fn serve_command(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        http: args.http,
        data_dir: args.data_dir,
        node_id: args.node_id,
        rate_limit_per_sec: args.rate_limit_per_sec,
        payment_ttl_secs: args.payment_ttl_secs,
        payment_latency_ms: args.payment_latency_ms,
        checkout_wait_ms: args.checkout_wait_ms,
        admin_http: args.admin_http,
    };
    private_files();
    run(args.config, overrides, |settings| async move {
        // Bound before the node starts: a taken port fails fast, before
        // storage is opened.
        let listeners = Listeners::bind(&settings)?;
        // The node announces where it serves (port 0 is replaced by the
        // port the kernel picked).
        let settings = Settings {
            http: listeners.local_addr(),
            ..settings
        };
        let node = Node::start(settings).await?;
        let (public, admin) = (listeners.local_addr(), listeners.admin_addr());
        // Tests and scripts read these lines to learn the ports when asked
        // for port 0; the admin line comes first, so a reader that stops at
        // the public one has seen both.
        let announce = move || {
            if let Some(admin) = admin {
                println!("agora admin listening on http://{admin}");
            }
            println!("agora listening on http://{public}");
        };
        listeners.serve(node, announce, shutdown_signal()).await
    })
}

fn reindex(args: StoreArgs) -> ExitCode {
    offline(args, |settings| async move {
        let count = offline::reindex(&settings).await?;
        println!("search index rebuilt: {count} items");
        Ok(())
    })
}

fn rebuild(args: StoreArgs) -> ExitCode {
    offline(args, |settings| async move {
        let (applied, took) = offline::rebuild_recommendations(&settings).await?;
        let secs = took.as_secs_f64();
        println!(
            "recommendations rebuilt: {applied} events in {secs:.2} s ({:.0} events/s)",
            applied as f64 / secs.max(1e-9)
        );
        Ok(())
    })
}

fn export(args: ExportArgs) -> ExitCode {
    let ExportArgs {
        store,
        after,
        limit,
        out,
    } = args;
    let target = match out {
        Some(path) => offline::ExportTarget::File(path),
        None => offline::ExportTarget::Stdout,
    };
    offline(store, move |settings| async move {
        let exported = offline::export(&settings, after, limit, target).await?;
        if exported.cut_short {
            eprintln!("the reader closed the output early");
        } else {
            eprintln!("exported {} events", exported.events);
        }
        Ok(())
    })
}

fn event_stats(args: StoreArgs) -> ExitCode {
    offline(args, |settings| async move {
        let stats = offline::event_stats(&settings).await?;
        println!("{}", serde_json::to_string(&stats)?);
        Ok(())
    })
}

/// Runs the load harness, `agora-load`, with `args`, git-style: the binary
/// beside this one, else the one on `PATH`. Its exit code is ours (1 if an
/// invariant broke, 2 if the run could not be made).
fn load(args: LoadArgs) -> ExitCode {
    let name = format!("agora-load{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(&name))
        .filter(|path| path.is_file());
    // A bare name (no directory) is looked up on PATH.
    let harness = beside.unwrap_or_else(|| PathBuf::from(&name));
    let mut command = std::process::Command::new(&harness);
    command.args(&args.args);
    match hand_over(command) {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "agora: the load harness `{name}` is neither beside this binary nor on PATH; \
                 build it with `cargo build --release` (the whole workspace) \
                 or `cargo build --release -p agora-load`"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("agora: cannot run {}: {e}", harness.display());
            ExitCode::from(2)
        }
    }
}

/// Replaces this process with the harness, so it keeps our process id: a
/// caller that signals or waits for `agora load` reaches the harness
/// itself. Returns only if it could not be started.
#[cfg(unix)]
fn hand_over(mut command: std::process::Command) -> std::io::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    // clap names a program after argv[0]: the harness's usage reads `agora load`.
    Err(command.arg0("agora load").exec())
}

/// Runs the harness to its end; its exit code.
#[cfg(not(unix))]
fn hand_over(mut command: std::process::Command) -> std::io::Result<ExitCode> {
    let status = command.status()?;
    let code = status.code().and_then(|c| u8::try_from(c).ok());
    Ok(ExitCode::from(code.unwrap_or(1)))
}

/// Runs an offline `command` (see `agora::node::offline`) with the
/// settings of the node whose storage it works on.
fn offline<F, Fut>(args: StoreArgs, command: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let overrides = Overrides {
        data_dir: args.data_dir,
        ..Overrides::default()
    };
    private_files();
    run(args.config, overrides, command)
}

/// Everything this process creates (sled's files, the search index,
/// media, keys, an export) is readable by its user alone: files `0600`,
/// folders `0700`. A umask rather than a mode per `open`, because sled and
/// tantivy create their files themselves.
fn private_files() {
    // SAFETY: umask only swaps the process's creation mask; it cannot fail.
    #[cfg(unix)]
    unsafe {
        libc::umask(0o077);
    }
}

/// Loads the settings (exit code 2 if they are invalid) and runs `command`
/// on a multi-threaded runtime.
fn run<F, Fut>(config: Option<PathBuf>, overrides: Overrides, command: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = match Settings::load(config.as_deref(), &overrides) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("agora: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("agora: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agora: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `agora-load` binary, run as `agora load ...` (the `agora` binary
//! hands the command over to it) or directly: parses the options, runs the
//! harness, prints the report.

use std::process::ExitCode;

use agora_load::LoadOptions;
use clap::Parser;

// The allocator the harness had when it was part of the `agora` binary, so
// its own cost as a load generator (BENCHMARKS.md) stays what it was.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load a running node (or several) with a scenario, then check its
/// invariants through the API. Loopback targets only, unless told.
#[derive(Parser)]
#[command(name = "agora-load", version)]
struct Cli {
    #[command(flatten)]
    options: LoadOptions,
}

/// Exit code 1 if an invariant broke, 2 if the run could not be made.
fn main() -> ExitCode {
    let options = Cli::parse().options;
    init_tracing();
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
    let json = options.json;
    match runtime.block_on(agora_load::run(options)) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("agora load: {e}"),
                }
            } else {
                print!("{}", report.table());
            }
            if report.held {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("agora load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr: stdout carries the report.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: redirected logs get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

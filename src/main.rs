//! The `sentinel-proxy` binary: parse, validate, run, drain on SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use sentinel_proxy::config::{Cli, Command};
use sentinel_proxy::{App, Config, telemetry};
use tokio::signal::unix::{SignalKind, signal};

/// Exit code for bad usage or configuration (as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sentinel-proxy: error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        println!("{}", config.describe());
        return ExitCode::SUCCESS;
    }
    telemetry::init(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .thread_name("data")
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("sentinel-proxy: error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sentinel-proxy: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let metrics = match config.metrics_listen {
        Some(_) => Some(sentinel_proxy::metrics::install()?),
        None => None,
    };
    let app = App::start_with_metrics(config, metrics).await?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "shutting down: draining sessions");
    app.shutdown().await;
    Ok(())
}

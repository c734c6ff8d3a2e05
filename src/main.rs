//! The `sentinel-proxy` binary: parse, validate, run, drain on SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use sentinel_proxy::config::{Cli, Command, Source};
use sentinel_proxy::{App, Config, telemetry};
use tokio::signal::unix::{SignalKind, signal};

/// Exit code for bad usage or configuration (as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(file) = &cli.sentinel_conf {
        return stand_in(file);
    }
    match &cli.command {
        Some(Command::Healthcheck { addr }) => return healthcheck(&cli, addr.as_deref()),
        Some(Command::ImportSentinelConf { file }) => return import_sentinel_conf(file),
        Some(Command::Demo {
            chaos,
            writer,
            duration,
        }) => return demo(*chaos, *writer, *duration),
        _ => {}
    }
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sentinel-proxy: error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        println!("{}", config.describe());
        if let Source::Core(core) = &config.source {
            for warning in core.warnings() {
                eprintln!("sentinel-proxy: warning: {warning}");
            }
        }
        return ExitCode::SUCCESS;
    }
    telemetry::init(config.log_format, &config.log_level);
    let runtime = match data_runtime(config.threads) {
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

/// The runtime of the data path.
///
/// One thread (the default) gets tokio's current-thread scheduler: it runs
/// woken sessions first in, first out, so requests that arrive on two client
/// connections in one order are written to Redis in that order. The
/// multi-thread scheduler runs the most recently woken task first (its LIFO
/// slot) and, with several threads, sessions side by side; there, two
/// clients' commands that arrive within microseconds of each other may reach
/// Redis in either order.
fn data_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name("data")
            .build()
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let metrics = match config.metrics_listen {
        Some(_) => Some(sentinel_proxy::metrics::install()?),
        None => None,
    };
    let mut hup = signal(SignalKind::hangup())?;
    let app = App::start_with_metrics(config, metrics).await?;
    // SIGHUP re-reads the TLS certificate; SIGTERM and SIGINT stop.
    let which = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => app.reload_tls(),
        }
    };
    tracing::info!(signal = which, "shutting down: draining sessions");
    app.shutdown().await;
    Ok(())
}

/// `--sentinel-conf FILE`: runs as a drop-in `redis-sentinel` until SIGTERM
/// or SIGINT.
fn stand_in(file: &std::path::Path) -> ExitCode {
    use sentinel_proxy::standin::{self, Failed};
    let prepared = match standin::prepare(file) {
        Ok(prepared) => prepared,
        Err(Failed::Unlogged(error)) => {
            eprintln!("sentinel-proxy: error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(Failed::Logged) => return ExitCode::from(EXIT_USAGE),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("sentinel-proxy: error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: anyhow::Result<()> = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        // redis-sentinel ignores SIGHUP; its stand-in only re-reads its TLS
        // files, if it has any.
        let mut hup = signal(SignalKind::hangup())?;
        let tls = prepared.reloadable();
        let stop = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(prepared.run(stop.clone()));
        let which = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = hup.recv() => tls.reload(),
            }
        };
        tracing::info!(signal = which, "stopping");
        stop.cancel();
        let _ = running.await;
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sentinel-proxy: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `healthcheck`: GET /healthz on the running proxy's metrics endpoint.
fn healthcheck(cli: &Cli, addr: Option<&str>) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let target: Option<SocketAddr> = match addr {
        Some(addr) => addr.parse().ok(),
        None => Config::load(cli)
            .ok()
            .map(|c| c.metrics_listen)
            .unwrap_or_else(|| "127.0.0.1:9121".parse().ok()),
    };
    let Some(mut target) = target else {
        eprintln!("sentinel-proxy: error: healthcheck needs HOST:PORT (an IP address and port)");
        return ExitCode::from(EXIT_USAGE);
    };
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = Duration::from_secs(3);
    let answer = TcpStream::connect_timeout(&target, timeout).and_then(|mut stream| {
        stream.set_read_timeout(Some(timeout))?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    });
    match answer {
        Ok(response) if response.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!(
                "sentinel-proxy: unhealthy: {}",
                response.lines().next().unwrap_or("no answer")
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("sentinel-proxy: unhealthy: {target}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `demo`: the local lab.
fn demo(chaos: Option<u64>, writer: bool, duration: Option<u64>) -> ExitCode {
    let options = sentinel_proxy::demo::Options {
        chaos,
        writer,
        duration,
    };
    match sentinel_proxy::demo::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ sentinel_proxy::demo::DemoError::NoRedis) => {
            eprintln!("sentinel-proxy: error: {error}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("sentinel-proxy: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `import-sentinel-conf FILE`: the converted config on stdout.
fn import_sentinel_conf(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "sentinel-proxy: error: cannot read {}: {error}",
                file.display()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match sentinel_proxy::sentinel_conf::convert(&text) {
        Ok(imported) => {
            print!("{}", imported.toml);
            for note in &imported.notes {
                eprintln!("sentinel-proxy: note: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sentinel-proxy: error: {}: {error}", file.display());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

//! Wiring: builds the pieces from a [`Config`] and runs them. No logic lives here.
//!
//! Two runtimes, as the design requires: the data path runs on a multi-threaded
//! runtime; the control path (Sentinel follower, probes) on its own
//! single-threaded runtime on a named thread, so its timers do not depend on
//! data-plane load. The switch is the only thing they share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use arc_swap::ArcSwap;

use crate::catalog;
use crate::config::{Config, Source};
use crate::follow::Follower;
use crate::proxy::{self, Shared};
use crate::resp::command::{Class, CommandTable};
use crate::switch;

/// A running proxy: its bound address and the handles to stop it.
pub struct App {
    /// The address clients connect to (the real port when `:0` was asked).
    pub listen_addr: SocketAddr,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
    sessions: TaskTracker,
    control: CancellationToken,
    drain_timeout: Duration,
    control_thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl App {
    /// Binds the client listener and starts the data and control paths on the
    /// current (data) runtime and a new control thread.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let listener = bind(config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let listen_addr = listener.local_addr()?;
        let (hints, hint_rx) = switch::hints();
        let control = CancellationToken::new();
        let commands = Arc::new(ArcSwap::from_pointee(CommandTable::builtin()));
        let shutdown = CancellationToken::new();
        let (writer, reader) = match &config.source {
            Source::Fixed(master) => switch::new(Some(*master), 0, &shutdown),
            Source::Sentinels(_) => switch::new(None, 0, &shutdown),
        };
        let follower = match &config.source {
            // A fixed master never changes: there is nothing to follow.
            Source::Fixed(_) => None,
            Source::Sentinels(sentinels) => Some(Follower {
                sentinels: sentinels.clone(),
                master_name: config.master_name.clone(),
                auth: config.backend_auth.clone(),
                writer,
                hints: hint_rx,
                connections: Default::default(),
            }),
        };
        let learn_commands = catalog::follow(
            reader.clone(),
            config.backend_auth.clone(),
            Arc::clone(&commands),
            control.clone(),
        );
        let cancel = control.clone();
        let control_thread =
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(error) => {
                            return tracing::error!(%error, "cannot start the control runtime");
                        }
                    };
                    runtime.block_on(async move {
                        let learner = tokio::spawn(learn_commands);
                        match follower {
                            Some(follower) => follower.run(cancel).await,
                            None => cancel.cancelled().await,
                        }
                        let _ = learner.await;
                    });
                })?;
        let shared = Arc::new(Shared {
            switch: reader,
            hints,
            settings: proxy::Settings::from_config(&config),
            commands,
            counters: Default::default(),
        });
        let stop_accepting = CancellationToken::new();
        let sessions = TaskTracker::new();
        let accept_task = tokio::spawn(proxy::listener::serve(
            listener,
            Arc::clone(&shared),
            config.max_clients,
            sessions.clone(),
            stop_accepting.clone(),
            shutdown.clone(),
        ));
        info!(listen = %listen_addr, source = ?config.source, "sentinel-proxy ready");
        Ok(App {
            listen_addr,
            stop_accepting,
            shutdown,
            sessions,
            control,
            drain_timeout: config.drain_timeout,
            control_thread: Some(control_thread),
            accept_task,
            shared: Arc::clone(&shared),
        })
    }

    /// Graceful stop: stop accepting, let sessions finish their in-flight
    /// replies (bounded by the drain timeout), then stop the control path.
    pub async fn shutdown(mut self) {
        self.stop_accepting.cancel();
        let _ = self.accept_task.await;
        self.shutdown.cancel();
        self.sessions.close();
        let grace = self.drain_timeout + Duration::from_millis(500);
        if tokio::time::timeout(grace, self.sessions.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.sessions.len(),
                "sessions still open after the drain timeout"
            );
        }
        self.control.cancel();
        let counts: Vec<String> = Class::ALL
            .iter()
            .map(|c| format!("{}={}", c.as_str(), self.shared.counters.commands(*c)))
            .collect();
        info!(commands = %counts.join(" "), "traffic since start");
        if let Some(thread) = self.control_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        info!("stopped");
    }
}

/// Pending connections the kernel may queue before the proxy accepts them
/// (capped by `net.core.somaxconn`). Large, so a burst of a thousand clients
/// connecting at once is not met with SYN retransmits.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the client listener with address reuse and a large backlog.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

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
use metrics_exporter_prometheus::PrometheusHandle;

mod core_plan;

pub(crate) use self::core_plan::announce_addr;
use self::core_plan::{CorePlan, CoreTls};
use crate::admin;
use crate::backend::connect::Dialer;
use crate::catalog;
use crate::config::{Config, Source};
use crate::control::{Committer, Source as _};
use crate::follow::Follower;
use crate::proxy::{self, Shared};
use crate::resp::command::{Class, CommandTable};

use crate::switch;
use crate::tls::{ClientTls, ServerTls};

/// A running proxy: its bound address and the handles to stop it.
pub struct App {
    /// The address clients connect to (the real port when `:0` was asked).
    pub listen_addr: Option<SocketAddr>,
    /// The sentinel port's address, when the sentinel core runs.
    pub sentinel_addr: Option<SocketAddr>,
    /// The HTTP endpoint (metrics and health), unless turned off.
    pub metrics_addr: Option<SocketAddr>,
    /// The client endpoints of the `[[group]]`s that have one, by group name.
    pub group_addrs: Vec<(String, SocketAddr)>,
    /// The TLS client endpoint, when there is one.
    pub tls_addr: Option<SocketAddr>,
    /// Its certificate, re-read by [`App::reload_tls`].
    tls: Option<Arc<ServerTls>>,
    /// TLS towards servers and peers, re-read by [`App::reload_tls`].
    client_tls: Option<Arc<ClientTls>>,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
    sessions: TaskTracker,
    control: CancellationToken,
    drain_timeout: Duration,
    control_thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The accept loops of every client endpoint (plain, TLS, the groups',
    /// the read endpoints).
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Binds the client listener and starts the data and control paths on the
    /// current (data) runtime and a new control thread, without a metrics
    /// registry (`/metrics` answers 404; the other endpoints work).
    pub async fn start(config: Config) -> anyhow::Result<App> {
        App::start_with_metrics(config, None).await
    }

    /// As [`App::start`], exporting `metrics` (the installed Prometheus
    /// recorder's handle) on `/metrics`.
    pub async fn start_with_metrics(
        config: Config,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<App> {
        let admin_listener = config
            .metrics_listen
            .map(|addr| bind_std(addr, "metrics_listen"))
            .transpose()?;
        let metrics_addr = admin_listener
            .as_ref()
            .map(std::net::TcpListener::local_addr)
            .transpose()?;
        let (status_tx, status_rx) = crate::status::channel();
        let (hints, hint_rx) = switch::hints();
        let control = CancellationToken::new();
        let commands = Arc::new(ArcSwap::from_pointee(CommandTable::builtin()));
        let shutdown = CancellationToken::new();
        // Each `[[group]]` with an endpoint: its listeners (bound now, so a
        // busy port stops the start) and its own switch.
        let mut group_endpoints = Vec::new();
        let mut read_endpoints = Vec::new();
        let mut group_writers = Vec::new();
        for group in &config.groups {
            if group.listen.is_none() && group.read_listen.is_none() {
                continue;
            }
            let (writer, reader) = switch::new(None, 0, &shutdown);
            let bind_for = |addr, what| {
                bind(addr).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot listen on {addr} ({what} of group {}): {e}",
                        group.name
                    )
                })
            };
            if let Some(addr) = group.listen {
                let listener = bind_for(addr, "listen")?;
                group_endpoints.push((group.name.clone(), listener, reader.clone()));
            }
            if let Some(addr) = group.read_listen {
                let listener = bind_for(addr, "read_listen")?;
                read_endpoints.push((group.name.clone(), listener, reader, Arc::default()));
            }
            group_writers.push((group.name.clone(), writer));
        }
        // The TLS endpoints' certificate, read again (check-config read it
        // once); one for both endpoints, so one SIGHUP reloads both.
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(
                ServerTls::load(tls.files.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
            )),
            None => None,
        };
        // TLS towards servers and peers: one for every connection the
        // proxy opens, so one SIGHUP reloads it too.
        let client_tls = match &config.tls_backend {
            Some(files) => Some(Arc::new(
                ClientTls::load(files.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
            )),
            None => None,
        };
        let dialer = client_tls.clone().map(Dialer::tls).unwrap_or_default();
        let (control_path, reader) = match &config.source {
            Source::Core(core) => {
                let (writer, reader) = switch::new(None, 0, &shutdown);
                let tls_sentinel = CoreTls {
                    endpoint: tls
                        .clone()
                        .zip(config.tls.as_ref().and_then(|t| t.sentinel_listen)),
                    dialer: dialer.clone(),
                };
                let plan = CorePlan::prepare(
                    &config,
                    core,
                    writer,
                    group_writers,
                    hint_rx,
                    status_tx,
                    tls_sentinel,
                )?;
                (ControlPath::Core(Box::new(plan)), reader)
            }
            Source::Sentinels(sentinels) => {
                let (writer, reader) = switch::new(None, 0, &shutdown);
                status_tx.send_replace(crate::status::Status {
                    source: "following-sentinels",
                    master_name: config.master_name.clone(),
                    // The Sentinels own the quorum; this proxy has none to lose.
                    quorum_reachable: true,
                    ..Default::default()
                });
                let follower = Follower {
                    sentinels: sentinels.clone(),
                    master_name: config.master_name.clone(),
                    auth: config.backend_auth.clone(),
                    committer: Committer::new(writer),
                    hints: hint_rx,
                    connections: Default::default(),
                    status: status_tx,
                    dialer: dialer.clone(),
                };
                (ControlPath::Follow(Box::new(follower)), reader)
            }
        };
        // The first group's read endpoint, bound before the client port.
        if let Some(addr) = config.reads.listen {
            let listener = bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (read_listen): {e}"))?;
            let endpoint = (
                config.master_name.clone(),
                listener,
                reader.clone(),
                Arc::default(),
            );
            read_endpoints.insert(0, endpoint);
        }
        // The TLS client endpoint, bound before the plain one.
        let tls_endpoint = match (&tls, config.tls.as_ref().and_then(|t| t.listen)) {
            (Some(tls), Some(addr)) => {
                let listener = bind(addr)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (tls_listen): {e}"))?;
                Some((listener, Arc::clone(tls)))
            }
            _ => None,
        };
        // The client port is bound last: once it accepts connections, so do
        // the sentinel and metrics ports (a TCP readiness probe on the client
        // port may be followed at once by a SENTINEL command).
        let listener = match config.listen {
            Some(addr) => {
                Some(bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?)
            }
            None => None,
        };
        let listen_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let sentinel_addr = match &control_path {
            ControlPath::Core(plan) => Some(plan.sentinel_addr),
            ControlPath::Follow(_) => None,
        };
        let counters = Arc::new(proxy::Counters::default());
        let admin_sources = admin::Sources {
            metrics,
            counters: Arc::clone(&counters),
            switch: reader.clone(),
            status: status_rx,
            config: config.describe().into(),
            reads: read_endpoints
                .iter()
                .map(|(group, _, switch, load)| admin::ReadSource {
                    group: group.clone(),
                    switch: switch.clone(),
                    load: Arc::clone(load),
                })
                .collect(),
        };
        let learn_commands = catalog::follow(
            dialer.clone(),
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
                        let admin = match admin_listener.map(TcpListener::from_std) {
                            Some(Ok(listener)) => Some(tokio::spawn(admin::serve(
                                listener,
                                admin_sources,
                                cancel.clone(),
                            ))),
                            Some(Err(error)) => {
                                tracing::error!(%error, "cannot serve the metrics endpoint");
                                None
                            }
                            None => None,
                        };
                        match control_path {
                            ControlPath::Core(plan) => plan.run(cancel).await,
                            ControlPath::Follow(follower) => (*follower).run(cancel).await,
                        }
                        let _ = learner.await;
                        if let Some(admin) = admin {
                            let _ = admin.await;
                        }
                    });
                })?;
        let settings = proxy::Settings::from_config(&config);
        let shared_with = |switch, settings: &proxy::Settings, read_load| {
            Arc::new(Shared {
                switch,
                hints: hints.clone(),
                settings: settings.clone(),
                commands: Arc::clone(&commands),
                counters: Arc::clone(&counters),
                links: proxy::shared::SharedBackends::new(dialer.clone()),
                dialer: dialer.clone(),
                read_load,
            })
        };
        let shared_for = |switch| shared_with(switch, &settings, Arc::default());
        let read_settings = proxy::Settings {
            reads: Some(config.reads.fallback),
            ..settings.clone()
        };
        let shared = shared_for(reader);
        let stop_accepting = CancellationToken::new();
        let sessions = TaskTracker::new();
        let serve = |listener, shared, tls| {
            tokio::spawn(proxy::listener::serve(
                listener,
                shared,
                config.max_clients,
                sessions.clone(),
                stop_accepting.clone(),
                shutdown.clone(),
                tls,
            ))
        };
        let mut group_addrs = Vec::new();
        let mut accept_tasks = Vec::new();
        if let Some(listener) = listener {
            accept_tasks.push(serve(listener, Arc::clone(&shared), None));
        }
        let mut tls_addr = None;
        if let Some((listener, server_tls)) = tls_endpoint {
            let addr = listener.local_addr()?;
            info!(listen = %addr, "serving TLS clients");
            tls_addr = Some(addr);
            accept_tasks.push(serve(listener, Arc::clone(&shared), Some(server_tls)));
        }
        for (name, listener, reader) in group_endpoints {
            let addr = listener.local_addr()?;
            info!(group = %name, listen = %addr, "serving the group's clients");
            group_addrs.push((name, addr));
            accept_tasks.push(serve(listener, shared_for(reader), None));
        }
        for (name, listener, reader, load) in read_endpoints {
            let addr = listener.local_addr()?;
            info!(group = %name, listen = %addr, "serving reads from the group's replicas");
            let shared = shared_with(reader, &read_settings, load);
            accept_tasks.push(serve(listener, shared, None));
        }
        match sentinel_addr {
            Some(sentinel) => {
                info!(listen = ?listen_addr, tls = ?tls_addr, %sentinel, metrics = ?metrics_addr, "sentinel-proxy ready")
            }
            None => {
                info!(listen = ?listen_addr, tls = ?tls_addr, source = ?config.source, metrics = ?metrics_addr, "sentinel-proxy ready")
            }
        }
        Ok(App {
            listen_addr,
            sentinel_addr,
            metrics_addr,
            group_addrs,
            tls_addr,
            tls,
            client_tls,
            stop_accepting,
            shutdown,
            sessions,
            control,
            drain_timeout: config.drain_timeout,
            control_thread: Some(control_thread),
            accept_tasks,
            shared: Arc::clone(&shared),
        })
    }

    /// Re-reads the TLS files (SIGHUP): the endpoints' certificate, key and
    /// CA, and those of connections to servers. New connections use them;
    /// open ones keep theirs. A file that does not load is logged and the
    /// files in force stay.
    pub fn reload_tls(&self) {
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => info!("TLS certificate reloaded"),
                Err(error) => {
                    warn!(%error, "TLS certificate not reloaded; the previous one stays in use")
                }
            }
        }
        if let Some(tls) = &self.client_tls {
            match tls.reload() {
                Ok(()) => info!("TLS files for connections to servers reloaded"),
                Err(error) => warn!(
                    %error,
                    "TLS files for connections to servers not reloaded; the previous ones stay in use"
                ),
            }
        }
    }

    /// Graceful stop: stop accepting, let sessions finish their in-flight
    /// replies (bounded by the drain timeout), then stop the control path.
    pub async fn shutdown(mut self) {
        self.stop_accepting.cancel();
        for task in self.accept_tasks.drain(..) {
            let _ = task.await;
        }
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

/// Binds a listener for the control runtime (non-blocking, to be handed to
/// it); an error names the setting.
fn bind_std(addr: SocketAddr, field: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({field}): {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

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

/// The control path the proxy runs.
enum ControlPath {
    /// The built-in sentinel core.
    Core(Box<CorePlan>),
    /// Following existing Sentinels.
    Follow(Box<Follower>),
}

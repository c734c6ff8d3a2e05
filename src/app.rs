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

use crate::admin;
use crate::catalog;
use crate::config::{Config, CoreConfig, Source};
use crate::control::{Committer, Source as _};
use crate::follow::Follower;
use crate::proxy::{self, Shared};
use crate::resp::command::{Class, CommandTable};
use crate::sentinel::{self, Core};
use crate::switch::{self, Hint, SwitchWriter};
use crate::tls::ServerTls;

/// A running proxy: its bound address and the handles to stop it.
pub struct App {
    /// The address clients connect to (the real port when `:0` was asked).
    pub listen_addr: SocketAddr,
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
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
    sessions: TaskTracker,
    control: CancellationToken,
    drain_timeout: Duration,
    control_thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    accept_task: tokio::task::JoinHandle<()>,
    /// The accept loops of the `[[group]]` endpoints.
    group_accept_tasks: Vec<tokio::task::JoinHandle<()>>,
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
        let admin_listener = match config.metrics_listen {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr).map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (metrics_listen): {e}")
                })?;
                listener.set_nonblocking(true)?;
                Some(listener)
            }
            None => None,
        };
        let metrics_addr = admin_listener
            .as_ref()
            .map(std::net::TcpListener::local_addr)
            .transpose()?;
        let (status_tx, status_rx) = crate::status::channel();
        let (hints, hint_rx) = switch::hints();
        let control = CancellationToken::new();
        let commands = Arc::new(ArcSwap::from_pointee(CommandTable::builtin()));
        let shutdown = CancellationToken::new();
        // Each `[[group]]` with an endpoint: its listener (bound now, so a
        // busy port stops the start) and its own switch.
        let mut group_endpoints = Vec::new();
        let mut group_writers = Vec::new();
        for group in &config.groups {
            let Some(addr) = group.listen else {
                continue;
            };
            let listener = bind(addr).map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {addr} (listen of group {}): {e}",
                    group.name
                )
            })?;
            let (writer, reader) = switch::new(None, 0, &shutdown);
            group_endpoints.push((group.name.clone(), listener, reader));
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
        let (control_path, reader) = match &config.source {
            Source::Core(core) => {
                let (writer, reader) = switch::new(None, 0, &shutdown);
                let tls_sentinel = tls
                    .clone()
                    .zip(config.tls.as_ref().and_then(|t| t.sentinel_listen));
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
                };
                (ControlPath::Follow(Box::new(follower)), reader)
            }
        };
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
        let listener = bind(config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let listen_addr = listener.local_addr()?;
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
        let shared_for = |switch| {
            Arc::new(Shared {
                switch,
                hints: hints.clone(),
                settings: settings.clone(),
                commands: Arc::clone(&commands),
                counters: Arc::clone(&counters),
                links: Default::default(),
            })
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
        let accept_task = serve(listener, Arc::clone(&shared), None);
        let mut group_addrs = Vec::new();
        let mut group_accept_tasks = Vec::new();
        let mut tls_addr = None;
        if let Some((listener, server_tls)) = tls_endpoint {
            let addr = listener.local_addr()?;
            info!(listen = %addr, "serving TLS clients");
            tls_addr = Some(addr);
            group_accept_tasks.push(serve(listener, Arc::clone(&shared), Some(server_tls)));
        }
        for (name, listener, reader) in group_endpoints {
            let addr = listener.local_addr()?;
            info!(group = %name, listen = %addr, "serving the group's clients");
            group_addrs.push((name, addr));
            group_accept_tasks.push(serve(listener, shared_for(reader), None));
        }
        match sentinel_addr {
            Some(sentinel) => {
                info!(listen = %listen_addr, %sentinel, metrics = ?metrics_addr, "sentinel-proxy ready")
            }
            None => {
                info!(listen = %listen_addr, source = ?config.source, metrics = ?metrics_addr, "sentinel-proxy ready")
            }
        }
        Ok(App {
            listen_addr,
            sentinel_addr,
            metrics_addr,
            group_addrs,
            tls_addr,
            tls,
            stop_accepting,
            shutdown,
            sessions,
            control,
            drain_timeout: config.drain_timeout,
            control_thread: Some(control_thread),
            accept_task,
            group_accept_tasks,
            shared: Arc::clone(&shared),
        })
    }

    /// Re-reads the TLS endpoint's certificate, key and CA files (SIGHUP):
    /// new connections use them; open ones keep theirs. A file that does
    /// not load is logged and the certificate in force stays.
    pub fn reload_tls(&self) {
        let Some(tls) = &self.tls else {
            return;
        };
        match tls.reload() {
            Ok(()) => info!("TLS certificate reloaded"),
            Err(error) => {
                warn!(%error, "TLS certificate not reloaded; the previous one stays in use")
            }
        }
    }

    /// Graceful stop: stop accepting, let sessions finish their in-flight
    /// replies (bounded by the drain timeout), then stop the control path.
    pub async fn shutdown(mut self) {
        self.stop_accepting.cancel();
        let _ = self.accept_task.await;
        for task in self.group_accept_tasks.drain(..) {
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

/// Everything the sentinel core needs, prepared on the caller's thread so
/// that errors (a busy port, an unreadable data directory) stop the start.
struct CorePlan {
    runner: sentinel::Runner,
    port: sentinel::Port,
    sentinel_addr: SocketAddr,
}

/// Sentinel-port commands that may wait for the core.
const API_QUEUE: usize = 256;

/// Sentinel events buffered for slow subscribers before they are dropped.
const EVENT_BUFFER: usize = 1024;

impl CorePlan {
    fn prepare(
        config: &Config,
        core: &CoreConfig,
        writer: SwitchWriter,
        group_writers: Vec<(String, SwitchWriter)>,
        hints: tokio::sync::mpsc::Receiver<Hint>,
        status: tokio::sync::watch::Sender<crate::status::Status>,
        tls: Option<(Arc<ServerTls>, SocketAddr)>,
    ) -> anyhow::Result<CorePlan> {
        let warnings = core.warnings();
        let saved = match &core.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("data_dir: cannot create {}: {e}", dir.display())
                })?;
                sentinel::persist::load(dir)?.filter(|s| s.master_name == config.master_name)
            }
            None => None,
        };
        let saved_master = saved.as_ref().and_then(|s| s.master.parse().ok());
        let master = saved_master.or(core.master).ok_or_else(|| {
            anyhow::anyhow!("master: required: no master given and none saved in data_dir")
        })?;
        if let (Some(saved), Some(given)) = (saved_master, core.master)
            && saved != given
        {
            info!(%saved, %given, "using the master saved in data_dir (it is newer than the configured one)");
        }
        let listener = std::net::TcpListener::bind(core.sentinel_listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (sentinel_listen): {e}",
                core.sentinel_listen
            )
        })?;
        listener.set_nonblocking(true)?;
        let sentinel_addr = listener.local_addr()?;
        let tls = match tls {
            Some((tls, addr)) => {
                let listener = std::net::TcpListener::bind(addr).map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (tls_sentinel_listen): {e}")
                })?;
                listener.set_nonblocking(true)?;
                info!(listen = %listener.local_addr()?, "serving the sentinel port over TLS");
                Some((listener, tls))
            }
            None => None,
        };
        let announce = core
            .announce
            .unwrap_or_else(|| announce_addr(sentinel_addr, master));
        let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
        let (api_tx, api_rx) = tokio::sync::mpsc::channel(API_QUEUE);
        let fault_injection =
            std::env::var_os("SENTINEL_PROXY_FAULT_INJECTION").is_some_and(|v| v == "1");
        // Every group's settings: its own name and timings, the voters and
        // identity they share.
        let settings_for = |name: &str,
                            quorum,
                            down_after,
                            master_reboot_down_after,
                            failover_timeout,
                            parallel_syncs| sentinel::Settings {
            name: name.to_owned(),
            quorum,
            down_after,
            master_reboot_down_after,
            failover_timeout,
            parallel_syncs,
            observer: core.observer,
            voters: core.peers.clone(),
            discover_voters: false,
            announce,
            fault_injection,
            auth: config.backend_auth.clone(),
            renamed_commands: Default::default(),
            resolve_hostnames: false,
            announce_hostnames: false,
        };
        let settings = settings_for(
            &config.master_name,
            core.quorum,
            core.down_after,
            core.master_reboot_down_after,
            core.failover_timeout,
            core.parallel_syncs,
        );
        let mut saved = saved;
        let monitored = saved
            .as_mut()
            .map(|s| std::mem::take(&mut s.monitored))
            .unwrap_or_default();
        let sentinel_config = saved
            .as_mut()
            .map(|s| std::mem::take(&mut s.sentinel_config))
            .unwrap_or_default();
        let now = tokio::time::Instant::now();
        let mut first = Core::new(
            settings,
            master,
            saved,
            {
                let mut sink = sentinel::events::Events::new(events.clone());
                sink.scripts = sentinel::scripts::Scripts::new(
                    core.notification_script.clone(),
                    core.client_reconfig_script.clone(),
                );
                sink
            },
            now,
        );
        if core.master == Some(first.master.addr) {
            first.master.host = core.master_host.clone();
        }
        info!(myid = %first.myid, %announce, %master, "sentinel core configured");
        for warning in warnings {
            warn!("{warning}");
        }
        let mut template = sentinel::groups::Template::new(announce, events.clone());
        let port_stats = std::sync::Arc::clone(&template.port_stats);
        template.observer = core.observer;
        template.fault_injection = fault_injection;
        template.auth = config.backend_auth.clone();
        template.sentinel_auth = core.sentinel_auth.clone();
        let mut groups = sentinel::Groups::new(first.myid.clone(), template);
        groups.insert(first);
        groups.replay_overrides(&config.master_name);
        groups.served.insert(config.master_name.clone());
        for group in &config.groups {
            let settings = settings_for(
                &group.name,
                group.quorum,
                group.down_after,
                group.master_reboot_down_after,
                group.failover_timeout,
                group.parallel_syncs,
            );
            let events = sentinel::events::Events::new(events.clone());
            let mut core = Core::new(settings, group.master, None, events, now);
            core.master.host = group.master_host.clone();
            groups.insert(core);
        }
        groups.restore_monitored(monitored, now);
        groups.replay_config(sentinel_config);
        groups.dirty = false;
        let mut served: std::collections::HashMap<String, Committer> = group_writers
            .into_iter()
            .map(|(name, writer)| {
                groups.served.insert(name.clone());
                (name, Committer::new(writer))
            })
            .collect();
        served.insert(config.master_name.clone(), Committer::new(writer));
        Ok(CorePlan {
            runner: sentinel::Runner {
                groups,
                served,
                status: Some(sentinel::StatusFeed {
                    first: config.master_name.clone(),
                    sender: status,
                }),
                hints,
                api: api_rx,
                store: match &core.data_dir {
                    Some(dir) => sentinel::Store::DataDir(dir.clone()),
                    None => sentinel::Store::Memory,
                },
            },
            port: sentinel::Port {
                listener,
                tls,
                api: api_tx,
                events,
                options: sentinel::api::Options {
                    requirepass: config.requirepass.clone(),
                    max_clients: config.max_clients,
                    stats: port_stats,
                },
            },
            sentinel_addr,
        })
    }

    /// Runs the sentinel port and the core on the control runtime.
    async fn run(self, stop: CancellationToken) {
        sentinel::run_with_port(self.runner, self.port, stop).await;
    }
}

/// The address to announce when none is configured: the sentinel port's, with
/// a wildcard IP replaced by the local address used to reach the master.
pub(crate) fn announce_addr(bound: SocketAddr, master: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let local = std::net::UdpSocket::bind((bound.ip(), 0))
        .and_then(|s| s.connect(master).and_then(|()| s.local_addr()));
    match local {
        Ok(local) => SocketAddr::new(local.ip(), bound.port()),
        Err(_) => SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port()),
    }
}

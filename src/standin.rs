//! The proxy standing in for `redis-sentinel`: `sentinel-proxy
//! --sentinel-conf FILE` reads a Redis Sentinel config file, monitors every
//! group it names, answers the sentinel port, and rewrites the file as
//! Sentinel does whenever its state changes, so tooling written for
//! `redis-sentinel` (and Redis's own Sentinel test suite) drives it unchanged.
//!
//! In this mode there is no client endpoint and no metrics endpoint: it is a
//! Sentinel. Every Sentinel heard from votes (Sentinel's membership), groups
//! are added and changed at run time with `SENTINEL MONITOR/SET/REMOVE`, and
//! the file is the state that survives a restart.
//!
//! As Sentinel does, it resolves the file's path before it changes to the
//! file's `dir`, and it writes its run id into the file at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::connect::Dialer;
use crate::sentinel::events::Events;
use crate::sentinel::groups::{Groups, Template};
use crate::sentinel::persist::{SavedPeer, SavedState};
use crate::sentinel::scripts::Scripts;
use crate::sentinel::{self, Core, node};
use crate::sentinel_conf::standin::{self, ConfGroup, StandIn};
use crate::tls::{AuthClients, ClientFiles, ClientTls, ServerFiles, ServerTls};

/// Sentinel's port when the file names none.
const DEFAULT_PORT: u16 = 26379;

/// Sentinel-port commands that may wait for the core.
const API_QUEUE: usize = 256;

/// Sentinel events buffered for slow subscribers before they are dropped.
const EVENT_BUFFER: usize = 1024;

/// Most clients of the sentinel port at once (Sentinel's `maxclients`).
const MAX_CLIENTS: usize = 10_000;

/// A stand-in ready to run: its config read, its port bound.
pub struct Prepared {
    runner: sentinel::Runner,
    port: sentinel::Port,
    /// The TLS port's certificate (`tls-port`), for SIGHUP to re-read.
    tls: Option<Arc<ServerTls>>,
    /// The files of TLS towards Redis and peers (`tls-replication`), for
    /// SIGHUP to re-read.
    client_tls: Option<Arc<ClientTls>>,
    /// Kept so the runner's hint channel stays open (no sessions here).
    _hints: crate::switch::HintSender,
}

/// Reads `file`, changes to its `dir`, starts logging to its `logfile` (or
/// stderr), and binds the sentinel port. An error once logging has started
/// is logged there, and comes back as [`Failed::Logged`].
pub fn prepare(file: &Path) -> Result<Prepared, Failed> {
    let path: PathBuf = std::path::absolute(file).map_err(|e| {
        Failed::Unlogged(format!(
            "sentinel-conf: cannot resolve {}: {e}",
            file.display()
        ))
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failed::Unlogged(format!(
            "sentinel-conf: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let conf = standin::read(&text)
        .map_err(|e| Failed::Unlogged(format!("sentinel-conf {}: {e}", path.display())))?;
    if let Some(dir) = &conf.dir {
        std::env::set_current_dir(dir)
            .map_err(|e| Failed::Unlogged(format!("dir: cannot change to {dir}: {e}")))?;
    }
    // Redis's log levels, as the proxy's.
    let level = match conf.loglevel.as_deref() {
        Some("debug" | "verbose") => "debug",
        Some("warning") => "warn",
        _ => "info",
    };
    match &conf.logfile {
        Some(logfile) => crate::telemetry::init_file(Path::new(logfile), level)
            .map_err(|e| Failed::Unlogged(format!("logfile: cannot open {logfile}: {e}")))?,
        None => crate::telemetry::init(crate::config::LogFormat::Text, level),
    }
    bind_and_build(path, conf).map_err(|error| {
        tracing::error!("{error:#}");
        Failed::Logged
    })
}

/// How the stand-in reaches Redis and the other Sentinels: over TLS with
/// `tls-replication yes`, checking them against `tls-ca-cert-file` and
/// showing `tls-client-cert-file` (or `tls-cert-file`), as Sentinel does.
fn dialer(conf: &StandIn) -> anyhow::Result<(Dialer, Option<Arc<ClientTls>>)> {
    if !conf.tls_replication {
        return Ok((Dialer::default(), None));
    }
    let ca = conf
        .tls_ca_cert_file
        .clone()
        .context("tls-ca-cert-file: required with tls-replication yes")?;
    let pair = |cert: &Option<String>, key: &Option<String>| {
        cert.clone()
            .zip(key.clone())
            .map(|(c, k)| (PathBuf::from(c), PathBuf::from(k)))
    };
    let identity = pair(&conf.tls_client_cert_file, &conf.tls_client_key_file)
        .or_else(|| pair(&conf.tls_cert_file, &conf.tls_key_file));
    let files = ClientFiles {
        ca: PathBuf::from(ca),
        identity,
        server_name: None,
    };
    let tls = ClientTls::load(files).map_err(|e| {
        // The proxy's field names become Sentinel's directives.
        let field = e
            .field
            .replace("tls_backend_ca", "tls_ca")
            .replace('_', "-");
        anyhow::anyhow!("{field}: {}", e.reason)
    })?;
    let tls = Arc::new(tls);
    Ok((Dialer::tls(Arc::clone(&tls)), Some(tls)))
}

/// The TLS port (`tls-port`, beside `port`): bound, with its certificate
/// loaded from `tls-cert-file`, `tls-key-file` and `tls-ca-cert-file`.
fn tls_port(
    conf: &StandIn,
    bind: &str,
) -> anyhow::Result<Option<(std::net::TcpListener, Arc<ServerTls>)>> {
    let Some(port) = conf.tls_port else {
        return Ok(None);
    };
    let file = |value: &Option<String>, directive: &str| {
        value
            .clone()
            .map(PathBuf::from)
            .with_context(|| format!("{directive}: required with tls-port"))
    };
    let files = ServerFiles {
        cert: file(&conf.tls_cert_file, "tls-cert-file")?,
        key: file(&conf.tls_key_file, "tls-key-file")?,
        ca: conf.tls_ca_cert_file.clone().map(PathBuf::from),
        auth_clients: match conf.tls_auth_clients.as_deref() {
            Some("no") => AuthClients::No,
            Some("optional") => AuthClients::Optional,
            _ => AuthClients::Yes,
        },
    };
    // The proxy's field names in the message become Sentinel's directives.
    let tls = ServerTls::load(files)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field.replace('_', "-"), e.reason))?;
    let listen = node::address(bind, port)
        .with_context(|| format!("bind: '{bind}' is not an IP address"))?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("tls-port: cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    info!(listen = %listener.local_addr()?, "serving the sentinel port over TLS");
    Ok(Some((listener, Arc::new(tls))))
}

/// The stand-in's TLS files that SIGHUP re-reads.
#[derive(Debug, Clone)]
pub struct Reloadable {
    server: Option<Arc<ServerTls>>,
    client: Option<Arc<ClientTls>>,
}

impl Reloadable {
    /// Re-reads the files and logs the outcome; without TLS files, SIGHUP is
    /// ignored, as redis-sentinel ignores it.
    pub fn reload(&self) {
        if self.server.is_none() && self.client.is_none() {
            return info!("SIGHUP ignored, as redis-sentinel does");
        }
        let reloaded = [
            self.server.as_ref().map(|t| t.reload()),
            self.client.as_ref().map(|t| t.reload()),
        ];
        for result in reloaded.into_iter().flatten() {
            match result {
                Ok(()) => info!("TLS certificate reloaded"),
                Err(error) => {
                    warn!(%error, "TLS certificate not reloaded; the previous one stays in use")
                }
            }
        }
    }
}

/// Why the stand-in could not start.
#[derive(Debug)]
pub enum Failed {
    /// Before logging started: the message is for stderr.
    Unlogged(String),
    /// Already written to the log.
    Logged,
}

/// Binds the sentinel port and builds the groups of `conf`.
fn bind_and_build(path: PathBuf, conf: StandIn) -> anyhow::Result<Prepared> {
    let bind = conf.bind.as_deref().unwrap_or("0.0.0.0");
    let port = conf.port.unwrap_or(DEFAULT_PORT);
    let tls = tls_port(&conf, bind)?;
    // `port 0`: no plain port, as in Sentinel; the TLS port is then the
    // only way in.
    let listener = match (port, &tls) {
        (0, None) => {
            anyhow::bail!("port 0: needs a tls-port, or nothing could reach this Sentinel")
        }
        (0, Some(_)) => None,
        (port, _) => {
            let listen = node::address(bind, port)
                .with_context(|| format!("bind: '{bind}' is not an IP address"))?;
            let listener = std::net::TcpListener::bind(listen)
                .with_context(|| format!("port: cannot listen on {listen}"))?;
            listener.set_nonblocking(true)?;
            Some(listener)
        }
    };
    let (dialer, client_tls) = dialer(&conf)?;
    let first_master = conf.groups.iter().find_map(|g| master_addr(g, &conf));
    // With tls-replication (or no plain port), peers are told the TLS
    // port, as Sentinel does.
    let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let plain_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let announced = if conf.tls_replication {
        tls_addr.or(plain_addr)
    } else {
        plain_addr.or(tls_addr)
    }
    .context("no port to announce")?;
    let announce = announce(&conf, announced, first_master);
    let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
    let (api_tx, api_rx) = tokio::sync::mpsc::channel(API_QUEUE);
    let (hints_tx, hints) = crate::switch::hints();
    let groups = groups(&conf, announce, &events)?;
    let groups_stats = std::sync::Arc::clone(&groups.template.port_stats);
    info!(myid = %groups.myid, %announce, groups = groups.cores.len(), config = %path.display(), "standing in for redis-sentinel");
    Ok(Prepared {
        runner: sentinel::Runner {
            groups,
            served: Default::default(),
            status: None,
            hints,
            api: api_rx,
            store: sentinel::Store::SentinelConf(path),
            dialer,
        },
        tls: tls.as_ref().map(|(_, tls)| Arc::clone(tls)),
        client_tls,
        port: sentinel::Port {
            listener,
            tls,
            api: api_tx,
            events,
            options: sentinel::api::Options {
                requirepass: conf.requirepass.clone(),
                max_clients: MAX_CLIENTS,
                stats: std::sync::Arc::clone(&groups_stats),
            },
        },
        _hints: hints_tx,
    })
}

impl Prepared {
    /// What SIGHUP re-reads: the TLS port's certificate (`tls-port`) and
    /// the files of TLS towards Redis and peers (`tls-replication`), those
    /// that are set.
    pub fn reloadable(&self) -> Reloadable {
        Reloadable {
            server: self.tls.clone(),
            client: self.client_tls.clone(),
        }
    }

    /// Runs the sentinel port and the groups until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        sentinel::run_with_port(self.runner, self.port, stop).await;
    }
}

/// The address hellos announce: `announce-ip`/`announce-port` when set, else
/// the bound port with the local address that reaches the first master.
fn announce(conf: &StandIn, bound: SocketAddr, master: Option<SocketAddr>) -> SocketAddr {
    let ip = conf
        .announce_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| crate::app::announce_addr(bound, master.unwrap_or(bound)).ip());
    SocketAddr::new(ip, conf.announce_port.unwrap_or(bound.port()))
}

/// A group's master address: its IP, or its host name resolved now.
fn master_addr(group: &ConfGroup, _conf: &StandIn) -> Option<SocketAddr> {
    node::resolve(&group.host, group.port, true)
}

/// Every group of the file, with the state Sentinel wrote for it.
fn groups(
    conf: &StandIn,
    announce: SocketAddr,
    events: &tokio::sync::broadcast::Sender<sentinel::api::Event>,
) -> anyhow::Result<Groups> {
    let mut template = Template::new(announce, events.clone());
    template.deny_scripts_reconfig = conf.deny_scripts_reconfig.unwrap_or(true);
    template.resolve_hostnames = conf.resolve_hostnames;
    template.announce_hostnames = conf.announce_hostnames;
    template.announce_ip = conf.announce_ip.as_deref().and_then(|ip| ip.parse().ok());
    template.announce_port = conf.announce_port;
    template.sentinel_auth = crate::config::Credentials {
        user: conf.sentinel_user.clone(),
        pass: conf.sentinel_pass.clone(),
    };
    template.fault_injection =
        std::env::var_os("SENTINEL_PROXY_FAULT_INJECTION").is_some_and(|v| v == "1");
    let myid = conf
        .myid
        .clone()
        .filter(|id| sentinel::hello::is_run_id(id))
        .unwrap_or_else(sentinel::hello::new_run_id);
    let mut groups = Groups::new(myid.clone(), template);
    let now = tokio::time::Instant::now();
    for group in &conf.groups {
        let Some(master) = master_addr(group, conf) else {
            warn!(group = %group.name, host = %group.host, "cannot resolve the master's address; not monitored");
            continue;
        };
        let ms = std::time::Duration::from_millis;
        let mut settings = groups.template.settings(&group.name, group.quorum);
        if let Some(v) = group.down_after_ms {
            settings.down_after = ms(v);
        }
        if let Some(v) = group.failover_timeout_ms {
            settings.failover_timeout = ms(v);
        }
        if let Some(n) = group.parallel_syncs {
            settings.parallel_syncs = n;
        }
        settings.master_reboot_down_after = group.reboot_down_after_ms.filter(|p| *p > 0).map(ms);
        settings.auth = crate::config::Credentials {
            user: group.auth_user.clone(),
            pass: group.auth_pass.clone(),
        };
        settings.renamed_commands = group
            .renamed_commands
            .iter()
            .map(|(from, to)| (from.to_ascii_uppercase(), to.clone()))
            .collect();
        let saved = SavedState {
            myid: myid.clone(),
            current_epoch: conf.current_epoch,
            master_name: group.name.clone(),
            master: master.to_string(),
            config_epoch: group.config_epoch,
            replicas: group
                .replicas
                .iter()
                .filter_map(|(host, port)| node::address(host, *port))
                .map(|a| a.to_string())
                .collect(),
            peers: group
                .sentinels
                .iter()
                .filter(|(_, _, id)| sentinel::hello::is_run_id(id))
                .filter_map(|(host, port, id)| {
                    node::address(host, *port).map(|a| SavedPeer {
                        addr: a.to_string(),
                        run_id: id.clone(),
                    })
                })
                .collect(),
            // Sentinel saves the epoch of its last vote, not whom it voted
            // for: enough never to vote twice in that epoch.
            leader: (group.leader_epoch > 0).then(|| "*".to_owned()),
            leader_epoch: group.leader_epoch,
            monitored: Vec::new(),
            overrides: Vec::new(),
            sentinel_config: Vec::new(),
        };
        let mut sink = Events::new(events.clone());
        sink.scripts = Scripts::new(
            group.notification_script.clone().map(PathBuf::from),
            group.client_reconfig_script.clone().map(PathBuf::from),
        );
        let mut core = Core::new(settings, master, Some(saved), sink, now);
        if group.host.parse::<std::net::IpAddr>().is_err() {
            core.master.host = Some(group.host.clone());
        }
        // Restored peers heard from before the restart vote again.
        for peer in core.peers.values_mut() {
            peer.voter = true;
        }
        groups.insert(core);
    }
    // The run id (and anything the file lacked) is written at once.
    groups.dirty = true;
    Ok(groups)
}

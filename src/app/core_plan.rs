//! The built-in sentinel core's plan: its groups, its sentinel port and the
//! saved state, prepared before anything runs so that errors stop the start.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::connect::Dialer;
use crate::config::{Config, CoreConfig};
use crate::control::Committer;
use crate::sentinel::{self, Core};
use crate::switch::{Hint, SwitchWriter};
use crate::tls::ServerTls;

/// Everything the sentinel core needs, prepared on the caller's thread so
/// that errors (a busy port, an unreadable data directory) stop the start.
pub(super) struct CorePlan {
    runner: sentinel::Runner,
    port: sentinel::Port,
    pub(super) sentinel_addr: SocketAddr,
}

/// Sentinel-port commands that may wait for the core.
const API_QUEUE: usize = 256;

/// Sentinel events buffered for slow subscribers before they are dropped.
const EVENT_BUFFER: usize = 1024;

impl CorePlan {
    pub(super) fn prepare(
        config: &Config,
        core: &CoreConfig,
        writer: SwitchWriter,
        group_writers: Vec<(String, SwitchWriter)>,
        hints: tokio::sync::mpsc::Receiver<Hint>,
        status: tokio::sync::watch::Sender<crate::status::Status>,
        tls: CoreTls,
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
        let listener = core
            .sentinel_listen
            .map(|addr| super::bind_std(addr, "sentinel_listen"))
            .transpose()?;
        let CoreTls { endpoint, dialer } = tls;
        let tls = match endpoint {
            Some((tls, addr)) => {
                let listener = super::bind_std(addr, "tls_sentinel_listen")?;
                info!(listen = %listener.local_addr()?, "serving the sentinel port over TLS");
                Some((listener, tls))
            }
            None => None,
        };
        // Peers reaching this sentinel over TLS are told its TLS port, as
        // Sentinel announces `tls-port` with `tls-replication yes` (and
        // without a plain port, the TLS one is all there is).
        let plain_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        let (first, second) = if dialer.is_tls() {
            (tls_addr, plain_addr)
        } else {
            (plain_addr, tls_addr)
        };
        let announced_port = first
            .or(second)
            .ok_or_else(|| anyhow::anyhow!("sentinel_listen: off needs tls_sentinel_listen"))?;
        let sentinel_addr = plain_addr.unwrap_or(announced_port);
        let announce = core
            .announce
            .unwrap_or_else(|| announce_addr(announced_port, master));
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
        first.serves_reads = config.reads.listen.map(|_| config.reads.max_lag);
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
            core.serves_reads = group.read_listen.map(|_| config.reads.max_lag);
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
                dialer,
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
    pub(super) async fn run(self, stop: CancellationToken) {
        sentinel::run_with_port(self.runner, self.port, stop).await;
    }
}

/// TLS for the built-in core: its TLS sentinel endpoint, if any, and how it
/// reaches nodes and peers.
pub(super) struct CoreTls {
    /// The certificate and address of the TLS sentinel endpoint.
    pub(super) endpoint: Option<(Arc<ServerTls>, SocketAddr)>,
    /// Plain, or TLS towards nodes and peers (`tls_backend`).
    pub(super) dialer: Dialer,
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

//! Command-line flags and config-file keys: one struct serves both.
//!
//! Every flag is also a key of the TOML config file (`--hold-timeout-ms` is
//! `hold_timeout_ms`); a flag given on the command line overrides the file.
//! Values stay raw here (strings, numbers); [`super::Config::from_settings`]
//! validates them once into typed settings.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// A Redis endpoint that stays put while the master moves.
#[derive(Debug, Parser)]
#[command(name = "sentinel-proxy", version = crate::build::VERSION_LINE, about, long_about = None)]
pub struct Cli {
    /// TOML config file; its keys are the flag names with `_` for `-`.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Stand in for redis-sentinel: read this Redis Sentinel config file,
    /// monitor every group it names, and rewrite it as Sentinel does (no
    /// client endpoint; the other settings do not apply).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub sentinel_conf: Option<PathBuf>,

    /// Settings given as flags (they override the file).
    #[command(flatten)]
    pub settings: Settings,

    /// What to run; without one, the proxy runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration, print the effective settings and exit.
    CheckConfig,
    /// A local lab on 127.0.0.1: 1 master, 2 replicas, 3 proxies; events printed; Ctrl-C stops it all.
    Demo {
        /// Kill the master every N seconds (it is restarted a few seconds later)
        #[arg(long, value_name = "N")]
        chaos: Option<u64>,
        /// Run a client that INCRs a counter through proxy 1 and prints its successes and errors each second
        #[arg(long)]
        writer: bool,
        /// Stop by itself after N seconds
        #[arg(long, value_name = "N")]
        duration: Option<u64>,
    },
    /// Convert a Redis sentinel.conf into this proxy's TOML config (printed on stdout).
    ImportSentinelConf {
        /// The sentinel.conf to read
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Exit 0 if a running proxy answers GET /healthz (for container health checks).
    Healthcheck {
        /// The proxy's metrics address [default: metrics_listen from the config, else 127.0.0.1:9121]
        #[arg(value_name = "HOST:PORT")]
        addr: Option<String>,
    },
}

/// What sessions do when the master changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSwitch {
    /// Move idle sessions to the new master, replaying their state.
    Rebind,
    /// Close every session after its in-flight replies (Sentinel's own behaviour).
    Close,
}

/// Where a read endpoint sends its clients when no replica qualifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFallback {
    /// To the master (reads stay available; the master takes the load).
    Master,
    /// Nowhere: commands wait for a replica, up to hold-timeout-ms.
    Hold,
    /// Nowhere: commands are refused at once with -MASTERDOWN.
    Error,
}

/// Whether TLS clients must show a certificate (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsAuthClients {
    /// A certificate signed by tls-ca-cert-file is required.
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is asked for; one that is shown must be valid.
    Optional,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Every setting, each optional so the file and the flags can be merged.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Client endpoint for legacy applications; off with tls-listen for TLS-only clients [default: 127.0.0.1:6379]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Client endpoint whose clients are served by the group's replicas (healthy, in sync, least connections; built-in core only) [default: none]
    #[arg(long, value_name = "ADDR")]
    pub read_listen: Option<String>,

    /// Most lag a replica may have to serve the read endpoint; Redis reports whole seconds [default: 10000]
    #[arg(long, value_name = "MS")]
    pub max_replica_lag_ms: Option<u64>,

    /// Where the read endpoint's clients go when no replica qualifies: master, hold (commands wait) or error (-MASTERDOWN at once) [default: master]
    #[arg(long, value_enum, value_name = "WHERE")]
    pub read_fallback: Option<ReadFallback>,

    /// TLS client endpoint, beside the plain one (needs tls-cert-file and tls-key-file) [default: none]
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<String>,

    /// TLS sentinel endpoint, beside the plain sentinel port, for Sentinel-aware clients (built-in core only; same certificate) [default: none]
    #[arg(long, value_name = "ADDR")]
    pub tls_sentinel_listen: Option<String>,

    /// Certificate chain of the TLS endpoints (PEM; re-read on SIGHUP) [default: none]
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of tls-cert-file (PEM; re-read on SIGHUP) [default: none]
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates that client certificates are checked against (PEM; re-read on SIGHUP) [default: none]
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,

    /// Whether TLS clients must show a certificate signed by tls-ca-cert-file: yes, no or optional [default: yes]
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls_auth_clients: Option<TlsAuthClients>,

    /// Reach Redis servers and peer Sentinels over TLS, as Sentinel's tls-replication (needs tls-backend-ca-cert-file or tls-ca-cert-file) [default: false]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tls_backend: Option<bool>,

    /// CA certificates that servers' certificates are checked against (PEM; re-read on SIGHUP) [default: tls-ca-cert-file]
    #[arg(long, value_name = "FILE")]
    pub tls_backend_ca_cert_file: Option<PathBuf>,

    /// Certificate chain shown to servers that ask for one (PEM; re-read on SIGHUP) [default: tls-cert-file]
    #[arg(long, value_name = "FILE")]
    pub tls_client_cert_file: Option<PathBuf>,

    /// Private key of tls-client-cert-file (PEM; re-read on SIGHUP) [default: tls-key-file]
    #[arg(long, value_name = "FILE")]
    pub tls_client_key_file: Option<PathBuf>,

    /// One name every server's certificate is checked against and sent as SNI; without it a server known by host name is checked against that name, one known by IP only against the CA [default: none]
    #[arg(long, value_name = "NAME")]
    pub tls_backend_server_name: Option<String>,

    /// Name of the monitored group, as Sentinel knows it [default: mymaster]
    #[arg(long, value_name = "NAME")]
    pub master_name: Option<String>,

    /// The master to monitor with the built-in sentinel core; replicas are found from its INFO
    #[arg(long, value_name = "HOST:PORT")]
    pub master: Option<String>,

    /// Follow this Redis Sentinel (repeat for each); the master is the one a majority names
    #[arg(long = "sentinel", value_name = "HOST:PORT")]
    #[serde(rename = "sentinel")]
    pub sentinels: Vec<String>,

    /// Votes needed to agree that the master is down (ODOWN) [default: 2]
    #[arg(long, value_name = "N")]
    pub quorum: Option<u64>,

    /// Sentinel-protocol endpoint for peers, Sentinels and Sentinel-aware clients [default: 0.0.0.0:26379]
    #[arg(long, value_name = "ADDR")]
    pub sentinel_listen: Option<String>,

    /// Address peers should use to reach this proxy's sentinel port [default: sentinel-listen, 0.0.0.0 replaced by the local address that reaches the master]
    #[arg(long, value_name = "HOST:PORT")]
    pub announce: Option<String>,

    /// Another voter of the group, a proxy or a Redis Sentinel (repeat for each)
    #[arg(long = "peer", value_name = "HOST:PORT")]
    #[serde(rename = "peer")]
    pub peers: Vec<String>,

    /// Follow, route and fence, but never vote or lead a failover
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub observer: Option<bool>,

    /// No valid reply for this long marks a node subjectively down (SDOWN) [default: 5000]
    #[arg(long, value_name = "MS")]
    pub down_after_ms: Option<u64>,

    /// A master that restarted is SDOWN once it has not answered PONG for this long since (Sentinel's master-reboot-down-after-period; 0: off) [default: 0]
    #[arg(long, value_name = "MS")]
    pub master_reboot_down_after_ms: Option<u64>,

    /// Sentinel's failover-timeout: bounds each failover step; retry after twice this [default: 60000]
    #[arg(long, value_name = "MS")]
    pub failover_timeout_ms: Option<u64>,

    /// Replicas reconfigured at once after a failover [default: 1]
    #[arg(long, value_name = "N")]
    pub parallel_syncs: Option<u64>,

    /// Script called with `<event-type> <event-description>` for each warning-level Sentinel event [default: none]
    #[arg(long, value_name = "PATH")]
    pub notification_script: Option<PathBuf>,

    /// Script called with Sentinel's client-reconfig arguments when the master changes [default: none]
    #[arg(long, value_name = "PATH")]
    pub client_reconfig_script: Option<PathBuf>,

    /// HTTP endpoint for /metrics /healthz /readyz /status, or "off" [default: 127.0.0.1:9121]
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Directory for state that must survive a restart (id, epochs, topology) [default: none]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What happens to sessions on a master switch: rebind or close [default: rebind]
    #[arg(long, value_enum, value_name = "MODE")]
    pub on_switch: Option<OnSwitch>,

    /// How long to wait for in-flight replies on a switch or shutdown [default: 5000]
    #[arg(long, value_name = "MS")]
    pub drain_timeout_ms: Option<u64>,

    /// How long a command may wait for a master before -MASTERDOWN [default: 15000]
    #[arg(long, value_name = "MS")]
    pub hold_timeout_ms: Option<u64>,

    /// Release an idle session's backend connection after this long; 0 = never [default: 0]
    #[arg(long, value_name = "MS")]
    pub idle_release_ms: Option<u64>,

    /// Let sessions in Redis's default connection state share one backend connection per master (each moves to its own at its first stateful command); false gives every client its own [default: true]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", env = "SENTINEL_PROXY_SHARE_BACKEND")]
    pub share_backend: Option<bool>,

    /// ACL user for backend connections [default: none]
    #[arg(long, value_name = "USER")]
    pub auth_user: Option<String>,

    /// Password for backend connections, and for peers and Sentinels that ask for one [default: none]
    #[arg(long, value_name = "PASSWORD")]
    pub auth_pass: Option<String>,

    /// ACL user this proxy logs in to peers and Sentinels as (Sentinel's sentinel-user); needs sentinel-pass [default: none]
    #[arg(long, value_name = "USER")]
    pub sentinel_user: Option<String>,

    /// Password this proxy logs in to peers and Sentinels with (Sentinel's sentinel-pass); without it, auth-pass is offered [default: none]
    #[arg(long, value_name = "PASSWORD")]
    pub sentinel_pass: Option<String>,

    /// Password clients must AUTH with at the proxy, on the client and sentinel ports [default: none]
    #[arg(long, value_name = "PASSWORD")]
    pub requirepass: Option<String>,

    /// Threads serving client connections [default: 1]
    #[arg(long, value_name = "N")]
    pub threads: Option<u64>,

    /// Client connections accepted at once [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_clients: Option<u64>,

    /// Log format: text or json [default: text]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log level or tracing filter, e.g. info, debug, sentinel_proxy=trace [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// More groups (`[[group]]` tables; the config file only).
    #[arg(skip)]
    #[serde(rename = "group")]
    pub groups: Vec<super::group::GroupSettings>,
}

impl Settings {
    /// Overlays `over` on `self`: every value `over` sets wins.
    pub fn overlay(self, over: Settings) -> Settings {
        Settings {
            listen: over.listen.or(self.listen),
            read_listen: over.read_listen.or(self.read_listen),
            max_replica_lag_ms: over.max_replica_lag_ms.or(self.max_replica_lag_ms),
            read_fallback: over.read_fallback.or(self.read_fallback),
            tls_listen: over.tls_listen.or(self.tls_listen),
            tls_sentinel_listen: over.tls_sentinel_listen.or(self.tls_sentinel_listen),
            tls_cert_file: over.tls_cert_file.or(self.tls_cert_file),
            tls_key_file: over.tls_key_file.or(self.tls_key_file),
            tls_ca_cert_file: over.tls_ca_cert_file.or(self.tls_ca_cert_file),
            tls_auth_clients: over.tls_auth_clients.or(self.tls_auth_clients),
            tls_backend: over.tls_backend.or(self.tls_backend),
            tls_backend_ca_cert_file: over
                .tls_backend_ca_cert_file
                .or(self.tls_backend_ca_cert_file),
            tls_client_cert_file: over.tls_client_cert_file.or(self.tls_client_cert_file),
            tls_client_key_file: over.tls_client_key_file.or(self.tls_client_key_file),
            tls_backend_server_name: over
                .tls_backend_server_name
                .or(self.tls_backend_server_name),
            master_name: over.master_name.or(self.master_name),
            master: over.master.or(self.master),
            sentinels: if over.sentinels.is_empty() {
                self.sentinels
            } else {
                over.sentinels
            },
            quorum: over.quorum.or(self.quorum),
            sentinel_listen: over.sentinel_listen.or(self.sentinel_listen),
            announce: over.announce.or(self.announce),
            peers: if over.peers.is_empty() {
                self.peers
            } else {
                over.peers
            },
            observer: over.observer.or(self.observer),
            down_after_ms: over.down_after_ms.or(self.down_after_ms),
            master_reboot_down_after_ms: over
                .master_reboot_down_after_ms
                .or(self.master_reboot_down_after_ms),
            failover_timeout_ms: over.failover_timeout_ms.or(self.failover_timeout_ms),
            parallel_syncs: over.parallel_syncs.or(self.parallel_syncs),
            data_dir: over.data_dir.or(self.data_dir),
            metrics_listen: over.metrics_listen.or(self.metrics_listen),
            notification_script: over.notification_script.or(self.notification_script),
            client_reconfig_script: over.client_reconfig_script.or(self.client_reconfig_script),
            on_switch: over.on_switch.or(self.on_switch),
            drain_timeout_ms: over.drain_timeout_ms.or(self.drain_timeout_ms),
            hold_timeout_ms: over.hold_timeout_ms.or(self.hold_timeout_ms),
            idle_release_ms: over.idle_release_ms.or(self.idle_release_ms),
            share_backend: over.share_backend.or(self.share_backend),
            auth_user: over.auth_user.or(self.auth_user),
            auth_pass: over.auth_pass.or(self.auth_pass),
            sentinel_user: over.sentinel_user.or(self.sentinel_user),
            sentinel_pass: over.sentinel_pass.or(self.sentinel_pass),
            requirepass: over.requirepass.or(self.requirepass),
            threads: over.threads.or(self.threads),
            max_clients: over.max_clients.or(self.max_clients),
            log_format: over.log_format.or(self.log_format),
            log_level: over.log_level.or(self.log_level),
            groups: if over.groups.is_empty() {
                self.groups
            } else {
                over.groups
            },
        }
    }
}

//! Configuration: flags and file merged, validated once into a typed [`Config`].
//!
//! Validation binds nothing and connects nowhere; it only checks values, so
//! `check-config` and start-up give the same verdict. Errors name the field and
//! what is allowed, in one line.

pub mod cli;
mod describe;
pub mod group;
mod reads;
mod tls;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

pub use cli::{Cli, Command, LogFormat, OnSwitch, ReadFallback, Settings, TlsAuthClients};
pub use group::GroupConfig;

pub use self::reads::ReadConfig;
pub use self::tls::TlsConfig;

/// A setting that cannot be used. Displays as one line naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The flag name without dashes, as in the file (`hold_timeout_ms`).
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// Where the proxy learns which node is the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Run the built-in sentinel core: monitor the master, agree with peers,
    /// fail over. Boxed: it is much larger than the other variant.
    Core(Box<CoreConfig>),
    /// Follow these Redis Sentinels; switch when a majority names a new master.
    Sentinels(Vec<SocketAddr>),
}

/// Settings of the built-in sentinel core (Redis Sentinel's, under our names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// The initial master; `None` when it must come from `data_dir`.
    pub master: Option<SocketAddr>,
    /// The host name `master` was given by, if not an IP address: looked up
    /// again while the master is unreachable.
    pub master_host: Option<String>,
    /// What this proxy logs in to peers and Sentinels with
    /// (`sentinel_user`/`sentinel_pass`); unset, the backend credentials.
    pub sentinel_auth: Credentials,
    /// Votes (this proxy's included) needed for ODOWN.
    pub quorum: u32,
    /// The Sentinel-protocol endpoint; `None` (`sentinel_listen = "off"`)
    /// when it is served over TLS only (`tls_sentinel_listen`).
    pub sentinel_listen: Option<SocketAddr>,
    /// The address announced to peers, when it differs from `sentinel_listen`.
    pub announce: Option<SocketAddr>,
    /// The other voters.
    pub peers: Vec<SocketAddr>,
    /// Never vote or lead.
    pub observer: bool,
    /// SDOWN after this long without a valid reply.
    pub down_after: Duration,
    /// A restarted master is SDOWN after this long without a `PONG`
    /// (Sentinel's `master-reboot-down-after-period`); `None`: off.
    pub master_reboot_down_after: Option<Duration>,
    /// Sentinel's failover-timeout.
    pub failover_timeout: Duration,
    /// Replicas reconfigured at once.
    pub parallel_syncs: u32,
    /// Where state survives restarts.
    pub data_dir: Option<std::path::PathBuf>,
    /// Called for warning-level Sentinel events.
    pub notification_script: Option<std::path::PathBuf>,
    /// Called when the master changes.
    pub client_reconfig_script: Option<std::path::PathBuf>,
}

impl CoreConfig {
    /// Voters in the group: the peers, and this proxy unless it observes.
    pub fn voters(&self) -> usize {
        self.peers.len() + usize::from(!self.observer)
    }

    /// Settings that are valid but probably not what the operator meant,
    /// one line each (logged at start-up, printed by `check-config`).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let voters = self.voters();
        if self.quorum as usize > voters {
            warnings.push(format!(
                "quorum {} is more than the {voters} voter(s) (peers, plus this proxy unless it \
                 observes): the master can never be agreed down, so this group monitors but \
                 never fails over",
                self.quorum
            ));
        }
        warnings
    }
}

/// Credentials the proxy uses towards backends.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user, if any (otherwise `default`).
    pub user: Option<String>,
    /// Password.
    pub pass: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client endpoint; `None` (`listen = "off"`) when clients come over
    /// TLS only (`tls_listen`), as Redis's `port 0` with a `tls-port`.
    pub listen: Option<SocketAddr>,
    /// The TLS endpoints, if any.
    pub tls: Option<TlsConfig>,
    /// The read endpoints' settings.
    pub reads: ReadConfig,
    /// TLS towards Redis servers and peer Sentinels (`tls_backend`), if on.
    pub tls_backend: Option<crate::tls::ClientFiles>,
    /// Name of the monitored group.
    pub master_name: String,
    /// Where the master comes from.
    pub source: Source,
    /// More groups the built-in sentinel core monitors (`[[group]]`).
    pub groups: Vec<GroupConfig>,
    /// Session behaviour on a switch.
    pub on_switch: OnSwitch,
    /// Wait for in-flight replies on a switch or shutdown.
    pub drain_timeout: Duration,
    /// How long a command may wait for a master.
    pub hold_timeout: Duration,
    /// Release an idle session's backend connection after this long.
    pub idle_release: Option<Duration>,
    /// Sessions in the default connection state share a backend connection.
    pub share_backend: bool,
    /// Credentials for backend connections.
    pub backend_auth: Credentials,
    /// Password clients must give the proxy.
    pub requirepass: Option<String>,
    /// Threads serving client connections (the data runtime's workers).
    pub threads: usize,
    /// Client connections accepted at once.
    pub max_clients: usize,
    /// The HTTP endpoint for metrics and health; `None` when turned off.
    pub metrics_listen: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
}

/// Largest `threads`.
const MAX_THREADS: u64 = 256;

/// Largest `max_clients`: beyond it file descriptors, not the proxy, are the limit.
const MAX_CLIENTS_LIMIT: u64 = 1_000_000;

impl Config {
    /// Reads the file named by `--config` (if any), overlays the flags, validates.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        Config::from_settings(file.overlay(cli.settings.clone()))
    }

    /// Validates merged settings.
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let listen = address_or_off(
            ("listen", s.listen.as_deref().unwrap_or("127.0.0.1:6379")),
            ("tls_listen", s.tls_listen.is_some()),
            "clients would have no endpoint",
        )?;
        let master_name = s
            .master_name
            .clone()
            .unwrap_or_else(|| "mymaster".to_owned());
        if master_name.is_empty() || master_name.contains(char::is_whitespace) {
            return Err(invalid(
                "master_name",
                "must be a non-empty name without spaces",
            ));
        }
        let source = if s.sentinels.is_empty() {
            Source::Core(Box::new(core_config(&s)?))
        } else {
            Source::Sentinels(follow_config(&s)?)
        };
        let groups = match &source {
            Source::Core(core) => group::groups(&s.groups, &master_name, listen, core)?,
            Source::Sentinels(_) if !s.groups.is_empty() => {
                return Err(invalid(
                    "group",
                    "more groups need the built-in sentinel core (master), not sentinel",
                ));
            }
            Source::Sentinels(_) => Vec::new(),
        };
        let metrics_listen = match s.metrics_listen.as_deref().unwrap_or("127.0.0.1:9121") {
            "off" => None,
            addr => Some(resolve("metrics_listen", addr)?),
        };
        let drain_timeout = millis("drain_timeout_ms", s.drain_timeout_ms.unwrap_or(5000), 1)?;
        let hold_timeout = millis("hold_timeout_ms", s.hold_timeout_ms.unwrap_or(15000), 1)?;
        let idle_release = millis_or_off("idle_release_ms", s.idle_release_ms)?;
        let max_clients = s.max_clients.unwrap_or(10_000);
        if !(1..=MAX_CLIENTS_LIMIT).contains(&max_clients) {
            return Err(invalid(
                "max_clients",
                format!("must be between 1 and {MAX_CLIENTS_LIMIT}, got {max_clients}"),
            ));
        }
        let threads = s.threads.unwrap_or(1);
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(invalid(
                "threads",
                format!("must be between 1 and {MAX_THREADS}, got {threads}"),
            ));
        }
        if s.auth_user.is_some() && s.auth_pass.is_none() {
            return Err(invalid("auth_user", "needs auth_pass as well"));
        }
        if s.requirepass.as_deref() == Some("") {
            return Err(invalid(
                "requirepass",
                "must not be empty (omit it to disable client AUTH)",
            ));
        }
        let tls = tls::endpoints(&s)?;
        let tls_backend = tls::backend(&s)?;
        let reads = reads::reads(&s, &source)?;
        let log_level = s.log_level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                format!("'{log_level}' is not a level (error, warn, info, debug, trace) or filter"),
            ));
        }
        Ok(Config {
            listen,
            tls,
            tls_backend,
            reads,
            master_name,
            source,
            groups,
            on_switch: s.on_switch.unwrap_or(OnSwitch::Rebind),
            drain_timeout,
            hold_timeout,
            idle_release,
            share_backend: s.share_backend.unwrap_or(true),
            backend_auth: Credentials {
                user: s.auth_user,
                pass: s.auth_pass,
            },
            requirepass: s.requirepass,
            threads: threads as usize,
            max_clients: max_clients as usize,
            metrics_listen,
            log_format: s.log_format.unwrap_or(LogFormat::Text),
            log_level,
        })
    }
}

/// Validates the sentinel core's settings.
fn core_config(s: &Settings) -> Result<CoreConfig, ConfigError> {
    let master = s
        .master
        .as_deref()
        .map(|m| resolve("master", m))
        .transpose()?;
    if master.is_none() && s.data_dir.is_none() {
        return Err(invalid(
            "master",
            "required: give master HOST:PORT (or a data_dir that knows it), \
             or at least one sentinel HOST:PORT",
        ));
    }
    if s.sentinel_user.is_some() && s.sentinel_pass.is_none() {
        return Err(invalid("sentinel_user", "needs sentinel_pass as well"));
    }
    let peers = s
        .peers
        .iter()
        .map(|a| resolve("peer", a))
        .collect::<Result<Vec<_>, _>>()?;
    if has_duplicates(&peers) {
        return Err(invalid("peer", "each peer may be listed once"));
    }
    let quorum = count("quorum", s.quorum.unwrap_or(2))?;
    let parallel_syncs = count("parallel_syncs", s.parallel_syncs.unwrap_or(1))?;
    let sentinel_listen = address_or_off(
        (
            "sentinel_listen",
            s.sentinel_listen.as_deref().unwrap_or("0.0.0.0:26379"),
        ),
        ("tls_sentinel_listen", s.tls_sentinel_listen.is_some()),
        "peers and clients would have no sentinel port",
    )?;
    let announce = s
        .announce
        .as_deref()
        .map(|a| resolve("announce", a))
        .transpose()?;
    if announce.is_some_and(|a| a.ip().is_unspecified() || a.port() == 0) {
        return Err(invalid(
            "announce",
            "must be an address peers can connect to (not 0.0.0.0 or port 0)",
        ));
    }
    Ok(CoreConfig {
        master,
        master_host: s.master.as_deref().and_then(host_name),
        sentinel_auth: Credentials {
            user: s.sentinel_user.clone(),
            pass: s.sentinel_pass.clone(),
        },
        quorum,
        sentinel_listen,
        announce,
        peers,
        observer: s.observer.unwrap_or(false),
        down_after: millis("down_after_ms", s.down_after_ms.unwrap_or(5000), 10)?,
        master_reboot_down_after: millis_or_off(
            "master_reboot_down_after_ms",
            s.master_reboot_down_after_ms,
        )?,
        failover_timeout: millis(
            "failover_timeout_ms",
            s.failover_timeout_ms.unwrap_or(60_000),
            100,
        )?,
        parallel_syncs,
        data_dir: s.data_dir.clone(),
        notification_script: script("notification_script", &s.notification_script)?,
        client_reconfig_script: script("client_reconfig_script", &s.client_reconfig_script)?,
    })
}

/// Validates the list of Sentinels to follow; the core's settings must be absent.
fn follow_config(s: &Settings) -> Result<Vec<SocketAddr>, ConfigError> {
    let core_only: [(&'static str, bool); 15] = [
        ("sentinel_user", s.sentinel_user.is_some()),
        ("sentinel_pass", s.sentinel_pass.is_some()),
        ("notification_script", s.notification_script.is_some()),
        ("client_reconfig_script", s.client_reconfig_script.is_some()),
        ("peer", !s.peers.is_empty()),
        ("quorum", s.quorum.is_some()),
        ("observer", s.observer.is_some()),
        ("sentinel_listen", s.sentinel_listen.is_some()),
        ("tls_sentinel_listen", s.tls_sentinel_listen.is_some()),
        ("announce", s.announce.is_some()),
        ("down_after_ms", s.down_after_ms.is_some()),
        (
            "master_reboot_down_after_ms",
            s.master_reboot_down_after_ms.is_some(),
        ),
        ("failover_timeout_ms", s.failover_timeout_ms.is_some()),
        ("parallel_syncs", s.parallel_syncs.is_some()),
        ("data_dir", s.data_dir.is_some()),
    ];
    if s.master.is_some() {
        return Err(invalid(
            "master",
            "give either master (the built-in sentinel core) or sentinel (follow \
             existing Sentinels), not both",
        ));
    }
    if let Some((field, _)) = core_only.iter().find(|(_, set)| *set) {
        return Err(invalid(
            field,
            "belongs to the built-in sentinel core; with sentinel the proxy follows \
             existing Sentinels instead (give either master or sentinel, not both)",
        ));
    }
    let sentinels = s
        .sentinels
        .iter()
        .map(|a| resolve("sentinel", a))
        .collect::<Result<Vec<_>, _>>()?;
    if has_duplicates(&sentinels) {
        return Err(invalid("sentinel", "each Sentinel may be listed once"));
    }
    Ok(sentinels)
}

/// A script path must name an executable file, as Sentinel checks at start.
fn script(
    field: &'static str,
    path: &Option<std::path::PathBuf>,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = path else {
        return Ok(None);
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Ok(Some(path.clone()))
        }
        _ => Err(invalid(
            field,
            format!("{} is not an executable file", path.display()),
        )),
    }
}

fn has_duplicates(addrs: &[SocketAddr]) -> bool {
    let mut unique = addrs.to_vec();
    unique.sort();
    unique.dedup();
    unique.len() != addrs.len()
}

/// Largest group: `quorum` and `parallel_syncs` beyond it are typos.
const MAX_VOTERS: u64 = 100;

/// A count of voters or replicas (`quorum`, `parallel_syncs`): 1 to
/// [`MAX_VOTERS`].
fn count(field: &'static str, n: u64) -> Result<u32, ConfigError> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_VOTERS).contains(&u64::from(n)) => Ok(n),
        _ => Err(invalid(
            field,
            format!("must be between 1 and {MAX_VOTERS}, got {n}"),
        )),
    }
}

fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.message().replace('\n', " "),
    })
}

/// Parses `HOST:PORT` (an IP or a name resolved now) into a socket address.
/// The host of a `HOST:PORT` value when it is a name, not an IP address.
fn host_name(value: &str) -> Option<String> {
    if value.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let (host, _) = value.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.parse::<std::net::IpAddr>().is_err() && !host.is_empty()).then(|| host.to_owned())
}

/// A plain endpoint (`field`, `value`) that may be `"off"` when its TLS
/// twin (`tls_field`, whether set) takes its place, as Redis's `port 0`
/// with a `tls-port`; `lost` says what turning both off would leave.
fn address_or_off(
    (field, value): (&'static str, &str),
    (tls_field, tls_set): (&'static str, bool),
    lost: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    match value {
        "off" if !tls_set => Err(invalid(field, format!("off needs {tls_field}: {lost}"))),
        "off" => Ok(None),
        addr => resolve(field, addr).map(Some),
    }
}

fn resolve(field: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid(field, format!("'{value}' is not HOST:PORT")))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid(
            field,
            format!("'{value}' is not HOST:PORT (port 0-65535)"),
        ));
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| invalid(field, format!("cannot resolve host '{host}'")))
}

fn millis(field: &'static str, ms: u64, min: u64) -> Result<Duration, ConfigError> {
    const MAX_MS: u64 = 24 * 3600 * 1000;
    if !(min..=MAX_MS).contains(&ms) {
        return Err(invalid(
            field,
            format!("must be between {min} and {MAX_MS} milliseconds, got {ms}"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// A duration in milliseconds where 0 (the default) means off.
fn millis_or_off(field: &'static str, ms: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match ms.unwrap_or(0) {
        0 => Ok(None),
        ms => millis(field, ms, 1).map(Some),
    }
}

#[cfg(test)]
mod tests;

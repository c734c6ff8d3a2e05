//! The effective configuration as text: `check-config` prints it, and the
//! `/status` endpoint shows it. Secrets are redacted; every line reads as the
//! TOML key it came from.

use std::net::SocketAddr;

use super::{Config, CoreConfig, LogFormat, OnSwitch, ReadFallback, Source};
use crate::tls::AuthClients;

impl Config {
    /// The effective settings as TOML-like lines, secrets redacted (`check-config`).
    pub fn describe(&self) -> String {
        let secret = |s: &Option<String>| {
            if s.is_some() {
                "\"<redacted>\""
            } else {
                "none"
            }
        };
        let source = match &self.source {
            Source::Core(core) => core.describe(),
            Source::Sentinels(list) => {
                let list: Vec<String> = list.iter().map(|a| format!("\"{a}\"")).collect();
                format!("sentinel = [{}]", list.join(", "))
            }
        };
        let on_switch = match self.on_switch {
            OnSwitch::Rebind => "rebind",
            OnSwitch::Close => "close",
        };
        let log_format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        [
            match self.listen {
                Some(addr) => format!("listen = \"{addr}\""),
                None => "listen = \"off\"".to_owned(),
            },
            format!("master_name = \"{}\"", self.master_name),
            self.describe_reads(),
            self.describe_tls(),
            self.describe_tls_backend(),
            source,
            format!("on_switch = \"{on_switch}\""),
            format!("drain_timeout_ms = {}", self.drain_timeout.as_millis()),
            format!("hold_timeout_ms = {}", self.hold_timeout.as_millis()),
            format!(
                "idle_release_ms = {}",
                self.idle_release.map_or(0, |d| d.as_millis())
            ),
            format!("share_backend = {}", self.share_backend),
            format!(
                "auth_user = {}",
                self.backend_auth
                    .user
                    .as_ref()
                    .map_or("none".to_owned(), |u| format!("\"{u}\""))
            ),
            format!("auth_pass = {}", secret(&self.backend_auth.pass)),
            format!("requirepass = {}", secret(&self.requirepass)),
            format!("threads = {}", self.threads),
            format!("max_clients = {}", self.max_clients),
            match self.metrics_listen {
                Some(addr) => format!("metrics_listen = \"{addr}\""),
                None => "metrics_listen = \"off\"".to_owned(),
            },
            format!("log_format = \"{log_format}\""),
            format!("log_level = \"{}\"", self.log_level),
        ]
        .into_iter()
        .chain(self.groups.iter().map(|g| {
            format!(
                "[[group]] name = \"{}\", master = \"{}\", listen = {}, read_listen = {}, quorum = {}",
                g.name,
                g.master,
                g.listen.map_or("none".to_owned(), |l| format!("\"{l}\"")),
                g.read_listen.map_or("none".to_owned(), |l| format!("\"{l}\"")),
                g.quorum
            )
        }))
        .collect::<Vec<_>>()
        .join("\n")
    }
}

impl CoreConfig {
    /// The core's settings as TOML lines (part of `check-config`'s output).
    fn describe(&self) -> String {
        let quoted = |a: &SocketAddr| format!("\"{a}\"");
        let peers: Vec<String> = self.peers.iter().map(quoted).collect();
        [
            match &self.master {
                Some(m) => format!("master = {}", quoted(m)),
                None => "master = none".to_owned(),
            },
            format!("quorum = {}", self.quorum),
            format!(
                "sentinel_listen = {}",
                self.sentinel_listen
                    .as_ref()
                    .map_or("\"off\"".to_owned(), quoted)
            ),
            format!(
                "announce = {}",
                self.announce.as_ref().map_or("none".to_owned(), quoted)
            ),
            format!("peer = [{}]", peers.join(", ")),
            format!(
                "sentinel_user = {}",
                self.sentinel_auth
                    .user
                    .as_ref()
                    .map_or("none".to_owned(), |u| format!("\"{u}\""))
            ),
            format!(
                "sentinel_pass = {}",
                if self.sentinel_auth.pass.is_some() {
                    "\"<redacted>\""
                } else {
                    "none"
                }
            ),
            format!("observer = {}", self.observer),
            format!("down_after_ms = {}", self.down_after.as_millis()),
            format!(
                "master_reboot_down_after_ms = {}",
                self.master_reboot_down_after.map_or(0, |d| d.as_millis())
            ),
            format!(
                "failover_timeout_ms = {}",
                self.failover_timeout.as_millis()
            ),
            format!("parallel_syncs = {}", self.parallel_syncs),
            format!(
                "notification_script = {}",
                path_or_none(&self.notification_script)
            ),
            format!(
                "client_reconfig_script = {}",
                path_or_none(&self.client_reconfig_script)
            ),
            format!(
                "data_dir = {}",
                self.data_dir
                    .as_ref()
                    .map_or("none".to_owned(), |d| format!(
                        "{:?}",
                        d.display().to_string()
                    ))
            ),
        ]
        .join("\n")
    }
}

/// A path, quoted, or `none`.
fn path_or_none(path: &Option<std::path::PathBuf>) -> String {
    path.as_ref().map_or("none".to_owned(), |p| {
        format!("{:?}", p.display().to_string())
    })
}

impl Config {
    /// The read endpoint's lines.
    fn describe_reads(&self) -> String {
        let fallback = match self.reads.fallback {
            ReadFallback::Master => "master",
            ReadFallback::Hold => "hold",
            ReadFallback::Error => "error",
        };
        [
            format!(
                "read_listen = {}",
                self.reads
                    .listen
                    .map_or("\"off\"".to_owned(), |a| format!("\"{a}\""))
            ),
            format!("max_replica_lag_ms = {}", self.reads.max_lag.as_millis()),
            format!("read_fallback = \"{fallback}\""),
        ]
        .join("\n")
    }

    /// The lines of TLS towards servers (`tls_backend = false` without it).
    fn describe_tls_backend(&self) -> String {
        let Some(files) = &self.tls_backend else {
            return "tls_backend = false".to_owned();
        };
        let path = |p: &std::path::Path| format!("{:?}", p.display().to_string());
        let mut lines = vec![
            "tls_backend = true".to_owned(),
            format!("tls_backend_ca_cert_file = {}", path(&files.ca)),
        ];
        if let Some((cert, key)) = &files.identity {
            lines.push(format!("tls_client_cert_file = {}", path(cert)));
            lines.push(format!("tls_client_key_file = {}", path(key)));
        }
        if let Some(name) = &files.server_name {
            lines.push(format!("tls_backend_server_name = {name:?}"));
        }
        lines.join("\n")
    }

    /// The TLS endpoint's lines (`tls_listen = "off"` without one).
    fn describe_tls(&self) -> String {
        let Some(tls) = &self.tls else {
            return "tls_listen = \"off\"\ntls_sentinel_listen = \"off\"".to_owned();
        };
        let addr = |a: Option<std::net::SocketAddr>| {
            a.map_or("\"off\"".to_owned(), |a| format!("\"{a}\""))
        };
        let auth = match tls.files.auth_clients {
            AuthClients::Yes => "yes",
            AuthClients::No => "no",
            AuthClients::Optional => "optional",
        };
        let ca = tls.files.ca.as_ref().map_or("none".to_owned(), |p| {
            format!("{:?}", p.display().to_string())
        });
        [
            format!("tls_listen = {}", addr(tls.listen)),
            format!("tls_sentinel_listen = {}", addr(tls.sentinel_listen)),
            format!("tls_cert_file = {:?}", tls.files.cert.display().to_string()),
            format!("tls_key_file = {:?}", tls.files.key.display().to_string()),
            format!("tls_ca_cert_file = {ca}"),
            format!("tls_auth_clients = \"{auth}\""),
        ]
        .join("\n")
    }
}

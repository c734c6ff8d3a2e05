//! The notes of a conversion: what was dropped or changed on the way from a
//! `sentinel.conf` to the proxy's config, and why.
//!
//! [`Notes`] collects them while the file is read (`parse`) and while its
//! values are mapped onto the proxy's settings (`map`); lines that earn the
//! same note share it, so Sentinel's four state lines give one note, not four.
//! The rest of this file is the reason given for each directive the proxy
//! does not carry over: Sentinel's state, top-level process and server
//! settings, and `sentinel` sub-directives it has no counterpart for.
//!
//! A note may name a directive or an address from the file, escaped onto one
//! line, but never a secret: passwords and user names stay in the TOML.

use super::{join_numbers, shown};

/// Notes in the order first seen; lines with the same note share it.
#[derive(Default)]
pub(crate) struct Notes(Vec<(Vec<usize>, String)>);

impl Notes {
    /// A note about `line`.
    pub(super) fn add(&mut self, line: usize, text: impl Into<String>) {
        let text = text.into();
        match self.0.iter_mut().find(|(_, t)| *t == text) {
            Some((lines, _)) => lines.push(line),
            None => self.0.push((vec![line], text)),
        }
    }

    /// Orders notes by their first line; notes about the whole file come last.
    pub(super) fn sort_by_line(&mut self) {
        self.0
            .sort_by_key(|(lines, _)| lines.first().copied().unwrap_or(usize::MAX));
    }

    /// A note about the file as a whole.
    pub(super) fn general(&mut self, text: impl Into<String>) {
        self.0.push((Vec::new(), text.into()));
    }

    /// The notes as lines of text, each prefixed with the line (or lines) it
    /// is about: `line 3: ...`, `lines 4, 5: ...`, or no prefix for the file.
    pub(crate) fn render(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(lines, text)| match lines.as_slice() {
                [] => text.clone(),
                [one] => format!("line {one}: {text}"),
                many => format!("lines {}: {text}", join_numbers(many)),
            })
            .collect()
    }
}

/// The note for Sentinel's own state lines.
pub(super) const STATE_NOTE: &str = "Sentinel's state (run id, epochs) is not configuration: \
    the proxy has its own run id, keeps its epochs in data_dir and learns the \
    group's current epoch from its peers";

/// Why renamed commands are not carried over.
pub(super) const RENAME_NOTE: &str = "`sentinel rename-command` is not supported: the proxy \
    sends commands such as CONFIG and REPLICAOF under their own names, so a \
    server that renamed them will refuse its failover steps";

/// The note for a top-level directive other than `sentinel`, `port` and `bind`.
pub(super) fn top_level_note(directive: &str) -> String {
    let reason = match directive {
        "daemonize" | "supervised" | "pidfile" => {
            "the proxy runs in the foreground; let the service manager supervise it"
        }
        "logfile" | "loglevel" | "syslog-enabled" | "syslog-ident" | "syslog-facility" => {
            "the proxy logs to stderr: see log_level and log_format"
        }
        "dir" => "the proxy keeps its state in data_dir (suggested above), not in its config file",
        "protected-mode" => {
            "the proxy has no protected mode: sentinel_listen decides who can connect"
        }
        "requirepass" => {
            "not carried over: the proxy's requirepass guards its client port as well as its \
             sentinel port, so applications would have to AUTH with it; set it yourself if they do"
        }
        "user" | "aclfile" | "acllog-max-len" | "acl-pubsub-default" => {
            "ACL users are not carried over: the proxy's sentinel port knows only requirepass"
        }
        "rename-command" => "the proxy's own commands cannot be renamed",
        "latency-tracking" | "latency-tracking-info-percentiles" => {
            "latency tracking is not carried over: the proxy exports metrics on metrics_listen"
        }
        "maxclients" => {
            "not carried over: the proxy's max_clients limits its client port, not its sentinel port"
        }
        "unixsocket" | "unixsocketperm" => "the proxy listens on TCP only",
        "include" => {
            "included files are not read: append their lines to this file and convert again"
        }
        "tls-ciphers"
        | "tls-ciphersuites"
        | "tls-protocols"
        | "tls-prefer-server-ciphers"
        | "tls-dh-params-file"
        | "tls-session-caching"
        | "tls-session-cache-size"
        | "tls-session-cache-timeout" => {
            "the proxy uses rustls's safe defaults (TLS 1.2 and 1.3), which are not configurable"
        }
        "tls-ca-cert-dir" => "give the CA certificates in one PEM file: tls_ca_cert_file",
        "tls-key-file-pass" | "tls-client-key-file-pass" => {
            "encrypted private keys are not supported: decrypt the key file (openssl pkey)"
        }
        "tls-cluster" => "the proxy does not serve Redis Cluster",
        tls if tls.starts_with("tls-") => "not a TLS setting the proxy has",
        _ => {
            return format!(
                "`{}` is not a setting of the proxy; ignored",
                shown(directive)
            );
        }
    };
    format!("`{}`: {reason}", shown(directive))
}

/// The note for a `sentinel` sub-directive the proxy does not carry over.
pub(super) fn sentinel_note(sub: &str) -> String {
    let reason = match sub {
        "resolve-hostnames" => {
            "the proxy always accepts host names and resolves them once, when it loads its \
             config; a name whose address changes needs a restart"
        }
        "announce-hostnames" => "the proxy announces the ip address that announce resolves to",
        "deny-scripts-reconfig" => {
            "the proxy has no SENTINEL SET: its scripts change only in its config file"
        }
        "sentinel-user" | "sentinel-pass" => {
            "not carried over: the proxy authenticates to Sentinels that ask with \
             auth_user/auth_pass, the credentials it uses for Redis"
        }
        _ => {
            return format!(
                "`sentinel {}` is not a setting of the proxy; ignored",
                shown(sub)
            );
        }
    };
    format!("`sentinel {}`: {reason}", shown(sub))
}

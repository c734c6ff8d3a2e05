//! Mapping a [`SentinelConf`] onto the proxy's settings: a [`Plan`] of
//! `key = value` entries, each with a comment naming the `sentinel.conf` line
//! it came from, plus the peers, the replicas and the notes.
//!
//! This is where Sentinel's names and defaults become the proxy's: a timing
//! the file leaves out gets Sentinel's default (the proxy's own are shorter),
//! `port` and `bind` become one `sentinel_listen`, `announce-ip` and
//! `announce-port` one `announce`, and `auth-user` counts only with an
//! `auth-pass`, as in Sentinel. Whatever cannot be mapped exactly is noted:
//! several `bind` addresses, an `announce-port` alone, a quorum larger than
//! the voters the file knows, a master on the proxy's default `listen`.
//! `listen` and `data_dir` have no counterpart and are suggested, commented
//! out. Writing the plan as text is `render`'s job.

use super::notes::Notes;
use super::parse::{SentinelConf, Sourced};
use super::shown;
use super::values::bracketed;

/// A `key = value` line and its comment; `active` false writes it commented out.
pub(super) struct Entry {
    /// Says what the setting does and where its value came from; one line.
    pub(super) comment: String,
    /// The proxy's setting.
    pub(super) key: &'static str,
    /// The value, already written as TOML.
    pub(super) value: String,
    /// Whether the line is a setting (`true`) or a suggestion, commented out.
    pub(super) active: bool,
}

/// What the TOML will say, in the order `render` writes it.
///
/// Built once from a [`SentinelConf`] by [`SentinelConf::plan`]; nothing in
/// it is looked up or checked again.
pub(super) struct Plan {
    /// The settings, in the order they are written.
    pub(super) entries: Vec<Entry>,
    /// The group's other voters, from `known-sentinel`.
    pub(super) peers: Vec<Sourced<String>>,
    /// The replicas Sentinel knew, written only as comments.
    pub(super) replicas: Vec<Sourced<String>>,
    /// Everything noted while reading and mapping, in line order.
    pub(super) notes: Notes,
}

/// Masters whose address is the proxy's default `listen` (127.0.0.1:6379):
/// the proxy would then listen where its master is, so the group line gets a
/// note asking for another `listen`.
const LISTEN_DEFAULTS: [&str; 3] = ["127.0.0.1:6379", "localhost:6379", "[::1]:6379"];

/// `sentinel.conf line N`, for a comment saying where a value came from.
pub(super) fn from_line(line: usize) -> String {
    format!("sentinel.conf line {line}")
}

/// A string as a TOML value (quoted and escaped by the `toml` crate).
pub(super) fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Sentinel's default `down-after-milliseconds`, written when the file leaves
/// it out: the proxy's own default (5000) is shorter.
const SENTINEL_DOWN_AFTER_MS: u64 = 30_000;
/// Sentinel's default `failover-timeout`; the proxy's own (60000) is shorter.
pub(super) const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 180_000;
/// Sentinel's default `parallel-syncs`.
const SENTINEL_PARALLEL_SYNCS: u64 = 1;
/// Sentinel's default port, for a file without a `port` line.
const SENTINEL_PORT: u16 = 26379;

/// The mapping, as methods of the description it reads.
impl SentinelConf {
    /// The settings, peers, replicas and notes the TOML will hold, notes
    /// sorted by line.
    pub(super) fn plan(mut self) -> Plan {
        let mut plan = Plan {
            entries: Vec::new(),
            peers: Vec::new(),
            replicas: Vec::new(),
            notes: std::mem::take(&mut self.notes),
        };
        self.plan_group(&mut plan);
        let host = self.plan_ports(&mut plan);
        self.plan_tls(&mut plan, &host);
        self.plan_auth(&mut plan);
        self.plan_scripts(&mut plan);
        self.plan_suggestions(&mut plan);
        self.plan_voters(&mut plan);
        plan.notes.sort_by_line();
        plan
    }

    /// The group itself (`master_name`, `master`, `quorum`) and its timings.
    fn plan_group(&self, plan: &mut Plan) {
        let at = from_line(self.group.line);
        plan.entries.extend([
            Entry {
                comment: format!("The group's name, as clients ask Sentinel for it ({at})."),
                key: "master_name",
                value: toml_string(&self.group.name),
                active: true,
            },
            Entry {
                comment: format!(
                    "The master when the file was written; replicas are found from its INFO ({at})."
                ),
                key: "master",
                value: toml_string(&self.group.master),
                active: true,
            },
            Entry {
                comment: format!(
                    "Voters (this proxy included) that must agree the master is down ({at})."
                ),
                key: "quorum",
                value: self.group.quorum.to_string(),
                active: true,
            },
        ]);
        plan.entries.extend([timing(
            "No valid reply for this long marks a node down",
            "down_after_ms",
            &self.down_after_ms,
            SENTINEL_DOWN_AFTER_MS,
            "5000",
        )]);
        if let Some(reboot) = &self.reboot_down_after_ms {
            plan.entries.push(Entry {
                comment: format!(
                    "A master that restarted and gives no PONG for this long is down; 0 is off ({}).",
                    from_line(reboot.line)
                ),
                key: "master_reboot_down_after_ms",
                value: reboot.value.to_string(),
                active: true,
            });
        }
        plan.entries.extend([
            timing(
                "Bounds each failover step; a new attempt waits twice this",
                "failover_timeout_ms",
                &self.failover_timeout_ms,
                SENTINEL_FAILOVER_TIMEOUT_MS,
                "60000",
            ),
            timing(
                "Replicas reconfigured at once after a failover",
                "parallel_syncs",
                &self.parallel_syncs,
                SENTINEL_PARALLEL_SYNCS,
                "1",
            ),
        ]);
    }

    /// `sentinel_listen` from `port` and `bind`, then `announce`; returns
    /// the host it listens on.
    fn plan_ports(&self, plan: &mut Plan) -> String {
        let port = self.port.as_ref().map_or(SENTINEL_PORT, |p| p.value);
        let (host, bind_at) = match &self.bind {
            Some(bind) => (listen_host(bind, &mut plan.notes), Some(bind.line)),
            None => ("0.0.0.0".to_owned(), None),
        };
        let sources = match (&self.port, bind_at) {
            (Some(p), Some(b)) => format!("port and bind, sentinel.conf lines {} and {b}", p.line),
            (Some(p), None) => format!("port, {}", from_line(p.line)),
            (None, Some(b)) => format!("bind, {}; Sentinel's default port", from_line(b)),
            (None, None) => "Sentinel's default port; no port line".to_owned(),
        };
        plan.entries.push(Entry {
            comment: format!(
                "Sentinel-protocol endpoint for peers and Sentinel-aware clients ({sources})."
            ),
            key: "sentinel_listen",
            value: toml_string(&bracketed(&host, port)),
            active: true,
        });
        self.plan_announce(plan, port);
        host
    }

    /// `tls-port` as `tls_sentinel_listen` (on `host`, as `bind` says), and
    /// `tls-replication yes` as `tls_backend`, with the files either needs
    /// and `tls-auth-clients`; with neither, the files have nothing to do
    /// and are only noted.
    fn plan_tls(&self, plan: &mut Plan, host: &str) {
        let tls = &self.tls;
        let replication = tls.replication.as_ref().filter(|r| r.value);
        if let Some(on) = replication {
            plan.entries.push(Entry {
                comment: format!(
                    "Redis and the other Sentinels are reached over TLS, as Sentinel \
                     reached them ({}).",
                    from_line(on.line)
                ),
                key: "tls_backend",
                value: "true".to_owned(),
                active: true,
            });
        }
        let files = [
            (
                "tls_cert_file",
                "Certificate chain of the TLS endpoints (PEM)",
                &tls.cert_file,
            ),
            ("tls_key_file", "Its private key (PEM)", &tls.key_file),
            (
                "tls_ca_cert_file",
                "CA that client and server certificates must be signed by (PEM)",
                &tls.ca_cert_file,
            ),
            (
                "tls_client_cert_file",
                "Certificate shown to Redis and to peers (PEM)",
                &tls.client_cert_file,
            ),
            (
                "tls_client_key_file",
                "Its private key (PEM)",
                &tls.client_key_file,
            ),
        ];
        if tls.port.is_none() && replication.is_none() {
            for (_, _, file) in files {
                if let Some(file) = file {
                    plan.notes.add(
                        file.line,
                        "no tls-port and no tls-replication: nothing uses the file; not carried over",
                    );
                }
            }
            return;
        }
        if let Some(port) = &tls.port {
            plan.entries.push(Entry {
                comment: format!(
                    "The sentinel port over TLS, for Sentinel-aware clients ({}).",
                    from_line(port.line)
                ),
                key: "tls_sentinel_listen",
                value: toml_string(&bracketed(host, port.value)),
                active: true,
            });
        }
        for (key, what, file) in files {
            if let Some(file) = file {
                plan.entries.push(Entry {
                    comment: format!(
                        "{what}; must exist on the proxy's host, re-read on SIGHUP ({}).",
                        from_line(file.line)
                    ),
                    key,
                    value: toml_string(&file.value),
                    active: true,
                });
            }
        }
        if let Some(auth) = tls.auth_clients.as_ref().filter(|_| tls.port.is_some()) {
            plan.entries.push(Entry {
                comment: format!(
                    "Whether TLS clients must show a certificate ({}).",
                    from_line(auth.line)
                ),
                key: "tls_auth_clients",
                value: toml_string(&auth.value),
                active: true,
            });
        }
    }

    /// `announce` from `announce-ip` and `announce-port`; without an ip, a
    /// commented-out line to fill in.
    fn plan_announce(&self, plan: &mut Plan, listen_port: u16) {
        let ip = self.announce_ip.as_ref().filter(|ip| !ip.value.is_empty());
        let port = self.announce_port.as_ref().filter(|p| p.value != 0);
        match (ip, port) {
            (Some(ip), port) => {
                let chosen = port.map_or(listen_port, |p| p.value);
                let at = match port {
                    Some(p) => format!("sentinel.conf lines {} and {}", ip.line, p.line),
                    None => format!("{}, with the sentinel port", from_line(ip.line)),
                };
                plan.entries.push(Entry {
                    comment: format!("Address peers use to reach this sentinel port ({at})."),
                    key: "announce",
                    value: toml_string(&bracketed(&ip.value, chosen)),
                    active: true,
                });
            }
            (None, Some(port)) => {
                plan.notes.add(
                    port.line,
                    "announce-port without announce-ip: the proxy's announce needs HOST:PORT; \
                     fill in the commented announce line",
                );
                plan.entries.push(Entry {
                    comment: format!(
                        "Address peers use to reach this sentinel port: this host's address ({}).",
                        from_line(port.line)
                    ),
                    key: "announce",
                    value: toml_string(&format!("HOST:{}", port.value)),
                    active: false,
                });
            }
            (None, None) => {}
        }
    }

    /// `auth_user` (only with a password, as in Sentinel) and `auth_pass`.
    fn plan_auth(&self, plan: &mut Plan) {
        let pass = self.auth_pass.as_ref().filter(|p| !p.value.is_empty());
        let user = self.auth_user.as_ref().filter(|u| !u.value.is_empty());
        match (user, pass) {
            (Some(user), None) => plan.notes.add(
                user.line,
                "auth-user without auth-pass is ignored by Sentinel too; not carried over",
            ),
            (Some(user), Some(_)) => plan.entries.push(Entry {
                comment: format!(
                    "ACL user for connections to the group's Redis servers ({}).",
                    from_line(user.line)
                ),
                key: "auth_user",
                value: toml_string(&user.value),
                active: true,
            }),
            (None, _) => {}
        }
        if let Some(pass) = pass {
            plan.entries.push(Entry {
                comment: format!(
                    "Password for the group's Redis servers, and for Sentinels that ask ({}).",
                    from_line(pass.line)
                ),
                key: "auth_pass",
                value: toml_string(&pass.value),
                active: true,
            });
        }
    }

    /// The notification and client-reconfig scripts, paths kept as given.
    fn plan_scripts(&self, plan: &mut Plan) {
        let scripts = [
            (
                "notification_script",
                "Called for each warning-level event",
                &self.notification_script,
            ),
            (
                "client_reconfig_script",
                "Called when the master changes",
                &self.client_reconfig_script,
            ),
        ];
        for (key, what, script) in scripts {
            if let Some(script) = script {
                plan.entries.push(Entry {
                    comment: format!(
                        "{what}; must be executable on the proxy's host ({}).",
                        from_line(script.line)
                    ),
                    key,
                    value: toml_string(&script.value),
                    active: true,
                });
            }
        }
    }

    /// `listen` and `data_dir`, which `sentinel.conf` has no counterpart for:
    /// suggested, commented out.
    fn plan_suggestions(&self, plan: &mut Plan) {
        if LISTEN_DEFAULTS.contains(&self.group.master.as_str()) {
            plan.notes.add(
                self.group.line,
                "the master's address is the proxy's default listen address: set listen to another one",
            );
        }
        plan.entries.extend([
            Entry {
                comment: "Client endpoint for the applications (not in sentinel.conf; must differ from the master's address)."
                    .to_owned(),
                key: "listen",
                value: toml_string("127.0.0.1:6379"),
                active: false,
            },
            Entry {
                comment: "Directory for state that survives restarts (run id, epochs, topology); recommended."
                    .to_owned(),
                key: "data_dir",
                value: toml_string("/var/lib/sentinel-proxy"),
                active: false,
            },
        ]);
    }

    /// The peers and replicas, and a note when the quorum needs more voters
    /// than the file knows.
    fn plan_voters(self, plan: &mut Plan) {
        let quorum = self.group.quorum;
        if quorum > self.peers.len() as u64 + 1 {
            let voters = match self.peers.len() {
                0 => "this proxy".to_owned(),
                1 => "this proxy and 1 peer".to_owned(),
                n => format!("this proxy and {n} peers"),
            };
            plan.notes.general(format!(
                "quorum {quorum} needs {quorum} voters, but the file gives only {voters}: list \
                 the group's other Sentinels (or proxies) as peers, or no failover can happen"
            ));
        }
        plan.peers = self.peers;
        plan.replicas = self.replicas;
    }
}

/// The address `sentinel_listen` uses, from `bind`'s list: a wildcard if
/// any (IPv4's first), otherwise the first address. The proxy listens on one
/// address only, so a list of several gets a note naming the one chosen.
fn listen_host(bind: &Sourced<Vec<String>>, notes: &mut Notes) -> String {
    let addrs = &bind.value;
    let chosen = if addrs.iter().any(|a| matches!(a.as_str(), "*" | "0.0.0.0")) {
        "0.0.0.0".to_owned()
    } else if addrs.iter().any(|a| matches!(a.as_str(), "::*" | "::")) {
        "::".to_owned()
    } else {
        addrs.first().map_or("0.0.0.0".to_owned(), Clone::clone)
    };
    if addrs.len() > 1 {
        notes.add(
            bind.line,
            format!(
                "the proxy listens on one address: sentinel_listen uses {} for bind's {} addresses",
                shown(&chosen),
                addrs.len()
            ),
        );
    }
    chosen
}

/// The entry of a timing setting, Sentinel's default when the file has none.
///
/// `what` opens the comment; `proxy_default` is named in it when Sentinel's
/// default is used, since that is the value the proxy would otherwise take.
fn timing(
    what: &str,
    key: &'static str,
    given: &Option<Sourced<u64>>,
    sentinel_default: u64,
    proxy_default: &str,
) -> Entry {
    let (value, source) = match given {
        Some(v) => (v.value, from_line(v.line)),
        None => (
            sentinel_default,
            format!("Sentinel's default; the proxy's own is {proxy_default}"),
        ),
    };
    Entry {
        comment: format!("{what} ({source})."),
        key,
        value: value.to_string(),
        active: true,
    }
}

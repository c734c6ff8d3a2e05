//! Reading a `sentinel.conf` into a typed description, [`SentinelConf`]: the
//! one group it monitors, that group's options, the Sentinels and replicas
//! it knew, and notes on what the proxy does not carry over.
//!
//! This is the step that knows Sentinel's directives; it says nothing of the
//! proxy's settings (that is `map`), so anything in the crate that needs to
//! read a `sentinel.conf` can call [`parse`] on its own. Reading follows
//! Sentinel: directive names are case-insensitive, a single-valued directive
//! seen twice keeps its last value (and earns a note), and every directive
//! that names a group must name the monitored one. Some directives the proxy
//! has no counterpart for (epochs, `rename-command`) are still checked for
//! their arguments and group, then noted; the others are only noted.
//! Sentinel's state lines (`myid`, epochs) are not kept in the description.

use super::error::ImportError;
use super::lines::{Line, parse_lines};
use super::notes::{Notes, RENAME_NOTE, STATE_NOTE, sentinel_note, top_level_note};
use super::shown;
use super::values::{
    DOWN_AFTER, FAILOVER_TIMEOUT, NumberKey, PARALLEL_SYNCS, QUORUM, REBOOT_DOWN_AFTER,
    announce_host, bind_addresses, exactly, host_port, parse_number, parse_port, tls_auth_clients,
    value_error,
};

/// Reads the text of a `sentinel.conf` into its description.
///
/// Fails on the first line that cannot be read, on a file without exactly
/// one `sentinel monitor` line, and on a directive for another group.
pub(crate) fn parse(sentinel_conf: &str) -> Result<SentinelConf, ImportError> {
    let lines = parse_lines(sentinel_conf)?;
    let group = find_monitor(&lines)?;
    let mut reader = Reader::new(group);
    for line in &lines {
        reader.take(line)?;
    }
    Ok(reader.conf)
}

/// A value and the line it came from.
#[derive(Debug, Clone)]
pub(crate) struct Sourced<T> {
    /// The value, checked.
    pub(crate) value: T,
    /// The 1-based line it was read from.
    pub(crate) line: usize,
}

/// The one `sentinel monitor` line.
pub(crate) struct Group {
    /// The group's name, as clients ask Sentinel for it.
    pub(crate) name: String,
    /// The master's address when the file was written, `host:port` (a host
    /// name kept as given, an IPv6 address in brackets).
    pub(crate) master: String,
    /// Voters that must agree the master is down.
    pub(crate) quorum: u64,
    /// The line of the `sentinel monitor` directive.
    pub(crate) line: usize,
}

/// What a `sentinel.conf` says about its one group and its Sentinel: each
/// option as last set (with its line), or `None` when the file leaves it out.
pub(crate) struct SentinelConf {
    /// The monitored group (`sentinel monitor`).
    pub(crate) group: Group,
    /// `sentinel down-after-milliseconds`.
    pub(crate) down_after_ms: Option<Sourced<u64>>,
    /// `sentinel master-reboot-down-after-period` (or Valkey's
    /// `primary-reboot-down-after-period`), in milliseconds.
    pub(crate) reboot_down_after_ms: Option<Sourced<u64>>,
    /// `sentinel failover-timeout`, in milliseconds.
    pub(crate) failover_timeout_ms: Option<Sourced<u64>>,
    /// `sentinel parallel-syncs`.
    pub(crate) parallel_syncs: Option<Sourced<u64>>,
    /// `sentinel auth-user`: the ACL user for the group's servers.
    pub(crate) auth_user: Option<Sourced<String>>,
    /// `sentinel auth-pass`: the password for the group's servers.
    pub(crate) auth_pass: Option<Sourced<String>>,
    /// `sentinel notification-script`: a path on the Sentinel's host.
    pub(crate) notification_script: Option<Sourced<String>>,
    /// `sentinel client-reconfig-script`: a path on the Sentinel's host.
    pub(crate) client_reconfig_script: Option<Sourced<String>>,
    /// `port`: the Sentinel's own port.
    pub(crate) port: Option<Sourced<u16>>,
    /// `bind`: its addresses, IP addresses or wildcards, `-` marks removed.
    pub(crate) bind: Option<Sourced<Vec<String>>>,
    /// The TLS lines the proxy carries over (`tls-port`, the files,
    /// `tls-auth-clients`, `tls-replication`).
    pub(crate) tls: Tls,
    /// `sentinel announce-ip`; empty is Sentinel's "not set".
    pub(crate) announce_ip: Option<Sourced<String>>,
    /// `sentinel announce-port`; 0 is Sentinel's "not set".
    pub(crate) announce_port: Option<Sourced<u16>>,
    /// `sentinel known-sentinel`: the other Sentinels' `host:port`, each once,
    /// in file order.
    pub(crate) peers: Vec<Sourced<String>>,
    /// `sentinel known-replica` (or `known-slave`): replicas' `host:port`, in
    /// file order.
    pub(crate) replicas: Vec<Sourced<String>>,
    /// What reading noted: directives dropped, repeated or duplicated.
    pub(crate) notes: Notes,
}

// ---------------------------------------------------------------------------
// The monitored group

/// Finds and reads the only `sentinel monitor` line.
fn find_monitor(lines: &[Line]) -> Result<Group, ImportError> {
    let monitors: Vec<&Line> = lines.iter().filter(|l| l.is_monitor()).collect();
    match monitors.as_slice() {
        [] => Err(ImportError::NoMonitor),
        [line] => read_monitor(line),
        several => Err(ImportError::SeveralMonitors {
            lines: several.iter().map(|l| l.number).collect(),
        }),
    }
}

/// Reads `sentinel monitor <name> <host> <port> <quorum>`.
fn read_monitor(line: &Line) -> Result<Group, ImportError> {
    let [name, host, port, quorum] = exactly(
        line,
        &line.args[2..],
        "sentinel monitor <name> <host> <port> <quorum>",
    )?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(value_error(
            line,
            "the master name must be non-empty and without spaces",
        ));
    }
    let port = parse_port(line, port)?;
    Ok(Group {
        name: name.to_owned(),
        master: host_port(line, host, port)?,
        quorum: parse_number(line, &QUORUM, quorum)?,
        line: line.number,
    })
}

// ---------------------------------------------------------------------------
// Directives

/// A Sentinel's TLS lines: its TLS port and what it is built from, and
/// whether it spoke TLS to Redis and the other Sentinels.
#[derive(Default)]
pub(crate) struct Tls {
    /// `tls-port`.
    pub(crate) port: Option<Sourced<u16>>,
    /// `tls-cert-file`: a path on the Sentinel's host.
    pub(crate) cert_file: Option<Sourced<String>>,
    /// `tls-key-file`.
    pub(crate) key_file: Option<Sourced<String>>,
    /// `tls-ca-cert-file`.
    pub(crate) ca_cert_file: Option<Sourced<String>>,
    /// `tls-auth-clients`: `yes`, `no` or `optional`.
    pub(crate) auth_clients: Option<Sourced<String>>,
    /// `tls-client-cert-file`: the certificate shown to Redis and to the
    /// other Sentinels (`tls-cert-file` when absent).
    pub(crate) client_cert_file: Option<Sourced<String>>,
    /// `tls-client-key-file`.
    pub(crate) client_key_file: Option<Sourced<String>>,
    /// `tls-replication yes`: Sentinel's links to Redis and to the other
    /// Sentinels used TLS.
    pub(crate) replication: Option<Sourced<bool>>,
}

/// Directives set once: a later one replaces an earlier one, as in Sentinel.
const SINGLE_VALUED: &[&str] = &[
    "port",
    "bind",
    "tls-port",
    "tls-cert-file",
    "tls-key-file",
    "tls-ca-cert-file",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-auth-clients",
    "tls-replication",
    "sentinel down-after-milliseconds",
    "sentinel master-reboot-down-after-period",
    "sentinel failover-timeout",
    "sentinel parallel-syncs",
    "sentinel auth-user",
    "sentinel auth-pass",
    "sentinel notification-script",
    "sentinel client-reconfig-script",
    "sentinel announce-ip",
    "sentinel announce-port",
];

/// `value` from `line`.
fn at<T>(value: T, line: &Line) -> Option<Sourced<T>> {
    Some(Sourced {
        value,
        line: line.number,
    })
}

/// Reads the directives one by one into the description.
struct Reader {
    /// The description so far.
    conf: SentinelConf,
    /// The line of each single-valued directive seen so far.
    seen: Vec<(&'static str, usize)>,
}

impl Reader {
    /// A reader for the file whose `sentinel monitor` line gave `group`.
    fn new(group: Group) -> Reader {
        Reader {
            conf: SentinelConf {
                group,
                down_after_ms: None,
                reboot_down_after_ms: None,
                failover_timeout_ms: None,
                parallel_syncs: None,
                auth_user: None,
                auth_pass: None,
                notification_script: None,
                client_reconfig_script: None,
                port: None,
                bind: None,
                tls: Tls::default(),
                announce_ip: None,
                announce_port: None,
                peers: Vec::new(),
                replicas: Vec::new(),
                notes: Notes::default(),
            },
            seen: Vec::new(),
        }
    }

    /// Notes a single-valued directive that repeats an earlier line.
    fn note_repeat(&mut self, line: &Line) {
        let name = match line.sub_directive() {
            Some(sub) if line.directive() == "sentinel" => format!("sentinel {sub}"),
            _ => line.directive(),
        };
        let Some(&key) = SINGLE_VALUED.iter().find(|k| **k == name) else {
            return;
        };
        match self.seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, earlier)) => {
                let text =
                    format!("`{key}` repeats line {earlier}; the last one counts, as in Sentinel");
                *earlier = line.number;
                self.conf.notes.add(line.number, text);
            }
            None => self.seen.push((key, line.number)),
        }
    }

    /// Reads one directive line: `sentinel ...`, `port` and `bind` into the
    /// description, any other top-level directive as a note.
    fn take(&mut self, line: &Line) -> Result<(), ImportError> {
        self.note_repeat(line);
        let operands = &line.args[1..];
        match line.directive().as_str() {
            "sentinel" => return self.take_sentinel(line),
            "port" => {
                let [port] = exactly(line, operands, "port <port>")?;
                self.conf.port = at(parse_port(line, port)?, line);
            }
            "bind" => self.conf.bind = at(bind_addresses(line)?, line),
            "tls-port" => {
                let [port] = exactly(line, operands, "tls-port <port>")?;
                // 0 is Sentinel's "no TLS port".
                self.conf.tls.port = match port {
                    "0" => None,
                    port => at(parse_port(line, port)?, line),
                };
            }
            "tls-cert-file"
            | "tls-key-file"
            | "tls-ca-cert-file"
            | "tls-client-cert-file"
            | "tls-client-key-file" => {
                let [path] = exactly(line, operands, "tls-...-file <path>")?;
                let path = at(path.to_owned(), line);
                let tls = &mut self.conf.tls;
                match line.directive().as_str() {
                    "tls-cert-file" => tls.cert_file = path,
                    "tls-key-file" => tls.key_file = path,
                    "tls-client-cert-file" => tls.client_cert_file = path,
                    "tls-client-key-file" => tls.client_key_file = path,
                    _ => tls.ca_cert_file = path,
                }
            }
            "tls-auth-clients" => {
                let [mode] = exactly(line, operands, "tls-auth-clients yes|no|optional")?;
                self.conf.tls.auth_clients = at(tls_auth_clients(line, mode)?, line);
            }
            "tls-replication" => {
                let [flag] = exactly(line, operands, "tls-replication yes|no")?;
                let on = match flag.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(value_error(line, "tls-replication is yes or no")),
                };
                self.conf.tls.replication = at(on, line);
            }
            other => self.conf.notes.add(line.number, top_level_note(other)),
        }
        Ok(())
    }

    /// Reads one `sentinel <sub-directive> ...` line.
    fn take_sentinel(&mut self, line: &Line) -> Result<(), ImportError> {
        let Some(sub) = line.sub_directive() else {
            return Err(ImportError::Arguments {
                line: line.number,
                usage: "sentinel <directive> <arguments>",
            });
        };
        match sub.as_str() {
            "monitor" => {}
            "down-after-milliseconds" => {
                self.conf.down_after_ms = at(self.group_number(line, &DOWN_AFTER)?, line);
            }
            "failover-timeout" => {
                self.conf.failover_timeout_ms =
                    at(self.group_number(line, &FAILOVER_TIMEOUT)?, line);
            }
            "master-reboot-down-after-period" => {
                self.conf.reboot_down_after_ms =
                    at(self.group_number(line, &REBOOT_DOWN_AFTER)?, line);
            }
            "parallel-syncs" => {
                self.conf.parallel_syncs = at(self.group_number(line, &PARALLEL_SYNCS)?, line);
            }
            "auth-user" => {
                let usage = "sentinel auth-user <name> <user>";
                self.conf.auth_user = at(self.group_value(line, usage)?, line);
            }
            "auth-pass" => {
                let usage = "sentinel auth-pass <name> <password>";
                self.conf.auth_pass = at(self.group_value(line, usage)?, line);
            }
            "notification-script" => {
                let usage = "sentinel notification-script <name> <path>";
                self.conf.notification_script = at(self.group_value(line, usage)?, line);
            }
            "client-reconfig-script" => {
                let usage = "sentinel client-reconfig-script <name> <path>";
                self.conf.client_reconfig_script = at(self.group_value(line, usage)?, line);
            }
            "announce-ip" => {
                let [ip] = exactly(line, &line.args[2..], "sentinel announce-ip <ip>")?;
                // Empty is Sentinel's "not set".
                let ip = if ip.is_empty() {
                    String::new()
                } else {
                    announce_host(line, ip)?
                };
                self.conf.announce_ip = at(ip, line);
            }
            "announce-port" => {
                let [port] = exactly(line, &line.args[2..], "sentinel announce-port <port>")?;
                // 0 is Sentinel's "not set".
                let port = if port == "0" {
                    0
                } else {
                    parse_port(line, port)?
                };
                self.conf.announce_port = at(port, line);
            }
            "known-sentinel" => self.take_known_sentinel(line)?,
            "known-replica" | "known-slave" => self.take_known_replica(line)?,
            _ => self.take_ignored_sentinel(line, &sub)?,
        }
        Ok(())
    }

    /// Sub-directives that are checked, then only noted.
    fn take_ignored_sentinel(&mut self, line: &Line, sub: &str) -> Result<(), ImportError> {
        let note = match sub {
            "config-epoch" | "leader-epoch" => {
                self.group_operands::<2>(
                    line,
                    "sentinel config-epoch|leader-epoch <name> <epoch>",
                )?;
                STATE_NOTE.to_owned()
            }
            "myid" | "current-epoch" => STATE_NOTE.to_owned(),
            "rename-command" => {
                let usage = "sentinel rename-command <name> <command> <renamed>";
                self.group_operands::<3>(line, usage)?;
                RENAME_NOTE.to_owned()
            }
            other => sentinel_note(other),
        };
        self.conf.notes.add(line.number, note);
        Ok(())
    }

    /// The `N` operands of a group directive, the first naming the monitored group.
    fn group_operands<'a, const N: usize>(
        &self,
        line: &'a Line,
        usage: &'static str,
    ) -> Result<[&'a str; N], ImportError> {
        let operands: [&str; N] = exactly(line, &line.args[2..], usage)?;
        let name = operands.first().copied().unwrap_or_default();
        if name != self.conf.group.name {
            return Err(ImportError::OtherMaster {
                line: line.number,
                directive: line.sub_directive().unwrap_or_default(),
                name: shown(name),
                monitored: shown(&self.conf.group.name),
            });
        }
        Ok(operands)
    }

    /// The value of a `<name> <value>` group directive.
    fn group_value(&self, line: &Line, usage: &'static str) -> Result<String, ImportError> {
        let [_, value] = self.group_operands(line, usage)?;
        Ok(value.to_owned())
    }

    /// The number of a `<name> <number>` group directive, in `key`'s range.
    fn group_number(&self, line: &Line, key: &NumberKey) -> Result<u64, ImportError> {
        let [_, value] = self.group_operands(line, key.usage)?;
        parse_number(line, key, value)
    }

    /// `known-sentinel`: a peer, listed once however often it appears.
    fn take_known_sentinel(&mut self, line: &Line) -> Result<(), ImportError> {
        let [_, host, port, _run_id] = self.group_operands(
            line,
            "sentinel known-sentinel <name> <host> <port> <run-id>",
        )?;
        let addr = host_port(line, host, parse_port(line, port)?)?;
        match self.conf.peers.iter().find(|p| p.value == addr) {
            Some(earlier) => {
                let text = format!("repeats the peer of line {}; listed once", earlier.line);
                self.conf.notes.add(line.number, text);
            }
            None => self.conf.peers.push(Sourced {
                value: addr,
                line: line.number,
            }),
        }
        Ok(())
    }

    /// `known-replica`: a replica Sentinel had found.
    fn take_known_replica(&mut self, line: &Line) -> Result<(), ImportError> {
        let [_, host, port] =
            self.group_operands(line, "sentinel known-replica <name> <host> <port>")?;
        let addr = host_port(line, host, parse_port(line, port)?)?;
        self.conf.replicas.push(Sourced {
            value: addr,
            line: line.number,
        });
        Ok(())
    }
}

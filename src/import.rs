//! `import-sentinel-conf`: a Redis Sentinel's `sentinel.conf` turned into this
//! proxy's TOML config.
//!
//! The proxy's built-in sentinel core takes the place of one Redis Sentinel.
//! [`convert`] reads that Sentinel's file (Redis 7.0 syntax, including the
//! lines Sentinel appends when it rewrites it) and writes the settings of the
//! one group it monitors, each key with a comment naming the line it came from.
//!
//! # What is converted
//! * `sentinel monitor` → `master_name`, `master`, `quorum` (a host name is
//!   kept as given; the proxy resolves it when it loads the file).
//! * `down-after-milliseconds`, `failover-timeout`, `parallel-syncs`; when
//!   absent, Sentinel's defaults are written, since the proxy's own differ.
//! * `auth-user`, `auth-pass`, `notification-script`, `client-reconfig-script`.
//! * `port` and `bind` → `sentinel_listen`; `announce-ip`/`announce-port` →
//!   `announce`.
//! * `known-sentinel` → `peer` (the group's other voters); `known-replica`
//!   only as a comment (the proxy finds replicas from the master's `INFO`).
//!
//! # What is not
//! State (`myid`, epochs), process and logging settings, ACL users, the
//! Sentinel port's `requirepass`, `sentinel-user`/`sentinel-pass`, TLS and
//! anything unknown become notes, listed in [`Imported::notes`] and as
//! comments at the end of the TOML. `data_dir` and `listen` have no
//! counterpart in `sentinel.conf`; they are written commented out.
//!
//! # Invariants
//! * Pure: no files, sockets or name lookups.
//! * Exactly one group: zero or several `sentinel monitor` lines, or a
//!   directive naming another group, are errors.
//! * The TOML parses as [`crate::config::Settings`] and passes
//!   [`crate::config::Config::from_settings`] as long as its host names resolve
//!   and its script paths are executable files on the proxy's host.
//! * Secrets appear only as TOML values, never in notes or errors, and
//!   everything taken from the file into a comment, note or error is escaped
//!   onto one line.

use std::net::IpAddr;

use crate::resp::inline::{self, SplitError};

/// The result of a conversion: the TOML text and notes about what was not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The proxy's config file, notes included as comments at its end.
    pub toml: String,
    /// What was not carried over or needs attention, one line each.
    pub notes: Vec<String>,
}

/// Why one line of `sentinel.conf` cannot be split into arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// A quoted argument is not closed on its line.
    #[error("unbalanced quotes")]
    Unbalanced,
    /// A closing quote is followed by something other than a space.
    #[error("a closing quote must be followed by a space or the end of the line")]
    Glued,
    /// An escape such as `\xff` produced bytes that are not UTF-8.
    #[error("a quoted argument is not valid utf-8")]
    NotUtf8,
}

/// Why `sentinel.conf` cannot be converted. Displays as one lowercase line
/// naming the line number (or numbers) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// A line's quoting is malformed.
    #[error("line {line}: {problem}")]
    Quotes {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the quotes.
        problem: QuoteError,
    },
    /// No `sentinel monitor` line: nothing to front.
    #[error(
        "no `sentinel monitor <name> <host> <port> <quorum>` line: the proxy needs the group it fronts"
    )]
    NoMonitor,
    /// Several `sentinel monitor` lines; the proxy fronts one group.
    #[error(
        "lines {}: several `sentinel monitor` lines, but the proxy fronts one group: keep one per converted file",
        join_numbers(.lines)
    )]
    SeveralMonitors {
        /// The monitor lines.
        lines: Vec<usize>,
    },
    /// A directive has too few or too many arguments.
    #[error("line {line}: wrong number of arguments, expected `{usage}`")]
    Arguments {
        /// 1-based line number.
        line: usize,
        /// The directive's form.
        usage: &'static str,
    },
    /// A directive names a group other than the monitored one.
    #[error(
        "line {line}: `sentinel {directive}` is for master '{name}', but the monitored group is '{monitored}'"
    )]
    OtherMaster {
        /// 1-based line number.
        line: usize,
        /// The directive, lowercase.
        directive: String,
        /// The group it names (escaped onto one line).
        name: String,
        /// The group of the `sentinel monitor` line.
        monitored: String,
    },
    /// A port is not a number from 1 to 65535.
    #[error("line {line}: bad port '{value}' (1 to 65535)")]
    Port {
        /// 1-based line number.
        line: usize,
        /// The value as written (escaped onto one line).
        value: String,
    },
    /// A number is malformed or outside what the proxy accepts.
    #[error("line {line}: bad number '{value}' for {directive} ({min} to {max})")]
    Number {
        /// 1-based line number.
        line: usize,
        /// The directive.
        directive: &'static str,
        /// The value as written (escaped onto one line).
        value: String,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// Some other value the proxy cannot use.
    #[error("line {line}: {problem}")]
    Value {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Converts the text of a `sentinel.conf` into the proxy's TOML config.
pub fn convert(sentinel_conf: &str) -> Result<Imported, ImportError> {
    let lines = parse_lines(sentinel_conf)?;
    let group = find_monitor(&lines)?;
    let mut draft = Draft::new(group);
    for line in &lines {
        draft.take(line)?;
    }
    let plan = draft.plan();
    let notes = plan.notes.render();
    Ok(Imported {
        toml: render(&plan, &notes),
        notes,
    })
}

// ---------------------------------------------------------------------------
// Lines and arguments

/// One directive line: its number and its arguments, quotes resolved.
struct Line {
    number: usize,
    args: Vec<String>,
}

impl Line {
    /// The first argument, lowercase (directive names are case-insensitive).
    fn directive(&self) -> String {
        self.args
            .first()
            .map_or(String::new(), |a| a.to_ascii_lowercase())
    }

    /// The second argument, lowercase: the `sentinel` sub-directive.
    fn sub_directive(&self) -> Option<String> {
        self.args.get(1).map(|a| a.to_ascii_lowercase())
    }

    fn is_monitor(&self) -> bool {
        self.directive() == "sentinel" && self.sub_directive().as_deref() == Some("monitor")
    }
}

/// Splits the file into directive lines, skipping blanks and `#` comments.
fn parse_lines(text: &str) -> Result<Vec<Line>, ImportError> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let args = split_args(trimmed).map_err(|problem| ImportError::Quotes {
            line: number,
            problem,
        })?;
        lines.push(Line { number, args });
    }
    Ok(lines)
}

/// Splits one config line into arguments as Redis does (`sdssplitargs`, the
/// same splitting as for inline commands: see [`crate::resp::inline`]).
fn split_args(line: &str) -> Result<Vec<String>, QuoteError> {
    inline::words(line.as_bytes())
        .map(|word| {
            let word = word.map_err(|e| match e {
                SplitError::Unbalanced => QuoteError::Unbalanced,
                SplitError::Glued => QuoteError::Glued,
            })?;
            String::from_utf8(word.bytes.into_owned()).map_err(|_| QuoteError::NotUtf8)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The monitored group

/// The one `sentinel monitor` line.
struct Group {
    name: String,
    master: String,
    quorum: u64,
    line: usize,
}

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
// Numbers

/// A numeric directive and the range the proxy accepts for it.
struct NumberKey {
    directive: &'static str,
    usage: &'static str,
    min: u64,
    max: u64,
}

/// The proxy's largest duration (`config::millis`).
const MAX_MS: u64 = 24 * 3600 * 1000;

/// The proxy's largest group (`config::MAX_VOTERS`).
const MAX_VOTERS: u64 = 100;

const QUORUM: NumberKey = NumberKey {
    directive: "quorum",
    usage: "sentinel monitor <name> <host> <port> <quorum>",
    min: 1,
    max: MAX_VOTERS,
};

const DOWN_AFTER: NumberKey = NumberKey {
    directive: "down-after-milliseconds",
    usage: "sentinel down-after-milliseconds <name> <milliseconds>",
    min: 10,
    max: MAX_MS,
};

const FAILOVER_TIMEOUT: NumberKey = NumberKey {
    directive: "failover-timeout",
    usage: "sentinel failover-timeout <name> <milliseconds>",
    min: 100,
    max: MAX_MS,
};

const PARALLEL_SYNCS: NumberKey = NumberKey {
    directive: "parallel-syncs",
    usage: "sentinel parallel-syncs <name> <replicas>",
    min: 1,
    max: MAX_VOTERS,
};

/// Sentinel's defaults, written when the file leaves a value out: the proxy's
/// own defaults (5000 and 60000) are shorter.
const SENTINEL_DOWN_AFTER_MS: u64 = 30_000;
const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 180_000;
const SENTINEL_PARALLEL_SYNCS: u64 = 1;
const SENTINEL_PORT: u16 = 26379;

fn parse_number(line: &Line, key: &NumberKey, text: &str) -> Result<u64, ImportError> {
    text.parse::<u64>()
        .ok()
        .filter(|n| text.bytes().all(|b| b.is_ascii_digit()) && (key.min..=key.max).contains(n))
        .ok_or_else(|| ImportError::Number {
            line: line.number,
            directive: key.directive,
            value: shown(text),
            min: key.min,
            max: key.max,
        })
}

/// A port from 1 to 65535.
fn parse_port(line: &Line, text: &str) -> Result<u16, ImportError> {
    text.parse::<u16>()
        .ok()
        .filter(|&p| p != 0 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ImportError::Port {
            line: line.number,
            value: shown(text),
        })
}

/// `host:port` for a host name or IP address from the file.
fn host_port(line: &Line, host: &str, port: u16) -> Result<String, ImportError> {
    check_host(line, host)?;
    Ok(bracketed(host, port))
}

/// A host name or IP address: not empty, no spaces or control characters.
fn check_host(line: &Line, host: &str) -> Result<(), ImportError> {
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(value_error(
            line,
            format!("'{}' is not a host name or ip address", shown(host)),
        ));
    }
    Ok(())
}

/// `host:port`, with brackets around an IPv6 address.
fn bracketed(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `bind`'s addresses without their `-` (optional) marks; each must be an IP
/// address or a wildcard (`*`, `::*`).
fn bind_addresses(line: &Line) -> Result<Vec<String>, ImportError> {
    let operands = &line.args[1..];
    if operands.is_empty() {
        return Err(ImportError::Arguments {
            line: line.number,
            usage: "bind <address> ...",
        });
    }
    let addrs: Vec<String> = operands
        .iter()
        .map(|a| a.trim_start_matches('-').to_owned())
        .collect();
    match addrs
        .iter()
        .find(|a| !matches!(a.as_str(), "*" | "::*") && a.parse::<IpAddr>().is_err())
    {
        Some(bad) => Err(value_error(
            line,
            format!("bind address '{}' is not an ip address", shown(bad)),
        )),
        None => Ok(addrs),
    }
}

/// An `announce-ip`: a host peers can connect to.
fn announce_host(line: &Line, host: &str) -> Result<String, ImportError> {
    check_host(line, host)?;
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(value_error(
            line,
            format!("announce-ip {host} is not an address peers can connect to"),
        ));
    }
    Ok(host.to_owned())
}

/// The `N` operands of a directive, or an error naming its form.
fn exactly<'a, const N: usize>(
    line: &Line,
    operands: &'a [String],
    usage: &'static str,
) -> Result<[&'a str; N], ImportError> {
    let refs: Vec<&str> = operands.iter().map(String::as_str).collect();
    refs.try_into().map_err(|_| ImportError::Arguments {
        line: line.number,
        usage,
    })
}

fn value_error(line: &Line, problem: impl Into<String>) -> ImportError {
    ImportError::Value {
        line: line.number,
        problem: problem.into(),
    }
}

/// Text from the file, escaped onto one line for a comment, note or error.
fn shown(text: &str) -> String {
    text.escape_debug().to_string()
}

fn join_numbers(numbers: &[usize]) -> String {
    let list: Vec<String> = numbers.iter().map(usize::to_string).collect();
    list.join(", ")
}

// ---------------------------------------------------------------------------
// Notes

/// Notes in the order first seen; lines with the same note share it.
#[derive(Default)]
struct Notes(Vec<(Vec<usize>, String)>);

impl Notes {
    /// A note about `line`.
    fn add(&mut self, line: usize, text: impl Into<String>) {
        let text = text.into();
        match self.0.iter_mut().find(|(_, t)| *t == text) {
            Some((lines, _)) => lines.push(line),
            None => self.0.push((vec![line], text)),
        }
    }

    /// Orders notes by their first line; notes about the whole file come last.
    fn sort_by_line(&mut self) {
        self.0
            .sort_by_key(|(lines, _)| lines.first().copied().unwrap_or(usize::MAX));
    }

    /// A note about the file as a whole.
    fn general(&mut self, text: impl Into<String>) {
        self.0.push((Vec::new(), text.into()));
    }

    fn render(&self) -> Vec<String> {
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

// ---------------------------------------------------------------------------
// Reading directives

/// A value and the line it came from.
#[derive(Debug, Clone)]
struct Sourced<T> {
    value: T,
    line: usize,
}

/// Directives set once: a later one replaces an earlier one, as in Sentinel.
const SINGLE_VALUED: &[&str] = &[
    "port",
    "bind",
    "sentinel down-after-milliseconds",
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

/// Everything read so far.
struct Draft {
    group: Group,
    down_after_ms: Option<Sourced<u64>>,
    failover_timeout_ms: Option<Sourced<u64>>,
    parallel_syncs: Option<Sourced<u64>>,
    auth_user: Option<Sourced<String>>,
    auth_pass: Option<Sourced<String>>,
    notification_script: Option<Sourced<String>>,
    client_reconfig_script: Option<Sourced<String>>,
    port: Option<Sourced<u16>>,
    bind: Option<Sourced<Vec<String>>>,
    announce_ip: Option<Sourced<String>>,
    announce_port: Option<Sourced<u16>>,
    peers: Vec<Sourced<String>>,
    replicas: Vec<Sourced<String>>,
    /// The line of each single-valued directive seen so far.
    seen: Vec<(&'static str, usize)>,
    notes: Notes,
}

/// The note for Sentinel's own state lines.
const STATE_NOTE: &str = "Sentinel's state (run id, epochs) is not configuration: \
    the proxy has its own run id, keeps its epochs in data_dir and learns the \
    group's current epoch from its peers";

impl Draft {
    fn new(group: Group) -> Draft {
        Draft {
            group,
            down_after_ms: None,
            failover_timeout_ms: None,
            parallel_syncs: None,
            auth_user: None,
            auth_pass: None,
            notification_script: None,
            client_reconfig_script: None,
            port: None,
            bind: None,
            announce_ip: None,
            announce_port: None,
            peers: Vec::new(),
            replicas: Vec::new(),
            seen: Vec::new(),
            notes: Notes::default(),
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
                self.notes.add(line.number, text);
            }
            None => self.seen.push((key, line.number)),
        }
    }

    fn take(&mut self, line: &Line) -> Result<(), ImportError> {
        self.note_repeat(line);
        let operands = &line.args[1..];
        match line.directive().as_str() {
            "sentinel" => return self.take_sentinel(line),
            "port" => {
                let [port] = exactly(line, operands, "port <port>")?;
                self.port = at(parse_port(line, port)?, line);
            }
            "bind" => self.bind = at(bind_addresses(line)?, line),
            other => self.notes.add(line.number, top_level_note(other)),
        }
        Ok(())
    }

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
                self.down_after_ms = at(self.group_number(line, &DOWN_AFTER)?, line);
            }
            "failover-timeout" => {
                self.failover_timeout_ms = at(self.group_number(line, &FAILOVER_TIMEOUT)?, line);
            }
            "parallel-syncs" => {
                self.parallel_syncs = at(self.group_number(line, &PARALLEL_SYNCS)?, line);
            }
            "auth-user" => {
                let usage = "sentinel auth-user <name> <user>";
                self.auth_user = at(self.group_value(line, usage)?, line);
            }
            "auth-pass" => {
                let usage = "sentinel auth-pass <name> <password>";
                self.auth_pass = at(self.group_value(line, usage)?, line);
            }
            "notification-script" => {
                let usage = "sentinel notification-script <name> <path>";
                self.notification_script = at(self.group_value(line, usage)?, line);
            }
            "client-reconfig-script" => {
                let usage = "sentinel client-reconfig-script <name> <path>";
                self.client_reconfig_script = at(self.group_value(line, usage)?, line);
            }
            "announce-ip" => {
                let [ip] = exactly(line, &line.args[2..], "sentinel announce-ip <ip>")?;
                // Empty is Sentinel's "not set".
                let ip = if ip.is_empty() {
                    String::new()
                } else {
                    announce_host(line, ip)?
                };
                self.announce_ip = at(ip, line);
            }
            "announce-port" => {
                let [port] = exactly(line, &line.args[2..], "sentinel announce-port <port>")?;
                // 0 is Sentinel's "not set".
                let port = if port == "0" {
                    0
                } else {
                    parse_port(line, port)?
                };
                self.announce_port = at(port, line);
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
            "master-reboot-down-after-period" => {
                let usage = "sentinel master-reboot-down-after-period <name> <milliseconds>";
                self.group_operands::<2>(line, usage)?;
                "`sentinel master-reboot-down-after-period` is not supported by the proxy; ignored"
                    .to_owned()
            }
            other => sentinel_note(other),
        };
        self.notes.add(line.number, note);
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
        if name != self.group.name {
            return Err(ImportError::OtherMaster {
                line: line.number,
                directive: line.sub_directive().unwrap_or_default(),
                name: shown(name),
                monitored: shown(&self.group.name),
            });
        }
        Ok(operands)
    }

    /// The value of a `<name> <value>` group directive.
    fn group_value(&self, line: &Line, usage: &'static str) -> Result<String, ImportError> {
        let [_, value] = self.group_operands(line, usage)?;
        Ok(value.to_owned())
    }

    fn group_number(&self, line: &Line, key: &NumberKey) -> Result<u64, ImportError> {
        let [_, value] = self.group_operands(line, key.usage)?;
        parse_number(line, key, value)
    }

    fn take_known_sentinel(&mut self, line: &Line) -> Result<(), ImportError> {
        let [_, host, port, _run_id] = self.group_operands(
            line,
            "sentinel known-sentinel <name> <host> <port> <run-id>",
        )?;
        let addr = host_port(line, host, parse_port(line, port)?)?;
        match self.peers.iter().find(|p| p.value == addr) {
            Some(earlier) => {
                let text = format!("repeats the peer of line {}; listed once", earlier.line);
                self.notes.add(line.number, text);
            }
            None => self.peers.push(Sourced {
                value: addr,
                line: line.number,
            }),
        }
        Ok(())
    }

    fn take_known_replica(&mut self, line: &Line) -> Result<(), ImportError> {
        let [_, host, port] =
            self.group_operands(line, "sentinel known-replica <name> <host> <port>")?;
        let addr = host_port(line, host, parse_port(line, port)?)?;
        self.replicas.push(Sourced {
            value: addr,
            line: line.number,
        });
        Ok(())
    }
}

/// Why renamed commands are not carried over.
const RENAME_NOTE: &str = "`sentinel rename-command` is not supported: the proxy \
    sends commands such as CONFIG and REPLICAOF under their own names, so a \
    server that renamed them will refuse its failover steps";

/// The note for a top-level directive other than `sentinel`, `port` and `bind`.
fn top_level_note(directive: &str) -> String {
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
        tls if tls.starts_with("tls-") => "the proxy does not speak TLS",
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
fn sentinel_note(sub: &str) -> String {
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

// ---------------------------------------------------------------------------
// The settings to write

/// A `key = value` line and its comment; `active` false writes it commented out.
struct Entry {
    comment: String,
    key: &'static str,
    value: String,
    active: bool,
}

/// What the TOML will say.
struct Plan {
    entries: Vec<Entry>,
    peers: Vec<Sourced<String>>,
    replicas: Vec<Sourced<String>>,
    notes: Notes,
}

/// Masters whose address is the proxy's default `listen` (127.0.0.1:6379).
const LISTEN_DEFAULTS: [&str; 3] = ["127.0.0.1:6379", "localhost:6379", "[::1]:6379"];

/// `sentinel.conf line N`, for a comment.
fn from_line(line: usize) -> String {
    format!("sentinel.conf line {line}")
}

/// A string as a TOML value (quoted and escaped by the `toml` crate).
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

impl Draft {
    fn plan(mut self) -> Plan {
        let mut plan = Plan {
            entries: Vec::new(),
            peers: Vec::new(),
            replicas: Vec::new(),
            notes: std::mem::take(&mut self.notes),
        };
        self.plan_group(&mut plan);
        self.plan_ports(&mut plan);
        self.plan_auth(&mut plan);
        self.plan_scripts(&mut plan);
        self.plan_suggestions(&mut plan);
        self.plan_voters(&mut plan);
        plan.notes.sort_by_line();
        plan
    }

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
        plan.entries.extend([
            timing(
                "No valid reply for this long marks a node down",
                "down_after_ms",
                &self.down_after_ms,
                SENTINEL_DOWN_AFTER_MS,
                "5000",
            ),
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

    fn plan_ports(&self, plan: &mut Plan) {
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
    }

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

/// The address `sentinel_listen` uses, from `bind`'s list.
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

// ---------------------------------------------------------------------------
// Writing TOML

const HEADER: &str = "\
# converted from sentinel.conf by sentinel-proxy import-sentinel-conf
#
# The proxy's built-in sentinel core takes the place of the Sentinel that used
# that file: stop it before the proxy takes its port. Check this file with
# `sentinel-proxy check-config -c FILE`; the notes at the end say what was not
# carried over.
";

fn render(plan: &Plan, notes: &[String]) -> String {
    let mut out = String::from(HEADER);
    for entry in &plan.entries {
        out.push('\n');
        comment(&mut out, &entry.comment);
        let hash = if entry.active { "" } else { "# " };
        out.push_str(&format!("{hash}{} = {}\n", entry.key, entry.value));
    }
    render_peers(&mut out, &plan.peers);
    render_replicas(&mut out, &plan.replicas);
    render_notes(&mut out, notes);
    out
}

fn render_peers(out: &mut String, peers: &[Sourced<String>]) {
    out.push('\n');
    if peers.is_empty() {
        comment(
            out,
            "The group's other voters (Sentinels or proxies); sentinel.conf knew none: list them.",
        );
        out.push_str("peer = []\n");
        return;
    }
    let lines: Vec<usize> = peers.iter().map(|p| p.line).collect();
    comment(
        out,
        &format!(
            "The group's other voters, who with this proxy elect a failover's leader: the Sentinels this one knew (known-sentinel, sentinel.conf lines {}).",
            join_numbers(&lines)
        ),
    );
    out.push_str("peer = [\n");
    for peer in peers {
        out.push_str(&format!("    {},\n", toml_string(&peer.value)));
    }
    out.push_str("]\n");
}

fn render_replicas(out: &mut String, replicas: &[Sourced<String>]) {
    if replicas.is_empty() {
        return;
    }
    out.push('\n');
    comment(
        out,
        "Replicas Sentinel knew (known-replica); the proxy finds them from the master's INFO:",
    );
    for replica in replicas {
        comment(
            out,
            &format!("  {} ({})", replica.value, from_line(replica.line)),
        );
    }
}

fn render_notes(out: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    out.push('\n');
    comment(out, "Notes:");
    for note in notes {
        comment(out, &format!("- {note}"));
    }
}

/// Appends `# text`, escaped onto one line.
fn comment(out: &mut String, text: &str) {
    out.push_str("# ");
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings, Source};

    const MINIMAL: &str = include_str!("../config/sentinel-conf/minimal.conf");
    const REWRITTEN: &str = include_str!("../config/sentinel-conf/rewritten-by-redis.conf");
    const AUTH: &str = include_str!("../config/sentinel-conf/auth-announce-quoted.conf");

    /// Converts, parses the TOML as the proxy would, and validates it.
    fn round_trip(conf: &str) -> (Imported, Settings) {
        let out = convert(conf).expect("converts");
        let settings: Settings = toml::from_str(&out.toml)
            .unwrap_or_else(|e| panic!("output is not valid config: {e}\n{}", out.toml));
        let mut checked = settings.clone();
        // Script paths are checked for executability at load; the samples' do
        // not exist on this machine.
        checked.notification_script = None;
        checked.client_reconfig_script = None;
        if let Err(e) = Config::from_settings(checked) {
            panic!("output does not validate: {e}\n{}", out.toml);
        }
        (out, settings)
    }

    fn err(conf: &str) -> String {
        convert(conf).expect_err("must fail").to_string()
    }

    fn split(line: &str) -> Result<Vec<String>, QuoteError> {
        split_args(line)
    }

    #[test]
    fn minimal_sample_gets_sentinel_defaults() {
        let (out, s) = round_trip(MINIMAL);
        assert_eq!(s.master_name.as_deref(), Some("mymaster"));
        assert_eq!(s.master.as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(s.quorum, Some(2));
        assert_eq!(s.down_after_ms, Some(10_000));
        assert_eq!(s.failover_timeout_ms, Some(SENTINEL_FAILOVER_TIMEOUT_MS));
        assert_eq!(s.parallel_syncs, Some(1));
        assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:26379"));
        assert!(s.peers.is_empty() && s.announce.is_none() && s.auth_pass.is_none());
        assert!(s.data_dir.is_none() && s.listen.is_none());
        assert!(out.toml.starts_with(
            "# converted from sentinel.conf by sentinel-proxy import-sentinel-conf\n"
        ));
        assert!(
            out.toml
                .contains("# data_dir = \"/var/lib/sentinel-proxy\"")
        );
        assert_eq!(out.notes.len(), 2, "{:?}", out.notes);
        assert_eq!(
            out.notes[0],
            "line 4: the master's address is the proxy's default listen address: set listen to another one"
        );
        assert_eq!(
            out.notes[1],
            "quorum 2 needs 2 voters, but the file gives only this proxy: list the group's \
             other Sentinels (or proxies) as peers, or no failover can happen"
        );
    }

    #[test]
    fn redis_rewritten_sample_keeps_voters_and_drops_state() {
        let (out, s) = round_trip(REWRITTEN);
        assert_eq!(s.master.as_deref(), Some("127.0.0.1:16391"));
        assert_eq!(s.quorum, Some(2));
        assert_eq!(s.down_after_ms, Some(5000));
        assert_eq!(s.failover_timeout_ms, Some(60_000));
        assert_eq!(s.sentinel_listen.as_deref(), Some("127.0.0.1:26390"));
        assert_eq!(s.peers, ["127.0.0.1:26391", "127.0.0.1:26392"]);
        assert!(out.toml.contains("#   127.0.0.1:16392 (sentinel.conf line"));
        assert!(out.toml.contains("#   127.0.0.1:16390 (sentinel.conf line"));
        let state: Vec<&String> = out.notes.iter().filter(|n| n.contains("epochs")).collect();
        assert_eq!(
            state.len(),
            1,
            "state lines share one note: {:?}",
            out.notes
        );
        assert!(
            state[0].starts_with("lines 20, 21, 22, 23: "),
            "{}",
            state[0]
        );
        for directive in ["daemonize", "logfile", "dir", "protected-mode", "user"] {
            assert!(
                out.notes
                    .iter()
                    .any(|n| n.contains(&format!("`{directive}`"))),
                "no note for {directive}: {:?}",
                out.notes
            );
        }
        assert!(out.notes.iter().all(|n| !n.starts_with("quorum")));
    }

    #[test]
    fn auth_sample_unquotes_and_keeps_secrets_out_of_notes() {
        let (out, s) = round_trip(AUTH);
        assert_eq!(s.master_name.as_deref(), Some("cache-eu"));
        assert_eq!(s.master.as_deref(), Some("192.0.2.10:6379"));
        assert_eq!(s.down_after_ms, Some(3000));
        assert_eq!(s.failover_timeout_ms, Some(30_000));
        assert_eq!(s.parallel_syncs, Some(2));
        assert_eq!(s.auth_user.as_deref(), Some("sentinel-proxy"));
        assert_eq!(s.auth_pass.as_deref(), Some("p@ss \"word\" #1!"));
        assert_eq!(s.announce.as_deref(), Some("192.0.2.21:36379"));
        assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:26379"));
        assert_eq!(s.peers, ["192.0.2.22:26379", "192.0.2.23:26379"]);
        assert_eq!(
            s.client_reconfig_script.as_deref(),
            Some(std::path::Path::new(
                "/opt/redis/scripts/client reconfig.sh"
            ))
        );
        assert!(
            s.requirepass.is_none(),
            "the Sentinel port's password stays behind"
        );
        let notes = out.notes.join("\n");
        for secret in ["p@ss", "peer secret", "sentinel-admin-secret"] {
            assert!(!notes.contains(secret), "{secret} leaked into {notes}");
        }
        for directive in [
            "requirepass",
            "sentinel sentinel-pass",
            "sentinel rename-command",
        ] {
            assert!(notes.contains(&format!("`{directive}`")), "{notes}");
        }
    }

    #[test]
    fn every_note_is_also_a_comment() {
        for sample in [MINIMAL, REWRITTEN, AUTH] {
            let out = convert(sample).expect("converts");
            for note in &out.notes {
                assert!(out.toml.contains(&format!("# - {note}\n")), "{note}");
            }
        }
    }

    #[test]
    fn malformed_files_give_one_clear_error() {
        assert_eq!(
            err("port 26379\n"),
            "no `sentinel monitor <name> <host> <port> <quorum>` line: the proxy needs the group it fronts"
        );
        assert_eq!(
            err("sentinel monitor a 127.0.0.1 6379 2\n\nsentinel monitor b 127.0.0.1 6380 2\n"),
            "lines 1, 3: several `sentinel monitor` lines, but the proxy fronts one group: keep one per converted file"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 70000 2\n"),
            "line 1: bad port '70000' (1 to 65535)"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6380 2\nport 0\n"),
            "line 2: bad port '0' (1 to 65535)"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6380 2\nsentinel down-after-milliseconds m 5s\n"),
            "line 2: bad number '5s' for down-after-milliseconds (10 to 86400000)"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6380 0\n"),
            "line 1: bad number '0' for quorum (1 to 100)"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6380 2\nsentinel auth-pass m \"secret\n"),
            "line 2: unbalanced quotes"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6380 2\nsentinel failover-timeout other 1000\n"),
            "line 2: `sentinel failover-timeout` is for master 'other', but the monitored group is 'm'"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6379\n"),
            "line 1: wrong number of arguments, expected `sentinel monitor <name> <host> <port> <quorum>`"
        );
        assert_eq!(
            err("sentinel monitor m 127.0.0.1 6380 2\nsentinel known-sentinel m 127.0.0.1 26380\n"),
            "line 2: wrong number of arguments, expected `sentinel known-sentinel <name> <host> <port> <run-id>`"
        );
    }

    #[test]
    fn errors_are_one_lowercase_line() {
        let cases = [
            "sentinel monitor \"m\nx\" 127.0.0.1 6379 2\nsentinel parallel-syncs other 1\n",
            "sentinel monitor m \"\" 6379 2\n",
            "sentinel monitor m 127.0.0.1 6380 2\nsentinel\n",
            "sentinel monitor m 127.0.0.1 6380 2\nbind\n",
        ];
        for case in cases {
            let message = err(case);
            assert!(!message.contains('\n'), "{message}");
            assert!(message.starts_with("line "), "{message}");
        }
    }

    #[test]
    fn directive_names_are_case_insensitive_and_comments_ignored() {
        let conf = "  # comment\r\n\r\nSENTINEL Monitor m 127.0.0.1 6380 1\r\n\
                    Sentinel DOWN-AFTER-MILLISECONDS m 1234\r\nPORT 26400\r\n";
        let (out, s) = round_trip(conf);
        assert_eq!(s.down_after_ms, Some(1234));
        assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:26400"));
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }

    #[test]
    fn host_names_and_ipv6_are_kept_as_given() {
        let conf = "sentinel resolve-hostnames yes\nsentinel monitor m localhost 6379 1\n\
                    sentinel known-sentinel m ::1 26380 abc\nbind ::1\n";
        let (out, s) = round_trip(conf);
        assert_eq!(s.master.as_deref(), Some("localhost:6379"));
        assert_eq!(s.peers, ["[::1]:26380"]);
        assert_eq!(s.sentinel_listen.as_deref(), Some("[::1]:26379"));
        assert!(out.notes[0].starts_with("line 1: `sentinel resolve-hostnames`"));
    }

    #[test]
    fn odd_values_cannot_break_out_of_comments() {
        let conf = "\"evil\\nmaster = 1\" x\nsentinel monitor m 127.0.0.1 6380 1\n";
        let (out, _) = round_trip(conf);
        assert!(out.toml.contains("`evil\\nmaster = 1`"), "{}", out.toml);
        assert!(out.toml.lines().all(|l| l.is_empty()
            || l.starts_with('#')
            || l.contains(" = ")
            || l.starts_with("    ")
            || l == "]"));
    }

    #[test]
    fn awkward_strings_survive_toml_escaping() {
        let pass = "a'b\"c\\d\ne\u{1}f'''g\"\"\"";
        let quoted = format!(
            "\"{}\"",
            pass.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
                .replace('\u{1}', "\\x01")
        );
        let conf = format!(
            "sentinel monitor m 127.0.0.1 6380 1\nsentinel auth-pass m {quoted}\n\
             sentinel auth-user m 'o\\'brien'\n"
        );
        let (_, s) = round_trip(&conf);
        assert_eq!(s.auth_pass.as_deref(), Some(pass));
        assert_eq!(s.auth_user.as_deref(), Some("o'brien"));
    }

    #[test]
    fn repeats_and_duplicates_are_noted() {
        let conf = "sentinel monitor m 127.0.0.1 6380 2\n\
                    sentinel down-after-milliseconds m 1000\n\
                    sentinel down-after-milliseconds m 2000\n\
                    sentinel known-sentinel m 127.0.0.1 26380 a\n\
                    sentinel known-sentinel m 127.0.0.1 26380 b\n";
        let (out, s) = round_trip(conf);
        assert_eq!(s.down_after_ms, Some(2000));
        assert_eq!(s.peers, ["127.0.0.1:26380"]);
        assert!(
            out.notes
                .iter()
                .any(|n| n.starts_with("line 3: `sentinel down-after-milliseconds` repeats line 2"))
        );
        assert!(
            out.notes
                .iter()
                .any(|n| n.starts_with("line 5: repeats the peer of line 4"))
        );
    }

    #[test]
    fn auth_user_without_pass_and_announce_port_alone_are_noted() {
        let conf = "sentinel monitor m 127.0.0.1 6380 1\nsentinel auth-user m bob\n\
                    sentinel announce-port 36379\n";
        let (out, s) = round_trip(conf);
        assert!(s.auth_user.is_none() && s.announce.is_none());
        assert!(out.toml.contains("# announce = \"HOST:36379\""));
        assert_eq!(out.notes.len(), 2, "{:?}", out.notes);
    }

    #[test]
    fn bind_picks_one_address() {
        let conf = "sentinel monitor m 127.0.0.1 6380 1\nbind 127.0.0.1 -::1\n";
        let (out, s) = round_trip(conf);
        assert_eq!(s.sentinel_listen.as_deref(), Some("127.0.0.1:26379"));
        assert_eq!(out.notes.len(), 1);
        let (_, s) = round_trip("sentinel monitor m 127.0.0.1 6380 1\nbind * -::*\nport 1\n");
        assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:1"));
    }

    #[test]
    fn tokenizer_splits_like_redis() {
        let ok = |line: &str| split(line).expect("splits");
        assert_eq!(ok("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(ok("  padded  "), ["padded"]);
        assert_eq!(ok("\"\" ''"), ["", ""]);
        assert_eq!(ok(r#""a b" 'c d'"#), ["a b", "c d"]);
        assert_eq!(ok(r#""\n\t\"\\\x41\x7a""#), ["\n\t\"\\Az"]);
        assert_eq!(ok(r#""\xc3\xa9""#), ["é"]);
        assert_eq!(
            ok(r#""\xzz\q""#),
            ["xzzq"],
            "not an escape: the letter itself"
        );
        assert_eq!(ok(r"'it\'s' 'a\nb'"), ["it's", "a\\nb"]);
        assert_eq!(ok("pre\"fix\" x"), ["prefix", "x"]);
        assert_eq!(ok("a#b"), ["a#b"]);
    }

    #[test]
    fn tokenizer_rejects_bad_quotes() {
        assert_eq!(split("\"open"), Err(QuoteError::Unbalanced));
        assert_eq!(split("'open"), Err(QuoteError::Unbalanced));
        assert_eq!(split("\"ends in escape\\"), Err(QuoteError::Unbalanced));
        assert_eq!(split("'it\\'"), Err(QuoteError::Unbalanced));
        assert_eq!(split("\"a\"b"), Err(QuoteError::Glued));
        assert_eq!(split("'a''b'"), Err(QuoteError::Glued));
        assert_eq!(split("\"\\xff\""), Err(QuoteError::NotUtf8));
    }

    #[test]
    fn output_runs_the_sentinel_core() {
        let (_, s) = round_trip(AUTH);
        let config = Config::from_settings(Settings {
            notification_script: None,
            client_reconfig_script: None,
            ..s
        })
        .expect("valid");
        assert!(matches!(config.source, Source::Core(_)));
    }
}

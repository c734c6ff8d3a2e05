//! Parses the `INFO` reply of a redis-server: the fields Sentinel uses to learn
//! a node's run id, role, replication offset, and (from a master) its replicas.
//!
//! Parsing is total: any text gives an [`InfoReport`], never an error or a panic.
//! Unknown keys and section headers (`# Replication`) are ignored; a malformed
//! number is skipped, so its field keeps its default; a `slaveN:` line without a
//! usable `ip` and `port` is skipped. This module does no I/O and draws no
//! conclusions (whether a replica is fit to promote is `select`'s business).
//!
//! The core reads it for: the run id (a change is a restart, `+reboot`), the
//! role (SDOWN of a master that says `slave`, the promotion of a replica),
//! the replicas a master lists (discovery), and a replica's master, link,
//! offset and priority (its correction and its selection).
//!
//! Where this parser differs from Sentinel's:
//! * a malformed number keeps its default, where Sentinel's `atoi` reads 0:
//!   a garbled `slave_priority` is 100 here, "never promote" in Sentinel;
//! * the pre-2.8 `slaveN:<ip>,<port>,<state>` form of a master's replica
//!   lines is skipped (Sentinel still reads it);
//! * `replica_priority:` is read as well as `slave_priority:`.
//!
//! Invariants:
//! * `run_id`, when present, is 40 hex characters;
//! * `role` is [`ReportedRole::Unknown`] unless the last `role:` line says
//!   `master` or `slave`; the replica fields are read wherever they appear;
//! * every [`ReplicaLine`] has a non-empty `ip` and a port in `1..=65535`.

use std::time::Duration;

use super::hello::is_run_id;

/// Sentinel's default `replica-priority` when a replica does not report one.
pub const DEFAULT_PRIORITY: u32 = 100;

/// What one `INFO` reply says about the node that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoReport {
    /// `run_id:` from the server section; `None` if absent or not 40 hex characters.
    pub run_id: Option<String>,
    /// `role:` and, for a replica, its view of its master.
    pub role: ReportedRole,
    /// `master_repl_offset:` (0 if absent).
    pub master_repl_offset: u64,
    /// The `slaveN:` lines a master lists, in the order given.
    pub replicas: Vec<ReplicaLine>,
}

/// The role a node reports for itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportedRole {
    /// `role:master`.
    Master,
    /// `role:slave`, with what the replica says about its link to its master.
    Replica(ReplicaState),
    /// No `role:` line, or one with another value.
    Unknown,
}

/// A replica's own account of its replication, from its `INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// `master_host:` (empty if absent).
    pub master_host: String,
    /// `master_port:` (0 if absent or malformed).
    pub master_port: u16,
    /// `master_link_status:up`.
    pub link_up: bool,
    /// `master_link_down_since_seconds:`; `None` if absent or `-1` (never
    /// connected). Redis 7 prints it only while the link is down.
    pub link_down_since: Option<Duration>,
    /// `slave_repl_offset:`, the replication offset (0 if absent).
    pub offset: u64,
    /// `slave_priority:` or `replica_priority:` (default 100); 0 means never promote.
    pub priority: u32,
    /// `replica_announced:` (default true); an unannounced replica is hidden
    /// from Sentinel's clients.
    pub announced: bool,
}

/// One `slaveN:ip=…,port=…,state=…,offset=…,lag=…` line from a master's `INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLine {
    /// `ip=` as the master sees (or the replica announces) it.
    pub ip: String,
    /// `port=`, the replica's listening port.
    pub port: u16,
    /// `state=online` (as opposed to `wait_bgsave`, `send_bulk`, …).
    pub online: bool,
    /// `offset=`, the offset the replica acknowledged (0 if absent or malformed).
    pub offset: u64,
    /// `lag=`: seconds since the replica last acknowledged (Redis's measure
    /// of replica lag, as `min-replicas-max-lag` uses it); `None` if absent.
    pub lag: Option<u64>,
}

impl Default for ReplicaState {
    /// What a replica's `INFO` that names none of the fields means: no
    /// master, link down, offset 0, Sentinel's default priority, announced.
    fn default() -> Self {
        ReplicaState {
            master_host: String::new(),
            master_port: 0,
            link_up: false,
            link_down_since: None,
            offset: 0,
            priority: DEFAULT_PRIORITY,
            announced: true,
        }
    }
}

/// Parses an `INFO` reply (any sections; lines end with `\r\n`, `\n` also works).
///
/// Each line that is not a `#` header splits at its first `:` into key and
/// value; a later line for the same field overwrites an earlier one, while
/// `slaveN:` lines accumulate. The replica fields are read into one
/// [`ReplicaState`] whatever the role and kept only if the last `role:` line
/// says `slave`. A negative `master_link_down_since_seconds`
/// (`-1`: never connected) reads as `None`.
pub fn parse(text: &str) -> InfoReport {
    let mut run_id = None;
    let mut role = None::<bool>; // Some(true) = master, Some(false) = replica
    let mut master_repl_offset = 0;
    let mut replicas = Vec::new();
    let mut replica = ReplicaState::default();

    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        // Keys never contain ':'; values may (an IPv6 master_host).
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "run_id" if is_run_id(value) => run_id = Some(value.to_owned()),
            "role" => {
                role = match value {
                    "master" => Some(true),
                    "slave" => Some(false),
                    _ => None,
                }
            }
            "master_repl_offset" => set(&mut master_repl_offset, value),
            "master_host" => replica.master_host = value.to_owned(),
            "master_port" => set(&mut replica.master_port, value),
            "master_link_status" => replica.link_up = value == "up",
            "master_link_down_since_seconds" => {
                replica.link_down_since = value
                    .parse::<i64>()
                    .ok()
                    .and_then(|secs| u64::try_from(secs).ok())
                    .map(Duration::from_secs);
            }
            "slave_repl_offset" => set(&mut replica.offset, value),
            "slave_priority" | "replica_priority" => set(&mut replica.priority, value),
            "replica_announced" => match value {
                "1" => replica.announced = true,
                "0" => replica.announced = false,
                _ => {}
            },
            _ if is_replica_key(key) => replicas.extend(parse_replica_line(value)),
            _ => {}
        }
    }

    InfoReport {
        run_id,
        role: match role {
            Some(true) => ReportedRole::Master,
            Some(false) => ReportedRole::Replica(replica),
            None => ReportedRole::Unknown,
        },
        master_repl_offset,
        replicas,
    }
}

/// Stores `value` parsed into `field`, leaving `field` unchanged if malformed.
///
/// `T`'s own `FromStr` decides: unsigned types refuse a sign, and `u16`
/// refuses anything above 65535.
fn set<T: std::str::FromStr>(field: &mut T, value: &str) {
    if let Ok(v) = value.parse() {
        *field = v;
    }
}

/// `slave0`, `slave12`, …: the keys a master lists its replicas under.
fn is_replica_key(key: &str) -> bool {
    key.strip_prefix("slave")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses `ip=…,port=…,state=…,offset=…,lag=…`; `None` without a non-empty `ip`
/// and a `port` in `1..=65535`.
///
/// Pairs may come in any order; unknown ones and pairs without `=` are
/// ignored, and a repeated key's last value wins.
fn parse_replica_line(value: &str) -> Option<ReplicaLine> {
    let mut ip = None;
    let mut port = None;
    let mut online = false;
    let mut offset = 0;
    let mut lag = None;
    for pair in value.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        match k {
            "ip" if !v.is_empty() => ip = Some(v.to_owned()),
            "port" => port = v.parse::<u16>().ok().filter(|&p| p != 0),
            "state" => online = v == "online",
            "offset" => set(&mut offset, v),
            "lag" => lag = v.parse().ok(),
            _ => {}
        }
    }
    Some(ReplicaLine {
        ip: ip?,
        port: port?,
        online,
        offset,
        lag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The three replies below were captured from redis-server 7.0.15 (`INFO`),
    // keeping a few sections and dropping lines irrelevant here.

    /// A master with one online replica.
    const MASTER_INFO: &str = "\
# Server\r\n\
redis_version:7.0.15\r\n\
process_id:23981\r\n\
run_id:9a67f7adce963a872aa306ea3fe3160bc33d3082\r\n\
tcp_port:16379\r\n\
uptime_in_seconds:12\r\n\
\r\n\
# Clients\r\n\
connected_clients:3\r\n\
\r\n\
# Replication\r\n\
role:master\r\n\
connected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=16380,state=online,offset=757,lag=0\r\n\
master_failover_state:no-failover\r\n\
master_replid:998d602ebbfce552b66d2efbab53ba457bcc0eb5\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:757\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:757\r\n\
\r\n\
# Keyspace\r\n\
db0:keys=1,expires=0,avg_ttl=0\r\n";
    /// That master's replica, its link up and in sync.
    const REPLICA_INFO: &str = "\
# Server\r\n\
redis_version:7.0.15\r\n\
process_id:23993\r\n\
run_id:7abd20de715ec32e099ad231bbb65a04bd10533c\r\n\
tcp_port:16380\r\n\
uptime_in_seconds:11\r\n\
\r\n\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.1\r\n\
master_port:16379\r\n\
master_link_status:up\r\n\
master_last_io_seconds_ago:1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:757\r\n\
slave_repl_offset:757\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:998d602ebbfce552b66d2efbab53ba457bcc0eb5\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:757\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:319\r\n\
repl_backlog_histlen:439\r\n\
\r\n\
# Keyspace\r\n\
db0:keys=1,expires=0,avg_ttl=0\r\n";
    /// The same replica with its link to the master down for 4 s.
    const REPLICA_LINK_DOWN_INFO: &str = "\
# Server\r\n\
redis_version:7.0.15\r\n\
process_id:23993\r\n\
run_id:7abd20de715ec32e099ad231bbb65a04bd10533c\r\n\
tcp_port:16380\r\n\
uptime_in_seconds:31\r\n\
\r\n\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.1\r\n\
master_port:16379\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:1843\r\n\
slave_repl_offset:1843\r\n\
master_link_down_since_seconds:4\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:998d602ebbfce552b66d2efbab53ba457bcc0eb5\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:1843\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:319\r\n\
repl_backlog_histlen:1525\r\n";

    /// The replica state of `report`, panicking if it is not a replica's.
    fn replica(report: &InfoReport) -> &ReplicaState {
        match &report.role {
            ReportedRole::Replica(state) => state,
            other => panic!("expected a replica, got {other:?}"),
        }
    }

    /// A real master's `INFO`: run id, role, offset and its replica line.
    #[test]
    fn parses_a_master() {
        let report = parse(MASTER_INFO);
        assert_eq!(
            report,
            InfoReport {
                run_id: Some("9a67f7adce963a872aa306ea3fe3160bc33d3082".into()),
                role: ReportedRole::Master,
                master_repl_offset: 757,
                replicas: vec![ReplicaLine {
                    ip: "127.0.0.1".into(),
                    port: 16380,
                    online: true,
                    offset: 757,
                    lag: Some(0),
                }],
            }
        );
    }

    /// A real replica's `INFO`, link up: every replica field, no down time.
    #[test]
    fn parses_a_replica_with_its_link_up() {
        let report = parse(REPLICA_INFO);
        assert_eq!(
            report.run_id.as_deref(),
            Some("7abd20de715ec32e099ad231bbb65a04bd10533c")
        );
        assert_eq!(report.master_repl_offset, 757);
        assert!(report.replicas.is_empty());
        assert_eq!(
            replica(&report),
            &ReplicaState {
                master_host: "127.0.0.1".into(),
                master_port: 16379,
                link_up: true,
                link_down_since: None,
                offset: 757,
                priority: 100,
                announced: true,
            }
        );
    }

    /// A replica whose link is down reports how long for.
    #[test]
    fn parses_a_replica_whose_link_is_down() {
        let report = parse(REPLICA_LINK_DOWN_INFO);
        let state = replica(&report);
        assert!(!state.link_up);
        assert_eq!(state.link_down_since, Some(Duration::from_secs(4)));
        assert_eq!(state.offset, 1843);
        assert_eq!(state.master_port, 16379);
    }

    /// `master_link_down_since_seconds:-1` (never connected) reads as no
    /// down time, which the core uses (with offset 0) to refuse promoting it.
    #[test]
    fn a_replica_that_never_connected_has_no_link_down_time() {
        // As Redis 7.0.15 prints it right after REPLICAOF, before the first sync.
        let text = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:16379\r\n\
                    master_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n\
                    master_sync_in_progress:0\r\nslave_read_repl_offset:1\r\n\
                    slave_repl_offset:1\r\nmaster_link_down_since_seconds:-1\r\n\
                    slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\n";
        let report = parse(text);
        let state = replica(&report);
        assert!(!state.link_up);
        assert_eq!(state.link_down_since, None);
        assert_eq!(state.offset, 1);
        assert_eq!(report.run_id, None);
    }

    /// Replica lines count whatever their state, IPv6 addresses included.
    #[test]
    fn a_master_lists_replicas_that_are_still_syncing() {
        let text = "role:master\r\n\
                    slave0:ip=127.0.0.1,port=16380,state=wait_bgsave,offset=0,lag=0\r\n\
                    slave1:ip=::1,port=16381,state=online,offset=9,lag=1\r\n";
        let report = parse(text);
        assert_eq!(
            report.replicas,
            vec![
                ReplicaLine {
                    ip: "127.0.0.1".into(),
                    port: 16380,
                    online: false,
                    offset: 0,
                    lag: Some(0),
                },
                ReplicaLine {
                    ip: "::1".into(),
                    port: 16381,
                    online: true,
                    offset: 9,
                    lag: Some(1),
                },
            ]
        );
    }

    /// Lines without a usable `ip` and `port`, in the old comma form, or
    /// under a key that is not `slave<digits>` are skipped; a bad offset is 0.
    #[test]
    fn replica_lines_without_ip_or_port_are_skipped() {
        let text = "role:master\r\n\
                    slave0:port=16380,state=online,offset=1,lag=0\r\n\
                    slave1:ip=10.0.0.1,state=online,offset=1,lag=0\r\n\
                    slave2:ip=10.0.0.1,port=70000,state=online,offset=1,lag=0\r\n\
                    slave3:ip=,port=1,state=online\r\n\
                    slave6:ip=10.0.0.1,port=0,state=online\r\n\
                    slave4:10.0.0.1,16380,online\r\n\
                    slaves:ip=10.0.0.1,port=1\r\n\
                    slave5:ip=10.0.0.2,port=16380,state=online,offset=bad\r\n";
        let report = parse(text);
        assert_eq!(
            report.replicas,
            vec![ReplicaLine {
                ip: "10.0.0.2".into(),
                port: 16380,
                online: true,
                offset: 0,
                lag: None,
            }]
        );
    }

    /// Every malformed number, and a short run id, leaves the default.
    #[test]
    fn malformed_numbers_keep_their_defaults() {
        let text = "run_id:short\r\nrole:slave\r\nmaster_port:99999\r\nslave_repl_offset:-5\r\n\
                    slave_priority:high\r\nreplica_announced:maybe\r\n\
                    master_link_down_since_seconds:soon\r\nmaster_repl_offset:x\r\n";
        let report = parse(text);
        assert_eq!(report.run_id, None);
        assert_eq!(report.master_repl_offset, 0);
        assert_eq!(replica(&report), &ReplicaState::default());
    }

    /// `replica_priority`, `replica_announced:0`, and an IPv6 master host
    /// whose value contains `:`.
    #[test]
    fn reads_replica_priority_and_announced() {
        let text = "role:slave\nreplica_priority:0\nreplica_announced:0\nmaster_host:::1\n";
        let report = parse(text);
        let state = replica(&report);
        assert_eq!(state.priority, 0);
        assert!(!state.announced);
        assert_eq!(state.master_host, "::1");
    }

    /// Text that is not an `INFO` reply parses to an empty report.
    #[test]
    fn garbage_has_an_unknown_role() {
        for text in [
            "",
            "\r\n",
            "hello",
            "role:sentinel\r\n",
            ":::\r\n#\r\n",
            "\u{0}\u{fffd}",
        ] {
            let report = parse(text);
            assert_eq!(report.role, ReportedRole::Unknown, "{text:?}");
            assert_eq!(report.run_id, None);
            assert!(report.replicas.is_empty());
        }
    }

    proptest! {
        /// Parsing is total: any bytes, read as lossy UTF-8.
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        /// Parsing is total on lines with real keys and arbitrary values,
        /// which reach the number and replica-line parsers.
        #[test]
        fn never_panics_on_info_like_lines(lines in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "role", "run_id", "master_host", "master_port", "master_link_status",
                    "master_link_down_since_seconds", "slave_repl_offset", "slave_priority",
                    "replica_announced", "master_repl_offset", "slave0", "# Replication",
                ]),
                proptest::collection::vec(any::<char>(), 0..48),
            ),
            0..24,
        )) {
            let text: String = lines
                .iter()
                .map(|(k, v)| format!("{k}:{}\r\n", v.iter().collect::<String>()))
                .collect();
            let _ = parse(&text);
        }
    }
}

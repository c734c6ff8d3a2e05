//! `redis-sentinel` processes and whole master/replica/sentinel topologies.
//!
//! A sentinel runs from a config file in its own temporary directory (the
//! file must stay writable: Sentinel rewrites it with what it learns). The
//! binary is `redis-sentinel` from `PATH` unless `REDIS_SENTINEL_BIN` names
//! another one; without either, `redis-server --sentinel` is used.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::redis::{RedisServer, ServerProcess, StartError, quote};
use super::{free_port, loopback, redis_client, redis_conn_with_timeout, wait_for};

/// Name of the monitored master unless configured otherwise.
pub const MASTER_NAME: &str = "mymaster";

/// Timeout of connections used by the query helpers.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Bound on the waits in [`Topology::spawn`].
const TOPOLOGY_READY_TIMEOUT: Duration = Duration::from_secs(30);

const PORT_ATTEMPTS: usize = 5;

/// Configuration of one sentinel.
#[derive(Clone, Debug)]
pub struct SentinelOptions {
    /// Name the master is monitored under.
    pub master_name: String,
    /// Sentinels that must agree the master is down.
    pub quorum: u32,
    /// `sentinel down-after-milliseconds`.
    pub down_after_ms: u64,
    /// `sentinel failover-timeout`.
    pub failover_timeout_ms: u64,
    /// `sentinel auth-pass`: password of the master and replicas.
    pub auth_pass: Option<String>,
    /// More config file lines.
    pub extra_config: Vec<String>,
    /// Run `sentinel-proxy --sentinel-conf FILE` in `redis-sentinel`'s place
    /// (by default when `SENTINEL_PROXY_TEST_SENTINEL=proxy`, so the tests
    /// written against Redis Sentinel run against the stand-in too).
    pub stand_in: bool,
    /// Write the `sentinel monitor` lines; without them the sentinel starts
    /// with no group, to be configured with `SENTINEL MONITOR` at run time.
    pub monitor: bool,
}

impl Default for SentinelOptions {
    fn default() -> Self {
        SentinelOptions {
            master_name: MASTER_NAME.to_owned(),
            quorum: 2,
            down_after_ms: 1000,
            failover_timeout_ms: 10_000,
            auth_pass: None,
            extra_config: Vec::new(),
            stand_in: std::env::var("SENTINEL_PROXY_TEST_SENTINEL").is_ok_and(|v| v == "proxy"),
            monitor: true,
        }
    }
}

/// A `redis-sentinel` started by the test harness. Dropping it kills the
/// process (SIGKILL); if the thread is panicking, the tail of its log is
/// printed to stderr first.
pub struct Sentinel {
    process: ServerProcess,
    opts: SentinelOptions,
}

impl Sentinel {
    /// Starts a sentinel monitoring `master` and waits until it answers
    /// `PING`. It does not wait for the sentinel to discover replicas or
    /// other sentinels; see [`Topology`] for that.
    pub fn spawn(master: SocketAddr, opts: SentinelOptions) -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix("sentinel-proxy-sentinel-")
            .tempdir()
            .expect("create temporary directory for redis-sentinel");
        let config_path = dir.path().join("sentinel.conf");
        let (program, mut args) = if opts.stand_in {
            (
                super::proxy::binary_path(),
                vec![OsString::from("--sentinel-conf")],
            )
        } else {
            sentinel_command()
        };
        let args_before_config = args.len();
        args.insert(args_before_config, config_path.clone().into());

        let mut process =
            ServerProcess::new("redis-sentinel", program, args, dir, "sentinel.log", None);
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            process.port = port;
            let config = render_config(&opts, master, port, process.dir());
            fs::write(&config_path, config).expect("write sentinel.conf");
            match process.start() {
                Ok(()) => return Sentinel { process, opts },
                Err(StartError::AddrInUse) if attempt < PORT_ATTEMPTS => continue,
                Err(err) => panic!("{err}"),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.process.port)
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// PID of the running process. Panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn options(&self) -> &SentinelOptions {
        &self.opts
    }

    pub fn master_name(&self) -> &str {
        &self.opts.master_name
    }

    /// The sentinel's working directory (config file, log).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// Path of the config file, as rewritten by Sentinel.
    pub fn config_path(&self) -> PathBuf {
        self.process.dir().join("sentinel.conf")
    }

    /// The content of the sentinel's log file.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts the process again on the same port from its (rewritten) config
    /// file. A running process is killed first.
    pub fn restart(&mut self) {
        self.process.kill9();
        if let Err(err) = self.process.start() {
            panic!("restart: {err}");
        }
    }

    /// Suspends the process (SIGSTOP).
    pub fn freeze(&mut self) {
        self.process.signal("STOP");
    }

    /// Resumes a suspended process (SIGCONT).
    pub fn unfreeze(&mut self) {
        self.process.signal("CONT");
    }

    /// A `redis` crate client for this sentinel.
    pub fn client(&self) -> ::redis::Client {
        redis_client(self.addr(), None)
    }

    /// A synchronous connection with 5 s connect/read/write timeouts.
    pub fn conn(&self) -> ::redis::Connection {
        redis_conn_with_timeout(self.addr(), None, Duration::from_secs(5))
            .unwrap_or_else(|err| panic!("connect to sentinel {}: {err}", self.addr()))
    }

    fn query<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> ::redis::RedisResult<T> {
        let mut conn = redis_conn_with_timeout(self.addr(), None, QUERY_TIMEOUT)?;
        let mut cmd = ::redis::cmd(args.first().copied().unwrap_or("PING"));
        for arg in args.iter().skip(1) {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
    }

    /// `SENTINEL get-master-addr-by-name`; `None` if the sentinel does not
    /// answer or does not know the master.
    pub fn master_addr(&self) -> Option<SocketAddr> {
        let reply: Option<Vec<String>> = self
            .query(&["SENTINEL", "get-master-addr-by-name", self.master_name()])
            .ok()?;
        match reply?.as_slice() {
            [ip, port] => format!("{ip}:{port}").parse().ok(),
            _ => None,
        }
    }

    /// `SENTINEL MASTER <name>` as key/value pairs (`flags`, `num-slaves`,
    /// `num-other-sentinels`, `quorum`, ...).
    pub fn master_info(&self) -> ::redis::RedisResult<HashMap<String, String>> {
        let fields: Vec<String> = self.query(&["SENTINEL", "MASTER", self.master_name()])?;
        Ok(pairs(fields))
    }

    /// `SENTINEL REPLICAS <name>`: one key/value map per known replica.
    pub fn replicas(&self) -> ::redis::RedisResult<Vec<HashMap<String, String>>> {
        let entries: Vec<Vec<String>> =
            self.query(&["SENTINEL", "REPLICAS", self.master_name()])?;
        Ok(entries.into_iter().map(pairs).collect())
    }

    /// `SENTINEL SENTINELS <name>`: one key/value map per other sentinel.
    pub fn sentinels(&self) -> ::redis::RedisResult<Vec<HashMap<String, String>>> {
        let entries: Vec<Vec<String>> =
            self.query(&["SENTINEL", "SENTINELS", self.master_name()])?;
        Ok(entries.into_iter().map(pairs).collect())
    }

    /// `SENTINEL FAILOVER <name>`: forces a failover without asking the
    /// other sentinels.
    pub fn failover(&self) -> ::redis::RedisResult<()> {
        self.query::<::redis::Value>(&["SENTINEL", "FAILOVER", self.master_name()])
            .map(|_| ())
    }

    /// Whether this sentinel knows the master at `master`, with exactly
    /// `replicas` healthy replicas and `other_sentinels` other sentinels,
    /// and flags the master as healthy.
    pub fn sees(&self, master: SocketAddr, replicas: usize, other_sentinels: usize) -> bool {
        if self.master_addr() != Some(master) {
            return false;
        }
        let Ok(info) = self.master_info() else {
            return false;
        };
        let field = |key: &str| info.get(key).map(String::as_str);
        if field("flags") != Some("master")
            || field("num-slaves") != Some(replicas.to_string().as_str())
            || field("num-other-sentinels") != Some(other_sentinels.to_string().as_str())
        {
            return false;
        }
        let Ok(known) = self.replicas() else {
            return false;
        };
        known.len() == replicas
            && known.iter().all(|r| {
                r.get("flags").map(String::as_str) == Some("slave")
                    && r.get("master-link-status").map(String::as_str) == Some("ok")
            })
    }
}

/// Pairs up a flat `key, value, key, value, ...` list.
fn pairs(fields: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut iter = fields.into_iter();
    while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
        map.insert(key, value);
    }
    map
}

/// The program and arguments (after the config path) that run a sentinel.
fn sentinel_command() -> (PathBuf, Vec<OsString>) {
    if let Some(bin) = std::env::var_os("REDIS_SENTINEL_BIN") {
        return (PathBuf::from(bin), Vec::new());
    }
    if super::find_in_path("redis-sentinel").is_some() {
        return (PathBuf::from("redis-sentinel"), Vec::new());
    }
    let server = std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"));
    (server, vec![OsString::from("--sentinel")])
}

fn render_config(opts: &SentinelOptions, master: SocketAddr, port: u16, dir: &Path) -> String {
    let mut lines = vec![
        format!("port {port}"),
        "bind 127.0.0.1".to_owned(),
        "protected-mode no".to_owned(),
        "daemonize no".to_owned(),
        format!("dir {}", quote(dir)),
        format!("logfile {}", quote(&dir.join("sentinel.log"))),
    ];
    if opts.monitor {
        lines.extend(monitor_lines(opts, master));
    }
    lines.extend(opts.extra_config.iter().cloned());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The `sentinel` lines that make a sentinel monitor `master`.
fn monitor_lines(opts: &SentinelOptions, master: SocketAddr) -> Vec<String> {
    let name = &opts.master_name;
    let mut lines = vec![
        format!(
            "sentinel monitor {name} {} {} {}",
            master.ip(),
            master.port(),
            opts.quorum
        ),
        format!(
            "sentinel down-after-milliseconds {name} {}",
            opts.down_after_ms
        ),
        format!(
            "sentinel failover-timeout {name} {}",
            opts.failover_timeout_ms
        ),
        format!("sentinel parallel-syncs {name} 1"),
    ];
    if let Some(password) = &opts.auth_pass {
        lines.push(format!("sentinel auth-pass {name} {password}"));
    }
    lines
}

/// Shape and timing of a [`Topology`].
#[derive(Clone, Debug)]
pub struct TopologyOptions {
    pub replicas: usize,
    pub sentinels: usize,
    /// Defaults to a majority of the sentinels.
    pub quorum: Option<u32>,
    pub master_name: String,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    /// `requirepass`/`masterauth` of every node and `auth-pass` of every
    /// sentinel.
    pub password: Option<String>,
    /// How many of the sentinels (the first ones) are `sentinel-proxy
    /// --sentinel-conf` stand-ins rather than `redis-sentinel`.
    pub stand_ins: usize,
}

impl TopologyOptions {
    pub fn new(replicas: usize, sentinels: usize) -> Self {
        TopologyOptions {
            replicas,
            sentinels,
            quorum: None,
            master_name: MASTER_NAME.to_owned(),
            down_after_ms: 1000,
            failover_timeout_ms: 10_000,
            password: None,
            stand_ins: 0,
        }
    }
}

/// A master, its replicas and the sentinels monitoring it.
///
/// `nodes[0]` is the initial master and `nodes[1..]` its replicas; which
/// node is the master after a failover is found through the sentinels.
pub struct Topology {
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<Sentinel>,
    opts: TopologyOptions,
}

impl Topology {
    /// Starts a master with `replicas` replicas and `sentinels` sentinels
    /// (quorum: majority) and waits until the replicas are in sync and every
    /// sentinel knows the master, all replicas and all other sentinels.
    pub fn spawn(replicas: usize, sentinels: usize) -> Topology {
        Self::spawn_with(TopologyOptions::new(replicas, sentinels))
    }

    /// Like [`spawn`](Self::spawn), with explicit options.
    pub fn spawn_with(opts: TopologyOptions) -> Topology {
        let password = opts.password.clone();
        let with_password = |builder: super::RedisServerBuilder| match &password {
            Some(password) => builder.requirepass(password.clone()),
            None => builder,
        };
        let master = with_password(RedisServer::builder()).spawn();
        let master_addr = master.addr();
        let mut nodes = vec![master];
        for _ in 0..opts.replicas {
            nodes.push(with_password(RedisServer::builder().replica_of(master_addr)).spawn());
        }
        for replica in &nodes[1..] {
            wait_for(
                TOPOLOGY_READY_TIMEOUT,
                &format!("replica {} to sync with {master_addr}", replica.addr()),
                || replica.master_link_up().then_some(()),
            );
        }

        let quorum = opts
            .quorum
            .unwrap_or(u32::try_from(opts.sentinels / 2 + 1).unwrap_or(u32::MAX));
        let sentinel_opts = SentinelOptions {
            master_name: opts.master_name.clone(),
            quorum,
            down_after_ms: opts.down_after_ms,
            failover_timeout_ms: opts.failover_timeout_ms,
            auth_pass: opts.password.clone(),
            ..SentinelOptions::default()
        };
        let sentinels: Vec<Sentinel> = (0..opts.sentinels)
            .map(|i| {
                let opts = SentinelOptions {
                    stand_in: sentinel_opts.stand_in || i < opts.stand_ins,
                    ..sentinel_opts.clone()
                };
                Sentinel::spawn(master_addr, opts)
            })
            .collect();
        let others = opts.sentinels.saturating_sub(1);
        for sentinel in &sentinels {
            wait_for(
                TOPOLOGY_READY_TIMEOUT,
                &format!(
                    "sentinel {} to see master {master_addr}, {} replicas and {others} other sentinels",
                    sentinel.addr(),
                    opts.replicas
                ),
                || {
                    sentinel
                        .sees(master_addr, opts.replicas, others)
                        .then_some(())
                },
            );
        }
        Topology {
            nodes,
            sentinels,
            opts,
        }
    }

    pub fn options(&self) -> &TopologyOptions {
        &self.opts
    }

    pub fn master_name(&self) -> &str {
        &self.opts.master_name
    }

    pub fn password(&self) -> Option<&str> {
        self.opts.password.as_deref()
    }

    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(Sentinel::addr).collect()
    }

    /// Sentinel addresses as `ip:port,ip:port,...`.
    pub fn sentinel_addrs_csv(&self) -> String {
        self.sentinel_addrs()
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// The node listening on `addr`. Panics if there is none.
    pub fn node(&self, addr: SocketAddr) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node of the topology listens on {addr}"))
    }

    /// The node listening on `addr`, mutably. Panics if there is none.
    pub fn node_mut(&mut self, addr: SocketAddr) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node of the topology listens on {addr}"))
    }

    /// The master address reported by the first sentinel that answers
    /// (waits up to 10 s for one to answer).
    pub fn current_master(&self) -> SocketAddr {
        wait_for(
            Duration::from_secs(10),
            "a sentinel to report the master address",
            || self.sentinels.iter().find_map(Sentinel::master_addr),
        )
    }

    /// The node that the sentinels report as master.
    pub fn master(&self) -> &RedisServer {
        self.node(self.current_master())
    }

    /// Kills (SIGKILL) the node the sentinels report as master and returns
    /// its address, once every write it acknowledged so far has reached the
    /// replicas (`WAIT`). Replication is asynchronous: just after a replica's
    /// initial sync, the master streams nothing to it until the replica's
    /// first acknowledgement, up to a second later, so a master killed in
    /// that window takes its last writes along, with any Sentinel. Tests
    /// that check data across a failover mean writes made before the crash.
    pub fn kill_master(&mut self) -> SocketAddr {
        let addr = self.current_master();
        let replicas = self.opts.replicas;
        let _: Result<i64, _> = ::redis::cmd("WAIT")
            .arg(replicas)
            .arg(5000)
            .query(&mut self.node(addr).conn());
        self.node_mut(addr).kill9();
        addr
    }

    /// A bound on how long a failover may take with these options: enough
    /// for failure detection plus one retried election.
    pub fn failover_bound(&self) -> Duration {
        Duration::from_millis(2 * self.opts.failover_timeout_ms + self.opts.down_after_ms)
            + Duration::from_secs(15)
    }

    /// Waits (up to [`failover_bound`](Self::failover_bound)) until every
    /// running sentinel reports the same master, other than `old`, and that
    /// node reports the master role. Returns its address.
    pub fn wait_for_new_master(&mut self, old: SocketAddr) -> SocketAddr {
        let bound = self.failover_bound();
        self.wait_for_new_master_within(old, bound)
    }

    /// [`wait_for_new_master`](Self::wait_for_new_master) with an explicit
    /// bound.
    pub fn wait_for_new_master_within(&mut self, old: SocketAddr, timeout: Duration) -> SocketAddr {
        let running: Vec<usize> = (0..self.sentinels.len())
            .filter(|&i| self.sentinels[i].is_running())
            .collect();
        assert!(!running.is_empty(), "no sentinel is running");
        let sentinels = &self.sentinels;
        let nodes = &self.nodes;
        wait_for(
            timeout,
            &format!("the sentinels to promote a new master in place of {old}"),
            || {
                let mut reported = running.iter().map(|&i| sentinels[i].master_addr());
                let first = reported.next()??;
                if first == old || !reported.all(|addr| addr == Some(first)) {
                    return None;
                }
                match nodes.iter().find(|n| n.addr() == first) {
                    Some(node) => node.role().ok()?.is_master().then_some(first),
                    None => Some(first),
                }
            },
        )
    }

    /// Waits until every running node other than the current master is a
    /// replica of it with its link up.
    pub fn wait_until_replicas_synced(&mut self, timeout: Duration) {
        let master = self.current_master();
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running() && self.nodes[i].addr() != master)
            .collect();
        let nodes = &self.nodes;
        wait_for(
            timeout,
            &format!("running replicas to sync with {master}"),
            || {
                running
                    .iter()
                    .all(|&i| {
                        let node = &nodes[i];
                        node.role().ok().and_then(|r| r.master()) == Some(master)
                            && node.master_link_up()
                    })
                    .then_some(())
            },
        );
    }
}

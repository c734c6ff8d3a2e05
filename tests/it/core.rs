//! The built-in sentinel core: groups of proxies that monitor Redis, agree the
//! master is down, elect one leader, promote the best replica and move every
//! proxy to it, with no Redis Sentinel anywhere.
//!
//! [`Group`] (built with [`Group::builder`]) is shared by the `core_*`
//! modules: a master with replicas, voting proxies, observers and optional
//! real `redis-sentinel` voters, plus the queries an operator would run on
//! their sentinel ports and writers that go through the proxies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Commands, FromRedisValue, RedisResult};

use crate::support::redis::RedisTls;
use crate::support::{
    self, Proxy, RedisServer, Sentinel, SentinelOptions, redis_conn_with_timeout,
};

/// Failure detection used by these tests (Sentinel's tests use the same order).
pub const DOWN_AFTER_MS: &str = "1000";

/// Flags every proxy of a group gets unless the test sets them otherwise.
const DEFAULT_FLAGS: &[(&str, &str)] = &[
    ("--quorum", "2"),
    ("--down-after-ms", DOWN_AFTER_MS),
    ("--failover-timeout-ms", "10000"),
    ("--hold-timeout-ms", "30000"),
    // Debug logs, except one line per sentinel-port connection: the tests'
    // queries would push everything else out of the log tail printed on a
    // failure.
    ("--log-level", "debug,sentinel_proxy::sentinel::api=info"),
];

/// Bound on a failover after the master dies, generous for a loaded machine:
/// detection, one election (retried once), promotion and the hellos, or a
/// TILT (30 s without decisions, entered when a proxy was stalled for over
/// 2 s, as Sentinel does) followed by a failover.
pub const FAILOVER_BOUND: Duration = Duration::from_secs(60);

/// A failover that takes longer than this is worth explaining in the output.
const SLOW_FAILOVER: Duration = Duration::from_secs(12);

/// Single-valued flags (`--flag value`); setting one again replaces it, since
/// the proxy refuses a repeated flag.
#[derive(Clone, Debug, Default)]
struct Flags(Vec<(String, String)>);

impl Flags {
    fn set(&mut self, flag: &str, value: &str) {
        match self.0.iter_mut().find(|(f, _)| f == flag) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.0.push((flag.to_owned(), value.to_owned())),
        }
    }

    fn overlaid(&self, over: &Flags) -> Flags {
        let mut merged = self.clone();
        for (flag, value) in &over.0 {
            merged.set(flag, value);
        }
        merged
    }

    fn to_args(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(f, v)| [f.clone(), v.clone()])
            .collect()
    }
}

/// The shape of a [`Group`].
pub struct GroupBuilder {
    replicas: usize,
    voters: usize,
    observers: usize,
    sentinels: usize,
    flags: Flags,
    voter_flags: HashMap<usize, Flags>,
    data_dirs: bool,
    fault_injection: bool,
    tls: Option<RedisTls>,
}

impl GroupBuilder {
    /// Nodes that serve (and replicate over) TLS with `files`: the proxies
    /// are given their TLS ports (they need `--tls-backend`).
    pub fn tls(mut self, files: RedisTls) -> Self {
        self.tls = Some(files);
        self
    }

    /// Replicas of the master (default 2).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Voting proxies (default 3).
    pub fn voters(mut self, n: usize) -> Self {
        self.voters = n;
        self
    }

    /// Observers: `--observer`, listing every voter with `--peer`.
    pub fn observers(mut self, n: usize) -> Self {
        self.observers = n;
        self
    }

    /// Real `redis-sentinel` processes that vote with the proxies: the
    /// proxies list them with `--peer`, they find the proxies through hellos.
    pub fn sentinels(mut self, n: usize) -> Self {
        self.sentinels = n;
        self
    }

    /// Sets `flag` on every proxy (replacing the group default).
    pub fn flag(mut self, flag: &str, value: &str) -> Self {
        self.flags.set(flag, value);
        self
    }

    /// Sets `flag` on voter `i` only.
    pub fn voter_flag(mut self, i: usize, flag: &str, value: &str) -> Self {
        self.voter_flags.entry(i).or_default().set(flag, value);
        self
    }

    /// Gives every proxy its own `--data-dir`, kept across its restarts.
    pub fn data_dirs(mut self) -> Self {
        self.data_dirs = true;
        self
    }

    /// Enables `SENTINEL SIMULATE-PARTITION` on every proxy.
    pub fn fault_injection(mut self) -> Self {
        self.fault_injection = true;
        self
    }

    /// Starts the nodes, the Sentinels and the proxies, and waits until every
    /// replica is in sync and every proxy and Sentinel knows every replica and
    /// every other sentinel (the state an operator checks before trusting a
    /// group).
    pub fn spawn(self) -> Group {
        let node = || match &self.tls {
            Some(files) => RedisServer::builder().tls(files.clone()),
            None => RedisServer::builder(),
        };
        let master = node().spawn();
        let mut nodes = vec![master];
        for _ in 0..self.replicas {
            let replica = node().replica_of(nodes[0].known_addr()).spawn();
            nodes.push(replica);
        }
        for replica in &nodes[1..] {
            support::assert_eventually!(Duration::from_secs(20), replica.master_link_up());
        }
        let sentinels: Vec<Sentinel> = (0..self.sentinels)
            .map(|_| {
                Sentinel::spawn(
                    nodes[0].known_addr(),
                    SentinelOptions {
                        quorum: 2,
                        down_after_ms: DOWN_AFTER_MS.parse().expect("number"),
                        failover_timeout_ms: 10_000,
                        ..SentinelOptions::default()
                    },
                )
            })
            .collect();
        let proxy_voters: Vec<SocketAddr> = (0..self.voters)
            .map(|_| support::loopback(support::free_port()))
            .collect();
        let mut flags = Flags::default();
        for (flag, value) in DEFAULT_FLAGS {
            flags.set(flag, value);
        }
        let mut group = Group {
            nodes,
            proxies: Vec::new(),
            sentinels,
            voters: proxy_voters.clone(),
            flags: flags.overlaid(&self.flags),
            data_dirs: Vec::new(),
            data_dirs_enabled: self.data_dirs,
            fault_injection: self.fault_injection,
            retired: Vec::new(),
        };
        group
            .voters
            .extend(group.sentinels.iter().map(Sentinel::addr));
        for (i, me) in proxy_voters.iter().enumerate() {
            let extra = self.voter_flags.get(&i).cloned().unwrap_or_default();
            let proxy = group.spawn_proxy(Some(*me), &extra);
            group.proxies.push(proxy);
        }
        for _ in 0..self.observers {
            let proxy = group.spawn_proxy(None, &Flags::default());
            group.proxies.push(proxy);
        }
        group.wait_ready();
        group
    }
}

/// A master, its replicas, a group of proxies running the sentinel core and
/// any real Sentinels voting with them. `nodes[0]` is the first master.
pub struct Group {
    pub nodes: Vec<RedisServer>,
    /// The running proxies: voters first (in the order given to the
    /// builder), then observers.
    pub proxies: Vec<Proxy>,
    pub sentinels: Vec<Sentinel>,
    /// Sentinel-port addresses of every voter (proxies, then Sentinels).
    voters: Vec<SocketAddr>,
    flags: Flags,
    data_dirs: Vec<tempfile::TempDir>,
    data_dirs_enabled: bool,
    /// Proxies get `SENTINEL_PROXY_FAULT_INJECTION=1`.
    fault_injection: bool,
    /// Proxies killed or replaced, kept so that their logs are printed when
    /// a test fails.
    retired: Vec<Proxy>,
}

impl Group {
    /// A group with the default shape: 2 replicas, 3 voters, quorum 2.
    pub fn builder() -> GroupBuilder {
        GroupBuilder {
            replicas: 2,
            voters: 3,
            observers: 0,
            sentinels: 0,
            flags: Flags::default(),
            voter_flags: HashMap::new(),
            data_dirs: false,
            fault_injection: false,
            tls: None,
        }
    }

    /// `replicas` replicas of a fresh master and `proxies` voting proxies that
    /// list each other as peers, with quorum 2.
    pub fn spawn(replicas: usize, proxies: usize) -> Group {
        Group::builder().replicas(replicas).voters(proxies).spawn()
    }

    /// Starts a proxy of this group: a voter listening on `me`, or an observer
    /// when `me` is `None`.
    fn spawn_proxy(&mut self, me: Option<SocketAddr>, extra: &Flags) -> Proxy {
        let mut args: Vec<String> = vec!["--master".into(), self.nodes[0].known_addr().to_string()];
        match me {
            Some(me) => args.extend(["--sentinel-listen".into(), me.to_string()]),
            None => args.push("--observer".into()),
        }
        args.extend(self.flags.overlaid(extra).to_args());
        for peer in self.voters.iter().filter(|p| Some(**p) != me) {
            args.extend(["--peer".into(), peer.to_string()]);
        }
        if self.data_dirs_enabled {
            let dir = tempfile::Builder::new()
                .prefix("sentinel-proxy-data-")
                .tempdir()
                .expect("create a data directory");
            args.extend(["--data-dir".into(), dir.path().display().to_string()]);
            self.data_dirs.push(dir);
        }
        let mut builder = Proxy::builder().args(args);
        if self.fault_injection {
            builder = builder.env("SENTINEL_PROXY_FAULT_INJECTION", "1");
        }
        builder.spawn()
    }

    /// Starts one more observer (it discovers the group through hellos) and
    /// returns its index in [`proxies`](Self::proxies).
    pub fn add_observer(&mut self) -> usize {
        let proxy = self.spawn_proxy(None, &Flags::default());
        self.proxies.push(proxy);
        self.proxies.len() - 1
    }

    /// Kills proxy `i` (SIGKILL) and takes it out of [`proxies`](Self::proxies).
    pub fn kill_proxy(&mut self, i: usize) {
        let mut proxy = self.proxies.remove(i);
        proxy.kill9();
        self.retired.push(proxy);
    }

    /// Stops proxy `i` with SIGTERM (it must exit 0) and starts it again with
    /// the very same arguments (ports, `--master`, `--data-dir`).
    pub fn restart_proxy(&mut self, i: usize) {
        let old = &mut self.proxies[i];
        old.sigterm();
        let status = old.wait_exit(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "proxy {} did not exit cleanly on SIGTERM: {status:?}",
            old.addr()
        );
        let args = old.args().to_vec();
        let new = Proxy::builder().args(args).spawn();
        let old = std::mem::replace(&mut self.proxies[i], new);
        self.retired.push(old);
    }

    /// Every sentinel of the group: the proxies' sentinel ports and the
    /// real Sentinels.
    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        self.proxies
            .iter()
            .map(Proxy::sentinel_addr)
            .chain(self.sentinels.iter().map(Sentinel::addr))
            .collect()
    }

    /// Waits until every proxy serves commands and every proxy and Sentinel
    /// knows all replicas and all other sentinels of the group.
    pub fn wait_ready(&self) {
        let replicas = (self.nodes.len() - 1).to_string();
        let others = (self.proxies.len() + self.sentinels.len() - 1).to_string();
        for proxy in &self.proxies {
            Group::wait_serving(proxy);
            support::assert_eventually!(
                Duration::from_secs(20),
                sentinel_master_field(proxy, "num-slaves").as_deref() == Some(&replicas)
                    && sentinel_master_field(proxy, "num-other-sentinels").as_deref()
                        == Some(&others),
                "proxy {} discovers {replicas} replicas and {others} other sentinels",
                proxy.addr()
            );
        }
        let master = self.nodes[0].known_addr();
        for sentinel in &self.sentinels {
            support::assert_eventually!(
                Duration::from_secs(20),
                sentinel.sees(
                    master,
                    self.nodes.len() - 1,
                    self.proxies.len() + self.sentinels.len() - 1
                ),
                "sentinel {} discovers the replicas and the proxies",
                sentinel.addr()
            );
        }
    }

    /// The node known by `addr` (its plain or its TLS port).
    pub fn node(&self, addr: SocketAddr) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr || n.known_addr() == addr)
            .unwrap_or_else(|| panic!("no node on {addr}"))
    }

    /// The node known by `addr`, mutably.
    pub fn node_mut(&mut self, addr: SocketAddr) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.addr() == addr || n.known_addr() == addr)
            .unwrap_or_else(|| panic!("no node on {addr}"))
    }

    /// Waits until every proxy and Sentinel names the same master, other
    /// than `old`, and that node says it is master. Returns it.
    /// A failover slower than [`SLOW_FAILOVER`], or none at all, prints
    /// every proxy's Sentinel events, to show where the time went.
    pub fn wait_for_new_master(&self, old: SocketAddr, within: Duration) -> SocketAddr {
        let sentinels = self.sentinel_addrs();
        let started = Instant::now();
        let probe = || {
            let named: Vec<Option<SocketAddr>> =
                sentinels.iter().map(|s| master_named_by(*s)).collect();
            let first = named.first().copied().flatten()?;
            let agreed = first != old && named.iter().all(|n| *n == Some(first));
            let is_master = self
                .nodes
                .iter()
                .find(|n| n.known_addr() == first)
                .is_some_and(|n| n.role().is_ok_and(|r| r.is_master()));
            (agreed && is_master).then_some(first)
        };
        let mut new = None;
        support::eventually(within, || {
            new = probe();
            new.is_some()
        });
        if new.is_none() || started.elapsed() > SLOW_FAILOVER {
            eprintln!(
                "slow failover: {new:?} named by every sentinel after {:?}",
                started.elapsed()
            );
            self.print_events();
        }
        new.unwrap_or_else(|| {
            let named: Vec<_> = sentinels.iter().map(|s| master_named_by(*s)).collect();
            let split_votes = self
                .proxies
                .iter()
                .map(|p| p.log().matches("-failover-abort-not-elected").count())
                .sum::<usize>();
            panic!(
                "no new master in place of {old} within {within:?}; sentinels name {named:?}; \
                 {split_votes} election rounds ended without a leader (split votes, see \
                 core_election::simultaneous_candidates_still_elect_a_leader)"
            )
        })
    }

    /// Prints the Sentinel events (log target `sentinel_proxy::event`) of
    /// every proxy to stderr.
    pub fn print_events(&self) {
        for proxy in &self.proxies {
            eprintln!("----- events of proxy {} -----", proxy.sentinel_addr());
            for line in proxy
                .log()
                .lines()
                .filter(|l| l.contains("sentinel_proxy::event"))
            {
                eprintln!("{line}");
            }
        }
    }

    /// Waits until `proxy` serves commands.
    pub fn wait_serving(proxy: &Proxy) {
        support::wait_for(Duration::from_secs(15), "the proxy to serve PING", || {
            let mut conn =
                redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(2)).ok()?;
            redis::cmd("PING").query::<String>(&mut conn).ok()
        });
    }
}

/// The arguments of a lone proxy running the core on `master` with
/// `quorum`, a fast `--down-after-ms 1000`, and state in `data_dir`.
pub fn lone_proxy_args(master: SocketAddr, quorum: u32, data_dir: &std::path::Path) -> Vec<String> {
    [
        "--master".to_owned(),
        master.to_string(),
        "--quorum".to_owned(),
        quorum.to_string(),
        "--down-after-ms".to_owned(),
        "1000".to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
    ]
    .into()
}

/// Runs one command on a sentinel port (a proxy's or a Sentinel's).
pub fn sentinel_query<T: FromRedisValue>(addr: SocketAddr, args: &[&str]) -> RedisResult<T> {
    let mut conn = redis_conn_with_timeout(addr, None, Duration::from_secs(2))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn)
}

/// `SENTINEL get-master-addr-by-name mymaster` on the sentinel port `addr`.
pub fn master_named_by(addr: SocketAddr) -> Option<SocketAddr> {
    group_master(addr, "mymaster")
}

/// `SENTINEL get-master-addr-by-name name` on the sentinel port `addr`.
pub fn group_master(addr: SocketAddr, name: &str) -> Option<SocketAddr> {
    let reply: Vec<String> =
        sentinel_query(addr, &["SENTINEL", "get-master-addr-by-name", name]).ok()?;
    format!("{}:{}", reply.first()?, reply.get(1)?).parse().ok()
}

/// `INFO` of a proxy's sentinel port, parsed.
pub fn sentinel_info(proxy: &Proxy) -> Option<HashMap<String, String>> {
    let text: String = sentinel_query(proxy.sentinel_addr(), &["INFO"]).ok()?;
    Some(support::parse_info(&text))
}

/// One field of `SENTINEL master mymaster` on `proxy`'s sentinel port.
pub fn sentinel_master_field(proxy: &Proxy, field: &str) -> Option<String> {
    group_field(proxy.sentinel_addr(), "mymaster", field)
}

/// One field of `SENTINEL master name` on the sentinel port `addr`.
pub fn group_field(addr: SocketAddr, name: &str, field: &str) -> Option<String> {
    let reply: Vec<String> = sentinel_query(addr, &["SENTINEL", "master", name]).ok()?;
    reply
        .chunks_exact(2)
        .find(|kv| kv[0] == field)
        .map(|kv| kv[1].clone())
}

/// `SENTINEL sentinels mymaster` on the sentinel port `addr`: one key/value
/// map per other sentinel.
pub fn sentinels_known_by(addr: SocketAddr) -> Vec<HashMap<String, String>> {
    let entries: Vec<Vec<String>> =
        sentinel_query(addr, &["SENTINEL", "sentinels", "mymaster"]).unwrap_or_default();
    entries
        .into_iter()
        .map(|fields| {
            fields
                .chunks_exact(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect()
        })
        .collect()
}

/// Why a writer's INCR failed.
#[derive(Debug, Clone)]
pub struct WriteError {
    /// The connection failed (closed, reset, or could not be opened), as
    /// opposed to an error reply such as `-MASTERDOWN` or `-READONLY`.
    pub connection: bool,
    /// Shown in assertion messages (through `Debug`).
    #[allow(dead_code)]
    pub text: String,
}

/// One INCR's outcome as the writer saw it, with its time.
pub type Outcome = (Instant, Result<i64, WriteError>);

/// Sends one INCR every 5 ms through `proxy` until `stop`, reconnecting after
/// a connection error as a client of Redis would; returns every outcome with
/// its time. A connection that cannot be opened counts as a failed INCR.
fn spawn_writer(proxy: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Outcome>> {
    let failed = |e: redis::RedisError| WriteError {
        connection: e.is_io_error() || e.is_connection_dropped(),
        text: e.to_string(),
    };
    thread::spawn(move || {
        let mut outcomes = Vec::new();
        let mut conn: Option<redis::Connection> = None;
        while !stop.load(Ordering::Relaxed) {
            let result = match conn.as_mut() {
                Some(c) => c.incr::<_, _, i64>("writes", 1).map_err(failed),
                None => redis_conn_with_timeout(proxy, None, Duration::from_secs(30))
                    .map_err(failed)
                    .and_then(|c| conn.insert(c).incr("writes", 1).map_err(failed)),
            };
            if result.as_ref().is_err_and(|e| e.connection) {
                // A direct connection would be closed too: reconnect.
                conn = None;
            }
            outcomes.push((Instant::now(), result));
            thread::sleep(Duration::from_millis(5));
        }
        outcomes
    })
}

/// One writer per proxy, all incrementing the same counter (`writes`).
pub struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<(SocketAddr, thread::JoinHandle<Vec<Outcome>>)>,
}

impl Writers {
    /// Starts a writer through each of `proxies` (their client addresses).
    pub fn start(proxies: impl IntoIterator<Item = SocketAddr>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = proxies
            .into_iter()
            .map(|addr| (addr, spawn_writer(addr, Arc::clone(&stop))))
            .collect();
        Writers { stop, threads }
    }

    /// Stops every writer and returns what each one saw.
    pub fn stop(self) -> Vec<WriterLog> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|(proxy, thread)| WriterLog {
                proxy,
                outcomes: thread.join().expect("writer thread"),
            })
            .collect()
    }
}

/// What one writer saw.
#[derive(Debug)]
pub struct WriterLog {
    pub proxy: SocketAddr,
    pub outcomes: Vec<Outcome>,
}

impl WriterLog {
    /// INCRs acknowledged with a value.
    pub fn acked(&self) -> usize {
        self.outcomes.iter().filter(|o| o.1.is_ok()).count()
    }

    /// INCRs that got an error (or lost their connection).
    pub fn errors(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.1.is_err()).collect()
    }

    /// Asserts that every error is explained by the crash of the master at
    /// `killed_at`: connections that were talking to the dying process (the
    /// command in flight, and at most one connection opened while it was
    /// dying), within one down-after period of the kill, before any proxy
    /// could know. An error reply (`-MASTERDOWN`, `-READONLY`), an error
    /// outside that window or a third error is the proxy's doing.
    pub fn assert_only_crash_errors(&self, killed_at: Instant) {
        let window = Duration::from_millis(DOWN_AFTER_MS.parse().expect("number"));
        let errors = self.errors();
        let unexplained: Vec<_> = errors
            .iter()
            .filter(|(at, r)| {
                let connection = r.as_ref().is_err_and(|e| e.connection);
                !connection || *at < killed_at || *at > killed_at + window
            })
            .collect();
        assert!(
            unexplained.is_empty() && errors.len() <= 2,
            "writer through {}: errors not explained by the crash: {errors:?}",
            self.proxy
        );
    }

    /// Consecutive acknowledged values where the counter went down: a write
    /// acknowledged by a node that does not have the earlier writes (a
    /// restarted, empty old master) shows up here.
    pub fn went_back(&self) -> Vec<(i64, i64)> {
        let values: Vec<i64> = self
            .outcomes
            .iter()
            .filter_map(|o| o.1.as_ref().ok().copied())
            .collect();
        values
            .windows(2)
            .filter(|w| w[1] <= w[0])
            .map(|w| (w[0], w[1]))
            .collect()
    }
}

/// The writers' counter as stored on `node` (0 if absent or unreachable).
pub fn writes_on(node: &RedisServer) -> i64 {
    node.cmd(&["GET", "writes"])
        .ok()
        .and_then(|v| support::value_to_string(&v))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The sidecar group's reason to exist: `kill -9` of the master under load;
/// the proxies agree, one of them promotes a replica, every proxy moves to
/// it, and the writer sees at most the in-flight command fail.
#[test]
fn proxies_fail_over_by_themselves_when_the_master_dies() {
    let mut group = Group::spawn(2, 3);
    let old = group.nodes[0].addr();

    // An idle pooled connection with state, opened before the crash.
    let mut idle =
        support::redis_conn_with_timeout(group.proxies[0].addr(), None, Duration::from_secs(30))
            .expect("connect through the proxy");
    redis::cmd("SELECT")
        .arg(2)
        .query::<()>(&mut idle)
        .expect("SELECT 2");
    let writers = Writers::start([group.proxies[0].addr()]);
    thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    group.nodes[0].kill9();

    // Scraped during the failover: the endpoint answers, the master is down
    // and nothing is routable on the proxies that noticed.
    let during = crate::metrics::scrape(&group.proxies[0]);
    assert!(during.contains_key("sentinel_proxy_master_sdown"));
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let at_switch = writes_on(group.node(new));
    support::assert_eventually!(
        Duration::from_secs(15),
        writes_on(group.node(new)) > at_switch + 50,
        "writes resume on the new master through the proxy"
    );
    let logs = writers.stop();
    logs[0].assert_only_crash_errors(killed_at);
    eprintln!(
        "core failover: {} writes, {} errors, switch after {:?}",
        logs[0].outcomes.len(),
        logs[0].errors().len(),
        killed_at.elapsed()
    );

    // Exactly one leader for the failover's epoch.
    let leaders: Vec<&Proxy> = group
        .proxies
        .iter()
        .filter(|p| p.log().contains("+elected-leader"))
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one proxy leads the failover");

    // The other replica now follows the new master; every proxy agrees on
    // the new config epoch.
    let other = group
        .nodes
        .iter()
        .find(|n| n.addr() != old && n.addr() != new)
        .expect("the other replica");
    support::assert_eventually!(
        Duration::from_secs(20),
        other.role().ok().and_then(|r| r.master()) == Some(new),
        "the other replica is reconfigured"
    );
    // The idle connection works on the new master, in its database.
    let _: () = idle
        .set("idle-after", 1)
        .expect("idle connection after the failover");
    let mut direct = group.node(new).conn();
    redis::cmd("SELECT")
        .arg(2)
        .query::<()>(&mut direct)
        .expect("SELECT");
    assert_eq!(direct.get::<_, i64>("idle-after").expect("GET"), 1);

    // What Prometheus sees: one failover led in the whole group, every
    // proxy routing to the new master, the writer's session moved to it.
    let info = format!("sentinel_proxy_master_info{{master_name=\"mymaster\",address=\"{new}\"}}");
    for proxy in &group.proxies {
        support::assert_eventually!(
            Duration::from_secs(10),
            crate::metrics::scrape(proxy).get(&info) == Some(&1.0),
            "proxy {} routes to {new}; status: {:?}",
            proxy.addr(),
            proxy.http_get("/status")
        );
    }
    let scrapes: Vec<_> = group.proxies.iter().map(crate::metrics::scrape).collect();
    let led: f64 = scrapes
        .iter()
        .map(|m| {
            m.get("sentinel_proxy_failovers_led_total")
                .copied()
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(led, 1.0, "failovers led across the group");
    for m in &scrapes {
        assert!(
            m.get("sentinel_proxy_switches_total")
                .is_some_and(|v| *v >= 1.0)
        );
    }
    assert!(scrapes.iter().any(|m| {
        m.get("sentinel_proxy_failover_duration_seconds_count")
            .is_some_and(|c| *c >= 1.0)
    }));
    assert!(
        scrapes[0]
            .get("sentinel_proxy_switch_sessions_moved_total")
            .is_some_and(|v| *v >= 1.0)
    );
    assert!(
        scrapes[0]["sentinel_proxy_commands_total{class=\"write\"}"]
            >= logs[0].outcomes.len() as f64 - 2.0
    );

    let epochs: Vec<Option<String>> = group
        .proxies
        .iter()
        .map(|p| sentinel_master_field(p, "config-epoch"))
        .collect();
    assert!(
        epochs
            .iter()
            .all(|e| e == &epochs[0] && e.as_deref() != Some("0")),
        "config epochs converge: {epochs:?}"
    );
}

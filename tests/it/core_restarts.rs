//! Restarts after a failover: a proxy restarted with its original command
//! line (still naming the old master) must use what it saved in its data
//! directory, and an old master that comes back claiming master must be
//! turned into a replica without ever receiving a write. And a master that
//! restarts into a long load is failed over under
//! `--master-reboot-down-after-ms`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::{
    FAILOVER_BOUND, Group, Writers, master_named_by, sentinel_master_field, sentinel_query,
    writes_on,
};
use crate::support::{self, RedisServer};

/// Bound on converting a returning old master: Sentinel waits four hello
/// periods (8 s) before it corrects a node's role; the rest is slack for a
/// loaded machine.
const CONVERSION_BOUND: Duration = Duration::from_secs(20);

/// INCRs `node` has executed since it started (`INFO commandstats`).
fn incr_calls(node: &RedisServer) -> Option<u64> {
    let stats = node.info("commandstats").ok()?;
    let Some(line) = stats.get("cmdstat_incr") else {
        return Some(0);
    };
    line.split(',')
        .find_map(|kv| kv.strip_prefix("calls="))
        .and_then(|n| n.parse().ok())
}

/// Restarts the old master (it comes back empty and configured as a master)
/// while one writer per proxy runs, and waits until it replicates from `new`.
/// While it claims master it must not execute a single INCR; afterwards every
/// writer's counter only went up, no writer saw an error, and the counter on
/// `new` accounts for every acknowledged INCR. Returns how long the
/// conversion took.
fn old_master_rejoins_without_writes(
    group: &mut Group,
    old: SocketAddr,
    new: SocketAddr,
) -> Duration {
    let base = writes_on(group.node(new));
    let writers = Writers::start(group.proxies.iter().map(|p| p.addr()));
    std::thread::sleep(Duration::from_millis(300));
    group.node_mut(old).restart();
    let restarted = Instant::now();
    let node = group.node(old);
    let converted_after = loop {
        // Stats first, role second: if the role still says master, the stats
        // were taken while it was one (a replica would count replicated INCRs).
        let calls = incr_calls(node);
        let role = node.role();
        match &role {
            Ok(role) if role.is_master() => assert_eq!(
                calls,
                Some(0),
                "the returning old master executed INCRs while it claimed master"
            ),
            Ok(role) if role.master() == Some(new) => break restarted.elapsed(),
            _ => {}
        }
        assert!(
            restarted.elapsed() < CONVERSION_BOUND,
            "the old master {old} is not a replica of {new} after {CONVERSION_BOUND:?}: {role:?}"
        );
        std::thread::sleep(support::POLL_INTERVAL);
    };
    // Writes keep flowing to the new master a little longer.
    std::thread::sleep(Duration::from_millis(500));
    let logs = writers.stop();
    let mut acked = 0;
    for log in &logs {
        assert!(
            log.errors().is_empty(),
            "writer through {} saw errors: {:?}",
            log.proxy,
            log.errors()
        );
        assert!(
            log.went_back().is_empty(),
            "writer through {} saw the counter go back (a write on the empty old master?): {:?}",
            log.proxy,
            log.went_back()
        );
        assert!(log.acked() > 0, "no write through {}", log.proxy);
        acked += log.acked() as i64;
    }
    assert_eq!(
        writes_on(group.node(new)),
        base + acked,
        "the new master has every acknowledged write, and only those"
    );
    converted_after
}

/// The proxy that led the failover.
fn leader(group: &Group) -> usize {
    let leaders: Vec<usize> = (0..group.proxies.len())
        .filter(|&i| group.proxies[i].log().contains("+elected-leader"))
        .collect();
    assert_eq!(leaders.len(), 1, "one proxy led the failover");
    leaders[0]
}

/// What proxy `i` saved in its data directory.
fn saved_state(group: &Group, i: usize) -> String {
    let args = group.proxies[i].args();
    let dir = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|at| args.get(at + 1))
        .expect("a --data-dir argument");
    std::fs::read_to_string(std::path::Path::new(dir).join("sentinel-proxy.state"))
        .unwrap_or_else(|e| format!("<no state file: {e}>"))
}

/// Stops proxy `i` (SIGTERM), starts it again with its original arguments,
/// `--master <old master>` included, and checks that it names `new` under
/// `epoch` with its old run id, and that a write through it lands on `new`.
fn restart_and_check(group: &mut Group, i: usize, old: SocketAddr, new: SocketAddr, epoch: &str) {
    let myid = |addr| sentinel_query::<String>(addr, &["SENTINEL", "myid"]).ok();
    let id_before = myid(group.proxies[i].sentinel_addr());
    group.restart_proxy(i);
    let proxy = &group.proxies[i];
    assert!(
        proxy
            .args()
            .iter()
            .any(|a| a.to_str() == Some(old.to_string().as_str())),
        "restarted with the original --master"
    );
    let state = saved_state(group, i);
    support::assert_eventually!(
        Duration::from_secs(5),
        master_named_by(proxy.sentinel_addr()) == Some(new),
        "proxy {i} names the new master {new} after its restart, not {:?}; it saved:\n{state}",
        master_named_by(proxy.sentinel_addr())
    );
    assert_eq!(
        sentinel_master_field(proxy, "config-epoch").as_deref(),
        Some(epoch)
    );
    assert_eq!(
        myid(proxy.sentinel_addr()),
        id_before,
        "proxy {i} keeps its run id"
    );
    let key = format!("after-restart-{i}");
    let mut conn = support::redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(35))
        .expect("connect through the restarted proxy");
    let reply: String = redis::cmd("SET")
        .arg(&key)
        .arg("1")
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("a write through restarted proxy {i}: {e}; it saved:\n{state}"));
    assert_eq!(reply, "OK");
    assert_eq!(
        group.node(new).cmd(&["GET", &key]).ok(),
        Some(redis::Value::BulkString(b"1".to_vec())),
        "the write through restarted proxy {i} landed on the new master"
    );
}

/// After a `kill -9` failover, each proxy in turn (the leader too) is stopped
/// with SIGTERM and started again with its original arguments, still naming
/// the old master: each routes to the new master under the new config epoch
/// at once and keeps its run id; then the old master comes back and no write
/// through any proxy reaches it.
#[test]
fn restarted_proxies_remember_the_new_master() {
    let mut group = Group::builder().data_dirs().spawn();
    let old = group.nodes[0].addr();
    group.nodes[0].kill9();
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let leader = leader(&group);
    support::assert_eventually!(
        Duration::from_secs(20),
        group.proxies[leader].log().contains("+failover-end"),
        "the failover ends"
    );
    let epoch = sentinel_master_field(&group.proxies[leader], "config-epoch")
        .expect("the leader's config epoch");
    assert_ne!(epoch, "0");
    support::assert_eventually!(
        Duration::from_secs(10),
        group
            .proxies
            .iter()
            .all(|p| sentinel_master_field(p, "config-epoch").as_deref() == Some(&epoch)),
        "every proxy has the new config epoch"
    );

    for i in 0..group.proxies.len() {
        restart_and_check(&mut group, i, old, new, &epoch);
    }
    old_master_rejoins_without_writes(&mut group, old, new);
}

/// The leader is stopped (SIGTERM) after it promoted the replica and told the
/// others (they already route to the new master), but before its failover
/// ended (it was still reconfiguring the other replica), and started again
/// with its original arguments: like a Sentinel restarted at that moment, it
/// must come back naming the promoted replica, not the old master.
#[test]
fn a_leader_restarted_before_its_failover_ended_remembers_the_new_master() {
    let mut group = Group::builder().data_dirs().spawn();
    let old = group.nodes[0].addr();
    // During a failover the replicas' INFO is polled every ping period (as
    // in Sentinel): a long one keeps the leader reconfiguring the other
    // replica for seconds, so it can be stopped in that stage.
    for proxy in &group.proxies {
        let ok: String = sentinel_query(
            proxy.sentinel_addr(),
            &["SENTINEL", "DEBUG", "ping-period", "4000"],
        )
        .expect("SENTINEL DEBUG ping-period");
        assert_eq!(ok, "OK");
    }
    group.nodes[0].kill9();
    let promoted = support::wait_for(FAILOVER_BOUND, "a leader to promote a replica", || {
        (0..group.proxies.len()).find(|&i| group.proxies[i].log().contains("+promoted-slave"))
    });
    let new = group.wait_for_new_master(old, Duration::from_secs(10));
    assert!(
        !group.proxies[promoted].log().contains("+failover-end"),
        "the leader ended its failover before it could be stopped"
    );
    let epoch = sentinel_master_field(&group.proxies[promoted], "config-epoch")
        .expect("the leader's config epoch");

    restart_and_check(&mut group, promoted, old, new, &epoch);
}

/// The old master comes back after a `kill -9` failover, claiming master: a
/// proxy emits `+convert-to-slave` and makes it a replica of the new master,
/// and meanwhile no write through the proxies reaches it.
#[test]
fn the_old_master_is_converted_when_it_returns() {
    let mut group = Group::spawn(2, 3);
    let old = group.nodes[0].addr();
    group.nodes[0].kill9();
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);

    let took = old_master_rejoins_without_writes(&mut group, old, new);
    let event = format!(
        "+convert-to-slave slave {old} {} {} @ mymaster {} {}",
        old.ip(),
        old.port(),
        new.ip(),
        new.port()
    );
    assert!(
        group.proxies.iter().any(|p| p.log().contains(&event)),
        "a proxy logs `{event}`"
    );
    eprintln!("old master converted {took:?} after its restart");
}

/// A master that restarts into a long load answers `-LOADING` to every PING,
/// a valid reply, so `--down-after-ms` (a minute here) alone would wait for
/// it. With `--master-reboot-down-after-ms` its new run id starts a clock
/// that only a `PONG` stops (from the first INFO that shows the new run
/// id): past it the master is SDOWN, and with quorum 1 the replica is
/// promoted.
#[test]
fn a_master_rebooted_into_a_long_load_is_failed_over_after_the_reboot_period() {
    let mut group = Group::builder()
        .replicas(1)
        .voters(1)
        .flag("--quorum", "1")
        .flag("--down-after-ms", "60000")
        .flag("--master-reboot-down-after-ms", "1000")
        .spawn();
    let old = group.nodes[0].addr();
    let replica = group.nodes[1].addr();
    let master = group.node(old);
    // About 5 s of loading after a restart, answering -LOADING meanwhile
    // (Redis serves clients during a load every this many bytes read).
    for (name, value) in [
        ("key-load-delay", "250"),
        ("loading-process-events-interval-bytes", "1024"),
    ] {
        master
            .cmd(&["CONFIG", "SET", name, value])
            .unwrap_or_else(|e| panic!("CONFIG SET {name}: {e}"));
    }
    master.cmd(&["CONFIG", "REWRITE"]).expect("CONFIG REWRITE");
    let keys: Vec<String> = (0..20_000).map(|i| format!("key:{i}")).collect();
    for chunk in keys.chunks(1000) {
        let mut args = vec!["MSET"];
        for key in chunk {
            args.extend([key.as_str(), "v"]);
        }
        master.cmd(&args).expect("MSET");
    }
    // SAVE is refused while a replica's sync runs a background save.
    support::assert_eventually!(Duration::from_secs(20), master.cmd(&["SAVE"]).is_ok());
    // INFO every second rather than every 10 s, so the new run id is seen
    // early in the load (Sentinel sees a reboot only in its next INFO too).
    let proxy = group.proxies[0].sentinel_addr();
    sentinel_query::<String>(proxy, &["SENTINEL", "DEBUG", "info-period", "1000"])
        .expect("SENTINEL DEBUG info-period");
    let restarted = Instant::now();
    // Returns once the load is over and the node answers PONG.
    group.node_mut(old).restart();
    let loaded_after = restarted.elapsed();
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    assert_eq!(new, replica, "the replica is promoted");
    let log = group.proxies[0].log();
    let sdown = format!("+sdown master mymaster {} {}", old.ip(), old.port());
    assert!(
        log.lines().any(|l| l.contains(&sdown)),
        "the proxy logs `{sdown}` for the loading master"
    );
    eprintln!("old master loaded {loaded_after:?} after its restart");
}

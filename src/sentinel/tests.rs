//! The core's decisions, driven by hand: no sockets, no Redis.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::core::{Core, Settings};
use super::events::Events;
use super::groups::{Groups, Template};
use super::hello::Hello;
use super::link::Sent;
use crate::resp::value::OwnedFrame;

mod groups;
mod names;
mod reports;

const MASTER: &str = "127.0.0.1:6379";
const REPLICA: &str = "127.0.0.1:6380";
const PEER_A: &str = "127.0.0.1:26380";
const PEER_B: &str = "127.0.0.1:26381";
const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn core_with(voters: &[&str], observer: bool) -> (Core, broadcast::Receiver<super::api::Event>) {
    let (tx, rx) = broadcast::channel(256);
    let settings = Settings {
        name: "mymaster".into(),
        quorum: 2,
        down_after: Duration::from_millis(1000),
        master_reboot_down_after: None,
        failover_timeout: Duration::from_millis(10_000),
        parallel_syncs: 1,
        observer,
        voters: voters.iter().map(|v| addr(v)).collect(),
        discover_voters: false,
        announce: addr("127.0.0.1:26379"),
        fault_injection: true,
        auth: Default::default(),
        renamed_commands: Default::default(),
        resolve_hostnames: false,
        announce_hostnames: false,
    };
    let core = Core::new(
        settings,
        addr(MASTER),
        None,
        Events::new(tx),
        Instant::now(),
    );
    (core, rx)
}

fn hello_from(peer: &str, run_id: &str, epoch: u64, master: &str, config_epoch: u64) -> String {
    let (ip, port) = peer.rsplit_once(':').expect("ip:port");
    let (mip, mport) = master.rsplit_once(':').expect("ip:port");
    Hello {
        ip: ip.into(),
        port: port.parse().expect("port"),
        run_id: run_id.into(),
        current_epoch: epoch,
        master_name: "mymaster".into(),
        master_ip: mip.into(),
        master_port: mport.parse().expect("port"),
        master_config_epoch: config_epoch,
    }
    .to_payload()
}

fn info_master() -> OwnedFrame {
    OwnedFrame::BulkString(
        b"# Server\r\nrun_id:cccccccccccccccccccccccccccccccccccccccc\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=10,lag=0\r\nmaster_repl_offset:10\r\n".to_vec(),
    )
}

/// The replica's `INFO` while it is in sync with a master at `host`:6379.
fn synced_replica_of(host: &str) -> OwnedFrame {
    OwnedFrame::BulkString(
        format!(
            "run_id:dddddddddddddddddddddddddddddddddddddddd\r\nrole:slave\r\nmaster_host:{host}\r\nmaster_port:6379\r\nmaster_link_status:up\r\nslave_repl_offset:10\r\nslave_priority:100\r\n"
        )
        .into_bytes(),
    )
}

/// The chosen replica's `INFO` once it has promoted itself.
fn promoted_info() -> OwnedFrame {
    OwnedFrame::BulkString(
        b"run_id:dddddddddddddddddddddddddddddddddddddddd\r\nrole:master\r\n".to_vec(),
    )
}

/// The sentinel port's answer to `args` when `core` is its one group: the
/// core is lent to a Sentinel of one group for the call.
fn answer(core: &mut Core, args: &[&str], now: Instant) -> OwnedFrame {
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let (tx, _) = broadcast::channel(16);
    let mut template = Template::new(core.settings.announce, tx.clone());
    template.fault_injection = core.settings.fault_injection;
    let mut groups = Groups::new(core.myid.clone(), template);
    groups.timers = core.timers;
    let name = core.settings.name.clone();
    let stand_in = Core::new(
        core.settings.clone(),
        core.master.addr,
        None,
        Events::new(tx),
        now,
    );
    groups
        .cores
        .insert(name.clone(), std::mem::replace(core, stand_in));
    let reply = groups.answer(&args, now);
    if let Some(lent) = groups.cores.remove(&name) {
        *core = lent;
    }
    reply
}

#[test]
fn the_route_waits_for_info_to_confirm_the_master_role() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    assert_eq!(core.route(now).0, None, "no INFO yet: hold");
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    assert_eq!(core.route(now).0, Some(addr(MASTER)));
    assert!(
        core.replicas.contains_key(&addr(REPLICA)),
        "replica discovered from INFO"
    );
}

#[test]
fn a_proxy_without_a_majority_of_voters_is_fenced() {
    let (mut core, _) = core_with(&[PEER_A, PEER_B], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    assert_eq!(
        core.fence_reason(now),
        Some("no majority of voters reachable")
    );
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), now);
    assert_eq!(core.fence_reason(now), None, "itself and one peer: 2 of 3");
    let later = now + Duration::from_millis(1500);
    assert_eq!(
        core.fence_reason(later),
        Some("no majority of voters reachable"),
        "silent for longer than down-after"
    );
    assert_eq!(core.route(later).0, None);
}

#[test]
fn one_vote_per_epoch_and_only_for_voters() {
    let (mut core, _) = core_with(&[PEER_A], false);
    let now = Instant::now();
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), now);
    core.take_hello(&hello_from(PEER_B, ID_B, 0, MASTER, 0), now);
    assert!(!core.peers[&addr(PEER_B)].voter, "unlisted peers observe");

    let reply = |core: &mut Core, id: &str, epoch: &str| {
        answer(
            core,
            &[
                "SENTINEL",
                "is-master-down-by-addr",
                "127.0.0.1",
                "6379",
                epoch,
                id,
            ],
            now,
        )
    };
    let OwnedFrame::Array(items) = reply(&mut core, ID_B, "1") else {
        panic!("array")
    };
    assert_eq!(
        items[1],
        OwnedFrame::BulkString(b"*".to_vec()),
        "no vote for an observer"
    );
    let OwnedFrame::Array(items) = reply(&mut core, ID_A, "1") else {
        panic!("array")
    };
    assert_eq!(items[1], OwnedFrame::BulkString(ID_A.as_bytes().to_vec()));
    assert_eq!(items[2], OwnedFrame::Integer(1));
    // A second candidate in the same epoch gets the first one's name back.
    let myid = core.myid.clone();
    let OwnedFrame::Array(items) = reply(&mut core, &myid, "1") else {
        panic!("array")
    };
    assert_eq!(items[1], OwnedFrame::BulkString(ID_A.as_bytes().to_vec()));
    assert_eq!(core.current_epoch, 1);
    // Having voted for another leader, this proxy holds commands.
    assert_eq!(core.fence_reason(now), Some("voted for a failover leader"));
}

#[test]
fn an_observer_never_votes() {
    let (mut core, _) = core_with(&[PEER_A], true);
    let now = Instant::now();
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), now);
    let reply = answer(
        &mut core,
        &[
            "SENTINEL",
            "is-master-down-by-addr",
            "127.0.0.1",
            "6379",
            "3",
            ID_A,
        ],
        now,
    );
    let OwnedFrame::Array(items) = reply else {
        panic!("array")
    };
    assert_eq!(items[1], OwnedFrame::BulkString(b"*".to_vec()));
    assert!(core.force_failover(now).is_err());
}

#[test]
fn a_newer_config_epoch_in_a_hello_moves_the_master() {
    let (mut core, mut events) = core_with(&[PEER_A], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    core.take_hello(&hello_from(PEER_A, ID_A, 4, REPLICA, 4), now);
    assert_eq!(core.master.addr, addr(REPLICA));
    assert_eq!(core.config_epoch, 4);
    assert_eq!(core.current_epoch, 4);
    assert!(
        core.replicas.contains_key(&addr(MASTER)),
        "the old master is a replica now"
    );
    assert_eq!(
        core.route(now).0,
        None,
        "the new master's role is not confirmed yet"
    );
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.channel);
    }
    assert!(seen.contains(&"+switch-master".to_owned()), "{seen:?}");
    // An older epoch never moves it back.
    core.take_hello(&hello_from(PEER_A, ID_A, 4, MASTER, 3), now);
    assert_eq!(core.master.addr, addr(REPLICA));
}

#[test]
fn sdown_needs_down_after_of_silence_and_odown_needs_the_quorum() {
    let (mut core, _) = core_with(&[PEER_A, PEER_B], false);
    let start = Instant::now();
    core.tick(start);
    core.tick(start + Duration::from_millis(900));
    assert!(!core.master.sdown.is_down());
    let late = start + Duration::from_millis(1100);
    core.tick(late);
    assert!(core.master.sdown.is_down(), "silent past down-after");
    assert!(!core.odown.is_down(), "one vote of quorum 2");
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), late);
    let down = OwnedFrame::Array(vec![
        OwnedFrame::Integer(1),
        OwnedFrame::BulkString(b"*".to_vec()),
        OwnedFrame::Integer(0),
    ]);
    core.observe(addr(PEER_A), Sent::AskMasterDown, Ok(down), late);
    core.tick(late + Duration::from_millis(100));
    assert!(core.odown.is_down(), "two votes reach the quorum");
    assert!(core.start_jitter < Duration::from_millis(400));
    // Peer A keeps saying the master is down.
    let still_down = OwnedFrame::Array(vec![
        OwnedFrame::Integer(1),
        OwnedFrame::BulkString(b"*".to_vec()),
        OwnedFrame::Integer(0),
    ]);
    let after_jitter = late + Duration::from_millis(1100);
    core.observe(
        addr(PEER_A),
        Sent::AskMasterDown,
        Ok(still_down),
        after_jitter,
    );
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), after_jitter);
    core.tick(after_jitter);
    assert!(
        core.failover.is_some(),
        "a voter starts a failover on ODOWN, after its jitter"
    );
    assert_eq!(core.current_epoch, 1);
}

#[test]
fn sentinel_api_speaks_sentinels_formats() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    assert_eq!(
        answer(
            &mut core,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
            now
        ),
        OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"127.0.0.1".to_vec()),
            OwnedFrame::BulkString(b"6379".to_vec()),
        ])
    );
    assert_eq!(
        answer(
            &mut core,
            &["SENTINEL", "get-master-addr-by-name", "other"],
            now
        ),
        OwnedFrame::Null
    );
    let master = answer(&mut core, &["SENTINEL", "master", "mymaster"], now);
    assert_eq!(crate::resp::value::field(&master, "flags"), Some("master"));
    assert_eq!(crate::resp::value::field(&master, "num-slaves"), Some("1"));
    assert!(matches!(
        answer(&mut core, &["SENTINEL", "master", "nope"], now),
        OwnedFrame::Error(e) if e == "ERR No such master with that name"
    ));
    assert!(matches!(
        answer(&mut core, &["PUBLISH", "other", "x"], now),
        OwnedFrame::Error(_)
    ));
    let OwnedFrame::BulkString(info) = answer(&mut core, &["INFO"], now) else {
        panic!("bulk")
    };
    let info = String::from_utf8(info).expect("utf8");
    assert!(
        info.contains("master0:name=mymaster,status=ok,address=127.0.0.1:6379"),
        "{info}"
    );
}

#[test]
fn a_stalled_clock_enters_tilt_and_decides_nothing() {
    let (mut core, mut events) = core_with(&[], false);
    let start = Instant::now();
    core.tick(start);
    // The process was stopped for 5 s: every node looks silent, but the
    // silence is ours, not theirs.
    let resumed = start + Duration::from_secs(5);
    core.tick(resumed);
    assert!(core.tilt.is_on());
    assert!(!core.master.sdown.is_down(), "no SDOWN while in TILT");
    let reply = answer(
        &mut core,
        &[
            "SENTINEL",
            "is-master-down-by-addr",
            "127.0.0.1",
            "6379",
            "0",
            "*",
        ],
        resumed,
    );
    let OwnedFrame::Array(items) = reply else {
        panic!("array")
    };
    assert_eq!(
        items[0],
        OwnedFrame::Integer(0),
        "never reports down in TILT"
    );
    // Ticks on time for the TILT period end it.
    let mut now = resumed;
    while now < resumed + Duration::from_secs(31) {
        now += Duration::from_millis(100);
        core.tick(now);
    }
    assert!(!core.tilt.is_on());
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.channel);
    }
    assert!(seen.contains(&"+tilt".to_owned()) && seen.contains(&"-tilt".to_owned()));
}

/// A lone voter with quorum 1 whose master went silent, ticked until it
/// chose the replica and sent it `REPLICAOF NO ONE`; returns the time then.
fn promoting(core: &mut Core) -> Instant {
    core.settings.quorum = 1;
    let start = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), start);
    let replica_info = OwnedFrame::BulkString(
        b"run_id:dddddddddddddddddddddddddddddddddddddddd\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:1\r\nslave_repl_offset:10\r\nslave_priority:100\r\n".to_vec(),
    );
    let mut now = start;
    // The replica answers; the master does not.
    while core.failover.is_none() && now < start + Duration::from_secs(5) {
        now += Duration::from_millis(100);
        core.tick(now);
        core.observe(
            addr(REPLICA),
            Sent::Ping,
            Ok(OwnedFrame::SimpleString(b"PONG".to_vec())),
            now,
        );
        core.observe(addr(REPLICA), Sent::Info, Ok(replica_info.clone()), now);
    }
    assert!(core.odown.is_down());
    assert_eq!(core.route(now).0, None, "no writes while the failover runs");
    for _ in 0..3 {
        now += Duration::from_millis(100);
        core.tick(now);
    }
    now
}

#[test]
fn a_lone_voter_with_quorum_one_promotes_the_replica_and_routes_to_it() {
    let (mut core, _) = core_with(&[], false);
    let now = promoting(&mut core);
    let promote = core
        .outbox
        .iter()
        .find(|o| o.sent == Sent::Promote)
        .expect("REPLICAOF NO ONE queued");
    assert_eq!(promote.to, addr(REPLICA));
    assert!(
        promote
            .commands
            .iter()
            .any(|c| c == &["REPLICAOF", "NO", "ONE"])
    );
    // The stage in Sentinel's words, on the sentinel port and in /status.
    assert_eq!(core.status(now).failover.as_deref(), Some("wait_promotion"));
    let OwnedFrame::Array(fields) = answer(&mut core, &["SENTINEL", "MASTER", "mymaster"], now)
    else {
        panic!("SENTINEL MASTER answers an array");
    };
    let state = fields
        .iter()
        .position(|f| crate::resp::value::as_str(f) == Some("failover-state"))
        .and_then(|at| fields.get(at + 1))
        .and_then(crate::resp::value::as_str);
    assert_eq!(state, Some("wait_promotion"));
    core.observe(addr(REPLICA), Sent::Info, Ok(promoted_info()), now);
    assert_eq!(
        core.master.addr,
        addr(REPLICA),
        "switched: no other replica to reconfigure"
    );
    assert_eq!(core.config_epoch, 1);
    // The INFO that confirmed the promotion still counts after the switch:
    // the route goes straight to the new master, never back to None.
    assert_eq!(core.route(now), (Some(addr(REPLICA)), 1));
}

#[test]
fn a_session_hint_rechecks_without_unconfirming_the_master() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    core.tick(now);
    core.outbox.clear();
    core.hint(addr(MASTER));
    assert_eq!(core.route(now).0, Some(addr(MASTER)), "still routed");
    core.tick(now + Duration::from_millis(100));
    assert!(
        core.outbox
            .iter()
            .any(|o| o.to == addr(MASTER) && o.sent == Sent::Info),
        "INFO sent at once"
    );
}

#[test]
fn a_replica_that_never_synced_is_never_promoted() {
    let (mut core, mut events) = core_with(&[], false);
    core.settings.quorum = 1;
    let start = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), start);
    // Link down and offset 0: it never received the master's data.
    let empty = OwnedFrame::BulkString(
        b"run_id:dddddddddddddddddddddddddddddddddddddddd\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:-1\r\nslave_repl_offset:0\r\nslave_priority:100\r\n".to_vec(),
    );
    let mut now = start;
    while now < start + Duration::from_secs(4) {
        now += Duration::from_millis(100);
        core.tick(now);
        core.observe(
            addr(REPLICA),
            Sent::Ping,
            Ok(OwnedFrame::SimpleString(b"PONG".to_vec())),
            now,
        );
        core.observe(addr(REPLICA), Sent::Info, Ok(empty.clone()), now);
    }
    assert!(core.outbox.iter().all(|o| o.sent != Sent::Promote));
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.channel);
    }
    assert!(
        seen.contains(&"-failover-abort-no-good-slave".to_owned()),
        "{seen:?}"
    );
}

#[test]
fn a_peer_back_from_a_partition_counts_only_after_its_next_hello() {
    let (mut core, _) = core_with(&[PEER_A, PEER_B], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), now);
    assert!(core.has_majority(now));
    // A PING to it fails (the partition), then answers again (the heal).
    let lost = std::io::Error::new(std::io::ErrorKind::TimedOut, "cut");
    core.observe(
        addr(PEER_A),
        Sent::Ping,
        Err(crate::backend::probe::ProbeError::Io(lost)),
        now,
    );
    let pong = OwnedFrame::SimpleString(b"PONG".to_vec());
    core.observe(addr(PEER_A), Sent::Ping, Ok(pong), now);
    assert!(
        !core.has_majority(now),
        "a failover may have happened meanwhile: wait for its hello"
    );
    core.take_hello(&hello_from(PEER_A, ID_A, 0, MASTER, 0), now);
    assert!(core.has_majority(now));
}

#[test]
fn a_replica_of_an_empty_master_is_still_a_candidate() {
    let (mut core, _) = core_with(&[], false);
    core.settings.quorum = 1;
    let start = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), start);
    // Offset 0 (nothing was ever written) but it did connect: its link is
    // down for 2 s, not "since -1".
    let synced_empty = OwnedFrame::BulkString(
        b"run_id:dddddddddddddddddddddddddddddddddddddddd\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:2\r\nslave_repl_offset:0\r\nslave_priority:100\r\n".to_vec(),
    );
    let mut now = start;
    let mut promoted = false;
    while now < start + Duration::from_secs(4) && !promoted {
        now += Duration::from_millis(100);
        core.tick(now);
        core.observe(
            addr(REPLICA),
            Sent::Ping,
            Ok(OwnedFrame::SimpleString(b"PONG".to_vec())),
            now,
        );
        core.observe(addr(REPLICA), Sent::Info, Ok(synced_empty.clone()), now);
        promoted = core.outbox.iter().any(|o| o.sent == Sent::Promote);
    }
    assert!(promoted, "the replica of an empty master is promoted");
}

/// An epoch from the network at the very top (a vote request for epoch
/// `u64::MAX`) once made the next failover's `+= 1` overflow: a panic in a
/// debug build, a wrap to 0 in release. The epoch now stays at the top.
#[test]
fn an_epoch_at_the_top_does_not_overflow() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    let replica_info = synced_replica_of("127.0.0.1");
    core.observe(
        addr(REPLICA),
        Sent::Ping,
        Ok(OwnedFrame::SimpleString(b"PONG".to_vec())),
        now,
    );
    core.observe(addr(REPLICA), Sent::Info, Ok(replica_info), now);
    let candidate = "cccccccccccccccccccccccccccccccccccccccc";
    core.vote_for(candidate, u64::MAX, now);
    assert_eq!(core.current_epoch, u64::MAX);
    core.force_failover(now).expect("a failover starts");
    assert_eq!(core.current_epoch, u64::MAX);
}

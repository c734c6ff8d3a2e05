//! What the core does with what nodes and peers report: addresses of both IP
//! versions, replicas that follow another master, a promotion seen in TILT,
//! peers known from before a restart, replicas found in the master's INFO.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{
    ID_A, MASTER, PEER_A, REPLICA, addr, answer, core_with, hello_from, info_master, promoted_info,
    promoting, synced_replica_of,
};
use crate::backend::probe::ProbeError;
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::Core;
use crate::sentinel::events::Events;
use crate::sentinel::link::Sent;
use crate::sentinel::persist::SavedPeer;

#[test]
fn replicas_with_ipv6_addresses_are_discovered_from_info() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    let info = b"# Server\r\nrun_id:cccccccccccccccccccccccccccccccccccccccc\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=::1,port=6390,state=online,offset=10,lag=0\r\nmaster_repl_offset:10\r\n";
    core.observe(
        addr(MASTER),
        Sent::Info,
        Ok(OwnedFrame::BulkString(info.to_vec())),
        now,
    );
    let replica: SocketAddr = "[::1]:6390".parse().expect("address");
    assert!(
        core.replicas.contains_key(&replica),
        "replica at [::1]:6390 discovered from INFO: {:?}",
        core.replicas.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_promotion_seen_in_tilt_waits_for_tilt_to_end() {
    let (mut core, _) = core_with(&[], false);
    let now = promoting(&mut core);
    // The process stalls for 3 s, then the promoted replica's INFO arrives.
    let resumed = now + Duration::from_secs(3);
    core.tick(resumed);
    assert!(core.tilt.is_on());
    core.observe(addr(REPLICA), Sent::Info, Ok(promoted_info()), resumed);
    assert_eq!(
        core.master.addr,
        addr(MASTER),
        "as Sentinel, nothing is acted on in TILT"
    );
    assert_eq!(
        core.status(resumed).failover.as_deref(),
        Some("wait_promotion")
    );
}

#[test]
fn is_master_down_by_addr_takes_an_ipv6_address() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    let reply = answer(
        &mut core,
        &[
            "SENTINEL",
            "is-master-down-by-addr",
            "::1",
            "6379",
            "0",
            "*",
        ],
        now,
    );
    assert_eq!(
        reply,
        OwnedFrame::Array(vec![
            OwnedFrame::Integer(0),
            OwnedFrame::BulkString(b"*".to_vec()),
            OwnedFrame::Integer(0),
        ]),
        "not our master, not down; and not an error"
    );
}

#[test]
fn a_replica_of_another_master_is_fixed_only_after_a_failover_timeout() {
    let (mut core, _) = core_with(&[], false);
    let start = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), start);
    let elsewhere = synced_replica_of("127.0.0.9");
    let fixes = |core: &Core| {
        core.outbox
            .iter()
            .filter(|o| o.to == addr(REPLICA) && o.sent == Sent::Reconfigure)
            .count()
    };
    // Another Sentinel's failover may just have moved it: leave it alone.
    core.observe(addr(REPLICA), Sent::Info, Ok(elsewhere.clone()), start);
    let soon = start + Duration::from_secs(9);
    core.observe(addr(REPLICA), Sent::Info, Ok(elsewhere.clone()), soon);
    assert_eq!(fixes(&core), 0, "corrected within the failover timeout");
    // Still there a failover timeout (10 s) later: it is told to follow ours.
    let later = start + Duration::from_secs(11);
    core.observe(addr(REPLICA), Sent::Info, Ok(elsewhere), later);
    assert_eq!(
        fixes(&core),
        1,
        "+fix-slave-config after the failover timeout"
    );
}

#[test]
fn an_observer_taken_back_from_the_saved_state_survives_the_first_tick() {
    let (core, _) = core_with(&[], false);
    let mut saved = core.saved_state();
    let observer = "127.0.0.1:26390";
    saved.peers.push(SavedPeer {
        addr: observer.into(),
        run_id: "e".repeat(40),
    });
    let (tx, _rx) = broadcast::channel(16);
    let start = Instant::now();
    let mut restarted = Core::new(
        core.settings.clone(),
        addr(MASTER),
        Some(saved),
        Events::new(tx),
        start,
    );
    restarted.tick(start + Duration::from_millis(100));
    assert!(
        restarted.peers.contains_key(&addr(observer)),
        "a restart must not forget the Sentinels it knew"
    );
    // Silent for a minute after the restart, it is forgotten like any other.
    let mut now = start;
    while now < start + Duration::from_secs(61) {
        now += Duration::from_millis(500);
        restarted.tick(now);
    }
    assert!(!restarted.peers.contains_key(&addr(observer)));
}

#[test]
fn a_peer_that_answers_ping_with_an_error_is_not_pinged_again_at_once() {
    let (mut core, _) = core_with(&[PEER_A], false);
    let peer_pings = |core: &Core| {
        core.outbox
            .iter()
            .filter(|o| o.to == addr(PEER_A) && o.sent == Sent::Ping)
            .count()
    };
    let start = Instant::now();
    core.tick(start);
    assert_eq!(peer_pings(&core), 1, "the first PING");
    core.outbox.clear();
    core.observe(
        addr(PEER_A),
        Sent::Ping,
        Err(ProbeError::Refused(
            "NOAUTH Authentication required.".into(),
        )),
        start,
    );
    // Refused, but over a working link: the next PING waits its period.
    core.tick(start + Duration::from_millis(100));
    assert_eq!(peer_pings(&core), 0, "pinged again 100 ms later");
}

#[test]
fn a_voter_that_moved_is_announced_once_not_at_every_hello() {
    let (mut core, mut events) = core_with(&[PEER_A], false);
    let now = Instant::now();
    core.take_hello(&hello_from(PEER_A, ID_A, 1, MASTER, 0), now);
    // The same voter, same run id, now announcing another address.
    let moved = "127.0.0.1:26390";
    for _ in 0..5 {
        core.take_hello(&hello_from(moved, ID_A, 1, MASTER, 0), now);
    }
    let mut switches = 0;
    while let Ok(event) = events.try_recv() {
        switches += usize::from(event.channel == "+sentinel-address-switch");
    }
    assert_eq!(switches, 1, "one +sentinel-address-switch for one move");
    assert!(
        core.peers.get(&addr(PEER_A)).is_some_and(|p| p.voter),
        "the voter keeps its configured address"
    );
}

/// The master's `INFO` under run id `run_id`.
fn master_info_of(run_id: char) -> OwnedFrame {
    let id: String = std::iter::repeat_n(run_id, 40).collect();
    OwnedFrame::BulkString(format!("run_id:{id}\r\nrole:master\r\n").into_bytes())
}

/// Runs the core for `for_ms` from `from`, the master answering every PING
/// with `reply`; returns where it stopped.
fn pinged(core: &mut Core, from: Instant, for_ms: u64, reply: &str) -> Instant {
    let mut now = from;
    while now < from + Duration::from_millis(for_ms) {
        now += Duration::from_millis(250);
        core.tick(now);
        let answer = if reply == "PONG" {
            Ok(OwnedFrame::SimpleString(b"PONG".to_vec()))
        } else {
            Err(ProbeError::Refused(reply.to_owned()))
        };
        core.observe(addr(MASTER), Sent::Ping, answer, now);
    }
    now
}

#[test]
fn a_rebooted_master_that_only_answers_loading_is_down_after_the_reboot_period() {
    for period in [None, Some(Duration::from_millis(2000))] {
        let (mut core, _) = core_with(&[], false);
        core.settings.master_reboot_down_after = period;
        let start = Instant::now();
        core.observe(addr(MASTER), Sent::Info, Ok(master_info_of('c')), start);
        let now = pinged(&mut core, start, 1000, "PONG");
        // It restarts: a new run id, then LOADING for a long time (a valid
        // reply, so down-after alone never marks it down).
        core.observe(addr(MASTER), Sent::Info, Ok(master_info_of('e')), now);
        let loading = "LOADING Redis is loading the dataset in memory";
        let now = pinged(&mut core, now, 1500, loading);
        assert!(!core.master.sdown.is_down(), "within the period");
        let now = pinged(&mut core, now, 1000, loading);
        assert_eq!(
            core.master.sdown.is_down(),
            period.is_some(),
            "SDOWN past the reboot period only when it is set ({period:?})"
        );
        pinged(&mut core, now, 500, "PONG");
        assert!(!core.master.sdown.is_down(), "a PONG ends it");
    }
}

#[test]
fn a_replica_found_in_the_masters_info_is_asked_at_once() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    core.tick(now);
    core.outbox.clear();
    // The same instant: no tick runs between the master's INFO and the asks.
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    let asked: Vec<Sent> = core
        .outbox
        .iter()
        .filter(|o| o.to == addr(REPLICA))
        .map(|o| o.sent)
        .collect();
    assert!(
        asked.contains(&Sent::Ping) && asked.contains(&Sent::Info),
        "{asked:?}"
    );
}

#[test]
fn probes_lost_with_their_link_go_out_again() {
    let (mut core, _) = core_with(&[PEER_A], false);
    let start = Instant::now();
    let sent_to = |core: &Core, to: &str, sent: Sent| {
        core.outbox
            .iter()
            .any(|o| o.to == addr(to) && o.sent == sent)
    };
    core.tick(start);
    assert!(sent_to(&core, MASTER, Sent::Ping) && sent_to(&core, MASTER, Sent::Info));
    assert!(sent_to(&core, PEER_A, Sent::Ping));
    core.outbox.clear();
    // Unanswered, they are still in flight: nothing new goes out.
    let later = start + Duration::from_millis(1500);
    core.tick(later);
    assert!(!sent_to(&core, MASTER, Sent::Ping) && !sent_to(&core, PEER_A, Sent::Ping));
    // Their links closed (new credentials): they go out again.
    core.jobs_lost(addr(MASTER));
    core.jobs_lost(addr(PEER_A));
    core.tick(later + Duration::from_millis(100));
    assert!(sent_to(&core, MASTER, Sent::Ping) && sent_to(&core, MASTER, Sent::Info));
    assert!(sent_to(&core, PEER_A, Sent::Ping));
}

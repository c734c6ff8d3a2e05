//! Several groups in one Sentinel: `SENTINEL MONITOR`, `SET`, `REMOVE` at run
//! time, the tables that route a command to its group, and the saved state.

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{MASTER, addr};
use crate::resp::value::OwnedFrame;
use crate::sentinel::groups::{Groups, Template};

/// A Sentinel with no group yet, and its event feed.
fn sentinel() -> (Groups, broadcast::Receiver<crate::sentinel::api::Event>) {
    let (tx, rx) = broadcast::channel(64);
    let template = Template::new(addr("127.0.0.1:26379"), tx);
    (Groups::new("e".repeat(40), template), rx)
}

/// A Sentinel monitoring one group, `name`, at 127.0.0.1:6379 (added with
/// `SENTINEL MONITOR`, as an operator would).
fn monitoring(name: &str, quorum: &str) -> Groups {
    let (mut s, _) = sentinel();
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "MONITOR", name, "127.0.0.1", "6379", quorum]
        ),
        ok()
    );
    s
}

fn ask(groups: &mut Groups, args: &[&str]) -> OwnedFrame {
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    groups.answer(&args, Instant::now())
}

fn err(text: &str) -> OwnedFrame {
    OwnedFrame::Error(text.to_owned())
}

fn ok() -> OwnedFrame {
    OwnedFrame::SimpleString(b"OK".to_vec())
}

/// The value of `key` in a flat `[key, value, …]` reply.
fn field(reply: &OwnedFrame, key: &str) -> Option<String> {
    let OwnedFrame::Array(items) = reply else {
        return None;
    };
    items.chunks(2).find_map(|pair| match pair {
        [OwnedFrame::BulkString(k), OwnedFrame::BulkString(v)] if k == key.as_bytes() => {
            Some(String::from_utf8_lossy(v).into_owned())
        }
        _ => None,
    })
}

#[test]
fn monitor_adds_a_group_with_sentinels_defaults_and_remove_takes_it_away() {
    let (mut s, mut events) = sentinel();
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "MONITOR", "a", "127.0.0.1", "6379", "2"]
        ),
        ok()
    );
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "MONITOR", "b", "127.0.0.1", "6390", "1"]
        ),
        ok()
    );
    let got = events.try_recv().expect("+monitor");
    assert_eq!(
        (got.channel.as_str(), got.message.as_str()),
        ("+monitor", "master a 127.0.0.1 6379 quorum 2")
    );
    let OwnedFrame::Array(masters) = ask(&mut s, &["SENTINEL", "MASTERS"]) else {
        panic!("MASTERS is an array");
    };
    assert_eq!(masters.len(), 2);
    let a = ask(&mut s, &["SENTINEL", "MASTER", "a"]);
    assert_eq!(
        field(&a, "down-after-milliseconds").as_deref(),
        Some("30000")
    );
    assert_eq!(field(&a, "failover-timeout").as_deref(), Some("180000"));
    assert_eq!(field(&a, "parallel-syncs").as_deref(), Some("1"));
    assert_eq!(field(&a, "quorum").as_deref(), Some("2"));
    assert_eq!(
        ask(&mut s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "b"]),
        OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"127.0.0.1".to_vec()),
            OwnedFrame::BulkString(b"6390".to_vec())
        ])
    );
    let OwnedFrame::BulkString(info) = ask(&mut s, &["INFO"]) else {
        panic!("INFO is a bulk string");
    };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains("sentinel_masters:2\r\n"), "{info}");
    assert!(
        info.contains("master1:name=b,status=ok,address=127.0.0.1:6390"),
        "{info}"
    );

    assert_eq!(ask(&mut s, &["SENTINEL", "REMOVE", "a"]), ok());
    assert_eq!(
        ask(&mut s, &["SENTINEL", "MASTER", "a"]),
        err("ERR No such master with that name")
    );
    assert_eq!(
        ask(&mut s, &["SENTINEL", "REMOVE", "a"]),
        err("ERR No such master with that name")
    );
    assert_eq!(
        ask(&mut s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "a"]),
        OwnedFrame::Null
    );
}

#[test]
fn monitor_refuses_what_sentinel_refuses() {
    let (mut s, _) = sentinel();
    let monitor = |s: &mut Groups, ip: &str, port: &str, quorum: &str| {
        ask(s, &["SENTINEL", "MONITOR", "m", ip, port, quorum])
    };
    for (ip, port, quorum, refusal) in [
        ("127.0.0.1", "6379", "0", "ERR Quorum must be 1 or greater."),
        ("127.0.0.1", "6379", "x", "ERR Invalid quorum"),
        ("127.0.0.1", "0", "1", "ERR Invalid port"),
        ("127.0.0.1", "70000", "1", "ERR Invalid port"),
        (
            "no.such.host",
            "6379",
            "1",
            "ERR Invalid IP address or hostname specified",
        ),
    ] {
        assert_eq!(
            monitor(&mut s, ip, port, quorum),
            err(refusal),
            "{ip} {port} {quorum}"
        );
    }
    assert_eq!(monitor(&mut s, "127.0.0.1", "6379", "1"), ok());
    assert_eq!(
        monitor(&mut s, "127.0.0.1", "6380", "1"),
        err("ERR Duplicated master name")
    );
}

#[test]
fn set_changes_a_group_and_refuses_in_sentinels_words() {
    let mut s = monitoring("m", "2");
    assert_eq!(
        ask(
            &mut s,
            &[
                "SENTINEL",
                "SET",
                "m",
                "down-after-milliseconds",
                "2000",
                "quorum",
                "3",
                "parallel-syncs",
                "10"
            ]
        ),
        ok()
    );
    let m = ask(&mut s, &["SENTINEL", "MASTER", "m"]);
    assert_eq!(
        field(&m, "down-after-milliseconds").as_deref(),
        Some("2000")
    );
    assert_eq!(field(&m, "quorum").as_deref(), Some("3"));
    assert_eq!(field(&m, "parallel-syncs").as_deref(), Some("10"));
    for (args, expected) in [
        (
            &["m", "down-after-milliseconds", "-20"][..],
            "ERR Invalid argument '-20' for SENTINEL SET 'down-after-milliseconds'",
        ),
        (
            &["m", "down-after-milliseconds", "abc"],
            "ERR Invalid argument 'abc' for SENTINEL SET 'down-after-milliseconds'",
        ),
        (
            &["m", "fakeoption"],
            "ERR wrong number of arguments for 'sentinel|set' command",
        ),
        (
            &["m", "fakeoption", "fakevalue"],
            "ERR Unknown option or number of arguments for SENTINEL SET 'fakeoption'",
        ),
        (
            &["nope", "quorum", "1"],
            "ERR No such master with that name",
        ),
    ] {
        let words: Vec<&str> = ["SENTINEL", "SET"].iter().chain(args).copied().collect();
        assert_eq!(ask(&mut s, &words), err(expected), "{args:?}");
    }
    let m = ask(&mut s, &["SENTINEL", "MASTER", "m"]);
    assert_eq!(
        field(&m, "down-after-milliseconds").as_deref(),
        Some("2000"),
        "a refused SET changed nothing"
    );
    // Scripts are denied unless deny-scripts-reconfig is off, then checked.
    let script = [
        "SENTINEL",
        "SET",
        "m",
        "notification-script",
        "/no/such/script",
    ];
    assert!(
        matches!(ask(&mut s, &script), OwnedFrame::Error(e) if e.contains("denied for security reasons"))
    );
    s.template.deny_scripts_reconfig = false;
    assert_eq!(
        ask(&mut s, &script),
        err("ERR Notification script seems non existing or non executable")
    );
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "SET", "m", "notification-script", "/bin/true"]
        ),
        ok()
    );
}

#[test]
fn commands_find_their_group_and_the_peer_protocol_finds_it_by_address() {
    let mut s = monitoring("a", "1");
    ask(
        &mut s,
        &["SENTINEL", "MONITOR", "b", "127.0.0.1", "6390", "1"],
    );
    let down_b = ask(
        &mut s,
        &[
            "SENTINEL",
            "IS-MASTER-DOWN-BY-ADDR",
            "127.0.0.1",
            "6390",
            "0",
            "*",
        ],
    );
    assert_eq!(
        down_b,
        OwnedFrame::Array(vec![
            OwnedFrame::Integer(0),
            OwnedFrame::BulkString(b"*".to_vec()),
            OwnedFrame::Integer(0)
        ])
    );
    // A vote asked for about b is cast in b only.
    let candidate = "c".repeat(40);
    let vote = ask(
        &mut s,
        &[
            "SENTINEL",
            "IS-MASTER-DOWN-BY-ADDR",
            "127.0.0.1",
            "6390",
            "7",
            &candidate,
        ],
    );
    assert!(
        matches!(&vote, OwnedFrame::Array(items) if items.get(1) == Some(&OwnedFrame::BulkString(candidate.clone().into_bytes()))),
        "{vote:?}"
    );
    assert!(s.cores["b"].vote.is_some() && s.cores["a"].vote.is_none());
    // The epoch is the Sentinel's: both groups moved to 7.
    assert_eq!(
        (s.cores["a"].current_epoch, s.cores["b"].current_epoch),
        (7, 7)
    );
    assert_eq!(
        ask(&mut s, &["SENTINEL", "RESET", "*"]),
        OwnedFrame::Integer(2)
    );
    assert_eq!(
        ask(&mut s, &["SENTINEL", "RESET", "a*"]),
        OwnedFrame::Integer(1)
    );
    assert_eq!(
        ask(&mut s, &["ROLE"]),
        OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"sentinel".to_vec()),
            OwnedFrame::Array(vec![
                OwnedFrame::BulkString(b"a".to_vec()),
                OwnedFrame::BulkString(b"b".to_vec())
            ])
        ])
    );
}

#[test]
fn debug_sets_every_groups_periods_and_new_groups_defaults() {
    let mut s = monitoring("a", "1");
    assert_eq!(
        ask(
            &mut s,
            &[
                "SENTINEL",
                "DEBUG",
                "ping-period",
                "500",
                "default-down-after",
                "1000"
            ]
        ),
        ok()
    );
    assert_eq!(s.cores["a"].timers.ping.as_millis(), 500);
    ask(
        &mut s,
        &["SENTINEL", "MONITOR", "b", "127.0.0.1", "6390", "1"],
    );
    assert_eq!(s.cores["b"].timers.ping.as_millis(), 500);
    let b = ask(&mut s, &["SENTINEL", "MASTER", "b"]);
    assert_eq!(
        field(&b, "down-after-milliseconds").as_deref(),
        Some("1000")
    );
    let a = ask(&mut s, &["SENTINEL", "MASTER", "a"]);
    assert_eq!(
        field(&a, "down-after-milliseconds").as_deref(),
        Some("30000"),
        "only new groups"
    );
}

#[test]
fn groups_started_at_run_time_are_saved_and_restored_with_their_settings() {
    let (mut s, _) = sentinel();
    let now = Instant::now();
    ask(
        &mut s,
        &["SENTINEL", "MONITOR", "first", "127.0.0.1", "6379", "2"],
    );
    ask(
        &mut s,
        &["SENTINEL", "MONITOR", "second", "127.0.0.1", "6390", "1"],
    );
    ask(
        &mut s,
        &[
            "SENTINEL",
            "SET",
            "second",
            "failover-timeout",
            "5000",
            "auth-pass",
            "secret",
        ],
    );
    s.served.insert("first".into());
    let saved = s.saved_state().expect("a state");
    assert_eq!(saved.master_name, "first");
    assert_eq!(saved.monitored.len(), 1);

    let (mut restarted, _) = sentinel();
    let mut top = saved.clone();
    let monitored = std::mem::take(&mut top.monitored);
    restarted.restore_monitored(monitored, now);
    let second = &restarted.cores["second"];
    assert_eq!(second.settings.failover_timeout.as_millis(), 5000);
    assert_eq!(second.settings.auth.pass.as_deref(), Some("secret"));
    assert_eq!(second.master.addr, addr("127.0.0.1:6390"));
    assert!(second.settings.discover_voters);
    let _ = MASTER;
}

/// A master known by host name is looked up again while its link is down;
/// when the name points elsewhere the master moves there, keeps its name,
/// and is routed to only once `INFO` confirms its role at the new address.
#[test]
fn a_master_known_by_name_moves_with_its_name() {
    let (mut core, _) = super::core_with(&[], false);
    let now = Instant::now();
    core.master.host = Some("redis-0.example".to_owned());
    core.observe(
        addr(MASTER),
        crate::sentinel::link::Sent::Info,
        Ok(super::info_master()),
        now,
    );
    assert_eq!(
        core.names_to_look_up(),
        None,
        "reachable: nothing to look up"
    );
    core.master.link_up = false;
    assert_eq!(
        core.names_to_look_up(),
        Some((addr(MASTER), "redis-0.example".to_owned()))
    );
    let moved = addr("127.0.0.2:6379");
    core.readdress(addr("127.0.0.9:1"), moved, now);
    assert_eq!(
        core.master.addr,
        addr(MASTER),
        "an answer about another address is stale"
    );
    core.readdress(addr(MASTER), moved, now);
    assert_eq!(core.master.addr, moved);
    assert_eq!(core.master.host.as_deref(), Some("redis-0.example"));
    assert_eq!(core.route(now).0, None, "the role is confirmed first");
    core.observe(
        moved,
        crate::sentinel::link::Sent::Info,
        Ok(super::info_master()),
        now,
    );
    assert_eq!(core.route(now).0, Some(moved));
}

/// `SIMULATE-FAILURE` sets Sentinel's crash points for every group (and
/// `INFO` shows them as Sentinel's flags); `INFO-CACHE` gives each node's
/// last `INFO` as it arrived.
#[test]
fn simulate_failure_and_info_cache() {
    let mut s = monitoring("a", "1");
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "SIMULATE-FAILURE", "crash-after-promotion"]
        ),
        ok()
    );
    assert!(s.cores["a"].simulated_failure.after_promotion);
    let OwnedFrame::BulkString(info) = ask(&mut s, &["INFO", "sentinel"]) else {
        panic!("INFO is a bulk string");
    };
    assert!(String::from_utf8_lossy(&info).contains("sentinel_simulate_failure_flags:2\r\n"));
    assert_eq!(
        ask(&mut s, &["SENTINEL", "SIMULATE-FAILURE", "nope"]),
        err("ERR Unknown failure simulation specified")
    );
    assert_eq!(
        ask(&mut s, &["SENTINEL", "SIMULATE-FAILURE", "help"]).clone(),
        OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"crash-after-election".to_vec()),
            OwnedFrame::BulkString(b"crash-after-promotion".to_vec()),
        ])
    );

    let now = Instant::now();
    if let Some(core) = s.cores.get_mut("a") {
        core.observe(
            addr(MASTER),
            crate::sentinel::link::Sent::Info,
            Ok(super::info_master()),
            now,
        );
    }
    let OwnedFrame::Array(cache) = ask(&mut s, &["SENTINEL", "INFO-CACHE", "a", "unknown"]) else {
        panic!("INFO-CACHE is an array");
    };
    assert_eq!(cache.len(), 2, "the known group only: {cache:?}");
    assert_eq!(cache[0], OwnedFrame::BulkString(b"a".to_vec()));
    let OwnedFrame::Array(nodes) = &cache[1] else {
        panic!("the group's nodes are an array");
    };
    let OwnedFrame::Array(master) = &nodes[0] else {
        panic!("[age, info]");
    };
    assert!(matches!(&master[1], OwnedFrame::BulkString(text) if text.starts_with(b"# Server")));
    let OwnedFrame::Array(replica) = &nodes[1] else {
        panic!("[age, info]");
    };
    assert_eq!(
        replica[1],
        OwnedFrame::Null,
        "the replica has not answered INFO yet"
    );
}

/// With `announce-hostnames yes`, a master and replicas known by name are
/// shown and announced by name (replies, hellos, `INFO`); with `no`, by IP.
#[test]
fn announce_hostnames_shows_names() {
    let mut s = monitoring("a", "1");
    if let Some(core) = s.cores.get_mut("a") {
        core.master.host = Some("redis-0.example".to_owned());
    }
    let by_name = |s: &mut Groups| ask(s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "a"]);
    let first = |reply: OwnedFrame| match reply {
        OwnedFrame::Array(items) => items.into_iter().next(),
        _ => None,
    };
    assert_eq!(
        first(by_name(&mut s)),
        Some(OwnedFrame::BulkString(b"127.0.0.1".to_vec()))
    );
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "CONFIG", "SET", "announce-hostnames", "yes"]
        ),
        ok()
    );
    assert_eq!(
        first(by_name(&mut s)),
        Some(OwnedFrame::BulkString(b"redis-0.example".to_vec()))
    );
    assert!(
        s.cores["a"]
            .hello_payload()
            .contains(",a,redis-0.example,6379,")
    );
    let OwnedFrame::BulkString(info) = ask(&mut s, &["INFO", "sentinel"]) else {
        panic!("INFO is a bulk string");
    };
    assert!(String::from_utf8_lossy(&info).contains("address=redis-0.example:6379"));
    assert_eq!(
        ask(
            &mut s,
            &["SENTINEL", "CONFIG", "SET", "announce-hostnames", "no"]
        ),
        ok()
    );
    assert_eq!(
        first(by_name(&mut s)),
        Some(OwnedFrame::BulkString(b"127.0.0.1".to_vec()))
    );
}

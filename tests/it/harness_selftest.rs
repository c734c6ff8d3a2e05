//! Tests of the test harness itself: ports, polling, Redis and Sentinel
//! processes and the raw RESP client. None of them runs the proxy.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::client::{encode_command, reply_len};
use crate::support::{
    self, RedisServer, RespClient, Role, Sentinel, SentinelOptions, Topology, assert_eventually,
    assert_eventually_async, eventually, free_port,
};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..64).map(|_| free_port()).collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "ports handed out twice: {ports:?}"
    );
    for port in ports {
        std::net::TcpListener::bind(support::loopback(port))
            .unwrap_or_else(|err| panic!("port {port} is not bindable: {err}"));
    }
}

#[test]
fn eventually_is_bounded() {
    let start = Instant::now();
    assert!(!eventually(Duration::from_millis(200), || false));
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    let mut calls = 0;
    assert_eventually!(Duration::from_secs(5), {
        calls += 1;
        calls == 3
    });
    assert_eq!(calls, 3);

    let result = std::panic::catch_unwind(|| {
        assert_eventually!(Duration::from_millis(50), 1 + 1 == 3, "with {}", "context");
    });
    let message = result
        .expect_err("the assertion must fail")
        .downcast::<String>()
        .expect("panic message is a String");
    assert!(message.contains("1 + 1 == 3"), "{message}");
    assert!(message.contains("with context"), "{message}");
}

#[tokio::test]
async fn eventually_async_is_bounded() {
    let start = Instant::now();
    assert!(!support::eventually_async(Duration::from_millis(100), async || false).await);
    assert!(start.elapsed() < Duration::from_secs(2));

    let mut calls = 0;
    assert_eventually_async!(Duration::from_secs(5), {
        tokio::task::yield_now().await;
        calls += 1;
        calls == 2
    });
    assert_eq!(calls, 2);
}

#[test]
fn reply_framing() {
    let complete: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR unknown command\r\n",
        b":-42\r\n",
        b"$5\r\nhello\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
        b"$4\r\na\r\nb\r\n",
        b"_\r\n",
        b",3.14\r\n",
        b"#t\r\n",
        b"(3492890328409238509324850943850943825024385\r\n",
        b"!9\r\nERR oops!\r\n",
        b"=15\r\ntxt:Some string\r\n",
        b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n",
        b"~2\r\n+a\r\n+b\r\n",
        b">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
        b"|1\r\n+key\r\n+value\r\n*1\r\n:1\r\n",
        b"$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n",
        b"*?\r\n:1\r\n*?\r\n:2\r\n.\r\n.\r\n",
    ];
    for reply in complete {
        assert_eq!(
            reply_len(reply),
            Ok(Some(reply.len())),
            "{}",
            support::client::show(reply)
        );
        for cut in 0..reply.len() {
            assert_eq!(
                reply_len(&reply[..cut]),
                Ok(None),
                "prefix {} of {}",
                cut,
                support::client::show(reply)
            );
        }
        let mut two = reply.to_vec();
        two.extend_from_slice(b"+NEXT\r\n");
        assert_eq!(reply_len(&two), Ok(Some(reply.len())));
    }
    assert!(reply_len(b"?what\r\n").is_err());
    assert!(reply_len(b"$3\r\nabcd\r\n").is_err());
    assert!(reply_len(b"*x\r\n").is_err());
    assert_eq!(
        encode_command(&[b"SET", b"k", b""]),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    );
}

#[test]
fn redis_server_answers_ping() {
    let server = RedisServer::spawn();
    let mut conn = server.conn();
    let pong: String = ::redis::cmd("PING").query(&mut conn).expect("PING");
    assert_eq!(pong, "PONG");
    assert_eq!(
        server.role().expect("ROLE"),
        Role::Master { replicas: vec![] }
    );

    let mut raw = RespClient::connect(server.addr());
    assert_eq!(raw.command(&["PING"]), b"+PONG\r\n");
    // Pipelined commands come back as separate replies.
    raw.send(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$3\r\na\rb\r\n");
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
    assert_eq!(raw.read_reply(), b"$3\r\na\rb\r\n");
    raw.send_command(&["QUIT"]);
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    assert_eq!(raw.read_until_closed(), b"");

    let info = server.info("server").expect("INFO");
    assert_eq!(info.get("tcp_port"), Some(&server.port().to_string()));
    assert_eq!(info.get("process_id"), Some(&server.pid().to_string()));
}

#[tokio::test]
async fn redis_server_async_connection() {
    let server = RedisServer::spawn();
    let mut conn = server.async_conn().await;
    let () = ::redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let value: String = ::redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, "v");
}

#[test]
fn kill9_and_restart_keep_the_port() {
    let mut server = RedisServer::builder().config("maxmemory 64mb").spawn();
    let port = server.port();
    let first_pid = server.pid();
    server.cmd(&["SET", "k", "v"]).expect("SET");

    server.kill9();
    assert!(!server.is_running());
    assert!(RespClient::try_connect(server.addr(), Duration::from_secs(1)).is_err());

    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    // Nothing is persisted, and the extra config line still applies.
    assert_eq!(server.cmd(&["GET", "k"]).expect("GET"), ::redis::Value::Nil);
    let maxmemory = server
        .cmd(&["CONFIG", "GET", "maxmemory"])
        .expect("CONFIG GET");
    assert_eq!(
        maxmemory,
        ::redis::Value::Array(vec![
            ::redis::Value::BulkString(b"maxmemory".to_vec()),
            ::redis::Value::BulkString(b"67108864".to_vec()),
        ])
    );
}

#[test]
fn freeze_stops_answers_until_unfreeze() {
    let mut server = RedisServer::spawn();
    server.freeze();
    let mut raw = RespClient::try_connect(server.addr(), Duration::from_millis(300))
        .expect("the kernel still accepts connections");
    raw.send_command(&["PING"]);
    let err = raw
        .try_read_reply()
        .expect_err("a frozen server does not answer");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    server.unfreeze();
    raw.set_timeout(Duration::from_secs(5));
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
}

#[test]
fn requirepass_is_enforced() {
    let server = RedisServer::builder().requirepass("s3cret").spawn();
    let mut raw = RespClient::connect(server.addr());
    let reply = raw.command(&["PING"]);
    assert!(
        reply.starts_with(b"-NOAUTH"),
        "{}",
        support::client::show(&reply)
    );
    assert_eq!(raw.command(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.command(&["PING"]), b"+PONG\r\n");
    // The helpers authenticate with the configured password.
    assert!(server.role().expect("ROLE").is_master());
}

#[test]
fn raw_client_frames_resp3_replies() {
    let server = RedisServer::builder()
        .config("enable-debug-command yes")
        .spawn();
    let mut raw = RespClient::connect(server.addr());
    let hello = raw.command(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", support::client::show(&hello));
    for kind in [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push",
        "verbatim", "true", "false",
    ] {
        let mut reply = raw.command(&["DEBUG", "PROTOCOL", kind]);
        if kind == "push" {
            assert!(reply.starts_with(b">"), "{}", support::client::show(&reply));
            // The push frame is followed by the command's actual reply.
            reply = raw.read_reply();
        }
        assert_eq!(
            reply_len(&reply),
            Ok(Some(reply.len())),
            "{kind}: {}",
            support::client::show(&reply)
        );
        // Nothing of the reply is left behind.
        assert_eq!(raw.command(&["PING"]), b"+PONG\r\n", "after {kind}");
    }
}

#[test]
fn replica_syncs_with_master() {
    let master = RedisServer::spawn();
    let replica = RedisServer::builder().replica_of(master.addr()).spawn();
    assert_eventually!(WAIT, replica.master_link_up(), "log:\n{}", replica.log());
    match replica.role().expect("ROLE") {
        Role::Replica {
            master: addr,
            state,
        } => {
            assert_eq!(addr, master.addr());
            assert_eq!(state, "connected");
        }
        other => panic!("unexpected role {other:?}"),
    }
    assert_eventually!(
        WAIT,
        master.role().expect("ROLE")
            == Role::Master {
                replicas: vec![replica.addr()]
            }
    );
    master.cmd(&["SET", "k", "v"]).expect("SET");
    assert_eventually!(
        WAIT,
        replica.cmd(&["GET", "k"]).ok() == Some(::redis::Value::BulkString(b"v".to_vec()))
    );
}

#[test]
fn three_sentinels_discover_each_other() {
    let master = RedisServer::spawn();
    let replica = RedisServer::builder().replica_of(master.addr()).spawn();
    assert_eventually!(WAIT, replica.master_link_up());
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::spawn(master.addr(), SentinelOptions::default()))
        .collect();
    for sentinel in &sentinels {
        assert_eventually!(
            WAIT,
            sentinel.master_addr() == Some(master.addr()),
            "sentinel {}",
            sentinel.addr()
        );
        assert_eventually!(
            WAIT,
            sentinel
                .master_info()
                .is_ok_and(|info| info.get("num-other-sentinels").map(String::as_str) == Some("2")),
            "sentinel {} log:\n{}",
            sentinel.addr(),
            sentinel.log()
        );
        assert_eventually!(WAIT, sentinel.sees(master.addr(), 1, 2));
        let others: HashSet<u16> = sentinel
            .sentinels()
            .expect("SENTINEL SENTINELS")
            .iter()
            .map(|s| s["port"].parse().expect("port"))
            .collect();
        let expected: HashSet<u16> = sentinels
            .iter()
            .map(Sentinel::port)
            .filter(|&p| p != sentinel.port())
            .collect();
        assert_eq!(others, expected);
    }
}

#[test]
fn topology_fails_over_and_old_master_rejoins() {
    let mut topology = Topology::spawn(2, 3);
    assert_eq!(topology.nodes.len(), 3);
    let old = topology.current_master();
    assert_eq!(old, topology.nodes[0].addr());

    assert_eq!(topology.kill_master(), old);
    let new = topology.wait_for_new_master(old);
    assert_ne!(new, old);
    assert!(topology.node(new).role().expect("ROLE").is_master());
    for sentinel in &topology.sentinels {
        assert_eq!(sentinel.master_addr(), Some(new));
    }

    // The old master comes back still configured as a master; the
    // sentinels turn it into a replica of the current master. That is
    // usually `new`, but on a loaded machine the sentinels may legitimately
    // fail over once more, so compare with whatever they report now.
    topology.node_mut(old).restart();
    assert_eventually!(
        Duration::from_secs(40),
        topology.node(old).role().ok().and_then(|r| r.master()) == Some(topology.current_master()),
        "old master log:\n{}",
        topology.node(old).log()
    );
    topology.wait_until_replicas_synced(WAIT);
}

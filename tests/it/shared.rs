//! `--share-backend`: sessions in Redis's default connection state share one
//! backend connection per master, and move to a connection of their own at
//! their first command that uses or changes connection state. What a client
//! sees must not change; what Redis sees is fewer connections.
//!
//! Sharing is the default: the data path tests (`resp`, `session`, `limits`,
//! `failover`, …) run with it, and again without it
//! (`SENTINEL_PROXY_SHARE_BACKEND=false`, see `scripts/test.sh`); these tests
//! cover what is particular to it.

use std::time::{Duration, Instant};

use crate::support::client::show;
use crate::support::{Proxy, RedisServer, assert_eventually};

/// A Redis server and a proxy in front of it that shares backend connections.
fn shared_proxy() -> (RedisServer, Proxy) {
    let redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master, "--share-backend"]);
    (redis, proxy)
}

/// One series of the proxy's metrics, scraped now.
fn metric(proxy: &Proxy, series: &str) -> Option<f64> {
    crate::metrics::scrape(proxy).get(series).copied()
}

/// Clients whose commands go over the shared connection now.
fn sharing_clients(proxy: &Proxy) -> Option<f64> {
    metric(proxy, "sentinel_proxy_shared_backend_clients")
}

#[test]
fn stateless_clients_share_one_backend_connection() {
    let (redis, proxy) = shared_proxy();
    let mut clients: Vec<_> = (0..20).map(|_| proxy.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let key = format!("key-{i}");
        assert_eq!(
            show(&client.command(&["SET", &key, &i.to_string()])),
            show(b"+OK\r\n")
        );
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let key = format!("key-{i}");
        let expected = format!("${}\r\n{i}\r\n", i.to_string().len());
        assert_eq!(
            show(&client.command(&["GET", &key])),
            show(expected.as_bytes())
        );
    }
    // The shared connection and this test's own CLIENT LIST connection (the
    // proxy's start-up COMMAND connection may take a moment to go).
    assert_eventually!(
        Duration::from_secs(3),
        redis.data_clients() == Some(2),
        "20 clients, one backend connection"
    );
    let value = |series: &str| metric(&proxy, series);
    assert_eq!(sharing_clients(&proxy), Some(20.0));
    assert_eq!(
        value(r#"sentinel_proxy_backend_connections{kind="shared"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"sentinel_proxy_backend_connections{kind="own"}"#),
        Some(0.0)
    );
    // A client that selects a database moves to a connection of its own.
    assert_eq!(
        show(&clients[0].command(&["SELECT", "1"])),
        show(b"+OK\r\n")
    );
    assert_eq!(sharing_clients(&proxy), Some(19.0));
    assert_eq!(
        value(r#"sentinel_proxy_backend_connections{kind="own"}"#),
        Some(1.0)
    );
}

#[test]
fn a_session_that_selects_a_database_moves_to_its_own_connection() {
    let (redis, proxy) = shared_proxy();
    let mut mover = proxy.connect();
    let mut other = proxy.connect();
    assert_eq!(
        show(&mover.command(&["SET", "where", "db0"])),
        show(b"+OK\r\n")
    );
    assert_eq!(show(&mover.command(&["SELECT", "3"])), show(b"+OK\r\n"));
    assert_eq!(
        show(&mover.command(&["SET", "where", "db3"])),
        show(b"+OK\r\n")
    );
    // The other session is still in database 0, on the shared connection.
    assert_eq!(
        show(&other.command(&["GET", "where"])),
        show(b"$3\r\ndb0\r\n")
    );
    assert_eq!(
        show(&mover.command(&["GET", "where"])),
        show(b"$3\r\ndb3\r\n")
    );
    let mut db3 = redis.conn();
    let in_db3: Option<String> = redis::cmd("SELECT")
        .arg(3)
        .query::<()>(&mut db3)
        .and_then(|()| redis::cmd("GET").arg("where").query(&mut db3))
        .expect("GET in database 3");
    assert_eq!(in_db3.as_deref(), Some("db3"));
    // Shared, the mover's own, this test's two connections.
    assert_eventually!(
        Duration::from_secs(3),
        redis.data_clients() == Some(4),
        "one shared connection and the mover's own"
    );
}

#[test]
fn a_blocked_client_does_not_hold_up_the_others() {
    let (_redis, proxy) = shared_proxy();
    let mut blocked = proxy.connect();
    blocked.set_timeout(Duration::from_secs(10));
    assert_eq!(show(&blocked.command(&["PING"])), show(b"+PONG\r\n"));
    blocked.send_command(&["BLPOP", "jobs", "0"]);
    std::thread::sleep(Duration::from_millis(200));
    let mut other = proxy.connect();
    let start = Instant::now();
    for i in 0..50 {
        let value = i.to_string();
        assert_eq!(
            show(&other.command(&["SET", "k", &value])),
            show(b"+OK\r\n")
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "50 commands took {:?} while another client was blocked",
        start.elapsed()
    );
    assert_eq!(
        show(&other.command(&["RPUSH", "jobs", "job-1"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&blocked.read_reply()),
        show(b"*2\r\n$4\r\njobs\r\n$5\r\njob-1\r\n")
    );
}

/// WAIT counts the writes of the connection it is sent on. Writes a session
/// sent over the shared connection must still count: with the only replica
/// stopped, WAIT has to time out with 0, not answer 1 at once.
#[test]
fn wait_covers_writes_sent_over_the_shared_connection() {
    let master = RedisServer::spawn();
    let mut replica = RedisServer::builder().replica_of(master.addr()).spawn();
    assert_eventually!(
        Duration::from_secs(10),
        replica.master_link_up(),
        "the replica never synced"
    );
    let addr = master.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &addr, "--share-backend"]);
    let mut warmup = proxy.connect();
    assert_eq!(
        show(&warmup.command(&["SET", "warmup", "1"])),
        show(b"+OK\r\n")
    );
    replica.freeze();
    // A fresh session: its SET goes over the shared connection, its WAIT
    // over a connection of its own.
    let mut client = proxy.connect();
    assert_eq!(
        show(&client.command(&["SET", "durable", "1"])),
        show(b"+OK\r\n")
    );
    let start = Instant::now();
    let reply = client.command(&["WAIT", "1", "300"]);
    let waited = start.elapsed();
    replica.unfreeze();
    assert_eq!(
        show(&reply),
        show(b":0\r\n"),
        "no replica acknowledged the write"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "WAIT returned after {waited:?}"
    );
}

#[test]
fn quit_closes_only_its_own_client() {
    let (redis, proxy) = shared_proxy();
    let mut leaving = proxy.connect();
    let mut staying = proxy.connect();
    assert_eq!(show(&leaving.command(&["SET", "a", "1"])), show(b"+OK\r\n"));
    assert_eq!(show(&staying.command(&["SET", "b", "2"])), show(b"+OK\r\n"));
    assert_eq!(show(&leaving.command(&["QUIT"])), show(b"+OK\r\n"));
    assert!(leaving.is_closed_within(Duration::from_secs(2)));
    assert_eq!(show(&staying.command(&["GET", "a"])), show(b"$1\r\n1\r\n"));
    assert_eventually!(
        Duration::from_secs(3),
        redis.data_clients() == Some(2),
        "the shared connection stays"
    );
}

/// Many clients pipelining at once: every reply reaches the client that
/// asked, in order (replies of different sessions interleave on the shared
/// connection and are split back apart).
#[test]
fn concurrent_pipelines_get_their_own_replies_in_order() {
    let (_redis, proxy) = shared_proxy();
    let addr = proxy.addr();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            std::thread::spawn(move || {
                let mut client = crate::support::RespClient::connect(addr);
                for round in 0..50 {
                    let mut pipeline = Vec::new();
                    for i in 0..20 {
                        let key = format!("w{w}-{i}");
                        let value = format!("{w}-{round}-{i}");
                        pipeline.extend(crate::support::client::encode_command(&[
                            b"SET",
                            key.as_bytes(),
                            value.as_bytes(),
                        ]));
                        pipeline.extend(crate::support::client::encode_command(&[
                            b"GET",
                            key.as_bytes(),
                        ]));
                    }
                    client.send(&pipeline);
                    for i in 0..20 {
                        let value = format!("{w}-{round}-{i}");
                        assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
                        let expected = format!("${}\r\n{value}\r\n", value.len());
                        assert_eq!(show(&client.read_reply()), show(expected.as_bytes()));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a pipelining client failed");
    }
}

/// A client that falls behind reading a large reply leaves the shared
/// connection; its SELECT afterwards must happen on a connection of its own,
/// never on the one the other clients share.
#[test]
fn a_slow_reader_moves_out_before_its_next_stateful_command() {
    let (redis, proxy) = shared_proxy();
    let big = vec![b'v'; 32 * 1024 * 1024];
    let mut setter = proxy.connect();
    setter.set_timeout(Duration::from_secs(20));
    setter.send(&crate::support::client::encode_command(&[
        b"SET", b"big", &big,
    ]));
    assert_eq!(show(&setter.read_reply()), show(b"+OK\r\n"));
    let mut slow = proxy.connect();
    slow.set_timeout(Duration::from_secs(20));
    // The GET's reply is far larger than the socket buffers: the proxy holds
    // the rest while the client is not reading.
    slow.send_command(&["GET", "big"]);
    std::thread::sleep(Duration::from_millis(300));
    slow.send_command(&["SELECT", "5"]);
    slow.send_command(&["SET", "in-five", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        slow.read_reply().len(),
        big.len() + "$33554432\r\n\r\n".len()
    );
    assert_eq!(show(&slow.read_reply()), show(b"+OK\r\n"));
    assert_eq!(show(&slow.read_reply()), show(b"+OK\r\n"));
    let mut other = proxy.connect();
    assert_eq!(
        show(&other.command(&["SET", "marker", "db0"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        redis.cmd(&["GET", "marker"]).ok(),
        Some(redis::Value::BulkString(b"db0".to_vec())),
        "another client's write left database 0"
    );
    assert_eq!(
        redis.cmd(&["EXISTS", "in-five"]).ok(),
        Some(redis::Value::Int(0)),
        "the slow reader's write after SELECT 5 landed in database 0"
    );
}

/// CLIENT subcommands concern the client's own connection: each client gets
/// one, so two clients never see the same CLIENT ID.
#[test]
fn client_commands_get_a_connection_of_their_own() {
    let (_redis, proxy) = shared_proxy();
    let mut first = proxy.connect();
    let mut second = proxy.connect();
    assert_eq!(show(&first.command(&["SET", "a", "1"])), show(b"+OK\r\n"));
    assert_eq!(show(&second.command(&["SET", "b", "1"])), show(b"+OK\r\n"));
    let id_first = first.command(&["CLIENT", "ID"]);
    let id_second = second.command(&["CLIENT", "ID"]);
    assert!(id_first.starts_with(b":"), "{}", show(&id_first));
    assert_ne!(show(&id_first), show(&id_second));
    // What client libraries send on connect does not cost the place on the
    // shared connection.
    let mut library = proxy.connect();
    assert_eq!(
        show(&library.command(&["CLIENT", "SETINFO", "LIB-NAME", "legacy-app"])),
        show(b"+OK\r\n")
    );
    assert_eq!(show(&library.command(&["GET", "a"])), show(b"$1\r\n1\r\n"));
    assert_eq!(
        sharing_clients(&proxy),
        Some(1.0),
        "only the library client is still on the shared connection"
    );
}

/// WAIT inside a transaction, after writes over the shared connection: the
/// transaction's replies are exactly its commands' (nothing the proxy sends
/// for its own purposes may land in it).
#[test]
fn wait_inside_multi_after_shared_writes_keeps_the_transaction_intact() {
    let (_redis, proxy) = shared_proxy();
    let mut client = proxy.connect();
    assert_eq!(
        show(&client.command(&["SET", "before", "1"])),
        show(b"+OK\r\n")
    );
    assert_eq!(show(&client.command(&["MULTI"])), show(b"+OK\r\n"));
    assert_eq!(
        show(&client.command(&["SET", "inside", "1"])),
        show(b"+QUEUED\r\n")
    );
    assert_eq!(
        show(&client.command(&["WAIT", "0", "0"])),
        show(b"+QUEUED\r\n")
    );
    assert_eq!(
        show(&client.command(&["EXEC"])),
        show(b"*2\r\n+OK\r\n:0\r\n")
    );
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));
}

/// Containers of admin subcommands (CONFIG, SCRIPT, ACL, …) carry no flags
/// in COMMAND; they still give the client a connection of its own (SCRIPT
/// DEBUG would otherwise take the shared connection over).
#[test]
fn admin_containers_get_a_connection_of_their_own() {
    let (_redis, proxy) = shared_proxy();
    let mut client = proxy.connect();
    assert_eq!(show(&client.command(&["SET", "k", "1"])), show(b"+OK\r\n"));
    assert_eq!(sharing_clients(&proxy), Some(1.0));
    let reply = client.command(&["CONFIG", "GET", "maxclients"]);
    assert!(reply.starts_with(b"*2\r\n"), "{}", show(&reply));
    assert_eq!(
        sharing_clients(&proxy),
        Some(0.0),
        "CONFIG moved the client"
    );
    let mut other = proxy.connect();
    assert_eq!(show(&other.command(&["GET", "k"])), show(b"$1\r\n1\r\n"));
    assert_eq!(
        show(&other.command(&[
            "SCRIPT",
            "EXISTS",
            "0000000000000000000000000000000000000000"
        ])),
        show(b"*1\r\n:0\r\n")
    );
    assert_eq!(
        sharing_clients(&proxy),
        Some(0.0),
        "SCRIPT moved the other client"
    );
}

/// Every reply on a shared connection waits for the ones before it, so a
/// client that reads large values would stall the others at each read: after
/// its first large reply it gets a connection of its own, and the clients
/// reading small values stay on the shared one.
#[test]
fn a_client_that_reads_a_large_value_gets_a_connection_of_its_own() {
    let (redis, proxy) = shared_proxy();
    redis
        .cmd(&["SET", "large", &"v".repeat(1024 * 1024)])
        .expect("SET large");
    let mut small = proxy.connect();
    let mut large = proxy.connect();
    assert_eq!(
        show(&small.command(&["SET", "small", "1"])),
        show(b"+OK\r\n")
    );
    let first = large.command(&["GET", "large"]);
    assert_eq!(first.len(), 1024 * 1024 + "$1048576\r\n\r\n".len());
    // Its next command goes over a connection of its own.
    assert_eq!(
        show(&large.command(&["GET", "small"])),
        show(b"$1\r\n1\r\n")
    );
    assert_eq!(
        show(&small.command(&["GET", "small"])),
        show(b"$1\r\n1\r\n")
    );
    assert_eq!(
        sharing_clients(&proxy),
        Some(1.0),
        "only the small reader shares"
    );
    assert_eq!(
        metric(&proxy, r#"sentinel_proxy_backend_connections{kind="own"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &proxy,
            r#"sentinel_proxy_backend_connections{kind="shared"}"#
        ),
        Some(1.0)
    );
}

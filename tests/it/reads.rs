//! The read endpoint (`--read-listen`): clients are served by the group's
//! replicas that qualify (up, in sync with the current master, lag within
//! `--max-replica-lag-ms`), spread by least connections; writes get the
//! replica's own `-READONLY`. A replica that dies, lags or is promoted
//! loses its clients to another replica (their state replayed), and with no
//! replica left they go where `--read-fallback` says.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::Group;
use crate::support::{self, Proxy, RespClient, assert_eventually};

/// A group of `replicas` replicas and one proxy (quorum 1) with a read
/// endpoint and `flags`. Returns the group and the read endpoint's address.
fn read_group(replicas: usize, flags: &[(&str, &str)]) -> (Group, SocketAddr) {
    let read = support::loopback(support::free_port());
    let mut builder = Group::builder()
        .replicas(replicas)
        .voters(1)
        .flag("--quorum", "1")
        .flag("--read-listen", &read.to_string());
    for (flag, value) in flags {
        builder = builder.flag(flag, value);
    }
    (builder.spawn(), read)
}

/// The replicas the proxy's read endpoint may use now (`/status`).
fn readers(proxy: &Proxy) -> Vec<String> {
    let Ok((200, body)) = proxy.http_get("/status") else {
        return Vec::new();
    };
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    doc["read_endpoints"][0]["replicas"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The port of the server behind `client` (`INFO server`).
fn served_by(client: &mut RespClient) -> u16 {
    let reply = client.command(&["INFO", "server"]);
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|l| l.strip_prefix("tcp_port:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tcp_port in {text}"))
}

fn connect(addr: SocketAddr) -> RespClient {
    RespClient::connect(addr)
}

#[test]
fn reads_spread_over_the_replicas_and_writes_get_readonly() {
    let (group, read) = read_group(2, &[]);
    let proxy = &group.proxies[0];
    assert_eventually!(Duration::from_secs(10), readers(proxy).len() == 2);
    let mut clients: Vec<RespClient> = (0..4).map(|_| connect(read)).collect();
    let mut ports: Vec<u16> = clients.iter_mut().map(served_by).collect();
    ports.sort();
    let replicas: Vec<u16> = group.nodes[1..].iter().map(|n| n.port()).collect();
    assert_eq!(
        ports,
        [
            replicas[0].min(replicas[1]),
            replicas[0].min(replicas[1]),
            replicas[0].max(replicas[1]),
            replicas[0].max(replicas[1])
        ],
        "two clients on each replica"
    );
    let reply = clients[0].command(&["SET", "k", "v"]);
    assert!(
        reply.starts_with(b"-READONLY You can't write against a read only replica"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // The write went nowhere; the master still takes writes on its endpoint.
    assert_eq!(proxy.connect().command(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eventually!(Duration::from_secs(5), {
        clients[0].command(&["GET", "k"]) == b"$1\r\nv\r\n"
    });
    let metrics = proxy.http_get("/metrics").expect("metrics").1;
    for port in replicas {
        let line = format!(
            "sentinel_proxy_read_clients{{group=\"mymaster\",address=\"127.0.0.1:{port}\"}} 2"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[test]
fn clients_of_a_dead_replica_move_to_another_with_their_state() {
    let (mut group, read) = read_group(2, &[]);
    let proxy = &group.proxies[0];
    let mut writer = proxy.connect();
    assert_eq!(writer.command(&["SELECT", "3"]), b"+OK\r\n");
    assert_eq!(writer.command(&["SET", "k", "in db 3"]), b"+OK\r\n");
    assert_eventually!(Duration::from_secs(10), readers(proxy).len() == 2);
    let mut reader = connect(read);
    assert_eq!(reader.command(&["SELECT", "3"]), b"+OK\r\n");
    assert_eventually!(Duration::from_secs(5), {
        reader.command(&["GET", "k"]) == b"$7\r\nin db 3\r\n"
    });
    let first = served_by(&mut reader);
    let dead = group
        .nodes
        .iter()
        .position(|n| n.port() == first)
        .expect("a replica");
    group.nodes[dead].kill9();
    // The same connection, on the other replica, still in database 3.
    assert_eventually!(Duration::from_secs(20), {
        reader.command(&["GET", "k"]) == b"$7\r\nin db 3\r\n"
    });
    let second = served_by(&mut reader);
    assert_ne!(second, first);
    assert_ne!(second, group.nodes[0].port(), "not the master");
}

#[test]
fn a_promoted_replica_loses_its_readers() {
    let (mut group, read) = read_group(2, &[]);
    let proxy = &group.proxies[0];
    assert_eventually!(Duration::from_secs(10), readers(proxy).len() == 2);
    let mut clients: Vec<RespClient> = (0..2).map(|_| connect(read)).collect();
    for client in &mut clients {
        served_by(client);
    }
    let old = group.nodes[0].known_addr();
    group.nodes[0].kill9();
    let new = group.wait_for_new_master(old, Duration::from_secs(30));
    // Every client ends on the replica that was not promoted.
    let remaining = group.nodes[1..]
        .iter()
        .find(|n| n.known_addr() != new)
        .expect("the other replica")
        .port();
    for client in &mut clients {
        assert_eventually!(Duration::from_secs(20), served_by(client) == remaining);
        let role = client.command(&["ROLE"]);
        assert!(
            role.starts_with(b"*5\r\n$5\r\nslave"),
            "{}",
            String::from_utf8_lossy(&role)
        );
    }
}

#[test]
fn without_a_replica_reads_go_where_read_fallback_says() {
    // master: served by the master.
    let (group, read) = read_group(0, &[]);
    let mut client = connect(read);
    assert_eq!(served_by(&mut client), group.nodes[0].port());
    drop(group);

    // error: refused at once.
    let (_group, read) = read_group(0, &[("--read-fallback", "error")]);
    let mut client = connect(read);
    let started = std::time::Instant::now();
    let reply = client.command(&["GET", "k"]);
    assert!(
        reply.starts_with(b"-MASTERDOWN no replica is fit for reads"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(_group);

    // hold: waits for a replica, up to the hold timeout.
    let (_group, read) = read_group(
        0,
        &[("--read-fallback", "hold"), ("--hold-timeout-ms", "700")],
    );
    let mut client = connect(read);
    let started = std::time::Instant::now();
    let reply = client.command(&["GET", "k"]);
    assert!(
        reply.starts_with(b"-MASTERDOWN no replica"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[test]
fn a_lagging_replica_serves_no_reads_until_it_catches_up() {
    // SDOWN would take 10 s: within that, only lag can take the replica out.
    let (mut group, read) = read_group(
        1,
        &[
            ("--max-replica-lag-ms", "1000"),
            ("--down-after-ms", "10000"),
        ],
    );
    let proxy = &group.proxies[0];
    assert_eventually!(Duration::from_secs(10), readers(proxy).len() == 1);
    let replica = group.nodes[1].port();
    let master = group.nodes[0].port();
    let mut client = connect(read);
    assert_eq!(served_by(&mut client), replica);
    // The replica stops acknowledging (stopped with SIGSTOP).
    group.nodes[1].freeze();
    assert_eventually!(Duration::from_secs(4), readers(proxy).is_empty());
    // No replica qualifies: the master serves reads (read_fallback master).
    assert_eq!(served_by(&mut client), master);
    group.nodes[1].unfreeze();
    // Caught up: the client goes back to the replica.
    assert_eventually!(Duration::from_secs(10), served_by(&mut client) == replica);
}

/// A `[[group]]` table's `read_listen` serves reads from that group's replicas.
#[test]
fn a_group_table_has_its_own_read_endpoint() {
    let first = support::RedisServer::spawn();
    let other_master = support::RedisServer::spawn();
    let other_replica = support::RedisServer::builder()
        .replica_of(other_master.addr())
        .spawn();
    assert_eventually!(Duration::from_secs(20), other_replica.master_link_up());
    let read = support::loopback(support::free_port());
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "master = \"{}\"\nquorum = 1\n\n[[group]]\nname = \"other\"\nmaster = \"{}\"\nread_listen = \"{read}\"\n",
            first.addr(),
            other_master.addr()
        ),
    )
    .expect("write config");
    let proxy = Proxy::builder()
        .args(["-c".to_owned(), config.display().to_string()])
        .spawn();
    let mut client = connect(read);
    assert_eventually!(
        Duration::from_secs(10),
        served_by(&mut client) == other_replica.port()
    );
    drop(proxy);
}

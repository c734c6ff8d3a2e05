//! TLS towards Redis (`--tls-backend`): the proxy reaches masters and
//! replicas that serve TLS (`tls-port`, `tls-replication yes`, client
//! certificates required), monitors them and fails over over TLS; plain
//! clients do not notice. A server whose certificate the proxy's CA did not
//! sign, or a proxy without the client certificate Redis asks for, is
//! refused with a log line that says why. Certificates are checked against
//! the name a server is known by when there is one.

use std::time::Duration;

use crate::core::Group;
use crate::support::hosts::HostName;
use crate::support::tls::Pki;
use crate::support::{self, Proxy, RedisServer, Sentinel, SentinelOptions, assert_eventually};

/// A group of TLS nodes (CA `a`) and one proxy (quorum 1) reaching them with
/// `flags`.
fn tls_group(pki: &Pki, replicas: usize, flags: &[String]) -> Group {
    let mut builder = Group::builder()
        .replicas(replicas)
        .voters(1)
        .flag("--quorum", "1")
        .tls(pki.redis("a"));
    for pair in flags.chunks(2) {
        builder = builder.flag(&pair[0], &pair[1]);
    }
    builder.spawn()
}

/// `--tls-backend true` and CA `a`'s files, as flag/value pairs.
fn backend_flags(pki: &Pki, ca: &str) -> Vec<String> {
    let mut flags = pki.backend_args(ca);
    // `--tls-backend` alone is a switch; as a pair it takes a value.
    flags.insert(1, "true".into());
    flags
}

/// A TLS master (CA `a`) and a replica of it, in sync.
fn tls_master_and_replica(pki: &Pki) -> (RedisServer, RedisServer) {
    let master = RedisServer::builder().tls(pki.redis("a")).spawn();
    let replica = RedisServer::builder()
        .tls(pki.redis("a"))
        .replica_of(master.known_addr())
        .spawn();
    assert_eventually!(Duration::from_secs(20), replica.master_link_up());
    (master, replica)
}

/// After a failover to `promoted`: `client`'s connection through the proxy
/// (the same one as before) writes there.
fn writes_land_on(client: &mut support::RespClient, promoted: &RedisServer) {
    assert_eventually!(Duration::from_secs(20), {
        client.command(&["SET", "after", "1"]) == b"+OK\r\n"
    });
    let written = promoted.cmd(&["GET", "after"]).expect("GET");
    assert_eq!(support::value_to_string(&written).as_deref(), Some("1"));
}

/// A client connected through `proxy` writes; `master` is killed; once
/// `replica` is promoted, the same connection writes there.
fn fail_over_under(proxy: &Proxy, master: &mut RedisServer, replica: &RedisServer) {
    let mut client = proxy.connect();
    assert_eq!(client.command(&["SET", "before", "1"]), b"+OK\r\n");
    master.kill9();
    assert_eventually!(
        Duration::from_secs(40),
        replica.role().is_ok_and(|r| r.is_master())
    );
    writes_land_on(&mut client, replica);
}

#[test]
fn plain_clients_reach_a_tls_master_and_its_replicas_are_found() {
    let pki = Pki::new();
    // wait_ready: the proxy found both replicas from the master's INFO,
    // over TLS, at their TLS ports.
    let group = tls_group(&pki, 2, &backend_flags(&pki, "a"));
    let proxy = &group.proxies[0];
    let mut client = proxy.connect();
    assert_eq!(client.command(&["SET", "k", "over tls"]), b"+OK\r\n");
    assert_eq!(client.command(&["GET", "k"]), b"$8\r\nover tls\r\n");
    // A 3 MB value both ways, through TLS records of 16 KB.
    let value: String = (0..3_000_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert_eq!(client.command(&["SET", "big", &value]), b"+OK\r\n");
    let reply = client.command(&["GET", "big"]);
    assert_eq!(reply.len(), value.len() + 12, "the whole value came back");
    // The master has it (read on its plain port, the harness's own).
    let stored = group.nodes[0].cmd(&["STRLEN", "big"]).expect("STRLEN");
    assert_eq!(
        support::value_to_string(&stored).as_deref(),
        Some("3000000")
    );
    // redis-benchmark's pipelined INCRs are counted once each.
    let out = support::run_bounded(
        {
            let mut command = std::process::Command::new("redis-benchmark");
            command.args([
                "-h",
                "127.0.0.1",
                "-p",
                &proxy.addr().port().to_string(),
                "-n",
                "20000",
                "-c",
                "10",
                "-P",
                "16",
                "-q",
                "INCR",
                "counter",
            ]);
            command
        },
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(client.command(&["GET", "counter"]), b"$5\r\n20000\r\n");
}

#[test]
fn a_failover_happens_over_tls() {
    let pki = Pki::new();
    let mut group = tls_group(&pki, 1, &backend_flags(&pki, "a"));
    let old = group.nodes[0].known_addr();
    let mut client = group.proxies[0].connect();
    assert_eq!(client.command(&["INCR", "n"]), b":1\r\n");
    group.nodes[0].kill9();
    let new = group.wait_for_new_master(old, Duration::from_secs(30));
    assert_eq!(new, group.nodes[1].known_addr(), "the TLS port is named");
    // The same client connection, moved to the new master.
    assert_eq!(
        client.command(&["SET", "after-failover", "yes"]),
        b"+OK\r\n"
    );
    let written = group
        .node(new)
        .cmd(&["GET", "after-failover"])
        .expect("GET");
    assert_eq!(support::value_to_string(&written).as_deref(), Some("yes"));
}

/// A proxy with no peers (quorum 1, commands held at most a second) in
/// front of `master`, reaching it with `flags`.
fn lone_proxy(master: &str, flags: &[String]) -> (Proxy, tempfile::TempDir) {
    voter(master, 1, flags)
}

/// A proxy of a group with `quorum` (commands held at most a second) in
/// front of `master`, reaching it with `flags`.
fn voter(master: &str, quorum: u32, flags: &[String]) -> (Proxy, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("data dir");
    let mut args = vec![
        "--master".to_owned(),
        master.to_owned(),
        "--quorum".into(),
        quorum.to_string(),
        "--down-after-ms".into(),
        "1000".into(),
        "--hold-timeout-ms".into(),
        "1000".into(),
        // A split vote between voters is retried within seconds.
        "--failover-timeout-ms".into(),
        "4000".into(),
        // No line per failed reconnect to a killed master: the log tail
        // printed on a failure shows the events.
        "--log-level".into(),
        "debug,sentinel_proxy::sentinel::link=info".into(),
        "--data-dir".into(),
        data.path().display().to_string(),
    ];
    args.extend(flags.iter().cloned());
    (Proxy::builder().args(args).spawn(), data)
}

/// What a client gets for `SET k v` through `proxy`.
fn set_through(proxy: &Proxy) -> String {
    let reply = proxy.connect().command(&["SET", "k", "v"]);
    String::from_utf8_lossy(&reply).trim_end().to_owned()
}

#[test]
fn a_server_signed_by_another_ca_or_refusing_the_proxy_is_reported() {
    let pki = Pki::new();
    let master = RedisServer::builder().tls(pki.redis("a")).spawn();
    let addr = master.known_addr().to_string();

    // The proxy trusts CA b only: the master's certificate is refused.
    let (proxy, _data) = lone_proxy(&addr, &pki.backend_args("b"));
    assert!(set_through(&proxy).starts_with("-MASTERDOWN"));
    assert!(
        proxy.log_contains_within(
            "TLS connection to a server refused addr=127.0.0.1",
            Duration::from_secs(5)
        ) && proxy
            .log()
            .contains("invalid peer certificate: UnknownIssuer"),
        "the log says the certificate is not trusted:\n{}",
        proxy.log()
    );
    let metrics = proxy.http_get("/metrics").expect("metrics").1;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("sentinel_proxy_tls_backend_handshake_failures_total ")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    drop(proxy);

    // The proxy shows no client certificate: Redis (tls-auth-clients yes)
    // refuses it once the handshake is done, and the log says so.
    let no_certificate = vec![
        "--tls-backend".to_owned(),
        "--tls-ca-cert-file".to_owned(),
        pki.file("a-ca.crt").display().to_string(),
    ];
    let (proxy, _data) = lone_proxy(&addr, &no_certificate);
    assert!(set_through(&proxy).starts_with("-MASTERDOWN"));
    assert!(
        proxy.log_contains_within(
            "received fatal alert: CertificateRequired",
            Duration::from_secs(5)
        ),
        "the log says the server wants a certificate:\n{}",
        proxy.log()
    );
    // No data reached the master.
    assert_eq!(master.cmd(&["DBSIZE"]).ok(), Some(redis::Value::Int(0)));
}

#[test]
fn certificates_are_checked_against_the_name_a_server_is_known_by() {
    let pki = Pki::new();
    let master = RedisServer::builder()
        .tls(pki.redis_named("redis-0.test"))
        .spawn();
    let addr = master.known_addr().to_string();
    let with = |extra: &[&str]| {
        let mut flags = pki.backend_args("a");
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        flags
    };

    // Known by IP only: the chain is checked, as Redis checks replication
    // peers (the certificate does not list 127.0.0.1).
    let (proxy, _data) = lone_proxy(&addr, &with(&[]));
    assert_eq!(set_through(&proxy), "+OK");
    drop(proxy);

    // One name for every server: checked, and a wrong one refused.
    let (proxy, _data) = lone_proxy(&addr, &with(&["--tls-backend-server-name", "redis-0.test"]));
    assert_eq!(set_through(&proxy), "+OK");
    drop(proxy);
    let (proxy, _data) = lone_proxy(&addr, &with(&["--tls-backend-server-name", "redis-9.test"]));
    assert!(set_through(&proxy).starts_with("-MASTERDOWN"));
    assert!(
        proxy.log_contains_within("not valid for name", Duration::from_secs(5)),
        "the log says the certificate is for another name:\n{}",
        proxy.log()
    );
    drop(proxy);

    // A master configured by host name is checked against that name: its
    // certificate names redis-0.test, not the name the proxy knows it by.
    let name = HostName::pointing_to([127, 0, 0, 1].into());
    let by_name = format!("{}:{}", name.name(), master.known_addr().port());
    let (proxy, _data) = lone_proxy(&by_name, &with(&[]));
    assert!(set_through(&proxy).starts_with("-MASTERDOWN"));
    assert!(
        proxy.log_contains_within("not valid for name", Duration::from_secs(5)),
        "{}",
        proxy.log()
    );
}

#[test]
fn after_a_failover_the_new_master_is_checked_against_its_own_name() {
    let pki = Pki::new();
    let (first, second) = (
        HostName::pointing_to([127, 0, 0, 1].into()),
        HostName::pointing_to([127, 0, 0, 1].into()),
    );
    let mut master = RedisServer::builder()
        .tls(pki.redis_named(first.name()))
        .spawn();
    // The replica announces its host name: the master's INFO lists it by name.
    let replica = RedisServer::builder()
        .tls(pki.redis_named(second.name()))
        .config(format!("replica-announce-ip {}", second.name()))
        .replica_of(master.known_addr())
        .spawn();
    assert_eventually!(Duration::from_secs(20), replica.master_link_up());
    let by_name = format!("{}:{}", first.name(), master.known_addr().port());
    let (proxy, _data) = lone_proxy(&by_name, &pki.backend_args("a"));
    // Replicas known by name are taken in (Sentinel's resolve-hostnames).
    let set: String = crate::core::sentinel_query(
        proxy.sentinel_addr(),
        &["SENTINEL", "CONFIG", "SET", "resolve-hostnames", "yes"],
    )
    .expect("CONFIG SET");
    assert_eq!(set, "OK");
    assert_eventually!(
        Duration::from_secs(10),
        crate::core::sentinel_master_field(&proxy, "num-slaves").as_deref() == Some("1")
    );
    // The replica's certificate names only the replica: the proxy reaches
    // it under its own name, not under the old master's.
    fail_over_under(&proxy, &mut master, &replica);
}

#[test]
fn sighup_rereads_the_files_for_connections_to_servers() {
    let pki = Pki::new();
    let master = RedisServer::builder().tls(pki.redis("a")).spawn();
    // The CA file the proxy trusts starts as CA b's: the master is refused.
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("backend-ca.crt");
    std::fs::copy(pki.file("b-ca.crt"), &ca).expect("copy");
    let mut flags = pki.backend_args("a");
    flags.extend([
        "--tls-backend-ca-cert-file".into(),
        ca.display().to_string(),
    ]);
    let (mut proxy, _data) = lone_proxy(&master.known_addr().to_string(), &flags);
    assert!(set_through(&proxy).starts_with("-MASTERDOWN"));

    // A file that does not load: logged, and the files in force stay.
    std::fs::write(&ca, "not a certificate\n").expect("write");
    proxy.signal("HUP");
    assert!(
        proxy.log_contains_within(
            "TLS files for connections to servers not reloaded",
            Duration::from_secs(5)
        ),
        "{}",
        proxy.log()
    );
    assert!(proxy.is_running());

    // The right CA: new connections trust the master.
    std::fs::copy(pki.file("a-ca.crt"), &ca).expect("copy");
    proxy.signal("HUP");
    assert!(proxy.log_contains_within(
        "TLS files for connections to servers reloaded",
        Duration::from_secs(5)
    ));
    assert_eventually!(Duration::from_secs(10), set_through(&proxy) == "+OK");
}

#[test]
fn peers_agree_and_fail_over_over_tls() {
    let pki = Pki::new();
    let (mut master, replica) = tls_master_and_replica(&pki);
    // Two voters, quorum 2: neither fails over without the other's answer,
    // and each knows the other only by its TLS sentinel port.
    let tls_ports = [
        support::loopback(support::free_port()),
        support::loopback(support::free_port()),
    ];
    let proxies: Vec<(Proxy, tempfile::TempDir)> = (0..2)
        .map(|i| {
            // The TLS sentinel endpoint's files (its CA checks peers' client
            // certificates and theirs), and the client certificate.
            let mut flags = pki.endpoint_args(tls_ports[i], "a", "yes");
            flags.splice(
                0..2,
                ["--tls-sentinel-listen".into(), tls_ports[i].to_string()],
            );
            flags.extend([
                "--tls-backend".into(),
                "--tls-client-cert-file".into(),
                pki.file("a-client.crt").display().to_string(),
                "--tls-client-key-file".into(),
                pki.file("a-client.key").display().to_string(),
                "--peer".into(),
                tls_ports[1 - i].to_string(),
            ]);
            voter(&master.known_addr().to_string(), 2, &flags)
        })
        .collect();
    // Each learned the other from its hellos, at the TLS port it announces.
    for (i, (proxy, _)) in proxies.iter().enumerate() {
        assert_eventually!(
            Duration::from_secs(20),
            crate::core::sentinel_master_field(proxy, "num-other-sentinels").as_deref()
                == Some("1")
                && crate::core::sentinel_master_field(proxy, "num-slaves").as_deref() == Some("1")
        );
        let peers: redis::Value = crate::core::sentinel_query(
            proxy.sentinel_addr(),
            &["SENTINEL", "SENTINELS", "mymaster"],
        )
        .expect("SENTINEL SENTINELS");
        let shown = format!("{peers:?}");
        assert!(
            shown.contains(&tls_ports[1 - i].port().to_string()),
            "the peer is known by its TLS port: {shown}"
        );
    }
    fail_over_under(&proxies[0].0, &mut master, &replica);
    // The leader counted the other's answer, asked over TLS (the other may
    // vote before its own ODOWN, so only one of them need log it).
    assert!(
        proxies.iter().any(|(p, _)| p.log().contains("#quorum 2/2")),
        "ODOWN needed the other proxy's answer"
    );
}

#[test]
fn a_proxy_and_sentinels_agree_and_fail_over_over_tls() {
    let pki = Pki::new();
    let (mut master, replica) = tls_master_and_replica(&pki);
    let path = |name: &str| pki.file(name).display().to_string();
    // Two Sentinels with `tls-replication yes` (their hellos announce their
    // TLS ports) and the proxy, quorum 2 everywhere.
    let sentinel_tls: Vec<std::net::SocketAddr> = (0..2)
        .map(|_| support::loopback(support::free_port()))
        .collect();
    let sentinels: Vec<Sentinel> = sentinel_tls
        .iter()
        .map(|tls| {
            Sentinel::spawn(
                master.known_addr(),
                SentinelOptions {
                    extra_config: pki.sentinel_lines(tls.port()),
                    ..SentinelOptions::default()
                },
            )
        })
        .collect();
    let proxy_tls = support::loopback(support::free_port());
    let mut flags = pki.endpoint_args(proxy_tls, "a", "yes");
    flags.splice(
        0..2,
        ["--tls-sentinel-listen".into(), proxy_tls.to_string()],
    );
    flags.extend([
        "--tls-backend".into(),
        "--tls-client-cert-file".into(),
        path("a-client.crt"),
        "--tls-client-key-file".into(),
        path("a-client.key"),
    ]);
    for tls in &sentinel_tls {
        flags.extend(["--peer".into(), tls.to_string()]);
    }
    let (proxy, _data) = voter(&master.known_addr().to_string(), 2, &flags);
    // Everyone knows everyone, by the TLS ports they announce.
    for sentinel in &sentinels {
        assert_eventually!(
            Duration::from_secs(30),
            sentinel.sees(master.known_addr(), 1, 2),
            "sentinel {} sees the replica and the two other sentinels",
            sentinel.addr()
        );
    }
    assert_eventually!(
        Duration::from_secs(20),
        crate::core::sentinel_master_field(&proxy, "num-other-sentinels").as_deref() == Some("2")
    );
    let mut client = proxy.connect();
    assert_eq!(client.command(&["SET", "before", "1"]), b"+OK\r\n");
    master.kill9();
    let new = replica.known_addr();
    assert_eventually!(Duration::from_secs(40), {
        crate::core::master_named_by(proxy.sentinel_addr()) == Some(new)
            && sentinels
                .iter()
                .all(|s| crate::core::master_named_by(s.addr()) == Some(new))
    });
    writes_land_on(&mut client, &replica);
}

/// A TLS-only Sentinel config (`port 0`, `tls-port`, `tls-replication yes`)
/// monitoring a TLS master: redis-sentinel and the stand-in both serve it
/// over TLS alone and reach Redis over TLS (they find its replica).
#[test]
fn a_tls_only_sentinel_conf_is_served_by_redis_sentinel_and_the_stand_in() {
    let pki = Pki::new();
    let (master, replica) = tls_master_and_replica(&pki);
    let path = |name: &str| pki.file(name).display().to_string();
    for stand_in in [false, true] {
        let dir = tempfile::tempdir().expect("dir");
        let tls = support::loopback(support::free_port());
        let conf = dir.path().join("sentinel.conf");
        let mut lines = vec!["bind 127.0.0.1".to_owned(), "port 0".to_owned()];
        lines.extend(pki.sentinel_lines(tls.port()));
        let text = [
            lines.join("\n"),
            format!("dir {}", dir.path().display()),
            format!(
                "sentinel monitor mymaster 127.0.0.1 {} 1",
                master.known_addr().port()
            ),
        ]
        .join("\n");
        std::fs::write(&conf, text + "\n").expect("write sentinel.conf");
        let mut command = if stand_in {
            let mut c = std::process::Command::new(support::proxy::binary_path());
            c.arg("--sentinel-conf");
            c
        } else {
            std::process::Command::new("redis-sentinel")
        };
        let output = std::fs::File::create(dir.path().join("output.log")).expect("log");
        let child = command
            .arg(&conf)
            .current_dir(dir.path())
            .stdout(output.try_clone().expect("log"))
            .stderr(output)
            .spawn()
            .expect("start the sentinel");
        let _running = support::Running(child);
        let who = if stand_in {
            "the stand-in"
        } else {
            "redis-sentinel"
        };
        let ask = |args: &[&str]| {
            let mut command = std::process::Command::new("redis-cli");
            command.args(["-h", "127.0.0.1", "-p", &tls.port().to_string(), "--tls"]);
            command.args(["--cacert", &path("a-ca.crt")]);
            command.args([
                "--cert",
                &path("a-client.crt"),
                "--key",
                &path("a-client.key"),
            ]);
            command.args(args);
            let out = support::run_bounded(command, b"", Duration::from_secs(10));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let replica_port = replica.known_addr().port().to_string();
        assert_eventually!(
            Duration::from_secs(20),
            ask(&["SENTINEL", "replicas", "mymaster"]).contains(&replica_port),
            "{who} finds the replica over TLS: {}",
            std::fs::read_to_string(dir.path().join("output.log")).unwrap_or_default()
        );
    }
}

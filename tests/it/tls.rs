//! The TLS client endpoint (`--tls-listen`): clients over TLS reach the
//! master as plain clients do, through a failover too; client certificates
//! are checked as `tls-auth-clients` says, refusals are logged with their
//! reason; SIGHUP rotates the certificate without dropping a connection;
//! bad TLS settings stop the start with the field named.
//!
//! Certificates are made fresh by [`Pki`]; clients are Debian's redis-cli
//! and redis-benchmark (`--tls`), redis-py 8, and a rustls client for the
//! rotation (which needs one connection held across the SIGHUP).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::core::Group;
use crate::support::tls::Pki;
use crate::support::{self, Proxy, RedisServer, assert_eventually, loopback};

/// A bound on one redis-cli or redis-benchmark run.
const CLI_DEADLINE: Duration = Duration::from_secs(30);

/// A proxy in front of `master` with a TLS endpoint of CA `a` (clients
/// checked as `auth` says). Returns it and its TLS address.
fn tls_proxy(master: &RedisServer, pki: &Pki, auth: &str) -> (Proxy, SocketAddr) {
    let tls = loopback(support::free_port());
    let data = tempfile::tempdir().expect("data dir");
    let mut args = crate::core::lone_proxy_args(master.addr(), 1, data.path());
    args.extend(pki.endpoint_args(tls, "a", auth));
    (Proxy::builder().args(args).spawn(), tls)
}

/// redis-cli over TLS to `addr`, trusting CA `ca`, with the client
/// certificate of CA `cert` if any; returns what it printed (stdout and
/// stderr).
fn cli(
    pki: &Pki,
    addr: SocketAddr,
    ca: &str,
    cert: Option<&str>,
    args: &[&str],
    stdin: &[u8],
) -> String {
    let mut command = Command::new("redis-cli");
    command
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "--tls",
            "--cacert",
        ])
        .arg(pki.file(&format!("{ca}-ca.crt")));
    if let Some(cert) = cert {
        command
            .arg("--cert")
            .arg(pki.file(&format!("{cert}-client.crt")))
            .arg("--key")
            .arg(pki.file(&format!("{cert}-client.key")));
    }
    command.args(args);
    let out = support::run_bounded(command, stdin, CLI_DEADLINE);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A blocking TLS client (rustls) to `addr`, trusting only `ca_file`.
fn rustls_client(addr: SocketAddr, ca_file: &std::path::Path) -> std::io::Result<TlsClient> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_file).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut client = rustls::StreamOwned::new(connection, tcp);
    // The handshake runs with the first exchange: a refused certificate
    // fails here.
    client.write_all(b"PING\r\n")?;
    let mut pong = [0u8; 7];
    client.read_exact(&mut pong)?;
    assert_eq!(&pong, b"+PONG\r\n");
    Ok(client)
}

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Sends `command` (inline) on `client` and reads one line of reply.
fn ask(client: &mut TlsClient, command: &str) -> std::io::Result<String> {
    client.write_all(format!("{command}\r\n").as_bytes())?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        client.read_exact(&mut byte)?;
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

#[test]
fn tls_clients_reach_the_master_and_plain_clients_still_do() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    let (proxy, tls) = tls_proxy(&master, &pki, "yes");
    let out = cli(
        &pki,
        tls,
        "a",
        Some("a"),
        &["SET", "greeting", "over tls"],
        b"",
    );
    assert_eq!(out.trim(), "OK");
    let mut plain = proxy.connect();
    assert_eq!(plain.command(&["GET", "greeting"]), b"$8\r\nover tls\r\n");
    // A 3 MB value both ways, through TLS records of 16 KB.
    let value: String = (0..3_000_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let out = cli(
        &pki,
        tls,
        "a",
        Some("a"),
        &["-x", "SET", "big"],
        value.as_bytes(),
    );
    assert_eq!(out.trim(), "OK");
    let out = cli(&pki, tls, "a", Some("a"), &["GET", "big"], b"");
    assert_eq!(out.trim_end(), value, "the value read back over TLS");
    // Pipelined clients over TLS: every INCR counted once.
    let mut bench = Command::new("redis-benchmark");
    bench
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &tls.port().to_string(),
            "--tls",
            "--cacert",
        ])
        .arg(pki.file("a-ca.crt"))
        .arg("--cert")
        .arg(pki.file("a-client.crt"))
        .arg("--key")
        .arg(pki.file("a-client.key"))
        .args(["-t", "incr", "-n", "20000", "-c", "8", "-P", "16", "-q"]);
    let out = support::run_bounded(bench, b"", CLI_DEADLINE);
    assert!(out.status.success(), "redis-benchmark: {out:?}");
    let counted = master.cmd(&["GET", "counter:__rand_int__"]).expect("GET");
    assert_eq!(support::value_to_string(&counted).as_deref(), Some("20000"));
    // SYNC over TLS: the session becomes a byte pipe, records both ways.
    let rdb = pki.file("dump.rdb");
    let out = cli(
        &pki,
        tls,
        "a",
        Some("a"),
        &["--rdb", &rdb.display().to_string()],
        b"",
    );
    let dump = std::fs::read(&rdb).unwrap_or_else(|e| panic!("no RDB ({e}): {out}"));
    assert!(dump.starts_with(b"REDIS"), "not an RDB file: {out}");
}

#[test]
fn client_certificates_are_checked_as_tls_auth_clients_says() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    let (required, tls) = tls_proxy(&master, &pki, "yes");
    // Without a certificate: refused, and the log says why.
    let out = cli(&pki, tls, "a", None, &["PING"], b"");
    assert!(
        !out.contains("PONG"),
        "served without a client certificate: {out}"
    );
    assert!(
        required.log_contains_within("peer sent no certificates", Duration::from_secs(5)),
        "no log line says the certificate was missing"
    );
    // A certificate from another CA: refused, and the log says why.
    let out = cli(&pki, tls, "a", Some("b"), &["PING"], b"");
    assert!(
        !out.contains("PONG"),
        "served with another CA's certificate: {out}"
    );
    assert!(
        required.log_contains_within(
            "invalid peer certificate: UnknownIssuer",
            Duration::from_secs(5)
        ),
        "no log line says the certificate's issuer is unknown"
    );
    let (_, metrics) = required.http_get("/metrics").expect("metrics");
    assert!(
        metrics.contains("sentinel_proxy_tls_handshake_failures_total 2"),
        "both refusals counted:\n{metrics}"
    );
    // The CA's own client: served.
    assert_eq!(
        cli(&pki, tls, "a", Some("a"), &["PING"], b"").trim(),
        "PONG"
    );

    // optional: no certificate is fine, a bad one is not.
    let (_optional, tls) = tls_proxy(&master, &pki, "optional");
    assert_eq!(cli(&pki, tls, "a", None, &["PING"], b"").trim(), "PONG");
    assert!(!cli(&pki, tls, "a", Some("b"), &["PING"], b"").contains("PONG"));
    // no: nobody is asked.
    let (_open, tls) = tls_proxy(&master, &pki, "no");
    assert_eq!(cli(&pki, tls, "a", None, &["PING"], b"").trim(), "PONG");
}

#[test]
fn sighup_rotates_the_certificate_and_keeps_open_connections() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    // The proxy reads copies, which the test replaces.
    let (cert, key) = (pki.file("live.crt"), pki.file("live.key"));
    std::fs::copy(pki.file("a-server.crt"), &cert).expect("copy");
    std::fs::copy(pki.file("a-server.key"), &key).expect("copy");
    let tls = loopback(support::free_port());
    let data = tempfile::tempdir().expect("data dir");
    let mut args = crate::core::lone_proxy_args(master.addr(), 1, data.path());
    args.extend([
        "--tls-listen".to_owned(),
        tls.to_string(),
        "--tls-cert-file".to_owned(),
        cert.display().to_string(),
        "--tls-key-file".to_owned(),
        key.display().to_string(),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
    ]);
    let mut proxy = Proxy::builder().args(args).spawn();
    let mut open = rustls_client(tls, &pki.file("a-ca.crt")).expect("client trusting CA a");
    assert_eq!(ask(&mut open, "SET k before").expect("SET"), "+OK");

    std::fs::copy(pki.file("b-server.crt"), &cert).expect("copy");
    std::fs::copy(pki.file("b-server.key"), &key).expect("copy");
    proxy.signal("HUP");
    assert!(proxy.log_contains_within("TLS certificate reloaded", Duration::from_secs(5)));
    // The open connection is untouched; new ones get the new certificate.
    assert_eq!(
        ask(&mut open, "SET k after").expect("SET on the open connection"),
        "+OK"
    );
    assert!(
        rustls_client(tls, &pki.file("a-ca.crt")).is_err(),
        "a new connection still got the old certificate"
    );
    let mut fresh = rustls_client(tls, &pki.file("b-ca.crt")).expect("client trusting CA b");
    assert_eq!(ask(&mut fresh, "GET k").expect("GET"), "$5");

    // A broken file: logged, and the certificate in force stays.
    std::fs::write(&cert, "not a certificate\n").expect("write");
    proxy.signal("HUP");
    assert!(proxy.log_contains_within(
        "TLS certificate not reloaded; the previous one stays in use",
        Duration::from_secs(5)
    ));
    assert!(proxy.log().contains("no PEM certificate in the file"));
    rustls_client(tls, &pki.file("b-ca.crt")).expect("still served with CA b's certificate");
    assert!(proxy.is_running());
}

#[test]
fn a_tls_client_rides_through_a_failover() {
    let pki = Pki::new();
    let tls = loopback(support::free_port());
    let mut builder = Group::builder().replicas(1);
    let endpoint = pki.endpoint_args(tls, "a", "no");
    for pair in endpoint.chunks(2) {
        builder = builder.voter_flag(0, &pair[0], &pair[1]);
    }
    let mut group = builder.spawn();
    let old = group.nodes[0].addr();
    let mut client = rustls_client(tls, &pki.file("a-ca.crt")).expect("TLS client");
    assert_eq!(ask(&mut client, "INCR n").expect("INCR"), ":1");
    group.nodes[0].kill9();
    let new = group.wait_for_new_master(old, Duration::from_secs(30));
    // The same TLS connection: held through the failover, then served by the
    // new master.
    assert_eventually!(Duration::from_secs(20), {
        ask(&mut client, "SET after-failover yes").is_ok_and(|r| r == "+OK")
    });
    let written = group
        .node(new)
        .cmd(&["GET", "after-failover"])
        .expect("GET");
    assert_eq!(support::value_to_string(&written).as_deref(), Some("yes"));
}

#[test]
fn redis_py_speaks_resp3_over_tls() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    let (_proxy, tls) = tls_proxy(&master, &pki, "yes");
    let script = r#"
import sys, redis
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
r = redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=ca, ssl_certfile=cert,
                ssl_keyfile=key, protocol=3, decode_responses=True)
r.set("py", "resp3")
print(r.get("py"), r.execute_command("HELLO")["proto"])
print(r.hgetall("missing"))
"#;
    let out = crate::clients::run_redis_py(
        script,
        &[
            "localhost".to_owned(),
            tls.port().to_string(),
            pki.file("a-ca.crt").display().to_string(),
            pki.file("a-client.crt").display().to_string(),
            pki.file("a-client.key").display().to_string(),
        ],
    );
    assert!(
        out.starts_with("resp3 3"),
        "redis-py over TLS printed {out:?}"
    );
    assert!(
        out.contains("{}"),
        "a RESP3 map came back as a dict: {out:?}"
    );
}

#[test]
fn the_sentinel_port_answers_over_tls() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    let tls_sentinel = loopback(support::free_port());
    let data = tempfile::tempdir().expect("data dir");
    let mut args = crate::core::lone_proxy_args(master.addr(), 1, data.path());
    args.extend([
        "--tls-sentinel-listen".to_owned(),
        tls_sentinel.to_string(),
        "--tls-cert-file".to_owned(),
        pki.file("a-server.crt").display().to_string(),
        "--tls-key-file".to_owned(),
        pki.file("a-server.key").display().to_string(),
        "--tls-ca-cert-file".to_owned(),
        pki.file("a-ca.crt").display().to_string(),
    ]);
    let proxy = Proxy::builder().args(args).spawn();
    let asked = ["SENTINEL", "get-master-addr-by-name", "mymaster"];
    let out = cli(&pki, tls_sentinel, "a", Some("a"), &asked, b"");
    let expected = format!("127.0.0.1\n{}", master.port());
    assert_eq!(out.trim(), expected, "over TLS");
    assert!(!cli(&pki, tls_sentinel, "a", None, &asked, b"").contains("127.0.0.1"));
    assert!(proxy.log_contains_within(
        "sentinel port: TLS handshake failed",
        Duration::from_secs(5)
    ));
    // The plain sentinel port is still there; no TLS client endpoint was asked for.
    assert_eq!(
        crate::core::master_named_by(proxy.sentinel_addr()),
        Some(master.addr())
    );
    // A Sentinel-aware client over TLS: redis-py's Sentinel helper.
    let script = r#"
import sys, redis
from redis.sentinel import Sentinel
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tls = dict(ssl=True, ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key)
s = Sentinel([("localhost", port)], sentinel_kwargs=tls, protocol=3)
print("%s:%d" % s.discover_master("mymaster"))
"#;
    let out = crate::clients::run_redis_py(
        script,
        &[
            tls_sentinel.port().to_string(),
            pki.file("a-ca.crt").display().to_string(),
            pki.file("a-client.crt").display().to_string(),
            pki.file("a-client.key").display().to_string(),
        ],
    );
    assert_eq!(out.trim(), master.addr().to_string());
}

/// A Sentinel config with a `tls-port`: redis-sentinel and its stand-in
/// (`--sentinel-conf`) both answer Sentinel-aware clients over TLS there,
/// checking client certificates as the file says.
#[test]
fn a_sentinel_conf_tls_port_is_served_by_redis_sentinel_and_the_stand_in() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    for stand_in in [false, true] {
        let tls_port = support::free_port();
        let sentinel = crate::support::Sentinel::spawn(
            master.addr(),
            crate::support::SentinelOptions {
                stand_in,
                extra_config: vec![
                    format!("tls-port {tls_port}"),
                    format!("tls-cert-file {}", pki.file("a-server.crt").display()),
                    format!("tls-key-file {}", pki.file("a-server.key").display()),
                    format!("tls-ca-cert-file {}", pki.file("a-ca.crt").display()),
                ],
                ..Default::default()
            },
        );
        let who = if stand_in {
            "the stand-in"
        } else {
            "redis-sentinel"
        };
        let asked = ["SENTINEL", "get-master-addr-by-name", "mymaster"];
        let expected = format!("127.0.0.1\n{}", master.port());
        let tls = loopback(tls_port);
        assert_eventually!(Duration::from_secs(10), {
            cli(&pki, tls, "a", Some("a"), &asked, b"").trim() == expected
        });
        let refused = cli(&pki, tls, "a", None, &asked, b"");
        assert!(
            !refused.contains("127.0.0.1"),
            "{who} served a client without a certificate"
        );
        assert_eq!(
            crate::core::master_named_by(sentinel.addr()),
            Some(master.addr()),
            "{who}'s plain port"
        );
    }
}

/// `--listen off` with `--tls-listen`, and `--sentinel-listen off` with
/// `--tls-sentinel-listen`: TLS-only client and sentinel ports, as Redis's
/// and Sentinel's `port 0` with a `tls-port`.
#[test]
fn the_plain_endpoints_can_be_turned_off() {
    let pki = Pki::new();
    let master = RedisServer::spawn();
    let tls = loopback(support::free_port());
    let data = tempfile::tempdir().expect("data dir");
    let mut args = crate::core::lone_proxy_args(master.addr(), 1, data.path());
    args.extend(pki.endpoint_args(tls, "a", "no"));
    args.extend(["--listen", "off", "--metrics-listen", "off"].map(String::from));
    let sentinel = loopback(support::free_port());
    args.extend(["--sentinel-listen", "off", "--tls-sentinel-listen"].map(String::from));
    args.push(sentinel.to_string());
    let log = data.path().join("proxy.log");
    let output = std::fs::File::create(&log).expect("log");
    let child = Command::new(support::proxy::binary_path())
        .args(&args)
        .stdout(output.try_clone().expect("log"))
        .stderr(output)
        .spawn()
        .expect("start the proxy");
    let _proxy = support::Running(child);
    assert_eventually!(
        Duration::from_secs(10),
        cli(&pki, tls, "a", None, &["SET", "k", "tls only"], b"").trim() == "OK",
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let written = master.cmd(&["GET", "k"]).expect("GET");
    assert_eq!(
        support::value_to_string(&written).as_deref(),
        Some("tls only")
    );
    let ready = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        ready.contains("sentinel-proxy ready listen=None"),
        "{ready}"
    );
    let asked = ["SENTINEL", "get-master-addr-by-name", "mymaster"];
    let named = cli(&pki, sentinel, "a", None, &asked, b"");
    assert_eq!(named.trim(), format!("127.0.0.1\n{}", master.port()));
}

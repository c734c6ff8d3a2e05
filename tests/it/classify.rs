//! Command classification comes from the server's own `COMMAND` reply.

use std::time::Duration;

use redis::Commands;

use crate::support::{Proxy, RedisServer};

/// The proxy learns the command table from the master and classifies the
/// traffic with it: counts by class are logged at shutdown.
#[test]
fn commands_are_classified_with_the_servers_command_table() {
    let redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let mut proxy = Proxy::spawn(&["--master", &master]);
    assert!(
        proxy.log_contains_within("command table read from COMMAND", Duration::from_secs(10)),
        "the table was not read from COMMAND:\n{}",
        proxy.log()
    );

    let mut conn = proxy.redis_client(None).get_connection().expect("connect");
    for i in 0..3 {
        let _: Option<String> = conn.get(format!("k{i}")).expect("GET");
    }
    let _: () = conn.set("a", 1).expect("SET");
    let _: () = conn.set("b", 2).expect("SET");
    let _: Option<(String, String)> = conn.blpop("list", 0.1).expect("BLPOP");
    let _: String = redis::cmd("PING").query(&mut conn).expect("PING");
    drop(conn);

    proxy.sigterm();
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains("traffic since start"))
        .unwrap_or_else(|| panic!("no traffic line in:\n{log}"));
    for expected in ["read=3", "write=2", "blocking=1"] {
        assert!(line.contains(expected), "{expected} missing from: {line}");
    }
}

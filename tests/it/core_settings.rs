//! Run-time settings survive a restart: what `SENTINEL SET` and `SENTINEL
//! CONFIG SET` changed on a proxy with `--data-dir` is saved before it is
//! acknowledged and applied again, over the configured values, at start-up.

use std::collections::HashMap;

use crate::core::{group_field, sentinel_query};
use crate::support::{Proxy, RedisServer};

/// `SENTINEL CONFIG GET name` as a map.
fn config_get(proxy: &Proxy, name: &str) -> HashMap<String, String> {
    let fields: Vec<String> =
        sentinel_query(proxy.sentinel_addr(), &["SENTINEL", "CONFIG", "GET", name])
            .expect("CONFIG GET");
    fields
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

#[test]
fn sentinel_set_and_config_set_survive_a_restart() {
    let master = RedisServer::spawn();
    let data = tempfile::tempdir().expect("data dir");
    let args = crate::core::lone_proxy_args(master.addr(), 2, data.path());
    let mut proxy = Proxy::builder().args(args.clone()).spawn();
    let set = |proxy: &Proxy, words: &[&str]| {
        let reply: String = sentinel_query(proxy.sentinel_addr(), words).expect("SET");
        assert_eq!(reply, "OK", "{words:?}");
    };
    set(
        &proxy,
        &[
            "SENTINEL",
            "SET",
            "mymaster",
            "quorum",
            "3",
            "failover-timeout",
            "7000",
        ],
    );
    set(&proxy, &["SENTINEL", "SET", "mymaster", "quorum", "1"]);
    set(
        &proxy,
        &["SENTINEL", "CONFIG", "SET", "announce-hostnames", "yes"],
    );
    proxy.sigterm();
    assert!(
        proxy
            .wait_exit(std::time::Duration::from_secs(15))
            .is_some()
    );

    let proxy = Proxy::builder().args(args).spawn();
    assert_eq!(
        group_field(proxy.sentinel_addr(), "mymaster", "quorum").as_deref(),
        Some("1"),
        "the latest SET wins over --quorum 2"
    );
    assert_eq!(
        group_field(proxy.sentinel_addr(), "mymaster", "failover-timeout").as_deref(),
        Some("7000")
    );
    assert_eq!(
        config_get(&proxy, "announce-hostnames")
            .get("announce-hostnames")
            .map(String::as_str),
        Some("yes")
    );
}

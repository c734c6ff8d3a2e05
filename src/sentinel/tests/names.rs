//! The `SENTINEL` subcommands under their other names: Valkey's `PRIMARY`
//! forms answer exactly as Redis's `MASTER` forms.

use tokio::time::Instant;

use super::{MASTER, addr, answer, core_with, info_master};
use crate::resp::value::OwnedFrame;
use crate::sentinel::link::Sent;

#[test]
fn valkeys_primary_names_answer_as_redis_master_names_do() {
    let (mut core, _) = core_with(&[], false);
    let now = Instant::now();
    core.observe(addr(MASTER), Sent::Info, Ok(info_master()), now);
    let down_by_addr: &[&str] = &["127.0.0.1", "6379", "0", "*"];
    for (redis, valkey, rest) in [
        (
            "get-master-addr-by-name",
            "GET-PRIMARY-ADDR-BY-NAME",
            &["mymaster"][..],
        ),
        ("masters", "primaries", &[]),
        ("master", "primary", &["mymaster"]),
        ("master", "primary", &["nope"]),
        (
            "is-master-down-by-addr",
            "is-primary-down-by-addr",
            down_by_addr,
        ),
    ] {
        let ask = |core: &mut _, sub| {
            let args: Vec<&str> = ["SENTINEL", sub].iter().chain(rest).copied().collect();
            answer(core, &args, now)
        };
        let expected = ask(&mut core, redis);
        assert!(!matches!(expected, OwnedFrame::Error(ref e) if e.contains("Unknown")));
        assert_eq!(ask(&mut core, valkey), expected, "{valkey} {rest:?}");
    }
}

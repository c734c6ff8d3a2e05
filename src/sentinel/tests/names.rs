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
    for (redis, valkey) in [
        (
            &["SENTINEL", "get-master-addr-by-name", "mymaster"][..],
            &["SENTINEL", "GET-PRIMARY-ADDR-BY-NAME", "mymaster"][..],
        ),
        (&["SENTINEL", "masters"], &["SENTINEL", "primaries"]),
        (
            &["SENTINEL", "master", "mymaster"],
            &["SENTINEL", "primary", "mymaster"],
        ),
        (
            &["SENTINEL", "master", "nope"],
            &["SENTINEL", "primary", "nope"],
        ),
        (
            &[
                "SENTINEL",
                "is-master-down-by-addr",
                "127.0.0.1",
                "6379",
                "0",
                "*",
            ],
            &[
                "SENTINEL",
                "is-primary-down-by-addr",
                "127.0.0.1",
                "6379",
                "0",
                "*",
            ],
        ),
    ] {
        let expected = answer(&mut core, redis, now);
        assert!(!matches!(expected, OwnedFrame::Error(ref e) if e.contains("Unknown")));
        assert_eq!(answer(&mut core, valkey, now), expected, "{valkey:?}");
    }
}

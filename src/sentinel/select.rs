//! Chooses which replica to promote when the master fails, by Redis Sentinel 7's
//! rules, so this Sentinel picks the replica a real Sentinel would.
//!
//! A candidate is skipped if it is down (sdown or odown), its command link is
//! not connected, its last PING reply is older than `5 * ping_period`, its
//! priority is 0, its last INFO is older than the INFO validity
//! (`5 * ping_period` while the master is sdown, else `3 * info_period`), or it
//! reports its master link down for longer than
//! `master_down_for + 10 * down_after`. Among the rest the best is the one with
//! the lowest priority, then the highest replication offset, then the smallest
//! run id (a missing run id ranks after any present one), then the smallest
//! address.
//!
//! The last tie-break, by address, is this module's: Sentinel sorts with
//! `qsort`, which leaves equal candidates in no particular order, so two
//! sentinels could pick different replicas. Which replicas become
//! candidates at all is the caller's (`core/stages.rs`), which also leaves
//! out a replica that never connected to its master and has offset 0.
//!
//! This module only chooses; it does no I/O, reads no clock (callers pass ages)
//! and never promotes anything.
//!
//! Invariants:
//! * the result is deterministic: it depends only on the candidates' values, not
//!   on their order in the slice;
//! * a skipped candidate is never returned; with none left the answer is `None`;
//! * limits are multiplied saturating, so huge periods never panic.

use std::cmp::Ordering;
use std::net::SocketAddr;
use std::time::Duration;

/// What this Sentinel knows about one replica of the failed master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The replica's address (as it would be promoted and announced).
    pub addr: SocketAddr,
    /// The replica's run id from its INFO, if known.
    pub run_id: Option<String>,
    /// The replica is sdown or odown.
    pub down: bool,
    /// The command link to the replica is up.
    pub connected: bool,
    /// Time since the replica's last valid PING reply.
    pub last_reply_age: Duration,
    /// Time since the replica's last INFO reply.
    pub info_age: Duration,
    /// How long the replica reports its master link down (0 if up).
    pub master_link_down: Duration,
    /// The replica's `replica-priority`; 0 means never promote, lower is preferred.
    pub priority: u32,
    /// The replica's replication offset; higher means more data.
    pub offset: u64,
}

/// The timing limits the rules compare ages against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How often Sentinel PINGs each node (1 s in Redis Sentinel).
    pub ping_period: Duration,
    /// How often Sentinel sends INFO to each node (10 s in Redis Sentinel).
    pub info_period: Duration,
    /// The master's `down-after-milliseconds`.
    pub down_after: Duration,
    /// How long the master has been sdown (0 if it is not).
    pub master_down_for: Duration,
    /// The master is sdown: INFO is then sent every ping period, so the INFO
    /// validity shrinks to match.
    pub master_sdown: bool,
}

/// Returns the address of the replica to promote, or `None` if no candidate is
/// eligible (Sentinel's "no good slave").
///
/// The eligible candidate that `rank` orders first; as `rank` is a total
/// order on distinct addresses, the slice's order never matters.
pub fn select(candidates: &[Candidate], limits: &Limits) -> Option<SocketAddr> {
    candidates
        .iter()
        .filter(|c| eligible(c, limits))
        .min_by(|a, b| rank(a, b))
        .map(|c| c.addr)
}

/// Whether Sentinel would consider this replica at all.
///
/// Every limit is inclusive (an age equal to the limit passes), as in
/// Sentinel, which skips only what is strictly older.
fn eligible(c: &Candidate, limits: &Limits) -> bool {
    let reply_validity = limits.ping_period.saturating_mul(5);
    let info_validity = if limits.master_sdown {
        limits.ping_period.saturating_mul(5)
    } else {
        limits.info_period.saturating_mul(3)
    };
    let max_master_link_down = limits
        .master_down_for
        .saturating_add(limits.down_after.saturating_mul(10));
    !c.down
        && c.connected
        && c.last_reply_age <= reply_validity
        && c.priority != 0
        && c.info_age <= info_validity
        && c.master_link_down <= max_master_link_down
}

/// Orders candidates best first: lowest priority, highest offset, smallest run id
/// (ASCII case-insensitive, as Sentinel compares them; missing last), smallest
/// address.
fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then_with(|| b.offset.cmp(&a.offset))
        .then_with(|| match (&a.run_id, &b.run_id) {
            (Some(x), Some(y)) => cmp_ignore_ascii_case(x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.addr.cmp(&b.addr))
}

/// Compares two run ids as C's `strcasecmp` does for ASCII: byte by byte,
/// each folded to lower case, a prefix first.
fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One second, the unit of every test's ages and periods.
    const S: Duration = Duration::from_secs(1);

    /// Redis Sentinel's default periods, `down-after` 5 s, the master down
    /// for 7 s but (for the INFO validity) not SDOWN.
    fn limits() -> Limits {
        Limits {
            ping_period: S,
            info_period: 10 * S,
            down_after: 5 * S,
            master_down_for: 7 * S,
            master_sdown: false,
        }
    }

    /// `127.0.0.1:port`.
    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// An eligible candidate with middling values.
    fn good(port: u16) -> Candidate {
        Candidate {
            addr: addr(port),
            run_id: Some(format!("{port:0>40}")),
            down: false,
            connected: true,
            last_reply_age: S,
            info_age: S,
            master_link_down: Duration::ZERO,
            priority: 100,
            offset: 1000,
        }
    }

    /// No candidates, or only ineligible ones: `None`.
    #[test]
    fn none_eligible_gives_none() {
        assert_eq!(select(&[], &limits()), None);
        let down = Candidate {
            down: true,
            ..good(1)
        };
        let never = Candidate {
            priority: 0,
            ..good(2)
        };
        assert_eq!(select(&[down, never], &limits()), None);
    }

    /// Each rule, just inside and just past its limit; and a skipped
    /// candidate loses even to a worse-ranked eligible one.
    #[test]
    fn each_rule_skips_a_candidate() {
        // (what, change to the candidate and limits, still eligible)
        type Edit = fn(&mut Candidate, &mut Limits);
        let cases: &[(&str, Edit, bool)] = &[
            ("baseline", |_, _| {}, true),
            ("down", |c, _| c.down = true, false),
            ("disconnected", |c, _| c.connected = false, false),
            ("reply at 5 pings", |c, _| c.last_reply_age = 5 * S, true),
            (
                "reply older than 5 pings",
                |c, _| c.last_reply_age = 5 * S + Duration::from_millis(1),
                false,
            ),
            ("priority 0", |c, _| c.priority = 0, false),
            ("priority 1", |c, _| c.priority = 1, true),
            ("info at 3 info periods", |c, _| c.info_age = 30 * S, true),
            (
                "info older than 3 info periods",
                |c, _| c.info_age = 30 * S + Duration::from_millis(1),
                false,
            ),
            (
                "info at 5 pings, master sdown",
                |c, l| {
                    l.master_sdown = true;
                    c.info_age = 5 * S;
                },
                true,
            ),
            (
                "info older than 5 pings, master sdown",
                |c, l| {
                    l.master_sdown = true;
                    c.info_age = 6 * S;
                },
                false,
            ),
            (
                "master link down at the limit",
                |c, _| c.master_link_down = 7 * S + 50 * S,
                true,
            ),
            (
                "master link down beyond the limit",
                |c, _| c.master_link_down = 7 * S + 50 * S + Duration::from_millis(1),
                false,
            ),
            (
                "master link limit grows with the master's down time",
                |c, l| {
                    l.master_down_for = 100 * S;
                    c.master_link_down = 150 * S;
                },
                true,
            ),
            (
                "huge limits saturate instead of panicking",
                |c, l| {
                    l.ping_period = Duration::MAX;
                    l.info_period = Duration::MAX;
                    l.down_after = Duration::MAX;
                    l.master_down_for = Duration::MAX;
                    c.last_reply_age = Duration::MAX;
                    c.info_age = Duration::MAX;
                    c.master_link_down = Duration::MAX;
                },
                true,
            ),
        ];
        for (what, edit, want) in cases {
            let mut c = good(1);
            let mut l = limits();
            edit(&mut c, &mut l);
            let got = select(std::slice::from_ref(&c), &l);
            assert_eq!(got.is_some(), *want, "{what}");
            // An ineligible candidate never wins, however good it ranks.
            let mut best = c.clone();
            best.priority = best.priority.min(1);
            best.offset = u64::MAX;
            let fallback = good(2);
            let want_addr = if *want { c.addr } else { fallback.addr };
            if best.priority != 0 {
                assert_eq!(select(&[fallback, best], &l), Some(want_addr), "{what}");
            }
        }
    }

    /// The ranking keys in order, each deciding only when the ones before tie;
    /// both slice orders give the same winner.
    #[test]
    fn tie_breaks_in_order() {
        // (what, a, b, expected winner's port); a is on port 1, b on port 2.
        let cases: Vec<(&str, Candidate, Candidate, u16)> = vec![
            (
                "lower priority wins over higher offset",
                Candidate {
                    priority: 10,
                    offset: 1,
                    ..good(1)
                },
                Candidate {
                    priority: 20,
                    offset: 999_999,
                    ..good(2)
                },
                1,
            ),
            (
                "same priority: higher offset wins",
                Candidate {
                    offset: 5,
                    ..good(1)
                },
                Candidate {
                    offset: 6,
                    ..good(2)
                },
                2,
            ),
            (
                "same offset: smaller run id wins",
                Candidate {
                    run_id: Some("b".repeat(40)),
                    ..good(1)
                },
                Candidate {
                    run_id: Some("a".repeat(40)),
                    ..good(2)
                },
                2,
            ),
            (
                "run ids compare ignoring ASCII case",
                Candidate {
                    run_id: Some("B".repeat(40)),
                    ..good(1)
                },
                Candidate {
                    run_id: Some("c".repeat(40)),
                    ..good(2)
                },
                1,
            ),
            (
                "a missing run id ranks after a present one",
                Candidate {
                    run_id: None,
                    ..good(1)
                },
                Candidate {
                    run_id: Some("f".repeat(40)),
                    ..good(2)
                },
                2,
            ),
            (
                "same run id: smaller address wins",
                Candidate {
                    run_id: Some("a".repeat(40)),
                    ..good(2)
                },
                Candidate {
                    run_id: Some("a".repeat(40)),
                    ..good(1)
                },
                1,
            ),
            (
                "both run ids missing: smaller address wins",
                Candidate {
                    run_id: None,
                    ..good(2)
                },
                Candidate {
                    run_id: None,
                    ..good(1)
                },
                1,
            ),
        ];
        for (what, a, b, want) in cases {
            let forward = select(&[a.clone(), b.clone()], &limits());
            let backward = select(&[b, a], &limits());
            assert_eq!(forward, Some(addr(want)), "{what}");
            assert_eq!(backward, forward, "{what}: order must not matter");
        }
    }

    /// The address tie-break compares the IP before the port.
    #[test]
    fn smaller_address_compares_ip_then_port() {
        let a = Candidate {
            addr: "10.0.0.2:1".parse().unwrap(),
            run_id: None,
            ..good(0)
        };
        let b = Candidate {
            addr: "10.0.0.1:9".parse().unwrap(),
            run_id: None,
            ..good(0)
        };
        assert_eq!(select(&[a, b.clone()], &limits()), Some(b.addr));
    }

    /// A mix: the down and the disconnected replicas are skipped despite
    /// better values; of two equal offsets, the one with a run id wins.
    #[test]
    fn picks_the_best_eligible_among_many() {
        let candidates = [
            Candidate {
                down: true,
                priority: 1,
                ..good(1)
            },
            Candidate {
                offset: 5000,
                ..good(2)
            },
            Candidate {
                offset: 9000,
                connected: false,
                ..good(3)
            },
            Candidate {
                offset: 5000,
                run_id: None,
                ..good(4)
            },
            good(5),
        ];
        assert_eq!(select(&candidates, &limits()), Some(addr(2)));
    }
}

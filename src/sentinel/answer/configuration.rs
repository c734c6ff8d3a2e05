//! `SENTINEL` configuration commands: RESET, FLUSHCONFIG, CONFIG GET and the
//! DEBUG timers.
//!
//! RESET forgets what was discovered (replicas, peers that are not voters, a
//! failover in progress) and lets `INFO` and hellos find it again; FLUSHCONFIG
//! marks the state dirty so the runner saves it; CONFIG GET shows the announce
//! and hostname settings Sentinel clients ask for; DEBUG shows or changes the
//! core's timers, for tests that need fast periods.

use std::time::Duration;

use tokio::time::Instant;

use super::{error, fields, millis, ok};
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::Core;
use crate::sentinel::events;
use crate::sentinel::node::Node;

impl Core {
    /// `SENTINEL RESET pattern`: resets the master when `pattern` is `*` or its
    /// name; answers how many masters were reset (0 or 1).
    pub(super) fn reset_matching(&mut self, pattern: &str, now: Instant) -> OwnedFrame {
        let matched = pattern == "*" || pattern == self.settings.name;
        if matched {
            self.reset(now);
        }
        OwnedFrame::Integer(i64::from(matched))
    }

    /// `SENTINEL RESET`: forget replicas and discovered peers; they are found
    /// again from `INFO` and hellos within seconds.
    fn reset(&mut self, now: Instant) {
        self.replicas.clear();
        self.peers.retain(|_, p| p.voter);
        self.failover = None;
        self.odown_since = None;
        self.master = Node::new(self.master.addr, now);
        self.dirty = true;
        self.events.emit(
            "+reset-master",
            events::master(&self.settings.name, self.master.addr),
        );
    }

    /// `SENTINEL FLUSHCONFIG`: the state is saved at the runner's next flush.
    pub(super) fn flush_config(&mut self) -> OwnedFrame {
        self.dirty = true;
        ok()
    }

    /// `SENTINEL CONFIG GET pattern`: the settings named by `pattern` (`*` for
    /// all, otherwise one name in any case).
    pub(super) fn config_get(&self, pattern: &str) -> OwnedFrame {
        let announce = self.settings.announce;
        let known = [
            ("announce-ip", announce.ip().to_string()),
            ("announce-port", announce.port().to_string()),
            ("announce-hostnames", "no".to_owned()),
            ("resolve-hostnames", "no".to_owned()),
        ];
        let pairs = known
            .into_iter()
            .filter(|(k, _)| pattern == "*" || pattern.eq_ignore_ascii_case(k))
            .collect();
        fields(pairs)
    }

    /// `SENTINEL DEBUG`: the timers and their defaults, in milliseconds.
    pub(super) fn debug_timers(&self) -> OwnedFrame {
        let t = &self.timers;
        fields(vec![
            ("info-period", millis(t.info)),
            ("ping-period", millis(t.ping)),
            ("ask-period", millis(t.ask)),
            ("publish-period", millis(t.publish)),
            ("default-down-after", millis(self.settings.down_after)),
            ("tilt-trigger", millis(t.tilt_trigger)),
            ("tilt-period", millis(t.tilt_period)),
            ("slave-reconf-timeout", millis(t.reconf_timeout)),
            (
                "default-failover-timeout",
                millis(self.settings.failover_timeout),
            ),
        ])
    }

    /// `SENTINEL DEBUG name ms [name ms …]`: changes timers, for tests.
    /// Each pair is applied to a copy, so an invalid one changes nothing; a
    /// value of 0 counts as 1 ms.
    pub(super) fn set_timers(&mut self, pairs: &[String]) -> OwnedFrame {
        let mut timers = self.timers;
        for pair in pairs.chunks_exact(2) {
            let Ok(ms) = pair[1].parse::<u64>() else {
                return error(format!(
                    "ERR Invalid argument '{}' for SENTINEL DEBUG",
                    pair[1]
                ));
            };
            let d = Duration::from_millis(ms.max(1));
            match pair[0].to_ascii_lowercase().as_str() {
                "info-period" => timers.info = d,
                "ping-period" => timers.ping = d,
                "ask-period" => timers.ask = d,
                "publish-period" => timers.publish = d,
                "tilt-trigger" => timers.tilt_trigger = d,
                "tilt-period" => timers.tilt_period = d,
                "slave-reconf-timeout" => timers.reconf_timeout = d,
                other => return error(format!("ERR Unknown timer '{other}'")),
            }
        }
        self.timers = timers;
        ok()
    }
}

//! `SENTINEL` configuration commands: RESET, CONFIG GET/SET and the DEBUG
//! timers.
//!
//! RESET forgets what was discovered (replicas, peers that are not voters, a
//! failover in progress) and lets `INFO` and hellos find it again; CONFIG
//! shows and changes the Sentinel's own settings (announce address, host
//! names); DEBUG shows or changes the periods of every group, for tests that
//! need fast ones. FLUSHCONFIG is one line in the table (`groups.rs`).

use std::time::Duration;

use tokio::time::Instant;

use super::{error, fields, millis, ok};
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::Core;
use crate::sentinel::events;
use crate::sentinel::groups::Groups;
use crate::sentinel::node::{Liveness, Node};

impl Core {
    /// `SENTINEL RESET`: forget replicas and discovered peers; they are found
    /// again from `INFO` and hellos within seconds.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.replicas.clear();
        self.peers
            .retain(|addr, _| self.settings.voters.contains(addr));
        self.failover = None;
        self.odown = Liveness::Up;
        self.master = Node::new(self.master.addr, now);
        self.dirty = true;
        self.events.emit(
            "+reset-master",
            events::master(&self.settings.name, self.master.addr),
        );
    }
}

/// A yes/no setting as Sentinel prints it.
fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_owned()
}

impl Groups {
    /// `SENTINEL CONFIG GET pattern` and `SENTINEL CONFIG SET name value`.
    pub(super) fn config_command(&mut self, words: &[String]) -> OwnedFrame {
        match words {
            [op, pattern] if op.eq_ignore_ascii_case("get") => self.config_get(pattern),
            [op, name, value] if op.eq_ignore_ascii_case("set") => self.config_set(name, value),
            _ => {
                error("ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.")
            }
        }
    }

    /// `SENTINEL CONFIG GET pattern`: the settings whose names match the glob
    /// `pattern` (`*` for all).
    fn config_get(&self, pattern: &str) -> OwnedFrame {
        let t = &self.template;
        let known = [
            ("resolve-hostnames", yes_no(t.resolve_hostnames)),
            ("announce-hostnames", yes_no(t.announce_hostnames)),
            (
                "announce-ip",
                t.announce_ip.map_or(String::new(), |ip| ip.to_string()),
            ),
            ("announce-port", t.announce_port.unwrap_or(0).to_string()),
            (
                "sentinel-user",
                t.sentinel_auth.user.clone().unwrap_or_default(),
            ),
            (
                "sentinel-pass",
                t.sentinel_auth.pass.clone().unwrap_or_default(),
            ),
        ];
        let pattern = pattern.to_ascii_lowercase();
        let pairs = known
            .into_iter()
            .filter(|(k, _)| crate::sentinel::api::glob_match(pattern.as_bytes(), k.as_bytes()))
            .collect();
        fields(pairs)
    }

    /// `SENTINEL CONFIG SET name value`: changes one of the Sentinel's own
    /// settings, for every group.
    fn config_set(&mut self, name: &str, value: &str) -> OwnedFrame {
        let flag = |value: &str| match value.to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        let invalid = || {
            error(format!(
                "ERR Invalid value '{value}' to SENTINEL CONFIG SET '{name}'"
            ))
        };
        match name.to_ascii_lowercase().as_str() {
            "resolve-hostnames" => match flag(value) {
                Some(on) => {
                    self.template.resolve_hostnames = on;
                    for core in self.cores.values_mut() {
                        core.settings.resolve_hostnames = on;
                    }
                }
                None => return invalid(),
            },
            "announce-hostnames" => match flag(value) {
                Some(on) => {
                    self.template.announce_hostnames = on;
                    for core in self.cores.values_mut() {
                        core.settings.announce_hostnames = on;
                    }
                }
                None => return invalid(),
            },
            "announce-port" => match value.parse::<u16>() {
                Ok(port) => {
                    self.template.announce_port = (port > 0).then_some(port);
                    if port > 0 {
                        self.template.announce.set_port(port);
                        self.announce_everywhere();
                    }
                }
                Err(_) => return invalid(),
            },
            "announce-ip" => match value.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    self.template.announce_ip = Some(ip);
                    self.template.announce.set_ip(ip);
                    self.announce_everywhere();
                }
                Err(_) if value.is_empty() => self.template.announce_ip = None,
                Err(_) => return invalid(),
            },
            "sentinel-user" => {
                self.template.sentinel_auth.user = (!value.is_empty()).then(|| value.to_owned());
            }
            "sentinel-pass" => {
                self.template.sentinel_auth.pass = (!value.is_empty()).then(|| value.to_owned());
            }
            _ => {
                return error(format!(
                    "ERR Invalid argument '{name}' to SENTINEL CONFIG SET"
                ));
            }
        }
        let name = name.to_ascii_lowercase();
        self.config_overrides.retain(|e| e.first() != Some(&name));
        self.config_overrides.push(vec![name, value.to_owned()]);
        self.dirty = true;
        ok()
    }

    /// Applies again the `SENTINEL CONFIG SET` settings given at run time
    /// before a restart (saved in the data directory).
    pub fn replay_config(&mut self, saved: Vec<Vec<String>>) {
        for entry in saved {
            if let [name, value] = entry.as_slice()
                && let OwnedFrame::Error(refused) = self.config_set(name, value)
            {
                tracing::warn!(%name, %refused, "saved SENTINEL CONFIG SET setting not applied");
            }
        }
    }

    /// Every group announces the template's address from now on.
    fn announce_everywhere(&mut self) {
        for core in self.cores.values_mut() {
            core.settings.announce = self.template.announce;
        }
    }

    /// `SENTINEL DEBUG`: the periods and the defaults of new groups, in
    /// milliseconds; `SENTINEL DEBUG name ms [name ms …]` changes them for
    /// every group. Each pair is applied to a copy, so an invalid one changes
    /// nothing; a value of 0 counts as 1 ms.
    pub(super) fn debug_command(&mut self, pairs: &[String]) -> OwnedFrame {
        let mut timers = self.timers;
        let mut template = self.template.clone();
        let (mut script_runtime, mut script_retry) = crate::sentinel::scripts::timing();
        if pairs.is_empty() {
            return fields(vec![
                ("info-period", millis(timers.info)),
                ("ping-period", millis(timers.ping)),
                ("ask-period", millis(timers.ask)),
                ("publish-period", millis(timers.publish)),
                ("default-down-after", millis(template.down_after)),
                ("tilt-trigger", millis(timers.tilt_trigger)),
                ("tilt-period", millis(timers.tilt_period)),
                ("slave-reconf-timeout", millis(timers.reconf_timeout)),
                (
                    "default-failover-timeout",
                    millis(template.failover_timeout),
                ),
                ("script-max-runtime", millis(script_runtime)),
                ("script-retry-delay", millis(script_retry)),
            ]);
        }
        for pair in pairs.chunks_exact(2) {
            let Ok(ms) = pair[1].parse::<u64>() else {
                return error(format!(
                    "ERR Invalid argument '{}' for SENTINEL DEBUG '{}'",
                    pair[1], pair[0]
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
                "default-down-after" => template.down_after = d,
                "default-failover-timeout" => template.failover_timeout = d,
                "script-max-runtime" => script_runtime = d,
                "script-retry-delay" => script_retry = d,
                other => {
                    return error(format!(
                        "ERR Unknown option or number of arguments for SENTINEL DEBUG '{other}'"
                    ));
                }
            }
        }
        self.template = template;
        self.set_timers(timers);
        crate::sentinel::scripts::set_timing(script_runtime, script_retry);
        ok()
    }
}

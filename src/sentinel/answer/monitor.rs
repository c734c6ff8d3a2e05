//! The groups themselves at run time: `SENTINEL MONITOR` starts monitoring
//! one, `SENTINEL SET` changes its settings (REMOVE is one line in the table,
//! `groups.rs`). Arguments are checked and refused in Sentinel's words; a
//! refused `SET` changes nothing from the refused option on, as in Sentinel.

use std::time::Duration;

use super::{error, ok};
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::Core;
use crate::sentinel::groups::Groups;
use crate::sentinel::{events, node};

/// One `SENTINEL SET` option applied to a group, or why it was refused.
type Applied = Result<(), OwnedFrame>;

impl Groups {
    /// `SENTINEL MONITOR name ip port quorum` (`words` from the name on).
    pub(super) fn monitor_command(
        &mut self,
        words: &[String],
        now: tokio::time::Instant,
    ) -> OwnedFrame {
        let [name, ip, port, quorum] = words else {
            return error("ERR wrong number of arguments for 'sentinel|monitor' command");
        };
        let Ok(quorum) = quorum.parse::<i64>() else {
            return error("ERR Invalid quorum");
        };
        let quorum = match u32::try_from(quorum) {
            Ok(q) if q > 0 => q,
            _ => return error("ERR Quorum must be 1 or greater."),
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return error("ERR Invalid port"),
        };
        let Some(master) = node::resolve(ip, port, self.template.resolve_hostnames) else {
            return error("ERR Invalid IP address or hostname specified");
        };
        let host = ip.parse::<std::net::IpAddr>().is_err().then(|| ip.clone());
        match self.monitor(name, master, host, quorum, now) {
            Ok(()) => ok(),
            Err(e) => error(e.to_string()),
        }
    }

    /// `SENTINEL SET name option value [option value …]` (`words` from the
    /// name on). Every accepted option is announced as `+set`.
    pub(super) fn set_command(&mut self, words: &[String]) -> OwnedFrame {
        let [name, pairs @ ..] = words else {
            return error("ERR wrong number of arguments for 'sentinel|set' command");
        };
        if pairs.len() < 2 {
            return error("ERR wrong number of arguments for 'sentinel|set' command");
        }
        let deny_scripts = self.template.deny_scripts_reconfig;
        let Some(core) = self.cores.get_mut(name) else {
            return error("ERR No such master with that name");
        };
        let mut rest = pairs;
        let mut reply = ok();
        while let [option, tail @ ..] = rest {
            let needed = if option.eq_ignore_ascii_case("rename-command") {
                2
            } else {
                1
            };
            if tail.len() < needed {
                reply = error(format!(
                    "ERR Unknown option or number of arguments for SENTINEL SET '{option}'"
                ));
                break;
            }
            let (values, after) = tail.split_at(needed);
            if let Err(refused) = set_option(core, option, values, deny_scripts) {
                reply = refused;
                break;
            }
            record_override(core, option, values);
            // Passwords are not shown in events, as in Sentinel.
            let shown = if option.eq_ignore_ascii_case("auth-pass") {
                "******".to_owned()
            } else {
                values.join(" ")
            };
            let description = format!(
                "{} {} {shown}",
                events::master(name, core.master.addr),
                option,
            );
            core.events.emit("+set", description);
            self.dirty = true;
            rest = after;
        }
        reply
    }
}

impl Groups {
    /// Applies again, over the group's configured settings, the `SENTINEL
    /// SET` options it was given at run time before a restart (its saved
    /// [`Core::overrides`]); one that no longer applies is logged and skipped.
    pub fn replay_overrides(&mut self, name: &str) {
        let Some(core) = self.cores.get_mut(name) else {
            return;
        };
        for entry in core.overrides.clone() {
            let [option, values @ ..] = entry.as_slice() else {
                continue;
            };
            match set_option(core, option, values, false) {
                Ok(()) => {
                    tracing::info!(group = name, %option, "setting from SENTINEL SET, saved in data_dir, applied")
                }
                Err(refused) => {
                    tracing::warn!(group = name, %option, ?refused, "saved SENTINEL SET setting not applied")
                }
            }
        }
    }
}

/// Remembers `option values…` as given at run time, replacing an earlier
/// value of the same option (of the same command, for `rename-command`).
fn record_override(core: &mut Core, option: &str, values: &[String]) {
    let mut entry = vec![option.to_ascii_lowercase()];
    entry.extend(values.iter().cloned());
    let same = |e: &Vec<String>| {
        e.first() == entry.first()
            && (entry[0] != "rename-command"
                || e.get(1).map(|c| c.to_ascii_uppercase())
                    == entry.get(1).map(|c| c.to_ascii_uppercase()))
    };
    core.overrides.retain(|e| !same(e));
    core.overrides.push(entry);
}

/// Applies one `SENTINEL SET` option to `core`.
fn set_option(core: &mut Core, option: &str, values: &[String], deny_scripts: bool) -> Applied {
    let value = values.first().map(String::as_str).unwrap_or_default();
    let bad = || {
        error(format!(
            "ERR Invalid argument '{value}' for SENTINEL SET '{option}'"
        ))
    };
    let positive = || match value.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n as u64),
        _ => Err(bad()),
    };
    let settings = &mut core.settings;
    match option.to_ascii_lowercase().as_str() {
        "down-after-milliseconds" => settings.down_after = Duration::from_millis(positive()?),
        "failover-timeout" => settings.failover_timeout = Duration::from_millis(positive()?),
        "parallel-syncs" => {
            settings.parallel_syncs = u32::try_from(positive()?).map_err(|_| bad())?;
        }
        "quorum" => settings.quorum = u32::try_from(positive()?).map_err(|_| bad())?,
        "master-reboot-down-after-period" | "primary-reboot-down-after-period" => {
            settings.master_reboot_down_after = match value.parse::<i64>() {
                Ok(0) => None,
                Ok(n) if n > 0 => Some(Duration::from_millis(n as u64)),
                _ => return Err(bad()),
            };
        }
        "auth-pass" => {
            settings.auth.pass = (!value.is_empty()).then(|| value.to_owned());
        }
        "auth-user" => {
            settings.auth.user = (!value.is_empty()).then(|| value.to_owned());
        }
        "rename-command" => {
            let [from, to] = values else {
                return Err(bad());
            };
            if from.is_empty() || to.is_empty() {
                return Err(bad());
            }
            let from = from.to_ascii_uppercase();
            settings.renamed_commands.remove(&from);
            if !from.eq_ignore_ascii_case(to) {
                settings.renamed_commands.insert(from, to.clone());
            }
        }
        "notification-script" | "client-reconfig-script" => {
            if deny_scripts {
                return Err(error(
                    "ERR Reconfiguration of scripts path is denied for security reasons. Check \
                     the deny-scripts-reconfig configuration directive in your config file.",
                ));
            }
            let path = (!value.is_empty()).then(|| std::path::PathBuf::from(value));
            if path.as_deref().is_some_and(|p| !is_executable(p)) {
                return Err(error(
                    if option.eq_ignore_ascii_case("notification-script") {
                        "ERR Notification script seems non existing or non executable"
                    } else {
                        "ERR Client reconfiguration script seems non existing or non executable"
                    },
                ));
            }
            let scripts = &mut core.events.scripts;
            if option.eq_ignore_ascii_case("notification-script") {
                scripts.notification = path;
            } else {
                scripts.client_reconfig = path;
            }
        }
        _ => {
            return Err(error(format!(
                "ERR Unknown option or number of arguments for SENTINEL SET '{option}'"
            )));
        }
    }
    Ok(())
}

/// Whether `path` is a file this process may execute (Sentinel's
/// `access(path, X_OK)`).
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

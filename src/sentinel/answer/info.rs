//! `INFO` on the sentinel port, as Redis Sentinel 7.0 answers it: the
//! sections Sentinel has (server, clients, stats, CPU, sentinel), in that
//! order; `INFO`, `default`, `all` and `everything` give all five, named
//! sections give those that exist, and others are left out without an error.
//! Tools read `redis_mode`, `run_id`, `tcp_port` and the sentinel section's
//! `masterN:` lines; the proxy adds `sentinel_proxy_version` and
//! `sentinel_fenced` (why the served group's writes are held, `none` when
//! they are not).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::sentinel::groups::Groups;

/// Sentinel's sections, in the order `INFO` prints them.
const SECTIONS: &[&str] = &["server", "clients", "stats", "cpu", "sentinel"];

/// Client connections the sentinel port accepts, as `maxclients` shows it.
const MAX_CLIENTS: usize = 10_000;

impl Groups {
    /// `INFO [section …]`.
    pub fn info_text(&self, sections: &[String], now: Instant) -> String {
        let wanted: Vec<String> = sections.iter().map(|s| s.to_ascii_lowercase()).collect();
        let all = wanted.is_empty()
            || wanted
                .iter()
                .any(|s| matches!(s.as_str(), "default" | "all" | "everything"));
        let stats = &self.template.port_stats;
        let mut parts = Vec::new();
        for section in SECTIONS {
            if all || wanted.iter().any(|w| w == section) {
                parts.push(match *section {
                    "server" => self.server_section(),
                    "clients" => format!(
                        "# Clients\r\nconnected_clients:{}\r\nmaxclients:{MAX_CLIENTS}\r\n",
                        stats.connected.load(Ordering::Relaxed)
                    ),
                    "stats" => format!(
                        "# Stats\r\ntotal_connections_received:{}\r\n",
                        stats.accepted.load(Ordering::Relaxed)
                    ),
                    "cpu" => cpu_section(),
                    _ => self.sentinel_section(now),
                });
            }
        }
        parts.join("\r\n")
    }

    /// `# Server`: who answers.
    fn server_section(&self) -> String {
        format!(
            "# Server\r\nredis_version:7.0.0\r\nredis_mode:sentinel\r\nprocess_id:{}\r\n\
             run_id:{}\r\ntcp_port:{}\r\nsentinel_proxy_version:{}\r\n",
            std::process::id(),
            self.myid,
            self.template.announce.port(),
            env!("CARGO_PKG_VERSION"),
        )
    }

    /// `# Sentinel`: the Sentinel's state and one line per group.
    fn sentinel_section(&self, now: Instant) -> String {
        let fenced = self
            .served
            .iter()
            .find_map(|name| self.cores.get(name))
            .or_else(|| self.cores.values().next())
            .and_then(|core| core.fence_reason(now))
            .unwrap_or("none");
        let scripts = crate::sentinel::scripts::pending();
        let mut text = format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\n\
             sentinel_running_scripts:{}\r\nsentinel_scripts_queue_length:{}\r\n\
             sentinel_simulate_failure_flags:{}\r\nsentinel_current_epoch:{}\r\n\
             sentinel_fenced:{fenced}\r\n",
            self.cores.len(),
            u8::from(self.tilt()),
            scripts.iter().filter(|call| call.running).count(),
            scripts.len(),
            u8::from(self.simulated_failure.after_election)
                + 2 * u8::from(self.simulated_failure.after_promotion),
            self.current_epoch(),
        );
        for (i, core) in self.cores.values().enumerate() {
            text.push_str(&core.info_master_line(i));
        }
        text
    }
}

/// `# CPU`: this process's CPU time so far, from `/proc/self/stat` (zeros
/// where it cannot be read).
fn cpu_section() -> String {
    let (user, sys) = cpu_times().unwrap_or_default();
    format!(
        "# CPU\r\nused_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\n",
        sys.as_secs_f64(),
        user.as_secs_f64()
    )
}

/// User and system CPU time of this process (Linux).
fn cpu_times() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) start after
    // its closing parenthesis; utime and stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // Linux reports in clock ticks, 100 per second on every common build.
    let tick = Duration::from_millis(10);
    Some((tick * ticks(11)? as u32, tick * ticks(12)? as u32))
}

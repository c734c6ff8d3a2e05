//! A host name of the test's own in `/etc/hosts`, pointed where the test
//! says and removed when the test ends, so a test can move a node to a new
//! address under the same name, as a restarted pod or VM does. Names are
//! unique per test (`sentinel-proxy-test-<pid>-<n>.invalid`), so tests running
//! at once never see each other's; `.invalid` is never a real name.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The hosts file every resolver on the machine reads first.
const HOSTS: &str = "/etc/hosts";

/// Names handed out by this test process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One name in `/etc/hosts`; dropping it removes the name's line.
pub struct HostName {
    name: String,
}

impl HostName {
    /// A new name pointing to `ip`. Panics with the reason when the hosts
    /// file cannot be written (the test needs root, as CI has).
    pub fn pointing_to(ip: IpAddr) -> HostName {
        let name = format!(
            "sentinel-proxy-test-{}-{}.invalid",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let host = HostName { name };
        host.point_to(ip);
        host
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Points the name to `ip` from now on.
    pub fn point_to(&self, ip: IpAddr) {
        let mut lines = self.other_lines();
        lines.push(format!("{ip} {}", self.name));
        write(&lines);
    }

    /// Every line of the hosts file but this name's.
    fn other_lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(HOSTS).unwrap_or_else(|e| panic!("read {HOSTS}: {e}"));
        text.lines()
            .filter(|line| !line.split_whitespace().any(|word| word == self.name))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for HostName {
    fn drop(&mut self) {
        write(&self.other_lines());
    }
}

/// Writes `lines` as the hosts file, in place (in a container it is a mount
/// that cannot be renamed over), in one write.
fn write(lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(HOSTS, text).unwrap_or_else(|e| {
        panic!("this test points a name of its own to loopback addresses in {HOSTS} and needs to write it (run as root): {e}")
    });
}

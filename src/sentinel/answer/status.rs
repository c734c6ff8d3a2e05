//! Whole-state reports of the core: `INFO` as Redis Sentinel prints it, and
//! the snapshot behind the admin endpoints (`/status`, `/readyz`) and the
//! topology metrics.
//!
//! Both read the state and change nothing. `INFO` keeps Sentinel's sections
//! and field names (clients parse them) and adds `sentinel_proxy_version` and
//! `sentinel_fenced`, which name this proxy's own view.

use tokio::time::Instant;

use crate::sentinel::core::Core;
use crate::sentinel::node::Node;

impl Core {
    /// The snapshot for `/status`, `/readyz` and the topology metrics.
    ///
    /// A node is `up` while its link is up and it has not gone unanswered
    /// for `down-after`; a replica's lag is the master's replication offset
    /// minus its own. `held_reason` says why commands are held when
    /// [`Core::route`] has no master to give. Peers are listed with whether
    /// they are in touch, and events are the most recent ones kept.
    pub fn status(&self, now: Instant) -> crate::status::Status {
        use crate::sentinel::info::ReportedRole;
        use crate::status::{NodeStatus, PeerStatus, Status};
        let master_offset = self.master.info.as_ref().map(|i| i.master_repl_offset);
        let lags = self.replica_lags();
        let node = |n: &Node, role: &'static str| NodeStatus {
            addr: n.addr.to_string(),
            role,
            reported_role: match n.role() {
                Some(ReportedRole::Master) => "master",
                Some(ReportedRole::Replica(_)) => "replica",
                _ => "unknown",
            },
            up: n.link_up
                && n.unanswered_since
                    .is_none_or(|t| now.saturating_duration_since(t) < self.settings.down_after),
            sdown: n.sdown.is_down(),
            lag_bytes: match (n.role(), master_offset) {
                (Some(ReportedRole::Replica(r)), Some(m)) => Some(m.saturating_sub(r.offset)),
                _ => None,
            },
            lag_seconds: lags.iter().find(|(a, _)| *a == n.addr).map(|(_, lag)| *lag),
        };
        let (master, _) = self.announced_master();
        Status {
            source: "sentinel-core",
            master_name: self.settings.name.clone(),
            master: Some(master.to_string()),
            held_reason: self.route(now).0.is_none().then(|| {
                self.fence_reason(now)
                    .unwrap_or("the master's role is not confirmed yet")
                    .to_owned()
            }),
            current_epoch: self.current_epoch,
            config_epoch: self.config_epoch,
            sdown: self.master.sdown.is_down(),
            odown: self.odown.is_down(),
            tilt: self.tilt.is_on(),
            failover: self.failover.as_ref().map(|f| f.stage.as_str().to_owned()),
            nodes: std::iter::once(node(&self.master, "master"))
                .chain(self.replicas.values().map(|n| node(n, "replica")))
                .collect(),
            peers: self
                .peers
                .values()
                .map(|p| PeerStatus {
                    addr: p.addr.to_string(),
                    run_id: p.run_id.clone(),
                    voter: p.voter,
                    reachable: self.in_touch(p, now),
                })
                .collect(),
            quorum_reachable: self.has_majority(now),
            recent_events: self
                .events
                .recent()
                .map(|e| format!("{} {}", e.channel, e.message))
                .collect(),
            groups: Vec::new(),
        }
    }

    /// This group's line in `INFO`'s sentinel section, as the `index`th
    /// master: its status (`odown`, `sdown` or `ok`), the announced master,
    /// the replicas, and the Sentinels (the peers heard from plus this one).
    pub fn info_master_line(&self, index: usize) -> String {
        let (addr, _) = self.announced_master();
        let status = if self.odown.is_down() {
            "odown"
        } else if self.master.sdown.is_down() {
            "sdown"
        } else {
            "ok"
        };
        let sentinels = self.peers.values().filter(|p| p.run_id.is_some()).count() + 1;
        let address = match (addr.ip(), self.shown_host(addr)) {
            (std::net::IpAddr::V6(ip), host) if host == ip.to_string() => addr.to_string(),
            (_, host) => format!("{host}:{}", addr.port()),
        };
        format!(
            "master{index}:name={},status={status},address={address},slaves={},sentinels={sentinels}\r\n",
            self.settings.name,
            self.replicas.len(),
        )
    }
}

//! Sentinel events: the same words Redis Sentinel uses (`+sdown`, `+odown`,
//! `+switch-master`, …), written to the log and published on the sentinel
//! port, where Sentinel-aware clients subscribe to them.
//!
//! The text of an event about a node follows Sentinel's format:
//! `<kind> <name> <ip> <port>`, followed by `@ <master-name> <ip> <port>` when the
//! node is not the master itself.
//!
//! Warning-level events also run the notification script, as in Sentinel
//! (see [`is_warning`] for which).

use std::collections::VecDeque;
use std::net::SocketAddr;

use tokio::sync::broadcast;
use tracing::{info, warn};

use super::api::Event;
use super::scripts::Scripts;

/// How many recent events are kept for `/status`-style views.
const RECENT: usize = 64;

/// Emits events to the log and to sentinel-port subscribers.
#[derive(Debug)]
pub struct Events {
    /// The sentinel port's event feed: each subscriber (`SUBSCRIBE +sdown`,
    /// `PSUBSCRIBE *`) receives from it; one that falls behind the
    /// channel's capacity is disconnected.
    tx: broadcast::Sender<Event>,
    /// The last [`RECENT`] events, oldest first.
    recent: VecDeque<Event>,
    /// The notification and client-reconfig scripts.
    pub scripts: Scripts,
}

impl Events {
    /// Events go to `tx` (and the log).
    pub fn new(tx: broadcast::Sender<Event>) -> Events {
        Events {
            tx,
            recent: VecDeque::with_capacity(RECENT),
            scripts: Scripts::default(),
        }
    }

    /// Emits one event: `channel` is its kind (`+sdown`), `message` its text.
    pub fn emit(&mut self, channel: &str, message: String) {
        if is_warning(channel) {
            warn!(target: "sentinel_proxy::event", event = channel, "{channel} {message}");
            self.scripts.notify(channel, &message);
        } else {
            info!(target: "sentinel_proxy::event", event = channel, "{channel} {message}");
        }
        let event = Event {
            channel: channel.to_owned(),
            message,
        };
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(event.clone());
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Event> {
        self.recent.iter()
    }
}

/// Whether `kind` is logged at warning level and handed to the notification
/// script: everything about failures and failovers, not discovery.
///
/// Sentinel's own levels, with three exceptions:
/// `+failover-state-send-slaveof-noone`, `+failover-state-wait-promotion`
/// and `-slave-reconf-sent-timeout` are notices in Sentinel but warnings
/// here. Any kind not listed is a warning.
pub fn is_warning(kind: &str) -> bool {
    !matches!(
        kind,
        "+slave"
            | "+sentinel"
            | "+reboot"
            | "+role-change"
            | "+slave-reconf-sent"
            | "+slave-reconf-inprog"
            | "+slave-reconf-done"
            | "+convert-to-slave"
            | "+fix-slave-config"
            | "+sentinel-address-switch"
            | "-dup-sentinel"
    )
}

/// Sentinel's description of the master: `master <name> <ip> <port>`.
pub fn master(name: &str, addr: SocketAddr) -> String {
    format!("master {name} {} {}", addr.ip(), addr.port())
}

/// Sentinel's description of a replica of `master`.
pub fn replica(addr: SocketAddr, name: &str, master: SocketAddr) -> String {
    format!(
        "slave {addr} {} {} @ {name} {} {}",
        addr.ip(),
        addr.port(),
        master.ip(),
        master.port()
    )
}

/// Sentinel's description of a peer (named by its run id) of `master`.
pub fn sentinel(run_id: &str, addr: SocketAddr, name: &str, master: SocketAddr) -> String {
    format!(
        "sentinel {run_id} {} {} @ {name} {} {}",
        addr.ip(),
        addr.port(),
        master.ip(),
        master.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Master and replica descriptions read as Sentinel prints them.
    #[test]
    fn descriptions_use_sentinels_format() {
        let m: SocketAddr = "127.0.0.1:6379".parse().expect("addr");
        let r: SocketAddr = "127.0.0.1:6380".parse().expect("addr");
        assert_eq!(master("mymaster", m), "master mymaster 127.0.0.1 6379");
        assert_eq!(
            replica(r, "mymaster", m),
            "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379"
        );
    }

    /// One emitted event reaches a subscriber and the recent list.
    #[test]
    fn events_reach_subscribers_and_the_recent_list() {
        let (tx, mut rx) = broadcast::channel(4);
        let mut events = Events::new(tx);
        events.emit("+sdown", "master mymaster 127.0.0.1 6379".into());
        let got = rx.try_recv().expect("event");
        assert_eq!(got.channel, "+sdown");
        assert_eq!(events.recent().count(), 1);
    }
}

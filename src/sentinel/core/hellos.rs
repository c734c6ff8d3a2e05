//! Hellos: the payload this proxy publishes on `__sentinel__:hello`, and
//! what a peer's hello teaches (the peer itself, a newer epoch, a newer
//! master configuration).
//!
//! # Sentinel's rules here
//! * **The hello.** Every 2 s this proxy publishes eight comma-separated
//!   fields on every node's `__sentinel__:hello` channel and to every peer's
//!   sentinel port: its announced IP and sentinel port, its run id and
//!   current epoch, and the master's name, IP, port and config epoch (see
//!   `hello`). Sentinels find one another this way and spread the latest
//!   configuration.
//! * **What a hello teaches.** A hello about another master name, or this
//!   proxy's own, is ignored. The sender becomes a known peer (`+sentinel`
//!   when new). A higher current epoch is adopted (`+new-epoch`). A higher
//!   master config epoch wins: if it names another master, this proxy
//!   switches to it (`+config-update-from`, then `+switch-master`), else it
//!   only takes the epoch. As the highest config epoch wins everywhere,
//!   every sentinel converges on the master of the latest failover.
//! * **Which master is announced.** While this proxy leads a failover whose
//!   promoted replica has confirmed the master role (stage `ReconfReplicas`),
//!   it announces that replica under the failover's epoch, so the peers
//!   switch at once; Sentinel does the same from its reconf-slaves state.
//!   Hellos are taken in TILT too, as in Sentinel.
//!
//! # Where this differs from Sentinel
//! * A sender becomes a voter only if its address is a configured voter;
//!   any other is an observer, whose hellos still teach epochs and
//!   configurations.
//! * A known run id at a new address is `+sentinel-address-switch`, as in
//!   Sentinel, but a configured voter keeps its entry at the configured
//!   address, and the new address gets an observer entry of its own.
//! * A new run id at a known address (a peer restarted without its saved
//!   state) replaces the old one with `-dup-sentinel`, the event of older
//!   Sentinels; Sentinel 7 emits `+sentinel-invalid-addr` and drops the
//!   old entry instead.
//! * Hellos from an address under a simulated partition are ignored.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::Core;
use crate::sentinel::events;
use crate::sentinel::hello::Hello;
use crate::sentinel::node::{self, Peer};

impl Core {
    /// This proxy's hello payload, naming the master it believes in.
    ///
    /// The master and config epoch are those of `announced_master`; the
    /// sentinel address is `Settings::announce`, the one peers should reach.
    pub fn hello_payload(&self) -> String {
        let (master, config_epoch) = self.announced_master();
        Hello {
            ip: self.settings.announce.ip().to_string(),
            port: self.settings.announce.port(),
            run_id: self.myid.clone(),
            current_epoch: self.current_epoch,
            master_name: self.settings.name.clone(),
            master_ip: self.shown_host(master),
            master_port: master.port(),
            master_config_epoch: config_epoch,
        }
        .to_payload()
    }

    /// The master to announce: the promoted replica once a failover this
    /// proxy leads has promoted it (so peers switch at once), else the master.
    ///
    /// Returned with its config epoch: the failover's epoch for the promoted
    /// replica, `config_epoch` otherwise. The same pair is saved and routed,
    /// so hellos, the saved state and the data path never disagree.
    pub fn announced_master(&self) -> (SocketAddr, u64) {
        match &self.failover {
            Some(f) => match f.stage.reconfiguring() {
                Some(promoted) => (promoted, f.epoch),
                None => (self.master.addr, self.config_epoch),
            },
            None => (self.master.addr, self.config_epoch),
        }
    }

    /// Takes in a hello (from a node's channel or a peer's `PUBLISH`).
    ///
    /// A malformed hello, this proxy's own, one about another master name or
    /// one from a partitioned address is dropped. Otherwise the sender is
    /// recorded (`learn_peer`), a higher current epoch is adopted, and a
    /// higher master config epoch is taken: with a different master by
    /// `switch_master`, which also ends any failover of this proxy. The
    /// master address must parse as `ip:port`, so a hello naming an IPv6
    /// master teaches the epoch only.
    pub fn take_hello(&mut self, payload: &str, now: Instant) {
        let Ok(hello) = Hello::parse(payload) else {
            tracing::debug!(payload, "ignoring a malformed hello");
            return;
        };
        if hello.run_id == self.myid || hello.master_name != self.settings.name {
            return;
        }
        let Some(addr) = hello.sentinel_addr() else {
            return;
        };
        if self.partitioned.contains(&addr) {
            return;
        }
        self.learn_peer(addr, &hello.run_id, now);
        if hello.current_epoch > self.current_epoch {
            self.current_epoch = hello.current_epoch;
            self.dirty = true;
            self.events
                .emit("+new-epoch", self.current_epoch.to_string());
        }
        let Some(announced) = node::resolve(
            &hello.master_ip,
            hello.master_port,
            self.settings.resolve_hostnames,
        ) else {
            return;
        };
        if hello.master_config_epoch > self.config_epoch {
            if announced != self.master.addr {
                let from = events::sentinel(&hello.run_id, addr, &self.settings.name, announced);
                self.events.emit("+config-update-from", from);
                self.switch_master(announced, hello.master_config_epoch, now);
            } else {
                self.config_epoch = hello.master_config_epoch;
                self.dirty = true;
            }
        }
    }

    /// Records a peer heard from at `addr` under `run_id`: a new peer, one
    /// that moved (same run id, new address), or a duplicate run id.
    ///
    /// A moved peer's old entry is removed, except a voter's, which stays at
    /// its configured address; the move is announced once, when its new
    /// address is first heard under its run id. A new entry is a voter if `addr` is a
    /// configured voter, or every Sentinel votes (`Settings::discover_voters`). A new or changed run id is announced (`+sentinel`)
    /// and marks the state for saving. Every hello also counts as hearing
    /// from the peer: it refreshes `last_heard` and `last_hello_heard` and
    /// clears `hello_owed`, which fencing needs (see `route`).
    fn learn_peer(&mut self, addr: SocketAddr, run_id: &str, now: Instant) {
        let voter = self.settings.discover_voters || self.settings.voters.contains(&addr);
        let name = self.settings.name.clone();
        let master = self.master.addr;
        // The same run id at a new address: the peer moved. Once its new
        // address is known under that run id the move was taken (a voter's
        // entry stays behind at its configured address, and must not count
        // as a move at every hello).
        let has_run_id = |p: &Peer| p.run_id.as_deref() == Some(run_id);
        let moved = if self.peers.get(&addr).is_some_and(has_run_id) {
            None
        } else {
            self.peers
                .iter()
                .find(|(a, p)| **a != addr && has_run_id(p))
                .map(|(a, _)| *a)
        };
        if let Some(old) = moved
            && let Some(mut peer) = self.peers.remove(&old)
        {
            if peer.voter && !self.settings.voters.contains(&old) {
                peer.voter = false;
            }
            self.events.emit(
                "+sentinel-address-switch",
                format!(
                    "master {name} {} {} ip {} port {} for {run_id}",
                    master.ip(),
                    master.port(),
                    addr.ip(),
                    addr.port()
                ),
            );
            // A voter keeps its configured address entry.
            if peer.voter {
                self.peers.insert(old, peer);
            }
        }
        let peer = self
            .peers
            .entry(addr)
            .or_insert_with(|| Peer::new(addr, voter));
        let announce = match &peer.run_id {
            None => true,
            Some(known) if known != run_id => {
                self.events.emit(
                    "-dup-sentinel",
                    format!(
                        "master {name} {} {} #duplicate of {addr} or {known}",
                        master.ip(),
                        master.port()
                    ),
                );
                true
            }
            Some(_) => false,
        };
        peer.run_id = Some(run_id.to_owned());
        peer.last_heard = Some(now);
        peer.last_hello_heard = Some(now);
        peer.hello_owed = false;
        if announce {
            self.dirty = true;
            self.events
                .emit("+sentinel", events::sentinel(run_id, addr, &name, master));
        }
    }
}

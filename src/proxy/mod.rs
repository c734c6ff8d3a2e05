//! The data path, client side: accept connections and run one session per client.
//!
//! By default, sessions in Redis's default connection state send their
//! commands over one shared connection per master ([`shared`]) and move to a
//! backend connection of their own (1:1) at the first command that needs one,
//! so SELECT, AUTH, MULTI/WATCH, pub/sub, blocking commands and MONITOR behave
//! exactly as on Redis. With `--share-backend false`, every session opens its
//! own connection at its first command.
//! Either way requests and replies are delimited, never rebuilt: the bytes a
//! client sent are the bytes the master gets.
//!
//! This module reads the [`crate::switch`] and never reaches into the control
//! path; when it notices trouble it sends a [`crate::switch::Hint`].
//!
//! * [`listener`]: the accept loop, the client limit, and graceful shutdown.
//! * `session`: the per-client event loop, one file per job (input, bind,
//!   replies, phase, pipe, io).
//! * [`state`]: pure decisions: what a command does to the session.
//! * [`ledger`]: pure bookkeeping: which reply answers which command.
//! * [`queue`]: the ledger's FIFO, whose first slot needs no heap.
//! * [`bufpool`]: read buffers lent only while a session holds bytes.
//! * [`shared`]: one backend connection for many sessions in the default
//!   connection state (`--share-backend`, on by default).

pub mod bufpool;
pub mod ledger;
pub mod listener;
pub mod queue;
pub mod readers;
mod session;
pub mod shared;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};

use crate::backend::connect::Dialer;
use crate::config::{Config, OnSwitch, ReadFallback};
use crate::resp::command::{Class, CommandTable};
use crate::resp::value::encode_command;
use crate::switch::{HintSender, SwitchReader};

/// Session settings, fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a command may wait for a master.
    pub hold_timeout: Duration,
    /// How long in-flight replies are awaited on a switch or shutdown.
    pub drain_timeout: Duration,
    /// Release an idle stateless session's backend after this long.
    pub idle_release: Option<Duration>,
    /// Rebind or close sessions on a switch.
    pub on_switch: OnSwitch,
    /// Password clients must AUTH with at the proxy.
    pub requirepass: Option<String>,
    /// The AUTH command sent first on every backend connection, if configured.
    pub backend_auth: Option<Bytes>,
    /// Let stateless sessions share one backend connection per master.
    pub share_backend: bool,
    /// Measure the proxy-added latency (two clock reads per batch; off when
    /// metrics are off).
    pub measure_latency: bool,
    /// On a read endpoint, where clients go when no replica qualifies;
    /// `None` on an endpoint of the master.
    pub reads: Option<ReadFallback>,
}

impl Settings {
    /// Session settings from the validated configuration.
    pub fn from_config(config: &Config) -> Settings {
        let backend_auth = config.backend_auth.pass.as_ref().map(|pass| {
            let mut frame = BytesMut::new();
            match &config.backend_auth.user {
                Some(user) => encode_command(&mut frame, &["AUTH", user, pass]),
                None => encode_command(&mut frame, &["AUTH", pass]),
            }
            frame.freeze()
        });
        Settings {
            hold_timeout: config.hold_timeout,
            drain_timeout: config.drain_timeout,
            idle_release: config.idle_release,
            on_switch: config.on_switch,
            requirepass: config.requirepass.clone(),
            backend_auth,
            share_backend: config.share_backend,
            measure_latency: config.metrics_listen.is_some(),
            reads: None,
        }
    }
}

/// What every session shares: read-only after start-up.
#[derive(Debug)]
pub struct Shared {
    /// Where the master is.
    pub switch: SwitchReader,
    /// Where to report trouble.
    pub hints: HintSender,
    /// Fixed settings.
    pub settings: Settings,
    /// Command classification, replaced when learned from the master.
    pub commands: Arc<ArcSwap<CommandTable>>,
    /// Traffic counters, shared with the metrics endpoint.
    pub counters: Arc<Counters>,
    /// The shared backend connection (`share_backend`).
    pub links: shared::SharedBackends,
    /// How sessions connect to the master (plain or TLS).
    pub dialer: Dialer,
    /// On a read endpoint, the sessions on each replica.
    pub read_load: Arc<readers::ReadLoad>,
}

/// Process-wide traffic counters: plain atomics, so the hot path pays one
/// relaxed add per batch or per read/write, never a metrics-registry lookup.
/// The metrics endpoint reads them at scrape time.
#[derive(Debug, Default)]
pub struct Counters {
    /// Commands by class, indexed like [`Class::ALL`].
    pub commands: [AtomicU64; 7],
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Bytes sent (or queued) to clients.
    pub bytes_out: AtomicU64,
    /// Client connections accepted.
    pub accepted: AtomicU64,
    /// Client connections whose session ended.
    pub closed: AtomicU64,
    /// Client connections refused because `max_clients` was reached.
    pub rejected_max_clients: AtomicU64,
    /// Sessions with a backend connection of their own.
    pub own_backends: AtomicU64,
    /// Sessions bound to a shared backend connection.
    pub sessions_on_shared: AtomicU64,
    /// Shared backend connections open.
    pub shared_backends: AtomicU64,
    /// Time from a batch of requests read to its write to the backend.
    pub request_latency: LatencyHistogram,
    /// Time from replies read from the backend to their write to the client.
    pub reply_latency: LatencyHistogram,
}

/// Upper bounds of the latency buckets, in nanoseconds (1 µs to 10 ms).
pub const LATENCY_BOUNDS_NS: [u64; 13] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
    5_000_000, 10_000_000,
];

/// A fixed-bucket histogram of atomics: recording is a bucket search and
/// three relaxed adds, cheap enough for the data path.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Counts per bucket (not cumulative); the last one is `+Inf`.
    pub buckets: [AtomicU64; 14],
    /// Sum of the recorded values, in nanoseconds.
    pub sum_ns: AtomicU64,
    /// Number of recorded values.
    pub count: AtomicU64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NS
            .iter()
            .position(|bound| ns <= *bound)
            .unwrap_or(LATENCY_BOUNDS_NS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counters {
    /// Counts bytes read from a client.
    pub fn add_bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts bytes written to a client.
    pub fn add_bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> u64 {
        let accepted = self.accepted.load(Ordering::Relaxed);
        accepted.saturating_sub(self.closed.load(Ordering::Relaxed))
    }

    /// Adds a session's local counts.
    pub fn add(&self, local: &[u32; 7]) {
        for (total, n) in self.commands.iter().zip(local) {
            if *n > 0 {
                total.fetch_add(u64::from(*n), Ordering::Relaxed);
            }
        }
    }

    /// Commands counted in `class` so far.
    pub fn commands(&self, class: Class) -> u64 {
        self.commands[class.index()].load(Ordering::Relaxed)
    }
}

//! sentinel-proxy: one fixed Redis address that keeps working through failovers.
//!
//! Legacy applications connect to the proxy as if it were Redis. Bytes are
//! forwarded as received, over a backend connection shared with other clients
//! while the client's connection state allows (`--share-backend`, on by
//! default), else over one of the client's own. When the master changes,
//! sessions move to the new master without the client noticing, or are
//! closed when their state cannot move honestly.
//! Who decides that the master changed is a control-path *source*: the
//! built-in Sentinel (a group of proxies, and real `redis-sentinel`s if
//! wanted, monitor, agree, elect and fail over), or existing Sentinels the
//! proxy follows.
//!
//! ```text
//!  app ──RESP──▶ proxy::listener ─▶ proxy::session ─(own or shared conn)─▶ master
//!                                     ▲ reads Topology (lock-free)
//!  ══════════════════════════════ switch ═══════════════ the only seam
//!                                     ▲ control::Committer publishes
//!  peers, Sentinels ──▶ sentinel (core + sentinel port)  ─┐ control::Source
//!  existing Sentinels ─▶ follow                           ─┘ (one of the two)
//!  Prometheus ──HTTP──▶ admin (/metrics /readyz /status)
//! ```
//!
//! `ARCHITECTURE.md` at the top of the repository is the longer map: where
//! each kind of change goes, and the invariants.
//!
//! # Layout
//! Data path (the multi-threaded runtime):
//! * [`resp`]: pure framing and command classification (no sockets).
//! * [`proxy`]: listener, sessions, their pure state and ledger, shared
//!   backend connections.
//! * [`backend`]: connecting to Redis servers and peers, plain or TLS (one
//!   `Dialer` for the process); the control path's probes.
//! * [`secret`]: constant-time password comparison, for both ports.
//! * [`accept`]: the accept loop of both Redis-speaking ports (admission,
//!   `maxclients`, the refusal).
//! * [`tls`]: TLS on rustls: the endpoints' and the servers' certificates,
//!   reload on SIGHUP, and a stream sessions drive without waiting.
//!
//! The seam:
//! * [`switch`]: `Topology` snapshots, one writer, lock-free readers; hints
//!   from sessions back to the control path.
//!
//! Control path (one `control` thread):
//! * [`control`]: the `Source` trait and the `Committer`, the one writer of a
//!   group's switch.
//! * [`sentinel`]: the built-in Redis Sentinel: pure core, links, the
//!   sentinel port, persistence.
//! * [`follow`]: following existing Redis Sentinels.
//! * [`catalog`]: learns the command table from the master's `COMMAND` reply.
//! * [`admin`], [`status`], [`metrics`]: HTTP endpoints, the status snapshot,
//!   metric names.
//!
//! Around them:
//! * [`config`]: flags and file, validated once; [`sentinel_conf`]: reading a
//!   redis-sentinel `sentinel.conf` (the `import` subcommand) and, for the
//!   stand-in, reading and rewriting it as Sentinel does.
//! * [`standin`]: the proxy as a drop-in `redis-sentinel` (`--sentinel-conf`):
//!   the built-in Sentinel alone, its state in the `sentinel.conf` it rewrites.
//! * [`app`]: wiring, runtimes, graceful shutdown; [`telemetry`]: logs;
//!   [`demo`]: the local lab; [`build`]: version text.
//!
//! The data path (`proxy`, `backend::connect`, `resp`) never imports the
//! control path (`control`, `sentinel`, `follow`, `admin`); they meet only in
//! [`switch`].

#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod app;
pub mod backend;
pub mod build;
pub mod catalog;
pub mod config;
pub mod control;
pub mod demo;
pub mod follow;
pub mod metrics;
pub mod proxy;
pub mod resp;
pub mod secret;
pub mod sentinel;
pub mod sentinel_conf;
pub mod standin;
pub mod status;
pub mod switch;
pub mod telemetry;
pub mod tls;

pub use app::App;
pub use config::Config;

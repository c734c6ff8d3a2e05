//! sentinel-proxy: one fixed Redis address that keeps working through failovers.
//!
//! Legacy applications connect to the proxy as if it were Redis. Each client
//! connection gets its own connection to the current master; bytes are forwarded
//! as received. When the master changes (as agreed by a majority of Redis
//! Sentinels), sessions move to the new master without the client noticing, or
//! are closed when their state cannot move honestly.
//!
//! ```text
//!  app ──RESP──▶ proxy::listener ─▶ proxy::session (1 client ⇄ 1 backend) ─▶ master
//!                                     ▲ reads Topology (switch, lock-free)
//!  Sentinels ──▶ follow (control thread) ─ publishes Topology ─┘
//! ```
//!
//! # Layout
//! * [`resp`]: pure framing and command classification (no sockets).
//! * [`proxy`]: the data path: listener, sessions, their pure state and ledger.
//! * [`backend`]: connecting to Redis servers; control-path probes.
//! * [`switch`]: the one seam between control and data paths.
//! * [`follow`]: the control path that follows existing Sentinels.
//! * [`catalog`]: learns the command table from the master's `COMMAND` reply.
//! * [`config`]: flags and file, validated once.
//! * [`app`]: wiring, runtimes, graceful shutdown.
//!
//! The data path (`proxy`, `backend::connect`, `resp`) never imports the control
//! path (`follow`); they meet only in [`switch`].

#![forbid(unsafe_code)]

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
pub mod status;
pub mod switch;
pub mod telemetry;

pub use app::App;
pub use config::Config;

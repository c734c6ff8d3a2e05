//! Connections to Redis servers.
//!
//! * [`connect`]: opening a connection with a deadline, plain or TLS (the
//!   `Dialer`), for sessions (own or shared backend connections), probes and
//!   the core's links alike, and the
//!   one-shot checks sessions make on a fresh connection (`PING`, `ROLE`).
//! * [`probe`]: a minimal request/response connection for the control path:
//!   `ROLE`, `COMMAND`, `SENTINEL …` queries, subscriptions to Sentinel events.
//!   Sessions never use it; their traffic is forwarded as received.

pub mod connect;
pub mod probe;

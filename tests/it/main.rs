//! Integration tests for `sentinel-proxy`: the proxy binary is run against
//! real `redis-server` and `redis-sentinel` processes on the loopback
//! interface.

mod support;

mod classify;
mod cli;
mod core;
mod dashboard;
mod dockerfile;
mod events;
mod examples;
mod failover;
mod harness_selftest;
mod hold;
mod limits;
mod metrics;
mod resp;
mod session;

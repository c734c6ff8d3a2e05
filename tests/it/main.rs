//! Integration tests for `sentinel-proxy`: the proxy binary is run against
//! real `redis-server` and `redis-sentinel` processes on the loopback
//! interface.

mod support;

mod classify;
mod cli;
mod clients;
mod core;
mod core_election;
mod core_events;
mod core_fencing;
mod core_groups;
mod core_interop;
mod core_observers;
mod core_partition;
mod core_restarts;
mod core_sentinels;
mod core_settings;
mod core_switchover;
mod dashboard;
mod demo;
mod dockerfile;
mod events;
mod examples;
mod failover;
mod fuzz_diff;
mod harness_selftest;
mod hold;
mod import;
mod limits;
mod metrics;
mod ordering;
mod passthrough;
mod readme;
mod reads;
mod resp;
mod session;
mod shared;
mod tls;
mod tls_backend;

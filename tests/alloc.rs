//! Steady-state forwarding allocates nothing: a counting global allocator
//! watches the data path (the proxy's runtime threads) while one client sends
//! thousands of commands through the proxy to a real redis-server. The control
//! thread (the sentinel core's timers and probes) runs on its own thread and
//! is not counted: it allocates on its own schedule, not per command.

#[path = "it/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sentinel_proxy::config::Settings;
use sentinel_proxy::{App, Config};
use support::RedisServer;

/// Counts every allocation made on a data-path thread.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the data runtime's worker threads.
    static DATA_PATH: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if DATA_PATH.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends `request` `times` times, one at a time, and reads each reply of
/// `reply_len` bytes into a fixed buffer (the client itself allocates nothing).
fn round_trips(stream: &mut TcpStream, request: &[u8], reply_len: usize, times: usize) {
    let mut reply = [0u8; 64];
    for _ in 0..times {
        stream.write_all(request).expect("write");
        stream
            .read_exact(&mut reply[..reply_len])
            .expect("read reply");
    }
}

#[test]
fn forwarding_allocates_nothing_per_command() {
    allocations_per_command(false, 2);
}

/// The same over a shared backend connection (`--share-backend`): the link
/// task and the session hand replies over through the inbox. With the
/// default single data thread. (With two, about 1 allocation per 200
/// commands was measured: the link and the session then often run on
/// different threads and hand work across.)
#[test]
fn forwarding_over_a_shared_connection_allocates_nothing_per_command() {
    allocations_per_command(true, 1);
}

fn allocations_per_command(share_backend: bool, threads: usize) {
    let redis = RedisServer::spawn();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .on_thread_start(|| DATA_PATH.with(|d| d.set(true)))
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::from_settings(Settings {
        listen: Some("127.0.0.1:0".into()),
        master: Some(redis.addr().to_string()),
        sentinel_listen: Some("127.0.0.1:0".into()),
        metrics_listen: Some("127.0.0.1:0".into()),
        log_level: Some("warn".into()),
        share_backend: Some(share_backend),
        ..Settings::default()
    })
    .expect("valid config");
    let app = runtime.block_on(App::start(config)).expect("proxy starts");
    let mut stream =
        TcpStream::connect(app.listen_addr.expect("a plain endpoint")).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    let set = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    // Warm up: backend connection, buffer pool, runtime internals.
    let at_start = ALLOCATIONS.load(Ordering::Relaxed);
    round_trips(&mut stream, set, 5, 2000);
    round_trips(&mut stream, get, 11, 2000);
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > at_start,
        "the counter must see the data path (opening the backend connection allocates)"
    );

    const COMMANDS: usize = 20_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    round_trips(&mut stream, set, 5, COMMANDS / 2);
    round_trips(&mut stream, get, 11, COMMANDS / 2);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;

    eprintln!(
        "{allocations} allocations for {COMMANDS} forwarded commands ({:.4} per command, shared: {share_backend})",
        allocations as f64 / COMMANDS as f64
    );
    // A handful may come from the runtime (timer wheel, wakers); none per command.
    assert!(
        allocations < (COMMANDS / 100) as u64,
        "{allocations} allocations for {COMMANDS} commands: the hot path allocates"
    );
    drop(stream);
    runtime.block_on(app.shutdown());
}

//! Tests of the session that need no Redis server: the size of its future.

use super::*;
use crate::config::OnSwitch;
use tokio::net::TcpStream;

/// Memory per idle client is dominated by this future: keep it small
/// (it was 2.3 kB before the rarely used state was boxed, and 1 kB before
/// writes stopped awaiting and readiness was polled from the sockets).
#[tokio::test]
async fn session_future_stays_small() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (writer, reader) = crate::switch::new(None, 0, &CancellationToken::new());
    let (hints, _rx) = crate::switch::hints();
    let shared = Arc::new(Shared {
        switch: reader,
        hints,
        commands: Default::default(),
        counters: Default::default(),
        links: Default::default(),
        dialer: Default::default(),
        read_load: Default::default(),
        settings: super::super::Settings {
            hold_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
            idle_release: None,
            on_switch: OnSwitch::Rebind,
            requirepass: None,
            backend_auth: None,
            share_backend: false,
            measure_latency: false,
            reads: None,
        },
    });
    let future = run(
        crate::tls::Stream::Plain(client),
        Arc::clone(&shared),
        CancellationToken::new(),
    );
    let size = std::mem::size_of_val(&future);
    eprintln!(
        "session future: {size} bytes (Session {} bytes)",
        std::mem::size_of::<Session>()
    );
    assert!(size < 768, "session future is {size} bytes");
    drop(future);

    // The task spawned per client holds the session's future once, not twice
    // (a future moved into an `async` block and awaited there is stored
    // twice), and keeps the TLS handshake's state out of line.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let peer = tcp.local_addr().expect("addr");
    let place = Arc::new(tokio::sync::Semaphore::new(1))
        .try_acquire_owned()
        .expect("a place");
    let connection = crate::proxy::listener::Accepted { tcp, peer, place };
    let task =
        crate::proxy::listener::serve_client(connection, shared, CancellationToken::new(), None);
    let task_size = std::mem::size_of_val(&task);
    eprintln!("client task future: {task_size} bytes");
    // (944 bytes when written; `async move { task.await }` around it is 1,896.)
    assert!(
        task_size < size + 256,
        "client task future is {task_size} bytes"
    );
    drop(writer);
}

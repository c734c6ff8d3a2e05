//! Tests of the sentinel port over loopback: a real listener, a fake core and
//! a raw client socket, for pipelining, authentication, pub/sub, RESP3,
//! protocol errors, limits, a missing core and shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::resp::value::OwnedFrame;
use crate::sentinel::api::connection::{Shared, accept_loop};
use crate::sentinel::api::{Event, MAX_REQUEST, Request};

/// What the fake core does with requests.
#[derive(Clone, Copy)]
enum Core {
    /// Answers `SENTINEL MYID` with [`MYID`], `SENTINEL MASTER` with a
    /// one-field map, `SENTINEL GET-MASTER-ADDR-BY-NAME` with a null,
    /// anything else with an error.
    Answers,
    /// Its receiver is dropped: sends fail.
    Gone,
    /// Drops every reply sender unanswered.
    DropsReplies,
    /// Keeps every reply sender and never answers.
    Silent,
}

const MYID: &str = "0123456789abcdef0123456789abcdef01234567";

/// A running sentinel port.
struct Server {
    addr: std::net::SocketAddr,
    events: broadcast::Sender<Event>,
    stop: CancellationToken,
    served: JoinHandle<()>,
}

async fn start(core: Core, requirepass: Option<&str>, max_clients: usize) -> Server {
    start_with(core, requirepass, max_clients, 16).await
}

async fn start_with(
    core: Core,
    requirepass: Option<&str>,
    max_clients: usize,
    event_capacity: usize,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (core_tx, core_rx) = mpsc::channel(8);
    spawn_core(core, core_rx);
    let (events, _) = broadcast::channel(event_capacity);
    let shared = Arc::new(Shared {
        core: core_tx,
        events: events.clone(),
        users: std::sync::Mutex::new(crate::sentinel::api::acl::Users::new(requirepass)),
        logged_in: Default::default(),
        kills: broadcast::channel(8).0,
        stats: Default::default(),
        core_timeout: Duration::from_millis(200),
    });
    let stop = CancellationToken::new();
    let served = tokio::spawn(accept_loop(
        listener,
        shared,
        max_clients,
        stop.clone(),
        None,
    ));
    Server {
        addr,
        events,
        stop,
        served,
    }
}

fn spawn_core(core: Core, mut requests: mpsc::Receiver<Request>) {
    if let Core::Gone = core {
        return drop(requests);
    }
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Some(request) = requests.recv().await {
            let words: Vec<String> = request
                .args
                .iter()
                .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
                .collect();
            let frame = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["SENTINEL", "MYID"] => OwnedFrame::BulkString(MYID.as_bytes().to_vec()),
                ["SENTINEL", "MASTER", _] => OwnedFrame::Array(vec![
                    OwnedFrame::BulkString(b"quorum".to_vec()),
                    OwnedFrame::BulkString(b"1".to_vec()),
                ]),
                ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", _] => OwnedFrame::Null,
                _ => OwnedFrame::Error(format!("ERR unknown command '{}'", words[0])),
            };
            match core {
                Core::Answers => {
                    let _ = request.reply.send(frame);
                }
                Core::Silent => kept.push(request.reply),
                Core::DropsReplies | Core::Gone => {}
            }
        }
    });
}

impl Server {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    fn publish(&self, channel: &str, message: &str) {
        let event = Event {
            channel: channel.into(),
            message: message.into(),
        };
        // No receiver (nobody subscribed) is not an error for a publisher.
        let _ = self.events.send(event);
    }
}

/// Sends `request` and expects exactly `reply` back.
async fn roundtrip(client: &mut TcpStream, request: &str, reply: &str) {
    client.write_all(request.as_bytes()).await.unwrap();
    expect(client, reply).await;
}

/// Reads exactly `reply.len()` bytes and compares them to `reply`.
async fn expect(client: &mut TcpStream, reply: &str) {
    let mut got = vec![0; reply.len()];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
        .await
        .expect("reply within 5 s")
        .expect("reply");
    assert_eq!(String::from_utf8_lossy(&got), reply);
}

/// Expects the server to close the connection with nothing more to say.
async fn expect_closed(client: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("closed within 5 s")
        .expect("clean close");
    assert_eq!(String::from_utf8_lossy(&rest), "");
}

const PING: &str = "*1\r\n$4\r\nPING\r\n";
const MYID_REQUEST: &str = "*2\r\n$8\r\nSENTINEL\r\n$4\r\nmyid\r\n";

fn myid_reply() -> String {
    format!("${}\r\n{MYID}\r\n", MYID.len())
}

#[tokio::test]
async fn ping_single_pipelined_and_inline() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    roundtrip(&mut client, PING, "+PONG\r\n").await;
    roundtrip(&mut client, &PING.repeat(2), "+PONG\r\n+PONG\r\n").await;
    roundtrip(
        &mut client,
        "PING\r\n\r\nping hi\n",
        "+PONG\r\n$2\r\nhi\r\n",
    )
    .await;
}

#[tokio::test]
async fn core_answers_in_pipeline_order() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    let pipeline = format!("{PING}{MYID_REQUEST}PING\r\nSENTINEL NOPE\r\n");
    let replies = format!(
        "+PONG\r\n{}+PONG\r\n-ERR unknown command 'SENTINEL'\r\n",
        myid_reply()
    );
    roundtrip(&mut client, &pipeline, &replies).await;
}

#[tokio::test]
async fn requirepass_flows() {
    let server = start(Core::Answers, Some("s3cret"), 8).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        MYID_REQUEST,
        "-NOAUTH Authentication required.\r\n",
    )
    .await;
    roundtrip(
        &mut client,
        "AUTH nope\r\n",
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    roundtrip(&mut client, "AUTH default s3cret\r\n", "+OK\r\n").await;
    roundtrip(&mut client, MYID_REQUEST, &myid_reply()).await;

    let mut other = server.connect().await;
    roundtrip(
        &mut other,
        "HELLO 2 AUTH default s3cret SETNAME tool\r\nCLIENT GETNAME\r\n",
        "*12\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
         $5\r\nproto\r\n:2\r\n$2\r\nid\r\n:2\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n\
         $7\r\nmodules\r\n*0\r\n$4\r\ntool\r\n",
    )
    .await;
    roundtrip(&mut other, "QUIT\r\n", "+OK\r\n").await;
    expect_closed(&mut other).await;
}

#[tokio::test]
async fn auth_without_requirepass_uses_redis_words() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        "AUTH pw\r\n",
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
    )
    .await;
}

/// `CLIENT KILL USER default SKIPME no` answers how many it closes, the
/// caller included, and then closes them all, the caller last; a new
/// connection is then refused while the default user is off.
#[tokio::test]
async fn client_kill_user_answers_then_closes_every_connection_of_the_user() {
    let server = start(Core::Answers, None, 8).await;
    let mut bystander = server.connect().await;
    roundtrip(&mut bystander, "PING\r\n", "+PONG\r\n").await;
    let mut admin = server.connect().await;
    roundtrip(&mut admin, "ACL SETUSER default off\r\n", "+OK\r\n").await;
    roundtrip(
        &mut admin,
        "CLIENT KILL USER default SKIPME no\r\n",
        ":2\r\n",
    )
    .await;
    expect_closed(&mut admin).await;
    expect_closed(&mut bystander).await;
    let mut late = server.connect().await;
    roundtrip(
        &mut late,
        "PING\r\n",
        "-NOAUTH Authentication required.\r\n",
    )
    .await;
}

#[tokio::test]
async fn subscribers_get_message_frames() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        "SUBSCRIBE +sdown\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
    )
    .await;
    server.publish("+odown", "not subscribed");
    server.publish("+sdown", "master mymaster 127.0.0.1 6379");
    expect(
        &mut client,
        "*3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$30\r\nmaster mymaster 127.0.0.1 6379\r\n",
    )
    .await;
    roundtrip(
        &mut client,
        MYID_REQUEST,
        "-ERR Can't execute 'sentinel': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
    roundtrip(&mut client, PING, "*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    roundtrip(
        &mut client,
        "UNSUBSCRIBE\r\n",
        "*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:0\r\n",
    )
    .await;
    server.publish("+sdown", "after unsubscribing");
    roundtrip(&mut client, MYID_REQUEST, &myid_reply()).await;
}

/// After `HELLO 3` over a real socket: a map for HELLO, RESP3 for the
/// core's replies (map, `_`), pushes for pub/sub; `RESET` is RESP2
/// again.
#[tokio::test]
async fn resp3_after_hello_3() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    let by_name = "SENTINEL get-master-addr-by-name nosuch\r\n";
    roundtrip(&mut client, by_name, "*-1\r\n").await;
    roundtrip(
        &mut client,
        "HELLO 3\r\n",
        "%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
         $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n\
         $7\r\nmodules\r\n*0\r\n",
    )
    .await;
    roundtrip(&mut client, by_name, "_\r\n").await;
    roundtrip(
        &mut client,
        "SENTINEL MASTER mymaster\r\n",
        "%1\r\n$6\r\nquorum\r\n$1\r\n1\r\n",
    )
    .await;
    roundtrip(
        &mut client,
        "SUBSCRIBE +sdown\r\n",
        ">3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
    )
    .await;
    server.publish("+sdown", "master mymaster 127.0.0.1 6379");
    expect(
        &mut client,
        ">3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$30\r\nmaster mymaster 127.0.0.1 6379\r\n",
    )
    .await;
    roundtrip(&mut client, MYID_REQUEST, &myid_reply()).await;
    roundtrip(&mut client, "RESET\r\n", "+RESET\r\n").await;
    roundtrip(&mut client, by_name, "*-1\r\n").await;
}

#[tokio::test]
async fn pattern_subscribers_get_pmessage_frames() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        "PSUBSCRIBE +*\r\n",
        "*3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:1\r\n",
    )
    .await;
    server.publish("-sdown", "master mymaster 127.0.0.1 6379");
    server.publish("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380");
    expect(
        &mut client,
        "*4\r\n$8\r\npmessage\r\n$2\r\n+*\r\n$14\r\n+switch-master\r\n\
         $38\r\nmymaster 127.0.0.1 6379 127.0.0.1 6380\r\n",
    )
    .await;
    roundtrip(&mut client, "RESET\r\n", "+RESET\r\n").await;
    roundtrip(&mut client, PING, "+PONG\r\n").await;
}

#[tokio::test]
async fn protocol_errors_answer_then_close() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        "PING\r\n*1\r\n+PING\r\n",
        "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n",
    )
    .await;
    expect_closed(&mut client).await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    // Exactly one byte over the limit, so the server has read everything
    // when it closes (unread input would turn the close into a reset).
    let mut request = b"*2\r\n$4\r\nECHO\r\n$2000000\r\n".to_vec();
    request.resize(MAX_REQUEST + 1, b'x');
    client.write_all(&request).await.unwrap();
    expect(
        &mut client,
        "-ERR Protocol error: request bigger than 1048576 bytes\r\n",
    )
    .await;
    expect_closed(&mut client).await;
}

#[tokio::test]
async fn a_missing_core_is_an_error_not_a_hang() {
    for core in [Core::Gone, Core::DropsReplies, Core::Silent] {
        let server = start(core, None, 8).await;
        let mut client = server.connect().await;
        let unavailable = "-ERR sentinel core unavailable\r\n";
        roundtrip(&mut client, MYID_REQUEST, unavailable).await;
        roundtrip(
            &mut client,
            &format!("{MYID_REQUEST}{PING}"),
            &format!("{unavailable}+PONG\r\n"),
        )
        .await;
    }
}

#[tokio::test]
async fn clients_over_the_limit_are_refused() {
    let server = start(Core::Answers, None, 1).await;
    let mut first = server.connect().await;
    roundtrip(&mut first, PING, "+PONG\r\n").await;
    let mut second = server.connect().await;
    expect(&mut second, "-ERR max number of clients reached\r\n").await;
    expect_closed(&mut second).await;
    drop(first);
    // The slot is released once the first connection's task notices.
    let retry = async {
        loop {
            let mut client = server.connect().await;
            client.write_all(PING.as_bytes()).await.unwrap();
            let mut head = [0u8; 1];
            client.read_exact(&mut head).await.unwrap();
            if head[0] == b'+' {
                break client;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let mut third = tokio::time::timeout(Duration::from_secs(5), retry)
        .await
        .expect("a slot frees up");
    expect(&mut third, "PONG\r\n").await;
}

#[tokio::test]
async fn lagging_subscribers_are_disconnected() {
    let server = start_with(Core::Answers, None, 8, 4).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        "SUBSCRIBE +sdown\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
    )
    .await;
    // The test runtime is single-threaded: the connection cannot read
    // events while this loop runs, so it falls behind.
    for _ in 0..10 {
        server.publish("+sdown", "x");
    }
    expect_closed(&mut client).await;
}

#[tokio::test]
async fn subscribers_that_stop_reading_are_disconnected() {
    let server = start_with(Core::Answers, None, 8, 1024).await;
    let mut client = server.connect().await;
    roundtrip(
        &mut client,
        "SUBSCRIBE +sdown\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
    )
    .await;
    let big = "x".repeat(64 * 1024);
    let mut sent = 0usize;
    // Capacity 1024 and a yield per event: the connection keeps up with
    // the channel, so only its unwritten output can end it.
    while sent < 64 * 1024 * 1024 {
        server.publish("+sdown", &big);
        sent += big.len();
        tokio::task::yield_now().await;
        // Once the connection is gone its receiver is dropped.
        if server.events.receiver_count() == 0 {
            break;
        }
    }
    assert_eq!(
        server.events.receiver_count(),
        0,
        "still subscribed after {sent} bytes"
    );
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut received))
        .await
        .expect("closed within 5 s")
        .expect("clean close");
    assert!(
        received.len() < sent,
        "only part of the {sent} bytes arrived"
    );
}

#[tokio::test]
async fn stop_closes_idle_connections_and_returns() {
    let server = start(Core::Answers, None, 8).await;
    let mut client = server.connect().await;
    roundtrip(&mut client, PING, "+PONG\r\n").await;
    server.stop.cancel();
    expect_closed(&mut client).await;
    tokio::time::timeout(Duration::from_secs(5), server.served)
        .await
        .expect("serve returns after stop")
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

//! The task of one shared link: it writes what sessions submitted, in one
//! write per turn of the event loop, reads the master's replies, and hands
//! each session its own, whole and in order.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tracing::{debug, warn};

use super::{LINK_KEEP_LIMIT, LINK_READ_SIZE, Link, LinkState, lock};
use crate::proxy::Counters;
use crate::resp::reply::{Kind, ReplyScanner};
use crate::tls::Stream;

/// What the link task waits for.
#[derive(Debug)]
enum Wake {
    /// Submitted commands to write.
    Flush,
    /// The socket can take more of the output.
    Writable,
    /// Replies (or a close).
    Readable,
    /// Retired and nothing owed.
    Done,
}

/// Runs one link until its connection fails or it is retired and idle.
pub(super) async fn run(
    link: Arc<Link>,
    mut stream: Stream,
    auth: Option<Bytes>,
    counters: Arc<Counters>,
) {
    let closing = CloseOnDrop {
        link: Arc::clone(&link),
        counters,
    };
    closing
        .counters
        .shared_backends
        .fetch_add(1, Ordering::Relaxed);
    let result = serve(&link, &mut stream, auth).await;
    drop(closing);
    match result {
        Ok(()) => debug!(addr = %link.addr, "shared backend connection retired"),
        Err(error) => debug!(addr = %link.addr, %error, "shared backend connection lost"),
    }
}

/// Closes the link however its task ends (even by a panic), so that no
/// session waits on a link without a task.
struct CloseOnDrop {
    /// The link to close.
    link: Arc<Link>,
    /// Where the open shared connections are counted.
    counters: Arc<Counters>,
}

impl Drop for CloseOnDrop {
    /// Closes the link (failing its waiting sessions) and uncounts it.
    fn drop(&mut self) {
        self.link.close();
        self.counters
            .shared_backends
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The link task's loop: sends `auth` first, then writes what sessions
/// submit and hands the replies out; `Ok` once retired with nothing owed.
async fn serve(link: &Link, stream: &mut Stream, auth: Option<Bytes>) -> io::Result<()> {
    // Commands taken from the link and not yet written.
    let mut output = BytesMut::new();
    // The AUTH reply is the link's own: it answers no session.
    let mut own_replies = 0u32;
    if let Some(auth) = auth {
        output.extend_from_slice(&auth);
        own_replies = 1;
    }
    let mut input = BytesMut::with_capacity(LINK_READ_SIZE);
    let mut scanner = ReplyScanner::default();
    // Sessions to wake after a read (kept to avoid an allocation per read).
    let mut wakers = Vec::new();
    loop {
        stream.write_some(&mut output)?;
        let output_waits = !output.is_empty() || stream.has_unsent();
        match next_wake(link, stream, output_waits).await? {
            Wake::Done => return Ok(()),
            Wake::Writable => {}
            Wake::Flush => {
                // Let every session that is ready in this turn of the event
                // loop submit first: their commands then share one write.
                tokio::task::yield_now().await;
                link.flush_requested.store(false, Ordering::Release);
                let mut state = lock(&link.state);
                if output.is_empty() {
                    std::mem::swap(&mut output, &mut state.out);
                } else {
                    output.extend_from_slice(&state.out);
                    state.out.clear();
                }
            }
            Wake::Readable => {
                if input.capacity() - input.len() < LINK_READ_SIZE / 4 {
                    input.reserve(LINK_READ_SIZE.max(input.len()));
                }
                match stream.try_read_buf(&mut input) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {
                        dispatch(
                            link,
                            &mut input,
                            &mut scanner,
                            &mut own_replies,
                            &mut wakers,
                        )?;
                        if input.is_empty() && input.capacity() > LINK_KEEP_LIMIT {
                            // A huge reply passed: do not keep its buffer.
                            input = BytesMut::with_capacity(LINK_READ_SIZE);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Waits for work: submitted commands, a writable socket (when output waits),
/// replies, or the end of a retired link's duties.
async fn next_wake(link: &Link, stream: &Stream, output_waits: bool) -> io::Result<Wake> {
    std::future::poll_fn(|cx| {
        if output_waits && let Poll::Ready(ready) = stream.poll_write_ready(cx) {
            return Poll::Ready(ready.map(|()| Wake::Writable));
        }
        if let Poll::Ready(ready) = stream.poll_read_ready(cx) {
            return Poll::Ready(ready.map(|()| Wake::Readable));
        }
        let mut state = lock(&link.state);
        if state.expired {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "replies owed on a retired shared connection did not arrive in time",
            )));
        }
        if link.flush_requested.load(Ordering::Acquire) {
            return Poll::Ready(Ok(Wake::Flush));
        }
        if link.retired.load(Ordering::Acquire) && state.waiting.is_empty() && !output_waits {
            return Poll::Ready(Ok(Wake::Done));
        }
        state.task = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// Hands every complete reply in `input` to the session it answers.
fn dispatch(
    link: &Link,
    input: &mut BytesMut,
    scanner: &mut ReplyScanner,
    own_replies: &mut u32,
    wakers: &mut Vec<Waker>,
) -> io::Result<()> {
    let mut pos = 0;
    {
        let mut state = lock(&link.state);
        // The run of replies for the session at the front, not yet delivered.
        let mut run_start = 0;
        loop {
            let reply = match scanner.scan(&input[pos..]) {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(error) => {
                    warn!(addr = %link.addr, %error, "backend sent a malformed reply on a shared connection");
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            };
            let frame = &input[pos..pos + reply.len];
            pos += reply.len;
            if reply.kind == Kind::Push {
                // Out-of-band data answers no command (none is expected on a
                // RESP2 connection without tracking): drop it.
                deliver_run(&mut state, &input[run_start..pos - reply.len], wakers);
                run_start = pos;
                continue;
            }
            if *own_replies > 0 {
                *own_replies -= 1;
                run_start = pos;
                if reply.kind == Kind::Error {
                    warn!(addr = %link.addr, reply = %String::from_utf8_lossy(frame).trim_end(),
                        "authentication on a shared backend connection failed");
                    return Err(io::Error::other("AUTH refused"));
                }
                continue;
            }
            let Some(front) = state.waiting.front_mut() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply on a shared connection that no session waits for",
                ));
            };
            front.replies = front.replies.checked_sub(1).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "reply count out of step")
            })?;
            if front.replies == 0 {
                let waiter = state.waiting.pop_front();
                if let Some(waiter) = waiter
                    && let Some(waker) = waiter.inbox.deliver(&input[run_start..pos])
                {
                    wakers.push(waker);
                }
                run_start = pos;
            }
        }
        // A session whose replies are only partly in gets what is complete.
        deliver_run(&mut state, &input[run_start..pos], wakers);
    }
    input.advance(pos);
    for waker in wakers.drain(..) {
        waker.wake();
    }
    Ok(())
}

/// Delivers a partial run of replies to the session at the front.
fn deliver_run(state: &mut LinkState, run: &[u8], wakers: &mut Vec<Waker>) {
    if run.is_empty() {
        return;
    }
    if let Some(front) = state.waiting.front()
        && let Some(waker) = front.inbox.deliver(run)
    {
        wakers.push(waker);
    }
}

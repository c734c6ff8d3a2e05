//! Shared backend connections (`--share-backend`, on by default).
//!
//! With 1:1 connections every request costs the proxy four socket operations
//! (read from the client, write to the master, read the reply, write it back),
//! the same kernel work as any TCP relay. A session in Redis's default
//! connection state (database 0, RESP2, the proxy's credentials, no name, no
//! subscriptions, no transaction) can instead send its commands over one
//! connection per master that every such session shares: the commands of all
//! sessions that were ready in the same turn of the event loop go out in one
//! write, and their replies come back in one read. The master does one read and
//! one write for the whole batch too.
//!
//! Which commands may travel over a [`Link`] is decided by the session
//! ([`shareable`](super::state::shareable)): anything that uses or changes
//! connection state, or could block the connection, moves the session to a
//! connection of its own first (after its shared replies are in), exactly as
//! Redis would see it from a direct client.
//!
//! A link delivers each session's replies, whole, to that session's [`Inbox`]
//! in the order its commands were submitted; the session routes them through
//! its ledger as it would replies read from its own socket. When the link's
//! connection fails, every session with replies outstanding on it is told
//! (`lost`) and handles it as a lost backend; idle sessions simply take the
//! next link.

mod task;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::debug;

use crate::backend::connect::{CONNECT_TIMEOUT, Dialer, ping};

use super::{Counters, bufpool};

/// Bytes read from a link's socket at a time (grown on demand).
const LINK_READ_SIZE: usize = 16 * 1024;

/// A link's input buffer is replaced by a small one once it is empty and has
/// grown beyond this.
const LINK_KEEP_LIMIT: usize = 1024 * 1024;

/// Locks a mutex whose data stays consistent even if a holder panicked (every
/// critical section here is a few field updates).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared link to the current master, replaced when the master moves.
#[derive(Debug, Default)]
pub struct SharedBackends {
    /// The newest link opened, if any (it may since have closed).
    current: Mutex<Option<Arc<Link>>>,
    /// Held while a new link connects, so that sessions arriving meanwhile
    /// wait for it instead of each opening (and dropping) a connection. It
    /// holds the last failed attempt: sessions that waited for it fail at
    /// once instead of each trying again in turn.
    connecting: tokio::sync::Mutex<Option<(SocketAddr, Instant)>>,
    /// How links connect (plain or TLS).
    dialer: Dialer,
}

/// How long a failed connection attempt answers for the sessions that
/// waited for it.
const FAILURE_MEMORY: Duration = Duration::from_millis(100);

impl SharedBackends {
    /// No link yet; links will connect the way `dialer` does.
    pub fn new(dialer: Dialer) -> SharedBackends {
        SharedBackends {
            dialer,
            ..SharedBackends::default()
        }
    }

    /// The open link to `addr`, connecting one (and sending `auth` first) if
    /// there is none. A link to another address is retired: it finishes the
    /// replies it owes within `linger`, then closes.
    pub async fn link(
        &self,
        addr: SocketAddr,
        host: Option<&str>,
        generation: u64,
        auth: Option<&Bytes>,
        counters: &Arc<Counters>,
        linger: Duration,
    ) -> io::Result<Arc<Link>> {
        if let Some(link) = self.usable(addr) {
            return Ok(link);
        }
        let mut connecting = self.connecting.lock().await;
        if let Some(link) = self.usable(addr) {
            // Another session connected while this one waited.
            return Ok(link);
        }
        if lock(&self.current)
            .as_ref()
            .is_some_and(|l| l.generation > generation && l.is_open())
        {
            // A session that has not seen the latest topology yet must not
            // replace the link to the newer master with one to the old.
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "a newer master is known",
            ));
        }
        if let Some((failed, at)) = *connecting
            && failed == addr
            && at.elapsed() < FAILURE_MEMORY
        {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the master did not answer a moment ago",
            ));
        }
        let opened = async {
            let mut stream = self.dialer.dial(addr, host, CONNECT_TIMEOUT).await?;
            // A server being killed still completes handshakes from its
            // listen backlog for a moment: sessions use the connection only
            // once the server answered on it.
            tokio::time::timeout(PING_TIMEOUT, ping(&mut stream))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to PING"))??;
            Ok::<_, io::Error>(stream)
        };
        let stream = match opened.await {
            Ok(stream) => stream,
            Err(error) => {
                *connecting = Some((addr, Instant::now()));
                return Err(error);
            }
        };
        let link = Arc::new(Link::new(addr, generation));
        let old = lock(&self.current).replace(Arc::clone(&link));
        if let Some(old) = old {
            old.retire(linger);
        }
        debug!(%addr, "shared backend connection opened");
        tokio::spawn(task::run(
            Arc::clone(&link),
            stream,
            auth.cloned(),
            Arc::clone(counters),
        ));
        Ok(link)
    }

    /// The current link if it goes to `addr` and is open and not retired.
    fn usable(&self, addr: SocketAddr) -> Option<Arc<Link>> {
        lock(&self.current)
            .as_ref()
            .filter(|l| l.usable_for(addr))
            .cloned()
    }
}

/// One backend connection carrying the commands of many sessions.
#[derive(Debug)]
pub struct Link {
    /// The master it is connected to.
    pub addr: SocketAddr,
    /// The topology generation it was opened in.
    generation: u64,
    /// What sessions and the link task share.
    state: Mutex<LinkState>,
    /// Set by a submit, cleared by the link task when it takes the output.
    flush_requested: AtomicBool,
    /// Set once the connection failed: nothing more may be submitted.
    closed: AtomicBool,
    /// Set once a link to a newer master replaced it: it finishes what it
    /// owes, then closes.
    retired: AtomicBool,
}

/// A link's mutable state, behind its mutex.
#[derive(Debug, Default)]
struct LinkState {
    /// Commands submitted and not yet taken by the link task.
    out: BytesMut,
    /// Sessions waiting for replies, in submission order.
    waiting: VecDeque<Waiter>,
    /// The link task, when it waits for work.
    task: Option<Waker>,
    /// Retired for longer than the drain timeout: give up what is owed.
    expired: bool,
}

/// One session's turn in a link's reply order.
#[derive(Debug)]
struct Waiter {
    /// Where its replies go.
    inbox: Arc<Inbox>,
    /// Replies still owed to it (consecutive submits merge into one turn).
    replies: u64,
}

/// Why a submit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkClosed;

impl Link {
    /// A link to `addr`, opened in topology `generation`, with nothing queued.
    fn new(addr: SocketAddr, generation: u64) -> Link {
        Link {
            addr,
            generation,
            state: Mutex::new(LinkState::default()),
            flush_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }

    /// Whether new commands may still be submitted.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Open and not replaced by a link to a newer master: sessions that owe
    /// it nothing should move to the current link otherwise.
    pub fn is_current(&self) -> bool {
        self.is_open() && !self.retired.load(Ordering::Acquire)
    }

    /// Whether a session bound for `addr` may submit here.
    fn usable_for(&self, addr: SocketAddr) -> bool {
        self.addr == addr && self.is_current()
    }

    /// Queues `bytes` (complete commands, `replies` replies expected) for the
    /// master; their replies will arrive in `inbox`. Never waits: the link
    /// task writes everything submitted in one turn of the event loop at once.
    pub fn submit(&self, bytes: &[u8], replies: u64, inbox: &Arc<Inbox>) -> Result<(), LinkClosed> {
        let task = {
            let mut state = lock(&self.state);
            if !self.is_open() {
                return Err(LinkClosed);
            }
            state.out.extend_from_slice(bytes);
            match state.waiting.back_mut() {
                _ if replies == 0 => {}
                Some(last) if Arc::ptr_eq(&last.inbox, inbox) => last.replies += replies,
                _ => state.waiting.push_back(Waiter {
                    inbox: Arc::clone(inbox),
                    replies,
                }),
            }
            if self.flush_requested.swap(true, Ordering::AcqRel) {
                None
            } else {
                state.task.take()
            }
        };
        if let Some(task) = task {
            task.wake();
        }
        Ok(())
    }

    /// The master moved: owed replies may still arrive for `linger` (the
    /// drain timeout), then the link closes and fails what is left.
    fn retire(self: &Arc<Self>, linger: Duration) {
        self.retired.store(true, Ordering::Release);
        // Wake the task: it closes the link once nothing is owed.
        self.update(|_| {});
        if !self.is_open() {
            return;
        }
        let link = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            link.update(|state| state.expired = true);
        });
    }

    /// Changes the link's state and wakes its task to look at it.
    fn update(&self, change: impl FnOnce(&mut LinkState)) {
        let task = {
            let mut state = lock(&self.state);
            change(&mut state);
            state.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }

    /// Marks the link closed and tells every session that still waits.
    fn close(&self) {
        let waiting = {
            let mut state = lock(&self.state);
            self.closed.store(true, Ordering::Release);
            state.out.clear();
            std::mem::take(&mut state.waiting)
        };
        for waiter in waiting {
            waiter.inbox.fail();
        }
    }
}

/// Where a link leaves one session's replies.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Shared by the link task (which fills it) and the session (which empties it).
    state: Mutex<InboxState>,
}

/// An inbox's contents.
#[derive(Debug, Default)]
struct InboxState {
    /// Complete replies not yet taken (a pooled buffer while non-empty).
    bytes: BytesMut,
    /// The link failed: no more replies will come.
    lost: bool,
    /// The session to wake when replies arrive or the link is lost.
    session: Option<Waker>,
}

impl Inbox {
    /// Ready when replies arrived or the link was lost.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.state);
        if !state.bytes.is_empty() || state.lost {
            return Poll::Ready(());
        }
        match state.session.as_ref() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.session = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Moves the replies that arrived into `buf`; `true` if the link was lost
    /// (after the replies it delivered, which are still valid).
    pub fn take_into(&self, buf: &mut Option<BytesMut>) -> bool {
        let mut state = lock(&self.state);
        if !state.bytes.is_empty() {
            // Copied into the session's (thread-local) buffer: the inbox's
            // buffer goes back to the process-wide pool for the link, which
            // may run on another thread.
            buf.get_or_insert_with(bufpool::take)
                .extend_from_slice(&state.bytes);
        }
        if state.bytes.capacity() > 0 {
            bufpool::give_shared(std::mem::take(&mut state.bytes));
        }
        state.lost
    }

    /// Appends complete replies; returns the session's waker, for the link
    /// task to wake once it has released the link's lock.
    fn deliver(&self, replies: &[u8]) -> Option<Waker> {
        let mut state = lock(&self.state);
        if state.bytes.capacity() == 0 {
            state.bytes = bufpool::take_shared();
        }
        state.bytes.extend_from_slice(replies);
        state.session.take()
    }

    /// Marks the link lost for this session and wakes it.
    fn fail(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.lost = true;
            state.session.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// How long a new shared connection's first PING may take (a busy master,
/// e.g. running a slow script, answers late but is not gone).
const PING_TIMEOUT: Duration = Duration::from_millis(1000);

//! Connections to the master opened before a session needs one
//! (`--share-backend`).
//!
//! A sharing session moves to a connection of its own at the command that
//! needs one (a blocking XREADGROUP, SUBSCRIBE, MULTI, …). Opening it then
//! would make that command wait for a connect, and Redis reads a new
//! connection's first bytes only in the event-loop turn after it accepted it.
//! Meanwhile a command that another client sent *later*, over the shared
//! connection, would get there first: directly, Redis would have run the two
//! in the order they were sent.
//!
//! So with sharing on the proxy keeps a few connections to the current master
//! ready ([`SPARES`]). A spare is handed out only once Redis has certainly
//! accepted it: it answered the proxy's AUTH on it, or, when the proxy sends
//! none, it has been open for [`SETTLE`] (nothing is sent on it, so it never
//! shows in MONITOR or the command statistics). A spare that Redis closed
//! meanwhile (its `timeout`, CLIENT KILL, a restart) is dropped when it is
//! taken. Spares belong to one master of one topology generation; a new
//! topology drops them. Each one taken is replaced in the background.
//!
//! One connection per client (the default) keeps none: there, Redis is to
//! see exactly the clients' connections (its own test suite counts them in
//! `connected_clients`), and each is opened at its client's first command.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use super::Counters;
use crate::backend::connect::{CONNECT_TIMEOUT, connect, first_line};

/// Spare connections kept ready per master.
pub const SPARES: usize = 2;

/// How long a connection the proxy sent nothing on must have been open
/// before it counts as accepted by Redis (its accept runs in the event loop
/// turn after the connect, microseconds later unless a command keeps Redis
/// busy).
pub const SETTLE: Duration = Duration::from_millis(10);

/// Pause before opening spares again after an attempt failed.
const FAILURE_PAUSE: Duration = Duration::from_secs(1);

/// A connection taken from the pool.
#[derive(Debug)]
pub struct Spare {
    /// The connection.
    pub stream: TcpStream,
    /// The proxy's AUTH was sent on it and answered `+OK`.
    pub authenticated: bool,
}

/// The spare connections to the current master, shared by every session.
#[derive(Debug, Default)]
pub struct Spares {
    pool: Arc<Mutex<Pool>>,
}

/// The pool's state, behind its mutex.
#[derive(Debug, Default)]
struct Pool {
    /// The master (and the generation of the topology naming it) the spares
    /// go to.
    owner: Option<(SocketAddr, u64)>,
    /// Bumped whenever the owner changes: connections opened for an older
    /// owner are dropped when they complete.
    round: u64,
    /// Open connections, oldest first, with when each was opened.
    ready: VecDeque<(Instant, Spare)>,
    /// Connections being opened now.
    opening: usize,
    /// No new attempts until then (the last one failed).
    paused_until: Option<Instant>,
}

/// Locks the pool (its state stays consistent even if a holder panicked: each
/// critical section is a few field updates).
fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// Makes `owner` the pool's, dropping spares that belong to another.
    fn own(&mut self, owner: (SocketAddr, u64), counters: &Counters) {
        if self.owner != Some(owner) {
            self.owner = Some(owner);
            self.round += 1;
            let dropped = self.ready.len() as u64;
            counters
                .spare_backends
                .fetch_sub(dropped, Ordering::Relaxed);
            self.ready.clear();
            self.opening = 0;
            self.paused_until = None;
        }
    }
}

impl Spares {
    /// A spare connection to `addr` for a session of topology `generation`,
    /// if one is ready; starts replacing what it hands out or drops.
    pub fn take(
        &self,
        addr: SocketAddr,
        generation: u64,
        auth: Option<&Bytes>,
        counters: &Arc<Counters>,
    ) -> Option<Spare> {
        let now = Instant::now();
        let taken = {
            let mut pool = lock(&self.pool);
            pool.own((addr, generation), counters);
            let mut taken = None;
            while let Some((opened, spare)) = pool.ready.front() {
                if !spare.authenticated && now.duration_since(*opened) < SETTLE {
                    break;
                }
                let Some((_, spare)) = pool.ready.pop_front() else {
                    break;
                };
                counters.spare_backends.fetch_sub(1, Ordering::Relaxed);
                if is_open(&spare.stream) {
                    taken = Some(spare);
                    break;
                }
            }
            taken
        };
        self.fill(addr, generation, auth, counters);
        taken
    }

    /// Opens connections until [`SPARES`] are ready or being opened.
    pub fn fill(
        &self,
        addr: SocketAddr,
        generation: u64,
        auth: Option<&Bytes>,
        counters: &Arc<Counters>,
    ) {
        let mut pool = lock(&self.pool);
        pool.own((addr, generation), counters);
        if pool
            .paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        while pool.ready.len() + pool.opening < SPARES {
            pool.opening += 1;
            let round = pool.round;
            let shared = Arc::clone(&self.pool);
            let auth = auth.cloned();
            let counters = Arc::clone(counters);
            tokio::spawn(async move {
                let opened = open(addr, auth.as_ref()).await;
                let mut pool = lock(&shared);
                if pool.round != round {
                    return;
                }
                pool.opening -= 1;
                match opened {
                    Ok(spare) => {
                        counters.spare_backends.fetch_add(1, Ordering::Relaxed);
                        pool.ready.push_back((Instant::now(), spare));
                    }
                    Err(error) => {
                        debug!(%addr, %error, "spare backend connection failed");
                        pool.paused_until = Some(Instant::now() + FAILURE_PAUSE);
                    }
                }
            });
        }
    }
}

/// Opens a spare connection to `addr`, sending the proxy's AUTH if it has one.
async fn open(addr: SocketAddr, auth: Option<&Bytes>) -> io::Result<Spare> {
    let mut stream = connect(addr, CONNECT_TIMEOUT).await?;
    let Some(auth) = auth else {
        return Ok(Spare {
            stream,
            authenticated: false,
        });
    };
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, first_line(&mut stream, auth))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to AUTH"))??;
    if !reply.starts_with(b"+OK") {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the master refused the proxy's AUTH",
        ));
    }
    Ok(Spare {
        stream,
        authenticated: true,
    })
}

/// Whether Redis has not closed `stream` (nor sent anything on it, which it
/// never does unasked). Costs no system call unless the socket was reported
/// readable.
fn is_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

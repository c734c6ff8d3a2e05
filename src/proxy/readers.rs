//! A read endpoint's choice of replica: the one with the fewest sessions
//! bound through this proxy (least connections), among those the control
//! path says qualify ([`crate::switch::Topology::readers`]).
//!
//! A place is reserved when a session chooses, before it connects, so that
//! sessions arriving together spread instead of all taking the replica that
//! was least loaded when they looked; it is given back when the session
//! leaves the replica or fails to reach it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use crate::switch::Reader;

/// Sessions bound (or binding) to each replica through one read endpoint.
#[derive(Debug, Default)]
pub struct ReadLoad {
    bound: Mutex<HashMap<SocketAddr, usize>>,
}

impl ReadLoad {
    /// Reserves a place on the reader with the fewest sessions (the first
    /// listed among equals) and returns it; `None` when `readers` is empty.
    pub fn reserve<'a>(&self, readers: &'a [Reader]) -> Option<&'a Reader> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let chosen = readers
            .iter()
            .min_by_key(|r| bound.get(&r.addr).copied().unwrap_or(0))?;
        *bound.entry(chosen.addr).or_insert(0) += 1;
        Some(chosen)
    }

    /// Gives back a place reserved on `addr`.
    pub fn release(&self, addr: SocketAddr) {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = bound.get_mut(&addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                bound.remove(&addr);
            }
        }
    }

    /// Sessions on each replica now, by address.
    pub fn snapshot(&self) -> Vec<(SocketAddr, usize)> {
        let bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(SocketAddr, usize)> = bound.iter().map(|(a, n)| (*a, *n)).collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(port: u16) -> Reader {
        Reader {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: None,
        }
    }

    #[test]
    fn sessions_spread_over_the_least_loaded_replicas() {
        let load = ReadLoad::default();
        let readers = [reader(1), reader(2)];
        let picks: Vec<u16> = (0..4)
            .map(|_| load.reserve(&readers).expect("a reader").addr.port())
            .collect();
        assert_eq!(picks, [1, 2, 1, 2]);
        load.release(readers[0].addr);
        load.release(readers[0].addr);
        assert_eq!(load.reserve(&readers).map(|r| r.addr.port()), Some(1));
        assert_eq!(
            load.snapshot(),
            [(readers[0].addr, 1), (readers[1].addr, 2)]
        );
        assert!(load.reserve(&[]).is_none());
    }
}

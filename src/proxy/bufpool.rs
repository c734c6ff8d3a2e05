//! Read buffers lent to sessions only while they have bytes to hold.
//!
//! An idle session owns no buffer, so ten thousand idle clients cost a few hundred
//! bytes each rather than two read buffers each. A busy session takes a buffer
//! when data arrives and gives it back once everything in it has been forwarded,
//! so steady-state traffic allocates nothing: buffers circulate through a small
//! per-thread free list (no lock; a buffer may return on another thread).
//!
//! Buffers that always cross threads (a shared backend connection fills them,
//! sessions empty them) use a small process-wide free list instead
//! ([`take_shared`], [`give_shared`]), so that no thread's list drains while
//! another's overflows.

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

use bytes::BytesMut;

/// Size of a new buffer: enough for the typical command or reply. Buffers grow
/// (doubling) when a read fills them, and grown buffers return to the pool, so
/// sessions moving large values soon read them in one go; but a burst of many
/// clients each sending a small command needs only small buffers at once.
pub const READ_SIZE: usize = 512;

/// Buffers that grew beyond this (a large value went through) are freed instead
/// of kept, so memory shrinks back after large transfers.
const KEEP_LIMIT: usize = 64 * 1024;

/// Free buffers kept per thread.
const POOL_DEPTH: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Takes an empty buffer with at least [`READ_SIZE`] bytes of room.
pub fn take() -> BytesMut {
    FREE.with(|free| free.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_SIZE))
}

/// Makes sure `buf` has room for one more read: at least a quarter of its
/// capacity, and never less than [`READ_SIZE`] / 4. A full buffer doubles. On
/// an empty buffer this reclaims the space consumed at its front without
/// allocating.
pub fn reserve_for_read(buf: &mut BytesMut) {
    let room = (buf.capacity() / 4).max(READ_SIZE / 4);
    if buf.capacity() - buf.len() < room {
        buf.reserve(buf.capacity().max(READ_SIZE));
    }
}

/// Gives back `slot`'s buffer if it is empty.
pub fn give_back_if_empty(slot: &mut Option<BytesMut>) {
    if slot.as_ref().is_some_and(|b| b.is_empty())
        && let Some(buf) = slot.take()
    {
        give(buf);
    }
}

/// Returns an empty buffer to this thread's free list (or frees it).
fn give(mut buf: BytesMut) {
    buf.clear();
    // Reclaims the consumed front; no allocation on an empty, unshared buffer.
    buf.reserve(READ_SIZE);
    if buf.capacity() > KEEP_LIMIT {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < POOL_DEPTH {
            free.push(buf);
        }
    });
}

/// Free buffers kept process-wide.
const SHARED_POOL_DEPTH: usize = 256;

static SHARED_FREE: Mutex<Vec<BytesMut>> = Mutex::new(Vec::new());

/// Takes an empty buffer from the process-wide list.
pub fn take_shared() -> BytesMut {
    SHARED_FREE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_else(|| BytesMut::with_capacity(READ_SIZE))
}

/// Returns a buffer to the process-wide list (a grown one is freed).
pub fn give_shared(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() <= KEEP_LIMIT {
        let mut free = SHARED_FREE.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < SHARED_POOL_DEPTH {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_after_being_consumed() {
        let mut slot = Some(take());
        let first = slot.as_ref().map(|b| b.as_ptr());
        if let Some(buf) = slot.as_mut() {
            buf.extend_from_slice(b"hello");
            bytes::Buf::advance(buf, 5);
        }
        give_back_if_empty(&mut slot);
        assert!(slot.is_none());
        let again = take();
        assert_eq!(Some(again.as_ptr()), first);
        assert!(again.capacity() >= READ_SIZE);
    }

    #[test]
    fn grown_buffers_are_freed() {
        let mut slot = Some(BytesMut::with_capacity(KEEP_LIMIT * 4));
        give_back_if_empty(&mut slot);
        let fresh = take();
        assert!(fresh.capacity() <= KEEP_LIMIT);
    }
}

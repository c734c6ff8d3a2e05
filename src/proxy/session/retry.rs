//! Whether commands a demoted master answered `-READONLY` may run again on
//! the new master.
//!
//! A master being demoted by `FAILOVER` (what the built-in core sends for a
//! planned switchover) pauses writers, then answers each paused write
//! `-READONLY` once it is a replica: none of them ran. The session keeps a
//! batch it sent with nothing else in flight (`retained`) until its replies
//! are in. When the first `-READONLY` comes, the replies to the rest of the
//! batch decide: if every one of them is `-READONLY` too, no command from the
//! first refused one on ran, and those commands are sent again to the new
//! master; the client sees only the replies of the commands that ran. Any
//! other reply among them (a read the replica answered) means the batch ran
//! in part on the demoted node, and the error is passed on as it came.

use crate::resp::reply::ReplyScanner;
use crate::resp::request::{RequestScanner, Scanned};

/// How a `-READONLY` from a demoted master is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// The rest of the batch's replies are not all in yet.
    Wait,
    /// Pass the error on: the commands cannot be known not to have run.
    No,
    /// Send the retained commands again from `resend_from` (a byte offset in
    /// the retained batch); the first `replies` bytes of the backend buffer
    /// answer them and are dropped.
    Yes {
        /// Offset of the first refused command in the retained bytes.
        resend_from: usize,
        /// Length of the refusals at the front of the backend buffer.
        replies: usize,
    },
}

/// Decides whether a retained batch can be retried after a `-READONLY`.
///
/// `retained` is the batch, as sent; `replies` the backend buffer, the
/// `-READONLY` (`held` bytes long) at its front; `awaited` the replies still
/// owed after it. The commands answered before it ran and their replies are
/// already with the client.
pub(super) fn plan(retained: &[u8], replies: &[u8], held: usize, awaited: usize) -> Retry {
    let Some(offsets) = command_offsets(retained) else {
        return Retry::No;
    };
    // The refused command's place in the batch: the replies still awaited
    // all belong to the batch (nothing else was in flight when it was sent).
    let Some(first) = offsets.len().checked_sub(awaited + 1) else {
        return Retry::No;
    };
    let mut scanner = ReplyScanner::default();
    let mut pos = held;
    for _ in 0..awaited {
        match scanner.scan(&replies[pos..]) {
            Ok(Some(reply)) if replies[pos..].starts_with(b"-READONLY") => pos += reply.len,
            Ok(Some(_)) | Err(_) => return Retry::No,
            Ok(None) => return Retry::Wait,
        }
    }
    Retry::Yes {
        resend_from: offsets[first],
        replies: pos,
    }
}

/// Where each command of a batch starts; `None` if the batch is not a whole
/// number of commands (it always is, as the session retains only those).
fn command_offsets(batch: &[u8]) -> Option<Vec<usize>> {
    let mut scanner = RequestScanner::default();
    let mut offsets = Vec::new();
    let mut pos = 0;
    while pos < batch.len() {
        match scanner.scan(&batch[pos..]) {
            Ok(Some(Scanned::Request(req))) => {
                offsets.push(pos);
                pos += req.len;
            }
            Ok(Some(Scanned::Empty(n))) => pos += n,
            Ok(None) | Err(_) => return None,
        }
    }
    Some(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: &[u8] = b"*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n";
    const REFUSED: &[u8] = b"-READONLY You can't write against a read only replica.\r\n";

    /// Every command of a paused batch refused: all of them go again.
    #[test]
    fn a_wholly_refused_batch_is_sent_again() {
        let replies = [REFUSED, REFUSED, REFUSED].concat();
        let planned = plan(BATCH, &replies, REFUSED.len(), 2);
        assert_eq!(
            planned,
            Retry::Yes {
                resend_from: 0,
                replies: replies.len()
            }
        );
    }

    /// The first command ran before the pause: only the other two go again.
    #[test]
    fn commands_that_ran_are_not_sent_again() {
        let replies = [REFUSED, REFUSED].concat();
        let planned = plan(BATCH, &replies, REFUSED.len(), 1);
        assert_eq!(
            planned,
            Retry::Yes {
                resend_from: 21,
                replies: replies.len()
            }
        );
        assert!(BATCH[21..].starts_with(b"*2\r\n$4\r\nINCR\r\n$1\r\nb"));
    }

    /// A reply that is not a refusal after the first one: the batch ran in
    /// part, so nothing is retried; a reply not in yet is waited for.
    #[test]
    fn anything_but_refusals_after_it_forbids_a_retry() {
        let mixed = [REFUSED, b":1\r\n", REFUSED].concat();
        assert_eq!(plan(BATCH, &mixed, REFUSED.len(), 2), Retry::No);
        let partial = [REFUSED, &REFUSED[..10]].concat();
        assert_eq!(plan(BATCH, &partial, REFUSED.len(), 2), Retry::Wait);
        // More replies owed than the batch has commands: something else is
        // in flight.
        assert_eq!(plan(BATCH, REFUSED, REFUSED.len(), 3), Retry::No);
    }
}

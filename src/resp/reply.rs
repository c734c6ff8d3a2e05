//! Scanning server replies: where each top-level reply ends and what kind it is.
//!
//! Covers every RESP2 and RESP3 type. Aggregates are walked with a counter of
//! elements still expected instead of recursion, so nesting depth costs nothing and
//! a hostile reply cannot overflow the stack. The scanner is resumable: it keeps its
//! position and the count of outstanding elements across calls.

use super::{ProtocolError, find_newline, parse_int};

/// The top-level shape of a reply, as far as the proxy needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A RESP3 push (`>`): out-of-band data such as pub/sub messages or
    /// invalidations; it answers no command.
    Push,
    /// An error (`-` or RESP3 `!`).
    Error,
    /// A non-null RESP2/RESP3 array (`*`): in RESP2, pub/sub messages are arrays.
    Array,
    /// Anything else.
    Other,
}

/// One complete reply at the front of the scanned slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Bytes the reply occupies.
    pub len: usize,
    /// Its top-level kind.
    pub kind: Kind,
}

/// Progress through a reply that is not complete yet.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Offset of the next unread element.
    pos: usize,
    /// Elements still expected before the reply is complete.
    pending: u64,
    /// The kind of the top-level element, once seen.
    kind: Option<Kind>,
}

/// Finds reply boundaries in a server's byte stream.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    /// `Some` while the reply at the front of the slice is incomplete.
    progress: Option<Progress>,
}

/// Upper bound on elements outstanding in one reply: far beyond any real reply,
/// low enough that the counter cannot overflow.
const MAX_PENDING: u64 = 1 << 40;

impl ReplyScanner {
    /// Scans the reply at the start of `buf`. `Ok(None)` means more bytes are
    /// needed; call again with the same start and more bytes appended.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<Reply>, ProtocolError> {
        let mut p = self.progress.take().unwrap_or(Progress {
            pos: 0,
            pending: 1,
            kind: None,
        });
        while p.pending > 0 {
            match scan_element(buf, p.pos)? {
                None => {
                    self.progress = Some(p);
                    return Ok(None);
                }
                Some(element) => {
                    p.pending = p.pending - 1 + element.children;
                    if p.pending > MAX_PENDING {
                        return Err(ProtocolError::InvalidReplyLength);
                    }
                    if p.pos == 0 {
                        // An attribute (`|`) decorates the value after it; the
                        // decorated value decides nothing here, so call it Other.
                        p.kind = Some(element.kind);
                    }
                    p.pos = element.end;
                }
            }
        }
        Ok(Some(Reply {
            len: p.pos,
            kind: p.kind.unwrap_or(Kind::Other),
        }))
    }

    /// Forgets any partial progress (after the buffer it referred to is dropped).
    pub fn reset(&mut self) {
        self.progress = None;
    }

    /// Bytes of the incomplete reply at the front already scanned. Everything
    /// before this offset belongs to the reply and may be forwarded early.
    pub fn scanned(&self) -> usize {
        self.progress.map_or(0, |p| p.pos)
    }
}

/// One scanned element: where it ends, how many child elements follow it.
struct Element {
    end: usize,
    children: u64,
    kind: Kind,
}

/// Scans the header (and, for strings, the body) of the element at `pos`.
fn scan_element(buf: &[u8], pos: usize) -> Result<Option<Element>, ProtocolError> {
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(newline) = find_newline(buf, pos + 1) else {
        return Ok(None);
    };
    let line_end = newline + 1;
    let body = buf[pos + 1..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[pos + 1..newline]);
    let element = |end, children, kind| {
        Ok(Some(Element {
            end,
            children,
            kind,
        }))
    };
    match tag {
        b'+' | b':' | b'_' | b',' | b'#' | b'(' => element(line_end, 0, Kind::Other),
        b'-' => element(line_end, 0, Kind::Error),
        b'$' | b'!' | b'=' => {
            let len = parse_int(body).ok_or(ProtocolError::InvalidReplyLength)?;
            let kind = if tag == b'!' {
                Kind::Error
            } else {
                Kind::Other
            };
            if len == -1 && tag == b'$' {
                return element(line_end, 0, kind);
            }
            let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidReplyLength)?;
            let end = line_end
                .checked_add(len)
                .and_then(|e| e.checked_add(2))
                .ok_or(ProtocolError::InvalidReplyLength)?;
            if buf.len() < end {
                return Ok(None);
            }
            element(end, 0, kind)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = parse_int(body).ok_or(ProtocolError::InvalidReplyLength)?;
            if count == -1 && tag == b'*' {
                return element(line_end, 0, Kind::Other);
            }
            let count = u64::try_from(count).map_err(|_| ProtocolError::InvalidReplyLength)?;
            if count > MAX_PENDING {
                return Err(ProtocolError::InvalidReplyLength);
            }
            let (children, kind) = match tag {
                b'*' => (count, Kind::Array),
                b'>' => (count, Kind::Push),
                b'%' => (count * 2, Kind::Other),
                // The attribute's pairs, then the value it decorates.
                b'|' => (count * 2 + 1, Kind::Other),
                _ => (count, Kind::Other),
            };
            element(line_end, children, kind)
        }
        _ => Err(ProtocolError::InvalidReplyType),
    }
}

/// For a complete top-level array or push: its first element if that is a short
/// bulk or simple string (`subscribe`, `message`, …), and the element's end.
/// Used only on pub/sub sessions to tell messages from command replies.
pub fn first_word(frame: &[u8]) -> Option<(&[u8], usize)> {
    let header_end = find_newline(frame, 0)? + 1;
    let element = scan_element(frame, header_end).ok()??;
    match frame.get(header_end)? {
        b'$' => {
            let start = find_newline(frame, header_end)? + 1;
            Some((frame.get(start..element.end - 2)?, element.end))
        }
        b'+' => Some((frame.get(header_end + 1..element.end - 2)?, element.end)),
        _ => None,
    }
}

/// The `i`-th element (0-based) of a complete top-level aggregate, as the raw
/// bytes of that element (header included). Walks nested elements as needed.
pub fn element(frame: &[u8], i: usize) -> Option<&[u8]> {
    let mut pos = find_newline(frame, 0)? + 1;
    for _ in 0..i {
        pos += skip_value(&frame[pos..])?;
    }
    let len = skip_value(&frame[pos..])?;
    frame.get(pos..pos + len)
}

/// Length of the complete value at the start of `buf`.
fn skip_value(buf: &[u8]) -> Option<usize> {
    ReplyScanner::default()
        .scan(buf)
        .ok()
        .flatten()
        .map(|r| r.len)
}

/// The whole length of the bulk string (`$n\r\n` + n bytes + `\r\n`) that
/// starts `buf`, when its header is in and the whole is at least `min` bytes;
/// `None` for anything else (another type, a null, a header not yet in).
///
/// Lets a large value be passed on as it arrives: only the header is read.
pub fn large_bulk(buf: &[u8], min: usize) -> Option<usize> {
    if buf.first() != Some(&b'$') {
        return None;
    }
    let newline = find_newline(buf, 1)?;
    let digits = buf.get(1..newline.checked_sub(1)?)?;
    if buf.get(newline - 1) != Some(&b'\r') {
        return None;
    }
    let len = usize::try_from(parse_int(digits)?).ok()?;
    let total = (newline + 1).checked_add(len)?.checked_add(2)?;
    (total >= min).then_some(total)
}

/// The payload of a bulk string (`$n\r\n...\r\n`) or simple string element.
pub fn string_payload(element: &[u8]) -> Option<&[u8]> {
    match element.first()? {
        b'$' => {
            let start = find_newline(element, 0)? + 1;
            element.get(start..element.len().checked_sub(2)?)
        }
        b'+' => element.get(1..element.len().checked_sub(2)?),
        _ => None,
    }
}

/// The value of an integer element (`:n\r\n`).
pub fn integer_payload(element: &[u8]) -> Option<i64> {
    match element.first()? {
        b':' => parse_int(element.get(1..element.len().checked_sub(2)?)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bulk_reads_only_the_header() {
        assert_eq!(large_bulk(b"$10\r\nabc", 0), Some(17));
        assert_eq!(large_bulk(b"$10\r\nabc", 18), None);
        assert_eq!(large_bulk(b"$1048576\r\n", 65536), Some(1_048_576 + 12));
        assert_eq!(large_bulk(b"$1048576", 0), None, "header not in yet");
        assert_eq!(large_bulk(b"$-1\r\n", 0), None, "null");
        assert_eq!(large_bulk(b"*2\r\n", 0), None, "not a bulk string");
        assert_eq!(large_bulk(b"$1x\r\n", 0), None, "not a length");
        assert_eq!(large_bulk(b"$5\n", 0), None, "no CR");
    }

    fn scan_one(input: &[u8]) -> Result<Option<Reply>, ProtocolError> {
        ReplyScanner::default().scan(input)
    }

    /// A session forwards the complete replies at the front of its buffer and
    /// drops them; an aggregate cut short behind them must resume where it
    /// stopped, not restart (which would count its header twice and misplace
    /// every later reply boundary).
    #[test]
    fn partial_aggregate_behind_a_complete_reply_resumes_after_the_front_is_dropped() {
        let mut scanner = ReplyScanner::default();
        let mut buf = b"+OK\r\n*2\r\n$1\r\na\r\n$1".to_vec();
        let first = scanner.scan(&buf).expect("valid").expect("complete");
        assert_eq!(first.len, 5);
        assert_eq!(scanner.scan(&buf[first.len..]).expect("valid"), None);
        buf.drain(..first.len);
        buf.extend_from_slice(b"\r\nb\r\n+NEXT\r\n");
        let second = scanner.scan(&buf).expect("valid").expect("complete");
        assert_eq!(second.len, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n".len());
        assert_eq!(second.kind, Kind::Array);
        let third = scanner.scan(&buf[second.len..]).expect("valid");
        assert_eq!(third.map(|r| r.len), Some(7));
    }

    #[test]
    fn every_resp2_and_resp3_type_is_delimited() {
        let replies: &[(&[u8], Kind)] = &[
            (b"+OK\r\n", Kind::Other),
            (b"-ERR no\r\n", Kind::Error),
            (b":42\r\n", Kind::Other),
            (b"$5\r\nhello\r\n", Kind::Other),
            (b"$-1\r\n", Kind::Other),
            (b"*-1\r\n", Kind::Other),
            (b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", Kind::Array),
            (b"_\r\n", Kind::Other),
            (b",3.14\r\n", Kind::Other),
            (b"#t\r\n", Kind::Other),
            (
                b"(3492890328409238509324850943850943825024385\r\n",
                Kind::Other,
            ),
            (b"!21\r\nSYNTAX invalid syntax\r\n", Kind::Error),
            (b"=15\r\ntxt:Some string\r\n", Kind::Other),
            (b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", Kind::Other),
            (b"~2\r\n+a\r\n+b\r\n", Kind::Other),
            (
                b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
                Kind::Push,
            ),
            (
                b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*1\r\n:1\r\n",
                Kind::Other,
            ),
        ];
        for (input, kind) in replies {
            let reply = scan_one(input).expect("valid").expect("complete");
            assert_eq!(reply.len, input.len(), "{}", String::from_utf8_lossy(input));
            assert_eq!(reply.kind, *kind, "{}", String::from_utf8_lossy(input));
            for cut in 0..input.len() {
                let mut scanner = ReplyScanner::default();
                assert_eq!(scanner.scan(&input[..cut]), Ok(None));
                assert_eq!(scanner.scan(input), Ok(Some(reply)));
            }
        }
    }

    #[test]
    fn deep_nesting_needs_no_recursion() {
        let mut input = Vec::new();
        for _ in 0..100_000 {
            input.extend_from_slice(b"*1\r\n");
        }
        input.extend_from_slice(b":1\r\n");
        assert_eq!(
            scan_one(&input).expect("valid").map(|r| r.len),
            Some(input.len())
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(scan_one(b"?\r\n"), Err(ProtocolError::InvalidReplyType));
        assert_eq!(scan_one(b"$x\r\n"), Err(ProtocolError::InvalidReplyLength));
        assert_eq!(scan_one(b"*-5\r\n"), Err(ProtocolError::InvalidReplyLength));
        assert_eq!(
            scan_one(b"*99999999999999999\r\n"),
            Err(ProtocolError::InvalidReplyLength)
        );
    }

    #[test]
    fn pubsub_words_are_read_from_arrays_and_pushes() {
        let message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
        assert_eq!(first_word(message).map(|w| w.0), Some(&b"message"[..]));
        let confirm = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        assert_eq!(first_word(confirm).map(|w| w.0), Some(&b"subscribe"[..]));
        assert_eq!(
            element(confirm, 1).and_then(string_payload),
            Some(&b"ch"[..])
        );
        assert_eq!(element(confirm, 2).and_then(integer_payload), Some(1));
        assert_eq!(first_word(b"*1\r\n:1\r\n"), None);
    }
}

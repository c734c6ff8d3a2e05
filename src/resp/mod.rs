//! Pure RESP framing: find where frames end, never rebuild them.
//!
//! The data path forwards the exact bytes a peer sent. This module only answers
//! "how long is the next frame, and what is its command name?" by scanning a byte
//! slice. It owns no sockets, spawns nothing and allocates nothing on the hot path.
//!
//! * [`request`] scans what clients send: RESP multibulk (`*N` of `$len` bulk
//!   strings) and inline commands (`PING\r\n` typed in telnet), with the limits and
//!   error words of Redis's own parser.
//! * [`reply`] scans what servers send: every RESP2 and RESP3 type, at any nesting
//!   depth, without recursion.
//! * [`inline`] splits inline commands into words with Redis's quoting rules.
//! * [`command`] classifies command names (write, read, pub/sub, …) from a table
//!   built from the server's `COMMAND` reply, with a built-in fallback.
//! * [`value`] encodes and decodes the few owned frames the control path exchanges
//!   (probes, `SENTINEL` queries); it is never used for forwarded traffic.
//! * [`words`] holds the replies both ports make themselves, in Redis's words.
//!
//! Both scanners are resumable: when a frame is incomplete they keep their position,
//! so a 512 MB value arriving in small reads is scanned once, not once per read.

pub mod command;
pub mod inline;
pub mod reply;
pub mod request;
pub mod value;
pub mod words;

/// Redis's `proto-max-bulk-len` default: the largest bulk string a client may send.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline command or header line.
pub const MAX_INLINE_LEN: usize = 64 * 1024;

/// The largest multibulk count Redis accepts in one request.
pub const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;

/// A malformed frame. The message is what Redis itself says after `-ERR `, so a
/// client sees the same words through the proxy as from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The multibulk count is not a number or is out of range.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk length is not a number, negative, or over [`MAX_BULK_LEN`].
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk element does not start with `$`; carries the byte it starts
    /// with (shown as a space if it is `\r` or `\n`, as Redis shows it, so the
    /// error stays one line).
    #[error("Protocol error: expected '$', got '{}'", shown_byte(*.0))]
    ExpectedBulk(u8),
    /// An inline command with a quote that is not closed, or closed and
    /// followed by something other than a blank.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// No line end within [`MAX_INLINE_LEN`] bytes of an inline command.
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// No line end within [`MAX_INLINE_LEN`] bytes of a `*` header.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkCountTooBig,
    /// No line end within [`MAX_INLINE_LEN`] bytes of a `$` header.
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// A reply starts with a byte that is no RESP2/RESP3 type.
    #[error("Protocol error: invalid reply type")]
    InvalidReplyType,
    /// A length or count in a reply is malformed.
    #[error("Protocol error: invalid reply length")]
    InvalidReplyLength,
}

impl ProtocolError {
    /// The complete RESP error line to send to a client before closing
    /// (`-ERR Protocol error: ...\r\n`). Built only on the error path.
    pub fn reply(self) -> bytes::Bytes {
        match self {
            // The byte goes out raw, as Redis's `%c` writes it: 0x80 and up
            // are not characters to be UTF-8 encoded.
            ProtocolError::ExpectedBulk(byte) => {
                let mut line = b"-ERR Protocol error: expected '$', got '".to_vec();
                line.push(u8::try_from(shown_byte(byte)).unwrap_or(byte));
                line.extend_from_slice(b"'\r\n");
                bytes::Bytes::from(line)
            }
            _ => bytes::Bytes::from(format!("-ERR {self}\r\n")),
        }
    }
}

/// A byte as Redis prints it with `%c` in an error reply: line ends become
/// spaces.
fn shown_byte(byte: u8) -> char {
    match byte {
        b'\r' | b'\n' => ' ',
        other => char::from(other),
    }
}

/// Where the line that starts at `from` ends: the index of its `\n`.
#[inline]
pub(crate) fn find_newline(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

/// Parses a RESP length or integer line body (no sign handling beyond a leading `-`).
/// Returns `None` for anything Redis's `string2ll` would reject.
#[inline]
pub(crate) fn parse_int(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // Like `string2ll`: no leading zeros, no "-0".
    if digits[0] == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_accepts_what_redis_accepts() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"536870912"), Some(536_870_912));
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1x"), None);
        assert_eq!(parse_int(b"99999999999999999999"), None);
        assert_eq!(parse_int(b"04"), None);
        assert_eq!(parse_int(b"00"), None);
        assert_eq!(parse_int(b"-0"), None);
        assert_eq!(parse_int(b"-01"), None);
        assert_eq!(parse_int(b"10"), Some(10));
    }
}

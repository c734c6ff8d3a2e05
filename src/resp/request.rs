//! Scanning client requests: where each command ends and what its name is.
//!
//! Redis reads two request forms and so does the proxy:
//! * multibulk: `*<argc>\r\n` then `argc` times `$<len>\r\n<len bytes>\r\n`;
//! * inline: one line of whitespace-separated words, as typed in telnet.
//!
//! Like Redis, a header line ends at its `\r` (the byte after it is skipped
//! unchecked), a non-positive multibulk count or a blank inline line is consumed
//! without producing a command, and limits are reported with Redis's own words.
//! The scanner is resumable: an incomplete frame keeps its progress.

use std::ops::Range;

use super::{
    MAX_BULK_LEN, MAX_INLINE_LEN, MAX_MULTIBULK_LEN, ProtocolError, find_newline, parse_int,
};

/// The two request forms Redis accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `*N\r\n$len\r\n...`: what every client library sends.
    Multibulk,
    /// A plain text line (`PING\r\n`), as typed in telnet.
    Inline,
}

/// One complete request at the front of the scanned slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Bytes the request occupies, from the start of the slice.
    pub len: usize,
    /// Where the command name lies in the slice.
    pub name: Range<usize>,
    /// Number of words, command name included.
    pub argc: usize,
    /// Which form it was sent in.
    pub form: Form,
}

/// What the scanner found at the front of the slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A complete command.
    Request(Request),
    /// Bytes Redis would consume without running anything (`*0\r\n`, a blank
    /// inline line). No reply will come for them: they are dropped, or passed
    /// along inside a batch where cutting them out would cost a copy.
    Empty(usize),
}

/// Progress through a multibulk request that is not complete yet.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Offset of the next unread header.
    pos: usize,
    /// Elements still to read.
    remaining: usize,
    /// Elements announced by the `*` header.
    argc: usize,
    /// Range of the first element, once read.
    name: Range<usize>,
}

/// Finds request boundaries in a client's byte stream. Keeps the progress of an
/// incomplete multibulk request so each byte is examined about once.
#[derive(Debug, Default)]
pub struct RequestScanner {
    /// `Some` while the request at the front of the slice is incomplete.
    progress: Option<Progress>,
}

impl RequestScanner {
    /// Scans the request at the start of `buf`. `Ok(None)` means more bytes are
    /// needed; call again with the same start and more bytes appended.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<Scanned>, ProtocolError> {
        if self.progress.is_none() {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(_) => return scan_inline(buf),
            }
            let Some(cr) = find_cr(buf, 1) else {
                return if buf.len() > MAX_INLINE_LEN {
                    Err(ProtocolError::MultibulkCountTooBig)
                } else {
                    Ok(None)
                };
            };
            let count = parse_int(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if count > MAX_MULTIBULK_LEN {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            let header_end = cr + 2;
            if count <= 0 {
                if buf.len() < header_end {
                    return Ok(None);
                }
                return Ok(Some(Scanned::Empty(header_end)));
            }
            let argc = usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
            self.progress = Some(Progress {
                pos: header_end,
                remaining: argc,
                argc,
                name: 0..0,
            });
        }
        let Some(progress) = self.progress.as_mut() else {
            return Ok(None);
        };
        while progress.remaining > 0 {
            let Some(data) = scan_bulk(buf, progress.pos)? else {
                return Ok(None);
            };
            if progress.remaining == progress.argc {
                progress.name = data.clone();
            }
            progress.pos = data.end + 2;
            progress.remaining -= 1;
        }
        let done = self.progress.take().unwrap_or_default();
        Ok(Some(Scanned::Request(Request {
            len: done.pos,
            name: done.name,
            argc: done.argc,
            form: Form::Multibulk,
        })))
    }

    /// Forgets any partial progress (after the buffer it referred to is dropped).
    pub fn reset(&mut self) {
        self.progress = None;
    }
}

/// Reads one `$len\r\n<data>\r\n` element at `pos`; returns the data range once
/// the element, trailing `\r\n` included, is in `buf`.
fn scan_bulk(buf: &[u8], pos: usize) -> Result<Option<Range<usize>>, ProtocolError> {
    let Some(&first) = buf.get(pos) else {
        return Ok(None);
    };
    if first != b'$' {
        return Err(ProtocolError::ExpectedBulk(first));
    }
    let Some(cr) = find_cr(buf, pos + 1) else {
        return if buf.len() - pos > MAX_INLINE_LEN {
            Err(ProtocolError::BulkCountTooBig)
        } else {
            Ok(None)
        };
    };
    let len = parse_int(&buf[pos + 1..cr]).ok_or(ProtocolError::InvalidBulkLength)?;
    let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
    if len > MAX_BULK_LEN {
        return Err(ProtocolError::InvalidBulkLength);
    }
    let start = cr + 2;
    if buf.len() < start + len + 2 {
        return Ok(None);
    }
    Ok(Some(start..start + len))
}

/// Position of the first `\r` at or after `from`, if the byte after it has arrived
/// too (Redis skips that byte without looking at it).
#[inline]
fn find_cr(buf: &[u8], from: usize) -> Option<usize> {
    let cr = from + buf.get(from..)?.iter().position(|&b| b == b'\r')?;
    (cr + 1 < buf.len()).then_some(cr)
}

/// Scans an inline command: one line, words separated by blanks.
fn scan_inline(buf: &[u8]) -> Result<Option<Scanned>, ProtocolError> {
    let Some(newline) = find_newline(buf, 0) else {
        return if buf.len() > MAX_INLINE_LEN {
            Err(ProtocolError::InlineTooBig)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..newline];
    let mut words = InlineWords::new(line);
    let Some(name) = words.next() else {
        return Ok(Some(Scanned::Empty(newline + 1)));
    };
    let argc = 1 + words.count();
    Ok(Some(Scanned::Request(Request {
        len: newline + 1,
        name,
        argc,
        form: Form::Inline,
    })))
}

/// Word ranges of an inline line (split on ASCII whitespace; a trailing `\r` is
/// whitespace). Quoted words are left to the server, which parses them itself.
struct InlineWords<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> InlineWords<'a> {
    fn new(line: &'a [u8]) -> Self {
        Self { line, pos: 0 }
    }
}

impl Iterator for InlineWords<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self.line.get(self.pos..)?;
        let start = self.pos + rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let len = self.line[start..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(self.line.len() - start);
        self.pos = start + len;
        Some(start..start + len)
    }
}

/// The words of a complete request, name first. Used only for the few commands
/// whose arguments change session state (SELECT, HELLO, CLIENT, SUBSCRIBE, …).
pub fn args<'a>(frame: &'a [u8], request: &Request) -> impl Iterator<Item = &'a [u8]> + 'a {
    let form = request.form;
    let argc = request.argc;
    let mut inline = InlineWords::new(frame.strip_suffix(b"\n").unwrap_or(frame));
    let mut pos = frame
        .iter()
        .position(|&b| b == b'\r')
        .map_or(frame.len(), |cr| cr + 2);
    let mut taken = 0;
    std::iter::from_fn(move || match form {
        Form::Inline => inline.next().map(|r| &frame[r]),
        Form::Multibulk => {
            if taken == argc {
                return None;
            }
            let data = scan_bulk(frame, pos).ok().flatten()?;
            pos = data.end + 2;
            taken += 1;
            Some(&frame[data])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8]) -> Result<Vec<Scanned>, ProtocolError> {
        let mut scanner = RequestScanner::default();
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(found) = scanner.scan(&input[at..])? {
            at += match &found {
                Scanned::Request(r) => r.len,
                Scanned::Empty(n) => *n,
            };
            out.push(found);
        }
        Ok(out)
    }

    fn name_of(input: &[u8]) -> Vec<u8> {
        let mut scanner = RequestScanner::default();
        match scanner.scan(input) {
            Ok(Some(Scanned::Request(r))) => input[r.name].to_vec(),
            other => panic!("no request: {other:?}"),
        }
    }

    #[test]
    fn multibulk_request_and_its_name() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut scanner = RequestScanner::default();
        let Ok(Some(Scanned::Request(r))) = scanner.scan(input) else {
            panic!("expected a request");
        };
        assert_eq!(r.len, input.len());
        assert_eq!(&input[r.name.clone()], b"SET");
        assert_eq!(r.argc, 3);
        let words: Vec<&[u8]> = args(input, &r).collect();
        assert_eq!(words, vec![&b"SET"[..], b"k", b"hello"]);
    }

    #[test]
    fn every_split_point_yields_the_same_request() {
        let input = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
        for cut in 0..input.len() {
            let mut scanner = RequestScanner::default();
            assert_eq!(scanner.scan(&input[..cut]), Ok(None), "cut at {cut}");
            let Ok(Some(Scanned::Request(r))) = scanner.scan(input) else {
                panic!("cut at {cut}: expected a request");
            };
            assert_eq!(r.len, input.len());
            assert_eq!(&input[r.name], b"ECHO");
        }
    }

    #[test]
    fn pipelined_requests_are_split_apart() {
        let input = b"*1\r\n$4\r\nPING\r\nPING\r\n*0\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let found = scan_all(input).expect("valid pipeline");
        assert_eq!(found.len(), 5);
        assert!(matches!(found[2], Scanned::Empty(4)));
        assert!(matches!(found[3], Scanned::Empty(2)));
    }

    #[test]
    fn inline_commands_as_telnet_sends_them() {
        assert_eq!(name_of(b"PING\r\n"), b"PING");
        assert_eq!(name_of(b"  set  k v\n"), b"set");
        let mut scanner = RequestScanner::default();
        let Ok(Some(Scanned::Request(r))) = scanner.scan(b"SET k  v\r\n") else {
            panic!("expected a request");
        };
        assert_eq!(r.argc, 3);
        assert_eq!(r.form, Form::Inline);
        let words: Vec<&[u8]> = args(b"SET k  v\r\n", &r).collect();
        assert_eq!(words, vec![&b"SET"[..], b"k", b"v"]);
    }

    #[test]
    fn binary_values_are_opaque() {
        let input = b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n*\x00\r\n";
        let found = scan_all(input).expect("binary-safe");
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn malformed_requests_get_redis_words() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
            (b"*1\r\n$-3\r\n", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$536870913\r\n",
                "Protocol error: invalid bulk length",
            ),
            (
                b"*99999999999\r\n",
                "Protocol error: invalid multibulk length",
            ),
        ];
        for (input, words) in cases {
            let err = scan_all(input).expect_err("must be rejected");
            assert_eq!(err.to_string(), *words);
        }
        assert_eq!(
            &ProtocolError::InlineTooBig.reply()[..],
            b"-ERR Protocol error: too big inline request\r\n"
        );
    }

    #[test]
    fn line_limits_are_enforced_without_a_newline() {
        let long = vec![b'a'; MAX_INLINE_LEN + 1];
        assert_eq!(scan_all(&long), Err(ProtocolError::InlineTooBig));
        let mut star = vec![b'*'];
        star.extend(std::iter::repeat_n(b'1', MAX_INLINE_LEN + 1));
        assert_eq!(scan_all(&star), Err(ProtocolError::MultibulkCountTooBig));
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'1', MAX_INLINE_LEN + 1));
        assert_eq!(scan_all(&bulk), Err(ProtocolError::BulkCountTooBig));
    }
}

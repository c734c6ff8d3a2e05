//! Scanning client requests: where each command ends and what its name is.
//!
//! Redis reads two request forms and so does the proxy:
//! * multibulk: `*<argc>\r\n` then `argc` times `$<len>\r\n<len bytes>\r\n`;
//! * inline: one line of whitespace-separated words, as typed in telnet.
//!
//! Like Redis, a header line ends at its `\r` (the byte after it is skipped
//! unchecked), a non-positive multibulk count or a blank inline line is consumed
//! without producing a command, and limits are reported with Redis's own words.
//! Redis looks for line ends with `strchr`, which stops at a NUL byte: a header
//! or inline line with a NUL before its end is never complete (Redis waits for
//! more, and past 64 KB says the line is too big), and so it is here.
//! The scanner is resumable: an incomplete frame keeps its progress.

use std::borrow::Cow;
use std::ops::Range;

use super::inline;
use super::{MAX_BULK_LEN, MAX_INLINE_LEN, MAX_MULTIBULK_LEN, ProtocolError, parse_int};

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
    /// Where the command name lies in the slice (for an inline command whose
    /// name is quoted: its raw span, quotes included; see [`Request::name`]).
    pub name_span: Range<usize>,
    /// Number of words, command name included.
    pub argc: usize,
    /// Which form it was sent in.
    pub form: Form,
    /// An inline command whose name is quoted: it must be decoded.
    pub quoted_name: bool,
}

impl Request {
    /// The command name as Redis will read it from `frame` (the request's
    /// bytes). Borrowed, except for a quoted inline name.
    pub fn name<'a>(&self, frame: &'a [u8]) -> Cow<'a, [u8]> {
        if self.quoted_name {
            args(frame, self).next().unwrap_or_default()
        } else {
            Cow::Borrowed(frame.get(self.name_span.clone()).unwrap_or_default())
        }
    }
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
            let cr = match find_cr(buf, 0) {
                LineEnd::At(cr) => cr,
                LineEnd::Pending => return Ok(None),
                LineEnd::Missing if buf.len() > MAX_INLINE_LEN => {
                    return Err(ProtocolError::MultibulkCountTooBig);
                }
                LineEnd::Missing => return Ok(None),
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
            name_span: done.name,
            argc: done.argc,
            form: Form::Multibulk,
            quoted_name: false,
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
    // Like Redis, the line must be complete before its first byte is judged.
    let cr = match find_cr(buf, pos) {
        LineEnd::At(cr) => cr,
        LineEnd::Pending => return Ok(None),
        LineEnd::Missing if buf.len().saturating_sub(pos) > MAX_INLINE_LEN => {
            return Err(ProtocolError::BulkCountTooBig);
        }
        LineEnd::Missing => return Ok(None),
    };
    let first = buf[pos];
    if first != b'$' {
        return Err(ProtocolError::ExpectedBulk(first));
    }
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

/// Where a header line ends, as Redis's `strchr(line, '\r')` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    /// The line's `\r` is at this index, and the byte after it has arrived
    /// too (Redis skips that byte without looking at it).
    At(usize),
    /// The `\r` is the last byte received: wait for one more.
    Pending,
    /// No `\r` before the end of the bytes or a NUL byte.
    Missing,
}

/// Finds the end of the header line that starts at `from`.
#[inline]
fn find_cr(buf: &[u8], from: usize) -> LineEnd {
    let rest = buf.get(from..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\r' || b == 0) {
        Some(i) if rest[i] == b'\r' && i + 1 < rest.len() => LineEnd::At(from + i),
        Some(i) if rest[i] == b'\r' => LineEnd::Pending,
        _ => LineEnd::Missing,
    }
}

/// Scans an inline command: one line, words separated by blanks.
fn scan_inline(buf: &[u8]) -> Result<Option<Scanned>, ProtocolError> {
    // `strchr(line, '\n')`: a NUL first means no line end.
    let end = buf.iter().position(|&b| b == b'\n' || b == 0);
    let Some(newline) = end.filter(|&i| buf[i] == b'\n') else {
        return if buf.len() > MAX_INLINE_LEN {
            Err(ProtocolError::InlineTooBig)
        } else {
            Ok(None)
        };
    };
    let mut words = inline::words(inline_line(&buf[..=newline]));
    let name = match words.next() {
        None => return Ok(Some(Scanned::Empty(newline + 1))),
        Some(word) => word?,
    };
    let mut argc = 1;
    for word in words {
        word?;
        argc += 1;
    }
    Ok(Some(Scanned::Request(Request {
        len: newline + 1,
        quoted_name: matches!(name.bytes, Cow::Owned(_)),
        name_span: name.span,
        argc,
        form: Form::Inline,
    })))
}

/// An inline command's line without its line end (`\n`, or `\r\n`), as
/// Redis splits it.
fn inline_line(frame: &[u8]) -> &[u8] {
    let line = frame.strip_suffix(b"\n").unwrap_or(frame);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The words of a complete request, name first. Used only for the few commands
/// whose arguments change session state (SELECT, HELLO, CLIENT, SUBSCRIBE, …).
pub fn args<'a>(frame: &'a [u8], request: &Request) -> impl Iterator<Item = Cow<'a, [u8]>> + 'a {
    let form = request.form;
    let argc = request.argc;
    let mut inline = inline::words(inline_line(frame));
    let mut pos = frame
        .iter()
        .position(|&b| b == b'\r')
        .map_or(frame.len(), |cr| cr + 2);
    let mut taken = 0;
    std::iter::from_fn(move || match form {
        Form::Inline => inline.next()?.ok().map(|word| word.bytes),
        Form::Multibulk => {
            if taken == argc {
                return None;
            }
            let data = scan_bulk(frame, pos).ok().flatten()?;
            pos = data.end + 2;
            taken += 1;
            Some(Cow::Borrowed(&frame[data]))
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
            Ok(Some(Scanned::Request(r))) => r.name(input).into_owned(),
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
        assert_eq!(&*r.name(input), b"SET");
        assert_eq!(r.argc, 3);
        let words: Vec<Cow<[u8]>> = args(input, &r).collect();
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
            assert_eq!(&*r.name(input), b"ECHO");
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
        let words: Vec<Cow<[u8]>> = args(b"SET k  v\r\n", &r).collect();
        assert_eq!(words, vec![&b"SET"[..], b"k", b"v"]);
        let quoted = b"se\"t\" 'k' \"\\x76\"\r\n";
        let Ok(Some(Scanned::Request(r))) = RequestScanner::default().scan(quoted) else {
            panic!("expected a request");
        };
        assert_eq!(
            (&*r.name(quoted), r.argc, r.quoted_name),
            (&b"set"[..], 3, true)
        );
        let words: Vec<Cow<[u8]>> = args(quoted, &r).collect();
        assert_eq!(words, vec![&b"set"[..], b"k", b"v"]);
        assert_eq!(
            scan_all(b"PING\r\nECHO \"a\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
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

    /// Redis finds line ends with `strchr`, which stops at a NUL byte: such a
    /// line waits for more input, and the first byte of an element is judged
    /// only once its line is complete. A `\r` or `\n` in the error message
    /// becomes a space, as in Redis's error replies.
    #[test]
    fn lines_are_read_as_redis_reads_them() {
        for waiting in [
            &b"*1\x00\r\n$4\r\nPING\r\n"[..],
            b"*1\r\n$4\x00\r\nPING\r\n",
            b"*1\r\n\x00\r\n",
            b"*1\r\nx\x00\r\n",
            b"*1\r\nxyz",
            b"*1\r",
            b"PING\x00\r\nPING\r\n",
        ] {
            assert_eq!(scan_all(waiting), Ok(Vec::new()), "{:?}", waiting);
        }
        assert_eq!(
            scan_all(b"*1\r\nxyz\r\n").map_err(|e| e.to_string()),
            Err("Protocol error: expected '$', got 'x'".to_owned())
        );
        for (input, shown) in [(&b"*1\r\n\r\r\n"[..], ' '), (b"*1\r\n\n\r\n", ' ')] {
            assert_eq!(
                scan_all(input).map_err(|e| e.to_string()),
                Err(format!("Protocol error: expected '$', got '{shown}'"))
            );
        }
        assert_eq!(
            &ProtocolError::ExpectedBulk(0xff).reply()[..],
            b"-ERR Protocol error: expected '$', got '\xff'\r\n"
        );
        let mut nul_line = b"PING \x00".to_vec();
        nul_line.resize(MAX_INLINE_LEN + 1, b'a');
        nul_line.extend_from_slice(b"\r\n");
        assert_eq!(scan_all(&nul_line), Err(ProtocolError::InlineTooBig));
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

//! RESP2/RESP3 encoding for the sentinel port: the one place where a frame
//! becomes bytes.
//!
//! The core and the connection-level commands build RESP2 frames
//! ([`OwnedFrame`]); what RESP2 leaves unsaid (this flat array is a map, that
//! one a push, this null a null array) is a [`Shape`], and [`put_frame`] turns
//! a frame, its shape and the connection's [`Protocol`] into bytes. In RESP3
//! maps are `%`, pub/sub confirmations and messages are `>` pushes and nulls
//! are `_`; in RESP2 the bytes are what Redis Sentinel 7.0 sends.
//!
//! The core's replies pass through [`put_core_reply`]: [`core_shape`] says
//! which of them Sentinel sends as maps, and [`scrub`] keeps a line break in
//! the core's text from breaking the client's framing.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::replies;
use crate::resp::value::OwnedFrame;

/// The RESP version a connection speaks, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Protocol {
    /// Every connection starts here, and `RESET` comes back here, as in Redis.
    #[default]
    Resp2,
    /// After `HELLO 3`: maps, pushes and `_` nulls.
    Resp3,
}

impl Protocol {
    /// HELLO's `proto` field.
    pub(super) fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// What a reply means beyond its RESP2 frame: RESP2 sends maps and pushes as
/// plain arrays and has two nulls, RESP3 tells them all apart. [`put_frame`]
/// reads it; nested frames are [`Shape::Plain`] unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// Arrays are arrays; a null is the null bulk string (`$-1` in RESP2).
    Plain,
    /// An array whose null is the null array (`*-1` in RESP2), as Sentinel
    /// answers `SENTINEL get-master-addr-by-name` for an unknown name.
    Array,
    /// A flat `[key, value, …]` array that RESP3 sends as a map (`%`).
    Map,
    /// An array of such flat arrays: each element is a map in RESP3.
    Maps,
    /// Pub/sub confirmations and messages: a push (`>`) in RESP3.
    Push,
}

/// Appends `-<message>\r\n`; `message` must already be free of line breaks.
pub(super) fn put_error(out: &mut BytesMut, message: &str) {
    out.put_u8(b'-');
    out.put_slice(message.as_bytes());
    out.put_slice(b"\r\n");
}

/// Appends `frame`, meaning `shape`, in `protocol`: the one place where a
/// reply becomes bytes. Simple strings, errors, integers and bulk strings are
/// the same in both versions; a map is `%` with half as many entries as its
/// flat array, a push `>`, any null `_` in RESP3. Core frames are shallow, so
/// the recursion is too.
pub(super) fn put_frame(out: &mut BytesMut, frame: &OwnedFrame, shape: Shape, protocol: Protocol) {
    match frame {
        OwnedFrame::SimpleString(text) => {
            out.put_u8(b'+');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        OwnedFrame::Error(message) => put_error(out, message),
        OwnedFrame::Integer(n) => put_line(out, b':', n),
        OwnedFrame::BulkString(data) => put_bulk(out, data),
        OwnedFrame::Null => out.put_slice(match (protocol, shape) {
            (Protocol::Resp3, _) => b"_\r\n",
            (Protocol::Resp2, Shape::Array) => b"*-1\r\n",
            (Protocol::Resp2, _) => b"$-1\r\n",
        }),
        OwnedFrame::Array(items) => {
            let (kind, inner) = match shape {
                Shape::Map if items.len() % 2 == 0 => (b'%', Shape::Plain),
                Shape::Maps => (b'*', Shape::Map),
                Shape::Push => (b'>', Shape::Plain),
                Shape::Plain | Shape::Array | Shape::Map => (b'*', Shape::Plain),
            };
            put_header(out, kind, items.len(), protocol);
            for item in items {
                put_frame(out, item, inner, protocol);
            }
        }
    }
}

/// Appends the header of an aggregate of `len` frames: `kind` is RESP3's type
/// byte (`*`, `%` counting pairs, `>`); RESP2 writes every kind as `*`.
pub(super) fn put_header(out: &mut BytesMut, kind: u8, len: usize, protocol: Protocol) {
    match (protocol, kind) {
        (Protocol::Resp3, b'%') => put_line(out, b'%', len / 2),
        (Protocol::Resp3, kind) => put_line(out, kind, len),
        (Protocol::Resp2, _) => put_line(out, b'*', len),
    }
}

/// Appends `$<len>\r\n<data>\r\n`.
pub(super) fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_line(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Appends `<kind><number>\r\n`.
fn put_line(out: &mut BytesMut, kind: u8, number: impl std::fmt::Display) {
    out.put_u8(kind);
    // Writing into a `BytesMut` cannot fail.
    let _ = write!(out, "{number}\r\n");
}

/// How Sentinel shapes the core's replies, which the core builds as RESP2
/// frames: `SENTINEL MASTER`, `CONFIG GET` and `DEBUG` are maps, `MASTERS`,
/// `REPLICAS` (`SLAVES`) and `SENTINELS` arrays of maps, and an unknown name
/// in `GET-MASTER-ADDR-BY-NAME` a null array. Errors and `+OK` (`CONFIG SET`,
/// `DEBUG name ms`) are not arrays, so their shape does not matter.
pub(super) fn core_shape(args: &[Bytes]) -> Shape {
    let (Some(command), Some(sub)) = (args.first(), args.get(1)) else {
        return Shape::Plain;
    };
    if !command.eq_ignore_ascii_case(b"sentinel") {
        return Shape::Plain;
    }
    match sub.to_ascii_lowercase().as_slice() {
        b"master" | b"primary" | b"config" | b"debug" => Shape::Map,
        b"masters" | b"primaries" | b"replicas" | b"slaves" | b"sentinels" | b"pending-scripts" => {
            Shape::Maps
        }
        b"get-master-addr-by-name" | b"get-primary-addr-by-name" => Shape::Array,
        _ => Shape::Plain,
    }
}

/// Replaces line breaks inside simple strings and errors from the core, which
/// the encoder would write verbatim and so break the client's framing.
fn scrub(frame: &mut OwnedFrame) {
    let line_break = |c: char| c == '\r' || c == '\n';
    match frame {
        OwnedFrame::SimpleString(text) => {
            for byte in text.iter_mut().filter(|b| matches!(b, b'\r' | b'\n')) {
                *byte = b' ';
            }
        }
        OwnedFrame::Error(text) if text.contains(line_break) => {
            *text = text.replace(line_break, " ");
        }
        OwnedFrame::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Appends the core's answer as `shape` in `protocol`, or the "unavailable"
/// error without one.
pub(super) fn put_core_reply(
    out: &mut BytesMut,
    frame: Option<&mut OwnedFrame>,
    shape: Shape,
    protocol: Protocol,
) {
    match frame {
        Some(frame) => {
            scrub(frame);
            put_frame(out, frame, shape, protocol);
        }
        None => out.put_slice(replies::CORE_UNAVAILABLE),
    }
}

/// Longest client-supplied word echoed back in an error.
pub(super) const MAX_ECHOED: usize = 128;

/// A client-supplied word made safe to echo in an error line: lossy UTF-8, no
/// line breaks, at most [`MAX_ECHOED`] characters.
pub(super) fn shown(word: &[u8]) -> String {
    String::from_utf8_lossy(word)
        .chars()
        .take(MAX_ECHOED)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

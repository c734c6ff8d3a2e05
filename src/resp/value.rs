//! Owned frames for the control path: commands the proxy itself sends (probes,
//! `ROLE`, `COMMAND`, `SENTINEL …`) and the replies it reads back. Never used for
//! forwarded client traffic, which stays as received.

use bytes::{BufMut, BytesMut};
pub use redis_protocol::resp2::types::OwnedFrame;

use super::ProtocolError;

/// Appends `args` to `out` as a RESP multibulk command.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    out.put_u8(b'*');
    put_decimal(out, args.len());
    for arg in args {
        let arg = arg.as_ref();
        out.put_u8(b'$');
        put_decimal(out, arg.len());
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

fn put_decimal(out: &mut BytesMut, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
    out.put_slice(b"\r\n");
}

/// Decodes one RESP2 reply from the front of `buf`: `Ok(None)` if incomplete,
/// otherwise the frame and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(OwnedFrame, usize)>, ProtocolError> {
    redis_protocol::resp2::decode::decode(buf).map_err(|_| ProtocolError::InvalidReplyType)
}

/// The text of a bulk or simple string frame.
pub fn as_str(frame: &OwnedFrame) -> Option<&str> {
    match frame {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Reads a flat `[key, value, key, value…]` array (how `SENTINEL master` and
/// similar answer in RESP2) and returns the value for `key`.
pub fn field<'a>(frame: &'a OwnedFrame, key: &str) -> Option<&'a str> {
    let OwnedFrame::Array(items) = frame else {
        return None;
    };
    items
        .chunks_exact(2)
        .find(|pair| as_str(&pair[0]) == Some(key))
        .and_then(|pair| as_str(&pair[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_the_decoder() {
        let mut out = BytesMut::new();
        encode_command(&mut out, &["SET", "key", ""]);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n");
        let (frame, used) = decode(&out).expect("valid").expect("complete");
        assert_eq!(used, out.len());
        let OwnedFrame::Array(items) = frame else {
            panic!("not an array")
        };
        assert_eq!(as_str(&items[1]), Some("key"));
    }

    #[test]
    fn flat_maps_are_read_by_key() {
        let frame = OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"ip".to_vec()),
            OwnedFrame::BulkString(b"127.0.0.1".to_vec()),
            OwnedFrame::BulkString(b"port".to_vec()),
            OwnedFrame::BulkString(b"6379".to_vec()),
        ]);
        assert_eq!(field(&frame, "port"), Some("6379"));
        assert_eq!(field(&frame, "flags"), None);
    }
}

//! The `__sentinel__:hello` message: how Sentinels find each other and agree on
//! the current master's address and config epoch.
//!
//! Every Sentinel publishes, every 2 s, on [`CHANNEL`] of each monitored node, one
//! payload of exactly 8 comma-separated fields:
//!
//! ```text
//! sentinel_ip,sentinel_port,sentinel_runid,current_epoch,master_name,master_ip,master_port,master_config_epoch
//! ```
//!
//! This module only converts between that text and [`Hello`]; it never decides
//! what a hello means (whether a peer is new, whether a newer config epoch wins).
//! It does no I/O, except [`new_run_id`] reading `/dev/urandom`.
//!
//! Invariants:
//! * a parsed [`Hello`] has a 40-hex-character run id, ports in `1..=65535` and
//!   non-empty addresses and master name;
//! * `Hello::parse(&h.to_payload()) == Ok(h)` for every parsed `h` (no field of a
//!   parsed hello can contain `,`). IPv6 addresses contain `:` but never `,`.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::SocketAddr;

/// The Pub/Sub channel Sentinels publish their hello on, on every monitored node.
pub const CHANNEL: &str = "__sentinel__:hello";

/// The length of a Redis run id in hex characters (20 random bytes).
pub const RUN_ID_LEN: usize = 40;

/// Why a hello payload was rejected. Each kind of malformation has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// Not exactly 8 comma-separated fields.
    #[error("hello has {0} fields, expected 8")]
    FieldCount(usize),
    /// An address or the master name is empty.
    #[error("hello field {0} is empty")]
    Empty(&'static str),
    /// The Sentinel run id is not 40 hex characters.
    #[error("hello run id is not 40 hex characters: {0:?}")]
    RunId(String),
    /// An epoch is not an unsigned 64-bit number.
    #[error("hello field {field} is not an epoch: {value:?}")]
    Epoch {
        /// Which field (`current_epoch` or `master_config_epoch`).
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A port is not a number in `1..=65535`.
    #[error("hello field {field} is not a port in 1..=65535: {value:?}")]
    Port {
        /// Which field (`sentinel_port` or `master_port`).
        field: &'static str,
        /// The text found.
        value: String,
    },
}

/// One Sentinel's announcement: who it is and which master it believes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The announcing Sentinel's address (IP or announced hostname).
    pub ip: String,
    /// The announcing Sentinel's port.
    pub port: u16,
    /// The announcing Sentinel's run id (40 hex characters).
    pub run_id: String,
    /// The announcing Sentinel's current epoch.
    pub current_epoch: u64,
    /// The name of the master this hello is about.
    pub master_name: String,
    /// The master's address as the announcing Sentinel knows it.
    pub master_ip: String,
    /// The master's port as the announcing Sentinel knows it.
    pub master_port: u16,
    /// The config epoch under which the announcing Sentinel learned that master.
    pub master_config_epoch: u64,
}

impl Hello {
    /// Parses a hello payload, strictly: exactly 8 fields, no surrounding spaces,
    /// a 40-hex run id, numeric epochs and ports in `1..=65535`, so a bad peer
    /// can never inject a half-understood master address.
    pub fn parse(payload: &str) -> Result<Hello, HelloError> {
        let fields: Vec<&str> = payload.split(',').collect();
        let [
            ip,
            port,
            run_id,
            current_epoch,
            master_name,
            master_ip,
            master_port,
            config_epoch,
        ] = fields[..]
        else {
            return Err(HelloError::FieldCount(fields.len()));
        };
        Ok(Hello {
            ip: non_empty("sentinel_ip", ip)?,
            port: parse_port("sentinel_port", port)?,
            run_id: parse_run_id(run_id)?,
            current_epoch: parse_epoch("current_epoch", current_epoch)?,
            master_name: non_empty("master_name", master_name)?,
            master_ip: non_empty("master_ip", master_ip)?,
            master_port: parse_port("master_port", master_port)?,
            master_config_epoch: parse_epoch("master_config_epoch", config_epoch)?,
        })
    }

    /// Formats the payload to publish on [`CHANNEL`]. Fields are not escaped:
    /// a hello built by hand must not contain `,` in its strings (Redis Sentinel
    /// has the same limit).
    pub fn to_payload(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.ip,
            self.port,
            self.run_id,
            self.current_epoch,
            self.master_name,
            self.master_ip,
            self.master_port,
            self.master_config_epoch
        )
    }

    /// The announcing Sentinel's address (`None` when it announces a host
    /// name rather than an IP address).
    pub fn sentinel_addr(&self) -> Option<SocketAddr> {
        super::node::address(&self.ip, self.port)
    }
}

fn non_empty(field: &'static str, value: &str) -> Result<String, HelloError> {
    if value.is_empty() {
        Err(HelloError::Empty(field))
    } else {
        Ok(value.to_owned())
    }
}

fn parse_run_id(value: &str) -> Result<String, HelloError> {
    if is_run_id(value) {
        Ok(value.to_owned())
    } else {
        Err(HelloError::RunId(value.to_owned()))
    }
}

fn parse_port(field: &'static str, value: &str) -> Result<u16, HelloError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(HelloError::Port {
            field,
            value: value.to_owned(),
        }),
    }
}

fn parse_epoch(field: &'static str, value: &str) -> Result<u64, HelloError> {
    value.parse::<u64>().map_err(|_| HelloError::Epoch {
        field,
        value: value.to_owned(),
    })
}

/// Whether `s` looks like a Redis run id: exactly 40 ASCII hex digits (either
/// case). Shared with the `INFO` parser so both accept the same ids.
pub fn is_run_id(s: &str) -> bool {
    s.len() == RUN_ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh run id for this Sentinel: 40 lowercase hex characters.
///
/// Reads 20 bytes from `/dev/urandom`; where that fails (no such device), falls
/// back to std's randomly keyed hasher over the time, the process id and a
/// counter. Uniqueness is what matters (peers tell Sentinels apart by run id),
/// not secrecy.
pub fn new_run_id() -> String {
    let bytes = urandom_bytes().unwrap_or_else(fallback_bytes);
    hex(&bytes)
}

fn urandom_bytes() -> Option<[u8; 20]> {
    let mut bytes = [0u8; 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    Some(bytes)
}

/// 20 bytes from `RandomState` hashers (each one freshly keyed) over time, pid
/// and a counter; used only when `/dev/urandom` cannot be read.
fn fallback_bytes() -> [u8; 20] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut bytes = [0u8; 20];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_usize(i);
        let word = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run id of a real `redis-sentinel` 7.0.15.
    const RUN_ID: &str = "b0e4e370a08bc9756ddd1481ee0b63907a5dcc76";

    fn sample() -> Hello {
        Hello {
            ip: "127.0.0.1".into(),
            port: 26379,
            run_id: RUN_ID.into(),
            current_epoch: 0,
            master_name: "mymaster".into(),
            master_ip: "127.0.0.1".into(),
            master_port: 6379,
            master_config_epoch: 0,
        }
    }

    #[test]
    fn parses_a_payload_captured_from_redis_7() {
        // Captured with `redis-cli subscribe __sentinel__:hello` from Redis 7.0.15
        // (ports as in that capture).
        let payload =
            "127.0.0.1,36379,b0e4e370a08bc9756ddd1481ee0b63907a5dcc76,0,mymaster,127.0.0.1,16379,0";
        let want = Hello {
            port: 36379,
            master_port: 16379,
            ..sample()
        };
        assert_eq!(Hello::parse(payload).unwrap(), want);
        assert_eq!(want.to_payload(), payload);
    }

    #[test]
    fn round_trips() {
        let mut h = sample();
        h.ip = "::1".into();
        h.current_epoch = 7;
        h.master_ip = "fe80::1".into();
        h.master_port = 6380;
        h.master_config_epoch = 5;
        assert_eq!(Hello::parse(&h.to_payload()).unwrap(), h);
        assert_eq!(Hello::parse(&sample().to_payload()).unwrap(), sample());
    }

    #[test]
    fn sentinel_addr_brackets_ipv6() {
        assert_eq!(sample().sentinel_addr(), "127.0.0.1:26379".parse().ok());
        let mut h = sample();
        h.ip = "::1".into();
        assert_eq!(h.sentinel_addr(), "[::1]:26379".parse().ok());
        let parsed = h.sentinel_addr().expect("an IPv6 address");
        assert_eq!(parsed.port(), 26379);
    }

    #[test]
    fn rejects_each_malformation_with_its_own_variant() {
        let ok = sample().to_payload();
        let replace = |i: usize, v: &str| {
            let mut f: Vec<&str> = ok.split(',').collect();
            f[i] = v;
            f.join(",")
        };
        let cases: Vec<(String, HelloError)> = vec![
            (String::new(), HelloError::FieldCount(1)),
            (
                ok.rsplit_once(',').unwrap().0.to_owned(),
                HelloError::FieldCount(7),
            ),
            (format!("{ok},extra"), HelloError::FieldCount(9)),
            (replace(0, ""), HelloError::Empty("sentinel_ip")),
            (replace(4, ""), HelloError::Empty("master_name")),
            (replace(5, ""), HelloError::Empty("master_ip")),
            (
                replace(1, "0"),
                HelloError::Port {
                    field: "sentinel_port",
                    value: "0".into(),
                },
            ),
            (
                replace(6, "65536"),
                HelloError::Port {
                    field: "master_port",
                    value: "65536".into(),
                },
            ),
            (
                replace(6, " 6379"),
                HelloError::Port {
                    field: "master_port",
                    value: " 6379".into(),
                },
            ),
            (replace(2, "abc"), HelloError::RunId("abc".into())),
            (
                replace(2, &"g".repeat(40)),
                HelloError::RunId("g".repeat(40)),
            ),
            (
                replace(2, &"a".repeat(41)),
                HelloError::RunId("a".repeat(41)),
            ),
            (
                replace(3, "-1"),
                HelloError::Epoch {
                    field: "current_epoch",
                    value: "-1".into(),
                },
            ),
            (
                replace(7, "x"),
                HelloError::Epoch {
                    field: "master_config_epoch",
                    value: "x".into(),
                },
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(Hello::parse(&payload), Err(want), "payload {payload:?}");
        }
    }

    #[test]
    fn errors_display_lowercase_on_one_line() {
        let e = Hello::parse("a,b").unwrap_err().to_string();
        assert_eq!(e, "hello has 2 fields, expected 8");
    }

    #[test]
    fn run_ids_are_40_lowercase_hex_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        for id in [&a, &b] {
            assert_eq!(id.len(), 40);
            assert!(id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
            assert!(is_run_id(id));
        }
        assert_ne!(a, b);
    }

    #[test]
    fn fallback_run_ids_differ() {
        let a = hex(&fallback_bytes());
        let b = hex(&fallback_bytes());
        assert_eq!(a.len(), 40);
        assert!(is_run_id(&a));
        assert_ne!(a, b);
    }
}

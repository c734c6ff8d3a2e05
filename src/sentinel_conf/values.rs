//! Checking one argument of a `sentinel.conf` directive: numbers within the
//! range the proxy accepts, ports, host names and IP addresses, `bind`'s list,
//! and a directive's argument count.
//!
//! Each check turns a bad value into an [`ImportError`] naming the line, so
//! the directives in `parse` read as "take this value or stop here". Ranges
//! are the proxy's own (`config`), not Sentinel's: a value the proxy would
//! reject at start-up is rejected here, where the line it came from is known.

use std::net::IpAddr;

use super::error::ImportError;
use super::lines::Line;
use super::shown;

/// A numeric directive and the range the proxy accepts for it.
pub(super) struct NumberKey {
    /// The directive's name, as errors show it.
    directive: &'static str,
    /// The directive's form, for an error about its argument count.
    pub(super) usage: &'static str,
    /// Smallest value the proxy accepts.
    min: u64,
    /// Largest value the proxy accepts.
    max: u64,
}

/// The proxy's largest duration (`config::millis`).
const MAX_MS: u64 = 24 * 3600 * 1000;

/// The proxy's largest group (`config::MAX_VOTERS`).
const MAX_VOTERS: u64 = 100;

/// `sentinel monitor`'s quorum: at least one voter, at most a whole group.
pub(super) const QUORUM: NumberKey = NumberKey {
    directive: "quorum",
    usage: "sentinel monitor <name> <host> <port> <quorum>",
    min: 1,
    max: MAX_VOTERS,
};

/// `sentinel down-after-milliseconds`: 10 ms up to the proxy's longest duration.
pub(super) const DOWN_AFTER: NumberKey = NumberKey {
    directive: "down-after-milliseconds",
    usage: "sentinel down-after-milliseconds <name> <milliseconds>",
    min: 10,
    max: MAX_MS,
};

/// `sentinel failover-timeout`: 100 ms up to the proxy's longest duration.
/// `sentinel master-reboot-down-after-period` (Valkey:
/// `primary-reboot-down-after-period`); 0 is off, as in Sentinel.
pub(super) const REBOOT_DOWN_AFTER: NumberKey = NumberKey {
    directive: "master-reboot-down-after-period",
    usage: "sentinel master-reboot-down-after-period <name> <milliseconds>",
    min: 0,
    max: MAX_MS,
};

pub(super) const FAILOVER_TIMEOUT: NumberKey = NumberKey {
    directive: "failover-timeout",
    usage: "sentinel failover-timeout <name> <milliseconds>",
    min: 100,
    max: MAX_MS,
};

/// `sentinel parallel-syncs`: at least one replica at a time.
pub(super) const PARALLEL_SYNCS: NumberKey = NumberKey {
    directive: "parallel-syncs",
    usage: "sentinel parallel-syncs <name> <replicas>",
    min: 1,
    max: MAX_VOTERS,
};

/// A number in `key`'s range, written with digits only (no sign, no spaces).
pub(super) fn parse_number(line: &Line, key: &NumberKey, text: &str) -> Result<u64, ImportError> {
    text.parse::<u64>()
        .ok()
        .filter(|n| text.bytes().all(|b| b.is_ascii_digit()) && (key.min..=key.max).contains(n))
        .ok_or_else(|| ImportError::Number {
            line: line.number,
            directive: key.directive,
            value: shown(text),
            min: key.min,
            max: key.max,
        })
}

/// A port from 1 to 65535.
pub(super) fn parse_port(line: &Line, text: &str) -> Result<u16, ImportError> {
    text.parse::<u16>()
        .ok()
        .filter(|&p| p != 0 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ImportError::Port {
            line: line.number,
            value: shown(text),
        })
}

/// `host:port` for a host name or IP address from the file.
pub(super) fn host_port(line: &Line, host: &str, port: u16) -> Result<String, ImportError> {
    check_host(line, host)?;
    Ok(bracketed(host, port))
}

/// A host name or IP address: not empty, no spaces or control characters.
fn check_host(line: &Line, host: &str) -> Result<(), ImportError> {
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(value_error(
            line,
            format!("'{}' is not a host name or ip address", shown(host)),
        ));
    }
    Ok(())
}

/// `host:port`, with brackets around an IPv6 address.
pub(super) fn bracketed(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `bind`'s addresses without their `-` (optional) marks; each must be an IP
/// address or a wildcard (`*`, `::*`).
pub(super) fn bind_addresses(line: &Line) -> Result<Vec<String>, ImportError> {
    let operands = &line.args[1..];
    if operands.is_empty() {
        return Err(ImportError::Arguments {
            line: line.number,
            usage: "bind <address> ...",
        });
    }
    let addrs: Vec<String> = operands
        .iter()
        .map(|a| a.trim_start_matches('-').to_owned())
        .collect();
    match addrs
        .iter()
        .find(|a| !matches!(a.as_str(), "*" | "::*") && a.parse::<IpAddr>().is_err())
    {
        Some(bad) => Err(value_error(
            line,
            format!("bind address '{}' is not an ip address", shown(bad)),
        )),
        None => Ok(addrs),
    }
}

/// An `announce-ip`: a host peers can connect to.
pub(super) fn announce_host(line: &Line, host: &str) -> Result<String, ImportError> {
    check_host(line, host)?;
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(value_error(
            line,
            format!("announce-ip {host} is not an address peers can connect to"),
        ));
    }
    Ok(host.to_owned())
}

/// The `N` operands of a directive, or an error naming its form.
pub(super) fn exactly<'a, const N: usize>(
    line: &Line,
    operands: &'a [String],
    usage: &'static str,
) -> Result<[&'a str; N], ImportError> {
    let refs: Vec<&str> = operands.iter().map(String::as_str).collect();
    refs.try_into().map_err(|_| ImportError::Arguments {
        line: line.number,
        usage,
    })
}

/// An [`ImportError::Value`] about `line`.
pub(super) fn value_error(line: &Line, problem: impl Into<String>) -> ImportError {
    ImportError::Value {
        line: line.number,
        problem: problem.into(),
    }
}

/// `tls-auth-clients`' value: `yes`, `no` or `optional`, lowercased.
pub(super) fn tls_auth_clients(line: &Line, text: &str) -> Result<String, ImportError> {
    let mode = text.to_ascii_lowercase();
    if matches!(mode.as_str(), "yes" | "no" | "optional") {
        Ok(mode)
    } else {
        Err(value_error(line, "tls-auth-clients is yes, no or optional"))
    }
}

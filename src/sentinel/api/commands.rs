//! The commands a Sentinel knows, as `COMMAND COUNT` and `COMMAND LIST` show
//! them: Redis 7.0's commands flagged for Sentinel mode, with their
//! subcommands as `parent|sub`. Clients (and Redis's own Sentinel test suite)
//! read these to see what the sentinel port speaks.
//!
//! The table also gives each command's arity as Redis counts it (the name
//! included; negative means "at least"), so wrong-arity errors name the
//! command as Redis does (`'sentinel|set'`).

use bytes::Bytes;

use crate::resp::value::OwnedFrame;

/// Top-level commands and their arity.
pub(super) const COMMANDS: &[(&str, i32)] = &[
    ("auth", -2),
    ("client", -2),
    ("hello", -1),
    ("ping", -1),
    ("psubscribe", -2),
    ("publish", 3),
    ("punsubscribe", -1),
    ("subscribe", -2),
    ("unsubscribe", -1),
    ("sentinel", -2),
    ("acl", -2),
    ("command", -1),
    ("info", -1),
    ("role", 1),
    ("shutdown", -1),
];

/// Subcommands, as `parent|sub`, and their arity.
pub(super) const SUBCOMMANDS: &[(&str, i32)] = &[
    ("client|caching", 3),
    ("client|getname", 2),
    ("client|getredir", 2),
    ("client|help", 2),
    ("client|id", 2),
    ("client|info", 2),
    ("client|kill", -3),
    ("client|list", -2),
    ("client|no-evict", 3),
    ("client|pause", -3),
    ("client|reply", 3),
    ("client|setname", 3),
    ("client|tracking", -3),
    ("client|trackinginfo", 2),
    ("client|unblock", -3),
    ("client|unpause", 2),
    ("sentinel|ckquorum", 3),
    ("sentinel|config", -3),
    ("sentinel|debug", -2),
    ("sentinel|failover", 3),
    ("sentinel|flushconfig", 2),
    ("sentinel|get-master-addr-by-name", 3),
    ("sentinel|help", 2),
    ("sentinel|info-cache", -3),
    ("sentinel|is-master-down-by-addr", 6),
    ("sentinel|master", 3),
    ("sentinel|masters", 2),
    ("sentinel|monitor", 6),
    ("sentinel|myid", 2),
    ("sentinel|pending-scripts", 2),
    ("sentinel|remove", 3),
    ("sentinel|replicas", 3),
    ("sentinel|reset", 3),
    ("sentinel|sentinels", 3),
    ("sentinel|set", -5),
    ("sentinel|simulate-failure", -3),
    ("sentinel|slaves", 3),
    ("acl|cat", -2),
    ("acl|deluser", -3),
    ("acl|dryrun", -4),
    ("acl|genpass", -2),
    ("acl|getuser", 3),
    ("acl|help", 2),
    ("acl|list", 2),
    ("acl|load", 2),
    ("acl|log", -2),
    ("acl|save", 2),
    ("acl|setuser", -3),
    ("acl|users", 2),
    ("acl|whoami", 2),
    ("command|count", 2),
    ("command|docs", -2),
    ("command|getkeys", -4),
    ("command|getkeysandflags", -4),
    ("command|help", 2),
    ("command|info", -2),
    ("command|list", -2),
];

/// `COMMAND COUNT` (the top-level commands) and `COMMAND LIST` (every
/// command and subcommand); any other form is Redis's unknown-subcommand
/// error.
pub(super) fn answer(rest: &[Bytes]) -> OwnedFrame {
    let sub = rest.first().map(|s| s.to_ascii_lowercase());
    match (sub.as_deref(), rest.len()) {
        (Some(b"count"), 1) => OwnedFrame::Integer(COMMANDS.len() as i64),
        (Some(b"list"), 1) => OwnedFrame::Array(
            COMMANDS
                .iter()
                .chain(SUBCOMMANDS)
                .map(|(name, _)| OwnedFrame::BulkString(name.as_bytes().to_vec()))
                .collect(),
        ),
        (Some(sub), _) => OwnedFrame::Error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            super::encode::shown(sub)
        )),
        (None, _) => OwnedFrame::Error("ERR unknown subcommand ''. Try COMMAND HELP.".to_owned()),
    }
}

/// Whether `words` (command, subcommand, arguments…) has the arity Redis
/// requires of the named subcommand; `None` when the table does not list it.
pub(super) fn arity_ok(command: &str, sub: &str, words: usize) -> Option<bool> {
    let full = format!("{command}|{sub}");
    let (_, arity) = SUBCOMMANDS.iter().find(|(name, _)| *name == full)?;
    let n = arity.unsigned_abs() as usize;
    Some(if *arity < 0 { words >= n } else { words == n })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7.0 Sentinel: 15 commands, 72 with their subcommands.
    #[test]
    fn the_table_has_sentinels_counts() {
        assert_eq!(
            answer(&[Bytes::from_static(b"count")]),
            OwnedFrame::Integer(15)
        );
        let OwnedFrame::Array(list) = answer(&[Bytes::from_static(b"LIST")]) else {
            panic!("COMMAND LIST is an array");
        };
        assert_eq!(list.len(), 72);
        assert_eq!(arity_ok("sentinel", "set", 4), Some(false));
        assert_eq!(arity_ok("sentinel", "set", 5), Some(true));
        assert_eq!(arity_ok("sentinel", "nope", 5), None);
    }
}

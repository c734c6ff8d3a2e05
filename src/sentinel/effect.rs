//! What the core asks of the links: jobs ([`Outgoing`]) for a node's or a
//! peer's connection, and the command lists it sends most.
//!
//! A leaf module: the core's parts queue these in `Core::outbox`, and the
//! runner hands them to the links.

use std::net::SocketAddr;

use super::link::Sent;

/// Which kind of link a message goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Redis server of the group (command link plus hello subscription).
    Node,
    /// A peer's sentinel port.
    Peer,
}

/// One job for a link.
#[derive(Debug)]
pub struct Outgoing {
    /// The node or peer.
    pub to: SocketAddr,
    /// Its kind.
    pub target: Target,
    /// What the job is.
    pub sent: Sent,
    /// The commands, sent in order.
    pub commands: Vec<Vec<String>>,
}

/// One command as owned strings.
pub fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// `REPLICAOF` (to `master`, or `NO ONE`) in a transaction with
/// `CONFIG REWRITE` and disconnection of normal clients, as Sentinel sends it:
/// clients of a node that changed role must reconnect and ask again.
pub fn replicaof(master: Option<SocketAddr>) -> Vec<Vec<String>> {
    let target = match master {
        Some(m) => vec![
            "REPLICAOF".to_owned(),
            m.ip().to_string(),
            m.port().to_string(),
        ],
        None => cmd(&["REPLICAOF", "NO", "ONE"]),
    };
    vec![
        cmd(&["MULTI"]),
        target,
        cmd(&["CONFIG", "REWRITE"]),
        cmd(&["CLIENT", "KILL", "TYPE", "normal"]),
        cmd(&["EXEC"]),
    ]
}

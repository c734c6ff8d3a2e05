//! Replies in Redis's own words, for the replies both ports make themselves
//! (the client port before a command reaches Redis, the sentinel port always):
//! one table, so the two ports can never word the same refusal differently.
//!
//! Each is a complete RESP frame, byte for byte what redis-server 7 sends.
//! Replies only one port makes (`-MASTERDOWN` while commands are held, the
//! sentinel core being unavailable) stay with that port.

/// `+OK`.
pub const OK: &[u8] = b"+OK\r\n";
/// `PING` outside pub/sub.
pub const PONG: &[u8] = b"+PONG\r\n";
/// Any command but AUTH/HELLO/QUIT/RESET before authenticating.
pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
/// HELLO without AUTH before authenticating.
pub const NOAUTH_HELLO: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
/// A wrong user or password.
pub const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
/// AUTH with the wrong number of arguments.
pub const AUTH_ARITY: &[u8] = b"-ERR wrong number of arguments for 'auth' command\r\n";
/// `AUTH <password>` when no password is configured.
pub const AUTH_UNCONFIGURED: &[u8] = b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n";
/// A malformed option list (`HELLO ... AUTH` without a user and password).
pub const SYNTAX: &[u8] = b"-ERR syntax error\r\n";
/// `HELLO <n>` for a version that never existed.
pub const NOPROTO: &[u8] = b"-NOPROTO unsupported protocol version\r\n";
/// `HELLO <not a number>`.
pub const BAD_PROTOCOL: &[u8] = b"-ERR Protocol version is not an integer or out of range\r\n";
/// `CLIENT SETNAME` with a space or control character.
pub const BAD_NAME: &[u8] =
    b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
/// A connection over the client limit (`maxclients`).
pub const MAX_CLIENTS: &[u8] = b"-ERR max number of clients reached\r\n";

//! Command classification: what kind of command a name denotes.
//!
//! Two questions are answered here, both from the command name alone:
//! * [`Special`]: does the command change the session's connection state (AUTH,
//!   SELECT, MULTI, SUBSCRIBE, …)? The session tracks those to replay or refuse
//!   them on a new backend. This is fixed by the Redis protocol, so it is a match.
//! * [`Class`]: read, write, admin, pub/sub, blocking, transaction or other, from a
//!   [`CommandTable`] built from the server's own `COMMAND` reply (so module
//!   commands and new Redis versions are classified right), with a built-in
//!   fallback for when the server cannot be asked.
//!
//! Names are compared case-insensitively after copying them to a stack buffer;
//! no allocation happens per command, and the table hashes names with FNV-1a
//! rather than SipHash (every forwarded command is looked up; the keys are a
//! fixed set of short names, so flooding resistance buys nothing here).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use redis_protocol::resp2::types::OwnedFrame;

/// The broad kind of a command, for routing decisions and accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Reads data (`readonly` flag).
    Read,
    /// Modifies data (`write` flag).
    Write,
    /// Server administration (`admin` flag): CONFIG, DEBUG, SHUTDOWN, …
    Admin,
    /// Publish/subscribe (`pubsub` flag).
    PubSub,
    /// May block the connection (`blocking` flag): BLPOP, WAIT, …
    Blocking,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    Transaction,
    /// Everything else: connection commands, PING, unknown names.
    Other,
}

impl Class {
    /// Every class, in a fixed order (for metrics and tables).
    pub const ALL: [Class; 7] = [
        Class::Read,
        Class::Write,
        Class::Admin,
        Class::PubSub,
        Class::Blocking,
        Class::Transaction,
        Class::Other,
    ];

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, as used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Admin => "admin",
            Class::PubSub => "pubsub",
            Class::Blocking => "blocking",
            Class::Transaction => "transaction",
            Class::Other => "other",
        }
    }
}

/// What is known about one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// Its class.
    pub class: Class,
    /// Whether it may modify data (a blocking BLMOVE is also a write).
    pub write: bool,
    /// Whether it may travel over a shared backend connection (see
    /// `may_share`).
    pub shareable: bool,
}

impl CommandInfo {
    fn new(name: &[u8], class: Class, write: bool) -> CommandInfo {
        CommandInfo {
            class,
            write,
            shareable: may_share(name, class),
        }
    }
}

/// Names Redis does not know answer an error, which any connection may carry.
const UNKNOWN: CommandInfo = CommandInfo {
    class: Class::Other,
    write: false,
    shareable: true,
};

/// Whether a command (lower-case name) may travel over a connection shared
/// by many clients: not one that uses or changes connection state
/// ([`special`]), could block the connection or administers the server; not
/// WAIT/WAITAOF (they count the connection's own writes); not a container
/// whose subcommands include such commands while `COMMAND` gives the
/// container itself no flags (SCRIPT DEBUG takes the connection over).
fn may_share(name: &[u8], class: Class) -> bool {
    !matches!(class, Class::Blocking | Class::Transaction | Class::Admin)
        && special(name) == Special::None
        && !UNSHARED.split_whitespace().any(|n| n.as_bytes() == name)
}

/// Commands never shared that neither their class nor [`special`] tells.
const UNSHARED: &str = "wait waitaof script config acl module slowlog latency memory cluster \
    function";

/// Longest command name looked up; longer names are unknown commands.
const MAX_NAME: usize = 32;

/// Command name → [`CommandInfo`], lower-case keys.
#[derive(Debug, Clone)]
pub struct CommandTable {
    commands: Names,
}

/// The table's map: short ASCII keys hashed with [`Fnv1a`].
type Names = HashMap<Box<[u8]>, CommandInfo, BuildHasherDefault<Fnv1a>>;

/// The 64-bit FNV-1a hash: a few nanoseconds for a command name, less than
/// SipHash's setup alone (every forwarded command is looked up).
#[derive(Debug, Clone, Copy)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl CommandTable {
    /// The built-in table used until (or unless) the server's `COMMAND` reply is read.
    pub fn builtin() -> Self {
        let mut commands = Names::default();
        let groups: [(Class, bool, &str); 6] = [
            (Class::Read, false, BUILTIN_READ),
            (Class::Write, true, BUILTIN_WRITE),
            (Class::Admin, false, BUILTIN_ADMIN),
            (Class::PubSub, false, BUILTIN_PUBSUB),
            (Class::Blocking, false, BUILTIN_BLOCKING),
            (Class::Transaction, false, BUILTIN_TRANSACTION),
        ];
        for (class, write, names) in groups {
            for name in names.split_whitespace() {
                let info = CommandInfo::new(name.as_bytes(), class, write);
                commands.insert(name.as_bytes().into(), info);
            }
        }
        for name in BUILTIN_BLOCKING_WRITE.split_whitespace() {
            let info = CommandInfo::new(name.as_bytes(), Class::Blocking, true);
            commands.insert(name.as_bytes().into(), info);
        }
        // Known here so that they are never shared, even before (or
        // without) the server's own table.
        for name in BUILTIN_CONNECTION
            .split_whitespace()
            .chain(UNSHARED.split_whitespace())
        {
            let info = CommandInfo::new(name.as_bytes(), Class::Other, false);
            commands.entry(name.as_bytes().into()).or_insert(info);
        }
        Self { commands }
    }

    /// Builds the table from a `COMMAND` reply: an array with one entry per
    /// command, each `[name, arity, [flags…], …]`. Returns `None` if the reply
    /// does not have that shape. Transaction commands keep their own class.
    pub fn from_command_reply(reply: &OwnedFrame) -> Option<Self> {
        let OwnedFrame::Array(entries) = reply else {
            return None;
        };
        let mut commands = Names::with_capacity_and_hasher(entries.len(), Default::default());
        for entry in entries {
            let OwnedFrame::Array(fields) = entry else {
                return None;
            };
            let (Some(OwnedFrame::BulkString(name)), Some(OwnedFrame::Array(flags))) =
                (fields.first(), fields.get(2))
            else {
                return None;
            };
            let has = |flag: &str| {
                flags.iter().any(|f| match f {
                    OwnedFrame::SimpleString(s) | OwnedFrame::BulkString(s) => {
                        s.eq_ignore_ascii_case(flag.as_bytes())
                    }
                    _ => false,
                })
            };
            let name = name.to_ascii_lowercase();
            let write = has("write");
            let class = if BUILTIN_TRANSACTION
                .split_whitespace()
                .any(|t| t.as_bytes() == name.as_slice())
            {
                Class::Transaction
            } else if has("pubsub") {
                Class::PubSub
            } else if has("blocking") {
                Class::Blocking
            } else if has("admin") {
                Class::Admin
            } else if write {
                Class::Write
            } else if has("readonly") {
                Class::Read
            } else {
                Class::Other
            };
            let info = CommandInfo::new(&name, class, write);
            commands.insert(name.into_boxed_slice(), info);
        }
        Some(Self { commands })
    }

    /// Classifies a command name (any case). Unknown names are [`Class::Other`].
    pub fn info(&self, name: &[u8]) -> CommandInfo {
        let mut lower = [0u8; MAX_NAME];
        let Some(slot) = lower.get_mut(..name.len()) else {
            return UNKNOWN;
        };
        slot.copy_from_slice(name);
        slot.make_ascii_lowercase();
        self.commands.get(&*slot).copied().unwrap_or(UNKNOWN)
    }

    /// Number of commands known.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

impl Default for CommandTable {
    fn default() -> Self {
        Self::builtin()
    }
}

/// The pub/sub families: each has its own subscribe and unsubscribe commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// SUBSCRIBE / UNSUBSCRIBE: channels.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE: patterns.
    Pattern,
    /// SSUBSCRIBE / SUNSUBSCRIBE: shard channels.
    Shard,
}

impl Family {
    /// The command that subscribes in this family.
    pub fn subscribe_command(self) -> &'static [u8] {
        match self {
            Family::Channel => b"SUBSCRIBE",
            Family::Pattern => b"PSUBSCRIBE",
            Family::Shard => b"SSUBSCRIBE",
        }
    }
}

/// Commands whose effect on the connection the session must know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// An ordinary command.
    None,
    /// AUTH: changes the connection's user.
    Auth,
    /// HELLO: protocol version, optionally AUTH and SETNAME.
    Hello,
    /// SELECT: the current database.
    Select,
    /// CLIENT …: SETNAME, TRACKING, REPLY and more, by subcommand.
    Client,
    /// READONLY / READWRITE (cluster replica reads).
    ReadOnly,
    /// MULTI: opens a transaction.
    Multi,
    /// EXEC or DISCARD: closes a transaction (and clears WATCH).
    ExecOrDiscard,
    /// WATCH: pins the connection until EXEC/DISCARD/UNWATCH.
    Watch,
    /// UNWATCH.
    Unwatch,
    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE.
    Subscribe(Family),
    /// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE.
    Unsubscribe(Family),
    /// MONITOR: the connection turns into a feed.
    Monitor,
    /// RESET: back to a fresh connection's state.
    Reset,
    /// QUIT: reply, then the server closes the connection.
    Quit,
    /// SYNC / PSYNC: the connection becomes a replication stream (an RDB
    /// payload without a trailing CRLF, then the master's command stream).
    Sync,
}

/// Recognises the commands that change connection state, any case.
pub fn special(name: &[u8]) -> Special {
    let mut lower = [0u8; 12];
    let Some(slot) = lower.get_mut(..name.len()) else {
        return Special::None;
    };
    slot.copy_from_slice(name);
    slot.make_ascii_lowercase();
    match &*slot {
        b"auth" => Special::Auth,
        b"hello" => Special::Hello,
        b"select" => Special::Select,
        b"client" => Special::Client,
        b"readonly" | b"readwrite" => Special::ReadOnly,
        b"multi" => Special::Multi,
        b"exec" | b"discard" => Special::ExecOrDiscard,
        b"watch" => Special::Watch,
        b"unwatch" => Special::Unwatch,
        b"subscribe" => Special::Subscribe(Family::Channel),
        b"psubscribe" => Special::Subscribe(Family::Pattern),
        b"ssubscribe" => Special::Subscribe(Family::Shard),
        b"unsubscribe" => Special::Unsubscribe(Family::Channel),
        b"punsubscribe" => Special::Unsubscribe(Family::Pattern),
        b"sunsubscribe" => Special::Unsubscribe(Family::Shard),
        b"monitor" => Special::Monitor,
        b"reset" => Special::Reset,
        b"quit" => Special::Quit,
        b"sync" | b"psync" => Special::Sync,
        _ => Special::None,
    }
}

const BUILTIN_READ: &str = "get mget getrange strlen exists type ttl pttl expiretime pexpiretime keys scan \
    randomkey dbsize hget hmget hgetall hkeys hvals hlen hexists hstrlen hscan hrandfield lrange llen lindex \
    lpos smembers sismember smismember scard srandmember sinter sunion sdiff sintercard sscan zrange zrangebyscore \
    zrevrange zrevrangebyscore zrangebylex zrevrangebylex zscore zmscore zrank zrevrank zcard zcount zlexcount \
    zscan zrandmember zinter zunion zdiff zintercard xrange xrevrange xlen xinfo xpending getbit bitcount bitpos \
    bitfield_ro pfcount geopos geodist georadius_ro georadiusbymember_ro geohash geosearch dump object memory \
    substr lcs touch sort_ro eval_ro evalsha_ro fcall_ro";

const BUILTIN_WRITE: &str = "set setnx setex psetex mset msetnx getset getdel getex append incr decr incrby \
    decrby incrbyfloat setrange del unlink expire pexpire expireat pexpireat persist rename renamenx move copy \
    restore hset hsetnx hmset hdel hincrby hincrbyfloat lpush rpush lpushx rpushx lpop rpop lset linsert lrem \
    ltrim rpoplpush lmove lmpop sadd srem spop smove sinterstore sunionstore sdiffstore zadd zincrby zrem \
    zremrangebyscore zremrangebyrank zremrangebylex zpopmin zpopmax zmpop zunionstore zinterstore zdiffstore \
    zrangestore xadd xdel xtrim xgroup xack xclaim xautoclaim xsetid setbit bitfield bitop pfadd pfmerge geoadd \
    georadius georadiusbymember geosearchstore sort flushdb flushall eval evalsha fcall";

const BUILTIN_ADMIN: &str = "config debug shutdown save bgsave bgrewriteaof slaveof replicaof failover \
    sync psync acl slowlog latency module cluster lastsave swapdb";

const BUILTIN_PUBSUB: &str = "subscribe unsubscribe psubscribe punsubscribe ssubscribe sunsubscribe publish \
    spublish pubsub";

const BUILTIN_BLOCKING: &str = "wait waitaof xread";

const BUILTIN_BLOCKING_WRITE: &str =
    "blpop brpop brpoplpush blmove blmpop bzpopmin bzpopmax bzmpop xreadgroup";

const BUILTIN_TRANSACTION: &str = "multi exec discard watch unwatch";

const BUILTIN_CONNECTION: &str = "auth hello select client readonly readwrite monitor reset quit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let table = CommandTable::builtin();
        assert_eq!(table.info(b"GET").class, Class::Read);
        assert_eq!(table.info(b"sEt").class, Class::Write);
        assert!(table.info(b"BLMOVE").write);
        assert_eq!(table.info(b"BLPOP").class, Class::Blocking);
        assert_eq!(table.info(b"no-such-command").class, Class::Other);
        assert_eq!(table.info(&[b'x'; 100]).class, Class::Other);
        assert_eq!(special(b"Subscribe"), Special::Subscribe(Family::Channel));
        assert_eq!(special(b"QUIT"), Special::Quit);
        assert_eq!(special(b"psync"), Special::Sync);
        assert_eq!(special(b"get"), Special::None);
    }

    #[test]
    fn table_from_command_reply() {
        let entry = |name: &str, flags: &[&str]| {
            OwnedFrame::Array(vec![
                OwnedFrame::BulkString(name.into()),
                OwnedFrame::Integer(-2),
                OwnedFrame::Array(
                    flags
                        .iter()
                        .map(|f| OwnedFrame::SimpleString((*f).into()))
                        .collect(),
                ),
            ])
        };
        let reply = OwnedFrame::Array(vec![
            entry("get", &["readonly", "fast"]),
            entry("blpop", &["write", "blocking"]),
            entry("mymodule.put", &["write"]),
            entry("multi", &["noscript", "fast"]),
        ]);
        let table = CommandTable::from_command_reply(&reply).expect("well-formed");
        assert_eq!(table.info(b"GET").class, Class::Read);
        assert_eq!(table.info(b"blpop").class, Class::Blocking);
        assert!(table.info(b"blpop").write);
        assert_eq!(table.info(b"MYMODULE.PUT").class, Class::Write);
        assert_eq!(table.info(b"multi").class, Class::Transaction);
        assert!(CommandTable::from_command_reply(&OwnedFrame::Integer(1)).is_none());
    }

    /// Which commands may share a backend connection, decided once per
    /// table entry: the same answer from the built-in table and from a
    /// server's `COMMAND` reply (where containers such as SCRIPT carry no
    /// flags).
    #[test]
    fn shareable_commands() {
        let builtin = CommandTable::builtin();
        let no_flags = |name: &str| {
            OwnedFrame::Array(vec![
                OwnedFrame::BulkString(name.into()),
                OwnedFrame::Integer(-2),
                OwnedFrame::Array(Vec::new()),
            ])
        };
        let names = [
            "get", "set", "ping", "client", "script", "config", "wait", "select",
        ];
        let reply = OwnedFrame::Array(names.iter().map(|n| no_flags(n)).collect());
        let served = CommandTable::from_command_reply(&reply).expect("well-formed");
        for table in [&builtin, &served] {
            for shared in ["GET", "set", "PING", "no-such-command"] {
                assert!(table.info(shared.as_bytes()).shareable, "{shared}");
            }
            for own in ["CLIENT", "script", "Config", "WAIT", "select"] {
                assert!(!table.info(own.as_bytes()).shareable, "{own}");
            }
        }
        for own in [
            "blpop",
            "multi",
            "subscribe",
            "acl",
            "waitaof",
            "monitor",
            "hello",
        ] {
            assert!(!builtin.info(own.as_bytes()).shareable, "{own}");
        }
    }
}

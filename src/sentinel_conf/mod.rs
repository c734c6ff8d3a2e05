//! `sentinel.conf`: a Redis Sentinel's config file, read into a typed
//! description and turned into this proxy's TOML config
//! (`import-sentinel-conf`).
//!
//! A `sentinel.conf` is the file a `redis-sentinel` process starts from: one
//! directive per line, its arguments split and quoted as Redis splits inline
//! commands. It names the group the Sentinel monitors (`sentinel monitor`),
//! that group's timings, credentials and scripts, and the Sentinel's own port
//! and announce address. Sentinel also rewrites the file while it runs and
//! appends its state there: its run id (`myid`), its epochs, and the replicas
//! and other Sentinels it has met (`known-replica`, `known-sentinel`).
//!
//! The proxy's built-in sentinel core takes the place of one Redis Sentinel.
//! [`convert`] reads that Sentinel's file (Redis 7.0 syntax, including the
//! lines Sentinel appends when it rewrites it) and writes the settings of the
//! one group it monitors, each key with a comment naming the line it came from.
//! The result is an [`Imported`]: the TOML text and the notes about what was
//! dropped or changed; a file that cannot be read is an [`ImportError`].
//!
//! # What is converted
//! * `sentinel monitor` → `master_name`, `master`, `quorum` (a host name is
//!   kept as given; the proxy resolves it when it loads the file).
//! * `down-after-milliseconds`, `failover-timeout`, `parallel-syncs`; when
//!   absent, Sentinel's defaults are written, since the proxy's own differ.
//! * `auth-user`, `auth-pass`, `notification-script`, `client-reconfig-script`.
//! * `port` and `bind` → `sentinel_listen`; `announce-ip`/`announce-port` →
//!   `announce`.
//! * `known-sentinel` → `peer` (the group's other voters); `known-replica`
//!   only as a comment (the proxy finds replicas from the master's `INFO`).
//! * `tls-port` → `tls_sentinel_listen` (on `bind`'s address), with
//!   `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file` and
//!   `tls-auth-clients`; `tls-replication yes` is noted, since the proxy
//!   connects to Redis and to peers without TLS.
//!
//! # What is not
//! State (`myid`, epochs), process and logging settings, ACL users, the
//! Sentinel port's `requirepass`, `sentinel-user`/`sentinel-pass`, the TLS
//! lines the proxy has no setting for (cipher lists, client certificates)
//! and anything unknown become notes, listed in [`Imported::notes`] and as
//! comments at the end of the TOML. `data_dir` and `listen` have no
//! counterpart in `sentinel.conf`; they are written commented out.
//!
//! # Layout
//! Reading a file does not depend on writing the proxy's config, so the
//! crate can read a `sentinel.conf` on its own through `parse`, which returns
//! the typed description (`parse::SentinelConf`).
//! * `lines`: the text split into directive lines and their arguments.
//! * `values`: one argument checked: numbers, ports, host names, `bind`.
//! * `parse`: the directives read into the description: the one group, its
//!   options, the known Sentinels and replicas, and notes on what is dropped.
//! * `notes`: the notes collected along the way, and the reasons given for
//!   each directive the proxy does not carry over.
//! * `map`: the description mapped onto the proxy's settings, each with the
//!   comment that says where it came from.
//! * `render`: those settings written out as TOML text.
//! * `error`: why a file cannot be read.
//!
//! # Invariants
//! * Pure: no files, sockets or name lookups.
//! * Exactly one group: zero or several `sentinel monitor` lines, or a
//!   directive naming another group, are errors.
//! * The TOML parses as [`crate::config::Settings`] and passes
//!   [`crate::config::Config::from_settings`] as long as its host names resolve
//!   and its script paths are executable files on the proxy's host.
//! * Secrets appear only as TOML values, never in notes or errors, and
//!   everything taken from the file into a comment, note or error is escaped
//!   onto one line.

mod error;
mod lines;
mod map;
mod notes;
pub(crate) mod parse;
mod render;
pub mod standin;
mod values;

#[cfg(test)]
mod tests;

pub use error::{ImportError, QuoteError};
pub(crate) use parse::parse;

/// The result of a conversion: the TOML text and notes about what was not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The proxy's config file, notes included as comments at its end.
    pub toml: String,
    /// What was not carried over or needs attention, one line each.
    pub notes: Vec<String>,
}

/// Converts the text of a `sentinel.conf` into the proxy's TOML config.
pub fn convert(sentinel_conf: &str) -> Result<Imported, ImportError> {
    let plan = parse(sentinel_conf)?.plan();
    let notes = plan.notes.render();
    Ok(Imported {
        toml: render::render(&plan, &notes),
        notes,
    })
}

// ---------------------------------------------------------------------------
// Text from the file, shared by errors, notes and comments

/// Text from the file, escaped onto one line for a comment, note or error.
fn shown(text: &str) -> String {
    text.escape_debug().to_string()
}

/// Line numbers as `1, 2, 3`, for an error, a note or a comment.
fn join_numbers(numbers: &[usize]) -> String {
    let list: Vec<String> = numbers.iter().map(usize::to_string).collect();
    list.join(", ")
}

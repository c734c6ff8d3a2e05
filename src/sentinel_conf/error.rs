//! Why a `sentinel.conf` cannot be read: [`QuoteError`] for one line's
//! quoting, [`ImportError`] for the file as a whole.
//!
//! Every error displays as one lowercase line that names the line number (or
//! numbers) and what is wrong, so the `import-sentinel-conf` subcommand can
//! print it after the file's name. Values taken from the file are escaped
//! onto that line, and secrets are never part of it.

use super::join_numbers;

/// Why one line of `sentinel.conf` cannot be split into arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// A quoted argument is not closed on its line.
    #[error("unbalanced quotes")]
    Unbalanced,
    /// A closing quote is followed by something other than a space.
    #[error("a closing quote must be followed by a space or the end of the line")]
    Glued,
    /// An escape such as `\xff` produced bytes that are not UTF-8.
    #[error("a quoted argument is not valid utf-8")]
    NotUtf8,
}

/// Why `sentinel.conf` cannot be converted. Displays as one lowercase line
/// naming the line number (or numbers) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// A line's quoting is malformed.
    #[error("line {line}: {problem}")]
    Quotes {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the quotes.
        problem: QuoteError,
    },
    /// No `sentinel monitor` line: nothing to front.
    #[error(
        "no `sentinel monitor <name> <host> <port> <quorum>` line: the proxy needs the group it fronts"
    )]
    NoMonitor,
    /// Several `sentinel monitor` lines; the proxy fronts one group.
    #[error(
        "lines {}: several `sentinel monitor` lines, but the proxy fronts one group: keep one per converted file",
        join_numbers(.lines)
    )]
    SeveralMonitors {
        /// The monitor lines.
        lines: Vec<usize>,
    },
    /// A directive has too few or too many arguments.
    #[error("line {line}: wrong number of arguments, expected `{usage}`")]
    Arguments {
        /// 1-based line number.
        line: usize,
        /// The directive's form.
        usage: &'static str,
    },
    /// A directive names a group other than the monitored one.
    #[error(
        "line {line}: `sentinel {directive}` is for master '{name}', but the monitored group is '{monitored}'"
    )]
    OtherMaster {
        /// 1-based line number.
        line: usize,
        /// The directive, lowercase.
        directive: String,
        /// The group it names (escaped onto one line).
        name: String,
        /// The group of the `sentinel monitor` line.
        monitored: String,
    },
    /// A port is not a number from 1 to 65535.
    #[error("line {line}: bad port '{value}' (1 to 65535)")]
    Port {
        /// 1-based line number.
        line: usize,
        /// The value as written (escaped onto one line).
        value: String,
    },
    /// A number is malformed or outside what the proxy accepts.
    #[error("line {line}: bad number '{value}' for {directive} ({min} to {max})")]
    Number {
        /// 1-based line number.
        line: usize,
        /// The directive.
        directive: &'static str,
        /// The value as written (escaped onto one line).
        value: String,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// Some other value the proxy cannot use.
    #[error("line {line}: {problem}")]
    Value {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

//! The first step of reading a `sentinel.conf`: its text split into directive
//! lines, each with its 1-based number and its arguments.
//!
//! Blank lines, `#` comments and lines without words are skipped. Arguments are split as Redis
//! splits a config line (`sdssplitargs`), which is the same splitting as for
//! inline commands, so the tokenizer itself is shared with
//! [`crate::resp::inline`]; this file maps its errors onto [`QuoteError`],
//! insists on UTF-8, and knows how to read a line's directive name.

use super::error::{ImportError, QuoteError};
use crate::resp::inline::{self, SplitError};

/// One directive line: its number and its arguments, quotes resolved.
pub(super) struct Line {
    /// 1-based line number in the file.
    pub(super) number: usize,
    /// The arguments as written, quotes resolved; the directive comes first.
    pub(super) args: Vec<String>,
}

/// Valkey's names for Sentinel directives, with Redis's name for each.
const VALKEY_NAMES: &[(&str, &str)] = &[(
    "primary-reboot-down-after-period",
    "master-reboot-down-after-period",
)];

impl Line {
    /// The first argument, lowercase (directive names are case-insensitive).
    pub(super) fn directive(&self) -> String {
        self.args
            .first()
            .map_or(String::new(), |a| a.to_ascii_lowercase())
    }

    /// The second argument, lowercase: the `sentinel` sub-directive.
    ///
    /// Valkey's names come back as Redis's (`primary-reboot-down-after-period`
    /// is `master-reboot-down-after-period`), so both spellings are one
    /// directive everywhere, repeats included.
    pub(super) fn sub_directive(&self) -> Option<String> {
        let sub = self.args.get(1)?.to_ascii_lowercase();
        let redis = VALKEY_NAMES
            .iter()
            .find(|(valkey, _)| *valkey == sub)
            .map(|(_, redis)| (*redis).to_owned());
        Some(redis.unwrap_or(sub))
    }

    /// Whether this is a `sentinel monitor` line (in any letter case).
    pub(super) fn is_monitor(&self) -> bool {
        self.directive() == "sentinel" && self.sub_directive().as_deref() == Some("monitor")
    }
}

/// Splits the file into directive lines, skipping blanks and `#` comments.
pub(super) fn parse_lines(text: &str) -> Result<Vec<Line>, ImportError> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let args = split_args(trimmed).map_err(|problem| ImportError::Quotes {
            line: number,
            problem,
        })?;
        // A line that splits into no words (it starts with a NUL byte, where
        // the splitting stops) is skipped, as Redis skips it.
        if args.is_empty() {
            continue;
        }
        lines.push(Line { number, args });
    }
    Ok(lines)
}

/// Splits one config line into arguments as Redis does (`sdssplitargs`, the
/// same splitting as for inline commands: see [`crate::resp::inline`]).
pub(super) fn split_args(line: &str) -> Result<Vec<String>, QuoteError> {
    inline::words(line.as_bytes())
        .map(|word| {
            let word = word.map_err(|e| match e {
                SplitError::Unbalanced => QuoteError::Unbalanced,
                SplitError::Glued => QuoteError::Glued,
            })?;
            String::from_utf8(word.bytes.into_owned()).map_err(|_| QuoteError::NotUtf8)
        })
        .collect()
}

//! Inline commands split into words exactly as Redis splits them
//! (`sdssplitargs`), so the proxy sees the command Redis will run.
//!
//! Words are separated by blanks. A word may be quoted, in whole or from the
//! middle on (`a"b c"` is `ab c`): inside double quotes `\n \r \t \b \a`,
//! `\xHH` and `\<any>` are escapes; inside single quotes only `\'` is. A
//! closing quote must be followed by a blank or the end of the line, and an
//! unclosed quote makes the whole line a protocol error, as in Redis.
//!
//! Plain words are borrowed from the line; only words with quotes are copied.

use std::borrow::Cow;

use super::ProtocolError;

/// Why a line cannot be split. Redis answers both with `unbalanced quotes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// A quote is not closed before the end of the line.
    Unbalanced,
    /// A closing quote is followed by something other than a blank.
    Glued,
}

impl From<SplitError> for ProtocolError {
    fn from(_: SplitError) -> ProtocolError {
        ProtocolError::UnbalancedQuotes
    }
}

/// C's `isspace`, which Redis uses to skip blanks between words (`\v` and
/// `\f` included, unlike `u8::is_ascii_whitespace`).
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The bytes that end an unquoted word.
fn ends_word(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t' | 0)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Where the splitter is inside a word.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// The words of one inline line (without its line end), each decoded.
pub struct Words<'a> {
    line: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Splits `line` (an inline command without its `\r\n` or `\n`). Like the C
/// string Redis splits, the line ends at a NUL byte.
pub fn words(line: &[u8]) -> Words<'_> {
    let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
    Words {
        line: &line[..end],
        pos: 0,
        failed: false,
    }
}

/// One word: its bytes as Redis will see them, and where it lies in the line.
pub struct Word<'a> {
    /// The decoded word.
    pub bytes: Cow<'a, [u8]>,
    /// The raw span in the line, quotes included.
    pub span: std::ops::Range<usize>,
}

impl<'a> Iterator for Words<'a> {
    type Item = Result<Word<'a>, SplitError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let line = self.line;
        let mut p = self.pos;
        while line.get(p).is_some_and(|&b| is_c_space(b)) {
            p += 1;
        }
        if p >= line.len() {
            self.pos = p;
            return None;
        }
        let start = p;
        // Becomes `Some` at the first quote: from there the word is copied.
        let mut copied: Option<Vec<u8>> = None;
        let mut quote = Quote::None;
        let end = loop {
            let byte = line.get(p).copied();
            let mut done = false;
            match (quote, byte) {
                (Quote::Double, Some(b'\\')) => {
                    let escaped = line.get(p + 1).copied();
                    let hex = (line.get(p + 2).copied().and_then(hex_value))
                        .zip(line.get(p + 3).copied().and_then(hex_value));
                    let out = copied.get_or_insert_with(Vec::new);
                    match (escaped, hex) {
                        (Some(b'x'), Some((high, low))) => {
                            out.push(high * 16 + low);
                            p += 3;
                        }
                        (Some(c), _) => {
                            out.push(match c {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                            p += 1;
                        }
                        // A backslash ending the line is itself; the missing
                        // quote is the error.
                        (None, _) => out.push(b'\\'),
                    }
                }
                (Quote::Single, Some(b'\\')) if line.get(p + 1) == Some(&b'\'') => {
                    copied.get_or_insert_with(Vec::new).push(b'\'');
                    p += 1;
                }
                (Quote::Double, Some(b'"')) | (Quote::Single, Some(b'\'')) => {
                    if line.get(p + 1).is_some_and(|&b| !is_c_space(b)) {
                        self.failed = true;
                        return Some(Err(SplitError::Glued));
                    }
                    done = true;
                }
                (Quote::Double | Quote::Single, None) => {
                    self.failed = true;
                    return Some(Err(SplitError::Unbalanced));
                }
                (Quote::None, None) => break p,
                (Quote::None, Some(b)) if ends_word(b) => done = true,
                (Quote::None, Some(open @ (b'"' | b'\''))) => {
                    copied.get_or_insert_with(|| line[start..p].to_vec());
                    quote = if open == b'"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    };
                }
                (_, Some(b)) => {
                    if let Some(out) = copied.as_mut() {
                        out.push(b);
                    }
                }
            }
            let at = p;
            if p < line.len() {
                p += 1;
            }
            if done {
                // A word ends before its blank, or after its closing quote.
                break if quote == Quote::None { at } else { at + 1 };
            }
        };
        self.pos = p;
        let bytes = match copied {
            Some(out) => Cow::Owned(out),
            None => Cow::Borrowed(&line[start..end]),
        };
        Some(Ok(Word {
            bytes,
            span: start..end,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
        words(line)
            .map(|w| w.map(|w| w.bytes.into_owned()))
            .collect()
    }

    fn ok(words: &[&[u8]]) -> Result<Vec<Vec<u8>>, SplitError> {
        Ok(words.iter().map(|w| w.to_vec()).collect())
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(split(b"SET k  v"), ok(&[b"SET", b"k", b"v"]));
        assert_eq!(split(b"\x0b\x0cPING\t x "), ok(&[b"PING", b"x"]));
        assert_eq!(
            split(b"a\x0bb"),
            ok(&[b"a\x0bb"]),
            "\\v inside a word is kept"
        );
        assert_eq!(split(b"   "), ok(&[]));
    }

    #[test]
    fn quotes_and_escapes_as_redis_reads_them() {
        assert_eq!(split(br#"SET "a b" 'c d'"#), ok(&[b"SET", b"a b", b"c d"]));
        assert_eq!(
            split(br#""\x41\n\r\t\b\a\q\"""#),
            ok(&[b"A\n\r\t\x08\x07q\""])
        );
        assert_eq!(split(br#""\x4""#), ok(&[b"x4"]), "not two hex digits");
        assert_eq!(split(br#"'it\'s' 'a\b'"#), ok(&[b"it's", b"a\\b"]));
        assert_eq!(split(br#"ab"c d" e"#), ok(&[b"abc d", b"e"]));
        assert_eq!(split(br#""" ''"#), ok(&[b"", b""]));
        assert_eq!(split(b"\"a\"\x0bb"), ok(&[b"a", b"b"]));
    }

    #[test]
    fn unbalanced_quotes_are_an_error() {
        for (line, error) in [
            (&br#""unbalanced"#[..], SplitError::Unbalanced),
            (br#"ECHO 'a"#, SplitError::Unbalanced),
            (br#"ECHO "a\"#, SplitError::Unbalanced),
            (br#"ECHO "a"b"#, SplitError::Glued),
            (br#"ECHO 'a'b"#, SplitError::Glued),
        ] {
            assert_eq!(split(line), Err(error), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn plain_words_are_borrowed_with_their_spans() {
        let line = b"GET  key";
        let found: Vec<_> = words(line).map(|w| w.expect("valid")).collect();
        assert!(matches!(found[1].bytes, Cow::Borrowed(b"key")));
        assert_eq!(found[1].span, 5..8);
        let quoted: Vec<_> = words(br#"GET "k""#).map(|w| w.expect("valid")).collect();
        assert_eq!(quoted[1].span, 4..7);
    }
}

//! Redis-style glob matching for `PSUBSCRIBE` patterns, in the syntax Redis's
//! pub/sub patterns use, byte by byte and case-sensitive:
//! * `*` matches any run of bytes, the empty one included;
//! * `?` matches any one byte;
//! * `[...]` matches one byte of a set: `^` first negates it, `a-z` is a
//!   range (either way round), a `-` last is literal, an unterminated set
//!   ends with the pattern;
//! * `\` takes the next byte literally (a trailing `\` is itself).
//!
//! The matcher backtracks only to the last `*` seen, never further, so a
//! crafted pattern costs at worst its length times the text's, never an
//! exponential search. It indexes the pattern only at positions it checked,
//! so it never panics, whatever a client subscribes to.

/// Redis-style glob matching for `PSUBSCRIBE` patterns: `*` (any run), `?` (any
/// one byte), `[...]` (a set, `^` negates it, `a-z` ranges) and `\` (take the
/// next byte literally). Case-sensitive, like Redis's pub/sub. Returns
/// whether the whole of `text` matches the whole of `pattern`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern past it, and the first
    // text position that `*` has not yet tried to swallow.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(_) => {
                if let Some(&byte) = text.get(t) {
                    let (matched, next) = match_one(pattern, p, byte);
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
            }
            None if t == text.len() => return true,
            None => {}
        }
        // Mismatch: let the last `*` swallow one more byte, if any remain.
        match star {
            Some((after_star, tried)) if tried < text.len() => {
                star = Some((after_star, tried + 1));
                p = after_star;
                t = tried + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single-byte pattern token at `p` (anything but `*`) against
/// `byte`; returns whether it matched and where the next token starts.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'[' => match_set(pattern, p + 1, byte),
        _ => {
            let (literal, next) = literal_at(pattern, p);
            (literal == byte, next)
        }
    }
}

/// The literal byte at `p`, honouring a `\` escape (a trailing `\` is itself),
/// and the position after it.
fn literal_at(pattern: &[u8], p: usize) -> (u8, usize) {
    match (pattern[p], pattern.get(p + 1)) {
        (b'\\', Some(&escaped)) => (escaped, p + 2),
        (literal, _) => (literal, p + 1),
    }
}

/// Matches a `[...]` set whose body starts at `p`. An unterminated set ends
/// with the pattern.
fn match_set(pattern: &[u8], mut p: usize, byte: u8) -> (bool, usize) {
    let negated = pattern.get(p) == Some(&b'^');
    if negated {
        p += 1;
    }
    let mut found = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(_) => {
                let (low, next) = literal_at(pattern, p);
                let is_range = pattern.get(next) == Some(&b'-')
                    && pattern.get(next + 1).is_some_and(|&end| end != b']');
                if is_range {
                    let (high, after) = literal_at(pattern, next + 1);
                    let (low, high) = (low.min(high), low.max(high));
                    found |= (low..=high).contains(&byte);
                    p = after;
                } else {
                    found |= low == byte;
                    p = next;
                }
            }
        }
    }
    (found != negated, p)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    /// Literal bytes, `?` and `*` (alone, repeated, leading and trailing).
    #[test]
    fn glob_literals_and_wildcards() {
        assert!(glob_match(b"+sdown", b"+sdown"));
        assert!(!glob_match(b"+sdown", b"-sdown"));
        assert!(!glob_match(b"+sdown", b"+sdow"));
        assert!(!glob_match(b"+sdow", b"+sdown"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"+*", b"+switch-master"));
        assert!(!glob_match(b"+*", b"-sdown"));
        assert!(glob_match(b"*down", b"+odown"));
        assert!(glob_match(b"a*b*c", b"aXXbYYbZc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYYbZ"));
        assert!(glob_match(b"**x", b"x"));
        assert!(glob_match(b"?sdown", b"+sdown"));
        assert!(!glob_match(b"?", b""));
        assert!(!glob_match(b"", b"x"));
        assert!(glob_match(b"", b""));
    }

    /// Sets, negated sets, ranges and escapes, with their edge cases.
    #[test]
    fn glob_sets_ranges_and_escapes() {
        assert!(glob_match(b"[+-]sdown", b"-sdown"));
        assert!(glob_match(b"[+-]sdown", b"+sdown"));
        assert!(!glob_match(b"[^+]sdown", b"+sdown"));
        assert!(glob_match(b"[^+]sdown", b"-sdown"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"h[c-a]llo", b"hbllo"), "reversed range");
        assert!(!glob_match(b"h[a-c]llo", b"hdllo"));
        assert!(glob_match(b"[a-]", b"-"), "a trailing '-' is literal");
        assert!(glob_match(b"\\*", b"*"));
        assert!(!glob_match(b"\\*", b"x"));
        assert!(glob_match(b"[\\]]", b"]"));
        assert!(glob_match(b"a\\", b"a\\"), "a trailing '\\' is literal");
        assert!(
            glob_match(b"[ab", b"b"),
            "an unterminated set ends with the pattern"
        );
        assert!(!glob_match(b"[]x", b"x"), "an empty set matches nothing");
        assert!(!glob_match(b"A*", b"a"), "case-sensitive");
    }

    /// A long text against several `*`s still finishes at once.
    #[test]
    fn glob_backtracking_stays_linear_per_star() {
        let text = vec![b'a'; 10_000];
        assert!(!glob_match(b"*a*a*b", &text));
        assert!(glob_match(b"*a*a*a", &text));
    }
}

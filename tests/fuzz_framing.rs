//! Property tests for the framers: no byte sequence makes them panic, and the
//! frames found do not depend on how the bytes were split into reads.
//! (Runs a bounded number of random cases on every test run.)

use proptest::prelude::*;
use sentinel_proxy::resp::reply::ReplyScanner;
use sentinel_proxy::resp::request::{RequestScanner, Scanned};

/// Frames found in `input` when it arrives in chunks cut at `cuts`.
fn requests_in_chunks(input: &[u8], cuts: &[usize]) -> Result<Vec<usize>, String> {
    let mut scanner = RequestScanner::default();
    let mut frames = Vec::new();
    let mut start = 0;
    let mut available = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    for cut in cuts {
        available = available.max(cut);
        loop {
            match scanner.scan(&input[start..available]) {
                Ok(Some(Scanned::Request(r))) => {
                    frames.push(r.len);
                    start += r.len;
                }
                Ok(Some(Scanned::Empty(n))) => start += n,
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(frames)
}

fn command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn request_scanner_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut scanner = RequestScanner::default();
        let mut at = 0;
        while let Ok(Some(found)) = scanner.scan(&input[at..]) {
            at += match found { Scanned::Request(r) => r.len, Scanned::Empty(n) => n };
        }
    }

    #[test]
    fn reply_scanner_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut scanner = ReplyScanner::default();
        let mut at = 0;
        while let Ok(Some(r)) = scanner.scan(&input[at..]) {
            at += r.len;
        }
    }

    #[test]
    fn reply_scanner_never_panics_on_resp_like_input(
        parts in proptest::collection::vec(prop_oneof![
            Just(b"*2\r\n".to_vec()), Just(b"$3\r\nabc\r\n".to_vec()), Just(b":1\r\n".to_vec()),
            Just(b"%1\r\n".to_vec()), Just(b">3\r\n".to_vec()), Just(b"|1\r\n".to_vec()),
            Just(b"$-1\r\n".to_vec()), Just(b"*-1\r\n".to_vec()), Just(b"-ERR x\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ], 0..40)
    ) {
        let input: Vec<u8> = parts.concat();
        let mut scanner = ReplyScanner::default();
        let mut at = 0;
        while let Ok(Some(r)) = scanner.scan(&input[at..]) {
            at += r.len;
        }
    }

    #[test]
    fn frames_do_not_depend_on_read_boundaries(
        commands in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5), 1..10),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let input: Vec<u8> = commands.iter().flat_map(|c| command(c)).collect();
        let whole = requests_in_chunks(&input, &[]).expect("valid commands");
        let expected: Vec<usize> = commands.iter().map(|c| command(c).len()).collect();
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(requests_in_chunks(&input, &cuts).expect("valid commands"), whole);
    }
}

//! What `decide` and `ConnState::apply` make of commands, one case at a time.

use super::*;
use crate::resp::request::{RequestScanner, Scanned};

fn decide_on(input: &[u8], requirepass: Option<&str>, authenticated: bool) -> Action {
    let mut scanner = RequestScanner::default();
    let Ok(Some(Scanned::Request(req))) = scanner.scan(input) else {
        panic!("not a request");
    };
    decide(input, &req, requirepass, authenticated)
}

#[test]
fn ordinary_commands_are_forwarded_untracked() {
    assert_eq!(
        decide_on(b"GET k\r\n", None, true),
        Action::Forward(Expect::Reply)
    );
    assert_eq!(decide_on(b"QUIT\r\n", None, true), Action::ForwardLast);
}

#[test]
fn state_changing_commands_are_tracked_with_their_bytes() {
    let select = b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n";
    assert_eq!(
        decide_on(select, None, true),
        Action::Forward(Expect::Track(Effect::Select(Bytes::from_static(select))))
    );
    assert_eq!(
        decide_on(b"HELLO 3\r\n", None, true),
        Action::Forward(Expect::Track(Effect::Hello(
            Bytes::from_static(b"HELLO 3\r\n"),
            Some(3)
        )))
    );
    assert_eq!(
        decide_on(b"client reply off\r\n", None, true),
        Action::ForwardUncounted
    );
    assert_eq!(
        decide_on(b"SUBSCRIBE a b\r\n", None, true),
        Action::Forward(Expect::PubSub {
            family: Family::Channel,
            remaining: 2
        })
    );
    assert_eq!(
        decide_on(b"PUNSUBSCRIBE\r\n", None, true),
        Action::Forward(Expect::UnsubscribeAll(Family::Pattern))
    );
}

#[test]
fn requirepass_is_enforced_at_the_proxy() {
    let pw = Some("secret");
    assert_eq!(
        decide_on(b"GET k\r\n", pw, false),
        Action::Local(replies::NOAUTH)
    );
    assert_eq!(
        decide_on(b"AUTH secret\r\n", pw, false),
        Action::Authenticate(true)
    );
    assert_eq!(
        decide_on(b"AUTH default secret\r\n", pw, false),
        Action::Authenticate(true)
    );
    assert_eq!(
        decide_on(b"AUTH nope\r\n", pw, false),
        Action::Authenticate(false)
    );
    assert_eq!(
        decide_on(b"AUTH\r\n", pw, false),
        Action::Local(replies::AUTH_ARITY)
    );
    assert_eq!(
        decide_on(b"HELLO 3\r\n", pw, false),
        Action::Local(replies::NOAUTH_HELLO)
    );
    assert_eq!(
        decide_on(b"GET k\r\n", pw, true),
        Action::Forward(Expect::Reply)
    );
    let Action::Substitute(frame, _) =
        decide_on(b"HELLO 3 AUTH default secret SETNAME app\r\n", pw, false)
    else {
        panic!("HELLO AUTH must be rewritten");
    };
    assert_eq!(
        &frame[..],
        b"*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$3\r\napp\r\n"
    );
}

#[test]
fn effects_build_the_replay_and_pins() {
    let mut state = ConnState::new();
    state.apply(Effect::Select(Bytes::from_static(b"SELECT 2\r\n")), true);
    state.apply(Effect::Auth(Bytes::from_static(b"AUTH x\r\n")), false);
    state.apply(Effect::Multi, true);
    assert_eq!(state.pin.reason(), Some("MULTI"));
    state.apply(Effect::ExecOrDiscard, false);
    assert_eq!(state.pin.reason(), None);
    let frames: Vec<&Bytes> = state.replay_frames().collect();
    assert_eq!(frames, vec![&Bytes::from_static(b"SELECT 2\r\n")]);
    state.apply(Effect::Reset, true);
    assert_eq!(state.replay_frames().count(), 0);
}

//! Unit tests of the sentinel port without sockets: the connection-level
//! commands byte for byte, the shapes of the core's replies in RESP2 and RESP3,
//! and events as subscribers receive them. [`over_tcp`] runs the same port
//! over loopback.

use bytes::{Bytes, BytesMut};

use super::encode::{MAX_ECHOED, shown};
use super::encode::{Protocol, Shape, core_shape, put_core_reply};
use super::session::{Session, Step};
use super::{Event, Options};
use crate::resp::value::OwnedFrame;

/// Runs one command (words split on spaces) through `session`.
fn exec(session: &mut Session, requirepass: Option<&str>, line: &str) -> (Step, String) {
    let args: Vec<Bytes> = line
        .split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let mut out = BytesMut::new();
    let mut users = super::acl::Users::new(requirepass);
    let step = session.handle(&args, &mut users, &mut out);
    (step, String::from_utf8_lossy(&out).into_owned())
}

/// The reply `line` gets from a fresh session (no password).
fn reply(line: &str) -> String {
    exec(&mut Session::new(7), None, line).1
}

#[test]
fn ping_quit_and_unknown_commands() {
    assert_eq!(reply("PING"), "+PONG\r\n");
    assert_eq!(reply("ping hi"), "$2\r\nhi\r\n");
    assert_eq!(
        reply("PING a b"),
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(
        exec(&mut Session::new(1), None, "QUIT"),
        (Step::Close, "+OK\r\n".into())
    );
    for line in ["SENTINEL MYID", "INFO", "ROLE", "PUBLISH ch x", "NOPE"] {
        assert_eq!(
            exec(&mut Session::new(1), None, line),
            (Step::Core, "".into())
        );
    }
}

#[test]
fn auth_without_a_password_configured() {
    assert!(reply("AUTH secret").starts_with("-ERR AUTH <password> called without"));
    assert_eq!(reply("AUTH default anything"), "+OK\r\n");
    assert!(reply("AUTH alice x").starts_with("-WRONGPASS"));
    assert_eq!(
        reply("AUTH"),
        "-ERR wrong number of arguments for 'auth' command\r\n"
    );
}

#[test]
fn requirepass_gates_everything_but_auth_hello_quit_reset() {
    let pass = Some("s3cret");
    let mut session = Session::new(1);
    assert_eq!(
        exec(&mut session, pass, "PING").1,
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(exec(&mut session, pass, "SENTINEL MYID").0, Step::Answered);
    assert!(
        exec(&mut session, pass, "HELLO")
            .1
            .starts_with("-NOAUTH HELLO must")
    );
    assert!(
        exec(&mut session, pass, "AUTH wrong")
            .1
            .starts_with("-WRONGPASS")
    );
    assert!(
        exec(&mut session, pass, "AUTH bob s3cret")
            .1
            .starts_with("-WRONGPASS")
    );
    assert_eq!(exec(&mut session, pass, "AUTH default s3cret").1, "+OK\r\n");
    assert_eq!(exec(&mut session, pass, "SENTINEL MYID").0, Step::Core);
    assert_eq!(exec(&mut session, pass, "RESET").1, "+RESET\r\n");
    assert!(exec(&mut session, pass, "PING").1.starts_with("-NOAUTH"));
    assert_eq!(exec(&mut session, pass, "AUTH s3cret").1, "+OK\r\n");
    assert_eq!(exec(&mut session, pass, "QUIT").0, Step::Close);
}

/// HELLO's six fields after `header`, for client 7 speaking `proto`.
fn hello_reply(header: &str, proto: u8) -> String {
    format!(
        "{header}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
         $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n\
         $7\r\nmodules\r\n*0\r\n"
    )
}

#[test]
fn hello_answers_a_flat_map_in_resp2() {
    let expected = hello_reply("*12", 2);
    assert_eq!(reply("HELLO"), expected);
    assert_eq!(reply("HELLO 2"), expected);
    let mut session = Session::new(7);
    let (_, out) = exec(
        &mut session,
        Some("pw"),
        "HELLO 2 AUTH default pw SETNAME app",
    );
    assert_eq!(out, expected);
    assert_eq!(session.user.as_deref(), Some("default"));
    assert_eq!(session.name.as_deref(), Some(&b"app"[..]));
}

/// `HELLO 3` switches to RESP3 as Redis Sentinel 7.0 does: the reply is
/// already a map (six fields, no `role` in sentinel mode); `HELLO` alone
/// keeps the version; `HELLO 2` and `RESET` go back to RESP2.
#[test]
fn hello_3_switches_to_resp3_and_back() {
    let mut session = Session::new(7);
    assert_eq!(exec(&mut session, None, "HELLO 3").1, hello_reply("%6", 3));
    assert_eq!(session.protocol, Protocol::Resp3);
    assert_eq!(exec(&mut session, None, "HELLO").1, hello_reply("%6", 3));
    assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "_\r\n");
    assert_eq!(exec(&mut session, None, "HELLO 2").1, hello_reply("*12", 2));
    assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "$-1\r\n");
    exec(&mut session, None, "HELLO 3");
    assert_eq!(exec(&mut session, None, "RESET").1, "+RESET\r\n");
    assert_eq!(session.protocol, Protocol::Resp2);
    assert_eq!(exec(&mut session, None, "HELLO").1, hello_reply("*12", 2));
}

/// `HELLO 3 AUTH user pass SETNAME name` authenticates, names and
/// switches at once; a refused one changes nothing, not even the version.
#[test]
fn hello_3_with_auth_and_setname() {
    let pass = Some("pw");
    let mut session = Session::new(7);
    assert!(
        exec(&mut session, pass, "HELLO 3 AUTH default nope SETNAME app")
            .1
            .starts_with("-WRONGPASS")
    );
    assert!(
        exec(&mut session, pass, "HELLO 3")
            .1
            .starts_with("-NOAUTH HELLO must")
    );
    assert_eq!(
        (
            session.protocol,
            session.name.as_ref(),
            session.user.is_some()
        ),
        (Protocol::Resp2, None, false)
    );
    assert_eq!(
        exec(&mut session, pass, "HELLO 3 AUTH default pw SETNAME app").1,
        hello_reply("%6", 3)
    );
    assert_eq!(
        exec(&mut session, pass, "CLIENT GETNAME").1,
        "$3\r\napp\r\n"
    );
    assert_eq!(
        exec(&mut session, pass, "HELLO 2 SETNAME bad\tname").1,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(session.protocol, Protocol::Resp3);
}

#[test]
fn hello_refusals() {
    for version in ["0", "1", "4", "-3"] {
        assert_eq!(
            reply(&format!("HELLO {version}")),
            "-NOPROTO unsupported protocol version\r\n"
        );
    }
    assert!(reply("HELLO two").starts_with("-ERR Protocol version is not an integer"));
    assert_eq!(
        reply("HELLO 2 AUTH default"),
        "-ERR Syntax error in HELLO option 'AUTH'\r\n"
    );
    assert_eq!(
        reply("HELLO 2 FOO"),
        "-ERR Syntax error in HELLO option 'FOO'\r\n"
    );
    assert!(reply("HELLO 2 SETNAME a\nb").starts_with("-ERR Client names cannot"));
    let mut session = Session::new(1);
    assert!(
        exec(&mut session, Some("pw"), "HELLO 2 AUTH default no")
            .1
            .starts_with("-WRONGPASS")
    );
    assert!(session.user.is_none());
}

#[test]
fn client_setname_getname_id() {
    let mut session = Session::new(42);
    assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "$-1\r\n");
    assert_eq!(
        exec(&mut session, None, "client setname app-1").1,
        "+OK\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "CLIENT GETNAME").1,
        "$5\r\napp-1\r\n"
    );
    assert!(
        exec(&mut session, None, "CLIENT SETNAME a\tb")
            .1
            .starts_with("-ERR Client names cannot")
    );
    assert_eq!(exec(&mut session, None, "CLIENT SETNAME ").1, "+OK\r\n");
    assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "$-1\r\n");
    assert_eq!(exec(&mut session, None, "CLIENT ID").1, ":42\r\n");
    assert_eq!(
        exec(&mut session, None, "CLIENT KILL 1.2.3.4:5").1,
        "-ERR No such client\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "CLIENT ID x").1,
        "-ERR wrong number of arguments for 'client|id' command\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "CLIENT").1,
        "-ERR wrong number of arguments for 'client' command\r\n"
    );
}

#[test]
fn subscriptions_count_channels_and_patterns() {
    let mut session = Session::new(1);
    assert_eq!(
        exec(&mut session, None, "SUBSCRIBE +sdown +odown").1,
        "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$6\r\n+odown\r\n:2\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "PSUBSCRIBE +* +sdown").1,
        "*3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:3\r\n*3\r\n$10\r\npsubscribe\r\n$6\r\n+sdown\r\n:4\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "SUBSCRIBE +sdown").1,
        "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:4\r\n",
        "a repeated subscription is confirmed but not counted"
    );
    assert_eq!(
        exec(&mut session, None, "UNSUBSCRIBE").1,
        "*3\r\n$11\r\nunsubscribe\r\n$6\r\n+odown\r\n:3\r\n*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:2\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "PUNSUBSCRIBE nope").1,
        "*3\r\n$12\r\npunsubscribe\r\n$4\r\nnope\r\n:2\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "PUNSUBSCRIBE")
            .1
            .matches("punsubscribe")
            .count(),
        2
    );
    assert_eq!(
        exec(&mut session, None, "UNSUBSCRIBE").1,
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "SUBSCRIBE").1,
        "-ERR wrong number of arguments for 'subscribe' command\r\n"
    );
}

#[test]
fn subscribed_clients_are_limited_like_redis() {
    let mut session = Session::new(1);
    exec(&mut session, None, "SUBSCRIBE +sdown");
    assert_eq!(
        exec(&mut session, None, "SENTINEL MYID"),
        (
            Step::Answered,
            "-ERR Can't execute 'sentinel': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n".into()
        )
    );
    assert_eq!(
        exec(&mut session, None, "PING").1,
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "PING x").1,
        "*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "CLIENT SETNAME n").0,
        Step::Answered
    );
    assert_eq!(session.name, None);
    assert_eq!(exec(&mut session, None, "RESET").1, "+RESET\r\n");
    assert_eq!(session.subscriptions(), 0);
    assert_eq!(exec(&mut session, None, "SENTINEL MYID").0, Step::Core);
}

/// In RESP3 confirmations and messages are pushes (`>`), a null channel
/// is `_`, and a subscribed client may run any command, plain `PING`
/// included, as with Redis Sentinel 7.0.
#[test]
fn resp3_subscribers_get_pushes_and_keep_every_command() {
    let mut session = Session::new(1);
    exec(&mut session, None, "HELLO 3");
    assert_eq!(
        exec(&mut session, None, "SUBSCRIBE +sdown").1,
        ">3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n"
    );
    assert_eq!(
        exec(&mut session, None, "PSUBSCRIBE +*").1,
        ">3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:2\r\n"
    );
    assert_eq!(exec(&mut session, None, "PING").1, "+PONG\r\n");
    assert_eq!(exec(&mut session, None, "PING x").1, "$1\r\nx\r\n");
    assert_eq!(exec(&mut session, None, "SENTINEL MYID").0, Step::Core);
    assert_eq!(exec(&mut session, None, "CLIENT SETNAME n").1, "+OK\r\n");
    let event = Event {
        channel: "+sdown".into(),
        message: "master m 127.0.0.1 6379".into(),
    };
    let mut out = BytesMut::new();
    session.deliver(&event, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        ">3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n\
         >4\r\n$8\r\npmessage\r\n$2\r\n+*\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n"
    );
    exec(&mut session, None, "UNSUBSCRIBE");
    exec(&mut session, None, "PUNSUBSCRIBE");
    assert_eq!(
        exec(&mut session, None, "UNSUBSCRIBE").1,
        ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
    );
}

/// The core's flat arrays become maps in RESP3 where Sentinel sends maps;
/// RESP2 bytes stay as they were, except the null array Sentinel sends for
/// an unknown master name.
#[test]
fn core_replies_are_shaped_like_sentinels() {
    let words = |line: &str| -> Vec<Bytes> {
        line.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    };
    let pair = |k: &str, v: &str| {
        [
            OwnedFrame::BulkString(k.as_bytes().to_vec()),
            OwnedFrame::BulkString(v.as_bytes().to_vec()),
        ]
    };
    let master = OwnedFrame::Array([pair("name", "m"), pair("ip", "::1")].concat());
    let shaped = |line: &str, frame: &OwnedFrame, protocol| {
        let mut out = BytesMut::new();
        put_core_reply(
            &mut out,
            Some(&mut frame.clone()),
            core_shape(&words(line)),
            protocol,
        );
        String::from_utf8_lossy(&out).into_owned()
    };
    let flat = "$4\r\nname\r\n$1\r\nm\r\n$2\r\nip\r\n$3\r\n::1\r\n";
    for line in [
        "SENTINEL MASTER m",
        "SENTINEL PRIMARY m",
        "sentinel config get *",
        "SENTINEL DEBUG",
    ] {
        assert_eq!(
            shaped(line, &master, Protocol::Resp3),
            format!("%2\r\n{flat}")
        );
        assert_eq!(
            shaped(line, &master, Protocol::Resp2),
            format!("*4\r\n{flat}")
        );
    }
    let list = OwnedFrame::Array(vec![master.clone(), master.clone()]);
    for line in [
        "SENTINEL MASTERS",
        "SENTINEL PRIMARIES",
        "SENTINEL REPLICAS m",
        "SENTINEL slaves m",
        "SENTINEL SENTINELS m",
    ] {
        assert_eq!(
            shaped(line, &list, Protocol::Resp3),
            format!("*2\r\n%2\r\n{flat}%2\r\n{flat}")
        );
        assert_eq!(
            shaped(line, &list, Protocol::Resp2),
            format!("*2\r\n*4\r\n{flat}*4\r\n{flat}")
        );
    }
    let by_name = "SENTINEL get-master-addr-by-name nosuch";
    assert_eq!(shaped(by_name, &OwnedFrame::Null, Protocol::Resp3), "_\r\n");
    assert_eq!(
        shaped(
            "SENTINEL GET-PRIMARY-ADDR-BY-NAME nosuch",
            &OwnedFrame::Null,
            Protocol::Resp2
        ),
        "*-1\r\n"
    );
    assert_eq!(
        shaped(by_name, &OwnedFrame::Null, Protocol::Resp2),
        "*-1\r\n"
    );
    let addr = OwnedFrame::Array(pair("127.0.0.1", "6379").to_vec());
    let addr_bytes = "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n";
    assert_eq!(shaped(by_name, &addr, Protocol::Resp3), addr_bytes);
    assert_eq!(shaped(by_name, &addr, Protocol::Resp2), addr_bytes);
    let role = OwnedFrame::Array(vec![
        OwnedFrame::BulkString(b"sentinel".to_vec()),
        OwnedFrame::Array(vec![OwnedFrame::BulkString(b"m".to_vec())]),
    ]);
    assert_eq!(
        shaped("ROLE", &role, Protocol::Resp3),
        "*2\r\n$8\r\nsentinel\r\n*1\r\n$1\r\nm\r\n"
    );
    let error = OwnedFrame::Error("ERR No such master with that name".into());
    assert_eq!(
        shaped("SENTINEL MASTER x", &error, Protocol::Resp3),
        "-ERR No such master with that name\r\n"
    );
    let odd = OwnedFrame::Array(vec![OwnedFrame::Integer(1)]);
    assert_eq!(
        shaped("SENTINEL MASTER m", &odd, Protocol::Resp3),
        "*1\r\n:1\r\n",
        "an odd array cannot be a map: sent as it is"
    );
}

#[test]
fn events_become_message_and_pmessage_frames() {
    let mut session = Session::new(1);
    exec(&mut session, None, "SUBSCRIBE +sdown");
    exec(&mut session, None, "PSUBSCRIBE +* *down -*");
    let event = Event {
        channel: "+sdown".into(),
        message: "master m 127.0.0.1 6379".into(),
    };
    let mut out = BytesMut::new();
    session.deliver(&event, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "*3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n\
         *4\r\n$8\r\npmessage\r\n$5\r\n*down\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n\
         *4\r\n$8\r\npmessage\r\n$2\r\n+*\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n",
        "patterns in byte order, each one that matches"
    );
    out.clear();
    let other = Event {
        channel: "+tilt".into(),
        message: String::new(),
    };
    Session::new(2).deliver(&other, &mut out);
    assert!(out.is_empty());
}

#[test]
fn core_replies_cannot_break_framing() {
    let mut frame = OwnedFrame::Array(vec![
        OwnedFrame::Error("ERR bad\r\n+OK".into()),
        OwnedFrame::SimpleString(b"a\nb".to_vec()),
        OwnedFrame::BulkString(b"x\r\ny".to_vec()),
    ]);
    let mut out = BytesMut::new();
    put_core_reply(&mut out, Some(&mut frame), Shape::Plain, Protocol::Resp2);
    assert_eq!(&out[..], b"*3\r\n-ERR bad  +OK\r\n+a b\r\n$4\r\nx\r\ny\r\n");
    out.clear();
    put_core_reply(&mut out, None, Shape::Map, Protocol::Resp3);
    assert_eq!(&out[..], b"-ERR sentinel core unavailable\r\n");
}

#[test]
fn echoed_words_are_sanitized_and_bounded() {
    assert_eq!(shown(b"a\r\nb"), "a  b");
    assert_eq!(shown(&[b'x'; 500]).len(), MAX_ECHOED);
}

#[test]
fn options_never_print_the_password() {
    let options = Options {
        requirepass: Some("hunter2".into()),
        max_clients: 10,
        stats: Default::default(),
    };
    assert!(!format!("{options:?}").contains("hunter2"));
}

/// Tests over loopback: a real listener, a fake core, a raw client socket.
mod over_tcp;

/// The ACL as Redis Sentinel's suite drives it: a user with a password, the
/// default user off for new connections (not for this one), `CLIENT KILL
/// USER` and `ACL DELUSER` handed to the connection with whom to close.
#[test]
fn acl_users_and_kills() {
    let mut users = super::acl::Users::new(None);
    let mut session = Session::new(3);
    let mut run = |session: &mut Session, line: &str| {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let mut out = BytesMut::new();
        let step = session.handle(&args, &mut users, &mut out);
        (step, String::from_utf8_lossy(&out).into_owned())
    };
    assert_eq!(
        run(&mut session, "ACL SETUSER testuser >secret +@all on").1,
        "+OK\r\n"
    );
    assert_eq!(run(&mut session, "ACL SETUSER default off").1, "+OK\r\n");
    assert_eq!(
        run(&mut session, "ACL WHOAMI").1,
        "$7\r\ndefault\r\n",
        "still logged in"
    );
    assert_eq!(
        run(&mut session, "CLIENT KILL USER default SKIPME no").0,
        Step::Kill {
            users: vec!["default".into()],
            skip: None,
            count: true
        }
    );
    let mut fresh = Session::new(4);
    assert!(run(&mut fresh, "PING").1.starts_with("-NOAUTH"));
    assert!(
        run(&mut fresh, "AUTH testuser wrong")
            .1
            .starts_with("-WRONGPASS")
    );
    assert_eq!(run(&mut fresh, "AUTH testuser secret").1, "+OK\r\n");
    assert_eq!(run(&mut fresh, "ACL WHOAMI").1, "$8\r\ntestuser\r\n");
    assert_eq!(run(&mut fresh, "ACL SETUSER default on").1, "+OK\r\n");
    let (step, out) = run(&mut fresh, "ACL DELUSER testuser");
    assert_eq!(out, ":1\r\n");
    assert_eq!(
        step,
        Step::Kill {
            users: vec!["testuser".into()],
            skip: None,
            count: false
        }
    );
    let mut later = Session::new(5);
    assert_eq!(run(&mut later, "ACL WHOAMI").1, "$7\r\ndefault\r\n");
    assert!(
        run(&mut later, "AUTH secret")
            .1
            .starts_with("-ERR AUTH <password> called without")
    );
}

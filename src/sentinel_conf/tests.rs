//! Tests of the `sentinel.conf` conversion: the shipped samples round-trip
//! into a config the proxy accepts, malformed files give one clear error,
//! notes and comments stay on one line, and the tokenizer splits like Redis.

use super::lines::split_args;
use super::map::SENTINEL_FAILOVER_TIMEOUT_MS;
use super::*;
use crate::config::{Config, Settings, Source};

const MINIMAL: &str = include_str!("../../config/sentinel-conf/minimal.conf");
const REWRITTEN: &str = include_str!("../../config/sentinel-conf/rewritten-by-redis.conf");
const AUTH: &str = include_str!("../../config/sentinel-conf/auth-announce-quoted.conf");

/// Converts, parses the TOML as the proxy would, and validates it.
fn round_trip(conf: &str) -> (Imported, Settings) {
    let out = convert(conf).expect("converts");
    let settings: Settings = toml::from_str(&out.toml)
        .unwrap_or_else(|e| panic!("output is not valid config: {e}\n{}", out.toml));
    let mut checked = settings.clone();
    // Script paths are checked for executability at load; the samples' do
    // not exist on this machine.
    checked.notification_script = None;
    checked.client_reconfig_script = None;
    if let Err(e) = Config::from_settings(checked) {
        panic!("output does not validate: {e}\n{}", out.toml);
    }
    (out, settings)
}

fn err(conf: &str) -> String {
    convert(conf).expect_err("must fail").to_string()
}

fn split(line: &str) -> Result<Vec<String>, QuoteError> {
    split_args(line)
}

#[test]
fn minimal_sample_gets_sentinel_defaults() {
    let (out, s) = round_trip(MINIMAL);
    assert_eq!(s.master_name.as_deref(), Some("mymaster"));
    assert_eq!(s.master.as_deref(), Some("127.0.0.1:6379"));
    assert_eq!(s.quorum, Some(2));
    assert_eq!(s.down_after_ms, Some(10_000));
    assert_eq!(s.failover_timeout_ms, Some(SENTINEL_FAILOVER_TIMEOUT_MS));
    assert_eq!(s.parallel_syncs, Some(1));
    assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:26379"));
    assert!(s.peers.is_empty() && s.announce.is_none() && s.auth_pass.is_none());
    assert!(s.data_dir.is_none() && s.listen.is_none());
    assert!(
        out.toml
            .starts_with("# converted from sentinel.conf by sentinel-proxy import-sentinel-conf\n")
    );
    assert!(
        out.toml
            .contains("# data_dir = \"/var/lib/sentinel-proxy\"")
    );
    assert_eq!(out.notes.len(), 2, "{:?}", out.notes);
    assert_eq!(
        out.notes[0],
        "line 4: the master's address is the proxy's default listen address: set listen to another one"
    );
    assert_eq!(
        out.notes[1],
        "quorum 2 needs 2 voters, but the file gives only this proxy: list the group's \
         other Sentinels (or proxies) as peers, or no failover can happen"
    );
}

#[test]
fn redis_rewritten_sample_keeps_voters_and_drops_state() {
    let (out, s) = round_trip(REWRITTEN);
    assert_eq!(s.master.as_deref(), Some("127.0.0.1:16391"));
    assert_eq!(s.quorum, Some(2));
    assert_eq!(s.down_after_ms, Some(5000));
    assert_eq!(s.failover_timeout_ms, Some(60_000));
    assert_eq!(s.sentinel_listen.as_deref(), Some("127.0.0.1:26390"));
    assert_eq!(s.peers, ["127.0.0.1:26391", "127.0.0.1:26392"]);
    assert!(out.toml.contains("#   127.0.0.1:16392 (sentinel.conf line"));
    assert!(out.toml.contains("#   127.0.0.1:16390 (sentinel.conf line"));
    let state: Vec<&String> = out.notes.iter().filter(|n| n.contains("epochs")).collect();
    assert_eq!(
        state.len(),
        1,
        "state lines share one note: {:?}",
        out.notes
    );
    assert!(
        state[0].starts_with("lines 20, 21, 22, 23: "),
        "{}",
        state[0]
    );
    for directive in ["daemonize", "logfile", "dir", "protected-mode", "user"] {
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains(&format!("`{directive}`"))),
            "no note for {directive}: {:?}",
            out.notes
        );
    }
    assert!(out.notes.iter().all(|n| !n.starts_with("quorum")));
}

#[test]
fn auth_sample_unquotes_and_keeps_secrets_out_of_notes() {
    let (out, s) = round_trip(AUTH);
    assert_eq!(s.master_name.as_deref(), Some("cache-eu"));
    assert_eq!(s.master.as_deref(), Some("192.0.2.10:6379"));
    assert_eq!(s.down_after_ms, Some(3000));
    assert_eq!(s.failover_timeout_ms, Some(30_000));
    assert_eq!(s.parallel_syncs, Some(2));
    assert_eq!(s.auth_user.as_deref(), Some("sentinel-proxy"));
    assert_eq!(s.auth_pass.as_deref(), Some("p@ss \"word\" #1!"));
    assert_eq!(s.announce.as_deref(), Some("192.0.2.21:36379"));
    assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:26379"));
    assert_eq!(s.peers, ["192.0.2.22:26379", "192.0.2.23:26379"]);
    assert_eq!(
        s.client_reconfig_script.as_deref(),
        Some(std::path::Path::new(
            "/opt/redis/scripts/client reconfig.sh"
        ))
    );
    assert!(
        s.requirepass.is_none(),
        "the Sentinel port's password stays behind"
    );
    let notes = out.notes.join("\n");
    for secret in ["p@ss", "peer secret", "sentinel-admin-secret"] {
        assert!(!notes.contains(secret), "{secret} leaked into {notes}");
    }
    for directive in [
        "requirepass",
        "sentinel sentinel-pass",
        "sentinel rename-command",
    ] {
        assert!(notes.contains(&format!("`{directive}`")), "{notes}");
    }
}

#[test]
fn every_note_is_also_a_comment() {
    for sample in [MINIMAL, REWRITTEN, AUTH] {
        let out = convert(sample).expect("converts");
        for note in &out.notes {
            assert!(out.toml.contains(&format!("# - {note}\n")), "{note}");
        }
    }
}

#[test]
fn malformed_files_give_one_clear_error() {
    assert_eq!(
        err("port 26379\n"),
        "no `sentinel monitor <name> <host> <port> <quorum>` line: the proxy needs the group it fronts"
    );
    assert_eq!(
        err("sentinel monitor a 127.0.0.1 6379 2\n\nsentinel monitor b 127.0.0.1 6380 2\n"),
        "lines 1, 3: several `sentinel monitor` lines, but the proxy fronts one group: keep one per converted file"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 70000 2\n"),
        "line 1: bad port '70000' (1 to 65535)"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6380 2\nport 0\n"),
        "line 2: bad port '0' (1 to 65535)"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6380 2\nsentinel down-after-milliseconds m 5s\n"),
        "line 2: bad number '5s' for down-after-milliseconds (10 to 86400000)"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6380 0\n"),
        "line 1: bad number '0' for quorum (1 to 100)"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6380 2\nsentinel auth-pass m \"secret\n"),
        "line 2: unbalanced quotes"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6380 2\nsentinel failover-timeout other 1000\n"),
        "line 2: `sentinel failover-timeout` is for master 'other', but the monitored group is 'm'"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6379\n"),
        "line 1: wrong number of arguments, expected `sentinel monitor <name> <host> <port> <quorum>`"
    );
    assert_eq!(
        err("sentinel monitor m 127.0.0.1 6380 2\nsentinel known-sentinel m 127.0.0.1 26380\n"),
        "line 2: wrong number of arguments, expected `sentinel known-sentinel <name> <host> <port> <run-id>`"
    );
}

#[test]
fn errors_are_one_lowercase_line() {
    let cases = [
        "sentinel monitor \"m\nx\" 127.0.0.1 6379 2\nsentinel parallel-syncs other 1\n",
        "sentinel monitor m \"\" 6379 2\n",
        "sentinel monitor m 127.0.0.1 6380 2\nsentinel\n",
        "sentinel monitor m 127.0.0.1 6380 2\nbind\n",
    ];
    for case in cases {
        let message = err(case);
        assert!(!message.contains('\n'), "{message}");
        assert!(message.starts_with("line "), "{message}");
    }
}

#[test]
fn directive_names_are_case_insensitive_and_comments_ignored() {
    let conf = "  # comment\r\n\r\nSENTINEL Monitor m 127.0.0.1 6380 1\r\n\
                Sentinel DOWN-AFTER-MILLISECONDS m 1234\r\nPORT 26400\r\n";
    let (out, s) = round_trip(conf);
    assert_eq!(s.down_after_ms, Some(1234));
    assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:26400"));
    assert!(out.notes.is_empty(), "{:?}", out.notes);
}

#[test]
fn host_names_and_ipv6_are_kept_as_given() {
    let conf = "sentinel resolve-hostnames yes\nsentinel monitor m localhost 6379 1\n\
                sentinel known-sentinel m ::1 26380 abc\nbind ::1\n";
    let (out, s) = round_trip(conf);
    assert_eq!(s.master.as_deref(), Some("localhost:6379"));
    assert_eq!(s.peers, ["[::1]:26380"]);
    assert_eq!(s.sentinel_listen.as_deref(), Some("[::1]:26379"));
    assert!(out.notes[0].starts_with("line 1: `sentinel resolve-hostnames`"));
}

#[test]
fn odd_values_cannot_break_out_of_comments() {
    let conf = "\"evil\\nmaster = 1\" x\nsentinel monitor m 127.0.0.1 6380 1\n";
    let (out, _) = round_trip(conf);
    assert!(out.toml.contains("`evil\\nmaster = 1`"), "{}", out.toml);
    assert!(out.toml.lines().all(|l| l.is_empty()
        || l.starts_with('#')
        || l.contains(" = ")
        || l.starts_with("    ")
        || l == "]"));
}

#[test]
fn awkward_strings_survive_toml_escaping() {
    let pass = "a'b\"c\\d\ne\u{1}f'''g\"\"\"";
    let quoted = format!(
        "\"{}\"",
        pass.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .replace('\u{1}', "\\x01")
    );
    let conf = format!(
        "sentinel monitor m 127.0.0.1 6380 1\nsentinel auth-pass m {quoted}\n\
         sentinel auth-user m 'o\\'brien'\n"
    );
    let (_, s) = round_trip(&conf);
    assert_eq!(s.auth_pass.as_deref(), Some(pass));
    assert_eq!(s.auth_user.as_deref(), Some("o'brien"));
}

#[test]
fn repeats_and_duplicates_are_noted() {
    let conf = "sentinel monitor m 127.0.0.1 6380 2\n\
                sentinel down-after-milliseconds m 1000\n\
                sentinel down-after-milliseconds m 2000\n\
                sentinel known-sentinel m 127.0.0.1 26380 a\n\
                sentinel known-sentinel m 127.0.0.1 26380 b\n";
    let (out, s) = round_trip(conf);
    assert_eq!(s.down_after_ms, Some(2000));
    assert_eq!(s.peers, ["127.0.0.1:26380"]);
    assert!(
        out.notes
            .iter()
            .any(|n| n.starts_with("line 3: `sentinel down-after-milliseconds` repeats line 2"))
    );
    assert!(
        out.notes
            .iter()
            .any(|n| n.starts_with("line 5: repeats the peer of line 4"))
    );
}

#[test]
fn auth_user_without_pass_and_announce_port_alone_are_noted() {
    let conf = "sentinel monitor m 127.0.0.1 6380 1\nsentinel auth-user m bob\n\
                sentinel announce-port 36379\n";
    let (out, s) = round_trip(conf);
    assert!(s.auth_user.is_none() && s.announce.is_none());
    assert!(out.toml.contains("# announce = \"HOST:36379\""));
    assert_eq!(out.notes.len(), 2, "{:?}", out.notes);
}

#[test]
fn bind_picks_one_address() {
    let conf = "sentinel monitor m 127.0.0.1 6380 1\nbind 127.0.0.1 -::1\n";
    let (out, s) = round_trip(conf);
    assert_eq!(s.sentinel_listen.as_deref(), Some("127.0.0.1:26379"));
    assert_eq!(out.notes.len(), 1);
    let (_, s) = round_trip("sentinel monitor m 127.0.0.1 6380 1\nbind * -::*\nport 1\n");
    assert_eq!(s.sentinel_listen.as_deref(), Some("0.0.0.0:1"));
}

#[test]
fn tokenizer_splits_like_redis() {
    let ok = |line: &str| split(line).expect("splits");
    assert_eq!(ok("a  b\tc"), ["a", "b", "c"]);
    assert_eq!(ok("  padded  "), ["padded"]);
    assert_eq!(ok("\"\" ''"), ["", ""]);
    assert_eq!(ok(r#""a b" 'c d'"#), ["a b", "c d"]);
    assert_eq!(ok(r#""\n\t\"\\\x41\x7a""#), ["\n\t\"\\Az"]);
    assert_eq!(ok(r#""\xc3\xa9""#), ["é"]);
    assert_eq!(
        ok(r#""\xzz\q""#),
        ["xzzq"],
        "not an escape: the letter itself"
    );
    assert_eq!(ok(r"'it\'s' 'a\nb'"), ["it's", "a\\nb"]);
    assert_eq!(ok("pre\"fix\" x"), ["prefix", "x"]);
    assert_eq!(ok("a#b"), ["a#b"]);
}

#[test]
fn tokenizer_rejects_bad_quotes() {
    assert_eq!(split("\"open"), Err(QuoteError::Unbalanced));
    assert_eq!(split("'open"), Err(QuoteError::Unbalanced));
    assert_eq!(split("\"ends in escape\\"), Err(QuoteError::Unbalanced));
    assert_eq!(split("'it\\'"), Err(QuoteError::Unbalanced));
    assert_eq!(split("\"a\"b"), Err(QuoteError::Glued));
    assert_eq!(split("'a''b'"), Err(QuoteError::Glued));
    assert_eq!(split("\"\\xff\""), Err(QuoteError::NotUtf8));
}

#[test]
fn output_runs_the_sentinel_core() {
    let (_, s) = round_trip(AUTH);
    let config = Config::from_settings(Settings {
        notification_script: None,
        client_reconfig_script: None,
        ..s
    })
    .expect("valid");
    assert!(matches!(config.source, Source::Core(_)));
}

#[test]
fn a_line_without_words_is_skipped_not_a_panic() {
    // The splitting stops at a NUL byte, so this line has no words at all.
    let conf = format!("{MINIMAL}\n\0port 1\n");
    let (with_nul, _) = round_trip(&conf);
    let (without, _) = round_trip(MINIMAL);
    assert_eq!(with_nul.toml, without.toml);
}

#[test]
fn the_reboot_down_period_is_carried_over_under_either_name() {
    for directive in [
        "master-reboot-down-after-period",
        "primary-reboot-down-after-period",
    ] {
        let conf = format!("sentinel monitor m 127.0.0.1 6380 1\nsentinel {directive} m 7000\n");
        let (out, s) = round_trip(&conf);
        assert_eq!(s.master_reboot_down_after_ms, Some(7000), "{directive}");
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }
    let (_, s) = round_trip("sentinel monitor m 127.0.0.1 6380 1\n");
    assert_eq!(s.master_reboot_down_after_ms, None, "off unless given");
    let both = "sentinel monitor m 127.0.0.1 6380 1\n\
                sentinel master-reboot-down-after-period m 7000\n\
                sentinel primary-reboot-down-after-period m 8000\n";
    let (out, s) = round_trip(both);
    assert_eq!(
        s.master_reboot_down_after_ms,
        Some(8000),
        "the last one counts"
    );
    assert!(
        out.notes
            .iter()
            .any(|n| n.starts_with("line 3:") && n.contains("repeats line 2")),
        "the two spellings are one directive: {:?}",
        out.notes
    );
}

/// A Sentinel with a TLS port: the port becomes `tls_sentinel_listen` on
/// `bind`'s address, the files and `tls-auth-clients` carry over as given,
/// `tls-replication yes` becomes `tls_backend`, and what the proxy cannot
/// do (cipher lists) is noted.
#[test]
fn tls_lines_carry_over_to_the_tls_sentinel_endpoint() {
    let conf = "port 26379\nbind 10.0.0.7\ntls-port 26380\ntls-cert-file /etc/tls/s.crt\n\
                tls-key-file /etc/tls/s.key\ntls-ca-cert-file /etc/tls/ca.crt\n\
                tls-auth-clients optional\ntls-replication yes\ntls-ciphers DEFAULT\n\
                tls-client-cert-file /etc/tls/c.crt\ntls-client-key-file /etc/tls/c.key\n\
                sentinel monitor mymaster 10.0.0.1 6379 2\n";
    let out = convert(conf).expect("converts");
    let s: Settings = toml::from_str(&out.toml).expect("valid TOML");
    assert_eq!(s.sentinel_listen.as_deref(), Some("10.0.0.7:26379"));
    assert_eq!(s.tls_sentinel_listen.as_deref(), Some("10.0.0.7:26380"));
    assert_eq!(
        s.tls_cert_file.as_deref(),
        Some(std::path::Path::new("/etc/tls/s.crt"))
    );
    assert_eq!(
        s.tls_key_file.as_deref(),
        Some(std::path::Path::new("/etc/tls/s.key"))
    );
    assert_eq!(
        s.tls_ca_cert_file.as_deref(),
        Some(std::path::Path::new("/etc/tls/ca.crt"))
    );
    assert_eq!(
        s.tls_auth_clients,
        Some(crate::config::TlsAuthClients::Optional)
    );
    assert!(s.tls_listen.is_none(), "sentinel.conf has no client port");
    assert_eq!(
        s.tls_client_cert_file.as_deref(),
        Some(std::path::Path::new("/etc/tls/c.crt"))
    );
    assert_eq!(
        s.tls_client_key_file.as_deref(),
        Some(std::path::Path::new("/etc/tls/c.key"))
    );
    let notes = out.notes.join("\n");
    assert_eq!(s.tls_backend, Some(true), "tls-replication yes");
    assert!(
        notes.contains("`tls-ciphers`: the proxy uses rustls's safe defaults"),
        "{notes}"
    );

    // Without a TLS port the files have nothing to serve: noted, not set.
    let conf = "tls-cert-file /etc/tls/s.crt\nsentinel monitor mymaster 10.0.0.1 6379 2\n";
    let out = convert(conf).expect("converts");
    let s: Settings = toml::from_str(&out.toml).expect("valid TOML");
    assert!(s.tls_cert_file.is_none() && s.tls_sentinel_listen.is_none());
    assert!(
        out.notes.join("\n").contains("no tls-port"),
        "{:?}",
        out.notes
    );
    assert!(
        err("tls-auth-clients maybe\nsentinel monitor m 10.0.0.1 6379 2\n")
            .contains("tls-auth-clients is yes, no or optional")
    );
}

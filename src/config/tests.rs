//! Validation: every field's limits, and the one-line errors that name it.

use super::*;

fn settings(master: &str) -> Settings {
    Settings {
        master: Some(master.to_owned()),
        ..Settings::default()
    }
}

#[test]
fn defaults_follow_the_cli_contract() {
    let config = Config::from_settings(settings("127.0.0.1:6000")).expect("valid");
    assert_eq!(config.listen, "127.0.0.1:6379".parse().ok());
    assert_eq!(config.master_name, "mymaster");
    assert_eq!(config.hold_timeout, Duration::from_millis(15000));
    assert_eq!(config.drain_timeout, Duration::from_millis(5000));
    assert_eq!(config.max_clients, 10_000);
    assert_eq!(config.on_switch, OnSwitch::Rebind);
    assert_eq!(config.idle_release, None);
}

#[test]
fn errors_name_the_field_and_what_is_allowed() {
    let err = |s: Settings| Config::from_settings(s).expect_err("invalid").to_string();
    assert_eq!(
        err(Settings::default()),
        "master: required: give master HOST:PORT (or a data_dir that knows it), \
         or at least one sentinel HOST:PORT"
    );
    assert!(err(settings("nonsense")).starts_with("master: 'nonsense' is not HOST:PORT"));
    let mut s = settings("127.0.0.1:1");
    s.max_clients = Some(0);
    assert!(err(s).starts_with("max_clients: must be between 1 and"));
    let mut s = settings("127.0.0.1:1");
    s.sentinels = vec!["127.0.0.1:2".into()];
    assert!(err(s).starts_with("master: give either master"));
    let s = Settings {
        sentinels: vec!["127.0.0.1:2".into(), "127.0.0.1:2".into()],
        ..Settings::default()
    };
    assert_eq!(err(s), "sentinel: each Sentinel may be listed once");
}

#[test]
fn the_file_is_strict_and_flags_override_it() {
    let file: Settings =
        toml::from_str("master = \"127.0.0.1:7000\"\nhold_timeout_ms = 100\n").expect("valid toml");
    let flags = Settings {
        hold_timeout_ms: Some(200),
        ..Settings::default()
    };
    let config = Config::from_settings(file.overlay(flags)).expect("valid");
    assert_eq!(config.hold_timeout, Duration::from_millis(200));
    assert!(toml::from_str::<Settings>("hold_timeout = 1").is_err());
}

#[test]
fn secrets_are_redacted() {
    let mut s = settings("127.0.0.1:1");
    s.auth_pass = Some("hunter2".into());
    s.requirepass = Some("swordfish".into());
    let text = Config::from_settings(s).expect("valid").describe();
    assert!(
        !text.contains("hunter2") && !text.contains("swordfish"),
        "{text}"
    );
    assert!(text.contains("auth_pass = \"<redacted>\""));
}

/// `[[group]]` tables add groups that inherit the top-level timings; names
/// and endpoints must be unique, and the errors name the table.
#[test]
fn group_tables_add_groups_with_their_own_names_and_endpoints() {
    let parse = |text: &str| {
        let file: Settings = toml::from_str(text).expect("valid toml");
        Config::from_settings(file)
    };
    let top = "master = \"127.0.0.1:7000\"\nlisten = \"127.0.0.1:6000\"\ndown_after_ms = 1500\n";
    let config = parse(&format!(
        "{top}[[group]]\nname = \"cache\"\nmaster = \"127.0.0.1:7100\"\nlisten = \"127.0.0.1:6001\"\nquorum = 1\n\
         [[group]]\nname = \"queue\"\nmaster = \"127.0.0.1:7200\"\n"
    ))
    .expect("valid");
    assert_eq!(config.groups.len(), 2);
    assert_eq!(
        config.groups[0].listen,
        Some("127.0.0.1:6001".parse().expect("addr"))
    );
    assert_eq!(config.groups[0].quorum, 1);
    assert_eq!(config.groups[1].listen, None);
    assert_eq!(
        config.groups[1].down_after,
        Duration::from_millis(1500),
        "inherited"
    );
    assert!(config.describe().contains("[[group]] name = \"cache\""));
    let err = |text: String| parse(&text).expect_err("invalid").to_string();
    assert_eq!(
        err(format!(
            "{top}[[group]]\nname = \"mymaster\"\nmaster = \"127.0.0.1:7100\"\n"
        )),
        "group: [[group]] 'mymaster': the name is used by another group; each group needs its own"
    );
    assert_eq!(
        err(format!(
            "{top}[[group]]\nname = \"c\"\nmaster = \"127.0.0.1:7100\"\nlisten = \"127.0.0.1:6000\"\n"
        )),
        "group: [[group]] 'c': listen 127.0.0.1:6000 is another group's endpoint"
    );
    assert_eq!(
        err(format!("{top}[[group]]\nname = \"c\"\n")),
        "group: [[group]] 'c': master: required: HOST:PORT"
    );
    assert!(
        err(format!("{top}[[group]]\nmaster = \"127.0.0.1:7100\"\n"))
            .starts_with("group: [[group]] number 1: name is required")
    );
    assert!(
        err(format!("{top}[[group]]\nname = \"c\"\nmaster = \"x\"\n"))
            .starts_with("group: [[group]] 'c': master: 'x' is not HOST:PORT")
    );
    let follow =
        "sentinel = [\"127.0.0.1:26379\"]\n[[group]]\nname = \"c\"\nmaster = \"127.0.0.1:7100\"\n";
    assert!(
        parse(follow)
            .expect_err("invalid")
            .to_string()
            .starts_with("group: more groups need")
    );
}

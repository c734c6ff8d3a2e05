//! The operations material names only metrics the proxy exports: the Grafana
//! dashboard (`config/grafana-dashboard.json`), the Prometheus alerting rules
//! (`config/prometheus-alerts.yml`) and `docs/operations.md`, checked against
//! the `pub const` names in `src/metrics.rs` (read as text). A renamed metric
//! fails here instead of leaving an empty panel or an alert that never fires.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

const PREFIX: &str = "sentinel_proxy_";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The metric names `src/metrics.rs` defines: `pub const IDENT: &str = "name";`,
/// by constant name.
fn defined() -> BTreeMap<String, String> {
    let source = read("src/metrics.rs");
    let mut names = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((ident, value)) = rest.split_once(": &str = ") else {
            continue;
        };
        let value = value.trim().trim_end_matches(';').trim_matches('"');
        if value.starts_with(PREFIX) {
            names.insert(ident.trim().to_owned(), value.to_owned());
        }
    }
    assert!(
        names.len() >= 20,
        "expected the metric names of src/metrics.rs, found {names:?}"
    );
    names
}

/// The names of the histograms: the constants passed to `describe_histogram!`,
/// and the proxy-added latency that `metrics::render_latency` writes itself.
fn histograms() -> BTreeSet<String> {
    let source = read("src/metrics.rs");
    let names = defined();
    let found: BTreeSet<String> = source
        .split("describe_histogram!(")
        .skip(1)
        .filter_map(|rest| {
            let ident: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.get(&ident).cloned()
        })
        .collect();
    assert!(
        found.contains("sentinel_proxy_failover_duration_seconds"),
        "describe_histogram! calls not found in src/metrics.rs: {found:?}"
    );
    // Rendered by hand from the data path's atomic histograms.
    let mut found = found;
    found.insert("sentinel_proxy_added_latency_seconds".to_owned());
    found
}

/// Every `sentinel_proxy_[a-z_]+` word in `text`.
fn metric_words(text: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(PREFIX) {
        let start = from + at;
        let boundary = start == 0 || {
            let before = bytes[start - 1];
            !(before.is_ascii_alphanumeric() || before == b'_')
        };
        let end = start
            + PREFIX.len()
            + text[start + PREFIX.len()..]
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                .count();
        if boundary && end > start + PREFIX.len() {
            words.insert(text[start..end].to_owned());
        }
        from = end.max(start + 1);
    }
    words
}

/// The words of `words` that name no exported series: neither a defined
/// metric nor a histogram's `_bucket`, `_sum` or `_count`.
fn unknown(words: &BTreeSet<String>) -> Vec<String> {
    let defined: BTreeSet<String> = defined().into_values().collect();
    let histograms = histograms();
    words
        .iter()
        .filter(|word| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .filter(|base| histograms.contains(*base));
            !defined.contains(word.as_str()) && base.is_none()
        })
        .cloned()
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&read("config/grafana-dashboard.json"))
        .unwrap_or_else(|err| panic!("config/grafana-dashboard.json is not JSON: {err}"))
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let top = dashboard["panels"].as_array().expect("a panels array");
    for panel in top {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

/// Every PromQL text in the dashboard: targets' and annotations' `expr`, and
/// the template variables' queries.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition" | "query", Value::String(text)) => {
                        out.push(text.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn every_metric_the_dashboard_queries_exists() {
    let mut texts = Vec::new();
    queries(&dashboard(), &mut texts);
    let exprs: Vec<&String> = texts.iter().filter(|t| t.contains(PREFIX)).collect();
    assert!(
        exprs.len() >= 30,
        "expected the dashboard's queries, found {}",
        exprs.len()
    );
    let words: BTreeSet<String> = exprs.iter().flat_map(|e| metric_words(e)).collect();
    let unknown = unknown(&words);
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics src/metrics.rs does not define: {unknown:?}"
    );
}

#[test]
fn every_metric_is_on_the_dashboard() {
    let mut texts = Vec::new();
    queries(&dashboard(), &mut texts);
    let words: BTreeSet<String> = texts.iter().flat_map(|e| metric_words(e)).collect();
    let histograms = histograms();
    let missing: Vec<String> = defined()
        .into_values()
        .filter(|name| {
            let variants = if histograms.contains(name) {
                vec![format!("{name}_bucket"), format!("{name}_sum")]
            } else {
                vec![name.clone()]
            };
            !variants.iter().any(|v| words.contains(v))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "metrics with no panel on the dashboard: {missing:?}"
    );
}

#[test]
fn the_dashboard_has_its_rows_variables_and_data_source() {
    let dashboard = dashboard();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36,
        "schemaVersion should be Grafana 10's (36 or later)"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name);
    let datasource = variable("datasource").expect("a `datasource` template variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let master_name = variable("master_name").expect("a `master_name` template variable");
    assert!(
        master_name["definition"]
            .as_str()
            .is_some_and(|q| q.contains("sentinel_proxy_master_info")),
        "master_name should list the master_name labels of sentinel_proxy_master_info"
    );

    let all = panels(&dashboard);
    let rows: Vec<&str> = all
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for row in ["Topology", "Failovers", "Traffic", "Process"] {
        assert!(rows.contains(&row), "no `{row}` row; rows are {rows:?}");
    }
    let mut ids = BTreeSet::new();
    for panel in &all {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        let id = panel["id"].as_u64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "panel id {id} is used twice ({title})");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel `{title}` should use the datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel `{title}` has no query");
        for target in targets {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "panel `{title}` has an empty query"
            );
        }
        for key in ["h", "w", "x", "y"] {
            assert!(
                panel["gridPos"][key].is_u64(),
                "panel `{title}` has no gridPos.{key}"
            );
        }
    }
}

/// The alert names in a rules text: `- alert: Name` lines.
fn alert_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn every_metric_the_alert_rules_use_exists() {
    let rules = read("config/prometheus-alerts.yml");
    let scenarios = read("tests/prometheus/alerts.test.yml");
    let words: BTreeSet<String> = metric_words(&rules)
        .into_iter()
        .chain(metric_words(&scenarios))
        .collect();
    assert!(
        words.len() >= 10,
        "expected the rules' metrics, found {words:?}"
    );
    let unknown = unknown(&words);
    assert!(
        unknown.is_empty(),
        "the alert rules or their promtool scenarios use metrics src/metrics.rs does not define: {unknown:?}"
    );
    let names = alert_names(&rules);
    let expected = [
        "SentinelProxyNoRoutableMaster",
        "SentinelProxyQuorumUnreachable",
        "SentinelProxyFailoverSlow",
        "SentinelProxyFailoverAborted",
        "SentinelProxyReplicaLagHigh",
        "SentinelProxyCommandsRefused",
        "SentinelProxyPeerUnreachable",
    ];
    for alert in expected {
        assert!(names.contains(alert), "no alert `{alert}`: {names:?}");
    }
    let count = rules
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert_eq!(count, names.len(), "an alert name is used twice");
}

#[test]
fn the_operations_guide_shows_the_same_rules_and_real_metrics() {
    let guide = read("docs/operations.md");
    let unknown = unknown(&metric_words(&guide));
    assert!(
        unknown.is_empty(),
        "docs/operations.md names metrics src/metrics.rs does not define: {unknown:?}"
    );
    let rules = alert_names(&read("config/prometheus-alerts.yml"));
    let documented = alert_names(&guide);
    assert_eq!(
        documented, rules,
        "docs/operations.md and config/prometheus-alerts.yml should show the same alerts"
    );
}

#[test]
fn metric_words_are_found_whole() {
    let words = metric_words(
        "rate(sentinel_proxy_commands_total{class=\"read\"}[1m]) x_sentinel_proxy_no sentinel_proxy_*",
    );
    assert_eq!(
        words.into_iter().collect::<Vec<_>>(),
        vec!["sentinel_proxy_commands_total".to_owned()]
    );
    let bogus: BTreeSet<String> = [
        "sentinel_proxy_commands_total_count",
        "sentinel_proxy_hold_duration_seconds_bucket",
        "sentinel_proxy_nonexistent",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        unknown(&bogus),
        vec![
            "sentinel_proxy_commands_total_count".to_owned(),
            "sentinel_proxy_nonexistent".to_owned()
        ]
    );
}

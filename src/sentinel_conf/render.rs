//! Writing a [`Plan`] as the proxy's TOML config file: a header, each entry
//! with its comment, the `peer` list, the known replicas as comments, and the
//! notes as comments at the end.
//!
//! Values are written by the `toml` crate (see `map`), so any string from the
//! file is quoted and escaped as TOML needs; comments go through [`comment`],
//! which escapes control characters so that nothing taken from the file can
//! end a comment line and start a setting of its own.

use super::join_numbers;
use super::map::{Plan, from_line, toml_string};
use super::parse::Sourced;

/// The file's opening comment: where it came from and what to do next.
const HEADER: &str = "\
# converted from sentinel.conf by sentinel-proxy import-sentinel-conf
#
# The proxy's built-in sentinel core takes the place of the Sentinel that used
# that file: stop it before the proxy takes its port. Check this file with
# `sentinel-proxy check-config -c FILE`; the notes at the end say what was not
# carried over.
";

/// The whole file: header, entries, peers, replicas and `notes` (the plan's
/// notes, already rendered as lines).
pub(super) fn render(plan: &Plan, notes: &[String]) -> String {
    let mut out = String::from(HEADER);
    for entry in &plan.entries {
        out.push('\n');
        comment(&mut out, &entry.comment);
        let hash = if entry.active { "" } else { "# " };
        out.push_str(&format!("{hash}{} = {}\n", entry.key, entry.value));
    }
    render_peers(&mut out, &plan.peers);
    render_replicas(&mut out, &plan.replicas);
    render_notes(&mut out, notes);
    out
}

/// The `peer` list, always written: empty, with a reminder, when the file
/// knew no other Sentinel.
fn render_peers(out: &mut String, peers: &[Sourced<String>]) {
    out.push('\n');
    if peers.is_empty() {
        comment(
            out,
            "The group's other voters (Sentinels or proxies); sentinel.conf knew none: list them.",
        );
        out.push_str("peer = []\n");
        return;
    }
    let lines: Vec<usize> = peers.iter().map(|p| p.line).collect();
    comment(
        out,
        &format!(
            "The group's other voters, who with this proxy elect a failover's leader: the Sentinels this one knew (known-sentinel, sentinel.conf lines {}).",
            join_numbers(&lines)
        ),
    );
    out.push_str("peer = [\n");
    for peer in peers {
        out.push_str(&format!("    {},\n", toml_string(&peer.value)));
    }
    out.push_str("]\n");
}

/// The known replicas, as comments only; nothing when there are none.
fn render_replicas(out: &mut String, replicas: &[Sourced<String>]) {
    if replicas.is_empty() {
        return;
    }
    out.push('\n');
    comment(
        out,
        "Replicas Sentinel knew (known-replica); the proxy finds them from the master's INFO:",
    );
    for replica in replicas {
        comment(
            out,
            &format!("  {} ({})", replica.value, from_line(replica.line)),
        );
    }
}

/// The notes, one `# - ` comment each, under a `# Notes:` heading.
fn render_notes(out: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    out.push('\n');
    comment(out, "Notes:");
    for note in notes {
        comment(out, &format!("- {note}"));
    }
}

/// Appends `# text`, escaped onto one line: control characters (a newline
/// above all) are written as escapes, so the comment cannot end early.
fn comment(out: &mut String, text: &str) {
    out.push_str("# ");
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}

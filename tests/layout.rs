//! The shape of the source tree, checked: every file under `src/` stays
//! readable (at most 600 lines), no two modules import each other, and the
//! data path never imports the control path (`ARCHITECTURE.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Longest source file, tests included.
const MAX_LINES: usize = 600;

/// Modules of the data path, and the control-path modules they may not use.
const DATA_PATH: &[&str] = &["proxy", "resp", "backend::connect"];
const CONTROL_PATH: &[&str] = &["control", "sentinel", "follow", "admin", "app", "catalog"];

/// Every source file as (module path, text): `src/a/b.rs` and
/// `src/a/b/mod.rs` are `a::b`; the crate root is the empty path.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        let entries = std::fs::read_dir(dir).expect("read src/");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix("src").expect("under src/");
                let mut parts: Vec<String> = rel
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                out.insert(parts.join("::"), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

/// The code of `text` without comments and without its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `module` names through `crate::`, `super::` or `self::`
/// paths, each taken as deep as it names a module.
fn uses(module: &str, text: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let code = code(text);
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let len = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            let words: Vec<&str> = code[at..at + len]
                .split("::")
                .filter(|w| !w.is_empty())
                .collect();
            let mut path: Vec<&str> = if module.is_empty() {
                Vec::new()
            } else {
                module.split("::").collect()
            };
            let mut rest = &words[..];
            match rest.first() {
                Some(&"crate") => {
                    path.clear();
                    rest = &rest[1..];
                }
                Some(&"self") => rest = &rest[1..],
                _ => {
                    while rest.first() == Some(&"super") {
                        path.pop();
                        rest = &rest[1..];
                    }
                }
            }
            for word in rest {
                let mut deeper = path.clone();
                deeper.push(word);
                if all.contains_key(&deeper.join("::")) {
                    path = deeper;
                } else {
                    break;
                }
            }
            let target = path.join("::");
            if target != module {
                found.insert(target);
            }
        }
    }
    found
}

/// Whether `inner` is `outer` or lies inside it.
fn within(inner: &str, outer: &str) -> bool {
    outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}::"))
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let long: Vec<String> = modules()
        .iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(module, text)| format!("{module}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn no_two_modules_import_each_other() {
    let all = modules();
    let graph: BTreeMap<&String, BTreeSet<String>> = all
        .iter()
        .map(|(module, text)| (module, uses(module, text, &all)))
        .collect();
    let mut circles = Vec::new();
    for (a, targets) in &graph {
        for b in targets {
            // A parent and its child files are one module split by job.
            if a.as_str() < b.as_str()
                && !within(a, b)
                && !within(b, a)
                && graph.get(b).is_some_and(|t| t.contains(a.as_str()))
            {
                circles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules importing each other: {circles:?}"
    );
}

#[test]
fn the_data_path_never_imports_the_control_path() {
    let all = modules();
    let mut crossings = Vec::new();
    for (module, text) in &all {
        if !DATA_PATH.iter().any(|d| within(module, d)) {
            continue;
        }
        for target in uses(module, text, &all) {
            if CONTROL_PATH.iter().any(|c| within(&target, c)) {
                crossings.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "data path importing the control path: {crossings:?}"
    );
}

#[test]
fn the_import_check_sees_a_circle() {
    // The checks above must be able to fail: two made-up modules that use
    // each other are found.
    let mut all = BTreeMap::new();
    all.insert("a".to_owned(), "use crate::b::Thing;".to_owned());
    all.insert("b".to_owned(), "use super::a::Other;".to_owned());
    assert!(uses("a", &all["a"], &all).contains("b"));
    assert!(uses("b", &all["b"], &all).contains("a"));
    // Comments do not count.
    assert!(uses("a", "// see crate::b", &all).is_empty());
}

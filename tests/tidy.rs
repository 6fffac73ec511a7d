//! Code-base checks that run as ordinary tests: module docs, the allowed
//! dependency direction between modules, and no leftover debugging macros.

#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which crate modules each module may import (`use crate::<m>` / `crate::<m>::`).
/// The direction is doors → gate → {oidc, session, policy} → cache → telemetry,
/// with `clock` at the bottom and `config` building everyone's settings.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    let mut m: BTreeMap<&'static str, &'static [&'static str]> = BTreeMap::new();
    m.insert("clock", &[]);
    m.insert("telemetry", &["clock"]);
    m.insert("breaker", &["clock"]);
    m.insert("cache", &["breaker", "telemetry", "clock"]);
    m.insert("oidc", &["cache", "telemetry", "clock"]);
    m.insert("session", &["cache", "telemetry", "clock"]);
    m.insert("policy", &["cache", "telemetry", "clock"]);
    m.insert(
        "gate",
        &[
            "oidc",
            "session",
            "policy",
            "cache",
            "breaker",
            "telemetry",
            "clock",
        ],
    );
    m.insert(
        "doors",
        &[
            "gate",
            "oidc",
            "session",
            "policy",
            "cache",
            "telemetry",
            "clock",
        ],
    );
    m.insert(
        "runtime",
        &[
            "config",
            "doors",
            "gate",
            "oidc",
            "session",
            "policy",
            "cache",
            "telemetry",
            "clock",
        ],
    );
    m.insert(
        "config",
        &[
            "doors",
            "gate",
            "oidc",
            "session",
            "policy",
            "cache",
            "telemetry",
            "clock",
        ],
    );
    m
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut v);
    v.sort();
    v
}

fn module_of(path: &Path) -> Option<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut missing = Vec::new();
    for f in src_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let is_test_file = f.file_name().is_some_and(|n| n == "tests.rs");
        if !is_test_file && !text.trim_start().starts_with("//!") {
            missing.push(f.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:#?}"
    );
}

#[test]
fn modules_import_only_downward() {
    let rules = allowed();
    let mut violations = Vec::new();
    for f in src_files() {
        let Some(module) = module_of(&f) else {
            continue;
        };
        let Some(ok) = rules.get(module.as_str()) else {
            violations.push(format!(
                "{}: module `{module}` has no rule in tests/tidy.rs",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                let tail = &rest[i + 7..];
                let target: String = tail
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !target.is_empty()
                    && target != module
                    && rules.contains_key(target.as_str())
                    && !ok.contains(&target.as_str())
                {
                    violations.push(format!(
                        "{}:{}: `{module}` must not use `{target}`",
                        f.display(),
                        n + 1
                    ));
                }
                rest = &tail[target.len()..];
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependency direction violated:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_leftover_debugging_macros() {
    let mut hits = Vec::new();
    for f in src_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for needle in ["todo!(", "dbg!(", "unimplemented!("] {
                if line.contains(needle) {
                    hits.push(format!("{}:{}: {needle}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "leftovers: {hits:#?}");
}

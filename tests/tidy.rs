//! Code-base checks that run as ordinary tests: module docs, the allowed
//! dependency direction between modules, no leftover debugging macros, and
//! no production function longer than a hundred lines.

#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which crate modules each module imports (`use crate::<m>` / `crate::<m>::`):
/// exactly the edges that exist, so a new edge is a decision made here. The
/// direction is doors → gate → {oidc, session, policy} → cache → breaker →
/// telemetry → clock, with `config` building everyone's settings and
/// `runtime` running the process.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    let mut m: BTreeMap<&'static str, &'static [&'static str]> = BTreeMap::new();
    m.insert("clock", &[]);
    m.insert("telemetry", &[]);
    m.insert("breaker", &["clock"]);
    m.insert("cache", &["breaker", "telemetry"]);
    m.insert("oidc", &["telemetry", "clock"]);
    m.insert("session", &["cache"]);
    m.insert("policy", &[]);
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
    m.insert("doors", &["gate", "policy", "telemetry"]);
    m.insert(
        "runtime",
        &["config", "doors", "gate", "cache", "telemetry", "clock"],
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
        ],
    );
    m
}

/// Production functions allowed past [`MAX_FUNCTION_LINES`], each with the
/// reason it reads better whole. An entry that no longer needs the
/// exception fails the test, so the list stays true.
const LONG_FUNCTIONS: &[(&str, &str, &str)] = &[
    (
        "src/cache/metrics.rs",
        "collect",
        "the list of the cache's metric families, one block per family",
    ),
    (
        "src/config/mod.rs",
        "from_raw",
        "the wiring of every concern into the settings, in one readable order",
    ),
    (
        "src/config/headers.rs",
        "security",
        "one refusal per security-header key, in the order of the docs",
    ),
    (
        "src/policy/template/parse.rs",
        "term",
        "one arm per term of the template grammar",
    ),
    (
        "src/doors/server.rs",
        "serve_with",
        "the accept loop with its limits and graceful shutdown, one select",
    ),
];

/// Longest production function, in lines from `fn` to its closing brace.
const MAX_FUNCTION_LINES: usize = 100;

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

/// The text of `path` without its tests: `tests.rs` files are empty, other
/// files end at their first `#[cfg(test)]` line.
fn production_text(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim() == "#[cfg(test)]" {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `text` with comments, string and character literals blanked (newlines
/// kept), so that braces and `fn` can be found by looking at characters.
fn code_only(text: &str) -> Vec<char> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(c.len());
    let mut i = 0;
    let blank = |out: &mut Vec<char>, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    blank(&mut out, c[i]);
                    i += 1;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    blank(&mut out, c[i]);
                    i += 1;
                    if depth == 0 {
                        blank(&mut out, c[i]);
                        i += 1;
                        break;
                    }
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == 'r' && !ident_before && matches!(c.get(i + 1), Some('"') | Some('#')) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            while j < c.len() {
                if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &c[i..j.min(c.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime.
            let end = if c.get(i + 1) == Some(&'\\') {
                (i + 2..c.len().min(i + 12)).find(|&j| c[j] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for &ch in &c[i..=e] {
                        blank(&mut out, ch);
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Every function with a body in `text`: (name, first line, line count).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let c = code_only(text);
    let line_at = |i: usize| c[..i].iter().filter(|&&ch| ch == '\n').count() + 1;
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut found = Vec::new();
    let mut i = 0;
    while i + 2 < c.len() {
        let starts_fn = c[i] == 'f'
            && c[i + 1] == 'n'
            && c[i + 2].is_whitespace()
            && (i == 0 || !is_ident(c[i - 1]));
        if !starts_fn {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        let name: String = c[j..].iter().take_while(|&&ch| is_ident(ch)).collect();
        // The body starts at the first `{` (a `;` first: no body).
        let Some(open) = (j..c.len()).find(|&k| c[k] == '{' || c[k] == ';') else {
            break;
        };
        if c[open] == '{' && !name.is_empty() {
            let mut depth = 0usize;
            let mut close = open;
            for (k, &ch) in c.iter().enumerate().skip(open) {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let first = line_at(i);
            found.push((name, first, line_at(close) - first + 1));
        }
        i = j;
    }
    found
}

#[test]
fn function_lengths_are_measured_from_fn_to_closing_brace() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n}\n// fn b() {\nfn c<'x>(v: &'x str) -> &'x str { v }\n";
    assert_eq!(
        functions(text),
        vec![("a".to_owned(), 1, 4), ("c".to_owned(), 6, 1)]
    );
}

#[test]
fn no_production_function_exceeds_a_hundred_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    let mut excepted_and_long = Vec::new();
    for f in src_files() {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        for (name, line, lines) in functions(&production_text(&f)) {
            if lines <= MAX_FUNCTION_LINES {
                continue;
            }
            if LONG_FUNCTIONS
                .iter()
                .any(|(file, n, _)| *file == rel && *n == name)
            {
                excepted_and_long.push((rel.clone(), name));
            } else {
                long.push(format!("{rel}:{line}: `{name}` has {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them, or list them in \
         LONG_FUNCTIONS with the reason):\n{}",
        long.join("\n")
    );
    let stale: Vec<_> = LONG_FUNCTIONS
        .iter()
        .filter(|(file, n, _)| {
            !excepted_and_long
                .iter()
                .any(|(f, name)| f == file && name == n)
        })
        .map(|(file, n, _)| format!("{file}: `{n}`"))
        .collect();
    assert!(
        stale.is_empty(),
        "LONG_FUNCTIONS entries no longer over {MAX_FUNCTION_LINES} lines: {stale:?}"
    );
}

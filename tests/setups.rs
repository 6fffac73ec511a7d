//! The documented set-ups are the tested ones: every proxy configuration the
//! docs show is a file under `deploy/`, quoted verbatim (the end-to-end suite
//! runs those files), and every one of them removes or overwrites every
//! identity header the gate knows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use oidcgate::policy::IDENTITY_HEADERS;
use serde_yaml::Value;

/// The proxy set-ups: quoted in the docs, run by `e2e/run`.
const PROXY_FILES: &[&str] = &[
    "deploy/traefik/dynamic.yaml",
    "deploy/kubernetes/middleware.yaml",
    "deploy/caddy/Caddyfile",
    "deploy/nginx/oidcgate.conf",
];

/// The files `e2e/run` instantiates (the Kubernetes CRD is compared with the
/// Traefik file instead: no cluster runs here).
const E2E_FILES: &[&str] = &[
    "deploy/traefik/dynamic.yaml",
    "deploy/caddy/Caddyfile",
    "deploy/nginx/oidcgate.conf",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&read(rel))
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(*k)
            .unwrap_or_else(|| panic!("no key {k} (path {path:?})"))
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x:?}"))
                .to_owned()
        })
        .collect()
}

fn lower(names: &[String]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_ascii_lowercase()).collect()
}

/// Every `<!-- file: PATH -->` marker in `md`, with the fenced block after it.
fn quotes(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- file: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{path}: no code block after the marker"
        );
        let mut body = String::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.push((path.to_owned(), body));
    }
    out
}

#[test]
fn docs_quote_the_deploy_files_verbatim() {
    let mut quoted = BTreeSet::new();
    for entry in fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let md = fs::read_to_string(&path).expect("read");
        for (file, body) in quotes(&md) {
            assert_eq!(
                body,
                read(&file),
                "{} quotes {file} differently: paste the file into the doc",
                path.display()
            );
            quoted.insert(file);
        }
    }
    for file in PROXY_FILES {
        assert!(quoted.contains(*file), "{file} is quoted in no doc");
    }
}

#[test]
fn e2e_runs_the_documented_files() {
    let run = read("e2e/run");
    for file in E2E_FILES {
        let rel = file.trim_start_matches("deploy/");
        assert!(
            run.contains(&format!("instantiate \"$DEPLOY/{rel}\"")),
            "e2e/run does not run {file}"
        );
    }
}

/// The Traefik middleware of the file provider, and its list of headers.
fn traefik_forward_auth() -> Value {
    let docs = yaml_docs("deploy/traefik/dynamic.yaml");
    get(
        &docs[0],
        &["http", "middlewares", "oidcgate", "forwardAuth"],
    )
    .clone()
}

#[test]
fn traefik_replaces_every_identity_header() {
    let fa = traefik_forward_auth();
    let listed = lower(&strings(get(&fa, &["authResponseHeaders"])));
    for h in IDENTITY_HEADERS.iter().chain(&["authorization"]) {
        assert!(listed.contains(*h), "Traefik authResponseHeaders lacks {h}");
    }
    assert_eq!(get(&fa, &["trustForwardHeader"]).as_bool(), Some(false));
    let cookies = strings(get(&fa, &["addAuthCookiesToResponse"]));
    assert!(cookies.contains(&"_oidcgate_s_0".to_owned()));
    assert!(cookies.contains(&"_oidcgate_login".to_owned()));
}

#[test]
fn kubernetes_middleware_is_the_file_provider_middleware() {
    let docs = yaml_docs("deploy/kubernetes/middleware.yaml");
    let mw = docs
        .iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some("Middleware"))
        .expect("a Middleware resource");
    let mut crd = get(mw, &["spec", "forwardAuth"]).clone();
    let mut file = traefik_forward_auth();
    for v in [&mut crd, &mut file] {
        v.as_mapping_mut().expect("mapping").remove("address");
    }
    assert_eq!(
        crd, file,
        "the CRD's forwardAuth differs from deploy/traefik/dynamic.yaml"
    );
}

/// Header names written after `prefix` on lines of `text` (case kept).
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(prefix))
        .flat_map(|rest| rest.split_whitespace())
        .map(|n| n.trim_end_matches(';').to_ascii_lowercase())
        .collect()
}

#[test]
fn caddy_removes_copies_and_cleans_every_identity_header() {
    let caddy = read("deploy/caddy/Caddyfile");
    let removed: BTreeSet<String> = caddy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("request_header -"))
        .map(str::to_ascii_lowercase)
        .collect();
    let copied = names_after(&caddy, "copy_headers ");
    let cleaned = names_after(&caddy, "import oidcgate_unset ");
    for h in IDENTITY_HEADERS {
        assert!(
            removed.contains(*h),
            "Caddyfile does not remove the client's {h}"
        );
        assert!(
            copied.contains(*h),
            "Caddyfile does not copy {h} from the gate"
        );
        assert!(
            cleaned.contains(*h),
            "Caddyfile does not clean up a missing {h}"
        );
    }
    assert!(
        removed.contains("*_*"),
        "underscore spellings must be removed"
    );
    let forward = caddy.find("forward_auth").expect("forward_auth");
    let auth = caddy
        .find("request_header -Authorization")
        .expect("Authorization removed");
    assert!(
        auth > forward,
        "Authorization must reach the gate before it is removed"
    );
}

#[test]
fn nginx_sets_every_identity_header_from_the_gate() {
    let nginx = read("deploy/nginx/oidcgate.conf");
    let mut set = BTreeSet::new();
    for line in nginx.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("proxy_set_header") {
            continue;
        }
        let (Some(name), Some(var)) = (w.next(), w.next()) else {
            continue;
        };
        let var = var.trim_end_matches(';');
        let taken = nginx.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("auth_request_set")
                && w.next() == Some(var)
                && w.next().map(|u| u.trim_end_matches(';'))
                    == Some(&format!(
                        "$upstream_http_{}",
                        name.to_ascii_lowercase().replace('-', "_")
                    ))
        });
        if taken {
            set.insert(name.to_ascii_lowercase());
        }
    }
    for h in IDENTITY_HEADERS.iter().chain(&["authorization"]) {
        assert!(
            set.contains(*h),
            "nginx does not set {h} from the gate's answer"
        );
    }
    assert!(
        nginx.contains("if ($oidcgate_api)"),
        "API clients must get 401"
    );
    assert!(!nginx.contains("underscores_in_headers on"));
}

#[test]
fn deploy_files_parse() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("deploy"), &mut files);
    let mut parsed = 0;
    for f in &files {
        let rel = f
            .strip_prefix(root())
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        match f.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                assert!(!yaml_docs(&rel).is_empty(), "{rel}: empty");
                parsed += 1;
            }
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&read(&rel))
                    .unwrap_or_else(|e| panic!("{rel}: {e}"));
                parsed += 1;
            }
            _ => {}
        }
    }
    assert!(parsed >= 2, "only {parsed} YAML/JSON files under deploy/");
}

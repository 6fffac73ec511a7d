//! The documented set-ups are the tested ones: every proxy configuration the
//! docs show is a file under `deploy/`, quoted verbatim (the end-to-end suite
//! runs those files), and every one of them removes or overwrites every
//! identity header the gate knows. The packaging files parse and agree with
//! the configuration defaults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use oidcgate::config::{Config, DEFAULT_LISTEN};
use oidcgate::doors::app::{HEALTHZ_PATH, READYZ_PATH};
use oidcgate::doors::ops::{CONVENTIONAL_METRICS_PORT, METRICS_PATH};
use oidcgate::policy::{FOREIGN_IDENTITY_HEADERS, IDENTITY_HEADERS};
use oidcgate::session::SessionCodec;
use serde_norway::Value;

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
    serde_norway::Deserializer::from_str(&read(rel))
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

/// Every header name the gate treats as identity: its own and the foreign
/// ones other tools trust.
fn every_identity_header() -> impl Iterator<Item = &'static str> {
    IDENTITY_HEADERS
        .iter()
        .chain(FOREIGN_IDENTITY_HEADERS)
        .copied()
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
    for h in every_identity_header().chain(["authorization"]) {
        assert!(listed.contains(h), "Traefik authResponseHeaders lacks {h}");
    }
    assert_eq!(get(&fa, &["trustForwardHeader"]).as_bool(), Some(false));
    let cookies = strings(get(&fa, &["addAuthCookiesToResponse"]));
    // Every cookie the gate can set with the default prefix, over HTTP and
    // over HTTPS (where the default names take the `__Host-` prefix).
    for force_https in [false, true] {
        let yaml = format!(
            "providerURL: https://idp.example.com\nclientID: c\nclientSecret: s\nsessionEncryptionKey: \"{}\"\nforceHTTPS: {force_https}\n",
            "k".repeat(32)
        );
        let cfg = Config::from_yaml(&yaml, &|_| None).expect("config");
        let codec = SessionCodec::new(cfg.session).expect("codec");
        for name in codec.cookie_names() {
            assert!(
                cookies.contains(&name),
                "Traefik addAuthCookiesToResponse lacks {name}"
            );
        }
    }
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
    let forward = caddy
        .find("\tforward_auth ")
        .expect("a forward_auth directive");
    let removed_first: BTreeSet<String> = caddy[..forward]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("request_header -"))
        .map(str::to_ascii_lowercase)
        .collect();
    for h in every_identity_header() {
        assert!(
            removed_first.contains(h),
            "Caddyfile does not remove the client's {h} before forward_auth"
        );
    }
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
        if var == "\"\"" {
            set.insert(name.to_ascii_lowercase());
            continue;
        }
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
    for h in FOREIGN_IDENTITY_HEADERS {
        assert!(set.contains(*h), "nginx does not remove the client's {h}");
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

// ---- packaging ------------------------------------------------------------

/// The port of the default listener (`listen`).
fn default_port() -> u16 {
    DEFAULT_LISTEN
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("DEFAULT_LISTEN has a port")
}

/// Parses an oidcgate configuration the way the binary does, with `env` as
/// the process environment.
fn config(yaml: &str, env: &BTreeMap<String, String>) -> Config {
    Config::from_yaml(yaml, &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("not a valid oidcgate configuration: {e}"))
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && get(d, &["metadata", "name"]).as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .expect("mapping")
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("not a scalar: {other:?}"),
            };
            (k.as_str().expect("string key").to_owned(), v)
        })
        .collect()
}

#[test]
fn kubernetes_probes_and_ports_match_the_defaults() {
    let docs = yaml_docs("deploy/kubernetes/oidcgate.yaml");
    let deployment = kind(&docs, "Deployment", "oidcgate");
    assert_eq!(get(deployment, &["spec", "replicas"]).as_u64(), Some(2));
    let pod = get(deployment, &["spec", "template", "spec"]);
    assert_eq!(
        get(pod, &["securityContext", "runAsNonRoot"]).as_bool(),
        Some(true)
    );
    let c = &get(pod, &["containers"]).as_sequence().expect("containers")[0];
    let ports = get(c, &["ports"]).as_sequence().expect("ports");
    let port_of = |name: &str| {
        ports
            .iter()
            .find(|p| get(p, &["name"]).as_str() == Some(name))
            .and_then(|p| get(p, &["containerPort"]).as_u64())
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    assert_eq!(port_of("http"), u64::from(default_port()));
    // Metrics: the container port, the scrape annotations and the
    // configuration's metricsAddress agree.
    let metrics_port = u64::from(CONVENTIONAL_METRICS_PORT);
    assert_eq!(port_of("metrics"), metrics_port);
    let annotations = string_map(get(
        deployment,
        &["spec", "template", "metadata", "annotations"],
    ));
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], metrics_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], METRICS_PATH);
    for (probe, path) in [
        ("livenessProbe", HEALTHZ_PATH),
        ("readinessProbe", READYZ_PATH),
    ] {
        assert_eq!(
            get(c, &[probe, "httpGet", "path"]).as_str(),
            Some(path),
            "{probe}"
        );
        assert_eq!(
            get(c, &[probe, "httpGet", "port"]).as_str(),
            Some("http"),
            "{probe}"
        );
    }

    // The configuration it mounts is valid, with the Secret as environment,
    // and listens on the probed port on every interface.
    let secret = string_map(get(kind(&docs, "Secret", "oidcgate"), &["stringData"]));
    let env_from = get(c, &["envFrom"]).as_sequence().expect("envFrom");
    assert_eq!(
        get(&env_from[0], &["secretRef", "name"]).as_str(),
        Some("oidcgate")
    );
    let map = kind(&docs, "ConfigMap", "oidcgate");
    let file = get(map, &["data", "config.yaml"])
        .as_str()
        .expect("config.yaml");
    let args = strings(get(c, &["args"]));
    assert_eq!(args, ["run", "--config", "/etc/oidcgate/config.yaml"]);
    let cfg = config(file, &secret);
    assert_eq!(cfg.listen.port(), default_port());
    assert!(
        cfg.listen.ip().is_unspecified(),
        "a pod must listen beyond loopback"
    );
    let metrics = cfg.ops.metrics_address.expect("metricsAddress set");
    assert_eq!(u64::from(metrics.port()), metrics_port);
    assert!(
        metrics.ip().is_unspecified(),
        "Prometheus scrapes the pod address"
    );

    let service = kind(&docs, "Service", "oidcgate");
    let sp = &get(service, &["spec", "ports"])
        .as_sequence()
        .expect("ports")[0];
    assert_eq!(get(sp, &["port"]).as_u64(), Some(u64::from(default_port())));
    assert_eq!(get(sp, &["targetPort"]).as_str(), Some("http"));

    // Redis: the address the gates use is the Redis Service.
    let redis = yaml_docs("deploy/kubernetes/redis.yaml");
    let rs = kind(&redis, "Service", "redis");
    let rport = get(
        &get(rs, &["spec", "ports"]).as_sequence().expect("ports")[0],
        &["port"],
    )
    .as_u64()
    .expect("port");
    let raw: Value = serde_norway::from_str(file).expect("yaml");
    let addr = get(&raw, &["redis", "address"])
        .as_str()
        .expect("redis.address");
    assert_eq!(addr, format!("redis.oidcgate.svc.cluster.local:{rport}"));

    // The Traefik middleware points at the Service.
    let mw = yaml_docs("deploy/kubernetes/middleware.yaml");
    let address = get(
        kind(&mw, "Middleware", "oidcgate"),
        &["spec", "forwardAuth", "address"],
    );
    assert_eq!(
        address.as_str(),
        Some(
            format!(
                "http://oidcgate.oidcgate.svc.cluster.local:{}/",
                default_port()
            )
            .as_str()
        )
    );
}

#[test]
fn compose_runs_the_documented_middleware_against_valid_settings() {
    let docs = yaml_docs("deploy/compose/docker-compose.yaml");
    let services = get(&docs[0], &["services"]);
    for s in ["traefik", "oidcgate", "redis"] {
        assert!(services.get(s).is_some(), "no {s} service");
    }
    // The gate's environment is a valid configuration (secrets from the
    // operator's environment stand in as placeholders).
    let env: BTreeMap<String, String> = string_map(get(services, &["oidcgate", "environment"]))
        .into_iter()
        .map(|(k, v)| {
            let v = if v.starts_with("${") {
                "x".repeat(64)
            } else {
                v
            };
            (k, v)
        })
        .collect();
    let cfg = config("", &env);
    assert_eq!(cfg.listen.port(), default_port());
    assert_eq!(
        env.get("REDIS_ADDRESS").map(String::as_str),
        Some("redis:6379")
    );

    // Traefik loads the middleware of deploy/traefik/dynamic.yaml.
    let volumes = strings(get(services, &["traefik", "volumes"]));
    assert!(
        volumes
            .iter()
            .any(|v| v.starts_with("./traefik-dynamic.yaml:"))
    );
    let compose_mw = yaml_docs("deploy/compose/traefik-dynamic.yaml");
    let mut fa = get(
        &compose_mw[0],
        &["http", "middlewares", "oidcgate", "forwardAuth"],
    )
    .clone();
    assert_eq!(
        fa.as_mapping_mut()
            .expect("mapping")
            .remove("address")
            .and_then(|a| a.as_str().map(str::to_owned)),
        Some(format!("http://oidcgate:{}/", default_port()))
    );
    let mut file = traefik_forward_auth();
    file.as_mapping_mut().expect("mapping").remove("address");
    assert_eq!(
        fa, file,
        "compose's middleware differs from deploy/traefik/dynamic.yaml"
    );
}

/// The arguments of the Dockerfile instruction `word` (first occurrence
/// after `from`), continuation lines joined.
fn instruction(dockerfile: &str, word: &str, from: usize) -> String {
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .skip(from)
        .find_map(|l| l.strip_prefix(word).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {word} instruction"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn dockerfile_builds_the_dist_profile_and_runs_unprivileged() {
    let df = read("Dockerfile");
    let manifest = read("Cargo.toml");

    // The build is one the workspace can do: a profile that exists, the
    // committed lock file, the binary target.
    let run = instruction(&df, "RUN", 0);
    assert_eq!(run, "cargo build --profile dist --locked --bin oidcgate");
    let profile = manifest
        .split("\n[")
        .find(|s| s.starts_with("profile.dist]"))
        .expect("[profile.dist] in Cargo.toml");
    for setting in ["lto = \"thin\"", "codegen-units = 1", "strip = true"] {
        assert!(profile.contains(setting), "[profile.dist] lacks {setting}");
    }
    assert!(root().join("Cargo.lock").exists());
    assert!(df.contains("COPY --from=build /src/target/dist/oidcgate /usr/local/bin/oidcgate"));

    // The builder's Rust is at least the crate's rust-version.
    let image = instruction(&df, "FROM", 0);
    let version = image
        .split(':')
        .nth(1)
        .and_then(|t| t.split('-').next())
        .expect("a versioned rust image");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|r| r.strip_suffix('"'))
        .expect("rust-version");
    let parse =
        |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().expect("number")).collect() };
    assert!(
        parse(version) >= parse(msrv),
        "builder {version} older than rust-version {msrv}"
    );

    // Runtime: not root, listens beyond loopback on the default port, checks
    // its health with its own binary (no shell in the image).
    let user = instruction(&df, "USER", 0);
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "USER {user}"
    );
    assert_eq!(instruction(&df, "EXPOSE", 0), default_port().to_string());
    assert!(df.contains(&format!("OIDCGATE_LISTEN=0.0.0.0:{}", default_port())));
    let health = instruction(&df, "HEALTHCHECK", 0);
    assert!(
        health.ends_with("CMD [\"/usr/local/bin/oidcgate\", \"health\"]"),
        "{health}"
    );

    let ignore = read(".dockerignore");
    for dir in ["target", ".git", "e2e/node_modules"] {
        assert!(
            ignore.lines().any(|l| l == dir),
            ".dockerignore lacks {dir}"
        );
    }
}

#[test]
fn systemd_unit_is_hardened() {
    let unit = read("deploy/systemd/oidcgate.service");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let value = |k: &str| {
        settings
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {k}="))
    };
    assert!(value("ExecStart").starts_with("/usr/local/bin/oidcgate run"));
    // `systemctl reload` is the gate's SIGHUP reload (tests/ops/sighup.rs).
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictSUIDSGID", "yes"),
    ] {
        assert_eq!(value(k), v, "{k}");
    }
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn health_command_asks_the_configured_listener() {
    let dir = std::env::temp_dir().join(format!("oidcgate-health-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let port = free_port();
    let cfg = dir.join("config.yaml");
    fs::write(
        &cfg,
        format!(
            "listen: \"0.0.0.0:{port}\"\nproviderURL: \"http://127.0.0.1:{}\"\nclientID: x\nclientSecret: y\nsessionEncryptionKey: \"{}\"\n",
            free_port(),
            "k".repeat(32)
        ),
    )
    .expect("write config");
    let bin = env!("CARGO_BIN_EXE_oidcgate");
    let health = || {
        std::process::Command::new(bin)
            .args(["--config", cfg.to_str().expect("utf-8 path"), "health"])
            .output()
            .expect("run oidcgate health")
    };

    // Nothing listens yet: failure, and it says why.
    let down = health();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains(&format!("127.0.0.1:{port}/healthz")));

    // The gate listens on every address; the check asks over loopback.
    let mut gate = std::process::Command::new(bin)
        .args(["--config", cfg.to_str().expect("utf-8 path"), "run"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start oidcgate");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut up = health();
    while !up.status.success() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        up = health();
    }
    let _ = gate.kill();
    let _ = gate.wait();
    let _ = fs::remove_dir_all(&dir);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
}

/// The metric names an exposition offers to queries: each family's samples
/// (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms, the
/// name itself for gauges and `_info` for info metrics).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    use std::sync::Arc;

    use oidcgate::telemetry::metrics::{Exporter, Metrics, Source};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let caches = rt
        .block_on(oidcgate::cache::Caches::new(
            oidcgate::cache::CacheSettings::default(),
        ))
        .unwrap();
    let dashboard = read("deploy/grafana/oidcgate.json");
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut queries = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => collect(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&json, &mut queries);
    assert!(queries.len() > 10, "{queries:?}");
    for prefix in ["oidcgate", "traefikoidc"] {
        let sources: Vec<Arc<dyn Source>> =
            vec![Arc::new(Metrics::new()), Arc::new(caches.clone())];
        let exporter = Exporter::new(prefix, sources).unwrap();
        let exported = exported_names(&exporter.encode().unwrap());
        assert!(
            exported.contains(&format!("{prefix}_build_info")),
            "{exported:?}"
        );
        let mut used = BTreeSet::new();
        for q in &queries {
            let q = q.replace("${prefix}", prefix);
            let mut rest = q.as_str();
            while let Some(i) = rest.find(&format!("{prefix}_")) {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                used.insert(name);
            }
        }
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{prefix}: the dashboard queries metrics the gate does not export: {unknown:?}"
        );
        if prefix == "traefikoidc" {
            // The names of the Redis deployment guide, which its dashboard uses.
            for name in [
                "traefikoidc_cache_hits_total",
                "traefikoidc_cache_requests_total",
                "traefikoidc_redis_operation_duration_seconds_bucket",
                "traefikoidc_circuit_breaker_state",
            ] {
                assert!(exported.contains(name), "{name}: {exported:?}");
            }
        }
    }
}

/// The rows of the key table of docs/migrating-from-traefikoidc.md:
/// `(key, status)` from the section "Every key".
fn migration_rows() -> Vec<(String, String)> {
    let md = read("docs/migrating-from-traefikoidc.md");
    let section = md
        .split("\n## Every key\n")
        .nth(1)
        .expect("section \"Every key\"");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

#[test]
fn migration_guide_has_a_row_for_every_key_and_no_other() {
    let rows = migration_rows();
    let documented: BTreeSet<String> = rows.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(documented.len(), rows.len(), "a key has two rows");
    let known: BTreeSet<String> = oidcgate::config::known_keys()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/migrating-from-traefikoidc.md: keys without a row {missing:?}, rows of unknown keys {unknown:?}"
    );
    for (key, status) in &rows {
        assert!(
            matches!(status.as_str(), "same" | "extended" | "inert" | "oidcgate"),
            "{key}: status {status:?}"
        );
    }
}

#[test]
fn migration_guide_marks_inert_exactly_the_keys_that_warn() {
    // Every key the guide calls inert gives a start-up warning naming it.
    for (key, status) in migration_rows() {
        let value = match key.as_str() {
            "dynamicClientRegistration" => "{enabled: true}",
            "resource" => "https://api.example.com",
            "oidcEndSessionURL" => "https://idp.example.com/end",
            _ => "true",
        };
        if status != "inert" {
            continue;
        }
        let yaml = format!(
            "providerURL: https://idp.example.com\nclientID: c\nclientSecret: s\n\
             sessionEncryptionKey: 0123456789abcdef0123456789abcdef\n{key}: {value}\n"
        );
        let c = Config::from_yaml(&yaml, &|_| None).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            c.warnings.iter().any(|w| w.key == key),
            "{key} is marked inert but gives no warning: {:?}",
            c.warnings
        );
    }
}

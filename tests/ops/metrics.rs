//! The metrics listener: with `metricsPrefix: traefikoidc` the four series
//! the traefikoidc Redis guide names exist, every door decision is counted,
//! and `promtool check metrics` accepts the exposition.

use std::process::Command;

use super::*;

/// The series the traefikoidc Redis guide tells operators to watch.
const GUIDE_NAMES: [&str; 4] = [
    "traefikoidc_cache_hits_total",
    "traefikoidc_cache_requests_total",
    "traefikoidc_redis_operation_duration_seconds",
    "traefikoidc_circuit_breaker_state",
];

/// Runs `promtool check metrics` on `text` (the Debian `prometheus` package,
/// installed by `cargo xtask setup`); returns its report.
fn promtool_check(text: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("oidcgate-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .unwrap_or_else(|e| panic!("promtool cannot run ({e}); run `cargo xtask setup`"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_names_exist_decisions_are_counted_and_promtool_accepts_the_exposition() {
    let idp = idp().await;
    let redis = redis();
    let yaml = gate_yaml(
        &idp,
        &format!(
            "redis:\n  enabled: true\n  address: {}\n  cacheMode: hybrid\n",
            redis.address()
        ),
    );
    let gw = Gateway::start(&yaml, None, "traefikoidc").await;
    let http = client();
    let token = idp.access_token(serde_json::json!({}));
    for _ in 0..3 {
        assert_eq!(bearer_request(&http, &gw.url(), &token).await.unwrap(), 200);
    }
    assert_eq!(
        bearer_request(&http, &gw.url(), "not-a-token")
            .await
            .unwrap(),
        401
    );
    // What Prometheus asks for: OpenMetrics.
    let r = http
        .get(format!("{}/metrics", gw.metrics_url()))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let open = r.text().await.unwrap();
    assert!(open.ends_with("# EOF\n"));
    // Without an Accept header: the classic text format promtool reads.
    let r = http
        .get(format!("{}/metrics", gw.metrics_url()))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    for name in GUIDE_NAMES {
        assert!(
            open.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{open}"
        );
    }
    for name in GUIDE_NAMES {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
    assert!(
        text.contains("traefikoidc_requests_total{door=\"forwardauth\",decision=\"allow\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "traefikoidc_requests_total{door=\"forwardauth\",decision=\"unauthenticated\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("traefikoidc_bearer_rejections_total{reason=\"opaque\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("traefikoidc_idp_requests_total{endpoint=\"discovery\",outcome=\"ok\"} 1"),
        "{text}"
    );
    // No user, token or path ever becomes a label value.
    assert!(!text.contains(USER_SUB) && !text.contains("/api") && !text.contains(&token[..20]));
    let (ok, report) = promtool_check(&text);
    assert!(ok, "promtool refused the exposition:\n{report}\n{text}");
    // Health and readiness are on the metrics listener too.
    let h = health_json(&http, &gw.metrics_url()).await;
    assert_eq!(h["cache"]["mode"], "hybrid");
    let ready = http
        .get(format!("{}/readyz", gw.metrics_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_prefix_is_oidcgate_and_health_text_is_ok() {
    let idp = idp().await;
    let gw = Gateway::start(&gate_yaml(&idp, ""), None, "oidcgate").await;
    let http = client();
    let text = http
        .get(format!("{}/metrics", gw.metrics_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("oidcgate_build_info{version="), "{text}");
    assert!(!text.contains("traefikoidc_"));
    let plain = http
        .get(format!("{}/healthz", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.text().await.unwrap(), "ok");
    let h = health_json(&http, &gw.url()).await;
    assert_eq!(h["cache"]["mode"], "memory");
    assert!(h["cache"].get("redis").is_none());
    gw.stop().await;
}

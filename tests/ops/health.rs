//! The health report follows a real Redis: down within one health-check
//! interval after the server is killed, healthy again once it is back.

use super::*;

/// The health-check interval configured for these tests.
const INTERVAL: Duration = Duration::from_secs(1);

/// Polls `/healthz` until `want` holds, for at most `bound`; returns the
/// last report and whether it held.
async fn poll_health(
    http: &reqwest::Client,
    base: &str,
    bound: Duration,
    want: impl Fn(&Value) -> bool,
) -> (Value, bool) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let h = health_json(http, base).await;
        if want(&h) {
            return (h, true);
        }
        if tokio::time::Instant::now() >= deadline {
            return (h, false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_redis_down_within_one_interval_and_healthy_after_it_returns() {
    let idp = idp().await;
    let mut redis = redis();
    let yaml = gate_yaml(
        &idp,
        &format!(
            "redis:\n  enabled: true\n  address: {}\n  cacheMode: hybrid\n  healthCheckInterval: {}\n",
            redis.address(),
            INTERVAL.as_secs()
        ),
    );
    let gw = Gateway::start(&yaml, None, "oidcgate").await;
    let http = client();
    let (h, ok) = poll_health(&http, &gw.url(), Duration::from_secs(10), |h| {
        h["status"] == "healthy"
    })
    .await;
    assert!(ok, "never healthy: {h}");
    assert_eq!(h["cache"]["redis"]["connected"], true);
    assert_eq!(h["cache"]["circuit_breaker"]["state"], "closed");
    assert!(h["cache"]["memory"]["size"].is_string());
    assert!(h["provider"]["discovered"].as_bool().unwrap());

    redis.stop();
    // One interval for the next health check, plus that check's own
    // connect/response deadline.
    let bound = INTERVAL * 2 + Duration::from_secs(3);
    let (h, ok) = poll_health(&http, &gw.url(), bound, |h| {
        h["cache"]["redis"]["connected"] == false
    })
    .await;
    assert!(ok, "Redis still reported connected: {h}");
    assert_eq!(h["status"], "degraded");

    redis.restart().unwrap();
    let (h, ok) = poll_health(&http, &gw.url(), Duration::from_secs(15), |h| {
        h["status"] == "healthy"
    })
    .await;
    assert!(ok, "not healthy after Redis returned: {h}");
    assert_eq!(h["cache"]["redis"]["connected"], true);
    gw.stop().await;
}

//! Configuration reloads: a changed `allowedUsers` applies within a second
//! while requests keep flowing (none fails), and a broken file changes
//! nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

/// Concurrent clients during the reload.
const CLIENTS: usize = 4;
/// Upper bound on each client's requests.
const MAX_REQUESTS_PER_CLIENT: u64 = 2_000;

fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_users_change_applies_under_load_and_a_broken_file_changes_nothing() {
    let idp = idp().await;
    let dir = std::env::temp_dir().join(format!("oidcgate-reload-{}", testkit::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oidcgate.yaml");
    let allowed = gate_yaml(&idp, &format!("allowedUsers: [{USER_SUB}]"));
    let refused = gate_yaml(&idp, "allowedUsers: [someone-else]");
    write(&path, &allowed);
    let gw = Gateway::start(&allowed, Some(path.clone()), "oidcgate").await;
    let http = client();
    let token = idp.access_token(serde_json::json!({}));
    assert_eq!(bearer_request(&http, &gw.url(), &token).await.unwrap(), 200);

    // Bounded load: each client stops after its budget or when told.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, token) = (http.clone(), gw.url(), token.clone());
        let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..MAX_REQUESTS_PER_CLIENT {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                match bearer_request(&http, &url, &token).await {
                    Ok(200 | 403) => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // A broken file: nothing changes, the failure is counted.
    write(&path, "providerURL: [not, a, url]\nallowedUsers: 7\n");
    assert!(gw.running().reloader().reload().await.is_err());
    assert_eq!(bearer_request(&http, &gw.url(), &token).await.unwrap(), 200);

    // The new rule: applies within a second of the reload.
    write(&path, &refused);
    gw.running().reloader().reload().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let s = bearer_request(&http, &gw.url(), &token).await.unwrap();
        if s == 403 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "allowedUsers change not applied within a second (status {s})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    let text = http
        .get(format!("{}/metrics", gw.metrics_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("oidcgate_config_reloads_total{result=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("oidcgate_config_reloads_total{result=\"failure\"} 1"),
        "{text}"
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `Cookie` header of a session for the test user, sealed with the
/// session settings of `cfg`.
fn session_cookie(idp: &TestIdp, cfg: &Config) -> String {
    use oidcgate::clock::Clock as _;
    let codec = oidcgate::session::SessionCodec::new(cfg.session.clone()).unwrap();
    let now = SystemClock.now();
    let session: oidcgate::session::Session = serde_json::from_value(serde_json::json!({
        "i": oidcgate::session::random_token(oidcgate::session::SID_BYTES).unwrap(),
        "c": now,
        "u": USER_SUB,
        "s": USER_SUB,
        "e": "demo@example.com",
        "it": idp.id_token(serde_json::json!({})),
        "at": idp.access_token(serde_json::json!({})),
        "x": now + 3600,
    }))
    .unwrap();
    let set = codec
        .store(&session, &http::HeaderMap::new(), false, now)
        .unwrap();
    set.iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn cookie_request(http: &reqwest::Client, gate: &str, cookie: &str) -> u16 {
    http.get(format!("{gate}/"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "app.test")
        .header("x-forwarded-uri", "/app")
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_reload_and_a_key_rotation_with_the_old_key_kept() {
    let idp = idp().await;
    let dir = std::env::temp_dir().join(format!("oidcgate-rotate-{}", testkit::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oidcgate.yaml");
    let first = gate_yaml(&idp, "");
    write(&path, &first);
    let cfg = Config::from_yaml(&first, &|_| None).unwrap();
    let cookie = session_cookie(&idp, &cfg);
    let gw = Gateway::start(&first, Some(path.clone()), "oidcgate").await;
    let http = client();
    assert_eq!(cookie_request(&http, &gw.url(), &cookie).await, 200);

    // Same key, other settings: the session still opens.
    write(&path, &gate_yaml(&idp, "excludedURLs: [/public]"));
    gw.running().reloader().reload().await.unwrap();
    assert_eq!(cookie_request(&http, &gw.url(), &cookie).await, 200);

    // New key, old key kept for reading: the session still opens.
    let old_key = "ops-test-session-key-0123456789abcdef0123";
    let rotated = gate_yaml(&idp, &format!("previousSessionEncryptionKeys: [{old_key}]"))
        .replace(old_key, "ops-rotated-session-key-abcdef0123456789xyz")
        .replace(
            "previousSessionEncryptionKeys: [ops-rotated-session-key-abcdef0123456789xyz]",
            &format!("previousSessionEncryptionKeys: [{old_key}]"),
        );
    write(&path, &rotated);
    gw.running().reloader().reload().await.unwrap();
    assert_eq!(cookie_request(&http, &gw.url(), &cookie).await, 200);

    // New key without the old one: the old session no longer opens.
    let dropped =
        gate_yaml(&idp, "").replace(old_key, "ops-rotated-session-key-abcdef0123456789xyz");
    write(&path, &dropped);
    gw.running().reloader().reload().await.unwrap();
    assert_eq!(cookie_request(&http, &gw.url(), &cookie).await, 401);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

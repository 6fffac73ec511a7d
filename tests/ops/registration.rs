//! Dynamic client registration at start-up (RFC 7591): a gate without a
//! `clientID` registers at the provider's `registration_endpoint`, logs
//! users in with that client, keeps it in a file or the shared cache, uses
//! it again after a restart, registers once when two replicas start
//! together on one Redis, and refuses to start when registration fails.

use testkit::upstream::EchoUpstream;
use testkit::{Endpoint, Fault};

use super::*;

const INITIAL_TOKEN: &str = "initial-access-token-for-tests";

async fn registering_idp() -> TestIdp {
    TestIdp::start(IdpConfig {
        registration: true,
        registration_token: Some(INITIAL_TOKEN.into()),
        ..IdpConfig::default()
    })
    .await
}

/// A gate in front of `upstream` that registers its client at `idp`;
/// `store` is the rest of the `dynamicClientRegistration` block.
fn yaml(idp: &TestIdp, upstream: &EchoUpstream, port: u16, store: &str, token: &str) -> String {
    format!(
        "providerURL: {}\nclientID: ''\nclientSecret: ''\n\
         sessionEncryptionKey: ops-test-session-key-0123456789abcdef0123\n\
         logLevel: error\nlisten: 127.0.0.1:{port}\nupstream: {}\n\
         dynamicClientRegistration:\n  enabled: true\n  initialAccessToken: {token}\n\
         \x20 clientMetadata:\n    client_name: ops test\n    redirect_uris: [http://127.0.0.1:{port}/oauth2/callback]\n\
         {store}",
        idp.issuer(),
        upstream.url(),
    )
}

async fn start(yaml: &str) -> Result<(Running, String), oidcgate::runtime::RunError> {
    start_from(yaml, None).await
}

async fn start_from(
    yaml: &str,
    path: Option<PathBuf>,
) -> Result<(Running, String), oidcgate::runtime::RunError> {
    let cfg = Config::from_yaml(yaml, &|_| None)
        .unwrap_or_else(|e| panic!("config refused: {e}\n{yaml}"));
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    oidcgate::runtime::start(cfg, path, Arc::new(SystemClock), listener)
        .await
        .map(|r| (r, url))
}

/// A browser login through the gate (reverse proxy), following every
/// redirect: ends at the upstream only if the provider accepted the
/// gate's client at the authorization and token endpoints.
async fn login(gate: &str) -> u16 {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let resp = browser
        .get(format!("{gate}/private"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(body["path"], "/private", "{body}");
    status
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oidcgate-{name}-{}", testkit::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn registration_at_start_up_is_kept_in_a_file_and_reused_after_a_restart() {
    let idp = registering_idp().await;
    let upstream = EchoUpstream::start().await;
    let dir = temp_dir("dcr-file");
    let file = dir.join("client.json");
    let store = format!(
        "  persistCredentials: true\n  storageBackend: file\n  credentialsFile: {}\n",
        file.display()
    );
    let port = testkit::free_port();
    let (gw, url) = start(&yaml(&idp, &upstream, port, &store, INITIAL_TOKEN))
        .await
        .unwrap();
    assert_eq!(idp.counters().registrations, 1);
    assert_eq!(login(&url).await, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let kept: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(kept["client_id"], idp.client_id());
    gw.stop().await;

    // A restart finds the registration and does not register again.
    let config = dir.join("oidcgate.yaml");
    let text = yaml(&idp, &upstream, port, &store, INITIAL_TOKEN);
    std::fs::write(&config, &text).unwrap();
    let (gw, url) = start_from(&text, Some(config)).await.unwrap();
    assert_eq!(idp.counters().registrations, 1);
    assert_eq!(login(&url).await, 200);
    // A reload keeps the registered client too.
    gw.reloader().reload().await.unwrap();
    assert_eq!(idp.counters().registrations, 1);
    gw.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_failed_registration_stops_start_up_with_a_clear_error() {
    let idp = registering_idp().await;
    let upstream = EchoUpstream::start().await;
    let port = testkit::free_port();
    let err = start(&yaml(&idp, &upstream, port, "", "wrong-token"))
        .await
        .err()
        .expect("start-up must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("dynamic client registration") && msg.contains("HTTP 401"),
        "{msg}"
    );
    assert!(msg.contains("invalid_token"), "{msg}");

    // A provider without a registration endpoint.
    let plain = TestIdp::start(IdpConfig::default()).await;
    let err = start(&yaml(&plain, &upstream, port, "", INITIAL_TOKEN))
        .await
        .err()
        .expect("start-up must fail");
    assert!(err.to_string().contains("registration_endpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_together_on_one_redis_register_once() {
    let idp = registering_idp().await;
    // The registration takes a while, so the second replica arrives while
    // the first is registering.
    idp.inject(
        Endpoint::Registration,
        Fault::Delay(Duration::from_millis(800)),
        1,
    );
    let upstream = EchoUpstream::start().await;
    let redis = redis();
    let store = format!(
        "  persistCredentials: true\nredis:\n  enabled: true\n  address: {}\n  cacheMode: redis\n",
        redis.address()
    );
    let (a_port, b_port) = (testkit::free_port(), testkit::free_port());
    let a_yaml = yaml(&idp, &upstream, a_port, &store, INITIAL_TOKEN);
    let b_yaml = yaml(&idp, &upstream, b_port, &store, INITIAL_TOKEN)
        .replace(&format!(":{b_port}/oauth2"), &format!(":{a_port}/oauth2"));
    let (a, b) = tokio::join!(start(&a_yaml), start(&b_yaml));
    let ((a, a_url), (b, b_url)) = (a.unwrap(), b.unwrap());
    assert_eq!(idp.counters().registrations, 1);
    assert_eq!(login(&a_url).await, 200);
    assert_eq!(login(&b_url).await, 200);
    a.stop().await;
    b.stop().await;

    // A replica started later uses the shared registration.
    let (c, c_url) = start(&a_yaml).await.unwrap();
    assert_eq!(idp.counters().registrations, 1);
    assert_eq!(login(&c_url).await, 200);
    c.stop().await;
}

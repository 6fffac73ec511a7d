//! `SIGHUP` against the built binary, as an operator (or systemd's
//! `ExecReload`) sends it: a changed `allowedUsers` applies, a broken file
//! then changes nothing and the process keeps serving.

use std::process::{Child, Command, Stdio};

use super::*;

/// How long the process may take to start answering.
const START_BOUND: Duration = Duration::from_secs(30);
/// How long a reload may take to show.
const RELOAD_BOUND: Duration = Duration::from_secs(15);

/// The gate process; killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -HUP failed");
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The value of the failed-reload counter in the exposition, if present.
async fn failed_reloads(http: &reqwest::Client, metrics: &str) -> Option<u64> {
    let text = http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oidcgate_config_reloads_total{result=\"failure\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_rule_and_a_broken_file_changes_nothing() {
    let idp = idp().await;
    let dir = std::env::temp_dir().join(format!("oidcgate-sighup-{}", testkit::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oidcgate.yaml");
    let (port, metrics_port) = (testkit::free_port(), testkit::free_port());
    let listeners = format!("listen: 127.0.0.1:{port}\nmetricsAddress: 127.0.0.1:{metrics_port}\n");
    let allowed = gate_yaml(&idp, &format!("{listeners}allowedUsers: [{USER_SUB}]"));
    let refused = gate_yaml(&idp, &format!("{listeners}allowedUsers: [someone-else]"));
    write(&path, &allowed);
    let mut gate = Process(
        Command::new(env!("CARGO_BIN_EXE_oidcgate"))
            .args(["--config", path.to_str().unwrap(), "run"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = client();
    let url = format!("http://127.0.0.1:{port}");
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let token = idp.access_token(serde_json::json!({}));
    let status = || async { bearer_request(&http, &url, &token).await.ok() };

    assert!(
        testkit::wait::eventually(START_BOUND, || async { status().await == Some(200) }).await,
        "the gate did not start serving: {:?}",
        status().await
    );

    write(&path, &refused);
    gate.hangup();
    assert!(
        testkit::wait::eventually(RELOAD_BOUND, || async { status().await == Some(403) }).await,
        "the new allowedUsers did not apply: {:?}",
        status().await
    );

    // A broken file: the reload fails (counted), the old rule stays.
    write(&path, "providerURL: [not, a, url]\nallowedUsers: {{\n");
    gate.hangup();
    assert!(
        testkit::wait::eventually(RELOAD_BOUND, || async {
            failed_reloads(&http, &metrics).await == Some(1)
        })
        .await,
        "the failed reload was not counted"
    );
    assert!(gate.alive(), "a broken file stopped the process");
    assert_eq!(status().await, Some(403), "the old rule must still apply");

    // And the process still reloads a good file afterwards.
    write(&path, &allowed);
    gate.hangup();
    assert!(
        testkit::wait::eventually(RELOAD_BOUND, || async { status().await == Some(200) }).await,
        "a good file after a broken one did not apply"
    );
    drop(gate);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Development and CI commands: `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks, in order: set-up of the test dependencies,
//!   rustfmt, clippy (warnings denied), rustdoc (warnings denied), the tests
//!   (nextest when installed, else `cargo test`), doc tests, then the
//!   end-to-end interop suite (`e2e/run`). `--no-e2e` skips the last step.
//! - `setup`: installs what the tests need on a fresh Debian machine
//!   (`redis-server`; `promtool`, from the `prometheus` package, for the
//!   metrics exposition check), when missing.
//! - `e2e`: the interop suite only.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(args.iter().any(|a| a == "--no-e2e")),
        Some("setup") => setup(),
        Some("e2e") => run("bash", &["e2e/run"]),
        _ => {
            eprintln!("usage: cargo xtask <ci [--no-e2e] | setup | e2e>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ci(skip_e2e: bool) -> Result<(), String> {
    setup()?;
    step("rustfmt")?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    step("clippy")?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    step("rustdoc")?;
    run_env(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    step("tests")?;
    if has_nextest() {
        run(
            "cargo",
            &["nextest", "run", "--workspace", "--no-fail-fast"],
        )?;
    } else {
        run("cargo", &["test", "--workspace", "--no-fail-fast"])?;
    }
    step("doc tests")?;
    run("cargo", &["test", "--workspace", "--doc"])?;
    if !skip_e2e && std::path::Path::new("e2e/run").exists() {
        step("end-to-end interop suite")?;
        run("bash", &["e2e/run"])?;
    }
    println!("xtask ci: all checks passed");
    Ok(())
}

/// Installs the test dependencies that a fresh machine may lack.
fn setup() -> Result<(), String> {
    let missing: Vec<&str> = [
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("promtool", "prometheus"),
    ]
    .into_iter()
    .filter(|(bin, _)| !on_path(bin))
    .map(|(_, pkg)| pkg)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing {}", missing.join(" ")))?;
    let sudo = if is_root() { None } else { Some("sudo") };
    let apt = |args: &[&str]| -> Result<(), String> {
        match sudo {
            Some(s) => {
                let mut all = vec!["apt-get"];
                all.extend_from_slice(args);
                run(s, &all)
            }
            None => run("apt-get", args),
        }
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)
}

fn step(name: &str) -> Result<(), String> {
    println!("==> {name}");
    Ok(())
}

fn on_path(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    run_env(cmd, args, &[])
}

fn run_env(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let status = Command::new(cmd)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd} {}` failed ({status})", args.join(" ")))
    }
}

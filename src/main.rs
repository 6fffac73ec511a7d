//! The `oidcgate` command: run the gateway, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use oidcgate::clock::SystemClock;
use oidcgate::config::{CONFIG_ENV, Config};

/// OpenID Connect authentication gateway for Traefik, Caddy, nginx, or as a
/// reverse proxy.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (YAML). Every key can also come from OIDCGATE_* variables.
    #[arg(long, short, global = true, env = CONFIG_ENV)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the configuration and probe the provider's discovery document.
    Check,
    /// Ask the running gateway's health path (exit 0 on 200): the container
    /// health check, where no shell or HTTP client exists.
    Health {
        /// URL to ask instead of the configured listener's health path.
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("oidcgate: configuration error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Health { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| health_url(cfg.listen));
        return health(&url);
    }
    oidcgate::telemetry::init(cfg.log_level, cfg.log_format);
    // Warnings go to the log once it exists; `check` prints them.
    if matches!(cli.command, Some(Command::Check)) {
        for w in &cfg.warnings {
            println!("warning: {w}");
        }
    } else {
        for w in &cfg.warnings {
            tracing::warn!(key = %w.key, "{}", w.message);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oidcgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Check => {
                let gate = match oidcgate::build(&cfg, Arc::new(SystemClock)).await {
                    Ok(g) => g,
                    Err(e) => {
                        eprintln!("oidcgate: {e}");
                        return ExitCode::from(2);
                    }
                };
                let redis_ok = check_redis(gate.caches()).await;
                let issuers = std::iter::once(&cfg.provider.issuer)
                    .chain(cfg.providers.iter().map(|p| &p.provider.issuer));
                let mut discovered = true;
                for ((name, r), issuer) in gate.discover_each().await.into_iter().zip(issuers) {
                    let named = if cfg.providers.is_empty() {
                        String::new()
                    } else {
                        format!(" ({name})")
                    };
                    match r {
                        Ok(()) => println!("provider {issuer}{named} discovered"),
                        Err(e) => {
                            eprintln!("oidcgate: configuration ok, but discovery of provider {issuer}{named} failed: {e}");
                            discovered = false;
                        }
                    }
                }
                if discovered && redis_ok {
                    println!("configuration ok");
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Command::Health { .. } => ExitCode::SUCCESS,
            Command::Run => {
                let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("oidcgate: cannot listen on {}: {e}", cfg.listen);
                        return ExitCode::FAILURE;
                    }
                };
                let mode = match &cfg.app.upstream {
                    Some(u) => format!("reverse proxy to {u}"),
                    None => "forward-auth".to_owned(),
                };
                tracing::info!(listen = %cfg.listen, %mode, issuer = %cfg.provider.issuer, "oidcgate started");
                let path = cli.config.clone();
                match oidcgate::runtime::run(cfg, path, Arc::new(SystemClock), listener, shutdown_signal()).await {
                    Ok(()) => {
                        tracing::info!("oidcgate stopped");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("oidcgate: {e}");
                        ExitCode::from(2)
                    }
                }
            }
        }
    })
}

/// `oidcgate check`: prints what the configured Redis says about itself
/// and a warning when its eviction policy can drop security marks. False
/// when Redis is configured and does not answer.
async fn check_redis(caches: &oidcgate::cache::Caches) -> bool {
    match caches.backend().redis_report().await {
        Ok(Some(report)) => {
            println!("{report}");
            if let Some(w) = report.eviction_warning() {
                println!("warning: redis: {w}");
            }
            true
        }
        Ok(None) => true,
        Err(e) => {
            eprintln!("oidcgate: redis did not answer: {e}");
            false
        }
    }
}

/// Time the health check waits for the answer.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The health path on the listener, reached over loopback when the listener
/// takes every address.
fn health_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let addr = std::net::SocketAddr::new(ip, listen.port());
    format!("http://{addr}{}", oidcgate::doors::app::HEALTHZ_PATH)
}

/// `oidcgate health`: GET `url`, success on 200.
fn health(url: &str) -> ExitCode {
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("oidcgate: bad health URL {url}: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oidcgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        match tokio::time::timeout(HEALTH_TIMEOUT, client.get(uri)).await {
            Ok(Ok(res)) if res.status() == http::StatusCode::OK => ExitCode::SUCCESS,
            Ok(Ok(res)) => {
                eprintln!("oidcgate: {url} answered {}", res.status());
                ExitCode::FAILURE
            }
            Ok(Err(e)) => {
                eprintln!("oidcgate: {url}: {e}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("oidcgate: {url} did not answer within {HEALTH_TIMEOUT:?}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

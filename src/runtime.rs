//! The running process: listeners, the metrics exporter, and configuration
//! reloads.
//!
//! Owns what lives as long as the process: the caches (and their Redis
//! connections), the metric counters, the live router, and the reload loop.
//! A reload (`SIGHUP`, or a changed file with `watchConfig`) re-reads the
//! file, validates it, builds a complete new gate around the same caches and
//! counters, discovers its provider, and only then swaps it in; requests in
//! flight finish on the gate they started with. A file that does not
//! validate, or a gate that cannot be built, leaves the running one in place.
//! Settings that belong to the process (listen address, cache and Redis
//! settings, metrics listener and prefix, log format) need a restart; a
//! reload that changes them says so and keeps the running values.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::Caches;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::doors::{App, Live, OpsService, ops::DEFAULT_WATCH_INTERVAL};
use crate::telemetry::metrics::{Exporter, Metrics, ReloadResult, Source};
use crate::{BuildError, assemble_with};

/// Why a reload kept the running configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not validate.
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The new gate could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// The new provider could not be discovered.
    #[error("provider: {0}")]
    Provider(#[from] crate::gate::Error),
    /// Dynamic client registration failed.
    #[error("dynamic client registration: {0}")]
    Registration(crate::gate::Error),
}

/// Rebuilds the gate from the configuration file and swaps it in.
pub struct Reloader {
    path: Option<PathBuf>,
    running: std::sync::Mutex<Config>,
    live: Live,
    caches: Caches,
    metrics: Metrics,
    clock: SharedClock,
}

impl Reloader {
    /// A reloader for the router `live`, built from `running` (read from
    /// `path`) around `caches` and `metrics`.
    pub fn new(
        path: Option<PathBuf>,
        running: Config,
        live: Live,
        caches: Caches,
        metrics: Metrics,
        clock: SharedClock,
    ) -> Self {
        Self {
            path,
            running: std::sync::Mutex::new(running),
            live,
            caches,
            metrics,
            clock,
        }
    }

    /// Re-reads the file and swaps in the new gate, or keeps the running one
    /// and says why. Counted in `config_reloads_total{result}`.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let r = self.try_reload().await;
        match &r {
            Ok(()) => {
                self.metrics.reload(ReloadResult::Success, self.clock.now());
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.metrics.reload(ReloadResult::Failure, 0);
                tracing::error!(error = %e, "configuration reload failed; the running configuration stays");
            }
        }
        r
    }

    async fn try_reload(&self) -> Result<(), ReloadError> {
        let mut next = Config::load(self.path.as_deref())?;
        self.keep_process_settings(&mut next);
        self.keep_registered_client(&mut next);
        crate::gate::ensure_client(&mut next.provider, &next.session, &self.caches, &self.clock)
            .await
            .map_err(ReloadError::Registration)?;
        let gate = assemble_with(
            &next,
            self.caches.clone(),
            self.clock.clone(),
            self.metrics.clone(),
        )?;
        gate.warm_up().await?;
        self.live.swap(App::new(gate, next.app.clone()));
        if let Ok(mut running) = self.running.lock() {
            *running = next;
        }
        Ok(())
    }

    /// A configuration that registers its client dynamically keeps the
    /// client the running one registered, when the provider and the
    /// registration block are the same: a reload never registers anew.
    fn keep_registered_client(&self, next: &mut Config) {
        let Ok(running) = self.running.lock() else {
            return;
        };
        let (Some(was), Some(now)) = (&running.provider.registration, &next.provider.registration)
        else {
            return;
        };
        if next.provider.client_id.is_empty()
            && !running.provider.client_id.is_empty()
            && running.provider.issuer == next.provider.issuer
            && was.metadata == now.metadata
            && was.endpoint == now.endpoint
        {
            next.provider
                .client_id
                .clone_from(&running.provider.client_id);
            next.provider.client_secret = running.provider.client_secret.clone();
            if next.provider.client_auth.is_none() {
                next.provider.client_auth = running.provider.client_auth;
            }
        }
    }

    /// Restart-only settings keep their running values.
    fn keep_process_settings(&self, next: &mut Config) {
        let Ok(running) = self.running.lock() else {
            return;
        };
        let mut restart = Vec::new();
        if next.listen != running.listen {
            restart.push("listen");
            next.listen = running.listen;
        }
        if next.cache != running.cache {
            restart.push("redis / cache");
            next.cache = running.cache.clone();
        }
        if next.ops != running.ops {
            restart.push("metricsAddress / metricsPrefix / watchConfig");
            next.ops = running.ops.clone();
        }
        if next.log_format != running.log_format || next.log_level != running.log_level {
            restart.push("logLevel / logFormat");
        }
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "these settings change only at restart; the running values stay");
        }
    }
}

/// Runs the gateway until `shutdown` completes: the main listener, the
/// metrics listener when `metricsAddress` is set, and the reload loop.
pub async fn run(
    cfg: Config,
    path: Option<PathBuf>,
    clock: SharedClock,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let mut running = start(cfg, path, clock, listener).await?;
    tokio::select! {
        () = shutdown => {
            running.stop().await;
            Ok(())
        }
        fatal = running.fatal() => {
            running.stop().await;
            Err(RunError::Provider(fatal))
        }
    }
}

/// A started gateway; [`Running::stop`] ends it.
pub struct Running {
    reloader: Arc<Reloader>,
    metrics_addr: Option<std::net::SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    main: tokio::task::JoinHandle<()>,
    tasks: tokio::task::JoinSet<()>,
    fatal: Option<tokio::sync::oneshot::Receiver<String>>,
}

impl Running {
    /// The reload entry point (what `SIGHUP` calls).
    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    /// The bound metrics listener address, when there is one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// Completes when the gateway cannot go on (the provider's discovery
    /// document names another issuer), with the reason; pending otherwise.
    pub async fn fatal(&mut self) -> String {
        match self.fatal.as_mut() {
            Some(rx) => match rx.await {
                Ok(why) => why,
                Err(_) => {
                    self.fatal = None;
                    std::future::pending().await
                }
            },
            None => std::future::pending().await,
        }
    }

    /// Stops accepting, lets requests in flight finish (bounded), and stops
    /// the background tasks.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.main).await;
        self.tasks.abort_all();
    }
}

/// Starts the gateway on `listener` and returns at once.
pub async fn start(
    cfg: Config,
    path: Option<PathBuf>,
    clock: SharedClock,
    listener: tokio::net::TcpListener,
) -> Result<Running, RunError> {
    let metrics = if cfg.ops.metrics_address.is_some() {
        Metrics::new()
    } else {
        Metrics::disabled()
    };
    let caches = Caches::new(cfg.cache.clone())
        .await
        .map_err(BuildError::from)?;
    log_redis_report(&caches).await;
    let mut cfg = cfg;
    crate::gate::ensure_client(&mut cfg.provider, &cfg.session, &caches, &clock)
        .await
        .map_err(RunError::Registration)?;
    let gate = assemble_with(&cfg, caches.clone(), clock.clone(), metrics.clone())?;
    let live = Live::new(App::new(gate.clone(), cfg.app.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut metrics_addr = None;
    if let Some(addr) = cfg.ops.metrics_address {
        let sources: Vec<Arc<dyn Source>> =
            vec![Arc::new(metrics.clone()), Arc::new(caches.clone())];
        let exporter = Exporter::new(&cfg.ops.metrics_prefix, sources)
            .map_err(|e| RunError::Metrics(e.to_string()))?;
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| RunError::Listen(addr, e))?;
        let bound = l.local_addr().map_err(|e| RunError::Listen(addr, e))?;
        metrics_addr = Some(bound);
        tracing::info!(addr = %bound, prefix = %cfg.ops.metrics_prefix, "metrics listener started");
        let svc = OpsService::new(live.clone(), Arc::new(exporter));
        tasks.spawn(crate::doors::serve(l, svc, stopped()));
    }
    let watch = cfg.ops.watch_config;
    let reloader = Arc::new(Reloader::new(
        path.clone(),
        cfg,
        live.clone(),
        caches,
        metrics,
        clock,
    ));
    tasks.spawn(reload_loop(reloader.clone(), path, watch, stopped()));
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel();
    tasks.spawn(async move {
        match gate.warm_up().await {
            Ok(()) => {}
            // A configuration error no retry fixes: the process stops.
            Err(e) if e.is_permanent() => {
                tracing::error!(error = %e, "refusing to run against this provider");
                let _ = fatal_tx.send(e.to_string());
            }
            Err(e) => {
                tracing::warn!(error = %e, "provider not reachable at start-up; will retry on demand");
            }
        }
    });
    let main = tokio::spawn(crate::doors::serve(listener, live, stopped()));
    Ok(Running {
        reloader,
        metrics_addr,
        stop: stop_tx,
        main,
        tasks,
        fatal: Some(fatal_rx),
    })
}

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The gate could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// A listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// The metrics exporter refused its settings.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Dynamic client registration failed.
    #[error("dynamic client registration: {0}")]
    Registration(crate::gate::Error),
    /// The provider cannot be used as configured.
    #[error("provider: {0}")]
    Provider(String),
}

/// Reloads on `SIGHUP`, and when `watch` is set, when the file's content
/// changes (polled, so that editors' renames and Kubernetes' symlink swaps
/// are seen too).
async fn reload_loop(
    reloader: Arc<Reloader>,
    path: Option<PathBuf>,
    watch: bool,
    stopped: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stopped);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = path.as_deref().and_then(fingerprint);
    let mut tick = tokio::time::interval(DEFAULT_WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let changed = async {
            if !watch {
                return std::future::pending::<()>().await;
            }
            loop {
                tick.tick().await;
                let now = path.as_deref().and_then(fingerprint);
                if now.is_some() && now != seen {
                    seen = now;
                    return;
                }
            }
        };
        tokio::select! {
            () = hangup => tracing::info!("SIGHUP received; reloading the configuration"),
            () = changed => tracing::info!("configuration file changed; reloading"),
            () = &mut stopped => return,
        }
        let _ = reloader.reload().await;
    }
}

/// A hash of the file's content (`None` when it cannot be read).
fn fingerprint(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(crate::telemetry::TokenHash::full_hex(
        &String::from_utf8_lossy(&bytes),
    ))
}

/// Logs what the configured Redis says about itself, and a warning when its
/// eviction policy can drop the security marks the gates share. A Redis that
/// does not answer yet is left to the health check.
async fn log_redis_report(caches: &Caches) {
    match caches.backend().redis_report().await {
        Ok(Some(report)) => {
            tracing::info!(%report, "redis");
            if let Some(w) = report.eviction_warning() {
                tracing::warn!(key = "redis", "{w}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "redis not asked about itself at start-up"),
    }
}

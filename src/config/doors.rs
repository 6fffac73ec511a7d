//! The process and door keys: listen address, reverse-proxy upstream,
//! trusted proxies, and logging.
//!
//! Owns the refusals of these keys.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{DEFAULT_LISTEN, Report};
use crate::doors::{AppSettings, TrustedProxies};
use crate::telemetry::{LogFormat, LogLevel};

/// The door keys as written.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// Listen address.
    #[serde(rename = "listen")]
    pub(super) listen: Option<String>,
    /// Reverse-proxy upstream.
    #[serde(rename = "upstream")]
    pub(super) upstream: Option<String>,
    /// Trusted proxy networks.
    #[serde(rename = "trustedProxies")]
    pub(super) trusted_proxies: Option<Vec<String>>,
    /// `debug`, `info`, `warn`, `error`.
    #[serde(rename = "logLevel")]
    pub(super) log_level: Option<String>,
    /// `text` or `json`.
    #[serde(rename = "logFormat")]
    pub(super) log_format: Option<String>,
    /// Also serve HTTP/2 over cleartext (h2c, prior knowledge).
    #[serde(rename = "http2")]
    pub(super) http2: Option<bool>,
    /// Metrics listener address (`/metrics`, `/healthz`, `/readyz`).
    #[serde(rename = "metricsAddress")]
    pub(super) metrics_address: Option<String>,
    /// Metric name prefix.
    #[serde(rename = "metricsPrefix")]
    pub(super) metrics_prefix: Option<String>,
    /// Reload when the configuration file changes.
    #[serde(rename = "watchConfig")]
    pub(super) watch_config: Option<bool>,
}

/// What the door keys configure.
pub(super) struct Parts {
    pub(super) app: AppSettings,
    pub(super) listen: SocketAddr,
    pub(super) log_level: LogLevel,
    pub(super) log_format: LogFormat,
    pub(super) ops: crate::doors::OpsSettings,
}

/// Validates the door keys.
pub(super) fn settings(raw: Raw, r: &mut Report) -> Parts {
    let default_listen = SocketAddr::from(([127, 0, 0, 1], 4180));
    let listen = match raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN).parse() {
        Ok(a) => a,
        Err(_) => {
            r.error("listen", "expected host:port, e.g. 127.0.0.1:4180");
            default_listen
        }
    };
    let upstream = match raw.upstream.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => match u.parse::<http::Uri>() {
            Err(_) => {
                r.error("upstream", format!("{u:?} is not a URL"));
                None
            }
            Ok(uri) if uri.scheme_str() != Some("http") || uri.host().is_none() => {
                r.error(
                    "upstream",
                    "must be an http:// URL with a host (TLS upstreams are not supported yet)",
                );
                None
            }
            Ok(uri) => Some(uri),
        },
    };
    let trusted = match &raw.trusted_proxies {
        Some(list) => TrustedProxies::parse(list).unwrap_or_else(|m| {
            r.error("trustedProxies", m);
            TrustedProxies::default()
        }),
        None => TrustedProxies::default(),
    };
    let log_level = match &raw.log_level {
        Some(l) => LogLevel::parse(l).unwrap_or_else(|| {
            r.error(
                "logLevel",
                format!("expected debug, info, warn or error, got {l:?}"),
            );
            LogLevel::default()
        }),
        None => LogLevel::default(),
    };
    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            r.error("logFormat", format!("expected text or json, got {other:?}"));
            LogFormat::Text
        }
    };
    let mut ops = crate::doors::OpsSettings::default();
    if let Some(a) = raw.metrics_address.as_deref().filter(|a| !a.is_empty()) {
        match a.parse() {
            Ok(addr) => ops.metrics_address = Some(addr),
            Err(_) => r.error(
                "metricsAddress",
                format!(
                    "expected host:port, e.g. 127.0.0.1:{}",
                    crate::doors::ops::CONVENTIONAL_METRICS_PORT
                ),
            ),
        }
    }
    if let Some(p) = &raw.metrics_prefix {
        match crate::telemetry::metrics::check_prefix(p) {
            Ok(()) => ops.metrics_prefix = p.clone(),
            Err(e) => r.error("metricsPrefix", e.to_string()),
        }
    }
    ops.watch_config = raw.watch_config.unwrap_or(false);
    Parts {
        ops,
        app: AppSettings {
            upstream,
            trusted,
            server: crate::doors::ServerLimits {
                http2: raw.http2.unwrap_or(false),
                ..Default::default()
            },
        },
        listen,
        log_level,
        log_format,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::check_refusals;

    #[test]
    fn refusals_name_their_key() {
        let cases: &[(&str, &[&str])] = &[
            ("listen: nowhere\n", &["listen"]),
            ("upstream: https://app.internal\n", &["upstream"]),
            ("upstream: not a url\n", &["upstream"]),
            ("trustedProxies: [0.0.0.0/0]\n", &["trustedProxies"]),
            ("trustedProxies: [junk]\n", &["trustedProxies"]),
            ("logLevel: loud\n", &["logLevel"]),
            ("logFormat: xml\n", &["logFormat"]),
            (
                "listen: nowhere\nlogLevel: loud\nlogFormat: xml\n",
                &["listen", "logLevel", "logFormat"],
            ),
        ];
        check_refusals(cases);
    }
}

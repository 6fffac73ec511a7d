//! Cache throughput through the public `Caches` API: `clients` concurrent
//! tasks run a fixed total of `Caches::set`, then `Caches::get`, against one
//! Redis server. Meant to be compared with `redis-benchmark -t get,set -c
//! CLIENTS -n REQUESTS` on the same server in the same run (`bench/cache.sh`).
//!
//! `cargo run --release --example bench_cache -- [--redis HOST:PORT]
//! [--modes redis,hybrid,memory] [--clients 32] [--requests 200000] [--pool N]`
//!
//! Without `--redis`, a private `redis-server` is started on a free port.
//! Values are the verified-claims kind the gate stores (about 120 bytes of
//! JSON) over 1,000 keys. Prints one line per mode and operation:
//!
//! `mode=redis op=get ops_per_sec=... p50_us=... p99_us=... ok=... errors=...`
//!
//! `errors` counts Redis errors, open-breaker rejections and degraded
//! operations reported by the cache statistics during that phase; a run with
//! errors is not a valid measurement. In hybrid mode, `set` of the
//! verified-claims namespace is an asynchronous write (local tier plus a
//! queued Redis write; `dropped` counts writes the full queue refused), and
//! `set_sync` uses a synchronous namespace (Redis round trip plus the
//! invalidation message).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use oidcgate::cache::{
    CacheKey, CacheSettings, CacheStats, Caches, Namespace, RedisAddress, RedisSettings,
};
use serde::{Deserialize, Serialize};
use testkit::redis::RedisServer;

const KEYS: usize = 1_000;
const TTL: Duration = Duration::from_secs(600);

#[derive(Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    email: String,
    groups: Vec<String>,
    iss: String,
    exp: u64,
}

fn claims() -> Claims {
    Claims {
        sub: "248289761001".to_owned(),
        email: "jane@example.com".to_owned(),
        groups: vec!["admins".to_owned(), "dev".to_owned()],
        iss: "https://idp.example.com/realms/main".to_owned(),
        exp: 1_900_000_000,
    }
}

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Set(Namespace),
    Get,
}

/// Errors visible in the statistics: any of them invalidates a phase.
fn errors(s: &CacheStats) -> u64 {
    s.redis_errors + s.breaker_rejections + s.degraded_operations
}

/// Runs `total` operations split over `clients` tasks; returns ops/s, the
/// sorted per-operation latencies in nanoseconds and the number of
/// operations that returned what was expected.
async fn phase(
    caches: &Caches,
    keys: &Arc<Vec<CacheKey>>,
    op: Op,
    clients: usize,
    total: usize,
) -> (f64, Vec<u64>, usize) {
    let per = total / clients;
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let caches = caches.clone();
            let keys = keys.clone();
            tokio::spawn(async move {
                let value = claims();
                let mut lat = Vec::with_capacity(per);
                let mut ok = 0usize;
                for i in 0..per {
                    let key = &keys[(c * per + i) % KEYS];
                    let t = Instant::now();
                    let good = match op {
                        Op::Set(ns) => caches.set(ns, key, &value, TTL).await.is_ok(),
                        Op::Get => matches!(
                            caches.get::<Claims>(Namespace::VerifiedClaims, key).await,
                            Ok(Some(_))
                        ),
                    };
                    lat.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    ok += usize::from(good);
                }
                (lat, ok)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(per * clients);
    let mut ok = 0;
    for t in tasks {
        let (lat, n) = t.await.expect("task");
        all.extend(lat);
        ok += n;
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as f64 / secs, all, ok)
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1_000.0
}

#[tokio::main]
async fn main() {
    let clients: usize = arg("--clients").map_or(32, |s| s.parse().expect("--clients N"));
    let requests: usize = arg("--requests").map_or(200_000, |s| s.parse().expect("--requests N"));
    let modes = arg("--modes").unwrap_or_else(|| "redis,hybrid,memory".into());
    let pool: Option<usize> = arg("--pool").map(|s| s.parse().expect("--pool N"));
    let (address, _own_server) = match arg("--redis") {
        Some(a) => (a, None),
        None => {
            let s = RedisServer::start().expect("redis-server");
            (s.address(), Some(s))
        }
    };
    let keys: Arc<Vec<CacheKey>> = Arc::new(
        (0..KEYS)
            .map(|i| CacheKey::hashed(&format!("header.payload-{i}.signature")))
            .collect(),
    );

    for mode in modes.split(',') {
        let mut redis = RedisSettings::standalone(RedisAddress::parse(&address).expect("address"));
        if let Some(p) = pool {
            redis.pool_size = p;
        }
        let pool_size = redis.pool_size;
        let settings = match mode {
            "redis" => CacheSettings::redis(redis),
            "hybrid" => CacheSettings::hybrid(redis),
            "memory" => CacheSettings::memory(),
            other => panic!("unknown mode {other}"),
        };
        let caches = Caches::new(settings).await.expect("caches");
        caches.ping().await.expect("redis answers");
        // Lets the hybrid tier's invalidation subscription come up.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let mut ops = vec![("set", Op::Set(Namespace::VerifiedClaims))];
        if mode == "hybrid" {
            ops.push(("set_sync", Op::Set(Namespace::Revoked)));
        }
        ops.push(("get", Op::Get));
        for (name, op) in ops {
            caches.flush().await;
            let before = caches.stats();
            let (rate, lat, ok) = phase(&caches, &keys, op, clients, requests).await;
            caches.flush().await;
            let after = caches.stats();
            println!(
                "mode={mode} op={name} ops_per_sec={rate:.0} p50_us={:.1} p99_us={:.1} ok={ok} \
                 total={} errors={} dropped={} clients={clients} pool={pool_size}",
                percentile_us(&lat, 0.50),
                percentile_us(&lat, 0.99),
                lat.len(),
                errors(&after) - errors(&before),
                after.async_dropped - before.async_dropped,
            );
        }
    }
}

//! Cache get/set per backend: memory, Redis (a local `redis-server` started
//! by the bench), and hybrid with an L1 hit. Redis benches are skipped when
//! `redis-server` is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use divan::Bencher;
use oidcgate::cache::{CacheKey, CacheSettings, Caches, Namespace, RedisAddress, RedisSettings};
use serde::{Deserialize, Serialize};
use testkit::redis::RedisServer;
use tokio::runtime::Runtime;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    email: String,
    groups: Vec<String>,
    exp: u64,
}

fn claims() -> Claims {
    Claims {
        sub: "248289761001".to_owned(),
        email: "jane@example.com".to_owned(),
        groups: vec!["admins".to_owned(), "dev".to_owned()],
        exp: 1_900_000_000,
    }
}

struct Fixture {
    rt: Runtime,
    caches: Caches,
    _server: Option<RedisServer>,
}

fn fixture(mode: &str) -> Option<Fixture> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if mode == "memory" {
        return Some(Fixture {
            rt,
            caches: Caches::memory(),
            _server: None,
        });
    }
    let server = match RedisServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping {mode}: {e}");
            return None;
        }
    };
    let settings = RedisSettings::standalone(RedisAddress::parse(&server.address()).unwrap());
    let settings = if mode == "redis" {
        CacheSettings::redis(settings)
    } else {
        CacheSettings::hybrid(settings)
    };
    let caches = rt.block_on(Caches::new(settings)).unwrap();
    Some(Fixture {
        rt,
        caches,
        _server: Some(server),
    })
}

const MODES: [&str; 3] = ["memory", "redis", "hybrid"];
const TTL: Duration = Duration::from_secs(600);

#[divan::bench(args = MODES)]
fn get_hit(bencher: Bencher, mode: &str) {
    let Some(fx) = fixture(mode) else { return };
    let key = CacheKey::hashed("header.payload.signature");
    fx.rt
        .block_on(
            fx.caches
                .set(Namespace::VerifiedClaims, &key, &claims(), TTL),
        )
        .unwrap();
    fx.rt.block_on(fx.caches.flush());
    bencher.bench_local(|| {
        fx.rt
            .block_on(fx.caches.get::<Claims>(Namespace::VerifiedClaims, &key))
            .unwrap()
    });
}

#[divan::bench(args = MODES)]
fn revoked_lookup_miss(bencher: Bencher, mode: &str) {
    let Some(fx) = fixture(mode) else { return };
    let key = CacheKey::hashed("not revoked");
    bencher.bench_local(|| {
        fx.rt
            .block_on(fx.caches.get::<bool>(Namespace::Revoked, &key))
            .unwrap()
    });
}

#[divan::bench(args = MODES)]
fn set(bencher: Bencher, mode: &str) {
    let Some(fx) = fixture(mode) else { return };
    let key = CacheKey::hashed("header.payload.signature");
    let value = claims();
    bencher.bench_local(|| {
        fx.rt
            .block_on(fx.caches.set(Namespace::VerifiedClaims, &key, &value, TTL))
            .unwrap()
    });
}

#[divan::bench(args = MODES)]
fn set_sync_class(bencher: Bencher, mode: &str) {
    let Some(fx) = fixture(mode) else { return };
    let key = CacheKey::hashed("revoked token");
    bencher.bench_local(|| {
        fx.rt
            .block_on(fx.caches.set(Namespace::Revoked, &key, &true, TTL))
            .unwrap()
    });
}

fn main() {
    divan::main();
}

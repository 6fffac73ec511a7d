//! The provider's signing keys, fetched from `jwks_uri` and kept current.
//!
//! Lookups are lock-free (an `ArcSwap` of an immutable map). An unknown `kid`
//! triggers a refetch, at most once per `min_refresh_interval`, so junk tokens
//! cannot amplify into traffic to the provider; a lookup that misses while a
//! refetch is in flight waits for it. A failed refetch keeps the keys already
//! known.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::Error;
use super::http::get_json;
use super::verify::JwsAlgorithm;
use crate::clock::SharedClock;

/// Shortest time between two fetches of the JWKS.
pub const DEFAULT_JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Age after which known keys are refetched on the next lookup.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// One usable public key.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) verifier: Verifier,
    /// The algorithm the JWK pins, if any.
    pub(crate) alg: Option<JwsAlgorithm>,
    family: Family,
}

/// What verifies a signature with one key.
#[derive(Clone)]
pub(crate) enum Verifier {
    /// A key jsonwebtoken verifies with.
    Jwt(Arc<DecodingKey>),
    /// A P-521 public key as an uncompressed point (ES512).
    P521(Arc<[u8]>),
}

/// The key type (and curve) an algorithm needs: a key of another family
/// is never tried.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Rsa,
    P256,
    P384,
    P521,
    Ed,
}

fn family_of(alg: JwsAlgorithm) -> Option<Family> {
    use Algorithm::*;
    match alg {
        JwsAlgorithm::Es512 => Some(Family::P521),
        JwsAlgorithm::Jwt(alg) => match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Family::Rsa),
            ES256 => Some(Family::P256),
            ES384 => Some(Family::P384),
            EdDSA => Some(Family::Ed),
            HS256 | HS384 | HS512 => None,
        },
    }
}

#[derive(Default)]
struct KeyMap {
    by_kid: HashMap<String, Key>,
    without_kid: Vec<Key>,
}

/// The key set of one provider.
pub(crate) struct Jwks {
    uri: String,
    keys: ArcSwap<KeyMap>,
    fetched_at_ms: AtomicU64,
    refresh: tokio::sync::Mutex<()>,
    min_interval: Duration,
    max_age: Duration,
    clock: SharedClock,
}

impl Jwks {
    /// Fetches the key set once.
    pub(crate) async fn load(
        client: &reqwest::Client,
        uri: String,
        clock: SharedClock,
        min_interval: Duration,
    ) -> Result<Self, Error> {
        let map = fetch(client, &uri).await?;
        let now = clock.now_ms();
        Ok(Self {
            uri,
            keys: ArcSwap::from_pointee(map),
            fetched_at_ms: AtomicU64::new(now),
            refresh: tokio::sync::Mutex::new(()),
            min_interval,
            max_age: DEFAULT_JWKS_MAX_AGE,
            clock,
        })
    }

    /// A key set without keys and without a URI to fetch them from (a
    /// provider that signs nothing, such as GitHub): every lookup fails
    /// with [`Error::TokenUnknownKey`].
    pub(crate) fn empty(clock: SharedClock) -> Self {
        let now = clock.now_ms();
        Self {
            uri: String::new(),
            keys: ArcSwap::from_pointee(KeyMap::default()),
            fetched_at_ms: AtomicU64::new(now),
            refresh: tokio::sync::Mutex::new(()),
            min_interval: Duration::MAX,
            max_age: Duration::MAX,
            clock,
        }
    }

    /// When the keys were last fetched (or a refetch attempted), in
    /// milliseconds on the injected clock.
    pub(crate) fn fetched_at_ms(&self) -> u64 {
        self.fetched_at_ms.load(Ordering::Acquire)
    }

    /// The key for `kid` usable with `alg`, refetching once (rate-limited) when
    /// the kid is unknown or the keys are old.
    pub(crate) async fn key(
        &self,
        client: &reqwest::Client,
        kid: Option<&str>,
        alg: JwsAlgorithm,
    ) -> Result<Key, Error> {
        let age_ms = self
            .clock
            .now_ms()
            .saturating_sub(self.fetched_at_ms.load(Ordering::Acquire));
        if age_ms < duration_ms(self.max_age) {
            if let Some(k) = self.lookup(kid, alg)? {
                return Ok(k);
            }
        }
        self.refetch(client).await;
        self.lookup(kid, alg)?.ok_or(Error::TokenUnknownKey)
    }

    fn lookup(&self, kid: Option<&str>, alg: JwsAlgorithm) -> Result<Option<Key>, Error> {
        let map = self.keys.load();
        let fam = family_of(alg).ok_or(Error::TokenAlgorithm)?;
        let candidate = match kid {
            Some(kid) => map.by_kid.get(kid).cloned(),
            None => {
                let mut it = map
                    .without_kid
                    .iter()
                    .chain(map.by_kid.values())
                    .filter(|k| k.family == fam);
                match (it.next(), it.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        };
        let Some(k) = candidate else { return Ok(None) };
        if k.family != fam || k.alg.is_some_and(|pinned| pinned != alg) {
            // A key exists for this kid but not for this algorithm: never try
            // another family (the classic RS/HS confusion).
            return Err(Error::TokenAlgorithm);
        }
        Ok(Some(k))
    }

    async fn refetch(&self, client: &reqwest::Client) {
        let started = self.fetched_at_ms.load(Ordering::Acquire);
        if self.clock.now_ms().saturating_sub(started) < duration_ms(self.min_interval) {
            // The attempt is marked before its answer arrives: a refetch may
            // be in flight, and a token signed with a key it brings must not
            // fail meanwhile. Wait for it (it ends within the provider
            // timeout); this asks the provider nothing.
            drop(self.refresh.lock().await);
            return;
        }
        let _guard = self.refresh.lock().await;
        if self.fetched_at_ms.load(Ordering::Acquire) != started {
            return; // someone else refreshed while we waited
        }
        // Mark the attempt first so a failing provider is asked at most once
        // per interval.
        self.fetched_at_ms
            .store(self.clock.now_ms(), Ordering::Release);
        match fetch(client, &self.uri).await {
            Ok(map) => {
                tracing::info!(
                    keys = map.by_kid.len() + map.without_kid.len(),
                    "JWKS refreshed"
                );
                self.keys.store(Arc::new(map));
            }
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the known keys"),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The uncompressed point `04 || x || y` of a P-521 JWK (coordinates of
/// 66 bytes each, RFC 7518 §6.2.1).
fn p521_point(x: &str, y: &str) -> Option<Arc<[u8]>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    const COORDINATE_BYTES: usize = 66;
    let x = URL_SAFE_NO_PAD.decode(x).ok()?;
    let y = URL_SAFE_NO_PAD.decode(y).ok()?;
    if x.len() != COORDINATE_BYTES || y.len() != COORDINATE_BYTES {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * COORDINATE_BYTES);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point.into())
}

#[derive(serde::Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

async fn fetch(client: &reqwest::Client, uri: &str) -> Result<KeyMap, Error> {
    // Keys are parsed one by one so one exotic key does not hide the others.
    let set: RawJwkSet = get_json(client, uri).await?;
    let mut map = KeyMap::default();
    for raw in set.keys {
        // The pinned algorithm as written: jsonwebtoken's own reading of
        // `alg` does not know ES512.
        let alg = raw
            .get("alg")
            .and_then(serde_json::Value::as_str)
            .and_then(|a| a.parse::<JwsAlgorithm>().ok());
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let jwk = &jwk;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Family::P256,
                EllipticCurve::P384 => Family::P384,
                EllipticCurve::P521 => Family::P521,
                EllipticCurve::Ed25519 => continue,
            },
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            // Symmetric keys never verify provider tokens.
            AlgorithmParameters::OctetKey(_) => continue,
        };
        let verifier = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if family == Family::P521 => {
                let Some(point) = p521_point(&ec.x, &ec.y) else {
                    continue;
                };
                Verifier::P521(point)
            }
            _ => match DecodingKey::from_jwk(jwk) {
                Ok(key) => Verifier::Jwt(Arc::new(key)),
                Err(_) => continue,
            },
        };
        let entry = Key {
            verifier,
            alg,
            family,
        };
        match &jwk.common.key_id {
            Some(kid) => {
                map.by_kid.entry(kid.clone()).or_insert(entry);
            }
            None => map.without_kid.push(entry),
        }
    }
    if map.by_kid.is_empty() && map.without_kid.is_empty() {
        return Err(Error::ProviderInvalid(
            "JWKS holds no usable signing key".into(),
        ));
    }
    Ok(map)
}

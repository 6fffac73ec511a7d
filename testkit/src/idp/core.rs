//! Provider state and the token-issuing logic behind the HTTP handlers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use super::{
    AccessTokenFormat, Counters, Endpoint, Fault, IdpConfig, KeyChoice, Mint, SigningAlg, TestUser,
};
use crate::jose::{self, Signer, SigningKey};

/// How long an authorization code stays redeemable.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Live counters; see [`Counters`] for their meaning.
#[derive(Default)]
pub(crate) struct AtomicCounters {
    pub(crate) authorize: AtomicU64,
    pub(crate) code_grants: AtomicU64,
    pub(crate) refresh_grants: AtomicU64,
    pub(crate) client_credentials_grants: AtomicU64,
    pub(crate) failed_grants: AtomicU64,
    pub(crate) introspections: AtomicU64,
    pub(crate) end_session_calls: AtomicU64,
    pub(crate) jwks_fetches: AtomicU64,
    pub(crate) discovery_fetches: AtomicU64,
    pub(crate) registrations: AtomicU64,
}

/// Increments a counter by one.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl AtomicCounters {
    pub(crate) fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            authorize: get(&self.authorize),
            code_grants: get(&self.code_grants),
            refresh_grants: get(&self.refresh_grants),
            client_credentials_grants: get(&self.client_credentials_grants),
            failed_grants: get(&self.failed_grants),
            introspections: get(&self.introspections),
            end_session_calls: get(&self.end_session_calls),
            jwks_fetches: get(&self.jwks_fetches),
            discovery_fetches: get(&self.discovery_fetches),
            registrations: get(&self.registrations),
        }
    }

    /// Counts a request that an injected fault answered.
    pub(crate) fn count_faulted(&self, endpoint: Endpoint) {
        match endpoint {
            Endpoint::Token => bump(&self.failed_grants),
            Endpoint::Jwks => bump(&self.jwks_fetches),
            Endpoint::Discovery => bump(&self.discovery_fetches),
            Endpoint::Introspection => bump(&self.introspections),
            Endpoint::Authorize => bump(&self.authorize),
            Endpoint::EndSession => bump(&self.end_session_calls),
            Endpoint::Registration => bump(&self.registrations),
            Endpoint::Userinfo | Endpoint::Revocation | Endpoint::Any => {}
        }
    }
}

/// One completed (automatic) login at `/authorize`.
#[derive(Clone)]
pub(crate) struct Login {
    pub(crate) user: TestUser,
    pub(crate) sid: String,
    pub(crate) auth_time: u64,
    pub(crate) scope: String,
    pub(crate) client_id: String,
}

/// An issued authorization code.
pub(crate) struct CodeGrant {
    pub(crate) login: Login,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: String,
    pub(crate) code_challenge: Option<String>,
    /// The request asked for offline access as Google wants it.
    pub(crate) offline: bool,
    pub(crate) issued: tokio::time::Instant,
    /// Set once the code has been presented.
    pub(crate) used: bool,
    /// Token family created when the code was redeemed.
    pub(crate) family: Option<u64>,
}

/// Lifecycle of a refresh token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RtStatus {
    Active,
    /// Already exchanged under rotation; presenting it again is reuse.
    Used,
    Revoked,
    Expired,
}

/// An issued refresh token.
pub(crate) struct RefreshGrant {
    pub(crate) login: Login,
    pub(crate) family: u64,
    pub(crate) status: RtStatus,
    pub(crate) iat: u64,
}

/// An issued access token (JWT or opaque), as introspection sees it.
pub(crate) struct AccessGrant {
    pub(crate) sub: String,
    pub(crate) client_id: String,
    pub(crate) aud: Value,
    pub(crate) scope: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    pub(crate) user: Option<TestUser>,
    pub(crate) family: Option<u64>,
    pub(crate) revoked: bool,
}

impl AccessGrant {
    pub(crate) fn active(&self) -> bool {
        !self.revoked && now_secs() < self.exp
    }
}

/// Mutable provider state.
pub(crate) struct State {
    pub(crate) user: TestUser,
    pub(crate) current: Arc<SigningKey>,
    pub(crate) published: Vec<Arc<SigningKey>>,
    pub(crate) codes: HashMap<String, CodeGrant>,
    pub(crate) refresh: HashMap<String, RefreshGrant>,
    pub(crate) access: HashMap<String, AccessGrant>,
    pub(crate) ended_sids: HashSet<String>,
    pub(crate) id_token_overrides: Option<Value>,
    /// Claims merged into every JWT access token of the token endpoint.
    pub(crate) access_token_overrides: Option<Value>,
    /// Key signing the ID tokens of the token endpoint.
    pub(crate) id_token_key: KeyChoice,
    /// `jti`s of client assertions already presented.
    pub(crate) seen_jtis: HashSet<String>,
    /// Client authentication methods of successful authentications, in order.
    pub(crate) client_auth_log: Vec<&'static str>,
    /// Query parameters of every `/authorize` request.
    pub(crate) authorize_log: Vec<Vec<(String, String)>>,
    /// Form parameters of every `/token` request, secrets left out.
    pub(crate) token_log: Vec<Vec<(String, String)>>,
    /// Authenticated revocation requests, in order.
    pub(crate) revocations: Vec<super::Revocation>,
    next_family: u64,
}

impl State {
    pub(crate) fn new_family(&mut self) -> u64 {
        self.next_family += 1;
        self.next_family
    }

    /// Revokes every refresh and access token of a family.
    pub(crate) fn revoke_family(&mut self, family: u64) {
        for rt in self.refresh.values_mut() {
            if rt.family == family {
                rt.status = RtStatus::Revoked;
            }
        }
        for at in self.access.values_mut() {
            if at.family == Some(family) {
                at.revoked = true;
            }
        }
    }
}

/// Everything the handlers and the [`super::TestIdp`] handle share.
pub(crate) struct Shared {
    pub(crate) cfg: IdpConfig,
    /// Where the endpoints are served (`http://ADDR` + `issuer_path`).
    pub(crate) issuer: String,
    /// `issuer` of the discovery document.
    pub(crate) advertised_iss: String,
    /// `iss` of the tokens.
    pub(crate) token_iss: String,
    pub(crate) state: Mutex<State>,
    pub(crate) counters: AtomicCounters,
    pub(crate) faults: Mutex<Vec<(Endpoint, Fault, u32)>>,
    unpublished_rsa: OnceLock<Arc<SigningKey>>,
    unpublished_ec: OnceLock<Arc<SigningKey>>,
    unpublished_ec521: OnceLock<Arc<SigningKey>>,
}

/// Tokens returned by a successful code or refresh grant.
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) id_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) scope: String,
}

impl Shared {
    pub(crate) fn new(cfg: IdpConfig, base: String) -> Self {
        let issuer = format!("{base}{}", cfg.issuer_path);
        let fill = |t: &Option<String>| {
            t.as_ref()
                .map_or_else(|| issuer.clone(), |t| t.replace("{base}", &base))
        };
        let advertised_iss = fill(&cfg.advertised_issuer);
        let token_iss = fill(&cfg.token_issuer);
        let key = Arc::new(SigningKey::generate(cfg.signing_alg));
        let state = State {
            user: cfg.user.clone(),
            current: key.clone(),
            published: vec![key],
            codes: HashMap::new(),
            refresh: HashMap::new(),
            access: HashMap::new(),
            ended_sids: HashSet::new(),
            id_token_overrides: None,
            access_token_overrides: None,
            id_token_key: KeyChoice::Current,
            seen_jtis: HashSet::new(),
            client_auth_log: Vec::new(),
            authorize_log: Vec::new(),
            token_log: Vec::new(),
            revocations: Vec::new(),
            next_family: 0,
        };
        Self {
            cfg,
            issuer,
            advertised_iss,
            token_iss,
            state: Mutex::new(state),
            counters: AtomicCounters::default(),
            faults: Mutex::new(Vec::new()),
            unpublished_rsa: OnceLock::new(),
            unpublished_ec: OnceLock::new(),
            unpublished_ec521: OnceLock::new(),
        }
    }

    /// Takes one pending fault for `endpoint`, if any.
    pub(crate) fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut faults = self.faults.lock();
        let idx = faults
            .iter()
            .position(|(ep, _, _)| *ep == endpoint || *ep == Endpoint::Any)?;
        let fault = faults[idx].1;
        faults[idx].2 -= 1;
        if faults[idx].2 == 0 {
            faults.remove(idx);
        }
        Some(fault)
    }

    /// A key of `alg` that is never published.
    pub(crate) fn unpublished_key(&self, alg: SigningAlg) -> Arc<SigningKey> {
        let cell = match alg {
            SigningAlg::RS256 => &self.unpublished_rsa,
            SigningAlg::ES256 => &self.unpublished_ec,
            SigningAlg::ES512 => &self.unpublished_ec521,
        };
        cell.get_or_init(|| Arc::new(SigningKey::generate(alg)))
            .clone()
    }

    pub(crate) fn jwks(&self) -> Value {
        let st = self.state.lock();
        let keys: Vec<Value> = st.published.iter().map(|k| k.jwk()).collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` with the current key.
    fn sign(&self, typ: &str, claims: Map<String, Value>) -> String {
        let key = self.state.lock().current.clone();
        let header = json!({ "alg": key.alg.as_str(), "kid": key.kid, "typ": typ });
        jose::compact_jws(&header, &Value::Object(claims), Signer::Key(&key), None)
    }

    fn id_token_claims(&self, login: &Login, nonce: Option<&str>) -> Map<String, Value> {
        let now = now_secs();
        let mut c = Map::new();
        c.insert("iss".into(), self.token_iss.clone().into());
        c.insert("sub".into(), login.user.sub.clone().into());
        c.insert("aud".into(), self.cfg.client_id.clone().into());
        c.insert("azp".into(), self.cfg.client_id.clone().into());
        c.insert("iat".into(), now.into());
        c.insert("exp".into(), (now + self.cfg.id_token_ttl.as_secs()).into());
        c.insert("auth_time".into(), login.auth_time.into());
        if let Some(nonce) = nonce {
            c.insert("nonce".into(), nonce.into());
        }
        c.insert("sid".into(), login.sid.clone().into());
        for (k, v) in login.user.claims() {
            c.insert(k, v);
        }
        c
    }

    /// Builds, signs and records an access token for `login`; its `aud` is
    /// the `resource` the grant named when the provider honours resource
    /// indicators, else the configured API audience.
    fn issue_access_token(
        &self,
        login: &Login,
        family: Option<u64>,
        resource: Option<&str>,
    ) -> String {
        let now = now_secs();
        let exp = now + self.cfg.access_token_ttl.as_secs();
        let aud = resource
            .filter(|_| self.cfg.resource_indicators)
            .unwrap_or(&self.cfg.api_audience)
            .to_owned();
        let overrides = self.state.lock().access_token_overrides.clone();
        let mut recorded_aud = Value::from(aud.clone());
        let token = match self.cfg.access_token_format {
            AccessTokenFormat::Opaque => jose::random_token(32),
            AccessTokenFormat::EntraGraph => self.graph_access_token(login, now, exp),
            AccessTokenFormat::OktaOrg => self.okta_org_access_token(login, now, exp),
            AccessTokenFormat::Jwt => {
                let mut c = Map::new();
                c.insert("iss".into(), self.token_iss.clone().into());
                c.insert("sub".into(), login.user.sub.clone().into());
                c.insert("aud".into(), aud.into());
                c.insert("client_id".into(), login.client_id.clone().into());
                c.insert("scope".into(), login.scope.clone().into());
                c.insert("iat".into(), now.into());
                c.insert("exp".into(), exp.into());
                c.insert("jti".into(), jose::random_token(16).into());
                c.insert("auth_time".into(), login.auth_time.into());
                c.insert("sid".into(), login.sid.clone().into());
                c.insert("groups".into(), login.user.groups.clone().into());
                c.insert("roles".into(), login.user.roles.clone().into());
                for (k, v) in &login.user.access_token_extra {
                    c.insert(k.clone(), v.clone());
                }
                if let Some(o) = &overrides {
                    jose::merge(&mut c, o);
                }
                recorded_aud = c.get("aud").cloned().unwrap_or(Value::Null);
                self.sign("at+jwt", c)
            }
        };
        self.state.lock().access.insert(
            token.clone(),
            AccessGrant {
                sub: login.user.sub.clone(),
                client_id: login.client_id.clone(),
                aud: recorded_aud,
                scope: login.scope.clone(),
                iat: now,
                exp,
                user: Some(login.user.clone()),
                family,
                revoked: false,
            },
        );
        token
    }

    /// A Microsoft-Graph-shaped access token: Graph audience, the v1
    /// issuer, a `nonce` in the header, signed by a key whose public part
    /// is never published (a client cannot verify it, as with Graph).
    fn graph_access_token(&self, login: &Login, now: u64, exp: u64) -> String {
        let tid = login
            .user
            .extra
            .get("tid")
            .and_then(Value::as_str)
            .unwrap_or("00000000-0000-0000-0000-000000000000")
            .to_owned();
        let claims = json!({
            "aud": "00000003-0000-0000-c000-000000000000",
            "iss": format!("https://sts.windows.net/{tid}/"),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "oid": login.user.extra.get("oid").cloned().unwrap_or(Value::Null),
            "tid": tid,
            "scp": "openid profile email User.Read",
            "sub": "graph-pairwise-subject",
        });
        self.mint(&Mint {
            header: json!({ "nonce": jose::random_token(16), "typ": "JWT" }),
            claims,
            key: KeyChoice::Unpublished,
            raw_signature: None,
        })
    }

    /// An access token of Okta's org authorization server: for Okta's own
    /// APIs, signed by a key whose public part is never published.
    fn okta_org_access_token(&self, login: &Login, now: u64, exp: u64) -> String {
        let claims = json!({
            "ver": 1,
            "jti": format!("AT.{}", jose::random_token(16)),
            "iss": self.token_iss,
            "aud": self.token_iss,
            "iat": now,
            "exp": exp,
            "cid": login.client_id,
            "uid": login.user.sub,
            "scp": login.scope.split(' ').collect::<Vec<_>>(),
            "auth_time": login.auth_time,
            "sub": login.user.email.clone().unwrap_or_else(|| login.user.sub.clone()),
        });
        self.mint(&Mint {
            header: json!({ "typ": "application/okta-internal-at+jwt" }),
            claims,
            key: KeyChoice::Unpublished,
            raw_signature: None,
        })
    }

    /// Issues the token set of a code or refresh grant. The refresh token (if
    /// any) is registered under `family`.
    pub(crate) fn issue_tokens(
        &self,
        login: &Login,
        family: u64,
        nonce: Option<&str>,
        with_refresh_token: bool,
        resource: Option<&str>,
    ) -> IssuedTokens {
        let access_token = self.issue_access_token(login, Some(family), resource);
        let mut claims = self.id_token_claims(login, nonce);
        // at_hash: the left half of the hash of the signing algorithm.
        let digest = match self.state.lock().current.alg {
            SigningAlg::ES512 => jose::sha512(access_token.as_bytes()),
            SigningAlg::RS256 | SigningAlg::ES256 => jose::sha256(access_token.as_bytes()),
        };
        claims.insert(
            "at_hash".into(),
            jose::b64url(&digest[..digest.len() / 2]).into(),
        );
        let overrides = self.state.lock().id_token_overrides.clone();
        if let Some(overrides) = overrides {
            jose::merge(&mut claims, &overrides);
        }
        let key = self.state.lock().id_token_key.clone();
        let id_token = match key {
            KeyChoice::Current => self.sign("JWT", claims),
            key => self.mint(&Mint {
                claims: Value::Object(claims),
                key,
                ..Mint::default()
            }),
        };
        let refresh_token = with_refresh_token.then(|| {
            let rt = jose::random_token(32);
            self.state.lock().refresh.insert(
                rt.clone(),
                RefreshGrant {
                    login: login.clone(),
                    family,
                    status: RtStatus::Active,
                    iat: now_secs(),
                },
            );
            rt
        });
        IssuedTokens {
            access_token,
            id_token,
            refresh_token,
            scope: login.scope.clone(),
        }
    }

    /// A fresh login of the current user (new `sid`).
    pub(crate) fn new_login(&self, scope: &str) -> Login {
        Login {
            user: self.state.lock().user.clone(),
            sid: jose::random_token(12),
            auth_time: now_secs(),
            scope: scope.to_owned(),
            client_id: self.cfg.client_id.clone(),
        }
    }

    pub(crate) fn helper_id_token(&self, extra: &Value) -> String {
        let login = self.new_login("openid profile email");
        let mut claims = self.id_token_claims(&login, None);
        jose::merge(&mut claims, extra);
        self.sign("JWT", claims)
    }

    pub(crate) fn helper_access_token(&self, extra: &Value) -> String {
        let login = self.new_login("openid profile email");
        let now = now_secs();
        let mut c = Map::new();
        c.insert("iss".into(), self.token_iss.clone().into());
        c.insert("sub".into(), login.user.sub.clone().into());
        c.insert("aud".into(), self.cfg.api_audience.clone().into());
        c.insert("client_id".into(), self.cfg.client_id.clone().into());
        c.insert("scope".into(), login.scope.clone().into());
        c.insert("iat".into(), now.into());
        c.insert(
            "exp".into(),
            (now + self.cfg.access_token_ttl.as_secs()).into(),
        );
        c.insert("jti".into(), jose::random_token(16).into());
        c.insert("groups".into(), login.user.groups.clone().into());
        c.insert("roles".into(), login.user.roles.clone().into());
        jose::merge(&mut c, extra);
        let token = self.sign("at+jwt", c.clone());
        self.record_jwt_access_token(&token, &c, Some(login.user));
        token
    }

    /// Records a JWT access token built by a helper so introspection and
    /// userinfo know it; the recorded facts are taken from its final claims.
    fn record_jwt_access_token(
        &self,
        token: &str,
        claims: &Map<String, Value>,
        user: Option<TestUser>,
    ) {
        let text = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let num = |k: &str| claims.get(k).and_then(Value::as_u64).unwrap_or(0);
        let grant = AccessGrant {
            sub: text("sub"),
            client_id: text("client_id"),
            aud: claims.get("aud").cloned().unwrap_or(Value::Null),
            scope: text("scope"),
            iat: num("iat"),
            exp: num("exp"),
            user,
            family: None,
            revoked: false,
        };
        self.state.lock().access.insert(token.to_owned(), grant);
    }

    pub(crate) fn client_credentials_token(&self, audience: &str, scope: &str) -> String {
        let now = now_secs();
        let mut c = Map::new();
        c.insert("iss".into(), self.token_iss.clone().into());
        c.insert("sub".into(), self.cfg.client_id.clone().into());
        c.insert("aud".into(), audience.into());
        c.insert("client_id".into(), self.cfg.client_id.clone().into());
        c.insert("scope".into(), scope.into());
        c.insert("iat".into(), now.into());
        c.insert(
            "exp".into(),
            (now + self.cfg.access_token_ttl.as_secs()).into(),
        );
        c.insert("jti".into(), jose::random_token(16).into());
        let token = self.sign("at+jwt", c.clone());
        self.record_jwt_access_token(&token, &c, None);
        token
    }

    pub(crate) fn logout_token(&self, sid: Option<&str>, sub: Option<&str>) -> String {
        let now = now_secs();
        let mut c = Map::new();
        c.insert("iss".into(), self.token_iss.clone().into());
        c.insert("aud".into(), self.cfg.client_id.clone().into());
        c.insert("iat".into(), now.into());
        c.insert("exp".into(), (now + 120).into());
        c.insert("jti".into(), jose::random_token(16).into());
        c.insert(
            "events".into(),
            json!({ "http://schemas.openid.net/event/backchannel-logout": {} }),
        );
        if let Some(sid) = sid {
            c.insert("sid".into(), sid.into());
        }
        if let Some(sub) = sub {
            c.insert("sub".into(), sub.into());
        }
        self.sign("logout+jwt", c)
    }

    pub(crate) fn revoke_refresh_token(&self, rt: &str) {
        if let Some(grant) = self.state.lock().refresh.get_mut(rt) {
            grant.status = RtStatus::Revoked;
        }
    }

    pub(crate) fn expire_refresh_tokens(&self) {
        for grant in self.state.lock().refresh.values_mut() {
            if grant.status == RtStatus::Active {
                grant.status = RtStatus::Expired;
            }
        }
    }
}

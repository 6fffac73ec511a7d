//! [`SessionCodec`]: reads and writes the session and login cookies.
//!
//! This file owns the cookie names, the chunking of the session into several
//! cookies, the session lifetime (sliding, with an optional absolute limit),
//! the login-cookie lifetime and the settings that configure them. It must not decide whether a user may pass,
//! talk to the identity provider, or log cookie values: a cookie it cannot
//! read is reported as "no session", with at most a value-free debug event.
//!
//! Cookie names for a prefix `P`: the session is stored in `Ps_0` .. `Ps_9`
//! and a login in progress in `Plogin`.
//!
//! Session cookie layout: the sealed session text (see `crypto.rs`) is
//! prefixed with `N.`, where `N` is the number of chunk cookies, and the
//! result is cut into `N` pieces of at most [`MAX_COOKIE_VALUE`] bytes stored
//! in `Ps_0` .. `Ps_{N-1}`. `N` is also bound into the associated data, so a
//! reader needs exactly the chunks `0..N` of one write; chunks with a higher
//! index that are still in the browser are ignored (and deleted by the next
//! [`SessionCodec::store`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::cookies::{self, Attributes};
use super::crypto::{Keyring, Purpose};
use super::model::{LoginState, MAX_PENDING_LOGINS, PendingLogin, Session};
use super::{Error, SecretString};

/// Default prefix of every cookie name.
pub const DEFAULT_COOKIE_PREFIX: &str = "_oidcgate_";

/// Default cookie `Path`.
pub const DEFAULT_COOKIE_PATH: &str = "/";

/// Default session lifetime, counted from the login or the last refresh (24 hours).
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Default lifetime of the login cookie and of each pending login (10 minutes).
pub const DEFAULT_LOGIN_TTL: Duration = Duration::from_secs(10 * 60);

/// Maximum length of one cookie value written by the codec, in bytes.
pub const MAX_COOKIE_VALUE: usize = 3800;

/// Maximum number of chunk cookies a session may use.
pub const MAX_CHUNKS: usize = 10;

/// Maximum length of the cookie prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;

/// Every `Set-Cookie` line (`Set-Cookie: ` plus the value) the codec writes
/// is shorter than this many bytes.
pub const MAX_SET_COOKIE_LEN: usize = 4096;

/// Maximum length of the `Domain` attribute, in bytes.
const MAX_DOMAIN_LEN: usize = 253;
/// Maximum length of the `Path` attribute, in bytes (browsers ignore longer).
const MAX_PATH_LEN: usize = 1024;
/// `Set-Cookie: ` as counted in [`MAX_SET_COOKIE_LEN`].
const SET_COOKIE_FIELD: &str = "Set-Cookie: ";
/// Name suffix of the login cookie.
const LOGIN_SUFFIX: &str = "login";
/// Name infix of the session chunk cookies.
const CHUNK_INFIX: &str = "s_";

/// Settings owned by this module; the `config` module builds them.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Prefix of every cookie name (HTTP token characters only).
    pub cookie_prefix: String,
    /// Cookie `Domain`; `None` makes host-only cookies.
    pub cookie_domain: Option<String>,
    /// Cookie `Path`.
    pub cookie_path: String,
    /// Session lifetime, counted from the login or the last successful
    /// token refresh, whichever is later (`sessionMaxAge`: sliding).
    pub max_age: Duration,
    /// Absolute limit counted from the login, never extended by a refresh
    /// (`sessionAbsoluteMaxAge`; `None`: no absolute limit).
    pub absolute_max_age: Option<Duration>,
    /// Lifetime of the login cookie and of each pending login.
    pub login_ttl: Duration,
    /// Key material, `[current, previous...]`: the current key seals, every
    /// key opens. Each must be at least [`super::MIN_KEY_LEN`] bytes.
    pub keys: Vec<SecretString>,
}

impl SessionSettings {
    /// Default settings with the given keys.
    pub fn with_keys(keys: Vec<SecretString>) -> Self {
        Self {
            keys,
            ..Self::default()
        }
    }
}

impl Default for SessionSettings {
    /// Default settings with no keys; [`SessionCodec::new`] rejects them
    /// until at least one key is added.
    fn default() -> Self {
        Self {
            cookie_prefix: DEFAULT_COOKIE_PREFIX.to_owned(),
            cookie_domain: None,
            cookie_path: DEFAULT_COOKIE_PATH.to_owned(),
            max_age: DEFAULT_SESSION_MAX_AGE,
            absolute_max_age: None,
            login_ttl: DEFAULT_LOGIN_TTL,
            keys: Vec::new(),
        }
    }
}

/// A cookie name owned by the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Chunk(usize),
    Login,
}

/// The codec's cookies found in a request (first occurrence of each name).
struct Carried<'a> {
    chunks: [Option<&'a [u8]>; MAX_CHUNKS],
    login: Option<&'a [u8]>,
}

/// Pre-rendered deletion of one cookie.
struct Expired {
    plain: HeaderValue,
    secure: HeaderValue,
}

impl Expired {
    fn get(&self, secure: bool) -> HeaderValue {
        if secure {
            self.secure.clone()
        } else {
            self.plain.clone()
        }
    }
}

struct Inner {
    prefix: String,
    max_age: u64,
    absolute_max_age: Option<u64>,
    login_ttl: u64,
    /// `__Host-` and `__Secure-` cookies are only accepted with `Secure`.
    force_secure: bool,
    keyring: Keyring,
    attributes: Attributes,
    chunk_names: Vec<String>,
    login_name: String,
    expired_chunks: Vec<Expired>,
    expired_login: Expired,
}

/// Reads and writes the session and login cookies.
///
/// Cheap to clone (the state is shared). All times are unix seconds passed by
/// the caller.
///
/// Intended use in the login callback: `load_login`, `take` the pending
/// login by `state`, then send both the `store` cookies for the new session
/// and `store_login` of the remaining login state (or `clear_login` once the
/// attempt counter is no longer needed). [`SessionCodec::store`] leaves the
/// login cookie alone so that other tabs' pending logins and the attempt
/// counter survive a successful login.
#[derive(Clone)]
pub struct SessionCodec {
    inner: Arc<Inner>,
}

impl fmt::Debug for SessionCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCodec")
            .field("prefix", &self.inner.prefix)
            .field("max_age", &self.inner.max_age)
            .field("login_ttl", &self.inner.login_ttl)
            .field("keys", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidSetting {
        field,
        reason: reason.into(),
    }
}

fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        return Err(Error::EmptyPrefix);
    }
    if let Some(ch) = prefix.chars().find(|c| !cookies::is_token_char(*c)) {
        return Err(Error::InvalidPrefix {
            prefix: prefix.to_owned(),
            ch,
        });
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(invalid(
            "cookie_prefix",
            format!(
                "is {} bytes long; at most {MAX_PREFIX_LEN} are allowed",
                prefix.len()
            ),
        ));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), Error> {
    let host = domain.strip_prefix('.').unwrap_or(domain);
    if host.is_empty() {
        return Err(invalid(
            "cookie_domain",
            "must not be empty (omit it for host-only cookies)",
        ));
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(invalid(
            "cookie_domain",
            format!("is longer than {MAX_DOMAIN_LEN} bytes"),
        ));
    }
    if let Some(ch) = domain
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(invalid(
            "cookie_domain",
            format!(
                "{domain:?} contains {ch:?}; only a host name (letters, digits, '-' and '.') is allowed"
            ),
        ));
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(invalid(
            "cookie_path",
            format!("{path:?} must start with '/'"),
        ));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(invalid(
            "cookie_path",
            format!("is longer than {MAX_PATH_LEN} bytes"),
        ));
    }
    if let Some(ch) = path.chars().find(|c| !c.is_ascii_graphic() || *c == ';') {
        return Err(invalid(
            "cookie_path",
            format!(
                "{path:?} contains {ch:?}; spaces, control characters, ';' and non-ASCII are not allowed"
            ),
        ));
    }
    Ok(())
}

/// Seconds of `d`, rejecting lifetimes under one second.
fn whole_seconds(field: &'static str, d: Duration) -> Result<u64, Error> {
    match d.as_secs() {
        0 => Err(invalid(field, "must be at least one second")),
        secs => Ok(secs),
    }
}

/// Number of chunk cookies needed for a sealed text of `sealed_len` bytes
/// once prefixed with `N.`; `None` beyond [`MAX_CHUNKS`].
fn chunk_count(sealed_len: usize) -> Option<usize> {
    (1..=MAX_CHUNKS).find(|n| header_len(*n) + sealed_len <= n * MAX_COOKIE_VALUE)
}

/// Length of the `N.` header.
fn header_len(n: usize) -> usize {
    n.to_string().len() + 1
}

/// Parses the `N.` header of chunk 0: `N` in `1..=MAX_CHUNKS`, no sign or
/// leading zero.
fn parse_header(first: &[u8]) -> Option<(usize, &[u8])> {
    let dot = first.iter().position(|b| *b == b'.')?;
    let (digits, rest) = first.split_at(dot);
    if digits.is_empty() || digits.len() > 2 || digits[0] == b'0' {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if n > MAX_CHUNKS {
        return None;
    }
    Some((n, rest.get(1..)?))
}

impl SessionCodec {
    /// Validates `settings` and derives the keys.
    ///
    /// # Errors
    /// [`Error::NoKeys`], [`Error::KeyTooShort`], [`Error::EmptyPrefix`],
    /// [`Error::InvalidPrefix`], or [`Error::InvalidSetting`] for a malformed
    /// domain or path, a lifetime under one second, `__Host-` rules, or
    /// attributes so long that a cookie line would reach
    /// [`MAX_SET_COOKIE_LEN`].
    pub fn new(settings: SessionSettings) -> Result<Self, Error> {
        let SessionSettings {
            cookie_prefix: prefix,
            cookie_domain: domain,
            cookie_path: path,
            max_age,
            absolute_max_age,
            login_ttl,
            keys,
        } = settings;
        let keyring = Keyring::new(&keys)?;
        validate_prefix(&prefix)?;
        if let Some(domain) = &domain {
            validate_domain(domain)?;
        }
        validate_path(&path)?;
        let max_age = whole_seconds("max_age", max_age)?;
        let absolute_max_age = absolute_max_age
            .map(|d| whole_seconds("absolute_max_age", d))
            .transpose()?;
        let login_ttl = whole_seconds("login_ttl", login_ttl)?;

        let lower = prefix.to_ascii_lowercase();
        let host_prefix = lower.starts_with("__host-");
        if host_prefix && (domain.is_some() || path != "/") {
            return Err(invalid(
                "cookie_prefix",
                "a `__Host-` prefix requires cookie_path \"/\" and no cookie_domain",
            ));
        }
        let force_secure = host_prefix || lower.starts_with("__secure-");

        let attributes = Attributes::new(&path, domain.as_deref());
        let chunk_names: Vec<String> = (0..MAX_CHUNKS)
            .map(|i| format!("{prefix}{CHUNK_INFIX}{i}"))
            .collect();
        let login_name = format!("{prefix}{LOGIN_SUFFIX}");

        let longest_name = chunk_names
            .iter()
            .chain(std::iter::once(&login_name))
            .map(String::len)
            .max()
            .unwrap_or(0);
        let line = SET_COOKIE_FIELD.len()
            + attributes.max_rendered_len(longest_name, MAX_COOKIE_VALUE, max_age.max(login_ttl));
        if line >= MAX_SET_COOKIE_LEN {
            return Err(invalid(
                "cookie_domain/cookie_path",
                format!(
                    "cookie attributes are too long: a full cookie line would take {line} bytes, \
                     the limit is {MAX_SET_COOKIE_LEN}"
                ),
            ));
        }

        let expired = |name: &str| -> Result<Expired, Error> {
            let secure = attributes.render_expired(name, true)?;
            let plain = if force_secure {
                secure.clone()
            } else {
                attributes.render_expired(name, false)?
            };
            Ok(Expired { plain, secure })
        };
        let expired_chunks = chunk_names
            .iter()
            .map(|n| expired(n))
            .collect::<Result<Vec<_>, _>>()?;
        let expired_login = expired(&login_name)?;

        Ok(Self {
            inner: Arc::new(Inner {
                prefix,
                max_age,
                absolute_max_age,
                login_ttl,
                force_secure,
                keyring,
                attributes,
                chunk_names,
                login_name,
                expired_chunks,
                expired_login,
            }),
        })
    }

    /// The keys that authenticate shared-cache values, derived from the
    /// session keys (current first, so rotation keeps old entries readable).
    pub fn cache_integrity_keys(&self) -> Vec<crate::cache::IntegrityKey> {
        self.inner.keyring.cache_integrity_keys()
    }

    /// The cookie prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Session lifetime in seconds (sliding: from the login or the last
    /// refresh). A session is never used more than this long after the last
    /// time the gate judged it valid, so markers that end sessions need to
    /// live no longer.
    pub fn max_age_secs(&self) -> u64 {
        self.inner.max_age
    }

    /// Login cookie lifetime in seconds.
    pub fn login_ttl_secs(&self) -> u64 {
        self.inner.login_ttl
    }

    /// Unix seconds at which `session` stops being accepted: `max_age`
    /// after the login or the last refresh, and never later than
    /// `absolute_max_age` after the login.
    pub fn session_deadline(&self, session: &Session) -> u64 {
        let renewed = session.renewed_at.unwrap_or(0).max(session.created_at);
        let sliding = renewed.saturating_add(self.inner.max_age);
        match self.inner.absolute_max_age {
            Some(abs) => sliding.min(session.created_at.saturating_add(abs)),
            None => sliding,
        }
    }

    /// Reads the session from the request's `Cookie` header(s).
    ///
    /// Missing, tampered, truncated, mixed, foreign (other prefix or key) or
    /// malformed cookies, and sessions at or past their deadline
    /// ([`Self::session_deadline`]), all give `None`. Token expiry (`expires_at`) is not checked here.
    pub fn load(&self, headers: &HeaderMap, now: u64) -> Option<Session> {
        let carried = self.carried(headers);
        let first = carried.chunks[0]?;
        let Some(session) = self.open_session(&carried, first) else {
            tracing::debug!("session cookie present but unreadable; treated as no session");
            return None;
        };
        if now >= self.session_deadline(&session) {
            tracing::debug!("session past its lifetime; treated as no session");
            return None;
        }
        Some(session)
    }

    fn open_session(&self, carried: &Carried<'_>, first: &[u8]) -> Option<Session> {
        if first.len() > MAX_COOKIE_VALUE {
            return None;
        }
        let (count, data) = parse_header(first)?;
        let mut sealed = String::with_capacity(count * MAX_COOKIE_VALUE);
        sealed.push_str(std::str::from_utf8(data).ok()?);
        for chunk in carried.chunks.iter().take(count).skip(1) {
            let chunk = (*chunk)?;
            if chunk.len() > MAX_COOKIE_VALUE {
                return None;
            }
            sealed.push_str(std::str::from_utf8(chunk).ok()?);
        }
        let plain = self
            .inner
            .keyring
            .open(Purpose::Session, &self.context(count), &sealed)
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// `Set-Cookie` values that store `session`.
    ///
    /// Writes the chunk cookies `{prefix}s_0..` (each value at most
    /// [`MAX_COOKIE_VALUE`] bytes, each line under [`MAX_SET_COOKIE_LEN`]),
    /// then deletions of the chunks with a higher index that the request
    /// carried. `Max-Age` is the remaining lifetime, at least 1.
    /// The login cookie is not touched (see [`SessionCodec`]).
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the session needs more than [`MAX_CHUNKS`]
    /// chunks; [`Error::Random`] or [`Error::Encode`] on internal failures.
    pub fn store(
        &self,
        session: &Session,
        request: &HeaderMap,
        secure: bool,
        now: u64,
    ) -> Result<Vec<HeaderValue>, Error> {
        let inner = &*self.inner;
        let json = serde_json::to_vec(session).map_err(|_| Error::Encode)?;
        let sealed_len = Keyring::sealed_text_len(json.len());
        let count = chunk_count(sealed_len).ok_or(Error::TooLarge {
            what: "session",
            needed: sealed_len + header_len(MAX_CHUNKS),
            max: MAX_CHUNKS * MAX_COOKIE_VALUE,
        })?;
        let sealed = inner
            .keyring
            .seal(Purpose::Session, &self.context(count), &json)?;
        let data = format!("{count}.{sealed}");
        let pieces: Vec<&[u8]> = data.as_bytes().chunks(MAX_COOKIE_VALUE).collect();
        if pieces.len() != count {
            return Err(Error::Encode);
        }

        let remaining = self
            .session_deadline(session)
            .saturating_sub(now)
            .clamp(1, inner.max_age);
        let secure = secure || inner.force_secure;
        let mut out = Vec::with_capacity(MAX_CHUNKS);
        for (name, piece) in inner.chunk_names.iter().zip(pieces) {
            let piece = std::str::from_utf8(piece).map_err(|_| Error::Encode)?;
            out.push(inner.attributes.render(name, piece, remaining, secure)?);
        }
        let carried = self.carried(request);
        for (index, expired) in inner.expired_chunks.iter().enumerate().skip(count) {
            if carried.chunks[index].is_some() {
                out.push(expired.get(secure));
            }
        }
        Ok(out)
    }

    /// `Set-Cookie` values that delete every session chunk and the login
    /// cookie the request carried. `{prefix}s_0` is always deleted, even if
    /// the request did not carry it.
    pub fn clear(&self, request: &HeaderMap, secure: bool) -> Vec<HeaderValue> {
        let inner = &*self.inner;
        let secure = secure || inner.force_secure;
        let carried = self.carried(request);
        let mut out: Vec<HeaderValue> = inner
            .expired_chunks
            .iter()
            .enumerate()
            .filter(|(index, _)| *index == 0 || carried.chunks[*index].is_some())
            .map(|(_, expired)| expired.get(secure))
            .collect();
        if carried.login.is_some() {
            out.push(inner.expired_login.get(secure));
        }
        out
    }

    /// True when the request carries this codec's login cookie.
    pub fn carries_login(&self, headers: &HeaderMap) -> bool {
        self.carried(headers).login.is_some()
    }

    /// True when a `Set-Cookie` value sets or clears this codec's login cookie.
    pub fn is_login_set_cookie(&self, set_cookie: &HeaderValue) -> bool {
        let name = set_cookie
            .as_bytes()
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default();
        matches!(self.classify(name.trim_ascii()), Some(Own::Login))
    }

    /// Reads the login state from the request's `Cookie` header(s), dropping
    /// pending logins at or past `created_at + login_ttl`. `None` when the
    /// cookie is missing or unreadable.
    pub fn load_login(&self, headers: &HeaderMap, now: u64) -> Option<LoginState> {
        let value = self.carried(headers).login?;
        let Some(login) = self.open_login(value) else {
            tracing::debug!("login cookie present but unreadable; ignored");
            return None;
        };
        Some(self.current(login, now))
    }

    /// The login state holding `state`, with that pending login taken out
    /// of it. Every login cookie the request carries is tried, not only the
    /// first: a cookie of the same name planted by a sibling subdomain
    /// (which the browser may send first) cannot shadow the browser's own
    /// pending login.
    pub fn take_login(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: u64,
    ) -> Option<(LoginState, PendingLogin)> {
        cookies::pairs(headers)
            .filter(|(name, _)| matches!(self.classify(name), Some(Own::Login)))
            .filter_map(|(_, value)| self.open_login(value))
            .find_map(|login| {
                let mut login = self.current(login, now);
                let pending = login.take(state)?;
                Some((login, pending))
            })
    }

    /// `login` without the pending logins at or past their lifetime.
    fn current(&self, mut login: LoginState, now: u64) -> LoginState {
        let ttl = self.inner.login_ttl;
        login
            .pending
            .retain(|p| now < p.created_at.saturating_add(ttl));
        login.pending.truncate(MAX_PENDING_LOGINS);
        if login
            .denied
            .as_ref()
            .is_some_and(|d| now >= d.created_at.saturating_add(ttl) || d.created_at > now)
        {
            login.denied = None;
        }
        login
    }

    fn open_login(&self, value: &[u8]) -> Option<LoginState> {
        if value.len() > MAX_COOKIE_VALUE {
            return None;
        }
        let sealed = std::str::from_utf8(value).ok()?;
        let plain = self
            .inner
            .keyring
            .open(Purpose::Login, &self.context(1), sealed)
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// The `Set-Cookie` value that stores `login` in `{prefix}login` with
    /// `Max-Age` = login lifetime.
    ///
    /// If the state does not fit in one cookie, the oldest pending logins are
    /// left out until it does (the newest one is always kept).
    ///
    /// # Errors
    /// [`Error::TooLarge`] if even the newest pending login alone does not
    /// fit; [`Error::Random`] or [`Error::Encode`] on internal failures.
    pub fn store_login(&self, login: &LoginState, secure: bool) -> Result<HeaderValue, Error> {
        let inner = &*self.inner;
        let mut login = login.clone();
        login.pending.truncate(MAX_PENDING_LOGINS);
        let json = loop {
            let json = serde_json::to_vec(&login).map_err(|_| Error::Encode)?;
            let needed = Keyring::sealed_text_len(json.len());
            if needed <= MAX_COOKIE_VALUE {
                break json;
            }
            if login.pending.len() <= 1 {
                return Err(Error::TooLarge {
                    what: "login state",
                    needed,
                    max: MAX_COOKIE_VALUE,
                });
            }
            login.pending.pop();
        };
        let sealed = inner
            .keyring
            .seal(Purpose::Login, &self.context(1), &json)?;
        inner.attributes.render(
            &inner.login_name,
            &sealed,
            inner.login_ttl,
            secure || inner.force_secure,
        )
    }

    /// The `Set-Cookie` value that deletes the login cookie.
    pub fn clear_login(&self, secure: bool) -> HeaderValue {
        self.inner
            .expired_login
            .get(secure || self.inner.force_secure)
    }

    /// Every cookie name this codec can set: `{prefix}s_0` … `{prefix}s_9`,
    /// then `{prefix}login`.
    pub fn cookie_names(&self) -> Vec<String> {
        let inner = &*self.inner;
        let mut names = inner.chunk_names.clone();
        names.push(inner.login_name.clone());
        names
    }

    /// Whether `name` is one of [`SessionCodec::cookie_names`].
    pub fn is_own_cookie(&self, name: &str) -> bool {
        self.classify(name.as_bytes()).is_some()
    }

    /// The `Cookie` header value `cookie_header` without the cookies this
    /// codec owns; `None` if nothing is left.
    pub fn strip_own_cookies(&self, cookie_header: &str) -> Option<String> {
        let stripped = cookies::strip(cookie_header.as_bytes(), |n| self.classify(n).is_some())?;
        String::from_utf8(stripped).ok()
    }

    /// Removes the cookies this codec owns from every `Cookie` header in
    /// `headers`, dropping headers left empty. Works on raw bytes, so
    /// headers with non-UTF-8 foreign cookies are handled too.
    pub fn strip_own_cookie_headers(&self, headers: &mut HeaderMap) {
        let values: Vec<HeaderValue> = match headers.entry(http::header::COOKIE) {
            http::header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
            http::header::Entry::Vacant(_) => return,
        };
        for value in values {
            let Some(stripped) = cookies::strip(value.as_bytes(), |n| self.classify(n).is_some())
            else {
                continue;
            };
            // Only removal and "; " joins happened, so this cannot fail; if it
            // ever did, the header is dropped rather than passed on unstripped.
            if let Ok(v) = HeaderValue::from_bytes(&stripped) {
                headers.append(http::header::COOKIE, v);
            }
        }
    }

    fn classify(&self, name: &[u8]) -> Option<Own> {
        let rest = name.strip_prefix(self.inner.prefix.as_bytes())?;
        if rest == LOGIN_SUFFIX.as_bytes() {
            return Some(Own::Login);
        }
        let digits = rest.strip_prefix(CHUNK_INFIX.as_bytes())?;
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.len() == 1 || digits[0] != b'0');
        if !canonical {
            return None;
        }
        let index: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (index < MAX_CHUNKS).then_some(Own::Chunk(index))
    }

    fn carried<'a>(&self, headers: &'a HeaderMap) -> Carried<'a> {
        let mut carried = Carried {
            chunks: [None; MAX_CHUNKS],
            login: None,
        };
        for (name, value) in cookies::pairs(headers) {
            match self.classify(name) {
                Some(Own::Chunk(index)) => {
                    if let Some(slot) = carried.chunks.get_mut(index) {
                        slot.get_or_insert(value);
                    }
                }
                Some(Own::Login) => {
                    carried.login.get_or_insert(value);
                }
                None => {}
            }
        }
        carried
    }

    /// Associated-data context: the prefix and the number of cookies.
    fn context(&self, count: usize) -> Vec<u8> {
        let mut context = self.inner.prefix.as_bytes().to_vec();
        context.push(0);
        context.extend_from_slice(count.to_string().as_bytes());
        context
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

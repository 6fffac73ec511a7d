//! The authorization-code flow: starting a login and finishing it at the
//! callback.
//!
//! Start: fresh `state`, `nonce` and PKCE verifier sealed into the login
//! cookie (several tabs may log in at once), any previous session cleared (no
//! fixation), redirect to the provider. Callback: the `state` must match a
//! pending login, the code is exchanged with its verifier, the ID token is
//! verified with its nonce, the policy is applied, and a new session is sealed.
//! A `state` is single-use: it is claimed on every replica (a replay mark)
//! before the code exchange, and leaves the login cookie whatever the outcome.

use http::Method;
use serde_json::{Map, Value};

use super::decision::Decision;
use super::rescue::{CallbackFault, Error};
use super::view::RequestView;
use super::{Gate, safe_redirect};
use crate::cache::{CacheKey, Namespace};
use crate::oidc::profile::OfflineRule;
use crate::oidc::{Provider, TokenResponse};
use crate::policy::Forbid;
use crate::session::{DeniedLogin, PendingLogin, Session, pkce_challenge, random_token};
use crate::telemetry::metrics::CallbackResult;

/// The code of `why` in a [`DeniedLogin`] note.
fn forbid_code(why: Forbid) -> u8 {
    match why {
        Forbid::User => 0,
        Forbid::RoleOrGroup => 1,
        Forbid::Organization => 2,
        Forbid::Team => 3,
    }
}

/// The rule a [`DeniedLogin`] note names (an unknown code: the user rule).
fn forbid_of(code: u8) -> Forbid {
    match code {
        1 => Forbid::RoleOrGroup,
        2 => Forbid::Organization,
        3 => Forbid::Team,
        _ => Forbid::User,
    }
}

/// How a claimed login ended.
enum Finished {
    /// A session: its cookies and where to go next.
    Session(Vec<http::HeaderValue>, String),
    /// The user is not allowed: no session, a note for the page they return to.
    Denied(DeniedLogin),
}

/// Bytes of randomness in `state` and `nonce`.
const STATE_BYTES: usize = 24;
/// Bytes of randomness in the PKCE verifier (64 base64url characters).
const PKCE_VERIFIER_BYTES: usize = 48;
/// Longest provider error description echoed to the user.
const MAX_PROVIDER_ERROR_CHARS: usize = 200;

impl Gate {
    /// Starts a login that returns to `return_to` (already checked safe).
    /// `prompt` (only `login`, from "sign in as someone else") asks the
    /// provider to show its login form even when it has a session.
    pub(super) async fn start_login(
        &self,
        view: &RequestView,
        return_to: String,
        prompt: Option<&str>,
    ) -> Result<Decision, Error> {
        let s = &self.inner.settings;
        if return_to.len() > super::MAX_RETURN_URL_BYTES {
            return Err(Error::ReturnUrlTooLong);
        }
        self.admit(view, super::ratelimit::Event::Login)?;
        let now = self.now();
        let secure = self.secure(view);
        let mut login = self
            .inner
            .sessions
            .load_login(&view.headers, now)
            .unwrap_or_default();
        if login.attempts_at(now) >= s.max_login_attempts {
            self.inner
                .metrics
                .login(crate::telemetry::metrics::LoginResult::LoopRefused);
            // Reset the counter so the user can try again from the error page.
            let reply = match super::rescue::rescue(Error::LoginLoop, view, s) {
                Decision::Respond(r) => {
                    r.with_cookies(vec![self.inner.sessions.clear_login(secure)])
                }
                other => return Ok(other),
            };
            return Ok(Decision::Respond(reply));
        }
        let discovered = self.inner.provider.discovered().await?;
        let state = self.new_state()?;
        let nonce = random_token(STATE_BYTES)?;
        let verifier = if s.pkce {
            Some(random_token(PKCE_VERIFIER_BYTES)?)
        } else {
            None
        };
        let pending = PendingLogin {
            state,
            nonce,
            pkce_verifier: verifier,
            redirect_uri: format!("{}{}", self.origin(view), s.callback_path),
            return_to,
            created_at: now,
        };
        let url = self.authorization_url(discovered.metadata(), &pending, prompt)?;
        login.push(pending, now);
        // Clearing comes first: the login cookie set after it must win.
        let mut set_cookies = self.inner.sessions.clear(&view.headers, secure);
        set_cookies.retain(|c| !self.inner.sessions.is_login_set_cookie(c));
        set_cookies.push(self.inner.sessions.store_login(&login, secure)?);
        tracing::debug!(path = %view.path, "login started");
        self.inner
            .metrics
            .login(crate::telemetry::metrics::LoginResult::Started);
        Ok(Decision::Redirect {
            location: url.to_string(),
            set_cookies,
        })
    }

    /// A fresh `state`. The callback is shared by every provider of the
    /// gate: a named provider's state starts with its name.
    fn new_state(&self) -> Result<String, Error> {
        let random = random_token(STATE_BYTES)?;
        Ok(match &self.inner.settings.provider_name {
            Some(name) => format!("{name}{}{random}", super::STATE_NAME_SEPARATOR),
            None => random,
        })
    }

    /// The authorization request of `pending`: the code flow's parameters,
    /// PKCE, `audience` and `resource`, then `extraAuthParams`, the
    /// profile's offline-access parameters and `prompt` (when neither of
    /// those sets one).
    fn authorization_url(
        &self,
        meta: &crate::oidc::ProviderMetadata,
        pending: &PendingLogin,
        prompt: Option<&str>,
    ) -> Result<url::Url, Error> {
        let s = &self.inner.settings;
        let provider = self.inner.provider.settings();
        let (scopes, offline_params) = offline_request(s, meta, provider.profile);
        let mut url = url::Url::parse(&meta.authorization_endpoint)
            .map_err(|_| crate::oidc::Error::ProviderInvalid("authorization_endpoint".into()))?;
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &pending.redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce);
        if let Some(v) = &pending.pkce_verifier {
            q.append_pair("code_challenge", &pkce_challenge(v))
                .append_pair("code_challenge_method", "S256");
        }
        if let Some(aud) = &s.audience {
            if aud != &provider.client_id {
                q.append_pair("audience", aud);
            }
        }
        if let Some(resource) = &provider.resource {
            q.append_pair("resource", resource);
        }
        for (k, v) in &s.extra_auth_params {
            q.append_pair(k, v);
        }
        let offline_prompt = offline_params.iter().any(|(k, _)| *k == "prompt");
        for (k, v) in offline_params {
            q.append_pair(k, v);
        }
        if let Some(p) = prompt
            .filter(|_| !offline_prompt && !s.extra_auth_params.iter().any(|(k, _)| k == "prompt"))
        {
            q.append_pair("prompt", p);
        }
        drop(q);
        Ok(url)
    }

    /// The redirect-URI endpoint.
    /// Counted by result: a login whose user the policy refuses is
    /// `forbidden` though its answer is a redirect, and a failure after the
    /// state was claimed is counted by its cause though it is answered here.
    pub(super) async fn callback(&self, view: &RequestView) -> Result<Decision, Error> {
        let r = self.callback_steps(view).await;
        let label = match &r {
            Ok((_, label)) => *label,
            Err(e) => super::observe::callback_failure(e),
        };
        self.inner.metrics.callback(label);
        r.map(|(d, _)| d)
    }

    /// The callback's work: the answer and how it is counted.
    async fn callback_steps(
        &self,
        view: &RequestView,
    ) -> Result<(Decision, CallbackResult), Error> {
        self.admit(view, super::ratelimit::Event::Login)?;
        if view.method != Method::GET {
            return Err(Error::MethodNotAllowed("GET"));
        }
        if let Some(err) = view.query_param("error") {
            // The provider's own words are shown only for a login this
            // browser started: otherwise any link could put text of its
            // choosing on the gate's page.
            let ours = view.query_param("state").is_some_and(|state| {
                self.inner
                    .sessions
                    .take_login(&view.headers, &state, self.now())
                    .is_some()
            });
            if !ours {
                return Err(Error::ProviderDenied(
                    "the sign-in was not completed".to_owned(),
                ));
            }
            let desc = view.query_param("error_description").unwrap_or(err);
            let clean: String = desc
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_PROVIDER_ERROR_CHARS)
                .collect();
            return Err(Error::ProviderDenied(clean));
        }
        let state = view
            .query_param("state")
            .ok_or(Error::BadCallback(CallbackFault::MissingState))?;
        let now = self.now();
        let secure = self.secure(view);
        if !self.inner.sessions.carries_login(&view.headers) {
            return Err(Error::BadCallback(CallbackFault::NoLoginInProgress));
        }
        let (mut login, pending) = self
            .inner
            .sessions
            .take_login(&view.headers, &state, now)
            .ok_or(Error::BadCallback(CallbackFault::StateMismatch))?;
        // From here on the state is spent, whatever happens: the browser's
        // login cookie loses it, and a copy of the cookie finds it claimed.
        let spent = self.inner.sessions.store_login(&login, secure)?;
        let attempt = async {
            self.claim_login_state(&state).await?;
            self.finish_callback(view, pending, now).await
        };
        match attempt.await {
            Ok(Finished::Denied(denied)) => {
                // No session: the browser goes back to the address it asked
                // for and is refused there, naming the account it used.
                let location = self.absolute(view, &denied.return_to);
                login.denied = Some(denied);
                let redirect = Decision::Redirect {
                    location,
                    set_cookies: vec![self.inner.sessions.store_login(&login, secure)?],
                };
                Ok((redirect, CallbackResult::Forbidden))
            }
            Ok(Finished::Session(mut set_cookies, location)) => {
                // Keep the loop counter (a session that never arrives back
                // shows up as a loop); forget the finished login.
                set_cookies.retain(|c| !self.inner.sessions.is_login_set_cookie(c));
                set_cookies.push(spent);
                let redirect = Decision::Redirect {
                    location,
                    set_cookies,
                };
                Ok((redirect, CallbackResult::Success))
            }
            Err(e) => {
                let label = super::observe::callback_failure(&e);
                let answer = match super::rescue::rescue(e, view, &self.inner.settings) {
                    Decision::Respond(r) => Decision::Respond(r.with_cookies(vec![spent])),
                    other => other,
                };
                Ok((answer, label))
            }
        }
    }

    /// Marks `state` used on every replica; `Err` when it already was.
    async fn claim_login_state(&self, state: &str) -> Result<(), Error> {
        let key = CacheKey::hashed(&format!("login-state:{state}"));
        let ttl = std::time::Duration::from_secs(self.inner.sessions.login_ttl_secs());
        match self
            .inner
            .caches
            .set_if_absent(Namespace::ReplayMark, &key, &1u8, ttl)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::BadCallback(CallbackFault::LoginAlreadyUsed)),
            Err(e) => Err(Error::SessionStore(e.to_string())),
        }
    }

    /// Exchanges the code of a claimed login, checks the identity and
    /// stores the session: the session cookies and where to go next, or
    /// the note of a refused user.
    async fn finish_callback(
        &self,
        view: &RequestView,
        pending: crate::session::PendingLogin,
        now: u64,
    ) -> Result<Finished, Error> {
        let code = view
            .query_param("code")
            .ok_or(Error::BadCallback(CallbackFault::MissingCode))?;
        let tokens = self
            .inner
            .provider
            .exchange_code(
                &code,
                &pending.redirect_uri,
                pending.pkce_verifier.as_deref(),
            )
            .await?;
        let location = safe_redirect(
            &pending.return_to,
            &view.host,
            self.secure(view),
            &self.inner.settings.allowed_redirect_hosts,
        )
        .filter(|t| !t.starts_with(&self.inner.settings.callback_path))
        .unwrap_or_else(|| "/".into());
        let session = if self.inner.provider.github().is_some() {
            self.session_from_github(tokens).await
        } else {
            self.session_from_tokens(tokens, Some(&pending.nonce), None)
                .await
        };
        let refused = match &session {
            Ok(s) => self
                .inner
                .policy
                .authorize(&self.identity_of(s))
                .err()
                .map(|why| (why, s.identifier.clone())),
            Err(Error::Forbidden { why, user }) => Some((*why, user.clone())),
            Err(_) => None,
        };
        if let Some((why, user)) = refused {
            tracing::info!(user = %user, "login refused by the access policy");
            return Ok(Finished::Denied(DeniedLogin {
                user,
                return_to: location,
                reason: forbid_code(why),
                created_at: now,
            }));
        }
        let session = session?;
        tracing::info!(user = %session.identifier, "login succeeded");
        self.record_provider_session(&session).await;
        let set_cookies = self.store_session(&session, view, now).await?;
        Ok(Finished::Session(
            set_cookies,
            self.absolute(view, &location),
        ))
    }

    /// The refusal noted by a login that just finished with a user the
    /// policy refuses, when the browser is back at the address it asked for.
    pub(super) fn denied_here(&self, view: &RequestView) -> Option<Error> {
        let login = self.inner.sessions.load_login(&view.headers, self.now())?;
        let denied = login.denied?;
        let here = view.path_and_query();
        let back_to = denied.return_to.as_str();
        // `return_to` is the redirect target: a path, or an absolute URL
        // on an allowed host.
        let same = back_to == here
            || url::Url::parse(back_to).is_ok_and(|u| {
                u.host_str()
                    .is_some_and(|h| view.host == h || view.host.split(':').next() == Some(h))
                    && u[url::Position::BeforePath..] == here
            });
        same.then_some(Error::Forbidden {
            why: forbid_of(denied.reason),
            user: denied.user,
        })
    }

    /// Verifies a token response and builds the session it stands for.
    /// `nonce` is checked at login; `previous` carries what a refresh keeps
    /// (session id, creation time, a refresh token the provider did not rotate).
    pub(super) async fn session_from_tokens(
        &self,
        tokens: TokenResponse,
        nonce: Option<&str>,
        previous: Option<&Session>,
    ) -> Result<Session, Error> {
        let now = self.now();
        let provider = &self.inner.provider;
        // The access token first: a verified JWT access token may carry the
        // roles or groups the ID token lacks (Keycloak's `realm_access`).
        let (expires_at_from_at, at_claims) = self.check_access_token(&tokens, now).await?;
        // A refresh may come without a new ID token: the session keeps the
        // identity it had; at login an ID token is required.
        let (raw_id, id_exp, idp_sid, identity) = match (tokens.id_token.clone(), previous) {
            (Some(raw_id), _) => {
                let id = provider.verify_id_token(&raw_id, nonce).await?;
                let claims = id.claims();
                let mut all = claims.extra.clone();
                all.insert("sub".into(), claims.sub.clone().into());
                let policy = &self.inner.policy;
                if provider.settings().fetch_userinfo {
                    self.merge_userinfo(&mut all, &claims.sub, &tokens.access_token)
                        .await?;
                }
                if let Some(at) = &at_claims {
                    policy.fill_roles_and_groups(&mut all, at);
                }
                let mut identity =
                    policy.identity_from_claims(&all, &policy.settings().user_identifier_claim)?;
                if provider.settings().profile.graph_groups && has_group_overage(&all) {
                    identity.groups = self.overage_groups(&tokens.access_token, previous).await?;
                }
                if let Some(prev) = previous {
                    if prev.subject != identity.subject {
                        return Err(crate::oidc::Error::TokenClaim("sub changed on refresh").into());
                    }
                }
                (
                    raw_id,
                    u64::try_from(claims.exp).unwrap_or(0),
                    claims.sid.clone(),
                    identity,
                )
            }
            (None, Some(prev)) => (
                prev.id_token.clone().unwrap_or_default(),
                prev.expires_at,
                prev.idp_sid.clone(),
                self.identity_of(prev),
            ),
            (None, None) => {
                return Err(crate::oidc::Error::ProviderInvalid(
                    "no id_token in token response".into(),
                )
                .into());
            }
        };
        let expires_at = expires_at_from_at.unwrap_or(id_exp);
        let rotated = tokens.refresh_token.is_some();
        let refresh_token = tokens
            .refresh_token
            .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
        Ok(Session {
            sid: match previous {
                Some(p) => p.sid.clone(),
                None => random_token(crate::session::SID_BYTES)?,
            },
            created_at: previous.map_or(now, |p| p.created_at),
            // A successful refresh extends the sliding lifetime.
            renewed_at: previous.map(|_| now),
            identifier: identity.identifier,
            subject: identity.subject,
            idp_sid,
            email: identity.email,
            groups: identity.groups,
            roles: identity.roles,
            id_token: Some(raw_id).filter(|t| !t.is_empty()),
            access_token: Some(tokens.access_token),
            refresh_token_issued_at: match (rotated, previous) {
                (false, Some(p)) => p.refresh_token_issued_at,
                _ => refresh_token.as_ref().map(|_| now),
            },
            refresh_token,
            expires_at,
            // A refreshed server-side session keeps its store secret, so
            // concurrent followers all write and point to the same value.
            server_secret: previous.and_then(|p| p.server_secret.clone()),
        })
    }

    /// Verifies the access token of a token response when it is a JWT the
    /// provider's profile lets a client verify, its audience judged by the
    /// audience rule: its expiry and claims, or the expiry `expires_in` gives.
    async fn check_access_token(
        &self,
        tokens: &TokenResponse,
        now: u64,
    ) -> Result<(Option<u64>, Option<Map<String, Value>>), Error> {
        let provider = &self.inner.provider;
        if Provider::looks_like_jwt(&tokens.access_token)
            && !provider
                .settings()
                .profile
                .is_unverifiable_access_token(&tokens.access_token)
        {
            let at = provider
                .verify_access_token(&tokens.access_token, None)
                .await?;
            let rule = super::audience::expected(&self.inner.settings, provider.settings());
            super::audience::judge(rule.as_ref(), at.claims().aud.as_ref())?;
            let exp = u64::try_from(at.claims().exp).unwrap_or(0);
            return Ok((Some(exp), Some(at.claims().extra.clone())));
        }
        Ok((tokens.expires_in.map(|secs| now.saturating_add(secs)), None))
    }

    /// Adds the userinfo claims the ID token lacks (`fetchUserinfo`); the
    /// userinfo `sub` must be the ID token's.
    async fn merge_userinfo(
        &self,
        claims: &mut Map<String, Value>,
        sub: &str,
        access_token: &str,
    ) -> Result<(), Error> {
        let Some(info) = self.inner.provider.userinfo(access_token).await? else {
            return Ok(());
        };
        if info.get("sub").and_then(Value::as_str) != Some(sub) {
            return Err(crate::oidc::Error::TokenClaim("userinfo sub").into());
        }
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// The groups of an Entra ID user whose token has too many to carry,
    /// read from Microsoft Graph. When Graph cannot answer: a refreshed
    /// session keeps the groups it had; a login is refused when a rule
    /// needs groups (never "logged in with no groups"), and goes on
    /// without groups otherwise.
    async fn overage_groups(
        &self,
        access_token: &str,
        previous: Option<&Session>,
    ) -> Result<Vec<String>, Error> {
        match self.inner.provider.graph_groups(access_token).await {
            Ok(groups) => Ok(groups),
            Err(e) => {
                tracing::warn!(error = %e, "group overage: Microsoft Graph did not give the groups");
                match previous {
                    Some(p) => Ok(p.groups.clone()),
                    None if self.inner.policy.requires_roles_or_groups() => {
                        Err(Error::GroupsUnavailable)
                    }
                    None => Ok(Vec::new()),
                }
            }
        }
    }

    pub(super) fn identity_of(&self, s: &Session) -> crate::policy::Identity {
        crate::policy::Identity {
            identifier: s.identifier.clone(),
            subject: s.subject.clone(),
            email: s.email.clone(),
            groups: s.groups.clone(),
            roles: s.roles.clone(),
        }
    }
}

/// True when an Entra ID token says the user's groups did not fit in it
/// (`_claim_names.groups`, or `hasgroups: true` from the implicit flow).
fn has_group_overage(claims: &Map<String, Value>) -> bool {
    claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|n| n.contains_key("groups"))
        || claims.get("hasgroups").and_then(Value::as_bool) == Some(true)
}

/// The scopes of an authorization request and the parameters that ask for
/// offline access as the provider's profile wants it.
fn offline_request(
    s: &super::GateSettings,
    meta: &crate::oidc::ProviderMetadata,
    profile: &crate::oidc::profile::Profile,
) -> (Vec<String>, Vec<(&'static str, &'static str)>) {
    let mut scopes = s.scopes.clone();
    let mut offline_params: Vec<(&'static str, &'static str)> = Vec::new();
    match profile.offline {
        OfflineRule::Scope => {
            if !s.override_scopes
                && meta
                    .scopes_supported
                    .as_ref()
                    .is_some_and(|sup| sup.iter().any(|x| x == "offline_access"))
                && !scopes.iter().any(|x| x == "offline_access")
            {
                scopes.push("offline_access".into());
            }
        }
        OfflineRule::GoogleParams => {
            // Google refuses the scope and issues a refresh token only
            // for these parameters, and only on a consent.
            let wanted = !s.override_scopes || scopes.iter().any(|x| x == "offline_access");
            scopes.retain(|x| x != "offline_access");
            if wanted {
                offline_params.extend(
                    [("access_type", "offline"), ("prompt", "consent")]
                        .into_iter()
                        .filter(|(k, _)| !s.extra_auth_params.iter().any(|(e, _)| e == k)),
                );
            }
        }
    }
    (scopes, offline_params)
}

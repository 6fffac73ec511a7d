//! OpenID Connect protocol client: discovery, JWKS, JWS verification and the
//! token endpoint.
//!
//! Owns every conversation with the OpenID Provider and every check of a token
//! it signed. It must not know about HTTP requests from browsers, cookies or
//! sessions: the gate asks it questions ("verify this ID token with this nonce",
//! "exchange this code") and gets typed answers.
//!
//! Invariant: a JOSE header is pre-checked (size, alg allowlist, kid shape)
//! before any key lookup. ID tokens, access tokens and client assertions
//! require `exp`; a back-channel logout token may omit it (OpenID
//! Back-Channel Logout makes it optional) and is bounded instead by its
//! required `iat`, at most [`MAX_LOGOUT_TOKEN_AGE`] old, and its single-use
//! `jti`.

mod client_auth;
mod discovery;
mod error;
mod github;
mod graph;
mod http;
mod introspect;
mod jwks;
pub mod profile;
mod provider;
mod registration;
mod token;
mod verify;

#[cfg(test)]
pub(crate) use client_auth::test_pem as client_auth_test_pem;
pub use client_auth::{
    ASSERTION_KEY_ALGS, AssertionAudience, AssertionKey, ClientAuthMethod,
    DEFAULT_ASSERTION_LIFETIME, JWT_BEARER_ASSERTION, select_method,
};
pub use discovery::ProviderMetadata;
pub use error::{Error, OAuthErrorKind};
pub use github::{
    DEFAULT_GITHUB_MAX_PAGES, DEFAULT_GITHUB_SCOPES, GITHUB_API_URL, GITHUB_ORG_SCOPE,
    GITHUB_PER_PAGE, GITHUB_WEB_URL, GitHubSettings, GitHubUser,
};
pub use graph::MAX_GRAPH_PAGES;
pub use http::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, HttpSettings,
};
pub use jwks::{DEFAULT_JWKS_MAX_AGE, DEFAULT_JWKS_MIN_REFRESH_INTERVAL};
pub use provider::{
    DEFAULT_DISCOVERY_RETRY_INTERVAL, DEFAULT_GRAPH_URL, Discovered, INVALID_CLIENT_LOG_INTERVAL,
    Provider, ProviderSettings,
};
pub use registration::{
    DEFAULT_REGISTRATION_TIMEOUT, RegisteredClient, RegistrationSettings, RegistrationStore,
    pending_registration, read_registration_file, redirect_uris_of, register_client,
    write_registration_file,
};
pub use token::TokenResponse;
pub use verify::{
    AccessTokenClaims, Audience, BACKCHANNEL_LOGOUT_EVENT, DEFAULT_ALLOWED_ALGS,
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_TOKEN_BYTES, IdTokenClaims, JwsAlgorithm, LogoutTokenClaims,
    MAX_LOGOUT_TOKEN_AGE, VerifiedAccessToken, VerifiedIdToken, check_times,
};

//! The one error type of the `oidc` boundary.

/// The OAuth 2.0 error codes the gate acts on differently (RFC 6749 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// The grant (code or refresh token) is invalid, expired, used or revoked.
    InvalidGrant,
    /// Client authentication failed: a configuration problem.
    InvalidClient,
    /// Any other error code, kept verbatim.
    Other(String),
}

impl OAuthErrorKind {
    /// Parses an `error` field.
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_grant" => Self::InvalidGrant,
            "invalid_client" | "unauthorized_client" => Self::InvalidClient,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// Everything that can go wrong talking to the provider or checking its tokens.
/// Each variant says whose fault it is: the token's (`Token*`), the provider's
/// (`Provider*`), or the configuration's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider could not be reached or answered with a server error.
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The provider did not answer within `providerTimeout` (or did not
    /// accept the connection within `providerConnectTimeout`).
    #[error("provider timed out: {0}")]
    ProviderTimeout(String),
    /// The provider answered something that is not valid for its protocol.
    #[error("provider sent an invalid response: {0}")]
    ProviderInvalid(String),
    /// Discovery failed recently; the next attempt is throttled.
    #[error("provider discovery pending (retry throttled)")]
    DiscoveryThrottled,
    /// The token endpoint refused a grant with an OAuth error.
    #[error("token endpoint refused the grant: {kind:?}")]
    OAuth {
        /// The parsed `error` code.
        kind: OAuthErrorKind,
        /// HTTP status of the refusal.
        status: u16,
    },
    /// The introspection or revocation endpoint refused the client's
    /// authentication (HTTP 401 or 403); the string names the endpoint.
    #[error("the provider refused the client's authentication at the {0} endpoint")]
    ClientRefused(&'static str),
    /// The token is not well-formed (size, segments, encoding, header).
    #[error("malformed token: {0}")]
    TokenMalformed(&'static str),
    /// The header's `alg` is not in the allowlist.
    #[error("token algorithm not allowed")]
    TokenAlgorithm,
    /// No published key matches the token's `kid` and `alg`.
    #[error("no key for the token's kid")]
    TokenUnknownKey,
    /// The signature does not verify.
    #[error("bad token signature")]
    TokenSignature,
    /// A claim check failed; the string names the claim.
    #[error("token claim check failed: {0}")]
    TokenClaim(&'static str),
    /// The token has expired.
    #[error("token expired")]
    TokenExpired,
    /// Discovery's `issuer` is not the configured one: a configuration
    /// error that no retry fixes.
    #[error(
        "the discovery document's issuer {discovered:?} does not match providerURL {configured:?}"
    )]
    IssuerMismatch {
        /// `providerURL`.
        configured: String,
        /// The discovery document's `issuer`.
        discovered: String,
    },
    /// The token's tenant (`tid`) is not in `allowedTenants`.
    #[error("the token's tenant is not allowed")]
    TenantNotAllowed,
    /// The configuration cannot work (bad CA bundle, bad URL, ...).
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// True when the fault lies with the presented token (answer 401), false
    /// when it lies with the provider or configuration (answer 502/503).
    pub fn is_token_fault(&self) -> bool {
        matches!(
            self,
            Self::TokenMalformed(_)
                | Self::TokenAlgorithm
                | Self::TokenUnknownKey
                | Self::TokenSignature
                | Self::TokenClaim(_)
                | Self::TokenExpired
                | Self::TenantNotAllowed
        )
    }

    /// True when the provider refused the client's own authentication
    /// (`invalid_client`, or a 401 from introspection or revocation): a
    /// configuration problem, not the user's.
    pub fn is_client_refused(&self) -> bool {
        matches!(
            self,
            Self::OAuth {
                kind: OAuthErrorKind::InvalidClient,
                ..
            } | Self::ClientRefused(_)
        )
    }

    /// True for transient provider trouble worth a retry later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::ProviderUnavailable(_) | Self::ProviderTimeout(_) | Self::DiscoveryThrottled
        )
    }
}

//! The audience rule of a session's access token, in one place.
//!
//! Which audience a JWT access token from the token endpoint must name:
//! `audience`, else the `resource` indicator (RFC 8707), else, under
//! `strictAudienceValidation`, the client id (the plugin's default
//! audience); otherwise none is judged. What a token that does not name it
//! does: with an explicit `audience` or `strictAudienceValidation` the login
//! or refresh is refused (a refused refresh ends the session, so the user
//! logs in again); an audience that only the `resource` key implies is a
//! request the provider may ignore, so there the session rests on the ID
//! token, as the plugin's fallback does, and the token is used as it would
//! be without an expected audience.
//!
//! Opaque access tokens and those the provider's profile says no client
//! can verify carry no audience to judge. Bearer tokens follow their own,
//! always strict, rule (`bearer.rs`).

use super::GateSettings;
use crate::oidc::{self, Audience, ProviderSettings};

/// The audience a session's access token must name, and whether a token
/// without it is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Expected<'a> {
    /// The audience.
    pub(super) audience: &'a str,
    /// A token without it is refused (else it is only noted).
    pub(super) refuse: bool,
}

/// The rule of this gate: `None` when no audience is judged.
pub(super) fn expected<'a>(
    gate: &'a GateSettings,
    provider: &'a ProviderSettings,
) -> Option<Expected<'a>> {
    let strict = gate.strict_audience;
    if let Some(audience) = gate.audience.as_deref() {
        return Some(Expected {
            audience,
            refuse: true,
        });
    }
    if let Some(audience) = provider.resource.as_deref() {
        return Some(Expected {
            audience,
            refuse: strict,
        });
    }
    strict.then_some(Expected {
        audience: &provider.client_id,
        refuse: true,
    })
}

/// Judges the `aud` of a verified access token: `Ok` when the session may
/// go on with it, the audience claim error when the rule refuses it.
pub(super) fn judge(
    rule: Option<&Expected<'_>>,
    aud: Option<&Audience>,
) -> Result<(), oidc::Error> {
    let Some(rule) = rule else { return Ok(()) };
    if aud.is_some_and(|a| a.contains(rule.audience)) {
        return Ok(());
    }
    if rule.refuse {
        return Err(oidc::Error::TokenClaim("aud"));
    }
    tracing::warn!(
        expected = rule.audience,
        "the access token does not name the resource as its audience (the provider may ignore \
         resource indicators); the session rests on the ID token \
         (strictAudienceValidation: true refuses it)"
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn settings(
        audience: Option<&str>,
        resource: Option<&str>,
        strict: bool,
    ) -> (GateSettings, ProviderSettings) {
        let gate = GateSettings {
            audience: audience.map(str::to_owned),
            strict_audience: strict,
            ..GateSettings::default()
        };
        let mut provider = ProviderSettings::new("https://idp.example", "web", "s");
        provider.resource = resource.map(str::to_owned);
        (gate, provider)
    }

    fn aud(v: &[&str]) -> Audience {
        Audience(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn the_expected_audience_and_its_strictness() {
        let cases = [
            // (audience, resource, strict) -> (audience, refuse)
            ((None, None, false), None),
            ((None, None, true), Some(("web", true))),
            ((Some("api"), None, false), Some(("api", true))),
            ((Some("api"), Some("https://r"), false), Some(("api", true))),
            ((None, Some("https://r"), false), Some(("https://r", false))),
            ((None, Some("https://r"), true), Some(("https://r", true))),
        ];
        for ((a, r, strict), want) in cases {
            let (g, p) = settings(a, r, strict);
            let got = expected(&g, &p).map(|e| (e.audience, e.refuse));
            assert_eq!(got, want, "{a:?} {r:?} {strict}");
        }
    }

    #[test]
    fn a_token_without_the_audience_is_refused_only_by_a_strict_rule() {
        let refuse = Expected {
            audience: "https://r",
            refuse: true,
        };
        let note = Expected {
            audience: "https://r",
            refuse: false,
        };
        let other = aud(&["api://other"]);
        let both = aud(&["api://other", "https://r"]);
        assert!(judge(Some(&refuse), Some(&both)).is_ok());
        assert!(matches!(
            judge(Some(&refuse), Some(&other)),
            Err(oidc::Error::TokenClaim("aud"))
        ));
        assert!(judge(Some(&refuse), None).is_err());
        assert!(judge(Some(&note), Some(&other)).is_ok());
        assert!(judge(Some(&note), None).is_ok());
        assert!(judge(None, Some(&other)).is_ok());
    }
}

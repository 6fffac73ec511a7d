//! traefikoidc keys with no meaning in oidcgate: accepted so that a plugin
//! block can be pasted as it is, and each named in one warning saying why
//! it has no effect.
//!
//! Owns the list of such keys and their reasons. A key moves out of this
//! file when oidcgate gives it an effect.

use serde::Deserialize;

use super::Report;

/// The inert keys as written. Any value is accepted: none is read.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Raw {
    /// traefikoidc: turn off its JTI replay cache (needed there for several
    /// replicas without Redis).
    #[serde(rename = "disableReplayDetection")]
    pub(super) disable_replay_detection: Option<serde_norway::Value>,
    /// traefikoidc: allow provider URLs on private addresses.
    #[serde(rename = "allowPrivateIPAddresses")]
    pub(super) allow_private_ip_addresses: Option<serde_norway::Value>,
}

/// Names each inert key that is present.
pub(super) fn settings(raw: Raw, r: &mut Report) {
    for (key, present, why) in [
        (
            "disableReplayDetection",
            raw.disable_replay_detection.is_some(),
            "oidcgate keeps no ID-token replay cache (a session is not replay-marked), so \
             replicas need nothing turned off",
        ),
        (
            "allowPrivateIPAddresses",
            raw.allow_private_ip_addresses.is_some(),
            "oidcgate does not filter the provider's addresses; restrict egress in the network",
        ),
    ] {
        if present {
            r.warn(key, format!("has no effect: {why}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::tests::load;

    #[test]
    fn each_inert_key_gives_one_warning() {
        let c = load("disableReplayDetection: true\nallowPrivateIPAddresses: false\n").unwrap();
        let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["disableReplayDetection", "allowPrivateIPAddresses"]);
        assert!(load("").unwrap().warnings.is_empty());
    }
}

//! Minimal JOSE support for the test provider: key generation, JWK export
//! and compact JWS assembly, built directly on `aws-lc-rs`.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair,
};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::idp::SigningAlg;

/// Base64url without padding, as used throughout JOSE.
pub(crate) fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Standard base64 with padding (used for PEM bodies).
pub(crate) fn b64std(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding.
pub(crate) fn b64std_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// `n` random bytes from the system CSPRNG.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random generator failed");
    buf
}

/// A random, URL-safe string carrying `n` bytes of entropy.
pub(crate) fn random_token(n: usize) -> String {
    b64url(random_bytes(n))
}

/// SHA-256 digest of `data`.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// SHA-512 digest of `data`.
pub(crate) fn sha512(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA512, data).as_ref().to_vec()
}

/// Private key material of one signing key.
enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// An asymmetric signing key with its key id.
pub(crate) struct SigningKey {
    /// The `kid` header value and JWK `kid`.
    pub(crate) kid: String,
    /// The JWS algorithm this key signs with.
    pub(crate) alg: SigningAlg,
    pair: Pair,
}

impl SigningKey {
    /// Generates a fresh key for `alg` with a random key id.
    pub(crate) fn generate(alg: SigningAlg) -> Self {
        let pair = match alg {
            SigningAlg::RS256 => Pair::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation failed"),
            ),
            SigningAlg::ES256 => Pair::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("EC key generation failed"),
            ),
            SigningAlg::ES512 => Pair::Ec(
                EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING)
                    .expect("EC key generation failed"),
            ),
        };
        let prefix = match alg {
            SigningAlg::RS256 => "rsa",
            SigningAlg::ES256 => "ec",
            SigningAlg::ES512 => "ec521",
        };
        Self {
            kid: format!("{prefix}-{}", random_token(9)),
            alg,
            pair,
        }
    }

    /// Signs `msg` and returns the raw JWS signature bytes (PKCS#1 v1.5 for
    /// RSA, fixed-width `r || s` for ECDSA).
    pub(crate) fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .expect("RSA signing failed");
                sig
            }
            Pair::Ec(kp) => kp
                .sign(&rng, msg)
                .expect("ECDSA signing failed")
                .as_ref()
                .to_vec(),
        }
    }

    /// The public key as a JWK object.
    pub(crate) fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(kp) => {
                let public = kp.public_key();
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "alg": self.alg.as_str(),
                    "kid": self.kid,
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Pair::Ec(kp) => {
                // Uncompressed SEC1 point: 0x04 || X || Y, each coordinate
                // 32 bytes on P-256 and 66 on P-521.
                let point = kp.public_key().as_ref();
                let n = (point.len() - 1) / 2;
                let crv = if n == 66 { "P-521" } else { "P-256" };
                json!({
                    "kty": "EC",
                    "use": "sig",
                    "alg": self.alg.as_str(),
                    "kid": self.kid,
                    "crv": crv,
                    "x": b64url(&point[1..=n]),
                    "y": b64url(&point[n + 1..]),
                })
            }
        }
    }

    /// The public key as DER-encoded SubjectPublicKeyInfo.
    pub(crate) fn public_der(&self) -> Vec<u8> {
        let der: PublicKeyX509Der<'static> = match &self.pair {
            Pair::Rsa(kp) => kp.public_key().as_der(),
            Pair::Ec(kp) => kp.public_key().as_der(),
        }
        .expect("public key DER encoding failed");
        der.as_ref().to_vec()
    }

    /// The public key as a PEM `PUBLIC KEY` document.
    pub(crate) fn public_pem(&self) -> String {
        let body = b64std(self.public_der());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

/// How the signature of a compact JWS is produced.
pub(crate) enum Signer<'a> {
    /// An asymmetric key.
    Key(&'a SigningKey),
    /// HMAC-SHA256 with the given secret.
    Hs256(&'a [u8]),
    /// No signature at all (`alg: none`).
    Nothing,
}

/// Assembles `base64url(header) . base64url(claims) . base64url(signature)`.
///
/// When `raw_signature` is given it is used verbatim instead of signing.
pub(crate) fn compact_jws(
    header: &Value,
    claims: &Value,
    signer: Signer<'_>,
    raw_signature: Option<&[u8]>,
) -> String {
    let header = serde_json::to_vec(header).expect("header serialises");
    let claims = serde_json::to_vec(claims).expect("claims serialise");
    let signing_input = format!("{}.{}", b64url(header), b64url(claims));
    let signature = match raw_signature {
        Some(raw) => raw.to_vec(),
        None => match signer {
            Signer::Key(key) => key.sign(signing_input.as_bytes()),
            Signer::Hs256(secret) => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                hmac::sign(&key, signing_input.as_bytes()).as_ref().to_vec()
            }
            Signer::Nothing => Vec::new(),
        },
    };
    format!("{signing_input}.{}", b64url(signature))
}

/// Decodes the payload of a compact JWS without verifying it.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = b64url_decode(payload)?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Merges `overlay` into `base` key by key; a `null` in the overlay removes
/// the key instead of setting it.
pub(crate) fn merge(base: &mut Map<String, Value>, overlay: &Value) {
    if let Value::Object(overlay) = overlay {
        for (k, v) in overlay {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

//! Key derivation, authenticated encryption and random values for cookies.
//!
//! This file owns the keyring (one AES-256-GCM key per purpose for every
//! configured key material), the sealed-value layout, and the random token and
//! PKCE helpers. It is pure: no HTTP, no cookies, no logging. It must never
//! reveal why opening a value failed; every failure is
//! [`Error::Undecryptable`].
//!
//! Sealed layout, then base64url without padding:
//!
//! ```text
//! version (1 byte) | key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//! ```
//!
//! Each key material `m` gives `prk = HKDF-Extract(salt = KDF_SALT, m)`, from
//! which HKDF-Expand derives the session key, the login key and the key id
//! under distinct `info` labels (and the key that authenticates shared-cache
//! values, see `cache::IntegrityKey`). The key id is thus independent of the
//! AEAD keys. The associated data binds a fixed label, the purpose, a caller
//! context (cookie prefix and chunk count) and the version and key id bytes.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Error, SecretString};

/// Minimum length in bytes of every configured session key.
pub const MIN_KEY_LEN: usize = 32;

/// Number of random bytes in a session id made by [`random_token`].
pub const SID_BYTES: usize = 16;

/// Version byte of the sealed layout.
const VERSION: u8 = 1;
/// Length of the key id in a sealed value.
const KEY_ID_LEN: usize = 4;
/// Length of the AES-GCM tag.
const TAG_LEN: usize = 16;
/// Length of everything a sealed value adds to the plaintext.
const OVERHEAD: usize = 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN;
/// HKDF salt: a fixed label for this format.
const KDF_SALT: &[u8] = b"oidcgate session v1";
/// Label at the start of every associated data.
const AAD_LABEL: &[u8] = b"oidcgate/v1";
/// HKDF info for the key id.
const INFO_KEY_ID: &[u8] = b"key id";
/// HKDF info for the key that authenticates shared-cache values.
const INFO_CACHE_MAC: &[u8] = b"shared cache mac";

/// What a sealed value is for. Each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The session cookie(s).
    Session,
    /// The pre-login cookie.
    Login,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"session",
            Purpose::Login => b"login",
        }
    }
}

/// HKDF output length for a key id or a raw key.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The keys derived from one key material.
struct DerivedKey {
    id: [u8; KEY_ID_LEN],
    session: LessSafeKey,
    login: LessSafeKey,
    cache_mac: crate::cache::IntegrityKey,
}

impl DerivedKey {
    fn derive(material: &[u8]) -> Result<Self, Error> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KDF_SALT).extract(material);
        let mut id = [0u8; KEY_ID_LEN];
        prk.expand(&[INFO_KEY_ID], Len(KEY_ID_LEN))
            .and_then(|okm| okm.fill(&mut id))
            .map_err(|_| Error::Encode)?;
        let aead_key = |purpose: Purpose| -> Result<LessSafeKey, Error> {
            let info = [purpose.label()];
            let okm = prk.expand(&info, &AES_256_GCM).map_err(|_| Error::Encode)?;
            Ok(LessSafeKey::new(UnboundKey::from(okm)))
        };
        let mut mac = [0u8; 32];
        prk.expand(&[INFO_CACHE_MAC], Len(mac.len()))
            .and_then(|okm| okm.fill(&mut mac))
            .map_err(|_| Error::Encode)?;
        Ok(Self {
            id,
            session: aead_key(Purpose::Session)?,
            login: aead_key(Purpose::Login)?,
            cache_mac: crate::cache::IntegrityKey::new(&mac),
        })
    }

    fn key(&self, purpose: Purpose) -> &LessSafeKey {
        match purpose {
            Purpose::Session => &self.session,
            Purpose::Login => &self.login,
        }
    }
}

/// The current key (seals and opens) and previous keys (open only).
pub(crate) struct Keyring {
    keys: Vec<DerivedKey>,
}

impl Keyring {
    /// Derives the keyring from `[current, previous...]` key materials.
    pub(crate) fn new(materials: &[SecretString]) -> Result<Self, Error> {
        if materials.is_empty() {
            return Err(Error::NoKeys);
        }
        let mut keys = Vec::with_capacity(materials.len());
        for (index, material) in materials.iter().enumerate() {
            if material.len() < MIN_KEY_LEN {
                return Err(Error::KeyTooShort {
                    index,
                    len: material.len(),
                    min: MIN_KEY_LEN,
                });
            }
            keys.push(DerivedKey::derive(material.expose().as_bytes())?);
        }
        Ok(Self { keys })
    }

    /// The keys that authenticate shared-cache values, current first.
    pub(crate) fn cache_integrity_keys(&self) -> Vec<crate::cache::IntegrityKey> {
        self.keys.iter().map(|k| k.cache_mac.clone()).collect()
    }

    /// Length of the base64url text [`Keyring::seal`] returns for a
    /// plaintext of `plaintext_len` bytes.
    pub(crate) fn sealed_text_len(plaintext_len: usize) -> usize {
        let raw = plaintext_len.saturating_add(OVERHEAD);
        raw / 3 * 4
            + match raw % 3 {
                0 => 0,
                1 => 2,
                _ => 3,
            }
    }

    /// Seals `plaintext` with the current key, binding `purpose` and `context`.
    pub(crate) fn seal(
        &self,
        purpose: Purpose,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<String, Error> {
        let current = self.keys.first().ok_or(Error::NoKeys)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| Error::Random)?;

        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&current.id);
        out.extend_from_slice(&nonce);
        let aad = associated_data(purpose, context, &out);

        let mut body = plaintext.to_vec();
        current
            .key(purpose)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| Error::Encode)?;
        out.extend_from_slice(&body);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value made by [`Keyring::seal`] with the same `purpose` and
    /// `context`, using whichever configured key has the embedded key id.
    pub(crate) fn open(
        &self,
        purpose: Purpose,
        context: &[u8],
        sealed: &str,
    ) -> Result<Vec<u8>, Error> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Error::Undecryptable)?;
        if raw.len() < OVERHEAD || raw.first() != Some(&VERSION) {
            return Err(Error::Undecryptable);
        }
        let (header, body) = raw.split_at(1 + KEY_ID_LEN + NONCE_LEN);
        let key_id = &header[1..1 + KEY_ID_LEN];
        let nonce = &header[1 + KEY_ID_LEN..];
        let aad = associated_data(purpose, context, header);

        // A key id collision between two configured keys is possible in
        // principle, so every key with a matching id is tried.
        for candidate in self.keys.iter().filter(|k| k.id == key_id) {
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Undecryptable)?;
            let mut buf = body.to_vec();
            if let Ok(plain) =
                candidate
                    .key(purpose)
                    .open_in_place(nonce, Aad::from(aad.as_slice()), &mut buf)
            {
                let len = plain.len();
                buf.truncate(len);
                return Ok(buf);
            }
        }
        Err(Error::Undecryptable)
    }
}

/// `AAD_LABEL | 0 | purpose | 0 | context | 0 | header`. The context is made
/// of cookie-name characters and digits, so the NUL separators are unambiguous.
fn associated_data(purpose: Purpose, context: &[u8], header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 16 + context.len() + header.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(purpose.label());
    aad.push(0);
    aad.extend_from_slice(context);
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

/// Base64url (no padding) text of `bytes` random bytes from the operating
/// system generator, for `state`, `nonce`, PKCE verifiers and session ids.
///
/// 32 bytes give a 43-character value, the shortest PKCE verifier allowed.
///
/// # Errors
/// [`Error::Random`] if the system generator fails; no fallback value is made.
pub fn random_token(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf).map_err(|_| Error::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Seals `plaintext` under a key derived from `secret` and `label` (AES-256-GCM,
/// random nonce, base64url text). Used for values kept outside the browser
/// (server-side sessions, shared refresh results) whose key only the holder of
/// `secret` knows, so a dump of the store alone reveals nothing.
pub fn seal_with_secret(secret: &str, label: &str, plaintext: &[u8]) -> Result<String, Error> {
    let key = secret_key(secret, label)?;
    let mut nonce = [0u8; aws_lc_rs::aead::NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| Error::Random)?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
        aws_lc_rs::aead::Aad::from(label.as_bytes()),
        &mut buf,
    )
    .map_err(|_| Error::Encode)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal_with_secret`] sealed with the same `secret` and `label`.
pub fn open_with_secret(secret: &str, label: &str, sealed: &str) -> Result<Vec<u8>, Error> {
    let key = secret_key(secret, label)?;
    let mut raw = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| Error::Undecryptable)?;
    if raw.len() < aws_lc_rs::aead::NONCE_LEN {
        return Err(Error::Undecryptable);
    }
    let mut body = raw.split_off(aws_lc_rs::aead::NONCE_LEN);
    let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(&raw)
        .map_err(|_| Error::Undecryptable)?;
    let plain = key
        .open_in_place(
            nonce,
            aws_lc_rs::aead::Aad::from(label.as_bytes()),
            &mut body,
        )
        .map_err(|_| Error::Undecryptable)?;
    Ok(plain.to_vec())
}

fn secret_key(secret: &str, label: &str) -> Result<aws_lc_rs::aead::LessSafeKey, Error> {
    let material = format!("oidcgate secret-sealed v1\n{label}\n{secret}");
    let d = digest::digest(&digest::SHA256, material.as_bytes());
    aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, d.as_ref())
        .map(aws_lc_rs::aead::LessSafeKey::new)
        .map_err(|_| Error::Encode)
}

/// The PKCE `S256` code challenge of `verifier`: base64url (no padding) of
/// the SHA-256 of its ASCII bytes.
pub fn pkce_challenge(verifier: &str) -> String {
    let hash = digest::digest(&digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.as_ref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ring(keys: &[&str]) -> Keyring {
        let keys: Vec<SecretString> = keys.iter().map(|k| SecretString::from(*k)).collect();
        Keyring::new(&keys).unwrap()
    }

    const K1: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn secret_sealing_opens_only_with_the_same_secret_and_label() {
        let sealed = seal_with_secret("s1", "session", b"tokens").unwrap();
        assert_eq!(
            open_with_secret("s1", "session", &sealed).unwrap(),
            b"tokens"
        );
        assert!(open_with_secret("s2", "session", &sealed).is_err());
        assert!(open_with_secret("s1", "refresh", &sealed).is_err());
        assert!(open_with_secret("s1", "session", "junk").is_err());
        assert_ne!(
            sealed,
            seal_with_secret("s1", "session", b"tokens").unwrap()
        );
    }
    const K2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn seal_open_round_trip_and_length() {
        let r = ring(&[K1]);
        for len in [0usize, 1, 2, 3, 100, 5000] {
            let plain = vec![7u8; len];
            let sealed = r.seal(Purpose::Session, b"ctx", &plain).unwrap();
            assert_eq!(sealed.len(), Keyring::sealed_text_len(len), "len {len}");
            assert_eq!(r.open(Purpose::Session, b"ctx", &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn two_seals_differ() {
        let r = ring(&[K1]);
        let a = r.seal(Purpose::Session, b"c", b"same").unwrap();
        let b = r.seal(Purpose::Session, b"c", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_purpose_context_or_key_fails() {
        let r1 = ring(&[K1]);
        let r2 = ring(&[K2]);
        let sealed = r1.seal(Purpose::Login, b"ctx", b"payload").unwrap();
        let cases: [(&Keyring, Purpose, &[u8]); 3] = [
            (&r1, Purpose::Session, b"ctx"),
            (&r1, Purpose::Login, b"ctx2"),
            (&r2, Purpose::Login, b"ctx"),
        ];
        for (ring, purpose, ctx) in cases {
            assert!(matches!(
                ring.open(purpose, ctx, &sealed),
                Err(Error::Undecryptable)
            ));
        }
    }

    #[test]
    fn every_flipped_byte_fails() {
        let r = ring(&[K1]);
        let sealed = r.seal(Purpose::Session, b"c", b"hello world").unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let text = URL_SAFE_NO_PAD.encode(&bad);
            assert!(r.open(Purpose::Session, b"c", &text).is_err(), "byte {i}");
        }
        for bad in ["", "!!!", "AAAA", &sealed[..sealed.len() - 1]] {
            assert!(r.open(Purpose::Session, b"c", bad).is_err());
        }
    }

    #[test]
    fn rotation_previous_key_opens_current_key_seals() {
        let old = ring(&[K1]);
        let rotated = ring(&[K2, K1]);
        let sealed_old = old.seal(Purpose::Session, b"c", b"v").unwrap();
        assert_eq!(
            rotated.open(Purpose::Session, b"c", &sealed_old).unwrap(),
            b"v"
        );
        let sealed_new = rotated.seal(Purpose::Session, b"c", b"v").unwrap();
        assert!(old.open(Purpose::Session, b"c", &sealed_new).is_err());
        assert_eq!(
            ring(&[K2])
                .open(Purpose::Session, b"c", &sealed_new)
                .unwrap(),
            b"v"
        );
    }

    #[test]
    fn keyring_validation() {
        assert!(matches!(Keyring::new(&[]), Err(Error::NoKeys)));
        let short = [SecretString::from(K1), SecretString::from("short")];
        assert!(matches!(
            Keyring::new(&short),
            Err(Error::KeyTooShort {
                index: 1,
                len: 5,
                min: 32
            })
        ));
    }

    #[test]
    fn random_token_lengths_and_uniqueness() {
        let a = random_token(SID_BYTES).unwrap();
        let b = random_token(SID_BYTES).unwrap();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert_eq!(random_token(32).unwrap().len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn pkce_challenge_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}

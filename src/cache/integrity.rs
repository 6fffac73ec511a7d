//! Authentication of stored values: an HMAC-SHA256 tag over the namespace,
//! the key and the value, so that write access to Redis is not enough to
//! plant a value the gate would act on.
//!
//! Owns: [`IntegrityKey`], the tagged layout (`tag (32 bytes) | value`) and
//! its check. Must not: know where the keys come from (the session keyring
//! derives them), or reveal why a value failed (it is a miss).

use aws_lc_rs::{constant_time, hmac};

use super::key::CacheKey;
use super::namespace::Namespace;

/// Length of the tag in front of an authenticated value.
pub const TAG_LEN: usize = 32;

/// One key that tags (the first configured) or checks (any) stored values.
#[derive(Clone)]
pub struct IntegrityKey(hmac::Key);

impl IntegrityKey {
    /// A key from 32 secret bytes (derived from the session key).
    pub fn new(bytes: &[u8; 32]) -> IntegrityKey {
        IntegrityKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn tag(&self, ns: Namespace, key: &CacheKey, value: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(ns.prefix().as_bytes());
        ctx.update(&[0]);
        ctx.update(key.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        ctx.sign()
    }
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrityKey([redacted])")
    }
}

/// The keys of one [`Caches`](super::Caches): the first tags, every one
/// checks (key rotation).
#[derive(Debug, Clone)]
pub(crate) struct Integrity {
    keys: Vec<IntegrityKey>,
}

impl Integrity {
    pub(crate) fn new(keys: Vec<IntegrityKey>) -> Option<Integrity> {
        (!keys.is_empty()).then_some(Integrity { keys })
    }

    /// `tag | value` under the first key.
    pub(crate) fn seal(&self, ns: Namespace, key: &CacheKey, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(TAG_LEN + value.len());
        if let Some(k) = self.keys.first() {
            out.extend_from_slice(k.tag(ns, key, value).as_ref());
        }
        out.extend_from_slice(value);
        out
    }

    /// The value inside `stored` when its tag is right under some key.
    pub(crate) fn open<'a>(
        &self,
        ns: Namespace,
        key: &CacheKey,
        stored: &'a [u8],
    ) -> Option<&'a [u8]> {
        let (tag, value) = stored.split_at_checked(TAG_LEN)?;
        self.keys
            .iter()
            .any(|k| {
                constant_time::verify_slices_are_equal(k.tag(ns, key, value).as_ref(), tag).is_ok()
            })
            .then_some(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_under_its_namespace_key_and_a_known_key() {
        let old = IntegrityKey::new(&[1; 32]);
        let new = IntegrityKey::new(&[2; 32]);
        let k = CacheKey::new("k").unwrap();
        let sealed =
            Integrity::new(vec![old.clone()])
                .unwrap()
                .seal(Namespace::VerifiedClaims, &k, b"{}");
        let rotated = Integrity::new(vec![new.clone(), old]).unwrap();
        assert_eq!(
            rotated.open(Namespace::VerifiedClaims, &k, &sealed),
            Some(&b"{}"[..])
        );
        let other = CacheKey::new("k2").unwrap();
        assert_eq!(
            rotated.open(Namespace::VerifiedClaims, &other, &sealed),
            None
        );
        assert_eq!(rotated.open(Namespace::Introspection, &k, &sealed), None);
        assert_eq!(
            Integrity::new(vec![new])
                .unwrap()
                .open(Namespace::VerifiedClaims, &k, &sealed),
            None
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(rotated.open(Namespace::VerifiedClaims, &k, &flipped), None);
        assert_eq!(rotated.open(Namespace::VerifiedClaims, &k, b"{}"), None);
        assert!(Integrity::new(Vec::new()).is_none());
    }
}

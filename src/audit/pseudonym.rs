//! Pseudonymization of patient, user and encounter ids before they reach the audit store or the
//! spool: `hex(HMAC-SHA-256(audit_pseudonym_key, id))`, 64 lowercase hex digits, computed over the
//! id exactly as the EHR sent it (`Patient/123` and `123` give different pseudonyms). The same
//! id always gives the same pseudonym under one key, so records of one patient or user can still
//! be grouped, and whoever holds the key can find the records of a known id
//! (`vcf-cds audit pseudonym ID`); without the key the id cannot be recovered. Changing the key
//! breaks the link between old and new records. Without a key, ids are stored as given.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct Pseudonymizer {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Pseudonymizer {
    pub fn new(key: Option<&str>) -> Pseudonymizer {
        Pseudonymizer {
            key: key.map(|k| k.as_bytes().to_vec()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    /// The pseudonym of `id` (or `id` itself when no key is configured).
    pub fn apply(&self, id: &str) -> String {
        match &self.key {
            None => id.to_owned(),
            Some(key) => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(id.as_bytes());
                hex(&mac.finalize().into_bytes())
            }
        }
    }

    /// For query filters: a value that already is a pseudonym (64 hex digits) is used as is,
    /// anything else is pseudonymized, so compliance staff may search by the raw id.
    pub fn apply_to_filter(&self, value: &str) -> String {
        if self.enabled() && is_pseudonym(value) {
            value.to_owned()
        } else {
            self.apply(value)
        }
    }
}

pub fn is_pseudonym(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let p = Pseudonymizer::new(Some("Jefe"));
        assert_eq!(
            p.apply("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(is_pseudonym(&p.apply("Patient/1")));
        assert_ne!(p.apply("Patient/1"), p.apply("Patient/2"));
        assert_eq!(p.apply_to_filter(&p.apply("x")), p.apply("x"));
        assert_eq!(p.apply_to_filter("x"), p.apply("x"));
    }

    #[test]
    fn no_key_keeps_ids() {
        let p = Pseudonymizer::new(None);
        assert_eq!(p.apply("Patient/1"), "Patient/1");
        assert!(!p.enabled());
    }
}

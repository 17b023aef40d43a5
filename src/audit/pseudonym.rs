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

/// Resource types whose references the engine may cite in stated facts and assumptions
/// (`Condition/123: M80.08XA ...`). The draft order's own `ServiceRequest` reference is not
/// among them: it is stored as `order_ref` so that an audited order can be traced to the EHR.
const CITED_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Condition",
    "DiagnosticReport",
    "Encounter",
    "Observation",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
];

impl Pseudonymizer {
    /// `text` with every cited resource reference (`Condition/abc`) replaced by the type and
    /// the pseudonym of the whole reference (`Condition/<64 hex digits>`); unchanged without a
    /// key. Used on the engine's fact and assumption texts before they are stored.
    pub fn apply_to_references(&self, text: &str) -> String {
        if !self.enabled() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for ty in CITED_TYPES {
                let Some(after) = rest.strip_prefix(ty).and_then(|r| r.strip_prefix('/')) else {
                    continue;
                };
                let id_len = after
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
                    .count();
                let word_start = out
                    .chars()
                    .last()
                    .is_none_or(|c| !c.is_ascii_alphanumeric());
                if id_len > 0 && word_start {
                    let reference = &rest[..ty.len() + 1 + id_len];
                    out.push_str(ty);
                    out.push('/');
                    out.push_str(&self.apply(reference));
                    rest = &rest[reference.len()..];
                    continue 'scan;
                }
            }
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
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
    fn cited_references_are_pseudonymized_with_a_key_only() {
        let text = "Condition/c-1: M80.08XA (dated 2026-11-10); DiagnosticReport/r.2 and \
                    ServiceRequest/sr-1, CodeSystem/v2-0074, XCondition/x, Condition/";
        assert_eq!(Pseudonymizer::new(None).apply_to_references(text), text);
        let p = Pseudonymizer::new(Some("k"));
        let got = p.apply_to_references(text);
        assert_eq!(
            got,
            format!(
                "Condition/{}: M80.08XA (dated 2026-11-10); DiagnosticReport/{} and \
                 ServiceRequest/sr-1, CodeSystem/v2-0074, XCondition/x, Condition/",
                p.apply("Condition/c-1"),
                p.apply("DiagnosticReport/r.2")
            )
        );
    }

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

//! The per-patient store and the record "as of" an order's date.
//!
//! The store keeps, per patient, the compact JSON text of each resource the engine can read
//! (narrative and `meta` dropped, deflate-compressed per patient) with the date it became known.
//! Memory therefore grows with the patients' clinical data, never with the size of the input
//! files or the number of orders (orders are streamed in a second pass). For each order, the resources known on its
//! `authoredOn` date are parsed and handed to the same record builder the live service uses
//! ([`crate::cds::prefetch::add_resources`]), so any resource kind the live service reads is read
//! here the same way.
//!
//! When did a resource become known? The latest of its clinical dates (a Condition's
//! `recordedDate` and onset, a Procedure's performed date, an Observation's or
//! DiagnosticReport's effective date and `issued`, an AllergyIntolerance's `recordedDate` and
//! onset). A resource dated after the order's day is left out; an undated resource is kept (the
//! export does not say it came later) and counted in the summary.

use serde::Deserialize;
use std::collections::HashMap;
use time::Date;
use vcf_engine::evaluate::PatientRecord;
use vcf_engine::fhir::{AnyResource, FhirDateTime};

#[derive(Debug, Default, Deserialize)]
pub struct Ref {
    #[serde(default)]
    pub reference: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Period {
    #[serde(default)]
    pub start: Option<String>,
}

/// The fields of any resource this module needs: type, id, patient link and dates. Parsed
/// before (and independently of) the typed view the engine reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub subject: Option<Ref>,
    #[serde(default)]
    pub patient: Option<Ref>,
    #[serde(default)]
    pub recorded_date: Option<String>,
    #[serde(default)]
    pub onset_date_time: Option<String>,
    #[serde(default)]
    pub onset_period: Option<Period>,
    #[serde(default)]
    pub performed_date_time: Option<String>,
    #[serde(default)]
    pub performed_period: Option<Period>,
    #[serde(default)]
    pub effective_date_time: Option<String>,
    #[serde(default)]
    pub effective_period: Option<Period>,
    #[serde(default)]
    pub issued: Option<String>,
    #[serde(default)]
    pub authored_on: Option<String>,
}

impl Header {
    pub fn parse(json: &str) -> Result<Header, String> {
        serde_json::from_str(json).map_err(|e| format!("not a FHIR resource: {e}"))
    }

    /// The patient this resource belongs to, as `Patient/id`.
    pub fn patient_key(&self, urns: Option<&HashMap<String, String>>) -> Option<String> {
        if self.resource_type.as_deref() == Some("Patient") {
            return self.id.as_ref().map(|id| format!("Patient/{id}"));
        }
        let r = self
            .subject
            .as_ref()
            .or(self.patient.as_ref())?
            .reference
            .as_deref()?;
        patient_key(r, urns)
    }

    /// The day the resource became known (see the module comment); `Err` names a field whose
    /// date is not a FHIR date.
    pub fn known_on(&self) -> Result<Option<Date>, String> {
        let fields: [(&str, Option<&String>); 9] = [
            ("recordedDate", self.recorded_date.as_ref()),
            ("onsetDateTime", self.onset_date_time.as_ref()),
            (
                "onsetPeriod.start",
                self.onset_period.as_ref().and_then(|p| p.start.as_ref()),
            ),
            ("performedDateTime", self.performed_date_time.as_ref()),
            (
                "performedPeriod.start",
                self.performed_period
                    .as_ref()
                    .and_then(|p| p.start.as_ref()),
            ),
            ("effectiveDateTime", self.effective_date_time.as_ref()),
            (
                "effectivePeriod.start",
                self.effective_period
                    .as_ref()
                    .and_then(|p| p.start.as_ref()),
            ),
            ("issued", self.issued.as_ref()),
            // A ServiceRequest's own date (orders are not stored, but the rule is the same).
            ("authoredOn", self.authored_on.as_ref()),
        ];
        let mut known: Option<Date> = None;
        for (name, value) in fields {
            if let Some(v) = value {
                let d = FhirDateTime::parse_date_time(v)
                    .map_err(|e| format!("{name}: {v:?} is not a FHIR dateTime ({e:?})"))?
                    .earliest_date();
                known = Some(known.map_or(d, |k| k.max(d)));
            }
        }
        Ok(known)
    }
}

/// `Patient/id` from a reference: relative (`Patient/1`), absolute
/// (`https://ehr/fhir/Patient/1/_history/2`) or a Bundle-local `urn:uuid:`.
pub fn patient_key(reference: &str, urns: Option<&HashMap<String, String>>) -> Option<String> {
    if reference.starts_with("urn:") {
        return urns.and_then(|m| m.get(reference)).cloned();
    }
    let (_, tail) = reference.rsplit_once("Patient/")?;
    let id = tail.split('/').next()?;
    (!id.is_empty()).then(|| format!("Patient/{id}"))
}

/// The compact per-patient store: each patient's resources as deflate-compressed blocks of
/// `[known_on: i32 days, or i32::MIN when undated][length: u32][JSON]` entries. Resources are
/// first collected uncompressed and packed (on all cores) whenever the pending text exceeds
/// [`PACK_AT`] bytes, and at the end of the first pass, so memory stays near the compressed size.
pub struct PatientStore {
    /// Unique per store in this process (a cache key that a later store cannot reuse).
    pub id: u64,
    index: HashMap<Box<str>, u32>,
    patients: Vec<PatientData>,
    pending_bytes: usize,
    /// Resources kept with no date (counted for the summary).
    pub undated: u64,
    pub resources: u64,
}

#[derive(Default)]
struct PatientData {
    blocks: Vec<Box<[u8]>>,
    pending: Vec<u8>,
}

/// Uncompressed text held before packing.
const PACK_AT: usize = 64 << 20;
const UNDATED: i32 = i32::MIN;

/// A resource ready for the store.
pub struct Prepared {
    pub patient: String,
    pub known_on: Option<Date>,
    pub json: Box<str>,
}

/// Drops what the engine never reads and what makes exports large: `meta` and the narrative
/// (`text`) of resources other than reports. Only done when present (a cheap substring test).
pub fn compact(json: &str) -> Box<str> {
    if !(json.contains("\"text\"") || json.contains("\"meta\"")) {
        return json.into();
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(mut m) => {
            // Only a narrative `text` (an object with a `div`): a Condition's `code.text` is
            // nested, and a top-level `text` string is not FHIR narrative. A report's narrative
            // may be the report itself (read for text findings): it is kept.
            if m.get("resourceType").and_then(|t| t.as_str()) != Some("DiagnosticReport")
                && m.get("text")
                    .and_then(|t| t.as_object())
                    .is_some_and(|t| t.contains_key("div"))
            {
                m.remove("text");
            }
            m.remove("meta");
            serde_json::Value::Object(m).to_string().into()
        }
        Err(_) => json.into(),
    }
}

fn pack(raw: &[u8]) -> Box<[u8]> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(raw.len() / 3),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = z.write_all(raw);
    z.finish().unwrap_or_default().into_boxed_slice()
}

fn unpack(block: &[u8], out: &mut Vec<u8>) {
    use std::io::Read;
    // Written by `pack` in this process: a failure cannot happen.
    let _ = flate2::read::DeflateDecoder::new(block).read_to_end(out);
}

/// The entries of an unpacked block.
fn entries(mut raw: &[u8]) -> impl Iterator<Item = (Option<Date>, &str)> {
    std::iter::from_fn(move || {
        if raw.len() < 8 {
            return None;
        }
        let day = i32::from_le_bytes(raw[..4].try_into().ok()?);
        let len = u32::from_le_bytes(raw[4..8].try_into().ok()?) as usize;
        let json = std::str::from_utf8(raw.get(8..8 + len)?).ok()?;
        raw = &raw[8 + len..];
        let known = (day != UNDATED)
            .then(|| Date::from_julian_day(day).ok())
            .flatten();
        Some((known, json))
    })
}

impl Default for PatientStore {
    fn default() -> PatientStore {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        PatientStore {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            index: HashMap::new(),
            patients: Vec::new(),
            pending_bytes: 0,
            undated: 0,
            resources: 0,
        }
    }
}

impl PatientStore {
    pub fn patients(&self) -> usize {
        self.patients.len()
    }

    pub fn insert(&mut self, p: Prepared) {
        let next = self.patients.len() as u32;
        let idx = *self.index.entry(p.patient.into_boxed_str()).or_insert(next);
        if idx == next {
            self.patients.push(PatientData::default());
        }
        if p.known_on.is_none() {
            self.undated += 1;
        }
        self.resources += 1;
        let day = p.known_on.map_or(UNDATED, Date::to_julian_day);
        let data = &mut self.patients[idx as usize];
        data.pending.extend_from_slice(&day.to_le_bytes());
        data.pending
            .extend_from_slice(&(p.json.len() as u32).to_le_bytes());
        data.pending.extend_from_slice(p.json.as_bytes());
        self.pending_bytes += p.json.len() + 8;
        if self.pending_bytes >= PACK_AT {
            self.pack();
        }
    }

    /// Compresses every patient's pending text (on all cores).
    pub fn pack(&mut self) {
        use rayon::prelude::*;
        self.patients.par_iter_mut().for_each(|d| {
            if !d.pending.is_empty() {
                d.blocks.push(pack(&d.pending));
                d.pending = Vec::new();
            }
        });
        self.pending_bytes = 0;
    }

    pub fn contains(&self, patient: &str) -> bool {
        self.index.contains_key(patient)
    }

    pub fn index_of(&self, patient: &str) -> Option<u32> {
        self.index.get(patient).copied()
    }

    /// The patient's record as known on `day`, built like the live service builds it.
    pub fn record_as_of(&self, patient: &str, day: Date) -> PatientRecord {
        match self.resources_of(patient) {
            Some(r) => r.as_of(day),
            None => PatientRecord::default(),
        }
    }

    /// All of the patient's stored resources, parsed (to be filtered per order date).
    pub fn resources_of(&self, patient: &str) -> Option<PatientResources> {
        let &idx = self.index.get(patient)?;
        let data = &self.patients[idx as usize];
        let mut raw = Vec::new();
        for b in &data.blocks {
            unpack(b, &mut raw);
        }
        raw.extend_from_slice(&data.pending);
        let resources = entries(&raw)
            // Parsed and validated when stored: an error here cannot happen, and a resource
            // that failed then was not stored.
            .filter_map(|(known, json)| Some((known, AnyResource::parse(json, "resource").ok()?)))
            .collect();
        Some(PatientResources {
            patient: idx,
            resources,
        })
    }
}

/// One patient's parsed resources with the day each became known.
pub struct PatientResources {
    /// The patient's index in the store (for caching).
    pub patient: u32,
    resources: Vec<(Option<Date>, AnyResource)>,
}

impl PatientResources {
    /// The record as known on `day`: resources known later are left out.
    pub fn as_of(&self, day: Date) -> PatientRecord {
        let mut record = PatientRecord::default();
        let known = self
            .resources
            .iter()
            .filter(|(known, _)| known.is_none_or(|d| d <= day))
            .map(|(_, r)| r.clone());
        crate::cds::prefetch::add_resources(&mut record, known);
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_to_the_patient() {
        assert_eq!(patient_key("Patient/1", None).as_deref(), Some("Patient/1"));
        assert_eq!(
            patient_key("https://ehr.example/fhir/Patient/a-b/_history/3", None).as_deref(),
            Some("Patient/a-b")
        );
        assert_eq!(patient_key("Group/1", None), None);
        let urns = HashMap::from([("urn:uuid:9".to_owned(), "Patient/p9".to_owned())]);
        assert_eq!(
            patient_key("urn:uuid:9", Some(&urns)).as_deref(),
            Some("Patient/p9")
        );
    }

    #[test]
    fn known_on_is_the_latest_clinical_date() {
        let h = Header::parse(
            r#"{"resourceType":"Condition","onsetDateTime":"2020-01-05","recordedDate":"2024-03-01T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            h.known_on().unwrap(),
            Some(time::macros::date!(2024 - 03 - 01))
        );
        let h = Header::parse(r#"{"resourceType":"Condition"}"#).unwrap();
        assert_eq!(h.known_on().unwrap(), None);
        let h = Header::parse(r#"{"resourceType":"Condition","recordedDate":"soon"}"#).unwrap();
        assert!(h.known_on().unwrap_err().contains("recordedDate"));
    }

    #[test]
    fn compact_drops_narrative_and_meta_only() {
        let j = r#"{"resourceType":"Condition","meta":{"versionId":"1"},"text":{"status":"generated","div":"<div/>"},"code":{"text":"fracture"}}"#;
        let c = compact(j);
        assert!(!c.contains("meta") && !c.contains("div"));
        assert!(c.contains("\"code\":{\"text\":\"fracture\"}"));
    }

    #[test]
    fn record_as_of_leaves_out_later_resources() {
        let mut s = PatientStore::default();
        for (d, json) in [
            (
                Some(time::macros::date!(2024 - 01 - 01)),
                r#"{"resourceType":"Condition","id":"early"}"#,
            ),
            (
                Some(time::macros::date!(2024 - 06 - 01)),
                r#"{"resourceType":"Condition","id":"late"}"#,
            ),
            (None, r#"{"resourceType":"Condition","id":"undated"}"#),
        ] {
            s.insert(Prepared {
                patient: "Patient/1".into(),
                known_on: d,
                json: json.into(),
            });
        }
        // Some entries packed, one still pending: both are read.
        s.pack();
        s.insert(Prepared {
            patient: "Patient/1".into(),
            known_on: Some(time::macros::date!(2024 - 02 - 01)),
            json: r#"{"resourceType":"Condition","id":"pending"}"#.into(),
        });
        let r = s.record_as_of("Patient/1", time::macros::date!(2024 - 03 - 01));
        let vcf_engine::evaluate::Availability::Available(c) = &r.conditions else {
            panic!()
        };
        let ids: Vec<_> = c.iter().filter_map(|c| c.id.as_deref()).collect();
        assert_eq!(ids, ["early", "undated", "pending"]);
        assert_eq!(s.undated, 1);
    }
}

//! Patient facts: what the record (and the order's own reason) says about the fracture, each
//! fact tri-state with its evidence or the assumption made.
//!
//! Derivation rules (engine code; the codes themselves come from the knowledge value sets):
//! - Conditions with verificationStatus `entered-in-error` or `refuted` are ignored.
//! - Malignancy history counts any clinicalStatus (resolved cancer still counts); back pain,
//!   findings and safety conditions count only when active/recurrence/relapse (or no status).
//! - Absence of a coded fact when its data kind was available is `Absent` with the assumption
//!   spelled out; findings that have no code are `Unknown` unless coded evidence exists; a data
//!   kind that could not be retrieved makes the facts depending on it `Unknown`.
//! - A VCF is new when dated within `policy.new_fracture_window_days` of the order date; undated
//!   ICD-10-CM codes with 7th character A/B (initial encounter) are assumed new, D/G/K/P/S not.

//!
//! Layout: `record` indexes the record once per request ([`RecordIndex`]); `derive` runs the
//! per-order derivation, one function per fact, grouped in `fracture` (the fracture itself),
//! `history` (cause, history and findings) and `safety` (safety facts and age).

mod derive;
mod fracture;
mod history;
mod record;
mod reports;
mod safety;

pub use record::RecordIndex;

use crate::fhir::Coding;
use crate::index::Engine;
use crate::knowledge::Fact;
use serde::Serialize;
use time::Date;

/// A recorded piece of evidence for a fact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Where it was found: `Condition/c1`, `ServiceRequest/o1 reasonCode`, ...
    pub source: String,
    /// The matching code (`M80.08XA`).
    pub code: String,
    pub display: Option<String>,
    /// Extra detail ("onset 2026-10-01, 20 days before the order").
    pub detail: Option<String>,
    /// Set when the fact is inferred rather than recorded (stated to the clinician).
    pub assumption: Option<String>,
}

impl Evidence {
    /// One line for a card: `Condition/c1: M80.08XA Age-related osteoporosis ... (detail)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}: {}", self.source, self.code);
        if let Some(d) = &self.display {
            s.push(' ');
            s.push_str(d);
        }
        if let Some(d) = &self.detail {
            s.push_str(" (");
            s.push_str(d);
            s.push(')');
        }
        s
    }

    /// Short form for a card line: `M80.08XA Age-related osteoporosis with current… (Condition/c1)`
    /// (the display cut at a word boundary near 60 characters).
    pub fn short(&self) -> String {
        let mut s = self.code.clone();
        if let Some(d) = &self.display {
            s.push(' ');
            s.push_str(&cut_words(d, 60));
        }
        s.push_str(" (");
        s.push_str(&self.source);
        s.push(')');
        s
    }
}

/// `text` cut at a word boundary to at most `max` characters, with an ellipsis when cut.
pub fn cut_words(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max.saturating_sub(1)).collect();
    let cut = match head.rfind(char::is_whitespace) {
        Some(i) if i > 0 => &head[..i],
        _ => head.as_str(),
    };
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ']))
}

/// A code as the EHR prints it: ICD-10-CM with its dot (`M8008XA` -> `M80.08XA`), others as
/// sent.
pub fn printed_code(engine: &Engine, c: &Coding) -> String {
    let code = c.code.clone().unwrap_or_default();
    let icd = c
        .system
        .as_deref()
        .and_then(|s| engine.system_id(s))
        .is_some_and(|id| engine.is_icd10cm(id));
    if icd && code.len() > 3 && !code.contains('.') && code.is_ascii() {
        format!("{}.{}", &code[..3], &code[3..])
    } else {
        code
    }
}

/// A fact's value: known present (with evidence), known absent (with the assumption made), or
/// unknown (with why).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "text", rename_all = "kebab-case")]
pub enum FactValue {
    Present(Box<Evidence>),
    Absent(Text),
    Unknown(Text),
}

/// Fact texts: mostly fixed sentences, sometimes formatted.
pub type Text = std::borrow::Cow<'static, str>;

/// `Present` with boxed evidence (keeps [`FactValue`] small).
pub fn present(e: Evidence) -> FactValue {
    FactValue::Present(Box::new(e))
}

impl FactValue {
    pub fn is_present(&self) -> bool {
        matches!(self, FactValue::Present(_))
    }
    pub fn is_absent(&self) -> bool {
        matches!(self, FactValue::Absent(_))
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, FactValue::Unknown(_))
    }
    /// `Some(true)` present, `Some(false)` absent, `None` unknown.
    pub fn known(&self) -> Option<bool> {
        match self {
            FactValue::Present(_) => Some(true),
            FactValue::Absent(_) => Some(false),
            FactValue::Unknown(_) => None,
        }
    }
}

/// Everything the engine concluded about the patient for one order.
#[derive(Debug, Clone, Serialize)]
pub struct PatientFacts {
    values: [FactValue; Fact::COUNT],
    /// Age in whole years at the order date, when the birth date is known.
    pub age: Option<i32>,
    /// Under `policy.pediatric_age_below` at the order date.
    pub pediatric: bool,
    /// Set when the age could not be determined (adult assumed).
    pub age_assumption: Option<String>,
    /// Latest eGFR (mL/min/1.73m2) with its evidence.
    pub egfr: Option<(f64, Evidence)>,
    pub mri_unsafe_device: Option<Evidence>,
    pub renal_contrast_risk: Option<Evidence>,
    /// Iodinated contrast allergy (the only contrast allergy with a code).
    pub contrast_allergy: Option<Evidence>,
    /// Latest spine radiograph report, if any.
    pub spine_radiograph: Option<Evidence>,
    /// Latest spine MRI report within `policy.new_fracture_window_days` of the order, if any.
    pub spine_mri: Option<Evidence>,
    /// Data kinds that could not be retrieved ("procedure history could not be retrieved
    /// (timeout)"), stated as assumptions.
    pub unavailable: Vec<String>,
    /// Other statements for the clinician: presumptions made (a wedge fracture in an older adult
    /// presumed a fragility fracture) and conflicting records.
    pub notes: Vec<String>,
    /// The order date used for ages and fracture recency.
    #[serde(skip)]
    pub order_date: Option<Date>,
}

impl PatientFacts {
    pub fn get(&self, fact: Fact) -> &FactValue {
        &self.values[fact.index()]
    }

    /// Overrides one fact (tests and what-if exploration).
    pub fn set(&mut self, fact: Fact, value: FactValue) {
        self.values[fact.index()] = value;
    }

    /// All facts with their values, in [`Fact::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Fact, &FactValue)> {
        Fact::ALL.iter().copied().zip(self.values.iter())
    }

    /// Facts with every value unknown and no reason given (a starting point for derivation and
    /// tests; allocation-free apart from the vector).
    pub fn unknown() -> PatientFacts {
        PatientFacts {
            values: std::array::from_fn(|_| FactValue::Unknown(Text::Borrowed(""))),
            age: None,
            pediatric: false,
            age_assumption: None,
            egfr: None,
            mri_unsafe_device: None,
            renal_contrast_risk: None,
            contrast_allergy: None,
            spine_radiograph: None,
            unavailable: Vec::new(),
            notes: Vec::new(),
            spine_mri: None,
            order_date: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{Condition, FhirResource, Observation, Patient, Procedure, ServiceRequest};
    use crate::index::test_kb;
    use crate::types::{Availability, PatientRecord};
    use time::macros::date;

    fn cond(json: &str) -> Condition {
        Condition::parse(json, "c").unwrap()
    }

    fn icd(id: &str, code: &str, extra: &str) -> Condition {
        cond(&format!(
            r#"{{"resourceType":"Condition","id":"{id}","code":{{"coding":[{{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"{code}"}}]}}{extra}}}"#
        ))
    }

    fn facts(record: &PatientRecord, order_date: Date) -> PatientFacts {
        let e = test_kb::engine();
        let idx = RecordIndex::new(&e, record);
        idx.facts(&e, None, "ServiceRequest/o1", order_date)
    }

    #[test]
    fn osteoporotic_new_fracture_without_malignancy() {
        let record = PatientRecord {
            conditions: Availability::Available(vec![
                icd("c1", "M80.08XA", ""),
                icd(
                    "c2",
                    "M54.50",
                    r#","clinicalStatus":{"coding":[{"code":"active"}]}"#,
                ),
            ]),
            ..Default::default()
        };
        let f = facts(&record, date!(2026 - 11 - 01));
        assert!(f.get(Fact::Vcf).is_present());
        match f.get(Fact::NewFracture) {
            FactValue::Present(e) => assert!(e.assumption.as_ref().unwrap().contains("7th")),
            other => panic!("{other:?}"),
        }
        assert!(f.get(Fact::Symptomatic).is_present());
        assert_eq!(
            f.get(Fact::MalignancyHistory),
            &FactValue::Absent("no history of malignancy found in the problem list".into())
        );
        assert!(f.get(Fact::Osteoporotic).is_present());
        assert!(f.get(Fact::Pathological).is_absent());
        assert!(f.get(Fact::MultipleVcf).is_absent());
        assert!(f.get(Fact::MarrowEdemaOrCleft).is_unknown());
        assert!(f.get(Fact::PriorVertebralAugmentation).is_absent());
        assert!(f.get(Fact::HighEnergyTrauma).is_absent());
        assert!(f.age_assumption.is_some());
    }

    #[test]
    fn statuses_dates_and_multiple_levels() {
        let record = PatientRecord {
            conditions: Availability::Available(vec![
                icd("c1", "M48.54XA", r#","onsetDateTime":"2025-01-10""#),
                icd("c2", "M48.56XD", ""),
                icd(
                    "c3",
                    "C50.911",
                    r#","clinicalStatus":{"coding":[{"code":"resolved"}]}"#,
                ),
                icd(
                    "c4",
                    "M54.50",
                    r#","clinicalStatus":{"coding":[{"code":"resolved"}]}"#,
                ),
                icd(
                    "c5",
                    "Z95.0",
                    r#","verificationStatus":{"coding":[{"code":"entered-in-error"}]}"#,
                ),
            ]),
            ..Default::default()
        };
        let f = facts(&record, date!(2026 - 11 - 01));
        assert!(
            f.get(Fact::NewFracture).is_absent(),
            "{:?}",
            f.get(Fact::NewFracture)
        );
        assert!(f.get(Fact::MultipleVcf).is_present());
        assert!(f.get(Fact::MalignancyHistory).is_present());
        assert!(f.get(Fact::Pathological).is_unknown());
        assert!(f.get(Fact::Symptomatic).is_unknown());
        assert!(f.mri_unsafe_device.is_none());
    }

    #[test]
    fn reason_reference_resolves_against_the_conditions() {
        let e = test_kb::engine();
        let record = PatientRecord {
            conditions: Availability::Available(vec![
                icd("c1", "M80.08XA", ""),
                icd(
                    "c2",
                    "M54.50",
                    r#","clinicalStatus":{"coding":[{"code":"inactive"}]}"#,
                ),
            ]),
            ..Default::default()
        };
        let idx = RecordIndex::new(&e, &record);
        let plain = idx.facts(&e, None, "ServiceRequest/o1", date!(2026 - 11 - 01));
        assert!(plain.get(Fact::Symptomatic).is_unknown());
        let sr = ServiceRequest::parse(
            r#"{"resourceType":"ServiceRequest","reasonReference":[{"reference":"Condition/c2"},{"reference":"Condition/missing"}]}"#,
            "o",
        )
        .unwrap();
        let f = idx.facts(&e, Some(&sr), "ServiceRequest/o1", date!(2026 - 11 - 01));
        match f.get(Fact::Symptomatic) {
            FactValue::Present(ev) => {
                assert_eq!(ev.source, "Condition/c2 (reason of ServiceRequest/o1)")
            }
            other => panic!("{other:?}"),
        }
        assert!(f.get(Fact::MultipleVcf).is_absent());
    }

    #[test]
    fn order_reason_and_unavailable_kinds() {
        let e = test_kb::engine();
        let record = PatientRecord {
            conditions: Availability::Available(vec![]),
            procedures: Availability::Unavailable("timeout".into()),
            patient: Availability::Available(Some(
                Patient::parse(r#"{"resourceType":"Patient","birthDate":"2012-05-01"}"#, "p")
                    .unwrap(),
            )),
            observations: Availability::Available(vec![
                Observation::parse(
                    r#"{"resourceType":"Observation","id":"g1","code":{"coding":[{"system":"http://loinc.org","code":"98979-8"}]},"valueQuantity":{"value":55},"effectiveDateTime":"2026-01-01"}"#,
                    "o",
                )
                .unwrap(),
                Observation::parse(
                    r#"{"resourceType":"Observation","id":"g2","code":{"coding":[{"system":"http://loinc.org","code":"98979-8"}]},"valueQuantity":{"value":25},"effectiveDateTime":"2026-10-01"}"#,
                    "o",
                )
                .unwrap(),
            ]),
            ..Default::default()
        };
        let sr = ServiceRequest::parse(
            r#"{"resourceType":"ServiceRequest","reasonCode":[{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"S32.010A"}]},{"coding":[{"system":"http://snomed.info/sct","code":"279039007"}]}]}"#,
            "o",
        )
        .unwrap();
        let idx = RecordIndex::new(&e, &record);
        let f = idx.facts(&e, Some(&sr), "ServiceRequest/o1", date!(2026 - 11 - 01));
        assert!(f.get(Fact::Vcf).is_present());
        assert!(f.get(Fact::Symptomatic).is_present());
        assert!(f.get(Fact::HighEnergyTrauma).is_present());
        match f.get(Fact::PriorVertebralAugmentation) {
            FactValue::Unknown(why) => assert!(why.contains("timeout")),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.age, Some(14));
        assert!(f.pediatric);
        assert_eq!(f.egfr.as_ref().unwrap().0, 25.0);
        let _ = Procedure::default();
    }
}

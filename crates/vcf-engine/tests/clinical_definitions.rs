//! Issue 8 clinical definitions, one test (or more) per definition, each written from its
//! source (ICD-10-CM titles, the ACR variant titles in research §1.2, the research packs), not
//! from the engine's output. Records are built inline; the clock is `common::NOW` (2026-11-27).

mod common;

use common::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vcf_engine::evaluate::{Hook, Options, Outcome};
use vcf_engine::facts::{FactValue, PatientFacts, RecordIndex};
use vcf_engine::fhir::FhirResource;
use vcf_engine::knowledge::{Category, Fact};

const ICD: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const CPT: &str = "http://www.ama-assn.org/go/cpt";

fn raw(v: Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn patient(birth: &str) -> Value {
    json!({"resourceType": "Patient", "id": "pat", "birthDate": birth})
}

/// A Condition with an ICD-10-CM code; `extra` is merged in (bodySite, onsetDateTime, ...).
fn cond(id: &str, code: &str, extra: Value) -> Value {
    let mut c = json!({
        "resourceType": "Condition", "id": id,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": ICD, "code": code}]}
    });
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    c
}

fn report(id: &str, loinc: &str, title: &str, date: &str, conclusion: &str) -> Value {
    json!({
        "resourceType": "DiagnosticReport", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}], "text": title},
        "effectiveDateTime": date, "conclusion": conclusion
    })
}

fn mri_lumbar(id: &str, date: &str, conclusion: &str) -> Value {
    report(
        id,
        "30679-5",
        "MR Lumbar spine WO contrast",
        date,
        conclusion,
    )
}

fn order(code: &str, extra: Value) -> Value {
    let mut o = json!({
        "resourceType": "ServiceRequest", "id": "o1", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/pat"},
        "code": {"coding": [{"system": CPT, "code": code}]}
    });
    if let (Some(m), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    o
}

fn run(resources: Vec<Value>, order: Value) -> vcf_engine::evaluate::Evaluation {
    let record = record_from(&resources.into_iter().map(raw).collect::<Vec<_>>());
    let drafts = drafts_from(vec![raw(order)], None);
    evaluate_with(Hook::OrderSign, &record, &drafts, &Options::default())
}

fn facts(resources: Vec<Value>) -> PatientFacts {
    let record = record_from(&resources.into_iter().map(raw).collect::<Vec<_>>());
    let idx = RecordIndex::new(engine(), &record);
    idx.facts(engine(), None, "ServiceRequest/o1", NOW.date())
}

fn unknown_text(f: &PatientFacts, fact: Fact) -> String {
    match f.get(fact) {
        FactValue::Unknown(t) => t.to_string(),
        other => panic!("{fact:?} expected unknown, got {other:?}"),
    }
}

const OSTEO_L1: &str = "M80.08XA";
const LBP: &str = "M54.50";

// --- V9 requires a neoplastic cause -----------------------------------------------------------

/// M84.6- "Pathological fracture in other disease" (Paget's): pathological but not neoplastic,
/// so not V9 (ACR V9 ablation is for spinal metastatic disease, research §1.3); RF ablation is
/// rated in the benign variants (V8: 1/9), never "appropriate".
#[test]
fn pagets_pathological_fracture_is_not_v9() {
    let ev = run(
        vec![
            patient("1944-01-01"),
            cond(
                "c1",
                "M84.68XA",
                json!({"bodySite": [{"text": "L2 vertebra"}]}),
            ),
            cond("c2", "M88.88", json!({})),
            cond("c3", LBP, json!({})),
        ],
        order("20982", json!({})),
    );
    let o = &ev.orders[0];
    assert!(!o.candidate_variants.contains(&"V9".to_string()), "{o:#?}");
    assert_eq!(o.outcome, Outcome::Rated);
    assert_eq!(o.chosen_variant.as_deref(), Some("V8"));
    assert_eq!(o.rating, Some(1));
}

/// M84.5- "Pathological fracture in neoplastic disease" is a neoplastic cause (V9).
#[test]
fn neoplastic_fracture_code_and_bone_malignancy_are_neoplastic() {
    let f = facts(vec![cond("c1", "M84.58XA", json!({}))]);
    assert!(f.get(Fact::NeoplasticCause).is_present());
    // Secondary malignant neoplasm of bone with a collapsed vertebra NOS.
    let f = facts(vec![
        cond("c1", "M48.56XA", json!({})),
        cond("c2", "C79.51", json!({})),
    ]);
    assert!(f.get(Fact::NeoplasticCause).is_present());
    // A breast cancer history alone: unknown (a report finding of tumour would decide it).
    let f = facts(vec![
        cond("c1", "M48.56XA", json!({})),
        cond("c2", "Z85.3", json!({})),
    ]);
    assert!(f.get(Fact::NeoplasticCause).is_unknown());
    // ... with an MRI stating marrow replacement: neoplastic.
    let f = facts(vec![
        cond("c1", "M48.56XA", json!({})),
        cond("c2", "Z85.3", json!({})),
        mri_lumbar(
            "r1",
            "2026-11-20",
            "L3 fracture with diffuse marrow replacement.",
        ),
    ]);
    assert!(f.get(Fact::NeoplasticCause).is_present());
}

// --- History of malignancy excludes C44, Z85.828, in-situ ----------------------------------

/// Non-melanoma skin cancer (C44.-, Z85.828) and carcinoma in situ (D00-D09) are not a
/// "history of malignancy" (ICD-10-CM titles; exclusions in the malignancy value set).
#[test]
fn skin_cancer_and_in_situ_are_not_a_malignancy_history() {
    for code in ["C44.91", "Z85.828", "D05.10"] {
        let f = facts(vec![
            cond("c1", OSTEO_L1, json!({})),
            cond("c2", code, json!({})),
        ]);
        assert!(f.get(Fact::MalignancyHistory).is_absent(), "{code}");
    }
    // Melanoma history still counts.
    let f = facts(vec![
        cond("c1", OSTEO_L1, json!({})),
        cond("c2", "Z85.820", json!({})),
    ]);
    assert!(f.get(Fact::MalignancyHistory).is_present());
}

// --- verificationStatus ------------------------------------------------------------------

/// unconfirmed / provisional / differential: neither present nor absent; the deciding-fact card
/// says "suspected, not confirmed".
#[test]
fn suspected_conditions_are_unknown() {
    for status in ["unconfirmed", "provisional", "differential"] {
        let f = facts(vec![
            cond("c1", OSTEO_L1, json!({})),
            cond(
                "c2",
                "C50.911",
                json!({"verificationStatus": {"coding": [{"code": status}]}}),
            ),
        ]);
        assert!(
            unknown_text(&f, Fact::MalignancyHistory).contains("suspected, not confirmed"),
            "{status}"
        );
    }
    // MRI lumbar with contrast: V1 (3/9) or V2 (5/9) depending on the suspected cancer.
    let ev = run(
        vec![
            patient("1950-01-01"),
            cond("c1", OSTEO_L1, json!({})),
            cond("c2", LBP, json!({})),
            cond(
                "c3",
                "C50.911",
                json!({"verificationStatus": {"coding": [{"code": "provisional"}]}}),
            ),
        ],
        order("72149", json!({})),
    );
    let o = &ev.orders[0];
    assert_eq!(o.outcome, Outcome::Ambiguous);
    assert_eq!(o.deciding_facts, ["malignancy_history"]);
    let c = card(&ev, o);
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("suspected, not confirmed")
    );
}

// --- Trauma codes ---------------------------------------------------------------------------

fn trauma(code: &str, birth: &str, extra: Vec<Value>) -> vcf_engine::evaluate::Evaluation {
    let mut r = vec![
        patient(birth),
        cond("c1", code, json!({})),
        cond("c2", LBP, json!({})),
    ];
    r.extend(extra);
    run(r, order("72148", json!({})))
}

/// S32.010A (6th character 0: wedge compression, spine-trauma research §3.1) in a 78-year-old
/// with no high-energy external cause: presumed fragility fracture, in scope, stated.
#[test]
fn wedge_fracture_in_an_older_adult_is_a_presumed_fragility_fracture() {
    let ev = trauma("S32.010A", "1948-01-01", vec![]);
    let o = &ev.orders[0];
    assert_ne!(o.outcome, Outcome::OutOfScope, "{o:#?}");
    assert!(
        o.assumptions
            .iter()
            .any(|a| a.contains("presumed fragility fracture")),
        "{:?}",
        o.assumptions
    );
    // A low-energy fall (W19, not a high-energy code) does not change that.
    let ev = trauma(
        "S32.010A",
        "1948-01-01",
        vec![cond("c3", "W19.XXXA", json!({}))],
    );
    assert_ne!(ev.orders[0].outcome, Outcome::OutOfScope);
}

/// Burst (6th character 1), a younger patient, or a coded high-energy mechanism (V89.2: motor
/// vehicle accident, spine-trauma research §3.3) route to Acute Spinal Trauma.
#[test]
fn burst_younger_or_high_energy_trauma_is_out_of_scope() {
    assert_eq!(
        trauma("S32.011A", "1948-01-01", vec![]).orders[0].outcome,
        Outcome::OutOfScope
    );
    assert_eq!(
        trauma("S32.010A", "1990-01-01", vec![]).orders[0].outcome,
        Outcome::OutOfScope
    );
    assert_eq!(
        trauma(
            "S32.010A",
            "1948-01-01",
            vec![cond("c3", "V89.2XXA", json!({}))]
        )
        .orders[0]
            .outcome,
        Outcome::OutOfScope
    );
}

// --- Completed augmentation = previously treated fracture -------------------------------------

/// A completed vertebroplasty (CPT 22511) with no fracture code: a previously treated VCF
/// (V3 "Previously treated VCF", V7 "History of prior vertebroplasty").
#[test]
fn completed_augmentation_is_a_previously_treated_fracture() {
    let resources = vec![
        patient("1944-01-01"),
        cond("c1", LBP, json!({})),
        json!({"resourceType": "Procedure", "id": "p1", "status": "completed",
               "code": {"coding": [{"system": CPT, "code": "22511"}]},
               "performedDateTime": "2024-03-01"}),
    ];
    let f = facts(resources.clone());
    match f.get(Fact::Vcf) {
        FactValue::Present(e) => assert!(
            e.assumption
                .as_deref()
                .unwrap()
                .contains("previously treated")
        ),
        other => panic!("{other:?}"),
    }
    let ev = run(resources, order("72149", json!({})));
    assert!(ev.orders[0].candidate_variants.contains(&"V3".to_string()));
}

// --- Counting fractures by level --------------------------------------------------------------

#[test]
fn fractures_are_counted_by_distinct_levels() {
    // Same level coded twice: one fracture.
    let f = facts(vec![
        cond(
            "c1",
            OSTEO_L1,
            json!({"bodySite": [{"text": "L1 vertebra"}]}),
        ),
        cond("c2", "M48.56XA", json!({"bodySite": [{"text": "L1"}]})),
    ]);
    assert!(
        f.get(Fact::MultipleVcf).is_absent(),
        "{:?}",
        f.get(Fact::MultipleVcf)
    );
    // Two codes without levels, same region / unknown region: may be one fracture -> unknown.
    let f = facts(vec![
        cond("c1", OSTEO_L1, json!({"recordedDate": "2026-11-20"})),
        cond("c2", "M48.56XA", json!({"recordedDate": "2026-11-20"})),
    ]);
    assert!(unknown_text(&f, Fact::MultipleVcf).contains("may be the same fracture"));
    // Levels from the report: T12 and L1.
    let f = facts(vec![
        cond(
            "c1",
            OSTEO_L1,
            json!({"bodySite": [{"text": "L1 vertebra"}]}),
        ),
        mri_lumbar("r1", "2026-11-20", "Compression fractures of T12 and L1."),
    ]);
    assert!(f.get(Fact::MultipleVcf).is_present());
    // Thoracic and lumbar collapsed vertebra codes: different vertebrae.
    let f = facts(vec![
        cond("c1", "M48.54XA", json!({})),
        cond("c2", "M48.56XA", json!({})),
    ]);
    assert!(f.get(Fact::MultipleVcf).is_present());
}

/// The card never says both "no single missing fact" and "record the deciding fact".
#[test]
fn ambiguous_card_does_not_contradict_itself() {
    for (resources, ord) in [
        (
            vec![
                patient("1950-01-01"),
                cond("c1", OSTEO_L1, json!({"recordedDate": "2026-11-20"})),
                cond("c2", "M48.56XA", json!({"recordedDate": "2026-11-20"})),
                cond("c3", LBP, json!({})),
            ],
            order("72149", json!({})),
        ),
        (
            vec![
                patient("1950-01-01"),
                cond("c1", OSTEO_L1, json!({})),
                cond(
                    "c3",
                    "C50.911",
                    json!({"verificationStatus": {"coding": [{"code": "provisional"}]}}),
                ),
            ],
            order("72149", json!({})),
        ),
    ] {
        let ev = run(resources, ord);
        for c in &ev.response.cards {
            let d = c.detail.as_deref().unwrap_or_default();
            assert!(
                !(d.contains("No single missing fact") && d.contains("Record the deciding fact")),
                "{d}"
            );
        }
    }
}

// --- "New" is tri-state -------------------------------------------------------------------------

#[test]
fn new_fracture_is_tri_state_with_local_windows() {
    let at = |onset: &str| {
        facts(vec![cond(
            "c1",
            "M48.56XD",
            json!({"onsetDateTime": onset}),
        )])
    };
    // NOW = 2026-11-27. 20 days: new (within 6 weeks).
    assert!(at("2026-11-07").get(Fact::NewFracture).is_present());
    // About two months: neither new nor old, never thrown out as "old".
    assert!(unknown_text(&at("2026-09-27"), Fact::NewFracture).contains("between"));
    // More than a year: not new.
    assert!(at("2025-10-01").get(Fact::NewFracture).is_absent());
    // An MRI showing marrow edema makes it new whatever the dates.
    let f = facts(vec![
        cond("c1", "M48.56XD", json!({"onsetDateTime": "2025-10-01"})),
        mri_lumbar("r1", "2026-11-20", "L3 fracture with marrow edema."),
    ]);
    assert!(f.get(Fact::NewFracture).is_present());
}

// --- Spine pain codes ---------------------------------------------------------------------------

/// M54.4- lumbago with sciatica, M54.3- sciatica, M54.89 other dorsalgia, M54.9, M54.6 thoracic
/// spine pain, M54.2 cervicalgia (ICD-10-CM): symptomatic. M54.81 occipital neuralgia is not.
#[test]
fn spine_pain_codes_make_the_fracture_symptomatic() {
    for code in [
        "M54.42", "M54.31", "M54.89", "M54.9", "M54.6", "M54.2", "M54.50",
    ] {
        let f = facts(vec![
            cond("c1", OSTEO_L1, json!({})),
            cond("c2", code, json!({})),
        ]);
        assert!(f.get(Fact::Symptomatic).is_present(), "{code}");
    }
    let f = facts(vec![
        cond("c1", OSTEO_L1, json!({})),
        cond("c2", "M54.81", json!({})),
    ]);
    assert!(f.get(Fact::Symptomatic).is_unknown());
}

// --- A candidate without a row ------------------------------------------------------------------

/// Systemic radionuclide therapy for a benign osteoporotic fracture, pain not coded: V5 (no row
/// for the procedure, research §1.2/§8.1), V6 and V8 (1/9 each) are candidates. Every variant
/// that rates it says 1/9, so it is rated, and the card says V5 does not rate it.
#[test]
fn a_candidate_without_a_row_does_not_block_the_rating() {
    let ev = run(
        vec![
            patient("1940-01-01"),
            cond("c1", OSTEO_L1, json!({})),
            cond("c2", "M81.0", json!({})),
        ],
        order("79101", json!({})),
    );
    let o = &ev.orders[0];
    assert!(o.candidate_variants.contains(&"V5".to_string()), "{o:#?}");
    assert_eq!(o.outcome, Outcome::Rated);
    assert_eq!(o.rating, Some(1));
    assert_eq!(o.category, Some(Category::UsuallyNotAppropriate));
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(d.contains("Not rated in V5"), "{d}");
    assert!(d.contains("every scenario that rates it agrees"));
}

// --- Clinician-stated facts ---------------------------------------------------------------------

/// reasonCode SNOMED CT 161891005 "Backache (finding)" is evidence of pain.
#[test]
fn reason_code_backache_counts_as_symptomatic() {
    let record = record_from(&[raw(cond("c1", OSTEO_L1, json!({})))]);
    let sr = vcf_engine::fhir::ServiceRequest::parse(
        &json!({"resourceType": "ServiceRequest", "reasonCode": [{"coding": [
            {"system": "http://snomed.info/sct", "code": "161891005"}]}]})
        .to_string(),
        "o",
    )
    .unwrap();
    let idx = RecordIndex::new(engine(), &record);
    let f = idx.facts(engine(), Some(&sr), "ServiceRequest/o1", NOW.date());
    assert!(f.get(Fact::Symptomatic).is_present());
}

/// supportingInfo naming a report: read even though its title does not say "spine" and it is
/// older than the windows.
#[test]
fn supporting_info_report_counts_as_evidence() {
    let resources = vec![
        patient("1948-01-01"),
        cond(
            "c1",
            OSTEO_L1,
            json!({"bodySite": [{"text": "L1 vertebra"}]}),
        ),
        cond("c2", LBP, json!({})),
        report(
            "r9",
            "30679-5",
            "Outside MRI",
            "2024-06-01",
            "Acute L1 fracture with marrow edema.",
        ),
    ];
    let plain = run(resources.clone(), order("22514", json!({})));
    assert_eq!(plain.orders[0].outcome, Outcome::Ambiguous);
    let ev = run(
        resources,
        order(
            "22514",
            json!({"supportingInfo": [{"reference": "DiagnosticReport/r9"}]}),
        ),
    );
    let o = &ev.orders[0];
    assert_eq!(o.outcome, Outcome::Rated, "{o:#?}");
    assert_eq!(o.chosen_variant.as_deref(), Some("V6"));
}

// --- Contradictory facts ------------------------------------------------------------------------

#[test]
fn a_refuted_and_a_confirmed_fracture_are_unknown_and_named() {
    let f = facts(vec![
        cond(
            "c1",
            OSTEO_L1,
            json!({"bodySite": [{"text": "L1 vertebra"}]}),
        ),
        cond(
            "c2",
            OSTEO_L1,
            json!({"bodySite": [{"text": "L1 vertebra"}],
                   "verificationStatus": {"coding": [{"code": "refuted"}]}}),
        ),
    ]);
    assert!(unknown_text(&f, Fact::Vcf).contains("conflicting records"));
}

#[test]
fn osteoporotic_and_neoplastic_causes_conflict() {
    let resources = vec![
        patient("1948-01-01"),
        cond("c1", OSTEO_L1, json!({})),
        cond("c2", "M84.58XA", json!({})),
        cond("c3", LBP, json!({})),
    ];
    let f = facts(resources.clone());
    assert!(unknown_text(&f, Fact::Osteoporotic).contains("conflicting records"));
    assert!(unknown_text(&f, Fact::NeoplasticCause).contains("conflicting records"));
    // Kyphoplasty: never a confident rating; the card names the conflict.
    let ev = run(resources, order("22514", json!({})));
    let o = &ev.orders[0];
    assert_ne!(o.outcome, Outcome::Rated, "{o:#?}");
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(d.contains("conflicting records"), "{d}");
}

//! Golden cases for the cards a clinician acts on (issue 9), written from the sources: the ACR
//! VCF tables (research pack §1.2), the MRI / contrast safety evidence (§6.1: 2017 HRS
//! consensus and ACR MR safe practices for devices; ACR-NKF 2020 for iodinated contrast at eGFR
//! < 30; ACR-NKF 2021 for group II gadolinium), the ACR pediatric radiation levels (§2) and the
//! Argonaut CDS Hooks for PAMA guide (the rating as an `update`, `no-criteria-apply`).

mod common;

use common::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vcf_engine::cds::{ActionType, Indicator};
use vcf_engine::evaluate::{Availability, Hook, Options, Outcome};
use vcf_engine::fhir::{AllergyIntolerance, Condition, Device, FhirResource};
use vcf_engine::knowledge::Category;

fn raw(v: Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn order(id: &str, patient: &str, cpt: &str, text: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "draft", "intent": "order",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt}], "text": text},
        "subject": {"reference": format!("Patient/{patient}")}})
}

fn run(
    record: &vcf_engine::evaluate::PatientRecord,
    orders: Vec<Value>,
    opts: &Options,
) -> vcf_engine::evaluate::Evaluation {
    let drafts = drafts_from(orders.into_iter().map(raw).collect(), None);
    evaluate_with(Hook::OrderSign, record, &drafts, opts)
}

fn with_condition(
    mut rec: vcf_engine::evaluate::PatientRecord,
    v: Value,
) -> vcf_engine::evaluate::PatientRecord {
    let c = Condition::parse(&v.to_string(), "test").unwrap();
    if let Availability::Available(list) = &mut rec.conditions {
        list.push(c);
    }
    rec
}

fn pacemaker() -> Value {
    json!({"resourceType": "Condition", "id": "pm-1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z950", "display": "Presence of cardiac pacemaker"}]}})
}

#[test]
fn pacemaker_with_an_appropriate_mri_gets_a_safety_card() {
    // V1, MRI lumbar without contrast: Usually appropriate 9/9. A pacemaker (Z95.0) may make
    // MRI unsafe: a warning whatever the rating, CT without contrast (8/9, the next usually
    // appropriate study when MRI is contraindicated in V1) suggested.
    let rec = with_condition(record("v1-osteoporotic-l1"), pacemaker());
    let ev = run(
        &rec,
        vec![order(
            "o-pm",
            "pat-v1a",
            "72148",
            "MRI lumbar spine without contrast",
        )],
        &Options::default(),
    );
    let o = common::order(&ev, "o-pm");
    assert_eq!(o.rating, Some(9));
    assert_eq!(pama_code(&ev, "o-pm").as_deref(), Some("appropriate"));
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Warning);
    assert!(c.summary.contains("safety check"), "{}", c.summary);
    let d = c.detail.as_deref().unwrap();
    // The code as the EHR prints it, with its dot, though the record sent "Z950".
    assert!(
        d.contains("**Safety:**") && d.contains("Z95.0") && d.contains("Condition/pm-1"),
        "{d}"
    );
    assert_eq!(suggested(o)[0], "CT_SPINE_WO");
    assert!(
        o.suggestions
            .iter()
            .all(|s| !s.procedure_id.starts_with("MRI"))
    );
    assert!(
        c.override_reasons
            .iter()
            .any(|r| r.code == "mitigate-risk-negative-outcome")
    );
    assert!(
        !c.override_reasons
            .iter()
            .any(|r| r.code == "prefers-alternative")
    );
    assert!(o.safety_notes[0].starts_with("The ordered study: device"));
}

#[test]
fn mr_unsafe_device_resource_and_contrast_allergy_resource_are_read() {
    let mut rec = record("v1-osteoporotic-l1");
    let dev = Device::parse(
        &json!({"resourceType": "Device", "id": "d1", "status": "active",
            "deviceName": [{"name": "Spinal cord stimulator", "type": "user-friendly-name"}],
            "safety": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.3.26.1.1", "code": "C106047",
                "display": "Magnetic Resonance Unsafe"}]}]})
        .to_string(),
        "test",
    )
    .unwrap();
    rec.devices = Availability::Available(vec![dev]);
    let ev = run(
        &rec,
        vec![order(
            "o-d",
            "pat-v1a",
            "72148",
            "MRI lumbar spine without contrast",
        )],
        &Options::default(),
    );
    let d = card(&ev, common::order(&ev, "o-d")).detail.clone().unwrap();
    assert!(d.contains("C106047") && d.contains("Device/d1"), "{d}");

    // An MR Conditional device is not a block.
    let mut rec = record("v1-osteoporotic-l1");
    let dev = Device::parse(
        &json!({"resourceType": "Device", "id": "d2", "status": "active",
            "safety": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.3.26.1.1", "code": "C106046"}]}]})
        .to_string(),
        "test",
    )
    .unwrap();
    rec.devices = Availability::Available(vec![dev]);
    let ev = run(
        &rec,
        vec![order(
            "o-d",
            "pat-v1a",
            "72148",
            "MRI lumbar spine without contrast",
        )],
        &Options::default(),
    );
    assert!(ev.response.cards.is_empty());

    // SNOMED CT 293637006 "Allergy to contrast media" as an AllergyIntolerance: CT with contrast
    // (3/9 in V1) gets the safety line, and CT with contrast is never suggested.
    let mut rec = record("v1-osteoporotic-l1");
    let a = AllergyIntolerance::parse(
        &json!({"resourceType": "AllergyIntolerance", "id": "a1",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "293637006",
                "display": "Allergy to contrast media"}]}})
        .to_string(),
        "test",
    )
    .unwrap();
    rec.allergies = Availability::Available(vec![a]);
    let ev = run(
        &rec,
        vec![order(
            "o-a",
            "pat-v1a",
            "72129",
            "CT thoracic spine with contrast",
        )],
        &Options::default(),
    );
    let o = common::order(&ev, "o-a");
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Warning);
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("AllergyIntolerance/a1")
    );
    assert!(!suggested(o).contains(&"CT_SPINE_W"));
}

#[test]
fn iodinated_contrast_with_egfr_below_30_is_a_safety_problem_gadolinium_is_not() {
    // eGFR 25 (v2 patient). CT lumbar with contrast: safety line; MRI with and without
    // contrast in the same patient: the study stands, with the group II note (ACR-NKF 2021).
    let ev = evaluate("v2-prostate-history-egfr25", "v2-ct-lumbar-w");
    let o = &ev.orders[0];
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(
        d.contains("**Safety:** iodinated contrast with eGFR 25"),
        "{d}"
    );
    let rec = record("v2-prostate-history-egfr25");
    let ev = run(
        &rec,
        vec![order(
            "o-g",
            "pat-v2b",
            "72158",
            "MRI lumbar spine without and with contrast",
        )],
        &Options::default(),
    );
    let o = common::order(&ev, "o-g");
    assert_eq!(o.category, Some(Category::UsuallyAppropriate));
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info, "no hazard, a note");
    let d = c.detail.as_deref().unwrap();
    assert!(d.contains("**Contrast:**") && d.contains("group II"), "{d}");
    assert!(!d.contains("**Safety:**"));
}

#[test]
fn child_with_an_appropriate_ct_gets_the_mri_switch() {
    // V1 child (14): CT thoracic without contrast is Usually appropriate (8/9, pediatric
    // ☢☢☢☢); MRI thoracic without contrast rates 9/9 with no radiation (O).
    let rec = record("v1-child");
    let orders = vec![order(
        "o-ct",
        "pat-v1c",
        "72128",
        "CT thoracic spine without contrast",
    )];
    let ev = run(&rec, orders.clone(), &Options::default());
    let o = common::order(&ev, "o-ct");
    assert_eq!(
        (o.rating, o.category),
        (Some(8), Some(Category::UsuallyAppropriate))
    );
    assert_eq!(pama_code(&ev, "o-ct").as_deref(), Some("appropriate"));
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(
        c.summary.contains(
            "for a child, MRI thoracic spine without IV contrast rates 9/9 with no radiation"
        ),
        "{}",
        c.summary
    );
    assert_eq!(suggested(o), ["MRI_SPINE_WO"]);
    let s = &c.suggestions[0];
    assert_eq!(s.actions.len(), 1);
    assert_eq!(s.actions[0].action_type, ActionType::Update);
    assert_eq!(
        s.actions[0].resource.as_ref().unwrap().as_value()["code"]["coding"][0]["code"],
        "72146"
    );
    assert!(c.links.iter().any(|l| l.label.contains("Back Pain-Child")));
    // Setting off: no card, as before.
    let off = Options {
        pediatric_radiation_cards: false,
        ..Options::default()
    };
    let ev = run(&rec, orders.clone(), &off);
    assert!(ev.response.cards.is_empty());
    // An adult with the same order: no card.
    let ev = run(
        &record("v1-osteoporotic-l1"),
        vec![order(
            "o-ct",
            "pat-v1a",
            "72128",
            "CT thoracic spine without contrast",
        )],
        &Options::default(),
    );
    assert!(ev.response.cards.is_empty());
}

#[test]
fn treatment_orders_get_treatment_override_reasons() {
    let ev = evaluate("v5-asymptomatic-osteoporotic", "v5-ablation");
    let c = &ev.response.cards[0];
    assert_eq!(c.indicator, Indicator::Warning);
    let codes: Vec<&str> = c.override_reasons.iter().map(|r| r.code.as_str()).collect();
    assert!(
        codes.contains(&"expert-contradicts") && codes.contains(&"prefers-alternative"),
        "{codes:?}"
    );
    assert!(
        !codes.contains(&"patient-contraindication") && !codes.contains(&"action-unsuccessful"),
        "{codes:?}"
    );
    assert!(c.override_reasons.iter().all(|r| r.display.is_some()));
}

#[test]
fn advanced_imaging_outside_the_guideline_is_rated_no_criteria_apply() {
    let rec = record("no-vcf-back-pain");
    let orders = vec![
        order("o-head", "p", "70450", "CT head without contrast"),
        order("o-lab", "p", "80053", "Comprehensive metabolic panel"),
    ];
    let ev = run(&rec, orders.clone(), &Options::default());
    assert_eq!(common::order(&ev, "o-head").outcome, Outcome::NotRecognized);
    assert_eq!(
        pama_code(&ev, "o-head").as_deref(),
        Some("no-criteria-apply")
    );
    assert_eq!(pama_code(&ev, "o-lab"), None, "not imaging: nothing");
    assert!(ev.response.cards.is_empty());
    let off = Options {
        rate_out_of_scope_imaging: false,
        ..Options::default()
    };
    let ev = run(&rec, orders, &off);
    assert!(ev.response.system_actions.is_empty());
}

#[test]
fn every_fixture_card_fits_the_point_of_order_budget() {
    // Every patient fixture with every order fixture: each card's detail stays within the
    // budget, names no internal document and ends with the one source line (check_detail via
    // check_invariants); ICD-10-CM codes are printed with their dot.
    let dir = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(repo().join(d))
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect();
        v.sort();
        v
    };
    let mut cards = 0;
    for p in dir("fixtures/patients") {
        let rec = record(&p);
        for o in dir("fixtures/orders") {
            for opts in [
                Options::default(),
                Options {
                    cards_for_appropriate: true,
                    ..Options::default()
                },
            ] {
                let ev = evaluate_with(Hook::OrderSign, &rec, &drafts(&o, None), &opts);
                for c in &ev.response.cards {
                    cards += 1;
                    let d = c.detail.as_deref().unwrap();
                    assert!(!d.contains("M8008") && !d.contains("M4854"), "{p} {o}: {d}");
                }
            }
        }
    }
    assert!(cards > 500, "{cards} cards checked");
}

#[test]
fn icd10cm_codes_sent_without_the_dot_are_printed_with_it() {
    // The EHR sent "M8008XA" (no dot); the clinician reads M80.08XA, as ICD-10-CM prints it.
    let rec = with_condition(
        record("no-vcf-back-pain"),
        json!({"resourceType": "Condition", "id": "nd-1",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M8008XA"}]}}),
    );
    let ev = run(
        &rec,
        vec![order(
            "o-nd",
            "p",
            "72149",
            "MRI lumbar spine with contrast",
        )],
        &Options::default(),
    );
    let o = common::order(&ev, "o-nd");
    assert_eq!(o.outcome, Outcome::Rated, "{o:#?}");
    let d = card(&ev, o).detail.clone().unwrap();
    let all = format!("{d} {:?}", o.assumptions);
    assert!(
        all.contains("M80.08XA") && !all.contains("M8008XA"),
        "{all}"
    );
}

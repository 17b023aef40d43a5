//! Golden cases: fixtures from `fixtures/patients` and `fixtures/orders`, evaluated with the
//! shipped knowledge base, a fixed clock and deterministic uuids. Every response is also checked
//! for the CDS Hooks rules and update integrity (`common::check_invariants`).

mod common;

use common::*;
use serde_json::Value;
use vcf_engine::cds::{ActionType, Indicator, SelectionBehavior};
use vcf_engine::evaluate::{Availability, Hook, Options, Outcome, PamaRating, SuggestionStyle};
use vcf_engine::knowledge::{Category, Region};

const CPT: &str = "http://www.ama-assn.org/go/cpt";
const LOINC: &str = "http://loinc.org";
const RADLEX: &str = "http://radlex.org";

fn code(system: &str, code: &str) -> String {
    format!("{system}|{code}")
}

/// Asserts a rated outcome: variant, rating, category, PAMA code.
fn assert_rated(
    ev: &vcf_engine::evaluate::Evaluation,
    id: &str,
    variant: &str,
    rating: u8,
    category: Category,
    pama: &str,
) {
    let o = order(ev, id);
    assert_eq!(o.outcome, Outcome::Rated, "{id}: {o:#?}");
    assert_eq!(o.chosen_variant.as_deref(), Some(variant), "{id}");
    assert_eq!(o.rating, Some(rating), "{id}");
    assert_eq!(o.category, Some(category), "{id}");
    assert_eq!(pama_code(ev, id).as_deref(), Some(pama), "{id}");
    assert!(o.consult_id.as_deref().unwrap().starts_with("urn:uuid:"));
}

fn has_assumption(o: &vcf_engine::evaluate::OrderEvaluation, text: &str) -> bool {
    o.assumptions.iter().any(|a| a.contains(text))
}

// ---------------------------------------------------------------------------------------------
// V1: new symptomatic VCF, no malignancy.
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_mri_lumbar_with_contrast_is_not_appropriate_mri_without_suggested() {
    let ev = evaluate("v1-osteoporotic-l1", "v1-mri-lumbar-w");
    assert_rated(
        &ev,
        "o-v1a-1",
        "V1",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v1a-1");
    let p = o.procedure.as_ref().unwrap();
    assert_eq!(p.procedure_id, "MRI_SPINE_W");
    assert_eq!(p.region, Region::Lumbar);
    assert_eq!(o.candidate_variants, ["V1"]);
    assert!(has_assumption(
        o,
        "no history of malignancy found in the problem list"
    ));
    assert_eq!(suggested(o), ["MRI_SPINE_WO", "CT_SPINE_WO"]);
    assert_eq!(
        o.suggestions[0].codes,
        [
            code(CPT, "72148"),
            code(LOINC, "30679-5"),
            code(RADLEX, "RPID541")
        ]
    );
    assert!(o.suggestions[0].recommended && !o.suggestions[1].recommended);

    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Warning);
    assert!(c.summary.contains("MRI lumbar spine with contrast"));
    assert!(c.summary.contains("Usually not appropriate (ACR 3/9)"));
    assert_eq!(c.selection_behavior, Some(SelectionBehavior::AtMostOne));
    assert_eq!(c.suggestions[0].is_recommended, Some(true));
    assert_eq!(c.suggestions[1].is_recommended, None);
    assert!(
        c.override_reasons
            .iter()
            .any(|r| r.code == "patient-contraindication")
    );
    assert!(
        c.links
            .iter()
            .any(|l| l.url == "https://doi.org/10.1016/j.jacr.2023.02.015")
    );
    let d = c.detail.as_deref().unwrap();
    for needle in [
        "**Usually not appropriate, 3/9** for MRI lumbar spine with IV contrast",
        "strength of evidence Strong",
        "no radiation",
        "M80.08XA",
        "MRI lumbar spine without IV contrast: 9/9, no radiation",
        "ACR Appropriateness Criteria, Management of VCF (2022), variant 1",
    ] {
        assert!(d.contains(needle), "detail lacks {needle:?}:\n{d}");
    }
    // Provenance is in the card's source and the audit record, not in the text.
    assert!(
        !d.contains("2026.11.1") && !d.contains("source confidence"),
        "{d}"
    );
    assert_eq!(c.source.topic.as_ref().unwrap().code, "V1");
    // Imaging order: imaging override reasons, no treatment ones.
    assert!(
        !c.override_reasons
            .iter()
            .any(|r| r.code == "prefers-alternative")
    );

    // Default (update style): the recommended suggestion is one update of the draft to MRI
    // lumbar without contrast, rated appropriate; nothing else of the order changes
    // (check_invariants compares every other element).
    let actions = &c.suggestions[0].actions;
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].action_type, ActionType::Update);
    let sr = actions[0].resource.as_ref().unwrap().as_value();
    assert_eq!(sr["id"], "o-v1a-1");
    assert_eq!(sr["code"]["coding"][0]["code"], "72148");
    assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "279039007");
    let pama = sr["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "http://fhir.org/argonaut/Extension/pama-rating")
        .unwrap();
    assert_eq!(
        pama["valueCodeableConcept"]["coding"][0]["code"],
        "appropriate"
    );
    assert_eq!(pama["valueCodeableConcept"]["coding"][2]["code"], "9");
    assert!(
        c.suggestions[0]
            .label
            .starts_with("Change to MRI lumbar spine without IV contrast")
    );

    // Replace style: the suggestion deletes the draft and creates MRI lumbar without contrast
    // for the same patient, encounter, requester and reasons.
    let opts = Options {
        suggestion_style: SuggestionStyle::Replace,
        ..Options::default()
    };
    let ev = evaluate_with(
        Hook::OrderSign,
        &record("v1-osteoporotic-l1"),
        &drafts("v1-mri-lumbar-w", None),
        &opts,
    );
    let c = card(&ev, order(&ev, "o-v1a-1"));
    let actions = &c.suggestions[0].actions;
    assert_eq!(actions[0].action_type, ActionType::Delete);
    assert_eq!(
        actions[0].resource_id.as_deref(),
        Some("ServiceRequest/o-v1a-1")
    );
    assert_eq!(actions[1].action_type, ActionType::Create);
    let sr = actions[1].resource.as_ref().unwrap().as_value();
    assert_eq!(sr["resourceType"], "ServiceRequest");
    assert_eq!(sr["status"], "draft");
    assert_eq!(sr["intent"], "order");
    assert_eq!(sr["subject"]["reference"], "Patient/pat-v1a");
    assert_eq!(sr["encounter"]["reference"], "Encounter/enc-1");
    assert_eq!(sr["requester"]["reference"], "Practitioner/prac-1");
    assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "279039007");
    assert_eq!(sr["reasonReference"][0]["reference"], "Condition/v1a-c1");
    assert_eq!(sr["category"][0]["coding"][0]["code"], "363679005");
    assert_eq!(sr["code"]["coding"][0]["code"], "72148");
    assert_eq!(sr["code"]["coding"][0]["system"], CPT);
    assert_eq!(sr["code"]["coding"].as_array().unwrap().len(), 3);
    assert_ne!(sr["id"], "o-v1a-1");
}

#[test]
fn v1_ct_thoracic_without_contrast_is_appropriate_quietly() {
    let ev = evaluate("v1-osteoporotic-l1", "v1-ct-thoracic-wo");
    assert_rated(
        &ev,
        "o-v1a-2",
        "V1",
        8,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    assert!(ev.response.cards.is_empty());
    assert_eq!(ev.response.system_actions.len(), 1);
    // Configurable: a card for appropriate orders too.
    let opts = Options {
        cards_for_appropriate: true,
        ..Options::default()
    };
    let ev = evaluate_with(
        Hook::OrderSign,
        &record("v1-osteoporotic-l1"),
        &drafts("v1-ct-thoracic-wo", None),
        &opts,
    );
    let o = order(&ev, "o-v1a-2");
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(c.suggestions.is_empty());
    assert!(
        c.detail.as_deref().unwrap().contains("☢☢☢ 1-10 mSv"),
        "thoracic CT RRL"
    );
}

#[test]
fn v1_snomed_fracture_loinc_order_entered_in_error_and_refuted_are_ignored() {
    let ev = evaluate("v1-snomed-thoracic-eie", "v1-loinc-mri-thoracic-wwo");
    // C50.911 entered-in-error: no malignancy, so V1 (not V2).
    assert_rated(
        &ev,
        "o-v1b-1",
        "V1",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v1b-1");
    assert_eq!(o.procedure.as_ref().unwrap().region, Region::Thoracic);
    assert_eq!(o.order_codes, [code(LOINC, "24981-3")]);
    assert_eq!(suggested(o), ["MRI_SPINE_WO", "CT_SPINE_WO"]);
    assert_eq!(
        o.suggestions[0].codes,
        [
            code(CPT, "72146"),
            code(LOINC, "36532-0"),
            code(RADLEX, "RPID542")
        ]
    );
    // Z95.0 refuted: MRI is not withheld.
    assert!(
        o.safety_notes.iter().all(|n| !n.contains("MRI")),
        "{:?}",
        o.safety_notes
    );
}

#[test]
fn v1_ct_with_contrast_notes_the_contrast_allergy() {
    let ev = evaluate("v1-snomed-thoracic-eie", "v1-ct-thoracic-w-allergy");
    assert_rated(
        &ev,
        "o-v1b-2",
        "V1",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v1b-2");
    assert_eq!(o.procedure.as_ref().unwrap().procedure_id, "CT_SPINE_W");
    assert!(
        o.safety_notes.iter().any(|n| n.contains("Z91.041")),
        "{:?}",
        o.safety_notes
    );
    assert!(card(&ev, o).detail.as_deref().unwrap().contains("Z91.041"));
}

#[test]
fn v1_child_gets_pediatric_radiation_and_the_seventh_character_assumption() {
    let ev = evaluate("v1-child", "v1-child-ct-thoracic-w");
    assert_rated(
        &ev,
        "o-v1c-1",
        "V1",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v1c-1");
    assert!(has_assumption(o, "7th character 'A'"));
    assert_eq!(suggested(o), ["MRI_SPINE_WO", "CT_SPINE_WO"]);
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(d.contains("pediatric level, age 14"), "{d}");
    assert!(d.contains("ALARA"));
    assert!(
        d.contains("☢☢☢☢ 3-10 mSv [ped]"),
        "pediatric CT level of the alternative: {d}"
    );
}

// ---------------------------------------------------------------------------------------------
// V2: new symptomatic VCF, history of malignancy.
// ---------------------------------------------------------------------------------------------

#[test]
fn v2_resolved_cancer_counts_ct_with_contrast_not_appropriate() {
    let ev = evaluate("v2-breast-cancer-resolved", "v2-ct-lumbar-w");
    assert_rated(
        &ev,
        "o-v2a-1",
        "V2",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v2a-1");
    assert_eq!(
        suggested(o),
        ["MRI_SPINE_WWO", "CT_SPINE_WO", "MRI_SPINE_WO"]
    );
    assert_eq!(o.suggestions[0].codes[0], code(CPT, "72158"));
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(
        d.contains("C50.911"),
        "the resolved cancer is the evidence: {d}"
    );
}

#[test]
fn v2_bone_scan_may_be_appropriate_and_egfr_25_withholds_gadolinium() {
    let ev = evaluate("v2-prostate-history-egfr25", "v2-bone-scan");
    assert_rated(
        &ev,
        "o-v2b-1",
        "V2",
        5,
        Category::MayBeAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v2b-1");
    assert_eq!(o.procedure.as_ref().unwrap().region, Region::Body);
    // ACR-NKF 2021 (research pack §6.1): a group II gadolinium agent is not withheld at eGFR
    // < 30, so MRI w/wo (9) is suggested, naming the group II agent; thoracic codes from the
    // order's bodySite.
    assert_eq!(
        suggested(o),
        ["MRI_SPINE_WWO", "CT_SPINE_WO", "MRI_SPINE_WO"]
    );
    assert_eq!(o.suggestions[0].codes[0], code(CPT, "72157"));
    assert!(o.suggestions[0].label.contains("group II gadolinium"));
    assert!(!o.suggestions[1].label.contains("group II"));
    assert!(o.safety_notes.iter().any(|n| {
        n.contains("MRI spine area of interest without and with IV contrast")
            && n.contains("eGFR 25")
            && n.contains("group II")
    }));
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(c.override_reasons.is_empty());
    assert!(c.detail.as_deref().unwrap().contains("eGFR 25"));
    // A bone scan (whole body) keeps its purpose: the spine study is an additional order.
    for sug in &c.suggestions {
        assert!(
            sug.actions
                .iter()
                .all(|a| a.action_type == ActionType::Create),
            "{sug:?}"
        );
        assert!(sug.label.starts_with("Also order"), "{}", sug.label);
    }
}

// ---------------------------------------------------------------------------------------------
// V3: new back pain, previously treated VCF or multiple VCFs.
// ---------------------------------------------------------------------------------------------

#[test]
fn v3_multiple_old_fractures_adult_prefers_acr_order() {
    let ev = evaluate("v3-multiple-old", "v3-mri-lumbar-w");
    assert_rated(
        &ev,
        "o-v3a-1",
        "V3",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v3a-1");
    assert_eq!(o.candidate_variants, ["V3"]);
    // CT w/o and MRI w/o are both 8: adults keep the ACR table order.
    assert_eq!(suggested(o), ["CT_SPINE_WO", "MRI_SPINE_WO"]);
}

#[test]
fn v3_child_prefers_the_lower_radiation_alternative() {
    let ev = evaluate("v3-child-steroid", "v3-child-ct-lumbar-w");
    assert_rated(
        &ev,
        "o-v3c-1",
        "V3",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v3c-1");
    assert_eq!(suggested(o), ["MRI_SPINE_WO", "CT_SPINE_WO"]);
    let c = card(&ev, o);
    assert!(
        c.suggestions[0]
            .label
            .contains("MRI lumbar spine without IV contrast")
    );
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("pediatric level, age 15")
    );
}

#[test]
fn v3_prior_kyphoplasty_bone_scan_and_mri() {
    let ev = evaluate("v3-prior-kyphoplasty", "v3-bone-scan-kypho");
    assert_rated(
        &ev,
        "o-v3b-1",
        "V3",
        5,
        Category::MayBeAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v3b-1");
    assert_eq!(suggested(o), ["CT_SPINE_WO", "MRI_SPINE_WO"]);
    assert_eq!(
        o.suggestions[1].codes[0],
        code(CPT, "72148"),
        "lumbar from bodySite"
    );
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(
        d.contains("Procedure/v3b-p1"),
        "prior kyphoplasty is evidence: {d}"
    );

    let ev = evaluate("v3-prior-kyphoplasty", "v3-mri-thoracic-wo-kypho");
    assert_rated(
        &ev,
        "o-v3b-2",
        "V3",
        8,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    assert!(ev.response.cards.is_empty());
}

// ---------------------------------------------------------------------------------------------
// V4: asymptomatic VCF, history of malignancy.
// ---------------------------------------------------------------------------------------------

#[test]
fn v4_myeloma_mri_with_contrast() {
    let ev = evaluate("v4-myeloma-asymptomatic", "v4-mri-thoracic-w");
    assert_rated(
        &ev,
        "o-v4a-1",
        "V4",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v4a-1");
    assert!(has_assumption(o, "assumes the fracture is asymptomatic"));
    assert_eq!(
        suggested(o),
        ["MRI_SPINE_WWO", "CT_SPINE_WO", "MRI_SPINE_WO"]
    );
    assert_eq!(o.suggestions[0].codes[0], code(CPT, "72157"));
}

#[test]
fn v4_pet_ct_with_pacemaker_withholds_mri() {
    let ev = evaluate("v4-lung-history-pacemaker", "v4-pet-ct");
    assert_rated(
        &ev,
        "o-v4b-1",
        "V4",
        5,
        Category::MayBeAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v4b-1");
    assert_eq!(suggested(o), ["CT_SPINE_WO"]);
    assert_eq!(o.suggestions[0].codes[0], code(CPT, "72131"));
    // Both MRI alternatives are withheld for the pacemaker, named together on one line.
    let pacemaker: Vec<_> = o
        .safety_notes
        .iter()
        .filter(|n| n.contains("Z95.0"))
        .collect();
    assert_eq!(pacemaker.len(), 1, "{pacemaker:?}");
    assert!(
        pacemaker[0].contains("MRI spine area of interest without and with IV contrast")
            && pacemaker[0].contains("MRI spine area of interest without IV contrast"),
        "{pacemaker:?}"
    );
    assert!(o.suggestions[0].recommended);
}

// ---------------------------------------------------------------------------------------------
// V5-V9: treatments.
// ---------------------------------------------------------------------------------------------

#[test]
fn v5_ablation_for_asymptomatic_osteoporotic_fracture() {
    let ev = evaluate("v5-asymptomatic-osteoporotic", "v5-ablation");
    assert_rated(
        &ev,
        "o-v5-1",
        "V5",
        1,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v5-1");
    assert!(has_assumption(o, "assumes the fracture is asymptomatic"));
    assert_eq!(suggested(o), ["MEDICAL_MGMT"]);
    let c = card(&ev, o);
    let s = &c.suggestions[0];
    assert_eq!(
        s.label,
        "Cancel order: medical management only (Usually appropriate, 9/9)"
    );
    assert_eq!(s.actions.len(), 1);
    assert_eq!(s.actions[0].action_type, ActionType::Delete);
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("Relative radiation")
            .not()
    );
}

trait Not {
    fn not(self) -> bool;
}
impl Not for bool {
    fn not(self) -> bool {
        !self
    }
}

#[test]
fn v5_radiation_oncology_referral() {
    let ev = evaluate("v5-asymptomatic-osteoporotic", "v5-radonc-referral");
    assert_rated(
        &ev,
        "o-v5-2",
        "V5",
        1,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v5-2");
    let p = o.procedure.as_ref().unwrap();
    assert_eq!(p.procedure_id, "RADONC_CONSULT");
    assert_eq!(
        p.matched_code,
        "http://nucc.org/provider-taxonomy|2085R0001X"
    );
    assert!(
        card(&ev, o)
            .summary
            .starts_with("Radiation oncology consultation")
    );
}

/// Issue 8: V6 rates augmentation 8 only "with bone marrow edema or intravertebral cleft" and V8
/// only with "worsening pain, deformity, or pulmonary dysfunction" (research §1.2); neither is on
/// this record, so no variant may fit and the order is not rated appropriate.
#[test]
fn v6_kyphoplasty_without_mri_evidence_is_not_rated() {
    let ev = evaluate("v6-symptomatic-osteoporotic", "v6-kyphoplasty");
    let o = order(&ev, "o-v6-1");
    assert_ne!(o.outcome, Outcome::Rated, "{o:#?}");
    assert_eq!(o.rating, None);
    assert_eq!(pama_code(&ev, "o-v6-1"), None);
    assert_eq!(o.candidate_variants, ["V6", "V8"]);
    assert!(
        o.deciding_facts
            .contains(&"marrow_edema_or_cleft".to_string()),
        "{o:#?}"
    );
}

#[test]
fn v6_radionuclide_therapy_not_appropriate() {
    let ev = evaluate("v6-symptomatic-osteoporotic", "v6-radionuclide");
    assert_rated(
        &ev,
        "o-v6-2",
        "V6",
        1,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v6-2");
    assert_eq!(suggested(o), ["MEDICAL_MGMT", "PVA"]);
    // PVA from an order without a level: the generic (spine) codes, one per system.
    assert_eq!(
        o.suggestions[1].codes,
        [code(LOINC, "86993-3"), code(RADLEX, "RPID6560")]
    );
}

#[test]
fn v7_kyphoplasty_after_prior_vertebroplasty() {
    let ev = evaluate("v7-prior-vertebroplasty", "v7-kyphoplasty");
    assert_rated(
        &ev,
        "o-v7a-1",
        "V7",
        8,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v7a-1");
    assert_eq!(o.procedure.as_ref().unwrap().procedure_id, "PVA");
    assert_eq!(o.procedure.as_ref().unwrap().region, Region::Lumbar);
    assert!(o.candidate_variants.contains(&"V7".to_owned()));
}

#[test]
fn v7_cryoablation_after_fusion() {
    let ev = evaluate("v7-prior-fusion", "v7-cryoablation");
    assert_rated(
        &ev,
        "o-v7b-1",
        "V7",
        1,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v7b-1");
    assert_eq!(suggested(o), ["PVA", "MEDICAL_MGMT"]);
    assert!(card(&ev, o).detail.as_deref().unwrap().contains("Z98.1"));
}

#[test]
fn v8_vertebroplasty_with_coded_kyphosis() {
    let ev = evaluate("v8-kyphosis", "v8-vertebroplasty");
    assert_rated(
        &ev,
        "o-v8a-1",
        "V8",
        8,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v8a-1");
    assert_eq!(
        o.procedure.as_ref().unwrap().region,
        Region::CervicalThoracic
    );
}

#[test]
fn v8_radionuclide_with_loss_of_height_suggests_pva_and_surgical_referral() {
    let ev = evaluate("v8-loss-of-height", "v8-radionuclide");
    assert_rated(
        &ev,
        "o-v8b-1",
        "V8",
        1,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    let o = order(&ev, "o-v8b-1");
    assert_eq!(suggested(o), ["PVA", "SURGICAL_CONSULT"]);
    let c = card(&ev, o);
    let referral = c.suggestions[1].actions[1]
        .resource
        .as_ref()
        .unwrap()
        .as_value();
    assert_eq!(referral["category"][0]["coding"][0]["code"], "3457005");
    assert_eq!(referral["performerType"]["coding"][0]["code"], "207XS0117X");
    assert_eq!(referral["code"]["text"], "Surgical Consultation");
}

/// Issue 8: V9 is "Pathological VCF with ongoing or increasing mechanical pain" (research §1.2);
/// mechanical pain has no code (§4.3) and is not stated on this record, so the referral (8 in V9)
/// is not rated appropriate on an assumption.
#[test]
fn v9_radiation_oncology_referral_needs_mechanical_pain() {
    let ev = evaluate("v9-lung-metastases", "v9-radonc-referral");
    let o = order(&ev, "o-v9a-1");
    assert_ne!(o.outcome, Outcome::Rated, "{o:#?}");
    assert_eq!(pama_code(&ev, "o-v9a-1"), None);
    assert_eq!(o.candidate_variants, ["V9"]);
    assert!(o.deciding_facts.contains(&"mechanical_pain".to_string()));
}

/// Radionuclide therapy is 4/9 (May be appropriate) in V9 only; V9 needs mechanical pain, which
/// this record does not show (issue 8), so it is not rated and the card names the finding.
#[test]
fn v9_radionuclide_needs_mechanical_pain() {
    let ev = evaluate("v9-myeloma-no-report", "v9-radionuclide");
    let o = order(&ev, "o-v9b-1");
    assert_eq!(o.outcome, Outcome::Ambiguous, "{o:#?}");
    assert_eq!(pama_code(&ev, "o-v9b-1"), None);
    assert_eq!(o.deciding_facts, ["mechanical_pain"]);
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(c.summary.contains("mechanical pain (V9)"), "{}", c.summary);
    // Not marrow edema: no MRI suggestion.
    assert!(c.suggestions.is_empty());
}

/// The same patient with an MRI report whose clinical history states "ongoing mechanical back
/// pain": V9, May be appropriate 4/9, with the better-rated V9 options suggested.
#[test]
fn v9_radionuclide_with_mechanical_pain_reported_is_rated() {
    let ev = evaluate("v9-myeloma", "v9-radionuclide");
    assert_rated(
        &ev,
        "o-v9b-1",
        "V9",
        4,
        Category::MayBeAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v9b-1");
    assert_eq!(
        suggested(o),
        [
            "RADONC_CONSULT",
            "SURGICAL_CONSULT",
            "ABLATION_SPINE",
            "PVA"
        ]
    );
    let abl = &o.suggestions[2];
    assert_eq!(
        abl.codes,
        [
            code(CPT, "20982"),
            code(LOINC, "87176-4"),
            code(RADLEX, "RPID6104")
        ]
    );
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(c.summary.contains("May be appropriate (ACR 4/9)"));
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("report phrase \"mechanical back pain\" (DiagnosticReport/v9-r1)"),
        "{:?}",
        c.detail
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 8: ratings grounded in evidence (V6 vertebral augmentation and the MRI report).
// ---------------------------------------------------------------------------------------------

/// Kyphoplasty for an acute osteoporotic L1 fracture with back pain and no MRI: V6 needs
/// "bone marrow edema or intravertebral cleft" and V8 "worsening pain, deformity, or pulmonary
/// dysfunction" (research §1.2); neither is shown, so no rating, an info card naming the finding
/// and the variant, and a suggestion to order MRI without contrast (the study that shows edema).
#[test]
fn kyphoplasty_without_mri_names_the_finding_and_suggests_mri() {
    let ev = evaluate("v6-symptomatic-osteoporotic", "v6-kyphoplasty");
    let o = order(&ev, "o-v6-1");
    assert_eq!(o.outcome, Outcome::Ambiguous);
    assert_eq!(o.rating, None);
    assert!(ev.response.system_actions.is_empty(), "no rating action");
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(
        c.summary.contains("marrow edema or cleft on MRI (V6)"),
        "{}",
        c.summary
    );
    let detail = c.detail.as_deref().unwrap();
    assert!(detail.contains("V6 needs bone marrow edema or intravertebral cleft on MRI (8/9)"));
    assert!(detail.contains("V8 needs worsening pain"));
    assert_eq!(suggested(o), ["MRI_SPINE_WO"]);
    // The MRI is added next to the draft (lumbar, from CPT 22514): create only, no delete.
    assert_eq!(c.suggestions.len(), 1);
    let s = &c.suggestions[0];
    assert!(
        s.label
            .starts_with("Order MRI lumbar spine without IV contrast first")
    );
    assert!(
        s.actions
            .iter()
            .all(|a| a.action_type == ActionType::Create)
    );
    assert!(o.suggestions[0].codes.contains(&code(CPT, "72148")));
}

/// The same patient with an MRI report "Acute L1 fracture with marrow edema on STIR" (text/plain
/// presentedForm): V6, 8/9 Usually appropriate, and the report phrase is the evidence on the card
/// and in the audit record's facts.
#[test]
fn kyphoplasty_with_mri_edema_is_v6_appropriate_with_the_report_phrase() {
    let ev = evaluate("v6-mri-edema", "v6-kyphoplasty");
    assert_rated(
        &ev,
        "o-v6-1",
        "V6",
        8,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    let o = order(&ev, "o-v6-1");
    let c = card(&ev, o);
    let detail = c.detail.as_deref().unwrap();
    assert!(
        detail.contains("report phrase \"marrow edema\" at L1 (DiagnosticReport/v6m-r1)"),
        "{detail}"
    );
    // Report text never reaches the card beyond the matched phrase.
    assert!(!detail.contains("IMPRESSION"));
    // The audit record carries the report reference and the matched phrase.
    assert!(
        o.assumptions
            .iter()
            .any(|a| a.starts_with("read from report text")
                && a.contains("DiagnosticReport/v6m-r1: report phrase \"marrow edema\" at L1")),
        "{:?}",
        o.assumptions
    );
    let audit = serde_json::to_string(o).unwrap();
    assert!(
        !audit.contains("STIR."),
        "no report sentence in the audit record"
    );
}

/// Marrow edema counts only from MRI (issue 8): a CT report's "marrow edema" leaves the
/// finding unknown and the order unrated.
#[test]
fn marrow_edema_on_ct_does_not_count() {
    let ev = evaluate("v6-ct-edema", "v6-kyphoplasty");
    let o = order(&ev, "o-v6-1");
    assert_eq!(o.outcome, Outcome::Ambiguous);
    let c = card(&ev, o);
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("counts only from MRI")
    );
}

/// "Marrow edema cannot be excluded": uncertain, so unknown (not rated).
#[test]
fn uncertain_edema_is_unknown() {
    let ev = evaluate("v6-mri-possible-edema", "v6-kyphoplasty");
    let o = order(&ev, "o-v6-1");
    assert_eq!(o.outcome, Outcome::Ambiguous);
    let c = card(&ev, o);
    assert!(c.detail.as_deref().unwrap().contains("as uncertain"));
    // A spine MRI is on record: no MRI suggestion.
    assert!(c.suggestions.is_empty());
}

/// "without marrow edema" on MRI: V6 is excluded (edema absent); V8 alone remains and rests on
/// unshown findings, so augmentation is still not rated.
#[test]
fn negated_edema_excludes_v6() {
    let ev = evaluate("v6-mri-no-edema", "v6-kyphoplasty");
    let o = order(&ev, "o-v6-1");
    assert_eq!(o.candidate_variants, ["V8"]);
    assert_eq!(o.outcome, Outcome::Ambiguous);
}

// ---------------------------------------------------------------------------------------------
// Outside the variants.
// ---------------------------------------------------------------------------------------------

#[test]
fn high_energy_trauma_is_out_of_scope() {
    let ev = evaluate("trauma-l1-wedge", "trauma-ct-lumbar-wo");
    let o = order(&ev, "o-tr-1");
    assert_eq!(o.outcome, Outcome::OutOfScope);
    assert_eq!(o.pama_rating, Some(PamaRating::NoCriteriaApply));
    assert_eq!(
        pama_code(&ev, "o-tr-1").as_deref(),
        Some("no-criteria-apply")
    );
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert!(c.summary.contains("Acute Spinal Trauma"), "{}", c.summary);
    assert!(c.detail.as_deref().unwrap().contains("S32.010A"));
}

#[test]
fn no_vcf_gets_no_criteria_apply_and_no_card() {
    let ev = evaluate("no-vcf-back-pain", "no-vcf-mri-lumbar-wo");
    let o = order(&ev, "o-nv-1");
    assert_eq!(o.outcome, Outcome::NoVcf);
    assert_eq!(
        pama_code(&ev, "o-nv-1").as_deref(),
        Some("no-criteria-apply")
    );
    assert!(ev.response.cards.is_empty());
}

#[test]
fn old_single_fracture_fits_no_variant_and_names_low_back_pain() {
    let ev = evaluate("old-single-vcf", "old-vcf-mri-lumbar-wo");
    let o = order(&ev, "o-old-1");
    assert_eq!(o.outcome, Outcome::NoVariant);
    assert_eq!(
        pama_code(&ev, "o-old-1").as_deref(),
        Some("no-criteria-apply")
    );
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(d.contains("Low Back Pain"), "{d}");
    assert!(d.contains("requires the fracture is new"));
}

#[test]
fn ambiguous_symptom_status_names_the_deciding_fact_and_gives_no_rating() {
    let ev = evaluate("ambiguous-prostate-no-pain", "ambiguous-mri-lumbar-w");
    let o = order(&ev, "o-amb-1");
    assert_eq!(o.outcome, Outcome::Ambiguous);
    assert_eq!(o.candidate_variants, ["V2", "V4"]);
    assert_eq!(o.deciding_facts, ["symptomatic"]);
    assert_eq!(o.pama_rating, None);
    assert!(
        ev.response.system_actions.is_empty(),
        "no rating without enough information"
    );
    let c = card(&ev, o);
    assert_eq!(c.indicator, Indicator::Info);
    assert_eq!(
        c.summary,
        "MRI lumbar spine with contrast: ACR rating depends on whether the fracture is symptomatic"
    );
    let d = c.detail.as_deref().unwrap();
    assert!(
        d.contains("May be appropriate (Disagreement)**, 5/9"),
        "{d}"
    );
    assert!(d.contains("Usually not appropriate**, 3/9"), "{d}");
    // Suggestions only where Usually appropriate in both scenarios.
    assert_eq!(
        suggested(o),
        ["MRI_SPINE_WWO", "CT_SPINE_WO", "MRI_SPINE_WO"]
    );

    // Same patient, MRI w/wo: 9 in both scenarios, so rated.
    let ev = evaluate("ambiguous-prostate-no-pain", "ambiguous-mri-lumbar-wwo");
    assert_rated(
        &ev,
        "o-amb-2",
        "V2",
        9,
        Category::UsuallyAppropriate,
        "appropriate",
    );
}

#[test]
fn overlapping_variants_without_a_deciding_fact() {
    // New symptomatic fracture plus an older one at another level: V1 and V3 both fit.
    let mut rec = record("v1-osteoporotic-l1");
    let Availability::Available(conds) = &mut rec.conditions else {
        unreachable!()
    };
    conds.push(
        vcf_engine::fhir::FhirResource::parse(
            r#"{"resourceType":"Condition","id":"extra","code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"M48.54XS"}]},"bodySite":[{"text":"T9 vertebra"}],"onsetDateTime":"2024-02-01"}"#,
            "c",
        )
        .unwrap(),
    );
    let orders = drafts("ambiguous-mri-lumbar-wwo", None);
    let ev = evaluate_with(Hook::OrderSign, &rec, &orders, &Options::default());
    let o = order(&ev, "o-amb-2");
    assert_eq!(o.outcome, Outcome::Ambiguous);
    assert_eq!(o.candidate_variants, ["V1", "V3"]);
    assert!(o.deciding_facts.is_empty());
    assert!(card(&ev, o).summary.contains("overlapping"));
}

#[test]
fn unavailable_procedures_make_prior_augmentation_decide() {
    let mut rec = record("v1-osteoporotic-l1");
    rec.procedures = Availability::Unavailable("FHIR server timed out".into());
    rec.patient = Availability::Unavailable("no Patient in prefetch".into());
    let orders = drafts("ambiguous-mri-lumbar-wwo", None);
    let ev = evaluate_with(Hook::OrderSign, &rec, &orders, &Options::default());
    let o = order(&ev, "o-amb-2");
    assert_eq!(o.outcome, Outcome::Ambiguous);
    assert_eq!(o.deciding_facts, ["prior_vertebral_augmentation"]);
    assert!(has_assumption(
        o,
        "procedure history could not be retrieved (FHIR server timed out)"
    ));
    assert!(has_assumption(o, "adult patient assumed"));
    let d = card(&ev, o).detail.clone().unwrap();
    assert!(d.contains("V1") && d.contains("V3"), "{d}");
}

#[test]
fn unavailable_conditions_give_no_rating() {
    let mut rec = record("v1-osteoporotic-l1");
    rec.conditions = Availability::Unavailable("prefetch conditions absent".into());
    let orders = drafts("v1-ct-thoracic-wo", None);
    // The radiograph report's conclusion code still shows the fracture; malignancy, symptoms
    // and multiplicity are unknown, so V1-V4 all fit (CT w/o: 8, 7, 8, 8) and the lowest
    // rating is given.
    let ev = evaluate_with(Hook::OrderSign, &rec, &orders, &Options::default());
    assert_rated(
        &ev,
        "o-v1a-2",
        "V2",
        7,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    assert_eq!(
        order(&ev, "o-v1a-2").candidate_variants,
        ["V1", "V2", "V3", "V4"]
    );
    // Without the report nothing shows a fracture: no rating, and the card says why.
    rec.reports = Availability::Unavailable("prefetch reports absent".into());
    let ev = evaluate_with(Hook::OrderSign, &rec, &orders, &Options::default());
    let o = order(&ev, "o-v1a-2");
    assert_eq!(o.outcome, Outcome::NoVcf);
    assert_eq!(o.pama_rating, None);
    assert!(ev.response.system_actions.is_empty());
    assert!(card(&ev, o).summary.contains("could not be retrieved"));
}

#[test]
fn mixed_bundle_on_order_sign() {
    let ev = evaluate("v1-osteoporotic-l1", "mixed-bundle-v1");
    assert_rated(
        &ev,
        "o-mix-1",
        "V1",
        3,
        Category::UsuallyNotAppropriate,
        "not-appropriate",
    );
    assert_rated(
        &ev,
        "o-mix-2",
        "V1",
        8,
        Category::UsuallyAppropriate,
        "appropriate",
    );
    assert_rated(
        &ev,
        "o-mix-3",
        "V1",
        5,
        Category::MayBeAppropriate,
        "appropriate",
    );
    // Chest CT angiogram: not this guideline, but the patient has a VCF.
    let cta = order(&ev, "o-mix-4");
    assert_eq!(cta.outcome, Outcome::NotRecognized);
    assert_eq!(
        pama_code(&ev, "o-mix-4").as_deref(),
        Some("no-criteria-apply")
    );
    let med = order(&ev, "m-mix-5");
    assert_eq!(med.outcome, Outcome::NotEvaluated);
    assert_eq!(ev.response.system_actions.len(), 4);
    assert_eq!(ev.response.cards.len(), 2);
    assert_eq!(ev.response.cards[0].indicator, Indicator::Warning);
    assert_eq!(ev.response.cards[1].indicator, Indicator::Info);
    // Bone scan without a region: generic spine codes.
    assert_eq!(
        order(&ev, "o-mix-3").suggestions[0].codes,
        [code(LOINC, "36531-2")]
    );
    // Legacy copy for the sandbox PAMA screen.
    let json = serde_json::to_value(&ev.response).unwrap();
    let legacy = &json["extension"]["systemActions"];
    assert_eq!(legacy.as_array().unwrap().len(), 4);
    let ids: std::collections::HashSet<_> = ev
        .orders
        .iter()
        .filter_map(|o| o.consult_id.clone())
        .collect();
    assert_eq!(ids.len(), 4, "consult ids are unique");
}

#[test]
fn order_select_rates_only_the_selected_order() {
    let orders = drafts("mixed-bundle-v1", Some(&["ServiceRequest/o-mix-2"]));
    let ev = evaluate_with(
        Hook::OrderSelect,
        &record("v1-osteoporotic-l1"),
        &orders,
        &Options::default(),
    );
    assert_eq!(ev.response.system_actions.len(), 1);
    assert_eq!(order(&ev, "o-mix-1").outcome, Outcome::NotEvaluated);
    assert_eq!(order(&ev, "o-mix-2").outcome, Outcome::Rated);
    assert!(ev.response.cards.is_empty());
}

#[test]
fn options_legacy_off_and_qcdsm() {
    let opts = Options {
        legacy_system_actions: false,
        qcdsm_consulted: Some("G1011".into()),
        ..Options::default()
    };
    let ev = evaluate_with(
        Hook::OrderSign,
        &record("v1-osteoporotic-l1"),
        &drafts("v1-ct-thoracic-wo", None),
        &opts,
    );
    assert!(
        serde_json::to_value(&ev.response)
            .unwrap()
            .get("extension")
            .is_none()
    );
    let res = ev.response.system_actions[0]
        .resource
        .as_ref()
        .unwrap()
        .as_value();
    let ext = res["extension"].as_array().unwrap();
    assert!(ext.iter().any(|e| e["url"]
        == "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted"
        && e["valueString"] == "G1011"));
    let auc = ext
        .iter()
        .find(|e| e["url"] == "http://fhir.org/argonaut/Extension/pama-rating-auc-applied")
        .unwrap();
    assert_eq!(
        auc["valueUri"],
        "https://doi.org/10.1016/j.jacr.2023.02.015"
    );
    let rating = &ext[0]["valueCodeableConcept"]["coding"];
    assert_eq!(rating[1]["code"], "usually-appropriate");
    assert_eq!(rating[2]["code"], "8");
    assert_eq!(
        ev.response.system_actions[0].description,
        "Attach ACR appropriateness rating to ServiceRequest/o-v1a-2"
    );
}

#[test]
fn multi_region_and_unspecified_drafts() {
    let ev = evaluate("v1-osteoporotic-l1", "whole-spine-ct-wwo");
    let o = order(&ev, "o-ws-1");
    assert_eq!(o.procedure.as_ref().unwrap().region, Region::ThoracicLumbar);
    // MRI has no thoracic+lumbar code: one create per region.
    let c = card(&ev, o);
    let creates: Vec<&Value> = c.suggestions[0]
        .actions
        .iter()
        .filter(|a| a.action_type == ActionType::Create)
        .map(|a| a.resource.as_ref().unwrap().as_value())
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["code"]["coding"][0]["code"], "72146");
    assert_eq!(creates[1]["code"]["coding"][0]["code"], "72148");
    assert_eq!(o.suggestions[1].codes, [code(LOINC, "83310-3")]);

    let ev = evaluate("v1-osteoporotic-l1", "spine-unspecified-ct-w");
    let o = order(&ev, "o-gen-1");
    assert_eq!(
        o.procedure.as_ref().unwrap().region,
        Region::SpineUnspecified
    );
    assert_eq!(o.suggestions[0].codes, [code(LOINC, "36531-2")]);
}

#[test]
fn only_non_service_requests_give_an_empty_response() {
    let orders: Vec<_> = drafts("mixed-bundle-v1", None)
        .into_iter()
        .filter(|d| d.resource_type != "ServiceRequest")
        .collect();
    let ev = evaluate_with(
        Hook::OrderSign,
        &record("v1-osteoporotic-l1"),
        &orders,
        &Options::default(),
    );
    assert_eq!(
        serde_json::to_string(&ev.response).unwrap(),
        r#"{"cards":[]}"#
    );
}

//! The compiled-in knowledge file: it loads, every validation rule rejects a broken copy, and all
//! 71 rating rows agree with the ACR rating tables carried in
//! `fixtures/reference/acr-vcf-ratings.toml` (source in `fixtures/reference/README.md`).

use std::collections::{BTreeMap, BTreeSet};
use vcf_engine::knowledge::{
    self, Category, CodeMatcher, Knowledge, KnowledgeError, OrderCode, ProcedureKind,
    REQUIRED_VALUE_SETS, Region, Safety,
};

const REFERENCE_TABLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/reference/acr-vcf-ratings.toml"
);

/// A change applied to a copy of the default knowledge.
type Mutation = Box<dyn FnOnce(&mut Knowledge)>;

fn loaded() -> Knowledge {
    knowledge::load_default().expect("the compiled-in knowledge file loads and validates")
}

/// Validation problems after applying `change` to a fresh copy of the default knowledge.
fn problems_after(change: impl FnOnce(&mut Knowledge)) -> Vec<String> {
    let mut kb = loaded();
    change(&mut kb);
    knowledge::validate(&kb)
}

#[track_caller]
fn assert_problem(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

fn procedure<'a>(kb: &'a mut Knowledge, id: &str) -> &'a mut knowledge::Procedure {
    kb.procedures.iter_mut().find(|p| p.id == id).unwrap()
}

fn variant<'a>(kb: &'a mut Knowledge, id: &str) -> &'a mut knowledge::Variant {
    kb.variants.iter_mut().find(|v| v.id == id).unwrap()
}

fn value_set<'a>(kb: &'a mut Knowledge, id: &str) -> &'a mut knowledge::ValueSet {
    kb.value_sets.iter_mut().find(|v| v.id == id).unwrap()
}

fn code<'a>(kb: &'a mut Knowledge, proc_id: &str, code: &str) -> &'a mut OrderCode {
    procedure(kb, proc_id)
        .codes
        .iter_mut()
        .find(|c| c.code == code)
        .unwrap()
}

// ------------------------------------------------------------------------------------------------
// The default file
// ------------------------------------------------------------------------------------------------

#[test]
fn default_file_loads_and_validates() {
    let kb = loaded();
    assert!(knowledge::validate(&kb).is_empty());
    assert_eq!(kb.schema_version, 1);
    assert_eq!(kb.variants.len(), 9);
    assert_eq!(kb.procedures.len(), 17);
    for id in REQUIRED_VALUE_SETS {
        assert!(kb.value_sets.iter().any(|v| v.id == *id), "{id}");
    }
    let s = knowledge::summary(&kb);
    assert_eq!(s.rating_rows, 71);
    assert_eq!(
        s.rating_rows_by_category,
        vec![
            (Category::UsuallyAppropriate, 21),
            (Category::MayBeAppropriate, 20),
            (Category::MayBeAppropriateDisagreement, 1),
            (Category::UsuallyNotAppropriate, 29),
        ]
    );
    assert_eq!(
        s.empty_value_sets,
        [
            "marrow-edema-or-cleft",
            "worsening-pain",
            "pulmonary-dysfunction",
            "mechanical-pain"
        ]
    );
    let text = s.to_string();
    assert!(text.contains("rating rows: 71"), "{text}");
}

#[test]
fn engine_contract_facts_are_as_specified() {
    use knowledge::Fact::*;
    let kb = loaded();
    let req = |id: &str| {
        let v = kb.variants.iter().find(|v| v.id == id).unwrap();
        (
            v.applies_to,
            v.requires.iter().map(|(f, b)| (*f, *b)).collect::<Vec<_>>(),
            v.requires_any.clone(),
        )
    };
    use ProcedureKind::{Imaging as I, Treatment as T};
    let none: Vec<Vec<knowledge::Fact>> = vec![];
    #[rustfmt::skip]
    let mut expected = vec![
        ("V1", I, vec![(Vcf, true), (NewFracture, true), (Symptomatic, true), (MalignancyHistory, false)], none.clone()),
        ("V2", I, vec![(Vcf, true), (NewFracture, true), (Symptomatic, true), (MalignancyHistory, true)], none.clone()),
        ("V3", I, vec![(Vcf, true), (Symptomatic, true)], vec![vec![PriorVertebralAugmentation, MultipleVcf]]),
        ("V4", I, vec![(Vcf, true), (Symptomatic, false), (MalignancyHistory, true)], none.clone()),
        ("V5", T, vec![(Vcf, true), (Symptomatic, false), (Osteoporotic, true)], none.clone()),
        ("V6", T, vec![(Vcf, true), (Symptomatic, true), (Osteoporotic, true), (MarrowEdemaOrCleft, true)], none.clone()),
        ("V7", T, vec![(Vcf, true), (NewFracture, true), (Symptomatic, true)], vec![vec![PriorVertebralAugmentation, PriorSpineSurgery]]),
        // Issue 8: ACR's "benign" / "pathological" VCF read as the fracture's cause being
        // neoplastic or not (M84.4- / M84.6- alone are benign variants).
        ("V8", T, vec![(Vcf, true), (NeoplasticCause, false)], vec![vec![WorseningPain, Deformity, PulmonaryDysfunction]]),
        ("V9", T, vec![(Vcf, true), (NeoplasticCause, true), (MechanicalPain, true)], none),
    ];
    for (id, kind, mut requires, any) in expected.drain(..) {
        requires.sort();
        assert_eq!(req(id), (kind, requires, any), "{id}");
    }
}

#[test]
fn medical_management_has_no_order_and_consults_have_referral_matchers() {
    let kb = loaded();
    let p = |id: &str| kb.procedures.iter().find(|p| p.id == id).unwrap();
    assert!(p("MEDICAL_MGMT").no_order && p("MEDICAL_MGMT").codes.is_empty());
    for id in ["SURGICAL_CONSULT", "RADONC_CONSULT"] {
        assert!(p(id).codes.is_empty() && p(id).referral.is_some(), "{id}");
    }
    // The inferred "62284 + CT with contrast" combination must not recognise CT myelography.
    assert!(!p("CT_MYELO_SPINE").codes.iter().any(|c| c.code == "62284"));
    // Deleted and add-on codes are match-only.
    for (proc_id, code) in [
        ("SPECT_SPINE", "78320"),
        ("PVA", "22512"),
        ("PVA", "22515"),
        ("PVA", "22520"),
        ("PVA", "22525"),
        ("FDG_PETCT_SB_MT", "A9552"),
    ] {
        let c = p(proc_id).codes.iter().find(|c| c.code == code).unwrap();
        assert!(c.match_only, "{proc_id} {code}");
    }
}

// ------------------------------------------------------------------------------------------------
// One failing case per validation rule
// ------------------------------------------------------------------------------------------------

#[test]
fn rejects_unknown_schema_version() {
    assert_problem(
        &problems_after(|kb| kb.schema_version = 2),
        "schema_version 2",
    );
}

#[test]
fn rejects_duplicate_ids() {
    let p = problems_after(|kb| {
        let dup = kb.procedures[0].clone();
        kb.procedures.push(dup);
    });
    assert_problem(&p, "duplicate procedure id");
    let p = problems_after(|kb| {
        let mut dup = kb.variants[0].clone();
        dup.number = 1;
        kb.variants.push(dup);
    });
    assert_problem(&p, "duplicate variant id");
    assert_problem(&p, "variant number 1 used twice");
    let p = problems_after(|kb| {
        let dup = kb.value_sets[0].clone();
        kb.value_sets.push(dup);
    });
    assert_problem(&p, "duplicate value set id");
}

#[test]
fn rejects_bad_variant_numbers() {
    let p = problems_after(|kb| variant(kb, "V9").number = 10);
    assert_problem(&p, "number 10 is outside 1..=9");
    assert_problem(&p, "id must be V10");
}

#[test]
fn rejects_rating_outside_its_category() {
    // V1 CT with IV contrast is "usually not appropriate" (3).
    let p = problems_after(|kb| {
        let r = &mut variant(kb, "V1").ratings[4];
        assert_eq!(r.procedure, "CT_SPINE_W");
        r.rating = 8;
        r.median = 8;
    });
    assert_problem(
        &p,
        "variant V1: rating of CT_SPINE_W: rating 8 does not belong to category \"Usually not appropriate\"",
    );
    // The disagreement category is a 4-6 band too.
    let p = problems_after(|kb| {
        let r = variant(kb, "V2")
            .ratings
            .iter_mut()
            .find(|r| r.category == Category::MayBeAppropriateDisagreement)
            .unwrap();
        r.rating = 7;
        r.median = 7;
    });
    assert_problem(
        &p,
        "does not belong to category \"May be appropriate (Disagreement)\"",
    );
}

#[test]
fn rejects_median_different_from_rating_and_out_of_scale() {
    let p = problems_after(|kb| variant(kb, "V3").ratings[0].median = 7);
    assert_problem(&p, "median 7 differs from rating 8");
    let p = problems_after(|kb| {
        let r = &mut variant(kb, "V3").ratings[0];
        r.rating = 10;
        r.median = 10;
    });
    assert_problem(&p, "rating 10 is outside 1..=9");
}

#[test]
fn rejects_unknown_procedure_wrong_kind_and_duplicates_in_variant() {
    let p = problems_after(|kb| variant(kb, "V1").ratings[0].procedure = "XR_SPINE".into());
    assert_problem(&p, "variant V1: rating of XR_SPINE: unknown procedure");
    let p = problems_after(|kb| variant(kb, "V1").ratings[0].procedure = "PVA".into());
    assert_problem(
        &p,
        "procedure kind Treatment does not match the variant's applies_to Imaging",
    );
    let p = problems_after(|kb| {
        let v = variant(kb, "V5");
        let dup = v.ratings[0].clone();
        v.ratings.push(dup);
    });
    assert_problem(
        &p,
        "variant V5: rating of MEDICAL_MGMT: procedure rated twice",
    );
}

#[test]
fn rejects_unknown_evidence_label() {
    let p = problems_after(|kb| variant(kb, "V1").ratings[0].evidence = "StrongReferences".into());
    assert_problem(&p, "strength of evidence \"StrongReferences\"");
}

#[test]
fn rejects_missing_required_value_set() {
    let p = problems_after(|kb| kb.value_sets.retain(|v| v.id != "egfr"));
    assert_problem(&p, "required value set \"egfr\" is missing");
}

#[test]
fn rejects_empty_value_set_without_note() {
    let p = problems_after(|kb| value_set(kb, "mechanical-pain").note = None);
    assert_problem(
        &p,
        "value set mechanical-pain: empty value set needs a note",
    );
}

#[test]
fn rejects_unknown_code_system_keys() {
    let p = problems_after(|kb| code(kb, "MRI_SPINE_WO", "72148").system = "cpt4".into());
    assert_problem(&p, "unknown code system key \"cpt4\"");
    let p = problems_after(|kb| value_set(kb, "vcf").codes[0].system = "icd10".into());
    assert_problem(
        &p,
        "value set vcf: codes[0]: unknown code system key \"icd10\"",
    );
    let p = problems_after(|kb| kb.override_reasons[0].system = "nope".into());
    assert_problem(&p, "unknown code system key \"nope\"");
}

#[test]
fn rejects_malformed_codes_per_system() {
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|kb| code(kb, "MRI_SPINE_WO", "72148").code = "7214".into()),
            "\"7214\" is not a well-formed CPT code",
        ),
        (
            Box::new(|kb| code(kb, "FDG_PETCT_SB_MT", "A9552").code = "9552".into()),
            "\"9552\" is not a well-formed HCPCS code",
        ),
        (
            // 30679-5 "MR Lumbar spine WO contrast" with a wrong check digit.
            Box::new(|kb| code(kb, "MRI_SPINE_WO", "30679-5").code = "30679-4".into()),
            "LOINC code \"30679-4\" fails the mod-10 check digit",
        ),
        (
            Box::new(|kb| code(kb, "MRI_SPINE_WO", "30679-5").code = "30679.5".into()),
            "\"30679.5\" is not a well-formed LOINC code",
        ),
        (
            Box::new(|kb| code(kb, "MRI_SPINE_WO", "RPID541").code = "RID541".into()),
            "\"RID541\" is not a well-formed RadLex code",
        ),
        (
            Box::new(|kb| {
                value_set(kb, "vcf")
                    .codes
                    .iter_mut()
                    .find(|c| c.code.as_deref() == Some("42942008"))
                    .unwrap()
                    .code = Some("42942009".into())
            }),
            "SNOMED CT code \"42942009\" fails the Verhoeff check digit",
        ),
        (
            Box::new(|kb| value_set(kb, "contrast-allergy").codes[0].code = Some("Z91041".into())),
            "\"Z91041\" is not a well-formed ICD-10-CM code",
        ),
        (
            Box::new(|kb| {
                let r = procedure(kb, "RADONC_CONSULT").referral.as_mut().unwrap();
                r.specialty[0].code = "2085R0001".into();
            }),
            "\"2085R0001\" is not a well-formed NUCC code",
        ),
    ];
    for (change, needle) in cases {
        assert_problem(&problems_after(change), needle);
    }
}

#[test]
fn rejects_bad_prefix_and_range_matchers() {
    let p = problems_after(|kb| value_set(kb, "vcf").codes[0].prefix = Some("M48.".into()));
    assert_problem(&p, "\"M48.\" is not a well-formed ICD-10-CM prefix");
    let p = problems_after(|kb| {
        value_set(kb, "malignancy").codes[0].range = Some(["C96".into(), "C00".into()])
    });
    assert_problem(&p, "is reversed");
    let p = problems_after(|kb| {
        value_set(kb, "malignancy").codes[0].range = Some(["C0".into(), "C96".into()])
    });
    assert_problem(&p, "must be two 3-character ICD-10-CM categories");
    let p = problems_after(|kb| {
        value_set(kb, "egfr").codes[0] = CodeMatcher {
            system: "loinc".into(),
            code: None,
            prefix: Some("98979".into()),
            range: None,
            display: None,
            source: None,
        }
    });
    assert_problem(&p, "prefix matching is only defined for ICD-10-CM");
}

#[test]
fn rejects_matcher_without_exactly_one_of_code_prefix_range() {
    let p = problems_after(|kb| value_set(kb, "vcf").codes[0].code = Some("M48.56XA".into()));
    assert_problem(
        &p,
        "exactly one of code, prefix or range must be given (2 given)",
    );
    let p = problems_after(|kb| value_set(kb, "vcf").codes[0].prefix = None);
    assert_problem(&p, "(0 given)");
}

#[test]
fn rejects_bad_radiation_levels() {
    let p = problems_after(|kb| procedure(kb, "BONE_SCAN_WB").rrl_adult = Some("3 mSv".into()));
    assert_problem(
        &p,
        "procedure BONE_SCAN_WB: rrl_adult: radiation level \"3 mSv\"",
    );
    let p = problems_after(|kb| procedure(kb, "BONE_SCAN_WB").rrl_pediatric = Some("☢☢☢☢".into()));
    assert_problem(&p, "rrl_pediatric: radiation level \"☢☢☢☢\"");
    let p = problems_after(|kb| procedure(kb, "MRI_SPINE_WO").rrl_pediatric = None);
    assert_problem(
        &p,
        "procedure MRI_SPINE_WO: imaging procedure needs rrl_pediatric",
    );
    let p = problems_after(|kb| procedure(kb, "PVA").rrl_adult = Some("Varies".into()));
    assert_problem(
        &p,
        "procedure PVA: treatment procedure must not carry radiation levels",
    );
    let p = problems_after(|kb| kb.radiation_levels[2].level = 3);
    assert_problem(&p, "does not match the symbol");
}

#[test]
fn rejects_not_applicable_region_on_imaging_codes() {
    let p = problems_after(|kb| code(kb, "CT_SPINE_WO", "72131").region = Region::NotApplicable);
    assert_problem(
        &p,
        "region not-applicable is only allowed for treatment procedures",
    );
}

#[test]
fn rejects_no_order_procedure_with_codes_and_procedures_without_recogniser() {
    let p = problems_after(|kb| {
        let c = procedure(kb, "PVA").codes[0].clone();
        procedure(kb, "MEDICAL_MGMT").codes.push(c);
    });
    assert_problem(
        &p,
        "procedure MEDICAL_MGMT: a no_order procedure must have no codes",
    );
    assert_problem(&p, "also recognises procedure PVA");
    let p = problems_after(|kb| procedure(kb, "SURGICAL_CONSULT").referral = None);
    assert_problem(
        &p,
        "procedure SURGICAL_CONSULT: no codes and no referral matcher",
    );
}

#[test]
fn rejects_missing_safety_requirements() {
    let p = problems_after(|kb| procedure(kb, "MRI_SPINE_W").safety = vec![Safety::MriSafe]);
    assert_problem(
        &p,
        "MR procedure with contrast must require safety gadolinium",
    );
    let p = problems_after(|kb| procedure(kb, "CT_MYELO_SPINE").safety.clear());
    assert_problem(
        &p,
        "CT procedure with contrast must require safety iodinated-contrast",
    );
}

#[test]
fn rejects_override_reason_without_display() {
    let p = problems_after(|kb| kb.override_reasons[0].display = " ".into());
    assert_problem(&p, "an override reason needs a display");
}

#[test]
fn reports_every_problem_not_just_the_first() {
    let p = problems_after(|kb| {
        kb.schema_version = 9;
        variant(kb, "V4").ratings[0].rating = 2;
        code(kb, "CT_SPINE_W", "24933-4").code = "24933-5".into();
        kb.value_sets.retain(|v| v.id != "vcf");
    });
    assert!(p.len() >= 5, "{p:#?}");
    assert_problem(&p, "schema_version 9");
    assert_problem(&p, "variant V4: rating of MRI_SPINE_WWO: rating 2");
    assert_problem(&p, "median 9 differs from rating 2");
    assert_problem(&p, "\"24933-5\" fails the mod-10 check digit");
    assert_problem(&p, "required value set \"vcf\" is missing");
}

#[test]
fn load_str_returns_all_problems_for_an_edited_file() {
    let text = knowledge::DEFAULT_KNOWLEDGE
        .replacen(
            "{ procedure = \"MRI_SPINE_WO\", rating = 9, median = 9, category = \"usually-appropriate\"",
            "{ procedure = \"MRI_SPINE_WO\", rating = 2, median = 9, category = \"usually-appropriate\"",
            1,
        )
        .replacen("code = \"30667-0\"", "code = \"30667-1\"", 1);
    assert_ne!(text, knowledge::DEFAULT_KNOWLEDGE);
    match knowledge::load_str(&text) {
        Err(KnowledgeError::Invalid(p)) => {
            assert_problem(&p, "variant V1: rating of MRI_SPINE_WO: rating 2");
            assert_problem(&p, "\"30667-1\" fails the mod-10 check digit");
        }
        other => panic!("expected validation problems, got {other:?}"),
    }
    assert!(matches!(
        knowledge::load_str("schema_version = 1"),
        Err(KnowledgeError::Parse(_))
    ));
}

// ------------------------------------------------------------------------------------------------
// Cross-check against the ACR rating tables (fixtures/reference/acr-vcf-ratings.toml)
// ------------------------------------------------------------------------------------------------

/// One row of an ACR rating table, as carried in the reference file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefRow {
    procedure: String,
    category: String,
    rating: u8,
    median: u8,
    soe: String,
    adult_rrl: String,
    peds_rrl: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefVariant {
    number: u8,
    title: String,
    row: Vec<RefRow>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefTables {
    variant: Vec<RefVariant>,
}

/// Variant number -> (title, rows), from the reference file's text.
fn parse_reference_tables(text: &str) -> BTreeMap<u8, (String, Vec<RefRow>)> {
    let tables: RefTables = toml::from_str(text).expect("the reference tables parse");
    let mut out = BTreeMap::new();
    for v in tables.variant {
        assert!(
            out.insert(v.number, (v.title, v.row)).is_none(),
            "variant {} twice",
            v.number
        );
    }
    out
}

/// Every disagreement between the knowledge base and the reference tables, and the number of
/// reference rows compared.
fn cross_check(kb: &Knowledge, reference: &str) -> (Vec<String>, usize) {
    let tables = parse_reference_tables(reference);
    let mut mismatches = Vec::new();
    let mut compared = 0;
    let by_name: BTreeMap<&str, &knowledge::Procedure> =
        kb.procedures.iter().map(|p| (p.name.as_str(), p)).collect();
    let kb_numbers: BTreeSet<u8> = kb.variants.iter().map(|v| v.number).collect();
    let md_numbers: BTreeSet<u8> = tables.keys().copied().collect();
    if kb_numbers != md_numbers {
        mismatches.push(format!(
            "variants differ: TOML {kb_numbers:?}, research {md_numbers:?}"
        ));
    }
    for (num, (title, rows)) in &tables {
        let Some(v) = kb.variants.iter().find(|v| v.number == *num) else {
            continue;
        };
        if v.title != *title {
            mismatches.push(format!("V{num}: title {:?} != research {title:?}", v.title));
        }
        let mut md_ids = BTreeSet::new();
        for row in rows {
            compared += 1;
            let Some(p) = by_name.get(row.procedure.as_str()) else {
                mismatches.push(format!("V{num}: no procedure named {:?}", row.procedure));
                continue;
            };
            md_ids.insert(p.id.as_str());
            let at = format!("V{num} {}", p.id);
            let Some(r) = v.ratings.iter().find(|r| r.procedure == p.id) else {
                mismatches.push(format!("{at}: row missing from the TOML"));
                continue;
            };
            if r.rating != row.rating || r.median != row.median {
                mismatches.push(format!(
                    "{at}: rating/median {}/{} != research {}/{}",
                    r.rating, r.median, row.rating, row.median
                ));
            }
            if r.category.label() != row.category {
                mismatches.push(format!(
                    "{at}: category {:?} != research {:?}",
                    r.category.label(),
                    row.category
                ));
            }
            if r.evidence != row.soe {
                mismatches.push(format!(
                    "{at}: SOE {:?} != research {:?}",
                    r.evidence, row.soe
                ));
            }
            match p.kind {
                ProcedureKind::Imaging => {
                    if p.rrl_adult.as_deref() != Some(row.adult_rrl.as_str())
                        || p.rrl_pediatric.as_deref() != Some(row.peds_rrl.as_str())
                    {
                        mismatches.push(format!(
                            "{at}: RRL {:?}/{:?} != research {:?}/{:?}",
                            p.rrl_adult, p.rrl_pediatric, row.adult_rrl, row.peds_rrl
                        ));
                    }
                }
                ProcedureKind::Treatment => {
                    if !row.adult_rrl.contains("no RRL") || p.rrl_adult.is_some() {
                        mismatches.push(format!("{at}: treatment row with a radiation level"));
                    }
                }
            }
        }
        let kb_ids: BTreeSet<&str> = v.ratings.iter().map(|r| r.procedure.as_str()).collect();
        if kb_ids != md_ids {
            mismatches.push(format!(
                "V{num}: procedure sets differ: TOML {kb_ids:?}, research {md_ids:?}"
            ));
        }
        if v.ratings.len() != rows.len() {
            mismatches.push(format!(
                "V{num}: {} TOML rows, {} research rows",
                v.ratings.len(),
                rows.len()
            ));
        }
    }
    (mismatches, compared)
}

fn reference_tables() -> String {
    std::fs::read_to_string(REFERENCE_TABLES).unwrap_or_else(|e| {
        panic!("cannot read the ACR reference tables at {REFERENCE_TABLES}: {e}")
    })
}

#[test]
fn all_71_rating_rows_match_the_acr_reference_tables() {
    let md = reference_tables();
    let kb = loaded();
    let (mismatches, compared) = cross_check(&kb, &md);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(compared, 71);
    let total: usize = kb.variants.iter().map(|v| v.ratings.len()).sum();
    assert_eq!(total, 71);
}

#[test]
fn cross_check_catches_a_changed_rating_rrl_soe_or_missing_row() {
    let md = reference_tables();
    let mut kb = loaded();
    variant(&mut kb, "V2").ratings[1].rating = 6; // CT w/o 7 -> 6
    variant(&mut kb, "V6").ratings[2].evidence = "Moderate".into();
    procedure(&mut kb, "BONE_SCAN_WB").rrl_pediatric = Some("☢☢☢ 0.3-3 mSv [ped]".into());
    variant(&mut kb, "V9").ratings.pop();
    let (mismatches, _) = cross_check(&kb, &md);
    let joined = mismatches.join("\n");
    for needle in [
        "V2 CT_SPINE_WO: rating/median 6/7 != research 7/7",
        "V6 SURGICAL_CONSULT: SOE \"Moderate\" != research \"Limited\"",
        "V1 BONE_SCAN_WB: RRL",
        "V9 SYSTEMIC_RADIONUCLIDE: row missing from the TOML",
        "V9: procedure sets differ",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
}

#[test]
fn every_variant_fact_has_an_evidence_policy_and_the_issue_8_findings_must_be_evidenced() {
    use knowledge::{EvidenceRule, Fact::*};
    let kb = loaded();
    let rule = |f: knowledge::Fact| {
        kb.evidence_policy
            .iter()
            .find(|e| e.fact == f)
            .unwrap_or_else(|| panic!("no evidence policy for {f:?}"))
    };
    // Issue 8 "Facts that must be evidenced" (V6, V8, V9, V7).
    for f in [
        MarrowEdemaOrCleft,
        WorseningPain,
        Deformity,
        PulmonaryDysfunction,
        NeoplasticCause,
        MechanicalPain,
        PriorVertebralAugmentation,
        PriorSpineSurgery,
    ] {
        assert_eq!(rule(f).present, EvidenceRule::MustEvidence, "{f:?}");
    }
    // Issue 8: "symptomatic" may be assumed (pain is often uncoded).
    assert_eq!(rule(Symptomatic).present, EvidenceRule::MayAssume);
    assert_eq!(rule(Symptomatic).absent, EvidenceRule::MayAssume);

    let p = problems_after(|kb| kb.evidence_policy.retain(|e| e.fact != MarrowEdemaOrCleft));
    assert_problem(
        &p,
        "\"marrow_edema_or_cleft\" is used by a variant but has no entry",
    );
    let p = problems_after(|kb| {
        let e = kb.evidence_policy[0].clone();
        kb.evidence_policy.push(e);
    });
    assert_problem(&p, "fact listed twice");
    let p = problems_after(|kb| kb.evidence_policy[0].why = " ".into());
    assert_problem(&p, "empty why");
}

#[test]
fn report_phrases_are_validated() {
    let p = problems_after(|kb| kb.report_findings.retain(|f| f.id != "marrow-edema"));
    assert_problem(&p, "required report finding \"marrow-edema\" is missing");
    let p = problems_after(|kb| kb.report_findings[0].phrases.push("Marrow Edema".into()));
    assert_problem(&p, "must be lower case");
    let p = problems_after(|kb| kb.report_findings[0].phrases.push("mar*row".into()));
    assert_problem(&p, "'*' is only allowed at the end");
    let p = problems_after(|kb| kb.report_findings[1].modalities.push("US".into()));
    assert_problem(&p, "unknown modality \"US\"");
    let p = problems_after(|kb| kb.report_language.negation_before.clear());
    assert_problem(&p, "report_language.negation_before: empty list");
    let p = problems_after(|kb| kb.report_language.scope_words = 0);
    assert_problem(&p, "scope_words 0 must be between 1 and 20");
    // Marrow edema counts only from MRI (issue 8).
    let kb = loaded();
    let edema = kb
        .report_findings
        .iter()
        .find(|f| f.id == "marrow-edema")
        .unwrap();
    assert_eq!(edema.modalities, vec!["MR".to_string()]);
}

#[test]
fn windows_ages_and_exclusions_are_validated() {
    let p = problems_after(|kb| kb.policy.old_fracture_window_days = 30);
    assert_problem(&p, "must be greater than new_fracture_window_days");
    let p = problems_after(|kb| kb.policy.older_adult_age_years = 0);
    assert_problem(&p, "older_adult_age_years 0 must be between 1 and 120");
    let p = problems_after(|kb| value_set(kb, "malignancy").excludes[0].source = None);
    assert_problem(&p, "an exclusion needs its source");
    let kb = loaded();
    // Issue 8 defaults: new within 6 weeks, old beyond 1 year (local policy).
    assert_eq!(kb.policy.new_fracture_window_days, 42);
    assert_eq!(kb.policy.old_fracture_window_days, 365);
}

#[test]
fn rejects_bad_advanced_imaging_ranges_and_ranges_contain_their_bounds() {
    let kb = loaded();
    let head = kb
        .advanced_imaging
        .iter()
        .find(|r| r.from == "70450")
        .expect("CT head range");
    assert!(head.contains("70450") && head.contains("70498") && !head.contains("70499"));
    assert!(!head.contains("7045") && !head.contains("70450A"));
    let p = problems_after(|kb| {
        kb.advanced_imaging[0].from = "7045X".into();
        kb.advanced_imaging[1].system = "nope".into();
        kb.advanced_imaging[2].source = " ".into();
    });
    assert_problem(&p, "from and to must be numeric codes of one length");
    assert_problem(&p, "unknown code system key \"nope\"");
    assert_problem(&p, "display and source are required");
}

#[test]
fn override_reasons_cover_each_card_kind() {
    use vcf_engine::knowledge::OverrideUse;
    let kb = loaded();
    for kind in [
        OverrideUse::Imaging,
        OverrideUse::Treatment,
        OverrideUse::Safety,
    ] {
        assert!(
            kb.override_reasons
                .iter()
                .filter(|r| r.applies_to.contains(&kind))
                .count()
                >= 2,
            "{kind:?}"
        );
    }
}

//! Every ready-to-send request in `hooks/` produces the variant and rating it is named for.

mod common;

use common::*;
use serde_json::Value;
use serde_json::value::RawValue;
use vcf_engine::evaluate::{Hook, Options, Outcome, PatientRecord};

fn raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn resources(bundle: &Value) -> Vec<Box<RawValue>> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| raw(&x["resource"])).collect())
        .unwrap_or_default()
}

/// Builds the engine inputs from a CDS Hooks request by walking its JSON.
fn load(file: &str) -> (Hook, PatientRecord, Vec<vcf_engine::evaluate::DraftOrder>) {
    let v: Value = serde_json::from_str(&read(&format!("hooks/{file}"))).unwrap();
    let hook = match v["hook"].as_str().unwrap() {
        "order-select" => Hook::OrderSelect,
        "order-sign" => Hook::OrderSign,
        other => panic!("{other}"),
    };
    assert!(uuid::Uuid::parse_str(v["hookInstance"].as_str().unwrap()).is_ok());
    let ctx = &v["context"];
    assert!(ctx["userId"].as_str().unwrap().starts_with("Practitioner/"));
    let selections: Vec<&str> = ctx["selections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let orders = drafts_from(resources(&ctx["draftOrders"]), Some(&selections));
    let pre = &v["prefetch"];
    let mut all = vec![raw(&pre["patient"])];
    for key in ["conditions", "procedures", "observations", "reports"] {
        assert_eq!(pre[key]["type"], "searchset", "{file}: prefetch.{key}");
        all.extend(resources(&pre[key]));
    }
    let record = record_from(&all);
    assert_eq!(
        pre["patient"]["id"], ctx["patientId"],
        "{file}: prefetch patient matches context"
    );
    (hook, record, orders)
}

#[test]
fn every_hooks_request_gives_its_variant() {
    type Expected<'a> = (&'a str, &'a str, u8, &'a str, &'a [&'a str]);
    let expected: [Expected; 9] = [
        (
            "v1-new-symptomatic-no-malignancy.json",
            "V1",
            3,
            "not-appropriate",
            &["MRI_SPINE_WO", "CT_SPINE_WO"],
        ),
        (
            "v2-new-symptomatic-malignancy.json",
            "V2",
            3,
            "not-appropriate",
            &["MRI_SPINE_WWO", "CT_SPINE_WO", "MRI_SPINE_WO"],
        ),
        (
            "v3-new-pain-multiple-vcf.json",
            "V3",
            3,
            "not-appropriate",
            &["CT_SPINE_WO", "MRI_SPINE_WO"],
        ),
        (
            "v4-asymptomatic-malignancy.json",
            "V4",
            3,
            "not-appropriate",
            &["MRI_SPINE_WWO", "CT_SPINE_WO", "MRI_SPINE_WO"],
        ),
        (
            "v5-asymptomatic-osteoporotic.json",
            "V5",
            1,
            "not-appropriate",
            &["MEDICAL_MGMT"],
        ),
        (
            "v6-symptomatic-osteoporotic.json",
            "V6",
            1,
            "not-appropriate",
            &["MEDICAL_MGMT", "PVA"],
        ),
        (
            "v7-new-vcf-prior-vertebroplasty.json",
            "V7",
            8,
            "appropriate",
            &[],
        ),
        (
            "v8-benign-vcf-deformity.json",
            "V8",
            1,
            "not-appropriate",
            &["PVA", "SURGICAL_CONSULT"],
        ),
        (
            "v9-pathological-vcf.json",
            "V9",
            4,
            "appropriate",
            &[
                "RADONC_CONSULT",
                "SURGICAL_CONSULT",
                "ABLATION_SPINE",
                "PVA",
            ],
        ),
    ];
    let mut files: Vec<String> = std::fs::read_dir(repo().join("hooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert_eq!(files, expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for (file, variant, rating, pama, suggestions) in expected {
        let (hook, record, orders) = load(file);
        let ev = evaluate_with(hook, &record, &orders, &Options::default());
        let rated: Vec<_> = ev
            .orders
            .iter()
            .filter(|o| o.outcome != Outcome::NotEvaluated)
            .collect();
        assert_eq!(rated.len(), 1, "{file}");
        let o = rated[0];
        assert_eq!(o.outcome, Outcome::Rated, "{file}: {o:#?}");
        assert_eq!(o.chosen_variant.as_deref(), Some(variant), "{file}");
        assert_eq!(o.rating, Some(rating), "{file}");
        assert_eq!(suggested(o), suggestions, "{file}");
        let id = o.order_ref.rsplit('/').next().unwrap();
        assert_eq!(pama_code(&ev, id).as_deref(), Some(pama), "{file}");
        // Not appropriate and may-be-appropriate orders get a card; appropriate ones do not.
        assert_eq!(
            ev.response.cards.len(),
            usize::from(
                o.category.unwrap().normalized()
                    != vcf_engine::knowledge::Category::UsuallyAppropriate
            ),
            "{file}"
        );
    }
}

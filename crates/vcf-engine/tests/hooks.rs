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
    let expected = [
        (
            "v1-new-symptomatic-no-malignancy-mri-with-contrast.json",
            "V1",
            3,
            "not-appropriate",
        ),
        (
            "v2-new-symptomatic-malignancy-ct-with-contrast.json",
            "V2",
            3,
            "not-appropriate",
        ),
        (
            "v3-multiple-vcf-new-pain-mri-with-contrast.json",
            "V3",
            3,
            "not-appropriate",
        ),
        (
            "v4-asymptomatic-malignancy-mri-with-contrast.json",
            "V4",
            3,
            "not-appropriate",
        ),
        (
            "v5-asymptomatic-osteoporotic-ablation.json",
            "V5",
            1,
            "not-appropriate",
        ),
        (
            "v6-symptomatic-osteoporotic-radionuclide.json",
            "V6",
            1,
            "not-appropriate",
        ),
        (
            "v7-prior-vertebroplasty-kyphoplasty.json",
            "V7",
            8,
            "appropriate",
        ),
        (
            "v8-loss-of-height-radionuclide.json",
            "V8",
            1,
            "not-appropriate",
        ),
        ("v9-pathological-radionuclide.json", "V9", 4, "appropriate"),
    ];
    let mut files: Vec<String> = std::fs::read_dir(repo().join("hooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert_eq!(files, expected.iter().map(|e| e.0).collect::<Vec<_>>());
    for (file, variant, rating, pama) in expected {
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

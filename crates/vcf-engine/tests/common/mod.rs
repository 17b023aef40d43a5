//! Shared helpers for the engine's integration tests: fixtures from `fixtures/`, a
//! deterministic uuid source, a fixed clock, and the invariants every response must keep.
#![allow(dead_code)]

use serde_json::Value;
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::sync::OnceLock;
use time::OffsetDateTime;
use time::macros::datetime;
use vcf_engine::Engine;
use vcf_engine::evaluate::{
    Availability, DraftOrder, Evaluation, EvaluationRequest, Hook, IdSource, Options,
    OrderEvaluation, PatientRecord,
};
use vcf_engine::fhir::{AnyResource, FhirResource, ServiceRequest};

pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::new(vcf_engine::knowledge::load_default().expect("knowledge loads"))
            .expect("knowledge indexes")
    })
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fixed "now" of the golden tests.
pub const NOW: OffsetDateTime = datetime!(2026-11-27 12:00:00 UTC);

/// Deterministic uuids: 00000000-0000-4000-8000-000000000001, ...
pub struct SeqIds(pub u128);

impl IdSource for SeqIds {
    fn next_uuid(&mut self) -> uuid::Uuid {
        self.0 += 1;
        uuid::Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | self.0)
    }
}

fn entries(json: &str, path: &str) -> Vec<Box<RawValue>> {
    match AnyResource::parse(json, path).expect("bundle parses") {
        AnyResource::Bundle(b) => b.entry.into_iter().filter_map(|e| e.resource).collect(),
        other => panic!("{path}: not a Bundle: {other:?}"),
    }
}

/// Sorts resources into a patient record (every kind available).
pub fn record_from(resources: &[Box<RawValue>]) -> PatientRecord {
    let mut patient = None;
    let (mut conditions, mut procedures, mut observations, mut reports, mut allergies) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut devices = vec![];
    for (i, r) in resources.iter().enumerate() {
        match AnyResource::parse(r.get(), &format!("entry[{i}]")).expect("resource parses") {
            AnyResource::Patient(p) => patient = Some(p),
            AnyResource::Condition(c) => conditions.push(c),
            AnyResource::Procedure(p) => procedures.push(p),
            AnyResource::Observation(o) => observations.push(o),
            AnyResource::DiagnosticReport(d) => reports.push(d),
            AnyResource::AllergyIntolerance(a) => allergies.push(a),
            AnyResource::Device(d) => devices.push(d),
            _ => {}
        }
    }
    PatientRecord {
        patient: Availability::Available(patient),
        conditions: Availability::Available(conditions),
        procedures: Availability::Available(procedures),
        observations: Availability::Available(observations),
        reports: Availability::Available(reports),
        allergies: Availability::Available(allergies),
        devices: Availability::Available(devices),
    }
}

/// `fixtures/patients/{name}.json`.
pub fn record(name: &str) -> PatientRecord {
    let path = format!("fixtures/patients/{name}.json");
    record_from(&entries(&read(&path), &path))
}

/// Draft orders from raw resources; `selected` = every order when `None`.
pub fn drafts_from(resources: Vec<Box<RawValue>>, selected: Option<&[&str]>) -> Vec<DraftOrder> {
    resources
        .into_iter()
        .map(|raw| {
            let v: Value = serde_json::from_str(raw.get()).unwrap();
            let rt = v["resourceType"].as_str().unwrap().to_owned();
            let id = v["id"].as_str().map(str::to_owned);
            let reference = format!("{rt}/{}", id.clone().unwrap_or_default());
            let service_request = (rt == "ServiceRequest")
                .then(|| ServiceRequest::parse(raw.get(), "draftOrders").expect("order parses"));
            DraftOrder {
                resource_type: rt,
                id,
                selected: selected.is_none_or(|s| s.contains(&reference.as_str())),
                raw,
                service_request,
            }
        })
        .collect()
}

/// `fixtures/orders/{name}.json`.
pub fn drafts(name: &str, selected: Option<&[&str]>) -> Vec<DraftOrder> {
    let path = format!("fixtures/orders/{name}.json");
    drafts_from(entries(&read(&path), &path), selected)
}

/// Evaluates and checks the invariants every response must keep.
pub fn evaluate_with(
    hook: Hook,
    record: &PatientRecord,
    orders: &[DraftOrder],
    options: &Options,
) -> Evaluation {
    let req = EvaluationRequest {
        hook,
        hook_instance: "7f1c3c3e-2f3f-4a53-9d7a-4c0b8f0e0001",
        user_id: "Practitioner/prac-1",
        patient_id: "pat",
        encounter_id: Some("enc-1"),
        orders,
        record,
        now: NOW,
    };
    let ev = engine().evaluate(&req, options, &mut SeqIds(0));
    check_invariants(&ev, orders, options);
    ev
}

pub fn evaluate(patient: &str, orders: &str) -> Evaluation {
    evaluate_with(
        Hook::OrderSign,
        &record(patient),
        &drafts(orders, None),
        &Options::default(),
    )
}

/// CDS Hooks 2.0 rules, update = original + extensions only, legacy copy, uuids recorded.
pub fn check_invariants(ev: &Evaluation, orders: &[DraftOrder], options: &Options) {
    let r = &ev.response;
    r.check().expect("response passes CdsResponse::check()");
    let json = serde_json::to_value(r).unwrap();
    assert!(json["cards"].is_array());
    let text = json.to_string();
    assert!(!text.contains("null"), "null in response: {text}");
    for a in &r.system_actions {
        assert_eq!(a.action_type, vcf_engine::cds::ActionType::Update);
        let res = a.resource.as_ref().unwrap().as_value();
        let mut updated = res.clone();
        let ext = updated
            .as_object_mut()
            .unwrap()
            .remove("extension")
            .expect("the update carries extensions");
        let ext = ext.as_array().unwrap();
        // Some draft order equals the update minus its extensions, and the update's extensions
        // are the draft's own followed by PAMA rating extensions only.
        let found = orders.iter().any(|d| {
            let mut orig: Value = serde_json::from_str(d.raw.get()).unwrap();
            let orig_ext = orig.as_object_mut().unwrap().remove("extension");
            let orig_ext = orig_ext
                .as_ref()
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            orig == updated
                && ext.len() > orig_ext.len()
                && ext[..orig_ext.len()] == orig_ext[..]
                && ext[orig_ext.len()..].iter().all(|e| {
                    e["url"]
                        .as_str()
                        .unwrap()
                        .starts_with("http://fhir.org/argonaut/Extension/pama-rating")
                })
        });
        assert!(found, "update changed more than the extensions: {res}");
    }
    let json = serde_json::to_value(r).unwrap();
    if options.legacy_system_actions && !r.system_actions.is_empty() {
        let legacy = &json["extension"]["systemActions"];
        assert_eq!(legacy, &serde_json::to_value(&r.system_actions).unwrap());
    } else {
        assert!(json.get("extension").is_none());
    }
    for c in &r.cards {
        for sug in &c.suggestions {
            for a in sug
                .actions
                .iter()
                .filter(|a| a.action_type == vcf_engine::cds::ActionType::Update)
            {
                check_update_suggestion(a.resource.as_ref().unwrap().as_value(), orders);
            }
        }
    }
    for c in &r.cards {
        // Every order shown the card records its uuid (several for a grouped card), and the
        // card's suggestions are exactly its orders' own suggestions, in order.
        let shown: Vec<&OrderEvaluation> =
            ev.orders.iter().filter(|o| o.card_uuid == c.uuid).collect();
        assert!(!shown.is_empty(), "card uuid recorded on its order");
        let sugg: Vec<_> = c
            .suggestions
            .iter()
            .filter_map(|s| s.uuid.clone())
            .collect();
        let issued: Vec<String> = shown
            .iter()
            .flat_map(|o| o.suggestion_uuids.clone())
            .collect();
        assert_eq!(issued, sugg);
        assert!(c.summary.chars().count() < 140);
        assert!(!c.links.is_empty());
        check_detail(c.detail.as_deref().unwrap());
    }
}

/// An `update` suggestion changes only the order's code and its PAMA rating extensions: every
/// other element of the draft it names is byte-identical (issue 9), and the draft's own
/// extensions are kept in order.
pub fn check_update_suggestion(res: &Value, orders: &[DraftOrder]) {
    let id = res["id"].as_str().expect("update names the draft's id");
    let d = orders
        .iter()
        .find(|d| d.id.as_deref() == Some(id))
        .expect("the update names a draft order");
    let orig: Value = serde_json::from_str(d.raw.get()).unwrap();
    let (o, u) = (orig.as_object().unwrap(), res.as_object().unwrap());
    for (k, v) in o {
        match k.as_str() {
            "code" => assert_ne!(&u[k], v, "the update changes the code"),
            "extension" => {}
            _ => assert_eq!(
                serde_json::to_string(&u[k]).unwrap(),
                serde_json::to_string(v).unwrap(),
                "update suggestion changed {k}"
            ),
        }
    }
    for k in u.keys() {
        assert!(
            o.contains_key(k) || k == "extension",
            "update suggestion added {k}"
        );
    }
    let ext = u["extension"].as_array().unwrap();
    let own = o
        .get("extension")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let own: Vec<&Value> = own
        .iter()
        .filter(|e| {
            !e["url"]
                .as_str()
                .unwrap_or("")
                .starts_with("http://fhir.org/argonaut/Extension/pama-rating")
        })
        .collect();
    assert_eq!(ext[..own.len()].iter().collect::<Vec<_>>(), own);
    assert!(ext[own.len()..].iter().all(|e| {
        e["url"]
            .as_str()
            .unwrap()
            .starts_with("http://fhir.org/argonaut/Extension/pama-rating")
    }));
    assert!(
        ext.len() > own.len(),
        "the update carries the alternative's rating"
    );
}

/// Card detail read at the point of order (issue 9): at most `DETAIL_MAX_LINES` non-empty lines
/// and `DETAIL_MAX_CHARS` characters, one source line, no internal references.
pub const DETAIL_MAX_LINES: usize = 14;
pub const DETAIL_MAX_CHARS: usize = 1500;

pub fn check_detail(d: &str) {
    let lines = d.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= DETAIL_MAX_LINES, "{lines} lines:\n{d}");
    assert!(
        d.chars().count() <= DETAIL_MAX_CHARS,
        "{} chars:\n{d}",
        d.chars().count()
    );
    for internal in [
        "research",
        "§",
        "github",
        "commit",
        "acrac",
        "Provenance",
        "Knowledge base",
        "issue ",
        "knowledge file",
        "policy.",
    ] {
        assert!(
            !d.to_lowercase().contains(&internal.to_lowercase()),
            "internal reference {internal:?} in:\n{d}"
        );
    }
    assert!(
        d.trim_end().lines().last().is_some_and(
            |l| l.starts_with("ACR Appropriateness Criteria, Management of VCF (2022)")
        ),
        "ends with the source line:\n{d}"
    );
}

pub fn order<'a>(ev: &'a Evaluation, id: &str) -> &'a OrderEvaluation {
    ev.orders
        .iter()
        .find(|o| o.order_ref.ends_with(&format!("/{id}")))
        .unwrap_or_else(|| panic!("no evaluation for {id}"))
}

pub fn card<'a>(ev: &'a Evaluation, o: &OrderEvaluation) -> &'a vcf_engine::cds::Card {
    ev.response
        .cards
        .iter()
        .find(|c| c.uuid == o.card_uuid && o.card_uuid.is_some())
        .unwrap_or_else(|| panic!("no card for {}", o.order_ref))
}

/// The PAMA code of the rating update for an order, if any.
pub fn pama_code(ev: &Evaluation, id: &str) -> Option<String> {
    ev.response.system_actions.iter().find_map(|a| {
        let r = a.resource.as_ref()?.as_value();
        (r["id"] == id).then(|| {
            r["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["url"] == "http://fhir.org/argonaut/Extension/pama-rating")
                .unwrap()["valueCodeableConcept"]["coding"][0]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    })
}

pub fn suggested(o: &OrderEvaluation) -> Vec<&str> {
    o.suggestions
        .iter()
        .map(|s| s.procedure_id.as_str())
        .collect()
}

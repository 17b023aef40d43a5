//! The engine alone, facts to cards: `Engine::evaluate` on parsed fixtures (no HTTP, no JSON
//! parsing of the request). Run with `cargo bench -p vcf-engine`; figures in BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use std::hint::black_box;
use time::macros::datetime;
use vcf_engine::Engine;
use vcf_engine::evaluate::{
    Availability, DraftOrder, EvaluationRequest, Hook, IdSource, Options, PatientRecord,
};
use vcf_engine::fhir::{AnyResource, FhirResource, ServiceRequest};

struct Counter(u128);

impl IdSource for Counter {
    fn next_uuid(&mut self) -> uuid::Uuid {
        self.0 += 1;
        uuid::Uuid::from_u128(self.0)
    }
}

fn entries(json: &str) -> Vec<Box<RawValue>> {
    match AnyResource::parse(json, "").unwrap() {
        AnyResource::Bundle(b) => b.entry.into_iter().filter_map(|e| e.resource).collect(),
        _ => panic!("not a bundle"),
    }
}

fn record(json: &str) -> PatientRecord {
    let mut r = PatientRecord::default();
    let (mut c, mut p, mut o, mut d) = (vec![], vec![], vec![], vec![]);
    let mut patient = None;
    for e in entries(json) {
        match AnyResource::parse(e.get(), "").unwrap() {
            AnyResource::Patient(x) => patient = Some(x),
            AnyResource::Condition(x) => c.push(x),
            AnyResource::Procedure(x) => p.push(x),
            AnyResource::Observation(x) => o.push(x),
            AnyResource::DiagnosticReport(x) => d.push(x),
            _ => {}
        }
    }
    r.patient = Availability::Available(patient);
    r.conditions = Availability::Available(c);
    r.procedures = Availability::Available(p);
    r.observations = Availability::Available(o);
    r.reports = Availability::Available(d);
    r
}

fn orders(json: &str) -> Vec<DraftOrder> {
    entries(json)
        .into_iter()
        .map(|raw| {
            let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            let rt = v["resourceType"].as_str().unwrap().to_owned();
            let sr =
                (rt == "ServiceRequest").then(|| ServiceRequest::parse(raw.get(), "").unwrap());
            DraftOrder {
                resource_type: rt,
                id: v["id"].as_str().map(str::to_owned),
                selected: true,
                raw,
                service_request: sr,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(vcf_engine::knowledge::load_default().unwrap()).unwrap();
    let cases = [
        (
            "v1 warning + 2 suggestions (1 order)",
            include_str!("../../../fixtures/patients/v1-osteoporotic-l1.json"),
            include_str!("../../../fixtures/orders/v1-mri-lumbar-w.json"),
        ),
        (
            "v1 appropriate, no card (1 order)",
            include_str!("../../../fixtures/patients/v1-osteoporotic-l1.json"),
            include_str!("../../../fixtures/orders/v1-ct-thoracic-wo.json"),
        ),
        (
            "v9 info + 4 suggestions (1 order)",
            include_str!("../../../fixtures/patients/v9-myeloma.json"),
            include_str!("../../../fixtures/orders/v9-radionuclide.json"),
        ),
        (
            "ambiguous V2/V4 (1 order)",
            include_str!("../../../fixtures/patients/ambiguous-prostate-no-pain.json"),
            include_str!("../../../fixtures/orders/ambiguous-mri-lumbar-w.json"),
        ),
        (
            "mixed bundle (5 orders)",
            include_str!("../../../fixtures/patients/v1-osteoporotic-l1.json"),
            include_str!("../../../fixtures/orders/mixed-bundle-v1.json"),
        ),
    ];
    let options = Options::default();
    let mut group = c.benchmark_group("engine");
    for (name, patient, draft) in cases {
        let record = record(patient);
        let orders = orders(draft);
        let req = EvaluationRequest {
            hook: Hook::OrderSign,
            hook_instance: "bench",
            user_id: "Practitioner/1",
            patient_id: "p",
            encounter_id: None,
            orders: &orders,
            record: &record,
            now: datetime!(2026-11-27 12:00:00 UTC),
        };
        let mut ids = Counter(0);
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.evaluate(black_box(&req), &options, &mut ids)))
        });
    }
    group.finish();

    // The part of a suggestion built with fhir-sdk (one created ServiceRequest).
    let spec = fhir_build::NewServiceRequest {
        id: Some("00000000-0000-4000-8000-000000000001".into()),
        intent: "order".into(),
        category: vec![fhir_build::ConceptSpec {
            codings: vec![fhir_build::CodingSpec {
                system: "http://snomed.info/sct".into(),
                code: "363679005".into(),
                display: Some("Imaging".into()),
            }],
            text: None,
        }],
        code: fhir_build::ConceptSpec {
            codings: (0..3)
                .map(|i| fhir_build::CodingSpec {
                    system: format!("http://example.org/{i}"),
                    code: format!("{i}"),
                    display: Some("display".into()),
                })
                .collect(),
            text: Some("MRI lumbar spine without IV contrast".into()),
        },
        subject: "Patient/p".into(),
        encounter: Some("Encounter/e".into()),
        requester: Some("Practitioner/r".into()),
        reason_reference: vec!["Condition/c".into()],
        ..Default::default()
    };
    c.bench_function("fhir_build::service_request_json", |b| {
        b.iter(|| black_box(fhir_build::service_request_json(black_box(&spec)).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

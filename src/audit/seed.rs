//! Generator of plausible, entirely synthetic audit data (hook calls and feedback) for tests, the
//! dashboard demo and load tests (`vcf-cds audit seed`). Deterministic for a given seed. Ratings
//! follow the ACR VCF 2022 tables for the variants used; identifiers are made up.

use super::AuditStore;
use super::feedback::parse_feedback;
use super::records::HookCallRecord;
use serde_json::{Value, json};
use time::OffsetDateTime;
use vcf_engine::evaluate::{
    OrderEvaluation, Outcome, PamaRating, RecognizedProcedure, SuggestionRecord,
};
use vcf_engine::knowledge::{Category, Contrast, Region};

/// splitmix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }
}

struct Proc {
    id: &'static str,
    name: &'static str,
    code: &'static str,
    region: Region,
    contrast: Contrast,
}

const PROCS: &[Proc] = &[
    Proc {
        id: "mri-spine-wo",
        name: "MRI spine area of interest without IV contrast",
        code: "http://loinc.org|30679-5",
        region: Region::Lumbar,
        contrast: Contrast::Without,
    },
    Proc {
        id: "mri-spine-w",
        name: "MRI spine area of interest with IV contrast",
        code: "http://loinc.org|30678-7",
        region: Region::Lumbar,
        contrast: Contrast::With,
    },
    Proc {
        id: "mri-spine-wo-w",
        name: "MRI spine area of interest without and with IV contrast",
        code: "http://loinc.org|24981-3",
        region: Region::Thoracic,
        contrast: Contrast::WithoutAndWith,
    },
    Proc {
        id: "ct-spine-wo",
        name: "CT spine area of interest without IV contrast",
        code: "http://loinc.org|30597-9",
        region: Region::Thoracic,
        contrast: Contrast::Without,
    },
    Proc {
        id: "ct-spine-w",
        name: "CT spine area of interest with IV contrast",
        code: "http://loinc.org|24964-9",
        region: Region::Lumbar,
        contrast: Contrast::With,
    },
    Proc {
        id: "bone-scan-whole-body",
        name: "Bone Scan Whole Body",
        code: "http://loinc.org|39818-0",
        region: Region::Body,
        contrast: Contrast::NotApplicable,
    },
    Proc {
        id: "fdg-pet-ct",
        name: "FDG-PET/CT Skull Base to Mid-Thigh",
        code: "http://www.ama-assn.org/go/cpt|78815",
        region: Region::Body,
        contrast: Contrast::NotApplicable,
    },
    Proc {
        id: "ct-myelography",
        name: "CT Myelography Spine Area of Interest",
        code: "http://loinc.org|24965-6",
        region: Region::Lumbar,
        contrast: Contrast::Intrathecal,
    },
    Proc {
        id: "vertebral-augmentation",
        name: "Percutaneous Vertebral Augmentation",
        code: "http://www.ama-assn.org/go/cpt|22514",
        region: Region::NotApplicable,
        contrast: Contrast::NotApplicable,
    },
    Proc {
        id: "ablation-spine",
        name: "Percutaneous Ablation Spine",
        code: "http://www.ama-assn.org/go/cpt|20982",
        region: Region::NotApplicable,
        contrast: Contrast::NotApplicable,
    },
];

/// (procedure id, rating, weight).
type Row = (&'static str, u8, u32);

/// (variant, weight, rows) from the ACR 2022 tables.
const VARIANTS: &[(&str, u32, &[Row])] = &[
    (
        "V1",
        30,
        &[
            ("mri-spine-wo", 9, 40),
            ("ct-spine-wo", 8, 15),
            ("bone-scan-whole-body", 5, 6),
            ("mri-spine-wo-w", 3, 12),
            ("mri-spine-w", 3, 6),
            ("ct-spine-w", 3, 5),
            ("fdg-pet-ct", 2, 4),
            ("ct-myelography", 2, 2),
        ],
    ),
    (
        "V2",
        18,
        &[
            ("mri-spine-wo-w", 9, 30),
            ("ct-spine-wo", 7, 10),
            ("mri-spine-wo", 7, 14),
            ("fdg-pet-ct", 6, 8),
            ("bone-scan-whole-body", 5, 6),
            ("mri-spine-w", 5, 4),
            ("ct-myelography", 4, 2),
            ("ct-spine-w", 3, 4),
        ],
    ),
    (
        "V3",
        14,
        &[
            ("mri-spine-wo", 9, 20),
            ("ct-spine-wo", 7, 8),
            ("mri-spine-wo-w", 3, 10),
            ("bone-scan-whole-body", 5, 4),
            ("fdg-pet-ct", 2, 3),
        ],
    ),
    (
        "V5",
        10,
        &[("vertebral-augmentation", 3, 30), ("ablation-spine", 1, 4)],
    ),
    (
        "V6",
        12,
        &[("vertebral-augmentation", 8, 30), ("ablation-spine", 1, 3)],
    ),
    (
        "V9",
        6,
        &[("vertebral-augmentation", 8, 12), ("ablation-spine", 8, 6)],
    ),
];

const ASSUMPTIONS: &[&str] = &[
    "No history of malignancy found in the problem list.",
    "Fracture age taken from the Condition onset (within 6 weeks).",
    "No prior MRI of the spine found in the last 12 months.",
    "Renal function unknown: eGFR not available.",
];

const REASONS: &[(&str, &str, &str)] = &[
    (
        "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
        "recipient-disagrees-evidence",
        "Clinician disagrees with the guidance",
    ),
    (
        "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
        "cds-suboptimal-context",
        "Patient context not captured by the guidance",
    ),
    (
        "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
        "patient-contraindication",
        "Alternative contraindicated for this patient",
    ),
    (
        "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
        "need-more-info",
        "Specialist requested this study",
    ),
    (
        "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
        "does-not-align-preferences",
        "Patient preference",
    ),
];

fn pick<'a, T>(rng: &mut Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u64 = items.iter().map(|i| u64::from(weight(i))).sum();
    let mut r = rng.below(total);
    for i in items {
        let w = u64::from(weight(i));
        if r < w {
            return i;
        }
        r -= w;
    }
    &items[items.len() - 1]
}

fn category_of(rating: u8, disagreement: bool) -> Category {
    match rating {
        7..=9 => Category::UsuallyAppropriate,
        4..=6 if disagreement => Category::MayBeAppropriateDisagreement,
        4..=6 => Category::MayBeAppropriate,
        _ => Category::UsuallyNotAppropriate,
    }
}

/// Synthetic data: hook calls and, per call, the feedback request bodies the EHR would send.
pub struct Generated {
    pub calls: Vec<HookCallRecord>,
    /// `(service id, feedback request body)`.
    pub feedback: Vec<(String, Value)>,
}

/// `n` calls spread over the `days` before `now`, by 14 ordering users.
pub fn generate(
    n: usize,
    seed: u64,
    now: OffsetDateTime,
    days: u32,
    service_id: &str,
) -> Generated {
    let mut rng = Rng::new(seed);
    let mut calls = Vec::with_capacity(n);
    let mut feedback = vec![];
    let span_ms = i64::from(days.max(1)) * 86_400_000;
    for i in 0..n {
        let ago = rng.below(span_ms as u64) as i64;
        let received_at = now - time::Duration::milliseconds(ago);
        let hook = if rng.chance(0.6) {
            "order-select"
        } else {
            "order-sign"
        };
        // Skewed: a few users order most.
        let user_n = (rng.below(14) * rng.below(14)) / 13 + 1;
        let user_id = format!("Practitioner/dr-{user_n:02}");
        let patient_id = format!("Patient/p-{:04}", rng.below(400));
        let n_orders = if rng.chance(0.15) { 2 } else { 1 };
        let mut orders = vec![];
        for k in 0..n_orders {
            let order_ref = format!("ServiceRequest/sr-{i}-{k}");
            let roll = rng.below(100);
            if roll < 7 {
                orders.push(unrecognized(order_ref));
                continue;
            }
            let (variant, _, rows) = pick(&mut rng, VARIANTS, |v| v.1);
            let (proc_id, rating, _) = *pick(&mut rng, rows, |r| r.2);
            let p = PROCS
                .iter()
                .find(|p| p.id == proc_id)
                .expect("procedure in table");
            let procedure = Some(RecognizedProcedure {
                procedure_id: p.id.into(),
                procedure_name: p.name.into(),
                region: p.region,
                contrast: p.contrast,
                matched_code: p.code.into(),
            });
            let mut o = OrderEvaluation {
                order_ref,
                order_codes: vec![p.code.into()],
                selected: true,
                outcome: Outcome::Rated,
                procedure,
                candidate_variants: vec![variant.to_string()],
                chosen_variant: Some(variant.to_string()),
                rating: Some(rating),
                category: Some(category_of(
                    rating,
                    p.id == "mri-spine-w" && *variant == "V2",
                )),
                evidence: Some(if rng.chance(0.7) { "Strong" } else { "Limited" }.into()),
                pama_rating: Some(if rating <= 3 {
                    PamaRating::NotAppropriate
                } else {
                    PamaRating::Appropriate
                }),
                consult_id: Some(format!("urn:uuid:{}", rng.uuid())),
                assumptions: vec![],
                deciding_facts: vec![],
                card_uuid: None,
                suggestion_uuids: vec![],
                suggestions: vec![],
                safety_notes: vec![],
            };
            if roll < 12 {
                // Ambiguous: two candidate variants disagree.
                o.outcome = Outcome::Ambiguous;
                o.candidate_variants = vec!["V1".into(), "V2".into()];
                o.chosen_variant = None;
                o.rating = None;
                o.category = None;
                o.evidence = None;
                // The engine gives no PAMA rating without enough information.
                o.pama_rating = None;
                o.deciding_facts = vec!["History of malignancy".into()];
            }
            if rng.chance(0.4) {
                o.assumptions
                    .push(ASSUMPTIONS[rng.below(ASSUMPTIONS.len() as u64) as usize].into());
            }
            let shows_card = o.category != Some(Category::UsuallyAppropriate);
            if shows_card {
                o.card_uuid = Some(rng.uuid());
                if o.category == Some(Category::UsuallyNotAppropriate) {
                    o.suggestion_uuids = (0..1 + rng.below(2)).map(|_| rng.uuid()).collect();
                    // The best-rated alternatives of the variant.
                    let mut best: Vec<&Row> = rows.iter().filter(|r| r.1 >= 7).collect();
                    best.sort_by_key(|r| std::cmp::Reverse(r.1));
                    o.suggestions = o
                        .suggestion_uuids
                        .iter()
                        .zip(best)
                        .enumerate()
                        .map(|(k, (uuid, r))| {
                            let p = PROCS
                                .iter()
                                .find(|p| p.id == r.0)
                                .expect("procedure in table");
                            SuggestionRecord {
                                procedure_id: p.id.into(),
                                rating: r.1,
                                category: category_of(r.1, false),
                                label: format!("Order {} instead", p.name),
                                codes: vec![p.code.into()],
                                uuid: uuid.clone(),
                                recommended: k == 0,
                            }
                        })
                        .collect();
                    if p.contrast == Contrast::With && rng.chance(0.3) {
                        o.safety_notes.push(
                            "Contrast alternative withheld: eGFR below the configured threshold."
                                .into(),
                        );
                    }
                }
            }
            if let Some(card) = &o.card_uuid {
                let not_app = o.category == Some(Category::UsuallyNotAppropriate);
                let at = received_at + time::Duration::seconds(5 + rng.below(120) as i64);
                let ts = at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                // Some users override far more than others.
                let p_override = if user_n <= 3 { 0.7 } else { 0.35 };
                if not_app && !o.suggestion_uuids.is_empty() && rng.chance(0.35) {
                    feedback.push((
                        service_id.to_owned(),
                        json!({"feedback": [{"card": card, "outcome": "accepted",
                            "acceptedSuggestions": [{"id": o.suggestion_uuids[0]}],
                            "outcomeTimestamp": ts}]}),
                    ));
                } else if rng.chance(p_override) {
                    let mut entry =
                        json!({"card": card, "outcome": "overridden", "outcomeTimestamp": ts});
                    if rng.chance(0.8) {
                        let (system, code, display) = *pick(&mut rng, REASONS, |r| match r.1 {
                            "recipient-disagrees-evidence" => 5,
                            "cds-suboptimal-context" => 4,
                            "need-more-info" => 3,
                            _ => 1,
                        });
                        entry["overrideReason"] =
                            json!({"reason": {"system": system, "code": code, "display": display}});
                        if rng.chance(0.3) {
                            entry["overrideReason"]["userComment"] =
                                json!("Discussed with radiology.");
                        }
                    }
                    feedback.push((service_id.to_owned(), json!({ "feedback": [entry] })));
                }
            }
            orders.push(o);
        }
        calls.push(HookCallRecord {
            received_at,
            service_id: service_id.to_owned(),
            hook: hook.into(),
            hook_instance: rng.uuid(),
            user_id,
            patient_id,
            encounter_id: Some(format!("Encounter/e-{}", rng.below(5000))),
            fhir_server: Some("https://ehr.example.org/fhir".into()),
            knowledge_version: "seed".into(),
            guideline_id: "acr-ac-management-of-vcf".into(),
            latency_ms: 3.0 + rng.below(400) as f64 / 10.0,
            orders,
        });
    }
    Generated { calls, feedback }
}

fn unrecognized(order_ref: String) -> OrderEvaluation {
    OrderEvaluation {
        order_ref,
        order_codes: vec!["http://loinc.org|36643-5".into()],
        selected: true,
        outcome: Outcome::NotRecognized,
        procedure: None,
        candidate_variants: vec![],
        chosen_variant: None,
        rating: None,
        category: None,
        evidence: None,
        pama_rating: None,
        consult_id: None,
        assumptions: vec![],
        deciding_facts: vec![],
        card_uuid: None,
        suggestion_uuids: vec![],
        suggestions: vec![],
        safety_notes: vec![],
    }
}

/// Writes generated data through the normal write path (concurrently, so group commit applies).
/// Returns (calls, feedback entries) recorded.
pub async fn seed_store(store: &AuditStore, data: Generated) -> anyhow::Result<(usize, usize)> {
    let calls = data.calls.len();
    let mut pending =
        futures_util::future::join_all(data.calls.into_iter().map(|c| store.record_hook_call(c)))
            .await;
    pending.retain(|d| !d.is_durable());
    if !pending.is_empty() {
        anyhow::bail!("{} records were not stored durably", pending.len());
    }
    let now = OffsetDateTime::now_utc();
    let mut parsed = vec![];
    for (service, body) in data.feedback {
        parsed.extend(
            parse_feedback(&body, &service, now)
                .map_err(|e| anyhow::anyhow!("generated feedback invalid: {e:?}"))?,
        );
    }
    let entries = parsed.len();
    // Many entries per request, like an EHR sending feedback in batches.
    let mut rest = parsed;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(500));
        if !store.record_feedback(rest).await.is_durable() {
            anyhow::bail!("feedback was not stored durably");
        }
        rest = tail;
    }
    Ok((calls, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid() {
        let now = time::macros::datetime!(2026-02-01 00:00 UTC);
        let a = generate(200, 7, now, 30, "svc");
        let b = generate(200, 7, now, 30, "svc");
        assert_eq!(a.calls.len(), 200);
        assert_eq!(a.calls[17].hook_instance, b.calls[17].hook_instance);
        assert!(!a.feedback.is_empty());
        for (s, body) in &a.feedback {
            parse_feedback(body, s, now).unwrap();
        }
        let rated = a
            .calls
            .iter()
            .flat_map(|c| &c.orders)
            .filter(|o| o.rating.is_some())
            .count();
        assert!(rated > 150);
    }
}

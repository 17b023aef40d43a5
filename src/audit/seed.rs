//! Synthetic audit data (hook calls and feedback) for tests, the dashboard demo and load tests
//! (`vcf-cds audit seed`), produced by the real service path: each synthetic call is a CDS Hooks
//! request built from the repository's own examples (`hooks/`, `fixtures/patients`,
//! `fixtures/orders`, compiled in) and answered by [`pipeline::process_at`], the function behind
//! `POST /cds-services/{id}`; its audit record comes from [`Processed::into_audit_record`], as for a
//! live call. Ratings, variants, procedure ids, card and suggestion uuids and override reasons
//! are therefore the engine's, so demo data and real data filter the same way.
//!
//! What varies per call: patient, user, encounter and order ids, `hookInstance`, the service
//! (hook), the time (spread over the requested period; the example's dates move with it, so
//! the record reads the same at the call's time as at the date the examples were written for),
//! which orders are drafted, and the clinician's feedback on the cards returned. Deterministic
//! for a given seed (the uuids of cards and suggestions come from the seeded generator too).

use super::AuditStore;
use super::feedback::parse_feedback;
use super::records::HookCallRecord;
use crate::auth::VerifiedClient;
use crate::cds::discovery::{self, ServiceDef};
use crate::cds::pipeline::{self, EngineClock, Processed};
use crate::configuration::Settings;
use crate::state::AppState;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vcf_engine::evaluate::IdSource;
use vcf_engine::knowledge::Category;

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
        self.next_uuid().to_string()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The engine draws card, suggestion and consult uuids from the seeded generator.
impl IdSource for Rng {
    fn next_uuid(&mut self) -> uuid::Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

/// The date the examples' relative dates (fracture onset "15 days ago", ...) were written for:
/// the "now" of the engine's golden tests (`crates/vcf-engine/tests/common/mod.rs`).
pub const EXAMPLES_DATE: OffsetDateTime = time::macros::datetime!(2026-11-27 12:00:00 UTC);

/// The FHIR server named in synthetic requests (never contacted: every prefetch key is sent).
const FHIR_SERVER: &str = "https://ehr.example.org/fhir";

/// `(name, text)` of `dir/name.json` for each name, compiled in.
macro_rules! embed {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../", $dir, "/", $name, ".json")))),*]
    };
}

/// `hooks/*.json`: complete requests (patient record in the prefetch, orders in the context).
const HOOKS: &[(&str, &str)] = embed!("hooks":
        "kyphoplasty-with-mri-edema",
        "kyphoplasty-without-mri",
        "v1-new-symptomatic-no-malignancy",
        "v2-new-symptomatic-malignancy",
        "v3-new-pain-multiple-vcf",
        "v4-asymptomatic-malignancy",
        "v5-asymptomatic-osteoporotic",
        "v6-symptomatic-osteoporotic",
        "v7-new-vcf-prior-vertebroplasty",
        "v8-benign-vcf-deformity",
        "v9-pathological-vcf",
);

/// `fixtures/patients/*.json`: patient records as collection Bundles.
const PATIENTS: &[(&str, &str)] = embed!("fixtures/patients":
        "ambiguous-prostate-no-pain",
        "kyphoplasty-with-mri-edema",
        "kyphoplasty-without-mri",
        "no-vcf-back-pain",
        "old-single-vcf",
        "trauma-l1-wedge",
        "v1-child",
        "v1-osteoporotic-l1",
        "v1-snomed-thoracic-eie",
        "v2-breast-cancer-resolved",
        "v2-prostate-history-egfr25",
        "v3-child-steroid",
        "v3-multiple-old",
        "v3-prior-kyphoplasty",
        "v4-lung-history-pacemaker",
        "v4-myeloma-asymptomatic",
        "v5-asymptomatic-osteoporotic",
        "v6-ct-edema",
        "v6-mri-edema",
        "v6-mri-no-edema",
        "v6-mri-possible-edema",
        "v6-symptomatic-osteoporotic",
        "v7-prior-fusion",
        "v7-prior-vertebroplasty",
        "v8-kyphosis",
        "v8-loss-of-height",
        "v9-lung-metastases",
        "v9-myeloma",
        "v9-myeloma-no-report",
);

/// `fixtures/orders/*.json`: draft orders as collection Bundles.
const ORDERS: &[(&str, &str)] = embed!("fixtures/orders":
        "ambiguous-mri-lumbar-w",
        "ambiguous-mri-lumbar-wwo",
        "mixed-bundle-v1",
        "no-vcf-mri-lumbar-wo",
        "old-vcf-mri-lumbar-wo",
        "spine-unspecified-ct-w",
        "trauma-ct-lumbar-wo",
        "v1-child-ct-thoracic-w",
        "v1-ct-thoracic-w-allergy",
        "v1-ct-thoracic-wo",
        "v1-loinc-mri-thoracic-wwo",
        "v1-mri-lumbar-w",
        "v2-bone-scan",
        "v2-ct-lumbar-w",
        "v3-bone-scan-kypho",
        "v3-child-ct-lumbar-w",
        "v3-mri-lumbar-w",
        "v3-mri-thoracic-wo-kypho",
        "v4-mri-thoracic-w",
        "v4-pet-ct",
        "v5-ablation",
        "v5-radonc-referral",
        "v6-kyphoplasty",
        "v6-radionuclide",
        "v7-cryoablation",
        "v7-kyphoplasty",
        "v8-radionuclide",
        "v8-vertebroplasty",
        "v9-radionuclide",
        "v9-radonc-referral",
        "whole-spine-ct-wwo",
);

/// The prefetch keys answered with a searchset Bundle (every key but the Patient).
const SEARCH_KEYS: [&str; 4] = [
    discovery::CONDITIONS,
    discovery::PROCEDURES,
    discovery::OBSERVATIONS,
    discovery::REPORTS,
];

/// Resource type -> prefetch key of the service's discovery.
fn prefetch_key(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "Condition" => Some(discovery::CONDITIONS),
        "Procedure" => Some(discovery::PROCEDURES),
        "Observation" => Some(discovery::OBSERVATIONS),
        "DiagnosticReport" => Some(discovery::REPORTS),
        _ => None,
    }
}

fn bundle_resources(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

/// One synthetic patient: the resources of an example record and the draft orders written for
/// that case (the ordering clinician usually orders one of those).
struct Case {
    name: &'static str,
    /// The Patient and its clinical resources.
    record: Vec<Value>,
    /// Order sets (indices into `Library::orders`) written for this case.
    own_orders: Vec<usize>,
}

/// The examples, parsed once per seeding.
struct Library {
    cases: Vec<Case>,
    /// `(name, draft order resources)`.
    orders: Vec<(&'static str, Vec<Value>)>,
}

fn parse_example(name: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("example {name} is not JSON: {e}"))
}

/// `"v1-osteoporotic-l1"` -> `"v1"`: fixtures of one case share the prefix.
fn case_prefix(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

impl Library {
    fn load() -> anyhow::Result<Library> {
        let mut orders = vec![];
        for (name, text) in ORDERS {
            orders.push((*name, bundle_resources(&parse_example(name, text)?)));
        }
        let mut cases = vec![];
        for (name, text) in HOOKS {
            let v = parse_example(name, text)?;
            let mut record = vec![v["prefetch"]["patient"].clone()];
            for key in SEARCH_KEYS {
                record.extend(bundle_resources(&v["prefetch"][key]));
            }
            orders.push((*name, bundle_resources(&v["context"]["draftOrders"])));
            cases.push(Case {
                name,
                record,
                own_orders: vec![orders.len() - 1],
            });
        }
        for (name, text) in PATIENTS {
            let record = bundle_resources(&parse_example(name, text)?);
            let own_orders = ORDERS
                .iter()
                .enumerate()
                .filter(|(_, (o, _))| case_prefix(o) == case_prefix(name))
                .map(|(i, _)| i)
                .collect();
            cases.push(Case {
                name,
                record,
                own_orders,
            });
        }
        Ok(Library { cases, orders })
    }
}

/// Moves every FHIR date and dateTime in `v` by `days` (partial dates such as `"2019"` stay).
fn shift_dates(v: &mut Value, days: i64) {
    match v {
        Value::String(s) => {
            let date_only = time::macros::format_description!("[year]-[month]-[day]");
            if s.len() == 10
                && let Ok(d) = time::Date::parse(s, date_only)
                && let Some(moved) = d.checked_add(time::Duration::days(days))
                && let Ok(text) = moved.format(date_only)
            {
                *s = text;
            } else if s.len() > 10
                && let Ok(t) = OffsetDateTime::parse(s, &Rfc3339)
                && let Ok(text) = (t + time::Duration::days(days)).format(&Rfc3339)
            {
                *s = text;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift_dates(x, days)),
        Value::Object(m) => m.values_mut().for_each(|x| shift_dates(x, days)),
        _ => {}
    }
}

/// Replaces every string equal to `from` by `to`.
fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_strings(x, from, to)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_strings(x, from, to)),
        _ => {}
    }
}

/// Who, when and what one synthetic call is about.
struct CallPlan<'a> {
    service: &'static ServiceDef,
    hook_instance: String,
    user_id: String,
    patient_id: String,
    encounter_id: String,
    /// Days the example's dates move by.
    shift_days: i64,
    case: &'a Case,
    /// Draft order sets (indices into `Library::orders`).
    orders: Vec<usize>,
    /// Prefix of the draft order ids (`sr-{prefix}-{k}`).
    order_prefix: String,
}

/// Builds the CDS Hooks request of `plan` from the examples.
fn build_request(lib: &Library, plan: &CallPlan) -> Value {
    let mut prefetch = Map::new();
    let mut searchsets: Vec<(&str, Vec<Value>)> =
        SEARCH_KEYS.into_iter().map(|k| (k, vec![])).collect();
    for resource in &plan.case.record {
        let mut r = resource.clone();
        if r["resourceType"] == "Patient" {
            if let Some(old) = r["id"].as_str().map(str::to_owned) {
                replace_strings(&mut r, &old, &plan.patient_id);
            }
            shift_dates(&mut r, plan.shift_days);
            prefetch.insert(discovery::PATIENT.into(), r);
            continue;
        }
        let Some(key) = r["resourceType"].as_str().and_then(prefetch_key) else {
            continue;
        };
        shift_dates(&mut r, plan.shift_days);
        for field in ["subject", "patient"] {
            if r[field]["reference"].is_string() {
                r[field]["reference"] = json!(format!("Patient/{}", plan.patient_id));
            }
        }
        if let Some(s) = searchsets.iter_mut().find(|s| s.0 == key) {
            s.1.push(json!({ "resource": r }));
        }
    }
    for (key, entry) in searchsets {
        prefetch.insert(
            key.into(),
            json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry}),
        );
    }

    let mut draft = vec![];
    let mut selections = vec![];
    for (k, mut o) in plan
        .orders
        .iter()
        .flat_map(|&i| lib.orders[i].1.iter().cloned())
        .enumerate()
    {
        shift_dates(&mut o, plan.shift_days);
        o["id"] = json!(format!("sr-{}-{k}", plan.order_prefix));
        for (field, reference) in [
            ("subject", format!("Patient/{}", plan.patient_id)),
            ("encounter", format!("Encounter/{}", plan.encounter_id)),
            ("requester", plan.user_id.clone()),
        ] {
            if o[field]["reference"].is_string() {
                o[field]["reference"] = json!(reference);
            }
        }
        if o["resourceType"] == "ServiceRequest" {
            selections.push(format!("ServiceRequest/{}", o["id"].as_str().unwrap_or("")));
        }
        draft.push(json!({ "resource": o }));
    }
    let mut context = json!({
        "userId": plan.user_id,
        "patientId": plan.patient_id,
        "encounterId": plan.encounter_id,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": draft},
    });
    if plan.service.hook == vcf_engine::evaluate::Hook::OrderSelect {
        context["selections"] = json!(selections);
    }
    json!({
        "hook": plan.service.hook.as_str(),
        "hookInstance": plan.hook_instance,
        "fhirServer": FHIR_SERVER,
        "context": context,
        "prefetch": prefetch,
    })
}

/// Synthetic data: hook calls and, per call, the feedback request bodies the EHR would send.
pub struct Generated {
    pub calls: Vec<HookCallRecord>,
    /// `(service id, feedback request body)`.
    pub feedback: Vec<(String, Value)>,
    /// Per call, which examples it was built from.
    pub origins: Vec<Origin>,
}

/// The examples a synthetic call was built from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The patient record: a `hooks/` request or a `fixtures/patients` file (name without `.json`).
    pub case: &'static str,
    /// The draft order sets, in order: `fixtures/orders` files or `hooks/` requests.
    pub orders: Vec<&'static str>,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    pub calls: usize,
    pub seed: u64,
    /// Calls are spread over the `days` before `now`.
    pub now: OffsetDateTime,
    pub days: u32,
    /// Only this service (`vcf-order-select` or `vcf-order-sign`); both when `None`.
    pub service: Option<String>,
}

/// Generates calls in batches (the CLI writes each batch before generating the next, so
/// memory stays bounded however many calls are asked for). Same plan, same data.
pub struct Seeder<'s> {
    state: &'s AppState,
    lib: Library,
    rng: Rng,
    now: OffsetDateTime,
    span_ms: u64,
    services: Vec<&'static ServiceDef>,
    next: usize,
}

impl<'s> Seeder<'s> {
    pub fn new(state: &'s AppState, plan: &Plan) -> anyhow::Result<Seeder<'s>> {
        let services = match &plan.service {
            None => discovery::SERVICES.iter().collect(),
            Some(id) => vec![discovery::service(id).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown service {id:?}: one of {}",
                    discovery::SERVICES
                        .iter()
                        .map(|s| s.id)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?],
        };
        Ok(Seeder {
            state,
            lib: Library::load()?,
            rng: Rng::new(plan.seed),
            now: plan.now,
            span_ms: u64::from(plan.days.max(1)) * 86_400_000,
            services,
            next: 0,
        })
    }

    /// The next `n` calls and their feedback.
    pub async fn batch(&mut self, n: usize) -> anyhow::Result<Generated> {
        let mut out = Generated {
            calls: Vec::with_capacity(n),
            feedback: vec![],
            origins: Vec::with_capacity(n),
        };
        for _ in 0..n {
            self.one(&mut out).await?;
        }
        Ok(out)
    }

    async fn one(&mut self, out: &mut Generated) -> anyhow::Result<()> {
        let i = self.next;
        self.next += 1;
        let rng = &mut self.rng;
        let received_at = self.now - time::Duration::milliseconds(rng.below(self.span_ms) as i64);
        // Order-select fires more often than order-sign.
        let service = match self.services.as_slice() {
            [only] => *only,
            all => {
                if rng.chance(0.6) {
                    all[0]
                } else {
                    all[all.len() - 1]
                }
            }
        };
        // Skewed: a few users order most.
        let user_n = (rng.below(14) * rng.below(14)) / 13 + 1;
        // A patient keeps the same record across visits.
        let patient_n = rng.below(400);
        let case = &self.lib.cases[patient_n as usize % self.lib.cases.len()];
        let mut orders = vec![if !case.own_orders.is_empty() && rng.chance(0.7) {
            *rng.pick(&case.own_orders)
        } else {
            rng.below(self.lib.orders.len() as u64) as usize
        }];
        if rng.chance(0.15) {
            orders.push(rng.below(self.lib.orders.len() as u64) as usize);
        }
        let plan = CallPlan {
            service,
            hook_instance: rng.uuid(),
            user_id: format!("Practitioner/dr-{user_n:02}"),
            patient_id: format!("p-{patient_n:04}"),
            encounter_id: format!("e-{}", rng.below(5000)),
            shift_days: (received_at.date() - EXAMPLES_DATE.date()).whole_days(),
            case,
            orders,
            order_prefix: i.to_string(),
        };
        let body = serde_json::to_vec(&build_request(&self.lib, &plan))?;
        let origin = Origin {
            case: case.name,
            orders: plan.orders.iter().map(|&k| self.lib.orders[k].0).collect(),
        };
        let processed = pipeline::process_at(
            self.state,
            service,
            &body,
            &VerifiedClient::Anonymous,
            None,
            None,
            EngineClock {
                at: Some(received_at),
                ids: &mut self.rng,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("synthetic call {i} ({origin:?}) was refused: {e}"))?;
        // The latency an EHR sees includes its network and FHIR fetches, which a seeder does
        // not have: drawn, so that the data stays the same for a seed.
        let latency_ms = 3.0 + self.rng.below(400) as f64 / 10.0;
        feedback_for(&mut self.rng, &processed, service, received_at, user_n, out);
        let (record, _body) = processed.into_audit_record(service, received_at, latency_ms);
        out.calls.push(record);
        out.origins.push(origin);
        Ok(())
    }
}

/// The clinician's answer to the cards the engine returned: accepted suggestions and overrides
/// with a reason the card offered.
fn feedback_for(
    rng: &mut Rng,
    processed: &Processed,
    service: &ServiceDef,
    received_at: OffsetDateTime,
    user_n: u64,
    out: &mut Generated,
) {
    let mut answered = std::collections::BTreeSet::new();
    for o in &processed.evaluation.orders {
        // A card that groups several orders is answered once.
        if o.card_uuid.as_ref().is_some_and(|c| !answered.insert(c)) {
            continue;
        }
        let Some(card) = o.card_uuid.as_ref().and_then(|uuid| {
            processed
                .evaluation
                .response
                .cards
                .iter()
                .find(|c| c.uuid.as_ref() == Some(uuid))
        }) else {
            continue;
        };
        let card_uuid = o.card_uuid.clone().unwrap_or_default();
        let not_app = o.category == Some(Category::UsuallyNotAppropriate);
        let at = received_at + time::Duration::seconds(5 + rng.below(120) as i64);
        let ts = at.format(&Rfc3339).unwrap_or_default();
        // Some users override far more than others.
        let p_override = if user_n <= 3 { 0.7 } else { 0.35 };
        let suggestion = card
            .suggestions
            .iter()
            .find(|s| s.is_recommended == Some(true))
            .or(card.suggestions.first())
            .and_then(|s| s.uuid.clone());
        if let Some(suggestion) = suggestion.filter(|_| not_app && rng.chance(0.35)) {
            out.feedback.push((
                service.id.to_owned(),
                json!({"feedback": [{"card": card_uuid, "outcome": "accepted",
                    "acceptedSuggestions": [{"id": suggestion}],
                    "outcomeTimestamp": ts}]}),
            ));
        } else if rng.chance(p_override) {
            let mut entry =
                json!({"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": ts});
            let reasons = &card.override_reasons;
            if !reasons.is_empty() && rng.chance(0.8) {
                // Skewed towards the first reasons offered.
                let n = reasons.len() as u64;
                let k = rng.below(n).min(rng.below(n)) as usize;
                entry["overrideReason"] = json!({ "reason": reasons[k] });
                if rng.chance(0.3) {
                    entry["overrideReason"]["userComment"] = json!("Discussed with radiology.");
                }
            }
            out.feedback
                .push((service.id.to_owned(), json!({ "feedback": [entry] })));
        }
    }
}

/// The state [`generate`] runs the engine with: default settings (compiled-in knowledge, default
/// card options) and no audit store.
pub fn default_state() -> anyhow::Result<AppState> {
    AppState::new(Settings::default(), AuditStore::disabled())
}

/// `n` calls spread over the `days` before `now`, both services, answered by an engine with
/// the default settings (tests; the CLI uses [`Seeder`] with the configured state).
pub async fn generate(
    n: usize,
    seed: u64,
    now: OffsetDateTime,
    days: u32,
) -> anyhow::Result<Generated> {
    let state = default_state()?;
    let plan = Plan {
        calls: n,
        seed,
        now,
        days,
        service: None,
    };
    Seeder::new(&state, &plan)?.batch(n).await
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
    use std::collections::BTreeSet;

    /// Months after the examples' date, so the examples' dates must move for the data to read
    /// the same.
    const NOW: OffsetDateTime = time::macros::datetime!(2027-03-15 09:30:00 UTC);

    fn entries(data: &Generated) -> Vec<Value> {
        data.feedback
            .iter()
            .flat_map(|(_, b)| b["feedback"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn deterministic_and_valid() {
        let a = generate(200, 7, NOW, 30).await.unwrap();
        let b = generate(200, 7, NOW, 30).await.unwrap();
        assert_eq!(a.calls.len(), 200);
        let fingerprint = |d: &Generated| {
            d.calls
                .iter()
                .map(|c| {
                    let orders: Vec<_> = c
                        .orders
                        .iter()
                        .map(|o| (o.card_uuid.clone(), o.suggestion_uuids.clone(), o.rating))
                        .collect();
                    format!("{} {} {:?}", c.hook_instance, c.received_at, orders)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(fingerprint(&a), fingerprint(&b), "same seed, same data");
        assert_eq!(entries(&a), entries(&b));
        let other = generate(200, 8, NOW, 30).await.unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&other));
        for (s, body) in &a.feedback {
            parse_feedback(body, s, NOW).unwrap();
        }
        let fb = entries(&a);
        assert!(fb.iter().any(|e| e["outcome"] == "accepted"));
        assert!(fb.iter().any(|e| e["overrideReason"]["reason"].is_object()));
        let orders: Vec<_> = a.calls.iter().flat_map(|c| &c.orders).collect();
        assert!(orders.iter().filter(|o| o.rating.is_some()).count() > 100);
        let hooks: BTreeSet<_> = a.calls.iter().map(|c| c.hook.as_str()).collect();
        assert_eq!(hooks.len(), 2, "both hooks");
        let variants: BTreeSet<_> = orders
            .iter()
            .filter_map(|o| o.chosen_variant.as_deref())
            .collect();
        assert!(variants.len() >= 8, "{variants:?}");
        for c in &a.calls {
            assert!(c.received_at <= NOW && c.received_at > NOW - time::Duration::days(30));
        }
    }

    /// Every seeded order is what the engine answers for the example it was built from, read on
    /// the date the example was written for: varying ids and moving dates changes nothing
    /// clinical. Feedback names only cards, suggestions and override reasons the engine returned.
    #[tokio::test]
    async fn seeded_records_are_the_engines_answers() {
        let data = generate(150, 3, NOW, 90).await.unwrap();
        let state = default_state().unwrap();
        let lib = Library::load().unwrap();
        let mut compared = 0;
        for (call, origin) in data.calls.iter().zip(&data.origins) {
            let case = lib.cases.iter().find(|c| c.name == origin.case).unwrap();
            let orders = origin
                .orders
                .iter()
                .map(|n| lib.orders.iter().position(|o| o.0 == *n).unwrap())
                .collect();
            let service = discovery::service(&call.service_id).unwrap();
            assert_eq!(service.hook.as_str(), call.hook);
            let plan = CallPlan {
                service,
                hook_instance: "6f1d3b0e-1c2a-4e5f-8a9b-0c1d2e3f4a5b".into(),
                user_id: "Practitioner/prac-1".into(),
                patient_id: "pat-1".into(),
                encounter_id: "enc-1".into(),
                shift_days: 0,
                case,
                orders,
                order_prefix: "x".into(),
            };
            let body = serde_json::to_vec(&build_request(&lib, &plan)).unwrap();
            let expected = pipeline::process_at(
                &state,
                service,
                &body,
                &VerifiedClient::Anonymous,
                None,
                None,
                EngineClock {
                    at: Some(EXAMPLES_DATE),
                    ids: &mut Rng::new(0),
                },
            )
            .await
            .unwrap();
            assert_eq!(expected.evaluation.orders.len(), call.orders.len());
            for (want, got) in expected.evaluation.orders.iter().zip(&call.orders) {
                let key = |o: &vcf_engine::evaluate::OrderEvaluation| {
                    (
                        o.outcome,
                        o.procedure.as_ref().map(|p| p.procedure_id.clone()),
                        o.candidate_variants.clone(),
                        o.chosen_variant.clone(),
                        o.rating,
                        o.category,
                        o.pama_rating,
                        o.card_uuid.is_some(),
                        o.suggestions
                            .iter()
                            .map(|s| (s.procedure_id.clone(), s.rating))
                            .collect::<Vec<_>>(),
                    )
                };
                assert_eq!(key(want), key(got), "{origin:?}");
                compared += 1;
            }
        }
        assert!(compared >= 150);

        let orders: Vec<_> = data.calls.iter().flat_map(|c| &c.orders).collect();
        let reasons: BTreeSet<_> = state
            .knowledge
            .override_reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect();
        for e in entries(&data) {
            let card = e["card"].as_str().unwrap();
            let order = orders
                .iter()
                .find(|o| o.card_uuid.as_deref() == Some(card))
                .expect("feedback on a card the engine returned");
            for s in e["acceptedSuggestions"].as_array().into_iter().flatten() {
                assert!(
                    order
                        .suggestion_uuids
                        .iter()
                        .any(|u| s["id"] == *u.as_str())
                );
            }
            if let Some(code) = e["overrideReason"]["reason"]["code"].as_str() {
                assert!(reasons.contains(code), "{code}");
            }
        }
    }

    /// A new example file is seeded too: the compiled-in lists are the directories' contents.
    #[test]
    fn every_example_is_embedded() {
        for (dir, list) in [
            ("hooks", HOOKS),
            ("fixtures/patients", PATIENTS),
            ("fixtures/orders", ORDERS),
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.strip_suffix(".json").map(str::to_owned)
                })
                .collect();
            files.sort();
            let embedded: Vec<String> = list.iter().map(|(n, _)| (*n).to_owned()).collect();
            assert_eq!(embedded, files, "{dir}");
        }
    }

    #[tokio::test]
    async fn one_service_only_when_asked() {
        let state = default_state().unwrap();
        let plan = Plan {
            calls: 30,
            seed: 1,
            now: NOW,
            days: 5,
            service: Some("vcf-order-sign".into()),
        };
        let data = Seeder::new(&state, &plan).unwrap().batch(30).await.unwrap();
        assert!(data.calls.iter().all(|c| c.service_id == "vcf-order-sign"));
        let plan = Plan {
            service: Some("svc".into()),
            ..plan
        };
        assert!(Seeder::new(&state, &plan).is_err());
    }
}

//! Audit record types: what the HTTP layer hands over ([`HookCallRecord`]) and the storage form
//! written to the store and to the spool ([`StoredCall`], [`StoredOrder`], [`StoredFeedback`]).
//! The storage form is already pseudonymized: nothing un-pseudonymized reaches disk.

use super::pseudonym::Pseudonymizer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vcf_engine::evaluate::OrderEvaluation;

/// One hook call, handed to [`super::AuditStore::record_hook_call`] after the engine ran and
/// before the response is sent.
#[derive(Debug, Clone)]
pub struct HookCallRecord {
    pub received_at: OffsetDateTime,
    pub service_id: String,
    /// `"order-select"` or `"order-sign"`.
    pub hook: String,
    pub hook_instance: String,
    /// `context.userId`, e.g. `"Practitioner/123"`.
    pub user_id: String,
    pub patient_id: String,
    pub encounter_id: Option<String>,
    pub fhir_server: Option<String>,
    pub knowledge_version: String,
    pub guideline_id: String,
    pub latency_ms: f64,
    pub orders: Vec<OrderEvaluation>,
}

/// A hook call as stored: one `audit_calls` row plus its `audit_orders` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCall {
    /// Generated per call (a client retrying with the same `hookInstance` gets new card uuids,
    /// so each answer sent is its own record).
    pub call_id: String,
    pub received_at_ms: i64,
    pub service_id: String,
    pub hook: String,
    pub hook_instance: String,
    pub user_id: String,
    pub patient_id: String,
    pub encounter_id: Option<String>,
    pub fhir_server: Option<String>,
    pub knowledge_version: String,
    pub guideline_id: String,
    pub latency_ms: f64,
    /// True when user, patient and encounter ids are HMAC pseudonyms.
    pub pseudonymized: bool,
    pub orders: Vec<StoredOrder>,
    /// `live` (a hook call) or `batch` (`vcf-cds batch-audit --store`).
    #[serde(default = "live")]
    pub source: String,
    /// The batch run that stored the record.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// Records spooled before the `source` column existed are live ones.
fn live() -> String {
    SOURCE_LIVE.to_owned()
}

pub const SOURCE_LIVE: &str = "live";
pub const SOURCE_BATCH: &str = "batch";

/// One evaluated draft order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOrder {
    pub order_index: i64,
    pub order_ref: String,
    pub order_codes: Vec<String>,
    pub selected: bool,
    /// Engine outcome: `rated`, `ambiguous`, `no-vcf`, `no-variant`, `out-of-scope`,
    /// `not-recognized`, `not-evaluated`.
    pub outcome: String,
    pub procedure_id: Option<String>,
    pub procedure_name: Option<String>,
    pub region: Option<String>,
    pub contrast: Option<String>,
    pub matched_code: Option<String>,
    pub candidate_variants: Vec<String>,
    pub chosen_variant: Option<String>,
    pub rating: Option<i64>,
    /// `usually-appropriate`, `may-be-appropriate`, `may-be-appropriate-disagreement`,
    /// `usually-not-appropriate`.
    pub category: Option<String>,
    pub evidence: Option<String>,
    /// `appropriate`, `not-appropriate`, `no-criteria-apply`.
    pub pama_rating: Option<String>,
    pub consult_id: Option<String>,
    pub assumptions: Vec<String>,
    pub deciding_facts: Vec<String>,
    pub card_uuid: Option<String>,
    pub suggestion_uuids: Vec<String>,
    /// The alternatives offered (procedure, rating, category, label, codes, uuid, recommended):
    /// a JSON array.
    #[serde(default)]
    pub suggestions: JsonText,
    /// Alternatives withheld and safety notes shown on the card.
    #[serde(default)]
    pub safety_notes: Vec<String>,
}

/// A JSON value kept as its text. Serialized once where the record is made (on the web worker)
/// and then bound to its column and written to the spool as it is (issue 12: as a
/// `serde_json::Value` tree it was built, converted to text and freed again, the last two on
/// the audit writer's thread).
#[derive(Debug, Clone)]
pub struct JsonText(Box<serde_json::value::RawValue>);

impl JsonText {
    /// `value` as JSON text (`[]` if it cannot be serialized, which the types used here cannot).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> JsonText {
        serde_json::value::to_raw_value(value).map_or_else(|_| JsonText::default(), JsonText)
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl Default for JsonText {
    /// An empty array (spool lines written before the column existed have none).
    fn default() -> JsonText {
        JsonText(serde_json::value::RawValue::from_string("[]".into()).expect("valid JSON"))
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &JsonText) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    /// Through a `Value`: a spool line is an internally tagged enum, whose buffered content a
    /// `RawValue` cannot be read from. Only spool replay reads records back, so the detour is
    /// not on the answer's path.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonText, D::Error> {
        serde_json::Value::deserialize(d).map(|v| JsonText::of(&v))
    }
}

/// One validated feedback entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFeedback {
    /// SHA-256 (hex) of the canonical entry: a repeated entry has the same id and is stored once.
    pub feedback_id: String,
    pub received_at_ms: i64,
    pub service_id: String,
    pub card_uuid: String,
    /// `accepted` or `overridden`.
    pub outcome: String,
    pub outcome_at_ms: i64,
    pub accepted_suggestions: Vec<String>,
    pub override_system: Option<String>,
    pub override_code: Option<String>,
    pub override_display: Option<String>,
    pub user_comment: Option<String>,
}

/// One line of the spool, and the unit the writer commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpoolRecord {
    Call(StoredCall),
    Feedback(StoredFeedback),
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 UTC text of an epoch-milliseconds time.
pub fn ms_to_rfc3339(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The serde name of a unit enum variant (`Category::UsuallyAppropriate` → `usually-appropriate`).
pub(crate) fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A UUID in the version 7 layout (Unix milliseconds, then random bits), so that call ids
/// sort by time: each group commit appends to the right edge of the primary-key B-trees of
/// `audit_calls` and `audit_orders` instead of dirtying one random page per call (issue 12).
fn time_ordered_id(at: OffsetDateTime) -> String {
    let random = uuid::Uuid::new_v4();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random.as_bytes()[6..]);
    uuid::Builder::from_unix_timestamp_millis(epoch_ms(at).max(0) as u64, &bytes)
        .into_uuid()
        .to_string()
}

impl StoredCall {
    /// The storage form of a hook call: ids pseudonymized, enums as their wire names.
    pub fn from_record(r: HookCallRecord, p: &Pseudonymizer) -> StoredCall {
        let orders = r
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| StoredOrder::from_evaluation(i as i64, o, p))
            .collect();
        StoredCall {
            call_id: time_ordered_id(r.received_at),
            received_at_ms: epoch_ms(r.received_at),
            service_id: r.service_id,
            hook: r.hook,
            hook_instance: r.hook_instance,
            user_id: p.apply(&r.user_id),
            patient_id: p.apply(&r.patient_id),
            encounter_id: r.encounter_id.as_deref().map(|e| p.apply(e)),
            fhir_server: r.fhir_server,
            knowledge_version: r.knowledge_version,
            guideline_id: r.guideline_id,
            latency_ms: r.latency_ms,
            pseudonymized: p.enabled(),
            orders,
            source: live(),
            run_id: None,
        }
    }
}

impl StoredOrder {
    /// The storage form of one evaluated order. With a pseudonym key, the resource references
    /// the engine cites in assumptions and deciding facts are pseudonymized too.
    pub fn from_evaluation(index: i64, o: &OrderEvaluation, p: &Pseudonymizer) -> StoredOrder {
        let procedure = o.procedure.as_ref();
        StoredOrder {
            order_index: index,
            order_ref: o.order_ref.clone(),
            order_codes: o.order_codes.clone(),
            selected: o.selected,
            outcome: enum_str(&o.outcome),
            procedure_id: procedure.map(|p| p.procedure_id.clone()),
            procedure_name: procedure.map(|p| p.procedure_name.clone()),
            region: procedure.map(|p| enum_str(&p.region)),
            contrast: procedure.map(|p| enum_str(&p.contrast)),
            matched_code: procedure.map(|p| p.matched_code.clone()),
            candidate_variants: o.candidate_variants.clone(),
            chosen_variant: o.chosen_variant.clone(),
            rating: o.rating.map(i64::from),
            category: o.category.as_ref().map(enum_str),
            evidence: o.evidence.clone(),
            pama_rating: o.pama_rating.map(|r| r.code().to_owned()),
            consult_id: o.consult_id.clone(),
            assumptions: o
                .assumptions
                .iter()
                .map(|a| p.apply_to_references(a))
                .collect(),
            deciding_facts: o
                .deciding_facts
                .iter()
                .map(|f| p.apply_to_references(f))
                .collect(),
            card_uuid: o.card_uuid.clone(),
            suggestion_uuids: o.suggestion_uuids.clone(),
            suggestions: JsonText::of(&o.suggestions),
            safety_notes: o.safety_notes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = time::macros::datetime!(2026-03-01 10:05:31.250 UTC);
        let ms = epoch_ms(t);
        assert_eq!(ms_to_rfc3339(ms), "2026-03-01T10:05:31.25Z");
    }

    /// Suggestions are kept as JSON text; a spool line (an internally tagged enum) reads them
    /// back, also the lines written before issue 12 (keys in sorted order) and those written
    /// before the column existed (no `suggestions` member).
    #[test]
    fn suggestions_text_survives_the_spool() {
        let sugg = serde_json::json!([{"category": "usually-appropriate", "codes": ["http://www.ama-assn.org/go/cpt|72148"], "label": "Change", "procedure_id": "MRI_SPINE_WO", "rating": 9, "recommended": true, "uuid": "u1"}]);
        let mut line = serde_json::json!({
            "kind": "call", "call_id": "c", "received_at_ms": 1, "service_id": "s",
            "hook": "order-select", "hook_instance": "h", "user_id": "u", "patient_id": "p",
            "encounter_id": null, "fhir_server": null, "knowledge_version": "k",
            "guideline_id": "g", "latency_ms": 1.0, "pseudonymized": false,
            "orders": [{
                "order_index": 0, "order_ref": "ServiceRequest/o", "order_codes": [],
                "selected": true, "outcome": "rated", "procedure_id": null,
                "procedure_name": null, "region": null, "contrast": null, "matched_code": null,
                "candidate_variants": [], "chosen_variant": null, "rating": null,
                "category": null, "evidence": null, "pama_rating": null, "consult_id": null,
                "assumptions": [], "deciding_facts": [], "card_uuid": null,
                "suggestion_uuids": ["u1"], "suggestions": sugg.clone()
            }]
        });
        let read = |v: &serde_json::Value| -> StoredOrder {
            match serde_json::from_str::<SpoolRecord>(&v.to_string()).unwrap() {
                SpoolRecord::Call(c) => c.orders.into_iter().next().unwrap(),
                SpoolRecord::Feedback(_) => panic!("a call"),
            }
        };
        let order = read(&line);
        let text: serde_json::Value = serde_json::from_str(order.suggestions.get()).unwrap();
        assert_eq!(text, sugg);
        // Written again and read back: the same text.
        let again = serde_json::to_string(&SpoolRecord::Call(StoredCall {
            orders: vec![order.clone()],
            ..match serde_json::from_str::<SpoolRecord>(&line.to_string()).unwrap() {
                SpoolRecord::Call(c) => c,
                SpoolRecord::Feedback(_) => unreachable!(),
            }
        }))
        .unwrap();
        assert_eq!(read(&serde_json::from_str(&again).unwrap()), order);
        line["orders"][0]
            .as_object_mut()
            .unwrap()
            .remove("suggestions");
        assert_eq!(read(&line).suggestions.get(), "[]");
    }

    #[test]
    fn call_ids_sort_by_time_and_are_unique() {
        let t = time::macros::datetime!(2026-03-01 10:05:31.250 UTC);
        let a = time_ordered_id(t);
        let b = time_ordered_id(t + time::Duration::milliseconds(1));
        let c = time_ordered_id(t);
        assert!(a < b, "{a} {b}");
        assert_ne!(a, c);
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version(), Some(uuid::Version::SortRand));
    }

    #[test]
    fn enum_names_are_wire_names() {
        assert_eq!(
            enum_str(&vcf_engine::knowledge::Category::UsuallyNotAppropriate),
            "usually-not-appropriate"
        );
        assert_eq!(
            enum_str(&vcf_engine::evaluate::Outcome::NotEvaluated),
            "not-evaluated"
        );
    }
}

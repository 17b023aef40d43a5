//! One historical order through the live engine, as of its `authoredOn` day.

use super::input::{Problem, Unit};
use super::record::{Header, PatientResources, PatientStore, patient_key};
use crate::audit::pseudonym::Pseudonymizer;
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use vcf_engine::Engine;
use vcf_engine::evaluate::{
    DraftOrder, EvaluationRequest, Hook, IdSource, Options, OrderEvaluation, Outcome, PatientRecord,
};
use vcf_engine::fhir::{FhirDateTime, FhirResource, ServiceRequest};
use vcf_engine::knowledge::Category;

/// One output row (orders.csv / orders.ndjson). Only what a compliance review needs: no
/// names, no free text from the record beyond the engine's stated assumptions.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRow {
    /// `ServiceRequest/id`.
    pub order: String,
    /// The `authoredOn` day (YYYY-MM-DD); empty when the order has none.
    pub date: Option<String>,
    pub status: Option<String>,
    /// `requester.reference` (the ordering clinician), as in the export.
    pub requester: Option<String>,
    /// `Patient/id`, or its pseudonym with `--pseudonymize`.
    pub patient: String,
    /// `system|code` of every coding of the order.
    pub codes: Vec<String>,
    pub procedure_id: Option<String>,
    pub procedure: Option<String>,
    /// `rated`, `ambiguous`, `no-vcf`, `no-variant`, `out-of-scope`, `not-recognized`, or
    /// (not evaluated) `no-date`, `entered-in-error`.
    pub outcome: String,
    pub variant: Option<String>,
    pub rating: Option<u8>,
    pub category: Option<String>,
    /// PAMA rating code (`appropriate`, `not-appropriate`, `no-criteria-apply`).
    pub pama_rating: Option<String>,
    /// The best alternative the live card would suggest.
    pub top_alternative: Option<String>,
    pub top_alternative_rating: Option<u8>,
    /// What the engine assumed (stated on the live card too).
    pub assumptions: Vec<String>,
    /// The full engine result, for `--store` (not written to the files).
    #[serde(skip)]
    pub evaluation: Option<OrderEvaluation>,
    /// The unpseudonymized patient and requester, for `--store` (which pseudonymizes with its
    /// own configuration).
    #[serde(skip)]
    pub raw_ids: (String, Option<String>),
}

impl OrderRow {
    pub fn category(&self) -> Option<Category> {
        self.evaluation
            .as_ref()
            .and_then(|e| e.category)
            .map(Category::normalized)
    }

    pub fn month(&self) -> Option<&str> {
        self.date.as_deref().map(|d| &d[..7.min(d.len())])
    }

    /// Whether the guideline applies: the order is for one of its procedures and the patient
    /// had a vertebral compression fracture on record on the order date.
    pub fn in_scope(&self) -> bool {
        self.evaluation
            .as_ref()
            .is_some_and(|e| e.procedure.is_some() && e.outcome != Outcome::NoVcf)
    }
}

pub struct Context<'a> {
    pub engine: &'a Engine,
    pub options: &'a Options,
    pub store: &'a PatientStore,
    pub pseudonymizer: Option<&'a Pseudonymizer>,
}

/// Deterministic uuids per order (card and consult ids), so that a re-run gives the same output.
struct OrderIds {
    seed: [u8; 32],
    n: u32,
}

impl IdSource for OrderIds {
    fn next_uuid(&mut self) -> uuid::Uuid {
        self.n += 1;
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(self.n.to_le_bytes());
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

thread_local! {
    /// The last patient's parsed resources on this worker thread (keyed by store and patient):
    /// orders of one patient are usually next to each other in an export, so most orders skip
    /// unpacking and parsing.
    static LAST_PATIENT: std::cell::RefCell<Option<(u64, PatientResources)>> =
        const { std::cell::RefCell::new(None) };
}

fn record_as_of(store: &PatientStore, patient: &str, day: time::Date) -> PatientRecord {
    let Some(idx) = store.index_of(patient) else {
        return PatientRecord::default();
    };
    let store_key = store.id;
    LAST_PATIENT.with(|last| {
        let mut last = last.borrow_mut();
        if last
            .as_ref()
            .is_none_or(|(s, r)| *s != store_key || r.patient != idx)
        {
            *last = store.resources_of(patient).map(|r| (store_key, r));
        }
        last.as_ref().map(|(_, r)| r.as_of(day)).unwrap_or_default()
    })
}

/// A stable key for one order of one export: what `--store` de-duplicates on.
pub fn order_key(patient: &str, order: &str, date: Option<&str>) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [patient, order, date.unwrap_or("")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// Evaluates the unit if it is a ServiceRequest. `Ok(None)`: not an order (or a line already
/// reported by the first pass).
pub fn evaluate(ctx: &Context, unit: &Unit, file_name: &str) -> Result<Option<OrderRow>, Problem> {
    let problem = |message: String| Problem {
        file: file_name.to_owned(),
        position: unit.loc.describe(),
        message,
    };
    let Ok(header) = Header::parse(&unit.json) else {
        return Ok(None);
    };
    if header.resource_type.as_deref() != Some("ServiceRequest") {
        return Ok(None);
    }
    let sr = ServiceRequest::parse(&unit.json, "ServiceRequest")
        .map_err(|e| problem(format!("{}: {}", e.path, e.message)))?;
    let patient = sr
        .subject
        .as_ref()
        .and_then(|s| s.reference.as_deref())
        .and_then(|r| patient_key(r, unit.urns.as_deref()))
        .ok_or_else(|| problem("the order has no subject Patient reference".into()))?;
    let order = match &sr.id {
        Some(id) => format!("ServiceRequest/{id}"),
        None => format!("ServiceRequest ({file_name} {})", unit.loc.describe()),
    };
    let day = match sr.authored_on.as_deref() {
        None => None,
        Some(s) => Some(
            FhirDateTime::parse_date_time(s)
                .map_err(|_| problem(format!("authoredOn: {s:?} is not a FHIR dateTime")))?
                .earliest_date(),
        ),
    };
    let requester = sr
        .requester
        .as_ref()
        .and_then(|r| r.reference.clone().or_else(|| r.display.clone()));
    let shown_patient = match ctx.pseudonymizer {
        Some(p) => p.apply(&patient),
        None => patient.clone(),
    };
    let codes: Vec<String> = sr
        .code
        .as_ref()
        .map(|c| c.codes().map(|(s, c)| format!("{s}|{c}")).collect())
        .unwrap_or_default();
    let mut row = OrderRow {
        order,
        date: day.map(|d| d.to_string()),
        status: sr.status.clone(),
        requester: requester.clone(),
        patient: shown_patient,
        codes,
        procedure_id: None,
        procedure: None,
        outcome: String::new(),
        variant: None,
        rating: None,
        category: None,
        pama_rating: None,
        top_alternative: None,
        top_alternative_rating: None,
        assumptions: Vec::new(),
        evaluation: None,
        raw_ids: (patient.clone(), requester),
    };
    // Not evaluated: an order without a date cannot be judged "as of" anything, and an order
    // entered in error was never an order.
    let Some(day) = day else {
        row.outcome = "no-date".into();
        let rec = ctx.engine.recognize(&sr);
        row.procedure_id = rec.as_ref().map(|r| r.procedure_id.clone());
        row.procedure = rec.map(|r| r.procedure_name);
        return Ok(Some(row));
    };
    if sr.status.as_deref() == Some("entered-in-error") {
        row.outcome = "entered-in-error".into();
        return Ok(Some(row));
    }

    let record = record_as_of(ctx.store, &patient, day);
    let draft = DraftOrder {
        resource_type: "ServiceRequest".into(),
        id: sr.id.clone(),
        selected: true,
        raw: RawValue::from_string(unit.json.clone())
            .map_err(|e| problem(format!("not JSON: {e}")))?,
        service_request: Some(sr),
    };
    let patient_id = patient.trim_start_matches("Patient/");
    let now = day.midnight().assume_utc();
    let request = EvaluationRequest {
        hook: Hook::OrderSign,
        hook_instance: "batch-audit",
        user_id: row.raw_ids.1.as_deref().unwrap_or(""),
        patient_id,
        encounter_id: None,
        orders: std::slice::from_ref(&draft),
        record: &record,
        now,
    };
    let mut ids = OrderIds {
        seed: order_key(&patient, &row.order, row.date.as_deref()),
        n: 0,
    };
    let mut evaluation = ctx.engine.evaluate(&request, ctx.options, &mut ids);
    let ev = evaluation
        .orders
        .pop()
        .ok_or_else(|| problem("the engine returned no evaluation".into()))?;
    fill(&mut row, ev, ctx.store.contains(&patient));
    Ok(Some(row))
}

fn fill(row: &mut OrderRow, ev: OrderEvaluation, patient_known: bool) {
    row.outcome = crate::audit::records::enum_str(&ev.outcome);
    row.procedure_id = ev.procedure.as_ref().map(|p| p.procedure_id.clone());
    row.procedure = ev.procedure.as_ref().map(|p| p.procedure_name.clone());
    row.variant = ev.chosen_variant.clone();
    row.rating = ev.rating;
    row.category = ev.category.map(|c| c.label().to_owned());
    row.pama_rating = ev.pama_rating.map(|p| p.code().to_owned());
    if let Some(s) = ev.suggestions.first() {
        row.top_alternative = Some(s.label.clone());
        row.top_alternative_rating = Some(s.rating);
    }
    row.assumptions = ev.assumptions.clone();
    if !patient_known && ev.outcome != Outcome::NotRecognized {
        row.assumptions
            .push("the export holds no data for this patient".into());
    }
    row.evaluation = Some(ev);
}

//! The engine's shared domain types: what goes in (request, draft orders, patient record,
//! options, uuid source) and what comes out (per-order evaluations, outcomes, PAMA ratings).
//!
//! Every other engine module may import this one; it imports only the leaf modules `cds`,
//! `fhir` and `knowledge`, so the engine's imports form a tree (see `tests/module_graph.rs`).

use crate::cds::CdsResponse;
use crate::fhir::{
    AllergyIntolerance, Condition, Device, DiagnosticReport, Observation, Patient, Procedure,
    ServiceRequest,
};
use crate::knowledge::{Category, Contrast, Region};
use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    OrderSelect,
    OrderSign,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::OrderSelect => "order-select",
            Hook::OrderSign => "order-sign",
        }
    }
}

/// One entry of `context.draftOrders`.
#[derive(Debug, Clone)]
pub struct DraftOrder {
    pub resource_type: String,
    pub id: Option<String>,
    /// In `context.selections` (order-select). On order-sign every order is evaluated.
    pub selected: bool,
    /// The resource exactly as the client sent it (rating updates are built from this).
    pub raw: Box<RawValue>,
    /// Parsed view when `resource_type == "ServiceRequest"`.
    pub service_request: Option<ServiceRequest>,
}

impl DraftOrder {
    /// `Type/id`, or `Type` alone when the order has no id.
    pub fn reference(&self) -> String {
        match &self.id {
            Some(id) => format!("{}/{}", self.resource_type, id),
            None => self.resource_type.clone(),
        }
    }
}

/// Whether a kind of patient data could be obtained (from prefetch or the FHIR server).
#[derive(Debug, Clone)]
pub enum Availability<T> {
    Available(T),
    /// Could not be obtained; the reason is shown to the clinician as an assumption.
    Unavailable(String),
}

impl<T: Default> Default for Availability<T> {
    fn default() -> Self {
        Availability::Available(T::default())
    }
}

/// Everything known about the patient.
#[derive(Debug, Clone, Default)]
pub struct PatientRecord {
    pub patient: Availability<Option<Patient>>,
    pub conditions: Availability<Vec<Condition>>,
    pub procedures: Availability<Vec<Procedure>>,
    pub observations: Availability<Vec<Observation>>,
    pub reports: Availability<Vec<DiagnosticReport>>,
    pub allergies: Availability<Vec<AllergyIntolerance>>,
    /// The patient's devices (MR-safety labelling).
    pub devices: Availability<Vec<Device>>,
}

pub struct EvaluationRequest<'a> {
    pub hook: Hook,
    pub hook_instance: &'a str,
    pub user_id: &'a str,
    pub patient_id: &'a str,
    pub encounter_id: Option<&'a str>,
    pub orders: &'a [DraftOrder],
    pub record: &'a PatientRecord,
    /// "Now" for ages and fracture recency when an order has no `authoredOn`.
    pub now: OffsetDateTime,
}

/// Behaviour switches (from configuration).
#[derive(Debug, Clone)]
pub struct Options {
    /// Show an info card for "Usually appropriate" orders too (default: rating only).
    pub cards_for_appropriate: bool,
    /// Also emit `extension.systemActions` (read by the CDS Hooks sandbox's PAMA screen).
    pub legacy_system_actions: bool,
    /// Value of `pama-rating-qcdsm-consulted`, when configured (the CMS program is paused).
    pub qcdsm_consulted: Option<String>,
    /// Patients under 18: advise a study rated as well with no / lower radiation (info card).
    pub pediatric_radiation_cards: bool,
    /// How alternatives are offered (one `update` of the draft, or `delete` + `create`).
    pub suggestion_style: SuggestionStyle,
    /// Rate advanced imaging outside this guideline (knowledge `advanced_imaging` code ranges)
    /// `no-criteria-apply`.
    pub rate_out_of_scope_imaging: bool,
    /// More than this many orders of one call with the same card get one grouped card naming
    /// them (`cards::group_cards`); 0 never groups.
    pub group_cards_over: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cards_for_appropriate: false,
            legacy_system_actions: true,
            qcdsm_consulted: None,
            pediatric_radiation_cards: true,
            suggestion_style: SuggestionStyle::Update,
            rate_out_of_scope_imaging: true,
            group_cards_over: 3,
        }
    }
}

/// How a card's alternative is offered to the EHR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SuggestionStyle {
    /// One `update` action on the draft order: the new code, the PAMA rating of the
    /// alternative, every other element as the client sent it (Argonaut PAMA, CDS Hooks sandbox).
    Update,
    /// `delete` of the draft order + `create` of the alternative.
    Replace,
}

/// Source of uuids for cards, suggestions and consult ids (random in the service,
/// deterministic in tests).
pub trait IdSource {
    fn next_uuid(&mut self) -> uuid::Uuid;
}

/// The service's uuids: version 7, a millisecond timestamp followed by 74 random bits (from a
/// thread-local generator, no system call per uuid). Time-ordered, so the audit store's index
/// on card uuids grows at its right edge instead of dirtying a random page on every commit
/// (issue 12); still unique and unguessable enough for card and suggestion ids.
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}

/// PAMA rating code (`http://fhir.org/argonaut/CodeSystem/pama-rating`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PamaRating {
    Appropriate,
    NotAppropriate,
    NoCriteriaApply,
}

impl PamaRating {
    pub fn code(self) -> &'static str {
        match self {
            PamaRating::Appropriate => "appropriate",
            PamaRating::NotAppropriate => "not-appropriate",
            PamaRating::NoCriteriaApply => "no-criteria-apply",
        }
    }
}

/// What the engine concluded for one draft order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// One category in every candidate variant: rated.
    Rated,
    /// Candidate variants disagree: no rating, the deciding facts are named.
    Ambiguous,
    /// The order is for a procedure of this guideline but the patient has no VCF on record.
    NoVcf,
    /// The patient has a VCF but no variant of this guideline covers the situation.
    NoVariant,
    /// High-energy trauma without bone pathology: the ACR Acute Spinal Trauma topic applies.
    OutOfScope,
    /// The order matches no procedure of this guideline.
    NotRecognized,
    /// Not a ServiceRequest, or not selected on order-select: not evaluated.
    NotEvaluated,
}

/// The recognised ACR procedure of a draft order.
#[derive(Debug, Clone, Serialize)]
pub struct RecognizedProcedure {
    pub procedure_id: String,
    pub procedure_name: String,
    pub region: Region,
    pub contrast: Contrast,
    /// `system|code` of the coding that matched.
    pub matched_code: String,
}

/// Per-order result, also the content of the audit record.
#[derive(Debug, Clone, Serialize)]
pub struct OrderEvaluation {
    /// `ServiceRequest/abc`.
    pub order_ref: String,
    /// `system|code` of every coding on the order.
    pub order_codes: Vec<String>,
    pub selected: bool,
    pub outcome: Outcome,
    pub procedure: Option<RecognizedProcedure>,
    /// Variants consistent with the known facts.
    pub candidate_variants: Vec<String>,
    /// The variant the rating was taken from (when all candidates agree, the first).
    pub chosen_variant: Option<String>,
    pub rating: Option<u8>,
    pub category: Option<Category>,
    pub evidence: Option<String>,
    pub pama_rating: Option<PamaRating>,
    /// `urn:uuid:...` put in `pama-rating-consult-id`.
    pub consult_id: Option<String>,
    /// Assumptions stated to the clinician ("no history of malignancy found in the problem list").
    pub assumptions: Vec<String>,
    /// Facts that would decide an ambiguous case.
    pub deciding_facts: Vec<String>,
    pub card_uuid: Option<String>,
    pub suggestion_uuids: Vec<String>,
    /// The alternatives offered as suggestions, best first.
    pub suggestions: Vec<SuggestionRecord>,
    /// Alternatives withheld (MRI safety, contrast, no code for the region) and safety notes on
    /// the ordered study, as shown on the card.
    pub safety_notes: Vec<String>,
}

/// One suggested alternative (audit record and tests).
#[derive(Debug, Clone, Serialize)]
pub struct SuggestionRecord {
    pub procedure_id: String,
    /// Lowest rating over the candidate variants.
    pub rating: u8,
    pub category: Category,
    pub label: String,
    /// `system|code` of every coding of the created order(s); empty for "cancel the order".
    pub codes: Vec<String>,
    pub uuid: String,
    pub recommended: bool,
}

/// Result of one hook call.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub knowledge_version: String,
    pub guideline_id: String,
    pub orders: Vec<OrderEvaluation>,
    #[serde(skip)]
    pub response: CdsResponse,
}

//! The engine's entry point: patient record + draft orders in, per-order evaluations and the
//! CDS Hooks response out. Pure: the clock and the uuid source are passed in.

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cards_for_appropriate: false,
            legacy_system_actions: true,
            qcdsm_consulted: None,
        }
    }
}

/// Source of uuids for cards, suggestions and consult ids (random in the service,
/// deterministic in tests).
pub trait IdSource {
    fn next_uuid(&mut self) -> uuid::Uuid;
}

/// Random v4 uuids.
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
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

// ------------------------------------------------------------------------------------------------
// The engine run.
// ------------------------------------------------------------------------------------------------

use crate::cards::{self, CardInput};
use crate::cds::Action;
use crate::cds::{Card, Indicator, SelectionBehavior};
use crate::classify::{Classification, Verdict, classify, reliance_text, verdict};
use crate::facts::{FactValue, PatientFacts, RecordIndex};
use crate::fhir::FhirDateTime;
use crate::index::Engine;
use crate::knowledge::{Fact, ProcedureKind, RatingRow, RelatedTopic};
use crate::orders::recognize;
use crate::rating::{pama_extensions, rating_action};

/// Related-topic ids (keys of `related_topics` in the knowledge file) named on cards.
pub mod topics {
    pub const ACUTE_SPINAL_TRAUMA: &str = "acute-spinal-trauma";
    pub const SUSPECTED_SPINE_TRAUMA_CHILD: &str = "suspected-spine-trauma-child";
    pub const LOW_BACK_PAIN: &str = "low-back-pain";
    pub const THORACIC_BACK_PAIN: &str = "thoracic-back-pain";
    pub const BACK_PAIN_CHILD: &str = "back-pain-child";
}

impl Engine {
    /// Evaluates one hook call: see [`evaluate`].
    pub fn evaluate(
        &self,
        request: &EvaluationRequest,
        options: &Options,
        ids: &mut dyn IdSource,
    ) -> Evaluation {
        evaluate(self, request, options, ids)
    }

    /// Whether any draft order the hook would rate is a procedure of this guideline (the
    /// service fetches no patient data otherwise).
    pub fn any_recognized(&self, hook: Hook, orders: &[DraftOrder]) -> bool {
        orders.iter().any(|d| {
            (hook == Hook::OrderSign || d.selected)
                && d.service_request
                    .as_ref()
                    .is_some_and(|sr| recognize(self, sr).is_some())
        })
    }

    /// The ACR procedure a ServiceRequest is recognised as, if any.
    pub fn recognize(&self, sr: &ServiceRequest) -> Option<RecognizedProcedure> {
        recognize(self, sr).map(|r| r.to_public(self))
    }
}

/// Turns a patient record and draft orders into per-order evaluations and the CDS Hooks
/// response. Pure: `request.now` is the clock and `ids` the uuid source.
pub fn evaluate(
    engine: &Engine,
    request: &EvaluationRequest,
    options: &Options,
    ids: &mut dyn IdSource,
) -> Evaluation {
    let index = RecordIndex::new(engine, request.record);
    let mut response = CdsResponse::default();
    let orders = request
        .orders
        .iter()
        .map(|draft| {
            OrderRun {
                engine,
                index: &index,
                request,
                draft,
                options,
            }
            .run(ids, &mut response)
        })
        .collect();
    if options.legacy_system_actions && !response.system_actions.is_empty() {
        let mut m = serde_json::Map::new();
        m.insert(
            "systemActions".into(),
            serde_json::Value::Array(
                response
                    .system_actions
                    .iter()
                    .map(Action::to_json)
                    .collect(),
            ),
        );
        response.extension = Some(m);
    }
    let kb = engine.knowledge();
    Evaluation {
        knowledge_version: kb.version.clone(),
        guideline_id: kb.guideline.id.clone(),
        orders,
        response,
    }
}

struct OrderRun<'r> {
    engine: &'r Engine,
    index: &'r RecordIndex<'r>,
    request: &'r EvaluationRequest<'r>,
    draft: &'r DraftOrder,
    options: &'r Options,
}

fn new_evaluation(draft: &DraftOrder) -> OrderEvaluation {
    OrderEvaluation {
        order_ref: draft.reference(),
        order_codes: draft
            .service_request
            .as_ref()
            .and_then(|sr| sr.code.as_ref())
            .map(|c| c.codes().map(|(s, c)| format!("{s}|{c}")).collect())
            .unwrap_or_default(),
        selected: draft.selected,
        outcome: Outcome::NotEvaluated,
        procedure: None,
        candidate_variants: Vec::new(),
        chosen_variant: None,
        rating: None,
        category: None,
        evidence: None,
        pama_rating: None,
        consult_id: None,
        assumptions: Vec::new(),
        deciding_facts: Vec::new(),
        card_uuid: None,
        suggestion_uuids: Vec::new(),
        suggestions: Vec::new(),
        safety_notes: Vec::new(),
    }
}

impl<'r> OrderRun<'r> {
    fn run(&self, ids: &mut dyn IdSource, response: &mut CdsResponse) -> OrderEvaluation {
        let mut ev = new_evaluation(self.draft);
        let Some(sr) = self
            .draft
            .service_request
            .as_ref()
            .filter(|_| self.draft.resource_type == "ServiceRequest")
        else {
            return ev;
        };
        if self.request.hook == Hook::OrderSelect && !self.draft.selected {
            return ev;
        }
        let order_date = sr
            .authored_on
            .as_deref()
            .and_then(|s| FhirDateTime::parse_date_time(s).ok())
            .map(|d| d.earliest_date())
            .unwrap_or_else(|| self.request.now.to_offset(time::UtcOffset::UTC).date());
        let facts = self
            .index
            .facts(self.engine, Some(sr), &ev.order_ref, order_date);
        let Some(rec) = recognize(self.engine, sr) else {
            ev.outcome = Outcome::NotRecognized;
            if facts.get(Fact::Vcf).is_present() {
                self.rate(&mut ev, PamaRating::NoCriteriaApply, None, ids, response);
            }
            return ev;
        };
        ev.procedure = Some(rec.to_public(self.engine));
        let order = cards::order_display(self.engine, sr, Some(&rec));
        match facts.get(Fact::Vcf) {
            FactValue::Present(_) => {}
            FactValue::Absent(_) => {
                ev.outcome = Outcome::NoVcf;
                self.rate(&mut ev, PamaRating::NoCriteriaApply, None, ids, response);
                return ev;
            }
            FactValue::Unknown(why) => {
                // Argonaut: no rating without enough information; say why instead.
                ev.outcome = Outcome::NoVcf;
                ev.assumptions.push(why.to_string());
                let detail = format!(
                    "No appropriateness rating: whether the patient has a vertebral compression \
                     fracture cannot be determined because {why}. Re-run the check when the \
                     problem list is available, or add the fracture as the order's reason.{}",
                    cards::provenance(self.engine, None, None)
                );
                let summary = cards::summary(
                    &order,
                    ": not rated, the problem list could not be retrieved",
                );
                self.push_card(
                    &mut ev,
                    cards::card(self.engine, String::new(), summary, detail, Indicator::Info),
                    ids,
                    response,
                );
                return ev;
            }
        }
        if let FactValue::Present(e) = facts.get(Fact::HighEnergyTrauma) {
            ev.outcome = Outcome::OutOfScope;
            self.rate(&mut ev, PamaRating::NoCriteriaApply, None, ids, response);
            ev.assumptions.extend(e.assumption.clone());
            self.out_of_scope_card(&mut ev, &order, &facts, e, ids, response);
            return ev;
        }
        let kb = self.engine.knowledge();
        let kind = kb.procedures[rec.procedure].kind;
        let class = classify(self.engine, &facts, kind);
        ev.candidate_variants = class
            .candidates
            .iter()
            .map(|c| kb.variants[c.variant].id.clone())
            .collect();
        let input = CardInput {
            engine: self.engine,
            req: self.request,
            draft: self.draft,
            sr,
            rec: &rec,
            facts: &facts,
            class: &class,
        };
        match verdict(self.engine, &class, rec.procedure) {
            Verdict::NoCandidate | Verdict::NotRated => {
                ev.outcome = Outcome::NoVariant;
                self.rate(&mut ev, PamaRating::NoCriteriaApply, None, ids, response);
                ev.assumptions = assumptions(self.engine, &facts, &class, None, kind);
                self.no_variant_card(&mut ev, &order, &input, ids, response);
            }
            Verdict::Rated {
                chosen,
                ratings_differ,
            } => {
                ev.outcome = Outcome::Rated;
                let vi = class.candidates[chosen].variant;
                let row = self
                    .engine
                    .rating(vi, rec.procedure)
                    .expect("verdict rated: the chosen variant rates the procedure");
                ev.chosen_variant = Some(kb.variants[vi].id.clone());
                ev.rating = Some(row.rating);
                ev.category = Some(row.category);
                ev.evidence = Some(row.evidence.clone());
                let pama = match row.category.normalized() {
                    Category::UsuallyNotAppropriate => PamaRating::NotAppropriate,
                    _ => PamaRating::Appropriate,
                };
                self.rate(
                    &mut ev,
                    pama,
                    Some((row, &kb.variants[vi].id)),
                    ids,
                    response,
                );
                ev.assumptions = assumptions(self.engine, &facts, &class, Some(chosen), kind);
                let want = match row.category.normalized() {
                    Category::UsuallyAppropriate => self.options.cards_for_appropriate,
                    _ => true,
                };
                if want {
                    self.rated_card(
                        &mut ev,
                        &order,
                        &input,
                        chosen,
                        row,
                        ratings_differ,
                        ids,
                        response,
                    );
                }
            }
            Verdict::Ambiguous { deciding } => {
                ev.outcome = Outcome::Ambiguous;
                ev.deciding_facts = deciding.iter().map(|f| f.key().to_owned()).collect();
                ev.assumptions = assumptions(self.engine, &facts, &class, None, kind);
                self.ambiguous_card(&mut ev, &order, &input, &deciding, ids, response);
            }
        }
        ev
    }

    fn rate(
        &self,
        ev: &mut OrderEvaluation,
        pama: PamaRating,
        row: Option<(&RatingRow, &str)>,
        ids: &mut dyn IdSource,
        response: &mut CdsResponse,
    ) {
        let consult = format!("urn:uuid:{}", ids.next_uuid());
        let ext = pama_extensions(
            &self.engine.knowledge().guideline,
            pama,
            row,
            &consult,
            self.options,
        );
        if let Some(action) = rating_action(self.draft, ext) {
            response.system_actions.push(action);
        }
        ev.pama_rating = Some(pama);
        ev.consult_id = Some(consult);
    }

    fn push_card(
        &self,
        ev: &mut OrderEvaluation,
        mut card: Card,
        ids: &mut dyn IdSource,
        response: &mut CdsResponse,
    ) {
        if card.uuid.as_deref().is_none_or(str::is_empty) {
            card.uuid = Some(ids.next_uuid().to_string());
        }
        ev.card_uuid = card.uuid.clone();
        ev.suggestion_uuids = card
            .suggestions
            .iter()
            .filter_map(|s| s.uuid.clone())
            .collect();
        response.cards.push(card);
    }

    #[allow(clippy::too_many_arguments)]
    fn rated_card(
        &self,
        ev: &mut OrderEvaluation,
        order: &str,
        input: &CardInput,
        chosen: usize,
        row: &RatingRow,
        ratings_differ: bool,
        ids: &mut dyn IdSource,
        response: &mut CdsResponse,
    ) {
        let engine = self.engine;
        let kb = engine.knowledge();
        let class = input.class;
        let vi = class.candidates[chosen].variant;
        let variant = &kb.variants[vi];
        let cat = row.category.normalized();
        let card_uuid = ids.next_uuid().to_string();
        let alts = if cat == Category::UsuallyAppropriate {
            Vec::new()
        } else {
            cards::alternatives(
                engine,
                class,
                input.rec.procedure,
                cards::AltScope::Chosen(chosen),
                input.facts,
                input.rec.region,
            )
        };
        let built = cards::build_suggestions(input, &alts, ids);
        let ordered_label = cards::procedure_label(engine, input.rec.procedure, input.rec.region);
        let mut detail = format!(
            "**Scenario {}:** {}\n\n**Ordered:** {order} (ACR procedure: {ordered_label}): **{}**, rating {}/9, strength of evidence {}.",
            variant.id,
            variant.title,
            row.category.label(),
            row.rating,
            row.evidence
        );
        let others: Vec<String> = class
            .candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != chosen)
            .filter_map(|(_, c)| {
                let r = engine.rating(c.variant, input.rec.procedure)?;
                let v = &kb.variants[c.variant];
                Some(format!(
                    "{} \"{}\": {}/9 ({})",
                    v.id,
                    v.title,
                    r.rating,
                    r.category.label()
                ))
            })
            .collect();
        if !others.is_empty() {
            detail.push_str(if ratings_differ {
                "\n\nThe patient also fits other scenarios that rate this order in the same category but with a different number; the lowest rating is shown: "
            } else {
                "\n\nThe patient also fits other scenarios with the same rating category: "
            });
            detail.push_str(&others.join("; "));
            detail.push('.');
        }
        if kb.procedures[input.rec.procedure].kind == ProcedureKind::Imaging
            && let Some(line) =
                cards::radiation_line(engine, input.rec.procedure, input.rec.region, input.facts)
        {
            detail.push_str("\n\n");
            detail.push_str(&line);
        }
        detail.push_str(&cards::bullets(
            "Facts used",
            &cards::facts_used(engine, input.facts, vi),
        ));
        detail.push_str(&cards::bullets("Assumptions", &ev.assumptions));
        let alt_lines: Vec<String> = alts
            .iter()
            .map(|a| {
                let mut s = format!(
                    "{}: {}, {}/9, strength of evidence {}",
                    cards::procedure_label(engine, a.procedure, input.rec.region),
                    a.category.label(),
                    a.rating,
                    a.evidence
                );
                if let Some(t) =
                    engine.radiation_text(a.procedure, input.rec.region, input.facts.pediatric)
                {
                    let _ = std::fmt::Write::write_fmt(&mut s, format_args!(", radiation {t}"));
                }
                s
            })
            .collect();
        detail.push_str(&cards::bullets(
            "Better-rated alternatives (ACR)",
            &alt_lines,
        ));
        let mut notes = built.withheld.clone();
        if let Some(why) =
            cards::safety_block(engine, &kb.procedures[input.rec.procedure], input.facts)
        {
            notes.push(format!("The ordered study: {why}."));
        }
        detail.push_str(&cards::bullets("Not suggested, and safety notes", &notes));
        detail.push_str(&cards::provenance(engine, Some(vi), Some(row)));
        let rest = format!(": {} (ACR {}/9)", row.category.label(), row.rating);
        let indicator = if cat == Category::UsuallyNotAppropriate {
            Indicator::Warning
        } else {
            Indicator::Info
        };
        let mut card = cards::card(
            engine,
            card_uuid,
            cards::summary(order, &rest),
            detail,
            indicator,
        );
        if !built.suggestions.is_empty() {
            card.selection_behavior = Some(SelectionBehavior::AtMostOne);
        }
        card.suggestions = built.suggestions;
        if indicator == Indicator::Warning {
            card.override_reasons = cards::override_reasons(engine);
        }
        ev.suggestions = built.records;
        ev.safety_notes = notes;
        self.push_card(ev, card, ids, response);
    }

    fn ambiguous_card(
        &self,
        ev: &mut OrderEvaluation,
        order: &str,
        input: &CardInput,
        deciding: &[Fact],
        ids: &mut dyn IdSource,
        response: &mut CdsResponse,
    ) {
        let engine = self.engine;
        let kb = engine.knowledge();
        let class = input.class;
        let card_uuid = ids.next_uuid().to_string();
        let alts = cards::alternatives(
            engine,
            class,
            input.rec.procedure,
            cards::AltScope::All,
            input.facts,
            input.rec.region,
        );
        let built = cards::build_suggestions(input, &alts, ids);
        let rest = if deciding.is_empty() {
            ": fits overlapping ACR VCF scenarios, not rated".to_owned()
        } else {
            let names: Vec<&str> = deciding.iter().take(2).map(|f| f.name()).collect();
            format!(": ACR rating depends on {}", names.join(" and "))
        };
        let mut detail = String::from(
            "The patient fits several scenarios of the ACR criteria that rate this order differently, so no appropriateness rating is given.",
        );
        if deciding.is_empty() {
            detail.push_str(" No single missing fact separates them (the scenarios overlap).");
        } else {
            let lines: Vec<String> = deciding
                .iter()
                .map(|f| match input.facts.get(*f) {
                    FactValue::Unknown(why) => format!("{}: {why}", f.name()),
                    _ => f.name().to_owned(),
                })
                .collect();
            detail.push_str(&cards::bullets(
                "Deciding fact(s), not known from the record",
                &lines,
            ));
        }
        let either: Vec<String> = class
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = &kb.variants[c.variant];
                let cond = cards::candidate_conditions(input.facts, class, i);
                match engine.rating(c.variant, input.rec.procedure) {
                    Some(r) => format!(
                        "{} \"{}\"{cond}: **{}**, {}/9, strength of evidence {}",
                        v.id,
                        v.title,
                        r.category.label(),
                        r.rating,
                        r.evidence
                    ),
                    None => format!("{} \"{}\"{cond}: not rated in this scenario", v.id, v.title),
                }
            })
            .collect();
        detail.push_str(&cards::bullets("Rating either way", &either));
        detail.push_str(
            "\n\nRecord the deciding fact (problem list or the order's reason) to get a rating.",
        );
        if kb.procedures[input.rec.procedure].kind == ProcedureKind::Imaging
            && let Some(line) =
                cards::radiation_line(engine, input.rec.procedure, input.rec.region, input.facts)
        {
            detail.push_str("\n\n");
            detail.push_str(&line);
        }
        detail.push_str(&cards::bullets("Assumptions", &ev.assumptions));
        if !built.suggestions.is_empty() {
            detail.push_str("\n\nThe suggestions are rated Usually appropriate in every one of these scenarios.");
        }
        detail.push_str(&cards::bullets(
            "Not suggested, and safety notes",
            &built.withheld,
        ));
        detail.push_str(&cards::provenance(engine, None, None));
        let mut card = cards::card(
            engine,
            card_uuid,
            cards::summary(order, &rest),
            detail,
            Indicator::Info,
        );
        if !built.suggestions.is_empty() {
            card.selection_behavior = Some(SelectionBehavior::AtMostOne);
        }
        card.suggestions = built.suggestions;
        ev.suggestions = built.records;
        ev.safety_notes = built.withheld;
        self.push_card(ev, card, ids, response);
    }

    fn no_variant_card(
        &self,
        ev: &mut OrderEvaluation,
        order: &str,
        input: &CardInput,
        ids: &mut dyn IdSource,
        response: &mut CdsResponse,
    ) {
        let engine = self.engine;
        let kb = engine.knowledge();
        let class = input.class;
        let name = &kb.procedures[input.rec.procedure].name;
        let mut why: Vec<String> = class
            .excluded
            .iter()
            .map(|x| {
                let v = &kb.variants[x.variant];
                let value = input.facts.get(x.fact);
                let fact_text = match value {
                    FactValue::Present(e) => e.describe(),
                    FactValue::Absent(t) | FactValue::Unknown(t) => t.to_string(),
                };
                if x.group {
                    let group = v
                        .requires_any
                        .iter()
                        .find(|g| g.contains(&x.fact))
                        .map(|g| {
                            g.iter()
                                .map(|f| f.phrase(true))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        })
                        .unwrap_or_default();
                    format!("{} \"{}\": requires {group}; none on record", v.id, v.title)
                } else {
                    format!(
                        "{} \"{}\": requires {} ({fact_text})",
                        v.id,
                        v.title,
                        x.fact.phrase(x.required)
                    )
                }
            })
            .collect();
        for c in &class.candidates {
            let v = &kb.variants[c.variant];
            why.push(format!(
                "{} \"{}\" fits but does not rate {name}",
                v.id, v.title
            ));
        }
        let mut related = Vec::new();
        if kb.procedures[input.rec.procedure].kind == ProcedureKind::Imaging {
            let region = input.rec.region;
            if matches!(region, Region::Lumbar) {
                related.push(topics::LOW_BACK_PAIN);
            } else if matches!(region, Region::Thoracic) {
                related.push(topics::THORACIC_BACK_PAIN);
            } else {
                related.extend([topics::LOW_BACK_PAIN, topics::THORACIC_BACK_PAIN]);
            }
            if input.facts.pediatric {
                related.push(topics::BACK_PAIN_CHILD);
            }
        }
        let related = related_topics(engine, &related);
        let mut detail = format!(
            "No scenario of the ACR VCF criteria fits this patient and order, so the rating is \"no criteria apply\".{}",
            cards::bullets("Why", &why)
        );
        detail.push_str(&cards::bullets("Assumptions", &ev.assumptions));
        detail.push_str(&cards::bullets(
            "Related ACR topics that may apply",
            &related
                .iter()
                .map(|t| format!("{}: {}", t.title, t.when))
                .collect::<Vec<_>>(),
        ));
        detail.push_str(&cards::provenance(engine, None, None));
        let mut card = cards::card(
            engine,
            ids.next_uuid().to_string(),
            cards::summary(order, ": no ACR VCF scenario fits this patient, not rated"),
            detail,
            Indicator::Info,
        );
        card.links.extend(topic_links(&related));
        self.push_card(ev, card, ids, response);
    }

    fn out_of_scope_card(
        &self,
        ev: &mut OrderEvaluation,
        order: &str,
        facts: &PatientFacts,
        evidence: &crate::facts::Evidence,
        ids: &mut dyn IdSource,
        response: &mut CdsResponse,
    ) {
        let engine = self.engine;
        let kb = engine.knowledge();
        let mut ids_wanted = vec![topics::ACUTE_SPINAL_TRAUMA];
        if facts.pediatric {
            ids_wanted.push(topics::SUSPECTED_SPINE_TRAUMA_CHILD);
        }
        let related = related_topics(engine, &ids_wanted);
        let short = related
            .first()
            .map(|t| {
                t.title
                    .trim_start_matches("ACR Appropriateness Criteria")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|| "another ACR topic".into());
        let mut detail = format!(
            "{}\n\n**Fracture on record:** {}",
            kb.guideline.scope_note,
            evidence.describe()
        );
        detail.push_str(&cards::bullets("Assumptions", &ev.assumptions));
        detail.push_str("\n\nIf this is a low-energy (fragility) fracture, record osteoporosis or the fracture's cause on the problem list to get a rating under the VCF criteria.");
        detail.push_str(&cards::bullets(
            "Applicable ACR topic",
            &related
                .iter()
                .map(|t| format!("{}: {}", t.title, t.when))
                .collect::<Vec<_>>(),
        ));
        detail.push_str(&cards::provenance(engine, None, None));
        let rest = format!(": traumatic fracture, outside the ACR VCF criteria (see {short})");
        let mut card = cards::card(
            engine,
            ids.next_uuid().to_string(),
            cards::summary(order, &rest),
            detail,
            Indicator::Info,
        );
        card.links.extend(topic_links(&related));
        self.push_card(ev, card, ids, response);
    }
}

fn related_topics<'k>(engine: &'k Engine, wanted: &[&str]) -> Vec<&'k RelatedTopic> {
    wanted
        .iter()
        .filter_map(|id| {
            engine
                .knowledge()
                .related_topics
                .iter()
                .find(|t| t.id == *id)
        })
        .collect()
}

fn topic_links(topics: &[&RelatedTopic]) -> Vec<crate::cds::Link> {
    topics
        .iter()
        .filter_map(|t| {
            Some(crate::cds::Link {
                label: t.title.clone(),
                url: t.url.clone()?,
                link_type: crate::cds::LinkType::Absolute,
                app_context: None,
            })
        })
        .collect()
}

/// Assumptions stated for an order: the unknown facts the chosen candidate relies on, facts
/// found absent (with the assumption made), inferred facts, and the age assumption.
fn assumptions(
    engine: &Engine,
    facts: &PatientFacts,
    class: &Classification,
    chosen: Option<usize>,
    kind: ProcedureKind,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(i) = chosen {
        for r in &class.candidates[i].relied {
            out.push(reliance_text(facts, r));
        }
    }
    let mut named: Vec<Fact> = engine
        .variants_of_kind(kind)
        .iter()
        .flat_map(|&v| engine.variant_facts(v as usize))
        .collect();
    named.sort();
    named.dedup();
    let pathological = facts.get(Fact::Pathological).is_present();
    for f in named {
        if f == Fact::Osteoporotic && pathological {
            // Not an assumption: follows from the pathological fracture code (listed as a fact).
            continue;
        }
        match facts.get(f) {
            FactValue::Absent(t) => out.push(t.to_string()),
            FactValue::Present(e) => out.extend(e.assumption.clone()),
            FactValue::Unknown(_) => {}
        }
    }
    out.extend(facts.age_assumption.clone());
    out.extend(facts.unavailable.iter().cloned());
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_shareable_and_the_shipped_knowledge_indexes() {
        fn is<T: Send + Sync>() {}
        is::<Engine>();
        let kb = crate::knowledge::load_default().expect("shipped knowledge loads");
        Engine::new(kb).expect("shipped knowledge indexes");
    }
}

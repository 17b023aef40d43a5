//! The engine's entry point: patient record + draft orders in, per-order evaluations and the
//! CDS Hooks response out. This module is the orchestration only: facts (`facts`), recognition
//! (`orders`), classification (`classify`), the rating action (`rating`) and the card text
//! (`cards`) live in their own modules, the shared types in `types`. Pure: the clock and the uuid
//! source are passed in.

// The shared types used to live here; they stay reachable at their old paths.
pub use crate::cards::topics;
pub use crate::types::{
    Availability, DraftOrder, Evaluation, EvaluationRequest, Hook, IdSource, Options,
    OrderEvaluation, Outcome, PamaRating, PatientRecord, RandomIds, RecognizedProcedure,
    SuggestionRecord, SuggestionStyle,
};

use crate::cards::{self, CardInput};
use crate::cds::{Card, CdsResponse};
use crate::classify::{Classification, Verdict, classify, reliance_text, verdict};
use crate::facts::{FactValue, PatientFacts, RecordIndex};
use crate::fhir::{FhirDateTime, ServiceRequest};
use crate::index::Engine;
use crate::knowledge::{Category, Fact, ProcedureKind, RatingRow};
use crate::orders::recognize;
use crate::rating::{DraftJson, pama_extensions, rating_action_on};

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
    let mut orders: Vec<OrderEvaluation> = request
        .orders
        .iter()
        .map(|draft| {
            OrderRun {
                engine,
                index: &index,
                request,
                draft,
                draft_json: DraftJson::new(draft),
                options,
            }
            .run(ids, &mut response)
        })
        .collect();
    // Cards only: the rating system actions above stay one per order.
    response.cards = cards::group_cards(
        std::mem::take(&mut response.cards),
        &mut orders,
        options.group_cards_over,
    );
    response.legacy_system_actions = options.legacy_system_actions;
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
    /// The draft's JSON, parsed once for the rating update and the `update` suggestions.
    draft_json: DraftJson<'r>,
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
            // Advanced imaging this guideline does not cover: "no criteria apply", so the EHR's
            // rating box does not keep a previous order's value. Other orders: nothing.
            if self.options.rate_out_of_scope_imaging && self.engine.is_advanced_imaging(sr) {
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
                let card = cards::vcf_undetermined_card(self.engine, &order, why);
                self.push_card(&mut ev, card, ids, response);
                return ev;
            }
        }
        if let FactValue::Present(e) = facts.get(Fact::HighEnergyTrauma) {
            ev.outcome = Outcome::OutOfScope;
            self.rate(&mut ev, PamaRating::NoCriteriaApply, None, ids, response);
            ev.assumptions.extend(e.assumption.clone());
            let card = cards::out_of_scope_card(self.engine, &ev, &order, &facts, e, ids);
            self.push_card(&mut ev, card, ids, response);
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
            draft_json: &self.draft_json,
            sr,
            rec: &rec,
            facts: &facts,
            class: &class,
            options: self.options,
        };
        match verdict(self.engine, &class, rec.procedure) {
            Verdict::NoCandidate | Verdict::NotRated => {
                ev.outcome = Outcome::NoVariant;
                self.rate(&mut ev, PamaRating::NoCriteriaApply, None, ids, response);
                ev.assumptions = assumptions(self.engine, &facts, &class, None, kind);
                let card = cards::no_variant_card(&input, &ev, &order, ids);
                self.push_card(&mut ev, card, ids, response);
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
                // A rating that rests on a finding read from report text is shown with its
                // evidence (report and matched phrase) so the clinician can check the reading.
                let from_report = self.engine.variant_facts(vi).any(|f| {
                    matches!(facts.get(f), FactValue::Present(e) if e.code.starts_with("report phrase"))
                });
                let plan = cards::RatedPlan::new(&input, chosen, row);
                if plan.wants_card(row, self.options.cards_for_appropriate || from_report) {
                    let card = cards::rated_card(
                        &input,
                        &mut ev,
                        &order,
                        chosen,
                        row,
                        ratings_differ,
                        &plan,
                        ids,
                    );
                    self.push_card(&mut ev, card, ids, response);
                }
            }
            Verdict::Ambiguous { deciding } => {
                ev.outcome = Outcome::Ambiguous;
                ev.deciding_facts = deciding.iter().map(|f| f.key().to_owned()).collect();
                ev.assumptions = assumptions(self.engine, &facts, &class, None, kind);
                let card = cards::ambiguous_card(&input, &mut ev, &order, &deciding, ids);
                self.push_card(&mut ev, card, ids, response);
            }
            Verdict::Unevidenced { category } => {
                // Evidence policy: every candidate rests on an unshown must-evidence finding, so
                // "no variant fits" is possible and an appropriate rating is withheld. Reported
                // as ambiguous (no rating) with the missing findings as the deciding facts.
                let deciding = cards::missing_findings(&input);
                ev.outcome = Outcome::Ambiguous;
                ev.deciding_facts = deciding.iter().map(|f| f.key().to_owned()).collect();
                ev.assumptions = assumptions(self.engine, &facts, &class, None, kind);
                let card = cards::missing_evidence_card(&input, &mut ev, &order, category, ids);
                self.push_card(&mut ev, card, ids, response);
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
        if let Some(action) = rating_action_on(self.draft, &self.draft_json, &ext) {
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
    // Conflicting records and presumptions first: they matter most and cards cut the line.
    let mut out: Vec<String> = facts.notes.clone();
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
            FactValue::Present(e) => {
                out.extend(e.assumption.clone());
                // A finding read from report text goes to the card and the audit record as the
                // report reference and the knowledge file's matched phrase (issue 8).
                if e.code.starts_with("report phrase") {
                    out.push(format!(
                        "read from report text (verify): {}: {}",
                        f.phrase(true),
                        e.describe()
                    ));
                }
            }
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

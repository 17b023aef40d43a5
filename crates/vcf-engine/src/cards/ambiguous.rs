//! The card of an order whose candidate variants disagree (no rating; the deciding facts).

use super::{
    AltScope, CardInput, alternatives, build_suggestions, bullets, candidate_conditions, card,
    provenance, radiation_line, summary,
};
use crate::cds::{Card, Indicator, SelectionBehavior};
use crate::facts::FactValue;
use crate::knowledge::{Fact, ProcedureKind};
use crate::types::{IdSource, OrderEvaluation};

/// The card of an order the candidate variants rate differently: the deciding facts, the
/// rating either way, and alternatives rated Usually appropriate in every candidate.
pub fn ambiguous_card(
    input: &CardInput,
    ev: &mut OrderEvaluation,
    order: &str,
    deciding: &[Fact],
    ids: &mut dyn IdSource,
) -> Card {
    let engine = input.engine;
    let kb = engine.knowledge();
    let class = input.class;
    let card_uuid = ids.next_uuid().to_string();
    let alts = alternatives(
        engine,
        class,
        input.rec.procedure,
        AltScope::All,
        input.facts,
        input.rec.region,
    );
    let built = build_suggestions(input, &alts, ids);
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
        detail.push_str(&bullets(
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
            let cond = candidate_conditions(input.facts, class, i);
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
    detail.push_str(&bullets("Rating either way", &either));
    detail.push_str(
        "\n\nRecord the deciding fact (problem list or the order's reason) to get a rating.",
    );
    if kb.procedures[input.rec.procedure].kind == ProcedureKind::Imaging
        && let Some(line) =
            radiation_line(engine, input.rec.procedure, input.rec.region, input.facts)
    {
        detail.push_str("\n\n");
        detail.push_str(&line);
    }
    detail.push_str(&bullets("Assumptions", &ev.assumptions));
    if !built.suggestions.is_empty() {
        detail.push_str(
            "\n\nThe suggestions are rated Usually appropriate in every one of these scenarios.",
        );
    }
    detail.push_str(&bullets("Not suggested, and safety notes", &built.withheld));
    detail.push_str(&provenance(engine, None, None));
    let mut card = card(
        engine,
        card_uuid,
        summary(order, &rest),
        detail,
        Indicator::Info,
    );
    if !built.suggestions.is_empty() {
        card.selection_behavior = Some(SelectionBehavior::AtMostOne);
    }
    card.suggestions = built.suggestions;
    ev.suggestions = built.records;
    ev.safety_notes = built.withheld;
    card
}

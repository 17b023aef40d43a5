//! The card of a rated order (`warning` or `info`).

use super::{
    AltScope, CardInput, alternatives, build_suggestions, bullets, card, facts_used,
    override_reasons, procedure_label, provenance, radiation_line, safety_block, summary,
};
use crate::cds::{Card, Indicator, SelectionBehavior};
use crate::knowledge::{Category, ProcedureKind, RatingRow};
use crate::types::{IdSource, OrderEvaluation};

/// The card of a rated order: `warning` when Usually not appropriate, else `info`; better-rated
/// alternatives as suggestions. Records the suggestions and safety notes on `ev`.
pub fn rated_card(
    input: &CardInput,
    ev: &mut OrderEvaluation,
    order: &str,
    chosen: usize,
    row: &RatingRow,
    ratings_differ: bool,
    ids: &mut dyn IdSource,
) -> Card {
    let engine = input.engine;
    let kb = engine.knowledge();
    let class = input.class;
    let vi = class.candidates[chosen].variant;
    let variant = &kb.variants[vi];
    let cat = row.category.normalized();
    let card_uuid = ids.next_uuid().to_string();
    let alts = if cat == Category::UsuallyAppropriate {
        Vec::new()
    } else {
        alternatives(
            engine,
            class,
            input.rec.procedure,
            AltScope::Chosen(chosen),
            input.facts,
            input.rec.region,
        )
    };
    let built = build_suggestions(input, &alts, ids);
    let ordered_label = procedure_label(engine, input.rec.procedure, input.rec.region);
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
            radiation_line(engine, input.rec.procedure, input.rec.region, input.facts)
    {
        detail.push_str("\n\n");
        detail.push_str(&line);
    }
    detail.push_str(&bullets("Facts used", &facts_used(engine, input.facts, vi)));
    detail.push_str(&bullets("Assumptions", &ev.assumptions));
    let alt_lines: Vec<String> = alts
        .iter()
        .map(|a| {
            let mut s = format!(
                "{}: {}, {}/9, strength of evidence {}",
                procedure_label(engine, a.procedure, input.rec.region),
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
    detail.push_str(&bullets("Better-rated alternatives (ACR)", &alt_lines));
    let mut notes = built.withheld.clone();
    if let Some(why) = safety_block(engine, &kb.procedures[input.rec.procedure], input.facts) {
        notes.push(format!("The ordered study: {why}."));
    }
    detail.push_str(&bullets("Not suggested, and safety notes", &notes));
    detail.push_str(&provenance(engine, Some(vi), Some(row)));
    let rest = format!(": {} (ACR {}/9)", row.category.label(), row.rating);
    let indicator = if cat == Category::UsuallyNotAppropriate {
        Indicator::Warning
    } else {
        Indicator::Info
    };
    let mut card = card(engine, card_uuid, summary(order, &rest), detail, indicator);
    if !built.suggestions.is_empty() {
        card.selection_behavior = Some(SelectionBehavior::AtMostOne);
    }
    card.suggestions = built.suggestions;
    if indicator == Indicator::Warning {
        card.override_reasons = override_reasons(engine);
    }
    ev.suggestions = built.records;
    ev.safety_notes = notes;
    card
}

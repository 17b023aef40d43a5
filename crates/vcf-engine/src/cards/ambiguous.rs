//! The card of an order whose candidate variants disagree (no rating; the deciding facts).

use super::suggestions::Built;
use super::text::DETAIL_MAX_CHARS;
use super::{
    AltScope, CardInput, alternatives, assumed_line, build_suggestions, bullets,
    candidate_conditions, card, radiation_short, source_line, summary,
};
use crate::cds::{Card, Indicator};
use crate::facts::FactValue;
use crate::facts::cut_words;
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
    let built = build_suggestions(input, &alts, false, ids);
    let rest = if deciding.is_empty() {
        ": fits overlapping ACR VCF scenarios, not rated".to_owned()
    } else {
        let names: Vec<&str> = deciding.iter().take(2).map(|f| f.name()).collect();
        format!(": ACR rating depends on {}", names.join(" and "))
    };
    // The usual cuts, and tighter ones when a card with three deciding facts, three
    // scenarios, assumptions and two withheld alternatives would not fit the detail budget
    // (a property test found one at 1,602 characters).
    let mut detail = detail_text(input, ev, deciding, &built, &NORMAL);
    if detail.chars().count() > DETAIL_MAX_CHARS {
        detail = detail_text(input, ev, deciding, &built, &TIGHT);
    }
    let mut card = card(
        engine,
        card_uuid,
        summary(order, &rest),
        detail,
        Indicator::Info,
    );
    card.set_suggestions(built.suggestions);
    ev.suggestions = built.records;
    ev.safety_notes = built.withheld;
    card
}

/// Longest texts (characters) of the parts of an ambiguous card's detail.
struct Cuts {
    deciding: usize,
    scenario: usize,
    assumed: usize,
    withheld: usize,
}

const NORMAL: Cuts = Cuts {
    deciding: 130,
    scenario: 110,
    assumed: 200,
    withheld: 260,
};

/// Worst case with these (three deciding facts, three scenarios, assumptions, two withheld
/// alternatives) about 1,460 characters.
const TIGHT: Cuts = Cuts {
    deciding: 90,
    scenario: 70,
    assumed: 100,
    withheld: 140,
};

fn detail_text(
    input: &CardInput,
    ev: &OrderEvaluation,
    deciding: &[Fact],
    built: &Built,
    cuts: &Cuts,
) -> String {
    let engine = input.engine;
    let kb = engine.knowledge();
    let class = input.class;
    let mut detail = String::from(
        "**Not rated:** the patient fits several ACR scenarios that rate this order differently.",
    );
    if deciding.is_empty() {
        detail.push_str(" No single missing fact separates them.");
    } else {
        let lines: Vec<String> = deciding
            .iter()
            .take(3)
            .map(|f| match input.facts.get(*f) {
                FactValue::Unknown(why) => {
                    cut_words(&format!("{}: {why}", f.name()), cuts.deciding)
                }
                _ => f.name().to_owned(),
            })
            .collect();
        detail.push_str(&bullets("Deciding facts, not in the record", &lines));
    }
    let either: Vec<String> = class
        .candidates
        .iter()
        .enumerate()
        .take(3)
        .map(|(i, c)| {
            let v = &kb.variants[c.variant];
            let cond = candidate_conditions(input.facts, class, i);
            let title = format!("{} {}", v.id, v.title);
            let head = cut_words(&format!("{title}{cond}"), cuts.scenario);
            match engine.rating(c.variant, input.rec.procedure) {
                Some(r) => format!("{head}: **{}**, {}/9", r.category.label(), r.rating),
                None => format!("{head}: not rated"),
            }
        })
        .collect();
    detail.push_str(&bullets("Rating either way", &either));
    // Never "no single missing fact" and "record the deciding fact" together (issue 8).
    if !deciding.is_empty() {
        detail.push_str(
            "\n\nRecord the deciding fact (problem list, report or the order's reason) to get a rating.",
        );
    }
    if kb.procedures[input.rec.procedure].kind == ProcedureKind::Imaging
        && let Some(r) = radiation_short(
            engine,
            input.rec.procedure,
            input.rec.region,
            input.facts.pediatric,
        )
    {
        detail.push_str(&format!(" Ordered study: {r}."));
    }
    detail.push_str(&assumed_line(&ev.assumptions, cuts.assumed));
    if !built.suggestions.is_empty() {
        detail.push_str(
            "\n\nThe suggestions are Usually appropriate in every one of these scenarios.",
        );
    }
    for w in built.withheld.iter().take(2) {
        detail.push_str(&format!("\n\n{}", cut_words(w, cuts.withheld)));
    }
    detail.push_str(&source_line(engine, None));
    detail
}

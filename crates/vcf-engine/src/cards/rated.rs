//! The card of a rated order, written for the point of order (issue 9): a summary naming the
//! order and the verdict, then at most about a dozen short lines: verdict and rating, the
//! scenario in plain words, a safety line when the ordered study is unsafe for this patient, up
//! to three deciding facts with their record, the assumptions, the better alternatives with
//! their radiation, and one source line. The full provenance is in the audit record and the
//! card's `source`.
//!
//! Which card an order gets (one card per order, so its feedback joins one audit record):
//! - Usually not appropriate: `warning`, better-rated alternatives as suggestions;
//! - May be appropriate: `info`, the same;
//! - Usually appropriate: no card, unless `cards_for_appropriate`, or
//! - whatever the rating, the ordered study fails a safety check (MR-unsafe device; iodinated
//!   contrast with low eGFR, kidney disease or a contrast allergy): `warning` with the evidence
//!   and what to do, safe alternatives rated at least as well as suggestions; a gadolinium study
//!   with low eGFR gets the group II note instead (ACR-NKF 2021);
//! - a child with an ionizing order and a study rated at least as well with less radiation:
//!   that study as a one-click switch (`pediatric_radiation_cards`).

use super::topics::{BACK_PAIN_CHILD, related_topics, topic_links};
use super::{
    AltScope, Alternative, CardInput, alternatives, assumed_line, build_suggestions, card,
    facts_used, gadolinium_note, override_reasons, pediatric_alternatives, procedure_label,
    radiation_short, safety_block, source_line, summary,
};
use crate::cds::{Card, Coding, Indicator};
use crate::facts::cut_words;
use crate::knowledge::{Category, OverrideUse, ProcedureKind, RatingRow};
use crate::types::{IdSource, OrderEvaluation};
use std::fmt::Write;

/// Longest assumptions line (characters).
const ASSUMPTIONS_MAX: usize = 200;

/// What a rated order's card will say, decided before the card is built.
pub struct RatedPlan {
    /// The ordered study's safety problem for this patient (shown whatever the rating).
    pub hazard: Option<String>,
    /// Gadolinium with low eGFR: the study stands, with the group II agent named (evidence,
    /// advice).
    pub contrast_note: Option<(String, String)>,
    /// Studies rated at least as well with less radiation, for a child.
    pub pediatric: Vec<Alternative>,
}

impl RatedPlan {
    pub fn new(input: &CardInput, chosen: usize, row: &RatingRow) -> RatedPlan {
        let engine = input.engine;
        let p = &engine.knowledge().procedures[input.rec.procedure];
        let pediatric =
            if input.options.pediatric_radiation_cards && p.kind == ProcedureKind::Imaging {
                pediatric_alternatives(
                    engine,
                    input.class.candidates[chosen].variant,
                    input.rec.procedure,
                    row.rating,
                    input.facts,
                    input.rec.region,
                )
                .into_iter()
                .filter(|a| {
                    safety_block(
                        engine,
                        &engine.knowledge().procedures[a.procedure],
                        input.facts,
                    )
                    .is_none()
                })
                .collect()
            } else {
                Vec::new()
            };
        RatedPlan {
            hazard: safety_block(engine, p, input.facts),
            contrast_note: gadolinium_note(engine, p, input.facts),
            pediatric,
        }
    }

    /// Whether the order gets a card at all.
    pub fn wants_card(&self, row: &RatingRow, cards_for_appropriate: bool) -> bool {
        row.category.normalized() != Category::UsuallyAppropriate
            || cards_for_appropriate
            || self.hazard.is_some()
            || self.contrast_note.is_some()
            || !self.pediatric.is_empty()
    }
}

/// The card of a rated order (see the module comment). Records the suggestions and safety
/// notes on `ev`.
#[allow(clippy::too_many_arguments)]
pub fn rated_card(
    input: &CardInput,
    ev: &mut OrderEvaluation,
    order: &str,
    chosen: usize,
    row: &RatingRow,
    ratings_differ: bool,
    plan: &RatedPlan,
    ids: &mut dyn IdSource,
) -> Card {
    let engine = input.engine;
    let kb = engine.knowledge();
    let class = input.class;
    let vi = class.candidates[chosen].variant;
    let variant = &kb.variants[vi];
    let cat = row.category.normalized();
    let proc_ = &kb.procedures[input.rec.procedure];
    let region = input.rec.region;
    let pediatric = input.facts.pediatric;
    let card_uuid = ids.next_uuid().to_string();

    // Alternatives: better rated (not for a Usually appropriate order), then, for a child, those
    // rated as well with less radiation; with a hazard, safe studies rated at least as well.
    let mut alts = if cat == Category::UsuallyAppropriate {
        Vec::new()
    } else {
        alternatives(
            engine,
            class,
            input.rec.procedure,
            AltScope::Chosen(chosen),
            input.facts,
            region,
        )
    };
    for a in &plan.pediatric {
        if !alts.iter().any(|b| b.procedure == a.procedure) {
            alts.push(a.clone());
        }
    }
    if plan.hazard.is_some() {
        for a in safe_equivalents(input, vi) {
            if !alts.iter().any(|b| b.procedure == a.procedure) {
                alts.push(a);
            }
        }
    }
    let built = build_suggestions(input, &alts, cat == Category::UsuallyNotAppropriate, ids);
    let suggested: Vec<&str> = built
        .records
        .iter()
        .map(|r| r.procedure_id.as_str())
        .collect();

    // Verdict and rating, with the ordered study's radiation for imaging.
    let ordered_label = procedure_label(engine, input.rec.procedure, region);
    let mut detail = format!(
        "**{}, {}/9** for {ordered_label} (strength of evidence {})",
        row.category.label(),
        row.rating,
        row.evidence
    );
    if proc_.kind == ProcedureKind::Imaging
        && let Some(r) = radiation_short(engine, input.rec.procedure, region, pediatric)
    {
        let _ = write!(detail, ", {r}");
        if pediatric {
            let _ = write!(
                detail,
                " (pediatric level, age {}: keep radiation as low as reasonably achievable, ALARA)",
                input.facts.age.unwrap_or_default()
            );
        }
    }
    detail.push('.');
    if ratings_differ {
        detail.push_str(" Lowest of the scenarios that fit.");
    }
    // A candidate without a row for the procedure does not block the rating (issue 8).
    let unrated: Vec<&str> = crate::classify::not_rated_in(engine, class, input.rec.procedure)
        .into_iter()
        .map(|i| kb.variants[class.candidates[i].variant].id.as_str())
        .collect();
    if !unrated.is_empty() {
        let _ = write!(
            detail,
            " Not rated in {} (also possible for this patient); every scenario that rates it agrees.",
            unrated.join(", ")
        );
    }
    let _ = write!(detail, "\n\n**Scenario:** {}", variant.title);
    if let Some(h) = &plan.hazard {
        let _ = write!(detail, "\n\n**Safety:** {h}.");
    }
    if let Some((why, advice)) = &plan.contrast_note {
        let _ = write!(detail, "\n\n**Contrast:** {why}. {advice}");
    }
    let facts = facts_used(engine, input.facts, vi, 3);
    if !facts.is_empty() {
        detail.push_str("\n\n**Deciding facts:**");
        for f in &facts {
            let _ = write!(detail, "\n- {f}");
        }
    }
    detail.push_str(&assumed_line(&ev.assumptions, ASSUMPTIONS_MAX));
    let alt_lines: Vec<String> = alts
        .iter()
        .filter(|a| suggested.contains(&kb.procedures[a.procedure].id.as_str()))
        .take(3)
        .map(|a| {
            let mut s = format!(
                "{}: {}/9",
                procedure_label(engine, a.procedure, region),
                a.rating
            );
            if kb.procedures[a.procedure].kind == ProcedureKind::Imaging
                && let Some(r) = radiation_short(engine, a.procedure, region, pediatric)
            {
                let _ = write!(s, ", {r}");
            }
            s
        })
        .collect();
    if !alt_lines.is_empty() {
        detail.push_str(if cat == Category::UsuallyAppropriate {
            "\n\n**Rated as well, less radiation or safer:**"
        } else {
            "\n\n**Better rated:**"
        });
        for l in &alt_lines {
            let _ = write!(detail, "\n- {l}");
        }
    }
    // What was not suggested, and why (the group II note once, on the order or a suggestion).
    let mut shown = 0;
    let mut gad_shown = plan.contrast_note.is_some();
    for w in &built.withheld {
        let gad = w.contains("group II");
        let same_hazard = plan.hazard.as_deref().is_some_and(|h| w.contains(h));
        if shown == 2 || (gad && gad_shown) || same_hazard {
            continue;
        }
        gad_shown |= gad;
        shown += 1;
        let _ = write!(detail, "\n\n{}", cut_words(w, 260));
    }
    detail.push_str(&source_line(engine, Some(vi)));

    // Summary: the order and the verdict (and the safety problem or the child's switch).
    let verdict = format!("{} (ACR {}/9)", row.category.label(), row.rating);
    let rest = if plan.hazard.is_some() {
        format!(": safety check before ordering; {verdict}")
    } else if cat == Category::UsuallyAppropriate
        && let Some(a) = plan.pediatric.first()
        && suggested.contains(&kb.procedures[a.procedure].id.as_str())
    {
        let less = match radiation_short(engine, a.procedure, region, true).as_deref() {
            Some("no radiation") => "no radiation".to_owned(),
            _ => "less radiation".to_owned(),
        };
        format!(
            ": {verdict}; for a child, {} rates {}/9 with {less}",
            procedure_label(engine, a.procedure, region),
            a.rating
        )
    } else {
        format!(": {verdict}")
    };
    let indicator = if cat == Category::UsuallyNotAppropriate || plan.hazard.is_some() {
        Indicator::Warning
    } else {
        Indicator::Info
    };
    let mut card = card(engine, card_uuid, summary(order, &rest), detail, indicator);
    card.source.topic = Some(Coding {
        system: format!("{}#variant", kb.guideline.auc_uri),
        code: variant.id.clone(),
        display: Some(variant.title.clone()),
    });
    if !plan.pediatric.is_empty() {
        card.links
            .extend(topic_links(&related_topics(engine, &[BACK_PAIN_CHILD])));
    }
    card.set_suggestions(built.suggestions);
    if indicator == Indicator::Warning {
        let kind = match proc_.kind {
            ProcedureKind::Imaging => OverrideUse::Imaging,
            ProcedureKind::Treatment => OverrideUse::Treatment,
        };
        if plan.hazard.is_some() {
            card.override_reasons = override_reasons(engine, OverrideUse::Safety);
        }
        if cat == Category::UsuallyNotAppropriate {
            card.override_reasons.extend(override_reasons(engine, kind));
        }
    }
    let mut notes = built.withheld;
    if let Some(h) = &plan.hazard {
        notes.insert(0, format!("The ordered study: {h}."));
    }
    if let Some((why, advice)) = &plan.contrast_note {
        notes.insert(0, format!("The ordered study: {why}. {advice}"));
    }
    ev.suggestions = built.records;
    ev.safety_notes = notes;
    card
}

/// For an ordered study that is unsafe for the patient: the safe Usually appropriate studies of
/// the variant, best first (e.g. CT without contrast, 8/9, when MRI is unsafe in variant 1).
fn safe_equivalents(input: &CardInput, variant: usize) -> Vec<Alternative> {
    let engine = input.engine;
    let kb = engine.knowledge();
    let kind = kb.procedures[input.rec.procedure].kind;
    let mut out: Vec<Alternative> = kb.variants[variant]
        .ratings
        .iter()
        .filter_map(|r| {
            let q = engine.procedure_index(&r.procedure)?;
            (q != input.rec.procedure
                && kb.procedures[q].kind == kind
                && r.category.normalized() == Category::UsuallyAppropriate
                && safety_block(engine, &kb.procedures[q], input.facts).is_none())
            .then(|| Alternative {
                procedure: q,
                variant,
                rating: r.rating,
                category: r.category,
                evidence: r.evidence.clone(),
            })
        })
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse(a.rating));
    out
}

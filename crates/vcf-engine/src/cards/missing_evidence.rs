//! The card of an order whose rating would rest on a finding the guideline makes decisive and
//! the record does not show (evidence policy, `Verdict::Unevidenced`): no rating, the finding
//! that would rate it and the variant it would put the patient in, and, when the finding is
//! marrow edema / cleft and no spine MRI is on record within the new-fracture window, a
//! suggestion to order MRI of the spine without contrast (the study that establishes it).

use super::suggestions::{code_keys, codes_for, new_order};
use super::text::procedure_label;
use super::{CardInput, assumed_line, bullets, card, source_line, summary};
use crate::cds::{Action, ActionType, Card, Indicator, Suggestion};
use crate::classify::{Reliance, classify};
use crate::facts::{FactValue, cut_words};
use crate::knowledge::{Category, Fact, ProcedureKind};
use crate::types::{IdSource, OrderEvaluation, SuggestionRecord};

/// The MRI procedure that establishes marrow edema / cleft (knowledge procedure id).
const MRI_WITHOUT_CONTRAST: &str = "MRI_SPINE_WO";

fn reliance_phrase(r: &Reliance) -> String {
    match r {
        Reliance::Fact(f, b) => f.phrase(*b).to_owned(),
        Reliance::Any(fs) => fs
            .iter()
            .map(|f| f.phrase(true))
            .collect::<Vec<_>>()
            .join(", or "),
    }
}

/// The missing must-evidence facts of every candidate, deduplicated (deciding facts).
pub fn missing_findings(input: &CardInput) -> Vec<Fact> {
    let mut out: Vec<Fact> = input
        .class
        .candidates
        .iter()
        .flat_map(|c| c.unevidenced.iter())
        .flat_map(|r| match r {
            Reliance::Fact(f, _) => vec![*f],
            Reliance::Any(fs) => fs.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Builds the card (info) and records its suggestion in `ev`.
pub fn missing_evidence_card(
    input: &CardInput,
    ev: &mut OrderEvaluation,
    order: &str,
    agreed: Category,
    ids: &mut dyn IdSource,
) -> Card {
    let engine = input.engine;
    let kb = engine.knowledge();
    let class = input.class;
    let card_uuid = ids.next_uuid().to_string();
    let mut lines = Vec::new();
    for c in &class.candidates {
        let v = &kb.variants[c.variant];
        let needs: Vec<String> = c.unevidenced.iter().map(reliance_phrase).collect();
        let rated = match engine.rating(c.variant, input.rec.procedure) {
            Some(r) => format!("{}/9", r.rating),
            None => "not rated in this scenario".into(),
        };
        // Say why only when it is more than "not coded" (uncertain, wrong modality, conflict).
        let why: Vec<String> = c
            .unevidenced
            .iter()
            .flat_map(|r| match r {
                Reliance::Fact(f, _) => vec![*f],
                Reliance::Any(fs) => fs.clone(),
            })
            .filter_map(|f| match input.facts.get(f) {
                FactValue::Unknown(w) if !w.is_empty() && !w.starts_with("not coded") => {
                    Some(cut_words(w, 120))
                }
                _ => None,
            })
            .collect();
        lines.push(format!(
            "{} needs {} ({rated}){}",
            v.id,
            needs.join(" and "),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {}", why.join("; "))
            }
        ));
    }
    let first = class.candidates.iter().find_map(|c| {
        c.unevidenced
            .first()
            .map(|r| (c.variant, reliance_phrase(r)))
    });
    let rest = match &first {
        Some((v, phrase)) => format!(
            ": not rated, record {} ({})",
            short(phrase),
            kb.variants[*v].id
        ),
        None => ": not rated, a deciding finding is not on record".into(),
    };
    let mut detail = format!(
        "**Not rated.** ACR rates this order **{}** only with a finding this record does not show; without it the patient may fit no ACR scenario.",
        agreed.label()
    );
    detail.push_str(&bullets("What would rate it", &lines));
    detail.push_str("\n\nRecord it (MRI report, problem list or the order's reason) and the same order is rated.");

    // MRI without contrast establishes marrow edema / cleft: suggest it when none is recent.
    let mut suggestions = Vec::new();
    let needs_edema = class.candidates.iter().any(|c| {
        c.unevidenced.iter().any(|r| match r {
            Reliance::Fact(f, true) => *f == Fact::MarrowEdemaOrCleft,
            Reliance::Any(fs) => fs.contains(&Fact::MarrowEdemaOrCleft),
            _ => false,
        })
    });
    if needs_edema && input.facts.spine_mri.is_none() {
        match mri_suggestion(input, ids) {
            Ok((s, rec)) => {
                detail.push_str(&format!(
                    "\n\nNo spine MRI within {} days: MRI without IV contrast shows marrow edema (STIR) or a cleft.",
                    kb.policy.new_fracture_window_days
                ));
                ev.suggestions.push(rec);
                suggestions.push(s);
            }
            Err(why) => detail.push_str(&format!(
                "\n\nNo recent spine MRI; MRI without IV contrast would show the finding ({}).",
                cut_words(&why, 100)
            )),
        }
    } else if let Some(e) = &input.facts.spine_mri {
        detail.push_str(&format!(
            "\n\nThe spine MRI on record ({}) does not state it.",
            e.source
        ));
    }
    detail.push_str(&assumed_line(&ev.assumptions, 200));
    detail.push_str(&source_line(engine, None));
    let mut card = card(
        engine,
        card_uuid,
        summary(order, &rest),
        detail,
        Indicator::Info,
    );
    card.set_suggestions(suggestions);
    card
}

fn short(phrase: &str) -> String {
    phrase
        .replace(
            "bone marrow edema or intravertebral cleft on MRI",
            "marrow edema or cleft on MRI",
        )
        .replace("ongoing or increasing mechanical pain", "mechanical pain")
}

/// "Order MRI spine without contrast" (added next to the draft, which stays): rated as the
/// imaging variants for this patient rate it (every candidate must call it Usually
/// appropriate), codes for the draft's region.
fn mri_suggestion(
    input: &CardInput,
    ids: &mut dyn IdSource,
) -> Result<(Suggestion, SuggestionRecord), String> {
    let engine = input.engine;
    let kb = engine.knowledge();
    let q = engine
        .procedure_index(MRI_WITHOUT_CONTRAST)
        .ok_or("no MRI without contrast in the knowledge base")?;
    let imaging = classify(engine, input.facts, ProcedureKind::Imaging);
    let rows: Vec<_> = imaging
        .candidates
        .iter()
        .filter_map(|c| engine.rating(c.variant, q))
        .collect();
    if rows.is_empty()
        || rows
            .iter()
            .any(|r| r.category.normalized() != Category::UsuallyAppropriate)
    {
        return Err("not rated Usually appropriate for this patient's imaging scenarios".into());
    }
    let low = rows.iter().min_by_key(|r| r.rating).expect("non-empty");
    let p = &kb.procedures[q];
    if let Some(why) = super::safety_block(engine, p, input.facts) {
        return Err(format!("not suggested: {why}"));
    }
    let targets = codes_for(engine, q, input.rec.region, input.sr)?;
    let mut actions = Vec::new();
    let mut labels = Vec::new();
    let mut codes = Vec::new();
    for (region, codings) in targets {
        let name = procedure_label(engine, q, region);
        codes.extend(code_keys(codings));
        let mut resource = new_order(input, p, &name, codings.to_vec(), false, ids)
            .map_err(|e| format!("could not build the order ({e})"))?;
        // The draft is a treatment order: its category does not describe an imaging study.
        if kb.procedures[input.rec.procedure].kind != ProcedureKind::Imaging
            && let Some(o) = resource.as_object_mut()
        {
            o.remove("category");
        }
        actions.push(Action {
            action_type: ActionType::Create,
            description: format!("Add a draft order: {name}"),
            resource: Some(resource.into()),
            resource_id: None,
        });
        labels.push(name);
    }
    let label = format!(
        "Order {} first ({}, {}/9)",
        labels.join(" + "),
        low.category.label(),
        low.rating
    );
    let uuid = ids.next_uuid().to_string();
    Ok((
        Suggestion {
            label: label.clone(),
            uuid: Some(uuid.clone()),
            is_recommended: Some(true),
            actions,
        },
        SuggestionRecord {
            procedure_id: p.id.clone(),
            rating: low.rating,
            category: low.category,
            label,
            codes,
            uuid,
            recommended: true,
        },
    ))
}

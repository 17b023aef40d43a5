//! The card of an order no variant of the guideline rates ("no criteria apply").

use super::topics::{self, related_topics, topic_line, topic_links};
use super::{CardInput, assumed_line, bullets, card, source_line, summary};
use crate::cds::{Card, Indicator};
use crate::facts::FactValue;
use crate::facts::cut_words;
use crate::knowledge::{ProcedureKind, Region};
use crate::types::{IdSource, OrderEvaluation};

/// The card of an order no variant of the guideline rates: why each variant does not fit, and
/// related ACR topics.
pub fn no_variant_card(
    input: &CardInput,
    ev: &OrderEvaluation,
    order: &str,
    ids: &mut dyn IdSource,
) -> Card {
    let engine = input.engine;
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
    let why: Vec<String> = why.iter().take(3).map(|w| cut_words(w, 160)).collect();
    let mut detail = format!(
        "**No criteria apply:** no scenario of the ACR VCF criteria fits this patient and order.{}",
        bullets("Why", &why)
    );
    detail.push_str(&assumed_line(&ev.assumptions, 200));
    detail.push_str(&bullets(
        "Related ACR topics that may apply",
        &related
            .iter()
            .take(3)
            .map(|t| topic_line(t))
            .collect::<Vec<_>>(),
    ));
    detail.push_str(&source_line(engine, None));
    let mut card = card(
        engine,
        ids.next_uuid().to_string(),
        summary(order, ": no ACR VCF scenario fits this patient, not rated"),
        detail,
        Indicator::Info,
    );
    card.links.extend(topic_links(&related));
    card
}

//! The card of an order for a high-energy traumatic fracture (outside the VCF guideline).

use super::topics::{self, related_topics, topic_line, topic_links};
use super::{assumed_line, bullets, card, source_line, summary};
use crate::cds::{Card, Indicator};
use crate::facts::{Evidence, PatientFacts};
use crate::index::Engine;
use crate::types::{IdSource, OrderEvaluation};

/// The card of an order for a high-energy traumatic fracture: outside this guideline, with the
/// applicable ACR topic.
pub fn out_of_scope_card(
    engine: &Engine,
    ev: &OrderEvaluation,
    order: &str,
    facts: &PatientFacts,
    evidence: &Evidence,
    ids: &mut dyn IdSource,
) -> Card {
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
        evidence.short()
    );
    detail.push_str(&assumed_line(&ev.assumptions, 200));
    detail.push_str("\n\nIf this is a low-energy (fragility) fracture, record osteoporosis or the fracture's cause on the problem list to get a rating under the VCF criteria.");
    detail.push_str(&bullets(
        "Applicable ACR topic",
        &related.iter().map(|t| topic_line(t)).collect::<Vec<_>>(),
    ));
    detail.push_str(&source_line(engine, None));
    let rest = format!(": traumatic fracture, outside the ACR VCF criteria (see {short})");
    let mut card = card(
        engine,
        ids.next_uuid().to_string(),
        summary(order, &rest),
        detail,
        Indicator::Info,
    );
    card.links.extend(topic_links(&related));
    card
}

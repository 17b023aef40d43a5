//! Related ACR topics named on cards (ids are keys of `related_topics` in the knowledge file).

use crate::cds::{Link, LinkType};
use crate::index::Engine;
use crate::knowledge::RelatedTopic;

pub const ACUTE_SPINAL_TRAUMA: &str = "acute-spinal-trauma";
pub const SUSPECTED_SPINE_TRAUMA_CHILD: &str = "suspected-spine-trauma-child";
pub const LOW_BACK_PAIN: &str = "low-back-pain";
pub const THORACIC_BACK_PAIN: &str = "thoracic-back-pain";
pub const BACK_PAIN_CHILD: &str = "back-pain-child";

/// The related topics of the knowledge file with these ids, in this order.
pub fn related_topics<'k>(engine: &'k Engine, wanted: &[&str]) -> Vec<&'k RelatedTopic> {
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

/// A card link per topic that has a URL.
pub fn topic_links(topics: &[&RelatedTopic]) -> Vec<Link> {
    topics
        .iter()
        .filter_map(|t| {
            Some(Link {
                label: t.title.clone(),
                url: t.url.clone()?,
                link_type: LinkType::Absolute,
                app_context: None,
            })
        })
        .collect()
}

/// One bullet naming a related topic and when it applies, short enough for a card.
pub fn topic_line(t: &RelatedTopic) -> String {
    crate::facts::cut_words(
        &format!(
            "{}: {}",
            t.title
                .trim_start_matches("ACR Appropriateness Criteria")
                .trim(),
            t.when
        ),
        160,
    )
}

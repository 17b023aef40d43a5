//! The card of an order for which whether the patient has a VCF cannot be determined (the
//! problem list could not be retrieved): no rating, and why.

use super::{card, source_line, summary};
use crate::cds::{Card, Indicator};
use crate::index::Engine;

/// Argonaut: no rating without enough information; the card says why instead.
pub fn vcf_undetermined_card(engine: &Engine, order: &str, why: &str) -> Card {
    let detail = format!(
        "No appropriateness rating: whether the patient has a vertebral compression \
         fracture cannot be determined because {why}. Re-run the check when the \
         problem list is available, or add the fracture as the order's reason.{}",
        source_line(engine, None)
    );
    let summary = summary(
        order,
        ": not rated, the problem list could not be retrieved",
    );
    card(engine, String::new(), summary, detail, Indicator::Info)
}

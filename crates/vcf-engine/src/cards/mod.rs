//! Cards: one per draft order that needs one (many identical ones grouped, `grouped`), with
//! alternatives as suggestions. The card text
//! lives here; `evaluate` decides which card an order gets.
//!
//! - Usually not appropriate: `warning`; one suggestion per Usually appropriate alternative, best
//!   first, the top one recommended; each deletes the draft and creates the alternative (same
//!   patient, region, reason); override reasons; a link to the guideline.
//! - May be appropriate: `info`, with the Usually appropriate alternatives.
//! - Usually appropriate: no card unless `Options::cards_for_appropriate`.
//! - Ambiguous, no variant, out of scope, VCF undeterminable: `info`.
//!
//! Alternatives are never rated lower than the order (they must be Usually appropriate and rated
//! strictly higher in every candidate variant). For children, equally rated alternatives are
//! ordered by lower radiation. MRI is withheld when an MR-unsafe device is on record, contrast
//! studies when eGFR is below the policy threshold, kidney disease/dialysis is coded, or (for
//! iodinated contrast) a contrast allergy is on record; the card says which and why.
//!
//! One file per job: `text` (shared wording: summary, bullets, provenance, labels), `alternatives`
//! (which procedures to suggest, safety screening), `suggestions` (the suggestion actions and the
//! orders they create), `grouped` (one card for many orders with the same card), `override_reasons`, `topics` (related ACR topics), and one file per card
//! kind (`rated`, `ambiguous`, `no_variant`, `out_of_scope`, `undetermined`).

mod alternatives;
mod ambiguous;
mod grouped;
mod missing_evidence;
mod no_variant;
mod out_of_scope;
mod override_reasons;
mod rated;
mod suggestions;
mod text;
pub mod topics;
mod undetermined;

pub use alternatives::{
    AltScope, Alternative, alternatives, gadolinium_note, pediatric_alternatives, safety_block,
};
pub use ambiguous::ambiguous_card;
pub use grouped::group_cards;
pub use missing_evidence::{missing_evidence_card, missing_findings};
pub use no_variant::no_variant_card;
pub use out_of_scope::out_of_scope_card;
pub use override_reasons::override_reasons;
pub use rated::{RatedPlan, rated_card};
pub use suggestions::{Built, build_suggestions};
pub use text::{
    assumed_line, bullets, candidate_conditions, facts_used, order_display, procedure_label,
    radiation_line, radiation_short, source_line, summary,
};
pub use undetermined::vcf_undetermined_card;

use crate::cds::{Card, Indicator, Link, LinkType, Source};
use crate::classify::Classification;
use crate::facts::PatientFacts;
use crate::fhir::ServiceRequest;
use crate::index::Engine;
use crate::orders::Recognition;
use crate::types::{DraftOrder, EvaluationRequest, Options};

/// Everything a card for one order is built from.
pub struct CardInput<'a> {
    pub engine: &'a Engine,
    pub req: &'a EvaluationRequest<'a>,
    pub draft: &'a DraftOrder,
    /// The draft's JSON (parsed once per order; `update` suggestions edit a copy).
    pub draft_json: &'a crate::rating::DraftJson<'a>,
    pub sr: &'a ServiceRequest,
    pub rec: &'a Recognition,
    pub facts: &'a PatientFacts,
    pub class: &'a Classification,
    pub options: &'a Options,
}

/// Label of the card source, e.g. "ACR Appropriateness Criteria® Management of Vertebral
/// Compression Fractures (2022 update)".
pub fn source(engine: &Engine) -> Source {
    let g = &engine.knowledge().guideline;
    Source {
        label: format!("{} ({})", g.title, g.revision),
        url: Some(g.url.clone()),
        icon: None,
        topic: None,
    }
}

pub fn guideline_link(engine: &Engine) -> Link {
    let g = &engine.knowledge().guideline;
    Link {
        label: format!("{} ({})", g.title, g.revision),
        url: g.url.clone(),
        link_type: LinkType::Absolute,
        app_context: None,
    }
}

/// A new card with the common parts filled in.
pub fn card(
    engine: &Engine,
    uuid: String,
    summary: String,
    detail: String,
    indicator: Indicator,
) -> Card {
    Card {
        uuid: Some(uuid),
        summary,
        detail: Some(detail),
        indicator,
        source: source(engine),
        suggestions: Vec::new(),
        selection_behavior: None,
        override_reasons: Vec::new(),
        links: vec![guideline_link(engine)],
    }
}

//! vcf-engine: the pure core of vcf-cds.
//!
//! `knowledge` holds the ACR guideline as data (parsed from text the caller supplies) and
//! [`index::Engine`] its look-up tables (built once at start-up); `fhir` the typed views of the
//! input resources; `types` the shared domain types (request, record, evaluation); `facts`
//! derives patient facts, `orders` recognises draft orders, `classify` finds the variants
//! consistent with the facts, `rating` builds the PAMA rating system action and `cards` the card
//! text; `evaluate` ties them together into per-order evaluations and the CDS Hooks response
//! (`cds`). Nothing here does I/O: the knowledge text, the clock and the uuid source are
//! parameters. The modules' `use crate::…` imports form a tree (no cycle), checked by
//! `tests/module_graph.rs`.

pub mod cards;
pub mod cds;
pub mod classify;
pub mod evaluate;
pub mod facts;
pub mod fhir;
pub mod index;
pub mod json_text;
pub mod knowledge;
pub mod orders;
pub mod rating;
pub mod reports;
pub mod types;

pub use index::Engine;

//! vcf-engine: the pure core of vcf-cds.
//!
//! `knowledge` holds the ACR guideline as data; `fhir` the typed views of the input resources;
//! `evaluate` turns a patient record and draft orders into per-order evaluations and the CDS
//! Hooks response (`cds`). Nothing here does I/O: the clock and the uuid source are parameters.

pub mod cds;
pub mod evaluate;
pub mod fhir;
pub mod knowledge;

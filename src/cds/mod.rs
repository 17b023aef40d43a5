//! The CDS Hooks protocol layer: discovery, request parsing and validation, prefetch and FHIR
//! fallback, and the pipeline shared by the HTTP endpoint and `vcf-cds evaluate`.

pub mod discovery;
pub mod fetch;
pub mod pipeline;
pub mod prefetch;
pub mod request;

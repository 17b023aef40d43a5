//! vcf-cds: a CDS Hooks 2.0 service that rates vertebral compression fracture imaging and
//! treatment orders against the ACR Appropriateness Criteria.
//!
//! Data flows one way: request -> facts -> evaluation -> cards -> response + audit. The pure
//! core (guideline data, facts, classification, cards) is the `vcf-engine` crate; this crate is
//! the shell around it: HTTP, prefetch and FHIR fetching, auth, audit store and CLI.

pub mod audit;
pub mod auth;
pub mod batch;
pub mod cds;
pub mod cli;
pub mod configuration;
pub mod cors;
pub mod error;
pub mod fixture_loader;
pub mod knowledge_source;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod request_id;
pub mod routes;
pub mod startup;
pub mod state;
pub mod synth;
pub mod telemetry;
pub mod trust;

//! Integration tests: the real server on a random loopback port (one test binary, zero-to-
//! production style, so it links once).

mod audit_api;
mod audit_helpers;
mod batch_audit;
mod bounded_work;
mod cors;
mod dashboard;
mod deploy;
mod discovery;
mod durability;
mod errors;
mod examples;
mod feedback;
mod fhir_store;
mod health;
mod helpers;
mod hooks_examples;
mod metrics;
mod openapi;
mod prefetch;
mod process;
mod request_id;
mod sandbox;
mod shutdown;

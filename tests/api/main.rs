//! Integration tests: the real server on a random loopback port (one test binary, zero-to-
//! production style, so it links once).

mod audit_api;
mod audit_helpers;
mod bounded_work;
mod cors;
mod dashboard;
mod discovery;
mod durability;
mod errors;
mod examples;
mod feedback;
mod health;
mod helpers;
mod hooks_examples;
mod prefetch;
mod sandbox;

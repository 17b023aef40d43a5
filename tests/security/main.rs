//! Security tests (issue 5), one binary: JWT verification, the auth middleware, start-up mode,
//! and the bad-input corpus against the real server.

mod auth_http;
mod auth_jwt;
mod bad_input;
mod fuzz_corpus;
mod jwt_metrics;
#[path = "../api/process.rs"]
#[allow(dead_code)] // shared with tests/api, which uses all of it
mod process;
mod replicas;
mod startup_mode;
mod support;

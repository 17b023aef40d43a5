//! Security tests (issue 5), one binary: JWT verification, the auth middleware, start-up mode,
//! and the bad-input corpus against the real server.

mod auth_http;
mod auth_jwt;
mod bad_input;
mod fuzz_corpus;
#[path = "../api/process.rs"]
mod process;
mod replicas;
mod startup_mode;
mod support;

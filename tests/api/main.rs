//! Integration tests: the real server on a random loopback port (one test binary, zero-to-
//! production style, so it links once).

mod cors;
mod discovery;
mod errors;
mod examples;
mod health;
mod helpers;
mod prefetch;

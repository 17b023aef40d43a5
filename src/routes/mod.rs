//! HTTP routes, one module per endpoint family.

pub mod health;

//! HTTP routes, one module per endpoint family.

pub mod body;
pub mod discovery;
pub mod health;
pub mod service;

//! HTTP routes, one module per endpoint family.

pub mod audit_api;
pub mod body;
pub mod dashboard;
pub mod discovery;
pub mod feedback;
pub mod health;
pub mod service;

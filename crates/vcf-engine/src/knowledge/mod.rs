//! The guideline as data: loading, validation and look-ups.

pub mod model;
pub mod validate;

pub use model::*;
pub use validate::{KnowledgeSummary, summary};

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("cannot read knowledge file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("knowledge file is not valid TOML for the schema: {0}")]
    Parse(String),
    #[error("knowledge file failed validation:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Parses a knowledge file's text (no validation).
pub fn parse_str(text: &str) -> Result<Knowledge, KnowledgeError> {
    toml::from_str(text).map_err(|e| KnowledgeError::Parse(e.to_string()))
}

/// The compiled-in knowledge file (reviewed copy in the repository's `knowledge/` directory).
pub const DEFAULT_KNOWLEDGE: &str = include_str!("../../../../knowledge/acr-vcf-2022.toml");

/// Parses and validates a knowledge file's text.
pub fn load_str(text: &str) -> Result<Knowledge, KnowledgeError> {
    let kb = parse_str(text)?;
    let problems = validate(&kb);
    if problems.is_empty() {
        Ok(kb)
    } else {
        Err(KnowledgeError::Invalid(problems))
    }
}

/// Loads and validates the compiled-in knowledge.
pub fn load_default() -> Result<Knowledge, KnowledgeError> {
    load_str(DEFAULT_KNOWLEDGE)
}

/// Loads and validates a replacement knowledge file.
pub fn load_file(path: &std::path::Path) -> Result<Knowledge, KnowledgeError> {
    let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text)
}

/// Every problem found in `kb` (empty when valid); see [`validate::validate`] for the rules.
pub fn validate(kb: &Knowledge) -> Vec<String> {
    validate::validate(kb)
}

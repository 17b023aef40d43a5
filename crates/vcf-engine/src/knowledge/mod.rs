//! The guideline as data: parsing, validation and look-ups. The engine receives the knowledge
//! *text*; reading a replacement file from disk is the shell's job (`src/knowledge_source.rs`).

pub mod model;
pub mod validate;

pub use model::*;
pub use validate::{KnowledgeSummary, summary};

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
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

/// Every problem found in `kb` (empty when valid); see [`validate::validate`] for the rules.
pub fn validate(kb: &Knowledge) -> Vec<String> {
    validate::validate(kb)
}

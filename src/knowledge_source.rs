//! Where the knowledge base comes from: the compiled-in default or `knowledge_file`. Reading the
//! file is the shell's job; the engine only parses and validates the text it is given.

use crate::configuration::Settings;
use std::path::Path;
use vcf_engine::knowledge::{Knowledge, KnowledgeError};

/// Why a knowledge file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeFileError {
    #[error("cannot read knowledge file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
}

/// Reads a replacement knowledge file and hands its text to the engine to parse and validate.
pub fn load_file(path: &Path) -> Result<Knowledge, KnowledgeFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KnowledgeFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(vcf_engine::knowledge::load_str(&text)?)
}

/// The configured knowledge file, or the compiled-in knowledge when none is configured.
pub fn load(settings: &Settings) -> anyhow::Result<Knowledge> {
    let kb = match &settings.knowledge_file {
        Some(path) => load_file(path)?,
        None => vcf_engine::knowledge::load_default()?,
    };
    Ok(kb)
}

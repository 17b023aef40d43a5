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

/// The configured knowledge file, or the compiled-in knowledge when none is configured, with
/// the local-policy windows from the configuration applied.
pub fn load(settings: &Settings) -> anyhow::Result<Knowledge> {
    let mut kb = match &settings.knowledge_file {
        Some(path) => load_file(path)?,
        None => vcf_engine::knowledge::load_default()?,
    };
    apply_local_policy(&mut kb, settings)?;
    Ok(kb)
}

/// The "new fracture" windows are local policy (ACR gives none): a site may set them in its
/// configuration instead of editing the knowledge file. The result is validated again, so an
/// old window that does not exceed the new one stops start-up like a bad knowledge file.
fn apply_local_policy(kb: &mut Knowledge, settings: &Settings) -> Result<(), KnowledgeError> {
    if let Some(days) = settings.new_fracture_window_days {
        kb.policy.new_fracture_window_days = days;
    }
    if let Some(days) = settings.old_fracture_window_days {
        kb.policy.old_fracture_window_days = days;
    }
    let problems = vcf_engine::knowledge::validate(kb);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(KnowledgeError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_windows_replace_the_knowledge_policy() {
        let settings = Settings {
            new_fracture_window_days: Some(28),
            old_fracture_window_days: Some(180),
            ..Settings::default()
        };
        let kb = load(&settings).unwrap();
        assert_eq!(kb.policy.new_fracture_window_days, 28);
        assert_eq!(kb.policy.old_fracture_window_days, 180);
        let defaults = load(&Settings::default()).unwrap();
        assert_eq!(defaults.policy.new_fracture_window_days, 42);
        assert_eq!(defaults.policy.old_fracture_window_days, 365);
    }

    #[test]
    fn an_old_window_inside_the_new_one_is_refused() {
        let settings = Settings {
            new_fracture_window_days: Some(400),
            ..Settings::default()
        };
        let err = load(&settings).unwrap_err().to_string();
        assert!(err.contains("old_fracture_window_days"), "{err}");
    }
}

//! Where the knowledge base comes from: the compiled-in default or `knowledge_file`.

use crate::configuration::Settings;
use vcf_engine::knowledge::Knowledge;

pub fn load(settings: &Settings) -> anyhow::Result<Knowledge> {
    let kb = match &settings.knowledge_file {
        Some(path) => vcf_engine::knowledge::load_file(path)?,
        None => vcf_engine::knowledge::load_default()?,
    };
    Ok(kb)
}

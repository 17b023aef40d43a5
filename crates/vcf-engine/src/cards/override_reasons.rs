//! The override reasons offered on warning cards (from the knowledge file).

use crate::cds::Coding;
use crate::index::Engine;

/// Override reasons offered on warning cards (system keys resolved to URIs).
pub fn override_reasons(engine: &Engine) -> Vec<Coding> {
    let kb = engine.knowledge();
    kb.override_reasons
        .iter()
        .map(|o| Coding {
            system: kb
                .code_systems
                .get(&o.system)
                .map(|c| c.uri.clone())
                .unwrap_or_else(|| o.system.clone()),
            code: o.code.clone(),
            display: Some(o.display.clone()),
        })
        .collect()
}

//! The override reasons offered on warning cards (from the knowledge file), by card kind: imaging
//! reasons on imaging orders, treatment reasons on treatment orders, safety reasons on safety
//! cards (issue 9: MRI reasons never on a kyphoplasty order).

use crate::cds::Coding;
use crate::index::Engine;
use crate::knowledge::OverrideUse;

/// Override reasons for a card of kind `kind` (system keys resolved to URIs). A reason with no
/// `applies_to` fits every card.
pub fn override_reasons(engine: &Engine, kind: OverrideUse) -> Vec<Coding> {
    let kb = engine.knowledge();
    kb.override_reasons
        .iter()
        .filter(|o| o.applies_to.is_empty() || o.applies_to.contains(&kind))
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

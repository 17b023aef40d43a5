//! State shared by all workers: settings, knowledge, engine, FHIR client and audit store.
//!
//! Its own module so that routes and the pipeline depend on the state, not on the app builder
//! in `startup`.

use crate::audit::AuditStore;
use crate::cds::discovery;
use crate::cds::fetch::FhirClient;
use crate::configuration::Settings;
use std::sync::Arc;
use vcf_engine::Engine;
use vcf_engine::evaluate::{Evaluation, EvaluationRequest, IdSource, Options};
use vcf_engine::knowledge::Knowledge;

/// State shared by all workers.
pub struct AppState {
    pub settings: Settings,
    pub knowledge: Arc<Knowledge>,
    /// Discovery document, rendered once.
    pub discovery: String,
    /// Prefetch templates by key (also used for the FHIR fallback).
    pub prefetch_templates: serde_json::Map<String, serde_json::Value>,
    pub fhir: FhirClient,
    /// The clinical engine (knowledge indexed once).
    pub engine: Engine,
    /// Card and rating switches from configuration.
    pub options: Options,
    /// Compliance audit trail ([`AuditStore::disabled`] for the one-shot CLI evaluation).
    pub audit: AuditStore,
}

impl AppState {
    /// Builds the state around an audit store that is already open (or disabled): the store is
    /// part of the state from the start, never patched in afterwards.
    pub fn new(settings: Settings, audit: AuditStore) -> anyhow::Result<AppState> {
        let knowledge = crate::knowledge_source::load(&settings)?;
        let discovery = discovery::discovery(&knowledge).to_string();
        let prefetch_templates = discovery::prefetch_templates(&knowledge);
        let fhir = FhirClient::new(&settings)?;
        let knowledge = Arc::new(knowledge);
        let engine = Engine::from_arc(knowledge.clone())
            .map_err(|e| anyhow::anyhow!("knowledge cannot be indexed: {e}"))?;
        let options = Options {
            cards_for_appropriate: settings.cards_for_appropriate,
            legacy_system_actions: settings.legacy_system_actions,
            qcdsm_consulted: settings.qcdsm_consulted.clone(),
            pediatric_radiation_cards: settings.pediatric_radiation_cards,
            suggestion_style: match settings.suggestion_style {
                crate::configuration::SuggestionStyle::Update => {
                    vcf_engine::evaluate::SuggestionStyle::Update
                }
                crate::configuration::SuggestionStyle::Replace => {
                    vcf_engine::evaluate::SuggestionStyle::Replace
                }
            },
            rate_out_of_scope_imaging: settings.rate_out_of_scope_imaging,
            group_cards_over: settings.group_cards_over,
        };
        Ok(AppState {
            settings,
            knowledge,
            discovery,
            prefetch_templates,
            fhir,
            engine,
            options,
            audit,
        })
    }

    /// Runs the clinical engine; `ids` draws the card, suggestion and consult uuids (random in
    /// the service, seeded in `vcf-cds audit seed`).
    pub fn evaluate(&self, req: &EvaluationRequest<'_>, ids: &mut dyn IdSource) -> Evaluation {
        self.engine.evaluate(req, &self.options, ids)
    }
}

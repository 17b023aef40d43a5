//! `--store`: the batch results go into the audit store next to the live calls, one call
//! record per order, tagged `source = batch` and the run id.
//!
//! Idempotent: the call id is derived from the patient, the order and its date, and rows
//! already present are left as they are (`ON CONFLICT DO NOTHING`), so re-running the same
//! export adds nothing; the rows keep the run id of the run that first stored them. Ids are
//! pseudonymized with the store's `audit_pseudonym_key`, as for live calls. A record's time is
//! the order's `authoredOn` day, so the dashboard places it in the month it was written.

use super::BatchError;
use super::order::{OrderRow, order_key};
use crate::audit::db::{AuditDbLocation, Db};
use crate::audit::pseudonym::Pseudonymizer;
use crate::audit::records::{HookCallRecord, SOURCE_BATCH, SpoolRecord, StoredCall, epoch_ms};
use crate::configuration::Settings;
use std::time::Duration;

/// The `service_id` of batch records (the audit API's `service` filter matches it too).
pub const BATCH_SERVICE: &str = "batch-audit";

pub struct BatchStore {
    rt: tokio::runtime::Runtime,
    db: Db,
    pseudonymizer: Pseudonymizer,
    before: i64,
    written: u64,
    knowledge_version: String,
    guideline_id: String,
}

fn store_err(e: impl std::fmt::Display) -> BatchError {
    BatchError::Store(format!("audit store: {e}"))
}

impl BatchStore {
    pub fn open(settings: &Settings, engine: &vcf_engine::Engine) -> anyhow::Result<BatchStore> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let location = AuditDbLocation::parse(&settings.audit_db)
            .map_err(|e| anyhow::anyhow!("audit_db: {e}"))?;
        // The pool is created on (and later driven by) this runtime.
        let db = {
            let _in_runtime = rt.enter();
            Db::new(&location, Duration::from_secs(30))?
        };
        rt.block_on(db.ensure_ready()).map_err(|e| {
            anyhow::anyhow!("audit store {} is not available: {e}", location.describe())
        })?;
        let (before, ..) = rt.block_on(db.counts())?;
        Ok(BatchStore {
            rt,
            db,
            pseudonymizer: Pseudonymizer::new(
                settings
                    .audit_pseudonym_key
                    .as_ref()
                    .map(crate::configuration::Secret::expose),
            ),
            before,
            written: 0,
            knowledge_version: engine.knowledge().version.clone(),
            guideline_id: engine.knowledge().guideline.id.clone(),
        })
    }

    /// Stores the evaluated rows of one chunk in one transaction.
    pub fn write(&mut self, run_id: &str, rows: &[OrderRow]) -> Result<(), BatchError> {
        let records: Vec<SpoolRecord> = rows
            .iter()
            .filter_map(|row| {
                let ev = row.evaluation.clone()?;
                let date = row.date.as_deref()?;
                let day = time::Date::parse(
                    date,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .ok()?;
                let (patient, requester) = &row.raw_ids;
                let key = order_key(patient, &row.order, Some(date));
                let record = HookCallRecord {
                    received_at: day.midnight().assume_utc(),
                    service_id: BATCH_SERVICE.into(),
                    hook: "order-sign".into(),
                    hook_instance: run_id.into(),
                    user_id: requester.clone().unwrap_or_default(),
                    patient_id: patient.trim_start_matches("Patient/").into(),
                    encounter_id: None,
                    fhir_server: None,
                    knowledge_version: self.knowledge_version.clone(),
                    guideline_id: self.guideline_id.clone(),
                    latency_ms: 0.0,
                    orders: vec![ev],
                };
                let mut call = StoredCall::from_record(record, &self.pseudonymizer);
                call.call_id = format!("batch-{}", hex(&key[..16]));
                call.source = SOURCE_BATCH.into();
                call.run_id = Some(run_id.into());
                Some(SpoolRecord::Call(call))
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let refs: Vec<&SpoolRecord> = records.iter().collect();
        let now = epoch_ms(time::OffsetDateTime::now_utc());
        self.rt
            .block_on(self.db.insert_batch(&refs, "committed", now))
            .map_err(store_err)?;
        self.written += records.len() as u64;
        Ok(())
    }

    /// (orders added, orders already stored by an earlier run).
    pub fn finish(self) -> anyhow::Result<(u64, u64)> {
        let (after, ..) = self.rt.block_on(self.db.counts())?;
        self.rt.block_on(self.db.close());
        let added = (after - self.before).max(0) as u64;
        Ok((added, self.written.saturating_sub(added)))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

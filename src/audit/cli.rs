//! `vcf-cds audit …`: seed synthetic data, compute a pseudonym, purge old records, check.

use super::AuditStore;
use crate::configuration::Settings;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write synthetic hook calls and feedback into the configured audit store: the repository's
    /// example requests, varied (patients, users, dates, orders), answered by the engine.
    Seed {
        /// Number of hook calls.
        #[arg(long, default_value_t = 500)]
        calls: usize,
        /// Spread over this many days before now.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Random seed (same seed, same data).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only this service (`vcf-order-select` or `vcf-order-sign`); both when absent.
        #[arg(long)]
        service: Option<String>,
    },
    /// Print the pseudonym stored for an id under `audit_pseudonym_key`.
    Pseudonym {
        /// Patient, user or encounter id exactly as the EHR sends it (e.g. `Practitioner/123`).
        id: String,
    },
    /// Delete records older than `audit_retention_days` now.
    Purge,
    /// Open the store (running migrations), replay the spool and print the record counts.
    Check,
}

pub fn run(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    if let AuditCommand::Pseudonym { id } = &command {
        if settings.audit_pseudonym_key.is_none() {
            eprintln!("audit_pseudonym_key is not set: ids are stored as given");
        }
        println!(
            "{}",
            super::pseudonym::Pseudonymizer::new(
                settings
                    .audit_pseudonym_key
                    .as_ref()
                    .map(crate::configuration::Secret::expose),
            )
            .apply(id)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = AuditStore::open(settings).await?;
        if !store.ready() {
            anyhow::bail!(
                "the audit store ({}) is unavailable",
                store.location().describe()
            );
        }
        let code = match command {
            AuditCommand::Seed {
                calls,
                days,
                seed,
                service,
            } => {
                // The configured knowledge and card options: the same engine as the service.
                let state = crate::state::AppState::new(settings.clone(), AuditStore::disabled())?;
                let plan = super::seed::Plan {
                    calls,
                    seed,
                    now: time::OffsetDateTime::now_utc(),
                    days,
                    service,
                };
                let mut seeder = super::seed::Seeder::new(&state, &plan)?;
                let (mut c, mut f) = (0, 0);
                while c < plan.calls {
                    let data = seeder.batch((plan.calls - c).min(2_000)).await?;
                    let (dc, df) = super::seed::seed_store(&store, data).await?;
                    c += dc;
                    f += df;
                }
                println!(
                    "seeded {c} hook calls and {f} feedback entries into {}",
                    store.location().describe()
                );
                ExitCode::SUCCESS
            }
            AuditCommand::Purge => {
                if settings.audit_retention_days == 0 {
                    println!("audit_retention_days is 0: records are kept forever");
                } else {
                    let (c, o, f) = store.purge_expired().await?;
                    println!("purged {c} calls, {o} orders, {f} feedback entries");
                }
                ExitCode::SUCCESS
            }
            AuditCommand::Check => {
                let empty = store.flush().await;
                let db = store
                    .db()
                    .ok_or_else(|| anyhow::anyhow!("store disabled"))?;
                let (c, o, f) = db.counts().await?;
                let m = store.metrics();
                println!(
                    "{}: {c} calls, {o} orders, {f} feedback entries; spool backlog {}",
                    store.location().describe(),
                    m.spool_backlog
                );
                if empty {
                    ExitCode::SUCCESS
                } else {
                    // The store did not take the spooled records: a store failure.
                    ExitCode::from(crate::cli::exit::STARTUP)
                }
            }
            AuditCommand::Pseudonym { .. } => unreachable!("handled above"),
        };
        store.shutdown().await;
        Ok(code)
    })
}

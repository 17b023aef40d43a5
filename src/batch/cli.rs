//! `vcf-cds batch-audit`: wiring of the command line to [`super::run`].

use super::{BatchError, BatchOptions};
use crate::audit::pseudonym::Pseudonymizer;
use crate::cli::exit;
use crate::configuration::Settings;
use std::path::PathBuf;
use std::process::ExitCode;

pub struct Args {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub store: bool,
    pub pseudonymize: bool,
    pub threads: Option<usize>,
    pub quiet: bool,
}

/// An error and its exit code (see [`crate::cli::exit`]).
pub type Failure = (u8, anyhow::Error);

fn fail(code: u8) -> impl Fn(anyhow::Error) -> Failure {
    move |e| (code, e)
}

/// Exit status 0: done; 1: done, but input items were skipped. Errors: 2 for an input that
/// cannot be read or an output that cannot be written, 3 for configuration and audit store
/// problems.
pub fn run(settings: Settings, args: Args) -> Result<ExitCode, Failure> {
    let pseudonymizer = if args.pseudonymize {
        let key = settings
            .audit_pseudonym_key
            .as_ref()
            .map(crate::configuration::Secret::expose)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--pseudonymize needs audit_pseudonym_key (VCF_CDS_AUDIT_PSEUDONYM_KEY) to be set"
                )
            })
            .map_err(fail(exit::STARTUP))?;
        Some(Pseudonymizer::new(Some(key)))
    } else {
        None
    };
    // The live service's engine, knowledge and options, built the same way.
    let state = crate::state::AppState::new(settings, crate::audit::AuditStore::disabled())
        .map_err(fail(exit::STARTUP))?;
    let mut store = if args.store {
        Some(
            super::store::BatchStore::open(&state.settings, &state.engine)
                .map_err(fail(exit::STARTUP))?,
        )
    } else {
        None
    };
    let opts = BatchOptions {
        inputs: args.inputs,
        out: args.out.clone(),
        progress: !args.quiet,
        report_problems: true,
    };
    let mut threads = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        threads = threads.num_threads(n.max(1));
    }
    let pool = threads
        .build()
        .map_err(|e| (exit::STARTUP, anyhow::Error::new(e)))?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let summary = pool.install(|| {
        super::run(
            &state.engine,
            &state.options,
            pseudonymizer.as_ref(),
            &opts,
            &run_id,
            &mut |rows| match &mut store {
                Some(s) => s.write(&run_id, rows),
                None => Ok::<(), BatchError>(()),
            },
        )
    });
    let stored = store
        .map(|s| s.finish())
        .transpose()
        .map_err(fail(exit::STARTUP))?;
    let summary = summary.map_err(|e| {
        let code = match e {
            BatchError::Store(_) => exit::STARTUP,
            BatchError::Input(_) | BatchError::Output { .. } => exit::USAGE,
        };
        (code, anyhow::Error::new(e))
    })?;
    println!(
        "{} orders read, {} checked against {}: {} usually not appropriate ({:.1}%), {} not rated, {} without a date, {} input items skipped; {:.1} s ({:.0} orders/s)",
        summary.orders_read,
        summary.orders_checked,
        summary.guideline_id,
        summary.mix.usually_not_appropriate,
        summary.share_not_appropriate * 100.0,
        summary.mix.not_rated,
        summary.orders_without_date,
        summary.skipped,
        summary.seconds,
        summary.orders_per_second
    );
    if let Some((new, existing)) = stored {
        println!(
            "audit store: {new} orders added, {existing} already stored by an earlier run (run id {run_id})"
        );
    }
    println!("report: {}", args.out.join("report.html").display());
    Ok(if summary.skipped > 0 {
        ExitCode::from(exit::INVALID_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}

//! CPU cost of one hook call without HTTP or audit (issue 12): request parsing and validation,
//! the patient record from the prefetch, the engine, the response check and serialization — the
//! same `pipeline::process` the service runs, with default settings and the audit store off.
//!
//! ```sh
//! cargo run --profile profiling --example hook_cpu -- hooks/v1-new-symptomatic-no-malignancy.json 2000
//! # instruction counts (noise-free on a shared machine):
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='hook_cpu::measured' \
//!   target/profiling/examples/hook_cpu hooks/v1-new-symptomatic-no-malignancy.json 200
//! ```
//! Prints the wall time per call (noisy on a loaded machine); divide callgrind's total by the
//! number of calls for instructions per call. Figures in BENCHMARKS.md.

/// The service binary's allocator (src/main.rs), so allocation costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Instant;
use vcf_cds::audit::AuditStore;
use vcf_cds::cds::{discovery, pipeline};
use vcf_cds::configuration::Settings;
use vcf_cds::state::AppState;

/// The measured loop: `n` calls of the service's pipeline on `body`.
#[inline(never)]
fn calls(
    rt: &tokio::runtime::Runtime,
    state: &AppState,
    service: &'static discovery::ServiceDef,
    body: &[u8],
    n: usize,
) -> usize {
    let mut bytes = 0;
    for _ in 0..n {
        let processed = rt
            .block_on(pipeline::process(state, service, black_box(body)))
            .expect("the request is answered");
        bytes += black_box(processed).body.len();
    }
    bytes
}

/// [`calls`] for the measurement (callgrind's `--toggle-collect` target; the warm-up calls
/// [`calls`] directly and is not counted).
#[inline(never)]
fn measured(
    rt: &tokio::runtime::Runtime,
    state: &AppState,
    service: &'static discovery::ServiceDef,
    body: &[u8],
    n: usize,
) -> usize {
    calls(rt, state, service, body, n)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .unwrap_or_else(|| "hooks/v1-new-symptomatic-no-malignancy.json".into());
    let n: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let body = std::fs::read(&file)?;
    let hook: serde_json::Value = serde_json::from_slice(&body)?;
    let service = hook["hook"]
        .as_str()
        .and_then(discovery::service_for_hook)
        .ok_or_else(|| anyhow::anyhow!("{file}: no service for its hook"))?;
    let state = AppState::new(Settings::default(), AuditStore::disabled())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Warm-up (lazy statics, allocator pages), not measured.
    calls(&rt, &state, service, &body, 10);
    let started = Instant::now();
    let bytes = measured(&rt, &state, service, &body, n);
    let elapsed = started.elapsed();
    println!(
        "{n} calls of {file} ({} bytes in, {} bytes out per call): {:.1} µs per call (wall)",
        body.len(),
        bytes / n.max(1),
        elapsed.as_secs_f64() * 1e6 / n.max(1) as f64
    );
    Ok(())
}

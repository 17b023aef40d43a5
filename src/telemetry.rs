//! tracing set-up: human-readable or JSON lines on stderr, filtered by `log_level` (or
//! `RUST_LOG` when set).
//!
//! What may be logged: hook name, service id, `hookInstance`, status codes, timings, counts,
//! knowledge version, JWT `iss`/`jti`. What must never be logged: access tokens, JWTs, resource
//! contents, names, birth dates, raw patient ids. Request spans are created in `startup.rs` with
//! only the safe fields.

use crate::configuration::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber once (later calls are ignored, which tests rely on).
pub fn init<W>(format: LogFormat, level: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

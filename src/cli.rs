//! Command line: `serve`, `evaluate`, `knowledge check`, `audit`, `batch-audit`, `synth`.

use crate::configuration::Settings;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  vcf-cds serve                                   # http://127.0.0.1:8080, SQLite audit file in .
  vcf-cds serve --listen 127.0.0.1:9000 --config vcf-cds.toml
  VCF_CDS_LISTEN=127.0.0.1:9000 vcf-cds serve
  vcf-cds evaluate hooks/v1-new-symptomatic-no-malignancy.json
  cat request.json | vcf-cds evaluate -
  vcf-cds knowledge check                         # the compiled-in ACR VCF knowledge
  vcf-cds audit seed --calls 500                  # synthetic audit records (demo / tests)
  vcf-cds audit pseudonym Patient/123             # the pseudonym stored for an id
  vcf-cds audit purge                             # apply audit_retention_days now
  vcf-cds knowledge check my-reviewed-copy.toml
  vcf-cds config check                            # validate the configuration, then exit
  vcf-cds health                                  # exit 0 when /healthz answers 200 (Docker)
  vcf-cds fixtures load --fhir-server http://hapi:8080/fhir fixtures/patients
  vcf-cds synth --patients 1000 --out export/     # synthetic FHIR Bulk Data export
  vcf-cds batch-audit export/ --out audit-report/ # orders.csv, summary.json, report.html

Every configuration key can be set in the TOML file or as VCF_CDS_<KEY>; see docs/configuration.md.

Exit codes: 0 ok; 1 invalid input (a request the server would refuse, a broken knowledge file);
2 usage error or unreadable input file; 3 start-up or configuration failure.";

#[derive(Debug, Parser)]
#[command(
    name = "vcf-cds",
    version,
    about = "CDS Hooks 2.0 service: ACR Appropriateness Criteria for vertebral compression fracture orders",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file (environment variables VCF_CDS_* override it).
    #[arg(long, short = 'c', env = "VCF_CDS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on (default 127.0.0.1:8080; env VCF_CDS_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Allow running without JWT verification on a non-loopback address (testing only).
        #[arg(long)]
        allow_unauthenticated: bool,
    },
    /// Evaluate one hook request (JSON file, or - for stdin) and print the response body the
    /// server would return.
    Evaluate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Hook request JSON file, or - for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// Service id to call (default: the service for the request's `hook`).
        #[arg(long, value_name = "ID")]
        service: Option<String>,
        /// Indent the JSON output (the server sends it compact).
        #[arg(long)]
        pretty: bool,
    },
    /// Inspect the knowledge base.
    Knowledge {
        #[command(subcommand)]
        command: KnowledgeCommand,
    },
    /// Load the configuration (file and VCF_CDS_* environment) as `serve` would, check it and
    /// exit: 0 when the service would start, 2 with a message naming the bad key otherwise.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Probe the running service on its configured `listen` port (the container health check):
    /// exit 0 when `/healthz` (or `/readyz` with --ready) answers 200, 1 otherwise.
    Health {
        #[command(flatten)]
        config: ConfigArgs,
        /// Probe readiness (`/readyz`) instead of liveness.
        #[arg(long)]
        ready: bool,
    },
    /// FHIR test data tools.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
    /// Compliance audit trail tools (use the same configuration as `serve`).
    Audit {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        command: crate::audit::cli::AuditCommand,
    },
    /// Retrospective audit: rate every ServiceRequest of a FHIR export (Bulk Data NDJSON or
    /// Bundles, gzip too) as of its authoredOn date. Exit status: 0 done, 1 done but some input
    /// items were skipped (see skipped.csv), 2 error (nothing or only part written).
    BatchAudit {
        #[command(flatten)]
        config: ConfigArgs,
        /// NDJSON (.ndjson, .jsonl) or JSON (.json, a Bundle) files, optionally .gz, or
        /// directories holding them.
        #[arg(value_name = "INPUT", required = true)]
        inputs: Vec<PathBuf>,
        /// Directory for orders.csv, orders.ndjson, summary.json, report.html, skipped.csv.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also write the results to the audit store (`audit_db`), tagged source = batch.
        #[arg(long)]
        store: bool,
        /// Replace patient ids in the outputs by their pseudonym (needs audit_pseudonym_key).
        #[arg(long)]
        pseudonymize: bool,
        /// Worker threads (default: all cores).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// No progress bar even on a terminal.
        #[arg(long)]
        quiet: bool,
    },
    /// Write a synthetic FHIR Bulk Data export (NDJSON per resource type) for tests and
    /// benchmarks, with expected-sample.csv: the expected rating of a sample of its orders.
    Synth {
        /// Number of patients.
        #[arg(long, value_name = "N")]
        patients: u64,
        /// Output directory (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Random seed: the same seed gives the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Orders per patient on average.
        #[arg(long, default_value_t = 4)]
        orders_per_patient: u32,
        /// Write one transaction Bundle per patient (bundles/*.json) instead of NDJSON.
        #[arg(long)]
        bundles: bool,
        /// gzip the NDJSON files.
        #[arg(long)]
        gzip: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print a summary.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// PUT every resource of the given FHIR Bundle files (or directories of them) into a FHIR
    /// server, one transaction per file, keeping the fixture ids.
    Load {
        /// FHIR server base URL, e.g. http://hapi:8080/fhir.
        #[arg(long, value_name = "URL")]
        fhir_server: String,
        /// Wait up to this many seconds for the server's /metadata to answer first.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait_secs: u64,
        /// Bundle files or directories (e.g. fixtures/patients).
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KnowledgeCommand {
    /// Validate a knowledge file (default: the compiled-in one) and print a summary.
    Check {
        /// Knowledge TOML file.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Exit codes of every command (README, "Command line"). clap itself exits with 2 on a usage
/// error and 0 for `--help` / `--version`.
pub mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// Invalid input: a hook request the server would refuse with a 4xx, a knowledge file that
    /// does not parse or validate.
    pub const INVALID_INPUT: u8 = 1;
    /// Usage error (unknown flag or service id, missing argument) or an input file that cannot
    /// be read.
    pub const USAGE: u8 = 2;
    /// Start-up or configuration failure: invalid configuration, the service cannot start, the
    /// audit store is unusable.
    pub const STARTUP: u8 = 3;
}

/// A failed command: the message for standard error and its exit code (see [`exit`]).
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

/// Attaches an exit code to an error.
trait ExitWith<T> {
    fn exit_with(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ExitWith<T> for Result<T, E> {
    fn exit_with(self, code: u8) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code,
            error: e.into(),
        })
    }
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("vcf-cds: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            allow_unauthenticated,
        } => {
            let settings =
                serve_settings(&config, listen, allow_unauthenticated).exit_with(exit::STARTUP)?;
            crate::telemetry::init(settings.log_format, &settings.log_level, std::io::stderr);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .exit_with(exit::STARTUP)?;
            rt.block_on(async move {
                let app = crate::startup::Application::build(settings).await?;
                app.run_until_stopped().await?;
                anyhow::Ok(())
            })
            .exit_with(exit::STARTUP)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate {
            config,
            file,
            service,
            pretty,
        } => evaluate(config, &file, service.as_deref(), pretty),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            // The same checks as start-up (exit code 3 like `serve`): configuration, mode,
            // issuers (JWK Set files read), knowledge.
            let settings = serve_settings(&config, None, false).exit_with(exit::STARTUP)?;
            crate::auth::Authenticator::new(&settings)
                .map_err(anyhow::Error::msg)
                .exit_with(exit::STARTUP)?;
            let knowledge = crate::knowledge_source::load(&settings).exit_with(exit::STARTUP)?;
            let backend = crate::audit::db::AuditDbLocation::parse(&settings.audit_db)
                .map_err(anyhow::Error::msg)
                .exit_with(exit::STARTUP)?
                .backend();
            println!(
                "configuration OK: listen {}, audit store {}, knowledge {}",
                settings.listen,
                backend.name(),
                knowledge.version
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { config, ready } => {
            let settings = Settings::load(config.config.as_deref()).exit_with(exit::STARTUP)?;
            Ok(probe(&settings, if ready { "/readyz" } else { "/healthz" }))
        }
        Command::Fixtures {
            command:
                FixturesCommand::Load {
                    fhir_server,
                    wait_secs,
                    paths,
                },
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .exit_with(exit::STARTUP)?;
            // Exit 1: the files or the FHIR server refused (or the server never came up).
            let report = rt
                .block_on(crate::fixture_loader::load(
                    &fhir_server,
                    &paths,
                    std::time::Duration::from_secs(wait_secs),
                ))
                .exit_with(exit::INVALID_INPUT)?;
            println!(
                "loaded {} resources from {} files into {fhir_server}",
                report.resources, report.files
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::BatchAudit {
            config,
            inputs,
            out,
            store,
            pseudonymize,
            threads,
            quiet,
        } => {
            let settings = Settings::load(config.config.as_deref()).exit_with(exit::STARTUP)?;
            crate::telemetry::init(settings.log_format, "warn", std::io::stderr);
            crate::batch::cli::run(
                settings,
                crate::batch::cli::Args {
                    inputs,
                    out,
                    store,
                    pseudonymize,
                    threads,
                    quiet,
                },
            )
            .map_err(|(code, error)| Failure { code, error })
        }
        Command::Synth {
            patients,
            out,
            seed,
            orders_per_patient,
            bundles,
            gzip,
        } => {
            let stats = crate::synth::generate(&crate::synth::SynthOptions {
                patients,
                out: out.clone(),
                seed,
                orders_per_patient,
                bundles,
                gzip,
            })
            .exit_with(exit::USAGE)?;
            eprintln!(
                "vcf-cds: wrote {} patients, {} orders, {} other resources to {}",
                stats.patients,
                stats.orders,
                stats.resources,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { config, command } => {
            let settings = Settings::load(config.config.as_deref()).exit_with(exit::STARTUP)?;
            crate::telemetry::init(settings.log_format, "warn", std::io::stderr);
            crate::audit::cli::run(&settings, command).exit_with(exit::STARTUP)
        }
        Command::Knowledge {
            command: KnowledgeCommand::Check { file },
        } => {
            let kb = match &file {
                Some(path) => crate::knowledge_source::load_file(path),
                None => vcf_engine::knowledge::load_default().map_err(Into::into),
            };
            match kb {
                Ok(kb) => {
                    println!("{}", vcf_engine::knowledge::summary(&kb));
                    println!("OK");
                    Ok(ExitCode::SUCCESS)
                }
                Err(crate::knowledge_source::KnowledgeFileError::Knowledge(
                    vcf_engine::knowledge::KnowledgeError::Invalid(problems),
                )) => {
                    eprintln!(
                        "knowledge file failed validation ({} problems):",
                        problems.len()
                    );
                    for p in &problems {
                        eprintln!("  - {p}");
                    }
                    Ok(ExitCode::from(exit::INVALID_INPUT))
                }
                Err(e @ crate::knowledge_source::KnowledgeFileError::Read { .. }) => {
                    Err(e).exit_with(exit::USAGE)
                }
                Err(e) => Err(e).exit_with(exit::INVALID_INPUT),
            }
        }
    }
}

/// `vcf-cds evaluate`: the same pipeline as `POST /cds-services/{id}`, without a server and
/// without writing audit records.
fn evaluate(
    config: ConfigArgs,
    file: &str,
    service: Option<&str>,
    pretty: bool,
) -> Result<ExitCode, Failure> {
    use crate::cds::{discovery, pipeline};
    use std::io::Read;

    let settings = Settings::load(config.config.as_deref()).exit_with(exit::STARTUP)?;
    crate::telemetry::init(settings.log_format, "warn", std::io::stderr);
    let body = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))
            .exit_with(exit::USAGE)?;
        buf
    } else {
        std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))
            .exit_with(exit::USAGE)?
    };
    let service = match service {
        Some(id) => discovery::service(id)
            .ok_or_else(|| anyhow::anyhow!("no CDS service {id:?}; known: {}", service_ids()))
            .exit_with(exit::USAGE)?,
        None => {
            #[derive(serde::Deserialize)]
            struct Peek {
                hook: Option<serde_json::Value>,
            }
            let peek: Peek = serde_json::from_slice(&body)
                .map_err(|e| anyhow::anyhow!("{file}: not a JSON object: {e}"))
                .exit_with(exit::INVALID_INPUT)?;
            let hook = peek
                .hook
                .as_ref()
                .and_then(|h| h.as_str())
                .ok_or_else(|| anyhow::anyhow!("{file}: the request has no \"hook\" string"))
                .exit_with(exit::INVALID_INPUT)?;
            discovery::service_for_hook(hook)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{file}: no service for hook {hook:?}; known: {}",
                        service_ids()
                    )
                })
                .exit_with(exit::INVALID_INPUT)?
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .exit_with(exit::STARTUP)?;
    let state = crate::state::AppState::new(settings, crate::audit::AuditStore::disabled())
        .exit_with(exit::STARTUP)?;
    match rt.block_on(pipeline::process(&state, service, &body)) {
        Ok(processed) => {
            let text = if pretty {
                serde_json::to_string_pretty(&processed.evaluation.response)
                    .exit_with(exit::STARTUP)?
            } else {
                processed.body
            };
            // A closed pipe (`| head`) is not an error worth a panic.
            use std::io::Write;
            match writeln!(std::io::stdout(), "{text}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(e).exit_with(exit::STARTUP)
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Err(e) => {
            eprintln!(
                "vcf-cds: the server would answer HTTP {}:",
                e.status.as_u16()
            );
            for issue in &e.issues {
                eprintln!("  - {}", issue.diagnostics);
            }
            Ok(ExitCode::from(exit::INVALID_INPUT))
        }
    }
}

/// `vcf-cds health`: GET `path` on the configured listen port (an unspecified address such as
/// 0.0.0.0 is probed on loopback). Exit 0 on 200, 1 otherwise, with the reason on stderr.
fn probe(settings: &Settings, path: &str) -> ExitCode {
    let result = (|| -> anyhow::Result<reqwest::StatusCode> {
        let mut addr: std::net::SocketAddr = settings.listen.parse()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?;
            Ok(client
                .get(format!("http://{addr}{path}"))
                .send()
                .await?
                .status())
        })
    })();
    match result {
        Ok(s) if s == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("vcf-cds health: {path} answered {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vcf-cds health: {path}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn service_ids() -> String {
    crate::cds::discovery::SERVICES
        .iter()
        .map(|s| s.id)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Settings for `serve`: defaults < file < `VCF_CDS_*` < flags. Whether they may start is
/// decided by [`crate::auth::startup_mode`] in `Application::build`.
pub fn serve_settings(
    config: &ConfigArgs,
    listen: Option<String>,
    allow_unauthenticated: bool,
) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(config.config.as_deref())?;
    if let Some(listen) = listen {
        settings.listen = listen;
    }
    if allow_unauthenticated {
        settings.allow_unauthenticated = true;
    }
    settings.validate()?;
    Ok(settings)
}

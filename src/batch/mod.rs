//! `vcf-cds batch-audit`: historical orders from a FHIR export, each judged by the live engine
//! as of the day it was written.
//!
//! Two passes over the input, both streaming:
//! 1. every resource except ServiceRequests goes into a compact per-patient store
//!    ([`record::PatientStore`]): memory grows with the patients, not with the files;
//! 2. the ServiceRequests are read again in chunks and evaluated on all cores
//!    ([`order::evaluate`]); each chunk's rows are written out (orders.csv, orders.ndjson),
//!    added to the summary and handed to the caller (`--store`) before the next chunk.
//!
//! A malformed line or resource is reported (file and line), written to skipped.csv and
//! skipped; a missing input file or unreadable directory stops the run before any output.

pub mod cli;
pub mod input;
pub mod order;
pub mod record;
pub mod report;
pub mod store;
pub mod summary;

use crate::audit::pseudonym::Pseudonymizer;
use indicatif::{ProgressBar, ProgressStyle};
use input::{InputFile, Problem, Unit};
use order::OrderRow;
use rayon::prelude::*;
use record::{Header, PatientStore, Prepared};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use summary::Summary;
use vcf_engine::Engine;
use vcf_engine::evaluate::Options;
use vcf_engine::fhir::AnyResource;

/// Units per chunk: large enough to keep every core busy, small enough to bound memory.
const CHUNK: usize = 4096;

pub struct BatchOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    /// Show the progress bars (only on a terminal).
    pub progress: bool,
    /// Print skipped items to stderr (the first few; all are in skipped.csv).
    pub report_problems: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error("{path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(String),
}

fn out_err(path: &Path) -> impl Fn(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Output {
        path: path.display().to_string(),
        source,
    }
}

/// The result of the first pass for one unit.
enum Pass1 {
    Store(Prepared),
    Order,
    Ignored(String),
    Bad(String),
}

fn prepare(unit: &Unit) -> Pass1 {
    let header = match Header::parse(&unit.json) {
        Ok(h) => h,
        Err(e) => return Pass1::Bad(e),
    };
    let Some(rt) = header.resource_type.as_deref() else {
        return Pass1::Bad("missing resourceType".into());
    };
    if rt == "ServiceRequest" {
        return Pass1::Order;
    }
    // The typed view the engine reads: validated here so that a malformed resource is reported
    // with its line and left out, as the live service refuses it.
    match AnyResource::parse(&unit.json, rt) {
        Err(e) => return Pass1::Bad(format!("{}: {}", e.path, e.message)),
        Ok(AnyResource::Other { resource_type, .. }) => return Pass1::Ignored(resource_type),
        Ok(AnyResource::Bundle(_)) => return Pass1::Ignored("Bundle (nested)".into()),
        Ok(AnyResource::OperationOutcome(_)) => return Pass1::Ignored("OperationOutcome".into()),
        Ok(_) => {}
    }
    let Some(patient) = header.patient_key(unit.urns.as_deref()) else {
        return Pass1::Bad(format!(
            "{rt} has no Patient reference (subject or patient)"
        ));
    };
    let known_on = match header.known_on() {
        Ok(d) => d,
        Err(e) => return Pass1::Bad(e),
    };
    Pass1::Store(Prepared {
        patient,
        known_on,
        json: record::compact(&unit.json),
    })
}

fn progress_bar(show: bool, len: u64, template: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

enum Msg {
    Chunk(Vec<Unit>),
    Problem(Problem),
}

/// Reads the files on a thread of its own and feeds the chunks to `each` (on this thread).
fn stream(
    files: &[InputFile],
    keep: &(dyn Fn(usize) -> bool + Sync),
    pb: &ProgressBar,
    mut each: impl FnMut(Msg) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(2);
        let reader = s.spawn(move || {
            let tx2 = tx.clone();
            input::read_all(
                files,
                keep,
                CHUNK,
                &mut |c| {
                    let _ = tx.send(Msg::Chunk(c));
                },
                &mut |p| {
                    let _ = tx2.send(Msg::Problem(p));
                },
                &|n| pb.inc(n),
            )
        });
        let mut result = Ok(());
        for msg in rx {
            if result.is_ok() {
                result = each(msg);
            }
        }
        let read = reader
            .join()
            .unwrap_or_else(|_| panic!("the input reader thread panicked"));
        read?;
        result
    })
}

struct Outputs {
    csv: csv::Writer<BufWriter<std::fs::File>>,
    ndjson: BufWriter<std::fs::File>,
    skipped: csv::Writer<BufWriter<std::fs::File>>,
    dir: PathBuf,
}

#[derive(serde::Serialize)]
struct CsvRow<'a> {
    order: &'a str,
    date: &'a str,
    status: &'a str,
    requester: &'a str,
    patient: &'a str,
    codes: String,
    procedure_id: &'a str,
    procedure: &'a str,
    outcome: &'a str,
    variant: &'a str,
    rating: Option<u8>,
    category: &'a str,
    pama_rating: &'a str,
    top_alternative: &'a str,
    top_alternative_rating: Option<u8>,
    assumptions: String,
}

impl Outputs {
    fn create(dir: &Path) -> Result<Outputs, BatchError> {
        std::fs::create_dir_all(dir).map_err(out_err(dir))?;
        let file = |name: &str| {
            let p = dir.join(name);
            std::fs::File::create(&p)
                .map(|f| BufWriter::with_capacity(1 << 16, f))
                .map_err(out_err(&p))
        };
        let mut skipped = csv::Writer::from_writer(file("skipped.csv")?);
        skipped
            .write_record(["file", "position", "message"])
            .map_err(|e| csv_err(dir, e))?;
        Ok(Outputs {
            csv: csv::Writer::from_writer(file("orders.csv")?),
            ndjson: file("orders.ndjson")?,
            skipped,
            dir: dir.to_owned(),
        })
    }

    fn row(&mut self, r: &OrderRow) -> Result<(), BatchError> {
        let s = |o: &Option<String>| o.as_deref().unwrap_or("").to_owned();
        let (date, status, requester) = (s(&r.date), s(&r.status), s(&r.requester));
        let (pid, pname, variant) = (s(&r.procedure_id), s(&r.procedure), s(&r.variant));
        let (cat, pama, alt) = (s(&r.category), s(&r.pama_rating), s(&r.top_alternative));
        self.csv
            .serialize(CsvRow {
                order: &r.order,
                date: &date,
                status: &status,
                requester: &requester,
                patient: &r.patient,
                codes: r.codes.join(" "),
                procedure_id: &pid,
                procedure: &pname,
                outcome: &r.outcome,
                variant: &variant,
                rating: r.rating,
                category: &cat,
                pama_rating: &pama,
                top_alternative: &alt,
                top_alternative_rating: r.top_alternative_rating,
                assumptions: r.assumptions.join(" | "),
            })
            .map_err(|e| csv_err(&self.dir, e))?;
        let p = self.dir.join("orders.ndjson");
        serde_json::to_writer(&mut self.ndjson, r).map_err(|e| out_err(&p)(e.into()))?;
        self.ndjson.write_all(b"\n").map_err(out_err(&p))
    }

    fn problem(&mut self, p: &Problem) -> Result<(), BatchError> {
        self.skipped
            .write_record([&p.file, &p.position, &p.message])
            .map_err(|e| csv_err(&self.dir, e))
    }

    fn finish(mut self) -> Result<(), BatchError> {
        self.csv.flush().map_err(out_err(&self.dir))?;
        self.skipped.flush().map_err(out_err(&self.dir))?;
        self.ndjson.flush().map_err(out_err(&self.dir))
    }
}

fn csv_err(dir: &Path, e: csv::Error) -> BatchError {
    BatchError::Output {
        path: dir.display().to_string(),
        source: std::io::Error::other(e),
    }
}

/// Runs the audit. `on_rows` receives every chunk of rows in input order (for `--store`).
pub fn run(
    engine: &Engine,
    options: &Options,
    pseudonymizer: Option<&Pseudonymizer>,
    opts: &BatchOptions,
    run_id: &str,
    on_rows: &mut dyn FnMut(&[OrderRow]) -> Result<(), BatchError>,
) -> Result<Summary, BatchError> {
    let started = Instant::now();
    let files = input::discover(&opts.inputs)?;
    let mut out = Outputs::create(&opts.out)?;
    let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    let mut summary = Summary {
        run_id: run_id.to_owned(),
        started_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        knowledge_version: engine.knowledge().version.clone(),
        guideline_id: engine.knowledge().guideline.id.clone(),
        input_files: files.len() as u64,
        ..Summary::default()
    };
    let mut printed = 0usize;
    let mut report = |summary: &mut Summary, out: &mut Outputs, p: Problem| {
        summary.add_problem(&p);
        if opts.report_problems && printed < 10 {
            eprintln!("vcf-cds: skipped {p}");
            printed += 1;
        }
        out.problem(&p)
    };

    // Pass 1: the patients' data.
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let pb = progress_bar(
        opts.progress,
        total_bytes,
        "{spinner} reading    [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    );
    let mut store = PatientStore::default();
    let mut has_orders = vec![false; files.len()];
    let mut orders_total = 0u64;
    stream(&files, &|_| true, &pb, |msg| {
        match msg {
            Msg::Problem(p) => report(&mut summary, &mut out, p)?,
            Msg::Chunk(units) => {
                let prepared: Vec<Pass1> = units.par_iter().map(prepare).collect();
                for (unit, p) in units.iter().zip(prepared) {
                    match p {
                        Pass1::Store(p) => store.insert(p),
                        Pass1::Order => {
                            has_orders[unit.file as usize] = true;
                            orders_total += 1;
                        }
                        Pass1::Ignored(t) => {
                            *summary.resources_ignored.entry(t).or_default() += 1;
                        }
                        Pass1::Bad(message) => report(
                            &mut summary,
                            &mut out,
                            Problem {
                                file: names[unit.file as usize].clone(),
                                position: unit.loc.describe(),
                                message,
                            },
                        )?,
                    }
                }
            }
        }
        Ok(())
    })?;
    store.pack();
    pb.finish_and_clear();
    summary.patients = store.patients() as u64;
    summary.resources = store.resources;
    summary.resources_undated = store.undated;

    // Pass 2: the orders.
    let pb = progress_bar(
        opts.progress,
        orders_total,
        "{spinner} evaluating [{bar:30}] {human_pos}/{human_len} orders {per_sec} ETA {eta}",
    );
    let ctx = order::Context {
        engine,
        options,
        store: &store,
        pseudonymizer,
    };
    let keep = |i: usize| has_orders[i];
    let hidden = ProgressBar::hidden();
    stream(&files, &keep, &hidden, |msg| {
        match msg {
            // Reading problems were reported in the first pass.
            Msg::Problem(_) => {}
            Msg::Chunk(units) => {
                let results: Vec<_> = units
                    .par_iter()
                    .map(|u| order::evaluate(&ctx, u, &names[u.file as usize]))
                    .collect();
                let mut rows = Vec::with_capacity(results.len());
                for r in results {
                    match r {
                        Ok(Some(row)) => rows.push(row),
                        Ok(None) => {}
                        Err(p) => report(&mut summary, &mut out, p)?,
                    }
                }
                for row in &rows {
                    out.row(row)?;
                    summary.add(row);
                }
                pb.inc(rows.len() as u64);
                on_rows(&rows)?;
            }
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    out.finish()?;
    summary.finish(started.elapsed().as_secs_f64());

    let path = opts.out.join("summary.json");
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| out_err(&path)(e.into()))?;
    std::fs::write(&path, json).map_err(out_err(&path))?;
    let path = opts.out.join("report.html");
    std::fs::write(&path, report::render(&summary)).map_err(out_err(&path))?;
    Ok(summary)
}

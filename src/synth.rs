//! `vcf-cds synth`: a synthetic FHIR Bulk Data export for tests and benchmarks.
//!
//! Every patient is a copy of one of the ready-to-send requests in `hooks/` (their patients are
//! synthetic, see hooks/README.md), moved in time: all dates (birth date included, so ages are
//! kept) are shifted so that the example's order falls on a date in 2024–2025. That first order
//! of each patient therefore has a known answer: the variant and rating hooks/README.md gives for
//! the example (checked against the engine by crates/vcf-engine/tests/hooks.rs). Further orders
//! of the patient (on average `--orders-per-patient` in all) take the procedure code of another
//! example and a date from 60 days before to a year after; their answer is whatever the guideline says
//! for the record on that date. A few have no `authoredOn`.
//!
//! A date trap: 30% of patients get the multiple myeloma Condition of hooks/v4 recorded 1–60 days
//! *after* their first order. A retrospective audit that ignored dates would see a malignancy
//! and change the answer of most examples; the expected answer is the example's.
//!
//! `expected-sample.csv` lists the first order of every 100th patient with its expected variant,
//! rating and category. Deterministic: the same `--seed` gives the same files (a SplitMix64
//! stream per patient, so patients are generated in parallel).

use flate2::Compression;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use serde_json::{Map, Value, json};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use time::{Date, Duration, macros::date};

pub struct SynthOptions {
    pub patients: u64,
    pub out: PathBuf,
    pub seed: u64,
    pub orders_per_patient: u32,
    pub bundles: bool,
    pub gzip: bool,
}

#[derive(Debug, Default)]
pub struct SynthStats {
    pub patients: u64,
    pub orders: u64,
    pub resources: u64,
}

/// The examples with their expected answer (hooks/README.md).
const TEMPLATES: [(&str, &str, &str, u8, &str); 9] = [
    (
        "v1",
        include_str!("../hooks/v1-new-symptomatic-no-malignancy.json"),
        "V1",
        3,
        "Usually not appropriate",
    ),
    (
        "v2",
        include_str!("../hooks/v2-new-symptomatic-malignancy.json"),
        "V2",
        3,
        "Usually not appropriate",
    ),
    (
        "v3",
        include_str!("../hooks/v3-new-pain-multiple-vcf.json"),
        "V3",
        3,
        "Usually not appropriate",
    ),
    (
        "v4",
        include_str!("../hooks/v4-asymptomatic-malignancy.json"),
        "V4",
        3,
        "Usually not appropriate",
    ),
    (
        "v5",
        include_str!("../hooks/v5-asymptomatic-osteoporotic.json"),
        "V5",
        1,
        "Usually not appropriate",
    ),
    (
        "v6",
        include_str!("../hooks/v6-symptomatic-osteoporotic.json"),
        "V6",
        1,
        "Usually not appropriate",
    ),
    (
        "v7",
        include_str!("../hooks/v7-new-vcf-prior-vertebroplasty.json"),
        "V7",
        8,
        "Usually appropriate",
    ),
    (
        "v8",
        include_str!("../hooks/v8-benign-vcf-deformity.json"),
        "V8",
        1,
        "Usually not appropriate",
    ),
    (
        "v9",
        include_str!("../hooks/v9-pathological-vcf.json"),
        "V9",
        4,
        "May be appropriate",
    ),
];

/// The day the examples are written for (crates/vcf-engine/tests/common: `NOW`).
const EXAMPLE_DAY: Date = date!(2026 - 11 - 27);
const FIRST_DAY: Date = date!(2024 - 01 - 01);
const DAYS: u64 = 731;
const REQUESTERS: f64 = 200.0;
/// The multiple myeloma Condition of hooks/v4, used for the date trap.
const TRAP_CONDITION: &str = "v4a-c1";

struct Template {
    name: &'static str,
    patient_id: String,
    resources: Vec<Value>,
    order: Value,
    expected: (&'static str, u8, &'static str),
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn templates() -> anyhow::Result<(Vec<Template>, Value)> {
    let mut out = Vec::new();
    let mut trap = None;
    for (name, text, variant, rating, category) in TEMPLATES {
        let v: Value = serde_json::from_str(text)?;
        let pre = &v["prefetch"];
        let mut resources = vec![pre["patient"].clone()];
        for key in ["conditions", "procedures", "observations", "reports"] {
            for e in pre[key]["entry"].as_array().into_iter().flatten() {
                resources.push(e["resource"].clone());
            }
        }
        for r in &resources {
            if r["id"] == TRAP_CONDITION {
                trap = Some(r.clone());
            }
        }
        let order = v["context"]["draftOrders"]["entry"][0]["resource"].clone();
        out.push(Template {
            name,
            patient_id: v["context"]["patientId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            resources,
            order,
            expected: (variant, rating, category),
        });
    }
    let trap = trap.ok_or_else(|| anyhow::anyhow!("hooks/v4 lost {TRAP_CONDITION}"))?;
    Ok((out, trap))
}

const DATE_KEYS: [&str; 12] = [
    "birthDate",
    "onsetDateTime",
    "recordedDate",
    "abatementDateTime",
    "performedDateTime",
    "effectiveDateTime",
    "issued",
    "start",
    "end",
    "authoredOn",
    "occurrenceDateTime",
    "date",
];

/// Moves every date of `v` by `shift` and points patient references at `patient`.
fn rewrite(v: &mut Value, shift: Duration, old_patient: &str, patient: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if let Value::String(s) = x {
                    if DATE_KEYS.contains(&k.as_str()) {
                        *s = shift_date(s, shift);
                    } else if k == "reference" && s.ends_with(old_patient) {
                        *s = format!("Patient/{patient}");
                    }
                } else {
                    rewrite(x, shift, old_patient, patient);
                }
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| rewrite(x, shift, old_patient, patient)),
        _ => {}
    }
}

fn shift_date(s: &str, shift: Duration) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match s.get(..10).map(|d| Date::parse(d, &fmt)) {
        Some(Ok(d)) => {
            let moved = (d + shift).format(&fmt).unwrap_or_default();
            format!("{moved}{}", &s[10..])
        }
        _ => s.to_owned(),
    }
}

struct Patient {
    lines: Vec<(&'static str, String)>,
    orders: u64,
    expected: Option<String>,
}

fn patient(
    n: u64,
    seed: u64,
    opp: u32,
    templates: &[Template],
    trap: &Value,
) -> anyhow::Result<Patient> {
    let mut rng = Rng(seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407));
    rng.next();
    let t = &templates[rng.below(templates.len() as u64) as usize];
    let pid = format!("syn-{n}");
    let day0 = FIRST_DAY + Duration::days(rng.below(DAYS) as i64);
    let shift = day0 - EXAMPLE_DAY;
    let mut lines = Vec::new();
    let push = |lines: &mut Vec<(&'static str, String)>, mut r: Value, id: String| {
        rewrite(&mut r, shift, &t.patient_id, &pid);
        r["id"] = Value::String(id);
        let kind: &'static str = match r["resourceType"].as_str() {
            Some("Patient") => "Patient",
            Some("Condition") => "Condition",
            Some("Procedure") => "Procedure",
            Some("Observation") => "Observation",
            Some("DiagnosticReport") => "DiagnosticReport",
            Some("ServiceRequest") => "ServiceRequest",
            _ => "Other",
        };
        lines.push((kind, r.to_string()));
    };
    for (k, r) in t.resources.iter().enumerate() {
        let id = if k == 0 {
            pid.clone()
        } else {
            format!("{pid}-r{k}")
        };
        push(&mut lines, r.clone(), id);
    }
    let trapped = rng.unit() < 0.3;
    if trapped {
        let mut c = trap.clone();
        let after = EXAMPLE_DAY + Duration::days(1 + rng.below(60) as i64);
        let d = after.to_string();
        if let Some(m) = c.as_object_mut() {
            m.insert("onsetDateTime".into(), Value::String(d.clone()));
            m.insert("recordedDate".into(), Value::String(d));
            m.insert(
                "subject".into(),
                json!({"reference": format!("Patient/{pid}")}),
            );
        }
        push(&mut lines, c, format!("{pid}-late"));
    }
    let count = 1 + rng.below(2 * opp.max(1) as u64 - 1);
    let mut expected = None;
    for k in 0..count {
        let mut o = t.order.clone();
        let requester = (REQUESTERS * rng.unit() * rng.unit()) as u64;
        let obj = o
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("order is not an object"))?;
        obj.insert(
            "requester".into(),
            json!({"reference": format!("Practitioner/syn-dr-{requester}")}),
        );
        obj.insert("status".into(), Value::String("completed".into()));
        obj.remove("encounter");
        let when = if k == 0 {
            Some(EXAMPLE_DAY)
        } else {
            let other = &templates[rng.below(templates.len() as u64) as usize];
            obj.insert("code".into(), other.order["code"].clone());
            if let Some(c) = other.order.get("category") {
                obj.insert("category".into(), c.clone());
            }
            // Mostly follow-up orders, some before the first one.
            (rng.unit() >= 0.003).then(|| EXAMPLE_DAY + Duration::days(rng.below(426) as i64 - 60))
        };
        match when {
            Some(d) => {
                obj.insert("authoredOn".into(), Value::String(format!("{d}T09:30:00Z")));
            }
            None => {
                obj.remove("authoredOn");
            }
        }
        if k == 0 && n.is_multiple_of(100) {
            let (variant, rating, category) = t.expected;
            expected = Some(format!(
                "ServiceRequest/{pid}-o0,Patient/{pid},{},{variant},{rating},{category},{}",
                t.name,
                if trapped { "yes" } else { "no" }
            ));
        }
        push(&mut lines, o, format!("{pid}-o{k}"));
    }
    Ok(Patient {
        lines,
        orders: count,
        expected,
    })
}

const KINDS: [&str; 6] = [
    "Patient",
    "Condition",
    "Procedure",
    "Observation",
    "DiagnosticReport",
    "ServiceRequest",
];

/// Writes the export.
pub fn generate(opts: &SynthOptions) -> anyhow::Result<SynthStats> {
    let (templates, trap) = templates()?;
    std::fs::create_dir_all(&opts.out)?;
    let mut writers: Vec<Box<dyn Write>> = Vec::new();
    if !opts.bundles {
        for kind in KINDS {
            let name = if opts.gzip {
                format!("{kind}.ndjson.gz")
            } else {
                format!("{kind}.ndjson")
            };
            let f = BufWriter::with_capacity(1 << 16, std::fs::File::create(opts.out.join(name))?);
            writers.push(if opts.gzip {
                Box::new(GzEncoder::new(f, Compression::fast()))
            } else {
                Box::new(f)
            });
        }
    } else {
        std::fs::create_dir_all(opts.out.join("bundles"))?;
    }
    let mut expected = BufWriter::new(std::fs::File::create(opts.out.join("expected-sample.csv"))?);
    writeln!(
        expected,
        "order,patient,example,variant,rating,category,malignancy_recorded_after_order"
    )?;
    let mut stats = SynthStats::default();
    const CHUNK: u64 = 2000;
    let mut start = 0;
    while start < opts.patients {
        let end = (start + CHUNK).min(opts.patients);
        let batch: Vec<Patient> = (start..end)
            .into_par_iter()
            .map(|n| patient(n, opts.seed, opts.orders_per_patient, &templates, &trap))
            .collect::<anyhow::Result<_>>()?;
        if opts.bundles {
            // One collection Bundle per 100 patients.
            for (i, group) in batch.chunks(100).enumerate() {
                let entries: Vec<Value> = group
                    .iter()
                    .flat_map(|p| p.lines.iter())
                    .map(|(_, l)| {
                        let r: Value = serde_json::from_str(l).unwrap_or(Value::Null);
                        json!({"resource": r})
                    })
                    .collect();
                let mut b = Map::new();
                b.insert("resourceType".into(), "Bundle".into());
                b.insert("type".into(), "collection".into());
                b.insert("entry".into(), Value::Array(entries));
                let path = opts
                    .out
                    .join("bundles")
                    .join(format!("bundle-{:06}.json", start / 100 + i as u64));
                std::fs::write(path, serde_json::to_vec_pretty(&Value::Object(b))?)?;
            }
        }
        for p in batch {
            stats.patients += 1;
            stats.orders += p.orders;
            stats.resources += p.lines.len() as u64 - p.orders;
            if !opts.bundles {
                for (kind, line) in &p.lines {
                    if let Some(i) = KINDS.iter().position(|k| k == kind) {
                        writers[i].write_all(line.as_bytes())?;
                        writers[i].write_all(b"\n")?;
                    }
                }
            }
            if let Some(e) = p.expected {
                writeln!(expected, "{e}")?;
            }
        }
        start = end;
    }
    for mut w in writers {
        w.flush()?;
    }
    expected.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_and_keep_their_time() {
        assert_eq!(
            shift_date("2026-11-12T16:00:00Z", Duration::days(-10)),
            "2026-11-02T16:00:00Z"
        );
        assert_eq!(shift_date("not a date", Duration::days(3)), "not a date");
    }

    #[test]
    fn the_same_seed_gives_the_same_patient() {
        let (t, trap) = templates().unwrap();
        let a = patient(7, 42, 4, &t, &trap).unwrap();
        let b = patient(7, 42, 4, &t, &trap).unwrap();
        let c = patient(7, 43, 4, &t, &trap).unwrap();
        assert_eq!(a.lines, b.lines);
        assert_ne!(a.lines, c.lines);
    }
}

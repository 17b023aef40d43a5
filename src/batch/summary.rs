//! Aggregation of the order rows into the summary (summary.json and the report's figures).

use super::input::Problem;
use super::order::OrderRow;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use vcf_engine::knowledge::Category;

/// Rating mix of a group of orders of this guideline.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Mix {
    pub orders: u64,
    pub usually_appropriate: u64,
    pub may_be_appropriate: u64,
    pub usually_not_appropriate: u64,
    /// Evaluated but without a rating (ambiguous, no fracture on record, no variant applies,
    /// out of scope).
    pub not_rated: u64,
}

impl Mix {
    fn add(&mut self, c: Option<Category>) {
        self.orders += 1;
        match c {
            Some(Category::UsuallyAppropriate) => self.usually_appropriate += 1,
            Some(Category::MayBeAppropriate | Category::MayBeAppropriateDisagreement) => {
                self.may_be_appropriate += 1
            }
            Some(Category::UsuallyNotAppropriate) => self.usually_not_appropriate += 1,
            None => self.not_rated += 1,
        }
    }

    pub fn share_not_appropriate(&self) -> f64 {
        if self.orders == 0 {
            0.0
        } else {
            self.usually_not_appropriate as f64 / self.orders as f64
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alternative {
    pub procedure: String,
    pub alternative: String,
    pub orders: u64,
}

/// A few orders behind a bar of the report (not appropriate ones first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    pub order: String,
    pub date: Option<String>,
    pub requester: Option<String>,
    pub patient: String,
    pub procedure: Option<String>,
    pub category: Option<String>,
    pub variant: Option<String>,
    pub top_alternative: Option<String>,
}

/// The sample orders of one bar: (usually not appropriate, others).
pub type Samples = (Vec<Sample>, Vec<Sample>);

const SAMPLES_NOT_APPROPRIATE: usize = 10;
const SAMPLES_OTHER: usize = 5;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub started_at: String,
    pub seconds: f64,
    pub orders_per_second: f64,
    pub knowledge_version: String,
    pub guideline_id: String,
    pub input_files: u64,
    pub patients: u64,
    /// Clinical resources kept for evaluation, and how many of them carry no date (counted as
    /// known before every order).
    pub resources: u64,
    pub resources_undated: u64,
    /// Resources of types the engine does not read, by type.
    pub resources_ignored: BTreeMap<String, u64>,
    /// Every ServiceRequest read.
    pub orders_read: u64,
    /// Orders of a procedure of this guideline that were evaluated: the base of every share.
    pub orders_checked: u64,
    /// Orders for procedures this guideline does not cover.
    pub orders_not_covered: u64,
    /// Orders for a procedure of this guideline for a patient with no vertebral compression
    /// fracture on record on the order date (the guideline does not apply).
    pub orders_without_fracture: u64,
    /// Orders without `authoredOn` (not evaluated: there is no date to judge them as of).
    pub orders_without_date: u64,
    pub orders_entered_in_error: u64,
    /// Lines or resources skipped as malformed (see skipped.csv).
    pub skipped: u64,
    pub skipped_examples: Vec<Problem>,
    /// Share of checked orders rated "usually not appropriate".
    pub share_not_appropriate: f64,
    pub mix: Mix,
    pub by_outcome: BTreeMap<String, u64>,
    pub by_month: BTreeMap<String, Mix>,
    pub by_procedure: BTreeMap<String, Mix>,
    pub by_variant: BTreeMap<String, Mix>,
    pub by_requester: BTreeMap<String, Mix>,
    /// The better alternatives of "usually not appropriate" orders, most common first.
    pub top_alternatives: Vec<Alternative>,
    #[serde(skip)]
    pub samples: HashMap<(&'static str, String), Samples>,
    #[serde(skip)]
    pub alternatives: HashMap<(String, String), u64>,
}

pub const DIMENSIONS: [&str; 4] = ["month", "procedure", "requester", "variant"];

impl Summary {
    pub fn add_problem(&mut self, p: &Problem) {
        self.skipped += 1;
        if self.skipped_examples.len() < 20 {
            self.skipped_examples.push(p.clone());
        }
    }

    pub fn add(&mut self, row: &OrderRow) {
        self.orders_read += 1;
        *self.by_outcome.entry(row.outcome.clone()).or_default() += 1;
        match row.outcome.as_str() {
            "no-date" => {
                self.orders_without_date += 1;
                return;
            }
            "entered-in-error" => {
                self.orders_entered_in_error += 1;
                return;
            }
            _ => {}
        }
        if !row.in_scope() {
            if row.procedure_id.is_some() {
                self.orders_without_fracture += 1;
            } else {
                self.orders_not_covered += 1;
            }
            return;
        }
        self.orders_checked += 1;
        let c = row.category();
        self.mix.add(c);
        let keys: [(&'static str, Option<String>); 4] = [
            ("month", row.month().map(str::to_owned)),
            ("procedure", row.procedure.clone()),
            (
                "requester",
                Some(row.requester.clone().unwrap_or_else(|| "(none)".into())),
            ),
            (
                "variant",
                Some(row.variant.clone().unwrap_or_else(|| "(not rated)".into())),
            ),
        ];
        for (dim, key) in keys {
            let Some(key) = key else { continue };
            let map = match dim {
                "month" => &mut self.by_month,
                "procedure" => &mut self.by_procedure,
                "requester" => &mut self.by_requester,
                _ => &mut self.by_variant,
            };
            map.entry(key.clone()).or_default().add(c);
            let (bad, other) = self.samples.entry((dim, key)).or_default();
            let not_appropriate = c == Some(Category::UsuallyNotAppropriate);
            let (list, cap) = if not_appropriate {
                (bad, SAMPLES_NOT_APPROPRIATE)
            } else {
                (other, SAMPLES_OTHER)
            };
            if list.len() < cap {
                list.push(Sample {
                    order: row.order.clone(),
                    date: row.date.clone(),
                    requester: row.requester.clone(),
                    patient: row.patient.clone(),
                    procedure: row.procedure.clone(),
                    category: row.category.clone(),
                    variant: row.variant.clone(),
                    top_alternative: row.top_alternative.clone(),
                });
            }
        }
        if c == Some(Category::UsuallyNotAppropriate)
            && let (Some(p), Some(a)) = (&row.procedure, &row.top_alternative)
        {
            *self.alternatives.entry((p.clone(), a.clone())).or_default() += 1;
        }
    }

    /// Computes the derived figures once every row was added.
    pub fn finish(&mut self, seconds: f64) {
        self.seconds = seconds;
        self.orders_per_second = if seconds > 0.0 {
            self.orders_read as f64 / seconds
        } else {
            0.0
        };
        self.share_not_appropriate = self.mix.share_not_appropriate();
        let mut alts: Vec<Alternative> = self
            .alternatives
            .iter()
            .map(|((p, a), n)| Alternative {
                procedure: p.clone(),
                alternative: a.clone(),
                orders: *n,
            })
            .collect();
        alts.sort_by(|a, b| {
            b.orders
                .cmp(&a.orders)
                .then_with(|| a.procedure.cmp(&b.procedure))
                .then_with(|| a.alternative.cmp(&b.alternative))
        });
        alts.truncate(20);
        self.top_alternatives = alts;
    }
}

//! The shape of the knowledge file (`knowledge/acr-vcf-2022.toml`): the ACR guideline as data.
//!
//! Everything clinical lives in the file, not in Rust: variants and their defining facts, every
//! procedure row with rating, category, strength of evidence and radiation level, the order codes
//! that map to each procedure, and the value sets that recognise patient facts. Each entry carries
//! its source so that provenance can travel with a rating into the card and the audit record.
//!
//! The Rust side knows only the *names* of facts (see [`Fact`]) and of value sets
//! ([`REQUIRED_VALUE_SETS`]); how a fact is derived from coded data (7th characters, dates,
//! statuses) is engine code in `facts/`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Root of the knowledge file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knowledge {
    /// Format version of this schema; the loader rejects versions it does not know.
    pub schema_version: u32,
    /// Version of the content (goes into every audit record and card), e.g. `2026.11.1`.
    pub version: String,
    /// Review status, e.g. "draft: needs clinical and terminology review".
    pub status: String,
    pub guideline: Guideline,
    /// Code system aliases: key used in this file -> canonical URI plus other URIs seen in the
    /// wild (e.g. CPT as `http://www.ama-assn.org/go/cpt` or its OID).
    pub code_systems: BTreeMap<String, CodeSystem>,
    /// ACR relative radiation levels, adult and pediatric bands.
    pub radiation_levels: Vec<RadiationLevel>,
    /// Local policy parameters that the guideline does not fix (each with its rationale).
    pub policy: Policy,
    pub procedures: Vec<Procedure>,
    pub variants: Vec<Variant>,
    pub value_sets: Vec<ValueSet>,
    /// Override reasons offered on warning cards (CDS Hooks `overrideReasons`).
    pub override_reasons: Vec<OverrideReason>,
    /// Other ACR topics to name when an order or patient falls outside this guideline.
    #[serde(default)]
    pub related_topics: Vec<RelatedTopic>,
    /// For every fact a variant uses: may a candidate rest on it when the record does not show
    /// it, or must it be evidenced (and why).
    #[serde(default)]
    pub evidence_policy: Vec<EvidencePolicy>,
    /// Cue words for reading radiology report text (negation, uncertainty, history).
    #[serde(default)]
    pub report_language: ReportLanguage,
    /// Findings read from radiology report text, each with its phrases.
    #[serde(default)]
    pub report_findings: Vec<ReportFindingDef>,
    /// Order-code ranges of advanced diagnostic imaging (CT, MR, nuclear medicine, PET): an
    /// order in one of them that this guideline does not cover is rated `no-criteria-apply`.
    #[serde(default)]
    pub advanced_imaging: Vec<CodeRange>,
}

/// Whether a candidate variant may rest on an unknown fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceRule {
    /// The candidate stays; the card states the assumption.
    MayAssume,
    /// The guideline makes the finding decisive: "no variant fits" becomes a candidate when
    /// every candidate rests on such an unshown finding.
    MustEvidence,
}

/// Evidence policy of one fact (`[[evidence_policy]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidencePolicy {
    pub fact: Fact,
    /// For a variant that needs the fact true.
    pub present: EvidenceRule,
    /// For a variant that needs the fact false.
    pub absent: EvidenceRule,
    pub why: String,
    pub source: String,
}

/// Cue words of report reading (`[report_language]`), NegEx / ConText style.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportLanguage {
    #[serde(default)]
    pub source: String,
    /// A cue applies to a finding at most this many words away.
    #[serde(default)]
    pub scope_words: u32,
    #[serde(default)]
    pub negation_before: Vec<String>,
    #[serde(default)]
    pub negation_after: Vec<String>,
    #[serde(default)]
    pub uncertainty_before: Vec<String>,
    #[serde(default)]
    pub uncertainty_after: Vec<String>,
    #[serde(default)]
    pub history_before: Vec<String>,
    /// Phrases that look like cues but are not ("no change"): cues inside them are ignored.
    #[serde(default)]
    pub pseudo: Vec<String>,
    /// Words that end a cue's scope ("but", "however").
    #[serde(default)]
    pub terminators: Vec<String>,
    /// A report is a spine report when its code text / display names one of these.
    #[serde(default)]
    pub spine_phrases: Vec<String>,
    /// Modality of a report from its code text / display, when its code is not a known
    /// procedure code.
    #[serde(default)]
    pub modality_phrases: Vec<ModalityPhrases>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModalityPhrases {
    pub modality: String,
    pub phrases: Vec<String>,
}

/// A finding read from report text (`[[report_findings]]`). The engine knows the ids
/// ([`REQUIRED_REPORT_FINDINGS`]); the phrases are data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFindingDef {
    pub id: String,
    pub description: String,
    /// Lower-case phrases, whole words; a trailing `*` matches any word ending.
    pub phrases: Vec<String>,
    /// A match lying inside one of these phrases is not a match ("year-old" for "old").
    #[serde(default)]
    pub except: Vec<String>,
    /// Modalities the finding counts from (empty: any), e.g. `["MR"]` for marrow edema.
    #[serde(default)]
    pub modalities: Vec<String>,
    /// A historical mention ("status post kyphoplasty") still shows the finding.
    #[serde(default)]
    pub history_counts: bool,
    pub source: String,
    pub confidence: Confidence,
}

/// Report findings the engine uses; the loader fails if one is missing.
pub const REQUIRED_REPORT_FINDINGS: &[&str] = &[
    "fracture",
    "marrow-edema",
    "intravertebral-cleft",
    "acute",
    "chronic",
    "retropulsion",
    "deformity",
    "tumour",
    "prior-augmentation",
    "spine-surgery",
    "worsening-pain",
    "mechanical-pain",
    "pulmonary-dysfunction",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guideline {
    pub id: String,
    pub title: String,
    pub revision: String,
    pub citation: String,
    /// Link shown on cards.
    pub url: String,
    /// URI put into `pama-rating-auc-applied`.
    pub auc_uri: String,
    /// The one source line on a card, e.g. "ACR Appropriateness Criteria, Management of VCF
    /// (2022)" (followed by ", variant N"). Defaults to `title (revision)`.
    #[serde(default)]
    pub short_citation: Option<String>,
    pub panels: Vec<String>,
    /// Where the ratings were taken from, and how sure we are.
    pub ratings_source: String,
    pub confidence: Confidence,
    /// Scope statement, e.g. high-energy trauma without bone pathology is out of scope.
    pub scope_note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSystem {
    pub uri: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiationLevel {
    /// `O`, `☢`, `☢☢`, ... `☢☢☢☢☢`.
    pub symbol: String,
    /// 0 for O, otherwise the number of ☢ symbols.
    pub level: u8,
    pub adult: String,
    pub pediatric: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A fracture whose onset / recorded date is within this many days of the order counts as
    /// "new". The guideline gives no window; see `new_fracture_window_rationale`.
    pub new_fracture_window_days: u32,
    pub new_fracture_window_rationale: String,
    /// Age (years) under which pediatric radiation levels apply.
    pub pediatric_age_below: u32,
    /// eGFR (mL/min/1.73m2) below which contrast studies are not suggested.
    pub egfr_contrast_threshold: f64,
    pub egfr_rationale: String,
    /// A fracture dated more than this many days before the order is not new; between
    /// `new_fracture_window_days` and this, "new" is unknown.
    pub old_fracture_window_days: u32,
    pub old_fracture_window_rationale: String,
    /// From this age a traumatic wedge compression code without a high-energy external cause
    /// is a presumed fragility fracture (in scope).
    pub older_adult_age_years: u32,
    pub older_adult_age_rationale: String,
    /// Shown when a gadolinium study is ordered or suggested below the eGFR threshold: the study
    /// is not withheld, a group II agent is named instead (ACR-NKF 2021).
    #[serde(default)]
    pub gadolinium_low_egfr_note: Option<String>,
}

/// Strength of the source behind a fact: A official, B reliable secondary, C weak / inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confidence {
    A,
    B,
    C,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcedureKind {
    Imaging,
    Treatment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contrast {
    /// Without IV contrast.
    Without,
    /// With IV contrast.
    With,
    /// Without and with IV contrast.
    WithoutAndWith,
    /// Intrathecal contrast (CT myelography).
    Intrathecal,
    /// Contrast does not apply (nuclear medicine, treatments).
    NotApplicable,
}

/// Spine segments an order code covers. `area of interest` in ACR wording means any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    Cervical,
    Thoracic,
    Lumbar,
    CervicalThoracic,
    ThoracicLumbar,
    CervicalLumbar,
    /// Cervical, thoracic and lumbar ("complete spine").
    WholeSpine,
    /// Spine, region not stated by the code (e.g. LOINC "MR Spine WO contrast").
    SpineUnspecified,
    /// Whole body or not a spine study (bone scan, PET/CT skull base to mid-thigh).
    Body,
    /// Treatment codes: the level is not part of the code.
    NotApplicable,
}

impl Region {
    /// Plain-language name for cards.
    pub fn label(self) -> &'static str {
        match self {
            Region::Cervical => "cervical spine",
            Region::Thoracic => "thoracic spine",
            Region::Lumbar => "lumbar spine",
            Region::CervicalThoracic => "cervical and thoracic spine",
            Region::ThoracicLumbar => "thoracic and lumbar spine",
            Region::CervicalLumbar => "cervical and lumbar spine",
            Region::WholeSpine => "complete spine",
            Region::SpineUnspecified => "spine (region not specified)",
            Region::Body => "body",
            Region::NotApplicable => "not applicable",
        }
    }

    /// The single spine segments a region covers (empty for non-segment regions).
    pub fn segments(self) -> &'static [Region] {
        match self {
            Region::Cervical => &[Region::Cervical],
            Region::Thoracic => &[Region::Thoracic],
            Region::Lumbar => &[Region::Lumbar],
            Region::CervicalThoracic => &[Region::Cervical, Region::Thoracic],
            Region::ThoracicLumbar => &[Region::Thoracic, Region::Lumbar],
            Region::CervicalLumbar => &[Region::Cervical, Region::Lumbar],
            Region::WholeSpine => &[Region::Cervical, Region::Thoracic, Region::Lumbar],
            Region::SpineUnspecified | Region::Body | Region::NotApplicable => &[],
        }
    }

    /// Regions specific enough to build a spine order for (segments and their combinations).
    pub fn is_spine_segment(self) -> bool {
        !self.segments().is_empty()
    }
}

impl Contrast {
    pub fn label(self) -> &'static str {
        match self {
            Contrast::Without => "without IV contrast",
            Contrast::With => "with IV contrast",
            Contrast::WithoutAndWith => "without and with IV contrast",
            Contrast::Intrathecal => "intrathecal contrast",
            Contrast::NotApplicable => "contrast not applicable",
        }
    }
}

/// Safety requirement of a procedure, checked before it is suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// MRI: no MR-unsafe implanted device.
    MriSafe,
    /// Gadolinium-based contrast: renal function / allergy.
    Gadolinium,
    /// Iodinated contrast (IV or intrathecal): renal function / allergy.
    IodinatedContrast,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    /// Stable id used by ratings, e.g. `MRI_SPINE_WO`.
    pub id: String,
    /// ACR wording, e.g. "MRI spine area of interest without IV contrast".
    pub name: String,
    pub kind: ProcedureKind,
    /// `MR`, `CT`, `NM`, `PT`, `XR`... absent for treatments.
    #[serde(default)]
    pub modality: Option<String>,
    pub contrast: Contrast,
    /// ACR adult relative radiation level text exactly as in the table ("O 0 mSv", "Varies",
    /// "☢☢☢ 1-10 mSv"); absent for treatments (ACR gives none).
    #[serde(default)]
    pub rrl_adult: Option<String>,
    #[serde(default)]
    pub rrl_pediatric: Option<String>,
    /// Region-specific radiation levels where ACR publishes them (CT spine by region).
    #[serde(default)]
    pub rrl_by_region: Vec<RegionRadiation>,
    #[serde(default)]
    pub safety: Vec<Safety>,
    /// How an order for this procedure is recognised; empty for "Medical management only",
    /// which has no order.
    #[serde(default)]
    pub codes: Vec<OrderCode>,
    /// Referral-style procedures (consultations) are recognised by category + performer type.
    #[serde(default)]
    pub referral: Option<ReferralMatch>,
    /// True for "Medical management only": suggesting it means cancelling the draft order.
    #[serde(default)]
    pub no_order: bool,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionRadiation {
    pub region: Region,
    pub adult: String,
    pub pediatric: String,
    pub source: String,
}

/// One order code (CPT, LOINC Playbook, RadLex, HCPCS) for a procedure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCode {
    /// Key into `code_systems`.
    pub system: String,
    pub code: String,
    pub display: String,
    pub region: Region,
    pub source: String,
    pub confidence: Confidence,
    /// Codes that identify the procedure when ordered but should never be put into a created
    /// (suggested) order, e.g. deleted or add-on codes.
    #[serde(default)]
    pub match_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralMatch {
    /// ServiceRequest.category codes that mark a referral.
    pub category: Vec<CodeRef>,
    /// ServiceRequest.performerType / code codes naming the specialty.
    pub specialty: Vec<CodeRef>,
    pub source: String,
    pub confidence: Confidence,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRef {
    pub system: String,
    pub code: String,
    pub display: String,
}

/// ACR appropriateness category. The rating (1-9) must fall in its band: 1-3 usually not
/// appropriate, 4-6 may be appropriate (with or without disagreement), 7-9 usually appropriate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    UsuallyAppropriate,
    MayBeAppropriate,
    MayBeAppropriateDisagreement,
    UsuallyNotAppropriate,
}

impl Category {
    /// ACR's wording.
    pub fn label(self) -> &'static str {
        match self {
            Category::UsuallyAppropriate => "Usually appropriate",
            Category::MayBeAppropriate => "May be appropriate",
            Category::MayBeAppropriateDisagreement => "May be appropriate (Disagreement)",
            Category::UsuallyNotAppropriate => "Usually not appropriate",
        }
    }

    /// The category a rating belongs to (ignoring the disagreement flag).
    pub fn band(rating: u8) -> Option<Category> {
        match rating {
            1..=3 => Some(Category::UsuallyNotAppropriate),
            4..=6 => Some(Category::MayBeAppropriate),
            7..=9 => Some(Category::UsuallyAppropriate),
            _ => None,
        }
    }

    /// The category with the disagreement flag folded in (what PAMA codes and card
    /// indicators depend on).
    pub fn normalized(self) -> Category {
        match self {
            Category::MayBeAppropriateDisagreement => Category::MayBeAppropriate,
            c => c,
        }
    }

    /// Kebab-case code (as in the knowledge file), used in translation codings.
    pub fn code(self) -> &'static str {
        match self {
            Category::UsuallyAppropriate => "usually-appropriate",
            Category::MayBeAppropriate => "may-be-appropriate",
            Category::MayBeAppropriateDisagreement => "may-be-appropriate-disagreement",
            Category::UsuallyNotAppropriate => "usually-not-appropriate",
        }
    }

    /// Whether `rating` is consistent with this category.
    pub fn admits(self, rating: u8) -> bool {
        match self {
            Category::MayBeAppropriateDisagreement => {
                Category::band(rating) == Some(Category::MayBeAppropriate)
            }
            c => Category::band(rating) == Some(c),
        }
    }
}

/// Names of the patient facts a variant can be defined by. Derivation lives in `facts/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    /// A vertebral compression fracture is on record (or is the order's reason).
    Vcf,
    /// The fracture is new (see policy window, ICD-10-CM 7th character).
    NewFracture,
    /// Back pain / symptoms attributed to the spine.
    Symptomatic,
    /// History of malignancy, active or resolved.
    MalignancyHistory,
    /// The fracture is osteoporotic.
    Osteoporotic,
    /// The fracture is pathological (neoplastic or other disease).
    Pathological,
    /// The fracture's cause is neoplastic (V9 "pathological"; V8 "benign" = not neoplastic).
    NeoplasticCause,
    /// More than one VCF.
    MultipleVcf,
    /// Prior vertebral augmentation (vertebroplasty / kyphoplasty).
    PriorVertebralAugmentation,
    /// Prior spine surgery (fusion / instrumentation).
    PriorSpineSurgery,
    /// Bone marrow edema or intravertebral cleft on MRI.
    MarrowEdemaOrCleft,
    /// Worsening pain.
    WorseningPain,
    /// Spinal deformity (kyphosis, loss of height).
    Deformity,
    /// Pulmonary dysfunction attributed to the fracture / kyphosis.
    PulmonaryDysfunction,
    /// Ongoing or increasing mechanical pain.
    MechanicalPain,
    /// High-energy traumatic fracture (out of this guideline's scope without bone pathology).
    HighEnergyTrauma,
}

impl Fact {
    /// Every fact, in declaration order (`Fact::ALL[f.index()] == f`).
    pub const ALL: [Fact; 16] = [
        Fact::Vcf,
        Fact::NewFracture,
        Fact::Symptomatic,
        Fact::MalignancyHistory,
        Fact::Osteoporotic,
        Fact::Pathological,
        Fact::NeoplasticCause,
        Fact::MultipleVcf,
        Fact::PriorVertebralAugmentation,
        Fact::PriorSpineSurgery,
        Fact::MarrowEdemaOrCleft,
        Fact::WorseningPain,
        Fact::Deformity,
        Fact::PulmonaryDysfunction,
        Fact::MechanicalPain,
        Fact::HighEnergyTrauma,
    ];
    pub const COUNT: usize = Fact::ALL.len();

    /// Position in [`Fact::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The key used in the knowledge file (`new_fracture`).
    pub fn key(self) -> &'static str {
        match self {
            Fact::Vcf => "vcf",
            Fact::NewFracture => "new_fracture",
            Fact::Symptomatic => "symptomatic",
            Fact::MalignancyHistory => "malignancy_history",
            Fact::Osteoporotic => "osteoporotic",
            Fact::Pathological => "pathological",
            Fact::NeoplasticCause => "neoplastic_cause",
            Fact::MultipleVcf => "multiple_vcf",
            Fact::PriorVertebralAugmentation => "prior_vertebral_augmentation",
            Fact::PriorSpineSurgery => "prior_spine_surgery",
            Fact::MarrowEdemaOrCleft => "marrow_edema_or_cleft",
            Fact::WorseningPain => "worsening_pain",
            Fact::Deformity => "deformity",
            Fact::PulmonaryDysfunction => "pulmonary_dysfunction",
            Fact::MechanicalPain => "mechanical_pain",
            Fact::HighEnergyTrauma => "high_energy_trauma",
        }
    }

    /// Plain-language statement of the fact being true or false, for cards
    /// ("assumes {phrase}").
    pub fn phrase(self, value: bool) -> &'static str {
        match (self, value) {
            (Fact::Vcf, true) => "a vertebral compression fracture",
            (Fact::Vcf, false) => "no vertebral compression fracture",
            (Fact::NewFracture, true) => "the fracture is new",
            (Fact::NewFracture, false) => "the fracture is not new",
            (Fact::Symptomatic, true) => "the fracture is symptomatic (back pain)",
            (Fact::Symptomatic, false) => "the fracture is asymptomatic",
            (Fact::MalignancyHistory, true) => "a history of malignancy",
            (Fact::MalignancyHistory, false) => "no history of malignancy",
            (Fact::Osteoporotic, true) => "the fracture is osteoporotic",
            (Fact::Osteoporotic, false) => "the fracture is not osteoporotic",
            (Fact::Pathological, true) => "the fracture is pathological",
            (Fact::Pathological, false) => "the fracture is not pathological",
            (Fact::NeoplasticCause, true) => "a neoplastic cause of the fracture",
            (Fact::NeoplasticCause, false) => "the fracture is benign (no neoplastic cause)",
            (Fact::MultipleVcf, true) => "multiple vertebral compression fractures",
            (Fact::MultipleVcf, false) => "a single vertebral compression fracture",
            (Fact::PriorVertebralAugmentation, true) => "prior vertebral augmentation",
            (Fact::PriorVertebralAugmentation, false) => "no prior vertebral augmentation",
            (Fact::PriorSpineSurgery, true) => "prior spine surgery",
            (Fact::PriorSpineSurgery, false) => "no prior spine surgery",
            (Fact::MarrowEdemaOrCleft, true) => "bone marrow edema or intravertebral cleft on MRI",
            (Fact::MarrowEdemaOrCleft, false) => {
                "no bone marrow edema or intravertebral cleft on MRI"
            }
            (Fact::WorseningPain, true) => "worsening pain",
            (Fact::WorseningPain, false) => "no worsening pain",
            (Fact::Deformity, true) => "spinal deformity",
            (Fact::Deformity, false) => "no spinal deformity",
            (Fact::PulmonaryDysfunction, true) => "pulmonary dysfunction",
            (Fact::PulmonaryDysfunction, false) => "no pulmonary dysfunction",
            (Fact::MechanicalPain, true) => "ongoing or increasing mechanical pain",
            (Fact::MechanicalPain, false) => "no ongoing or increasing mechanical pain",
            (Fact::HighEnergyTrauma, true) => "a high-energy traumatic fracture",
            (Fact::HighEnergyTrauma, false) => "no high-energy trauma",
        }
    }

    /// Short noun for "depends on {name}" ("history of malignancy").
    pub fn name(self) -> &'static str {
        match self {
            Fact::Vcf => "vertebral compression fracture",
            Fact::NewFracture => "whether the fracture is new",
            Fact::Symptomatic => "whether the fracture is symptomatic",
            Fact::MalignancyHistory => "history of malignancy",
            Fact::Osteoporotic => "whether the fracture is osteoporotic",
            Fact::Pathological => "whether the fracture is pathological",
            Fact::NeoplasticCause => "whether the fracture's cause is neoplastic",
            Fact::MultipleVcf => "multiple fractures",
            Fact::PriorVertebralAugmentation => "prior vertebral augmentation",
            Fact::PriorSpineSurgery => "prior spine surgery",
            Fact::MarrowEdemaOrCleft => "marrow edema or cleft on MRI",
            Fact::WorseningPain => "worsening pain",
            Fact::Deformity => "spinal deformity",
            Fact::PulmonaryDysfunction => "pulmonary dysfunction",
            Fact::MechanicalPain => "mechanical pain",
            Fact::HighEnergyTrauma => "high-energy trauma",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// `V1` ... `V9`.
    pub id: String,
    pub number: u8,
    /// ACR wording of the clinical scenario.
    pub title: String,
    /// Which order kinds this variant rates (imaging variants rate imaging orders only).
    pub applies_to: ProcedureKind,
    /// Facts that must hold (true) or must not hold (false).
    pub requires: BTreeMap<Fact, bool>,
    /// Groups of facts of which at least one must be true (e.g. "previously treated VCF or
    /// multiple VCFs").
    #[serde(default)]
    pub requires_any: Vec<Vec<Fact>>,
    /// How the variant's definition was read from the ACR wording, when interpretation was needed.
    #[serde(default)]
    pub interpretation: Option<String>,
    pub ratings: Vec<RatingRow>,
}

/// One row of an ACR variant table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRow {
    pub procedure: String,
    /// Panel's final rating, 1-9.
    pub rating: u8,
    /// Panel median (equal to the rating in this topic).
    pub median: u8,
    pub category: Category,
    /// Strength of evidence: Strong, Moderate, Limited, Expert Opinion, Expert Consensus.
    pub evidence: String,
}

/// A set of codes that recognises one kind of patient fact.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSet {
    /// Well-known id the engine looks up, see [`REQUIRED_VALUE_SETS`].
    pub id: String,
    pub description: String,
    pub codes: Vec<CodeMatcher>,
    pub source: String,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: Option<String>,
    /// Codes that the `codes` would match but that are not in the set (each with its source),
    /// e.g. non-melanoma skin cancer in "history of malignancy".
    #[serde(default)]
    pub excludes: Vec<CodeMatcher>,
}

/// Matches codings. ICD-10-CM codes are compared without dots and case-insensitively.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeMatcher {
    /// Key into `code_systems`.
    pub system: String,
    /// Exact code.
    #[serde(default)]
    pub code: Option<String>,
    /// Code prefix (the code and all its descendants), ICD-10-CM style.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Inclusive range of 3-character ICD-10-CM categories, e.g. `["C00", "C96"]`.
    #[serde(default)]
    pub range: Option<[String; 2]>,
    #[serde(default)]
    pub display: Option<String>,
    /// Where the code comes from (required on exclusions; optional on codes, whose value set
    /// names the source).
    #[serde(default)]
    pub source: Option<String>,
}

/// Value sets the engine needs; the loader fails if one is missing (it may be empty where no
/// code exists, e.g. bone marrow edema, but then it must say so in `note`).
pub const REQUIRED_VALUE_SETS: &[&str] = &[
    "vcf",
    "vcf-traumatic",
    "osteoporosis",
    "pathological-fracture",
    "malignancy",
    "back-pain",
    "prior-vertebral-augmentation",
    "prior-spine-surgery",
    "marrow-edema-or-cleft",
    "deformity",
    "worsening-pain",
    "pulmonary-dysfunction",
    "mechanical-pain",
    "mri-unsafe-device",
    "renal-contrast-risk",
    "contrast-allergy",
    "egfr",
    "spine-radiograph",
    "neoplastic-fracture",
    "bone-malignancy",
    "high-energy-mechanism",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideReason {
    pub system: String,
    pub code: String,
    pub display: String,
    pub source: String,
    /// The cards it is offered on; empty = every warning card.
    #[serde(default)]
    pub applies_to: Vec<OverrideUse>,
}

/// Which cards an override reason fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideUse {
    /// Rating cards on imaging orders.
    Imaging,
    /// Rating cards on treatment orders (procedures, referrals, medical management).
    Treatment,
    /// Safety cards (device, contrast allergy, kidney function) on the ordered study.
    Safety,
}

/// An inclusive range of numeric order codes of one code system (e.g. CPT 70450-70498).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRange {
    /// Code-system key (see `code_systems`).
    pub system: String,
    pub from: String,
    pub to: String,
    /// CT, MR, NM or PET.
    pub modality: String,
    pub display: String,
    pub source: String,
    pub confidence: Confidence,
}

impl CodeRange {
    /// True when `code` (same length, digits) lies within the range.
    pub fn contains(&self, code: &str) -> bool {
        let code = code.trim();
        code.len() == self.from.len()
            && code.bytes().all(|b| b.is_ascii_digit())
            && self.from.as_str() <= code
            && code <= self.to.as_str()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelatedTopic {
    pub id: String,
    pub title: String,
    pub when: String,
    #[serde(default)]
    pub url: Option<String>,
}

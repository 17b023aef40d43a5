//! Findings read from radiology report text (`DiagnosticReport.conclusion`, text/plain
//! `presentedForm`): marrow edema, intravertebral cleft, acuity, fractured levels, retropulsion,
//! tumour features, previous augmentation / surgery, and pain stated in the clinical history.
//!
//! The method is NegEx / ConText (trigger terms before or after a finding within a window of
//! words, pseudo-triggers, scope terminators); every phrase and cue word is data in the knowledge
//! file (`[report_language]`, `[[report_findings]]`). This module only knows the finding ids
//! ([`crate::knowledge::REQUIRED_REPORT_FINDINGS`]) and the shape of a vertebral level.
//!
//! Report text is patient data: nothing here logs it, and a [`Mention`] carries only the
//! knowledge file's phrase that matched, never the report's own words.

use crate::knowledge::{Knowledge, ReportFindingDef};
use aho_corasick::{AhoCorasick, MatchKind};
use serde::Serialize;
use std::fmt;

/// A vertebral level, C1 .. S5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Level(u8);

const REGIONS: [(char, u8); 4] = [('C', 7), ('T', 12), ('L', 5), ('S', 5)];

impl Level {
    /// `('L', 1)` -> L1; `None` for a level that does not exist (C8, T13, L6).
    pub fn new(region: char, number: u8) -> Option<Level> {
        let region = region.to_ascii_uppercase();
        let mut base = 0u8;
        for (r, count) in REGIONS {
            if r == region {
                return (1..=count)
                    .contains(&number)
                    .then(|| Level(base + number - 1));
            }
            base += count;
        }
        None
    }

    /// Parses `L1`, `t12` (no spaces).
    pub fn parse(s: &str) -> Option<Level> {
        let mut chars = s.chars();
        let region = chars.next()?;
        let digits = chars.as_str();
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Level::new(region, digits.parse().ok()?)
    }

    /// The region letter: 'C', 'T', 'L' or 'S'.
    pub fn region(self) -> char {
        self.parts().0
    }

    fn parts(self) -> (char, u8) {
        let mut base = 0u8;
        for (r, count) in REGIONS {
            if self.0 < base + count {
                return (r, self.0 - base + 1);
            }
            base += count;
        }
        ('S', 5)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, n) = self.parts();
        write!(f, "{r}{n}")
    }
}

impl From<Level> for String {
    fn from(l: Level) -> String {
        l.to_string()
    }
}

/// Every level from `a` to `b` inclusive (either order).
pub fn level_range(a: Level, b: Level) -> Vec<Level> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo.0..=hi.0).map(Level).collect()
}

/// How a finding is stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Affirmed,
    Negated,
    /// "possible", "cannot exclude": the fact stays unknown.
    Uncertain,
    /// "history of", "prior", "status post".
    Historical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Affirmed => "affirmed",
            Status::Negated => "negated",
            Status::Uncertain => "uncertain",
            Status::Historical => "historical",
        }
    }
}

/// One finding stated in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mention {
    /// Index into `Knowledge::report_findings`.
    #[serde(skip)]
    pub finding: usize,
    /// The finding id (`marrow-edema`).
    pub id: String,
    pub status: Status,
    /// Levels named with it (empty when none).
    pub levels: Vec<Level>,
    /// The knowledge file's phrase that matched, without a trailing `*` (never the report's own
    /// words).
    pub phrase: String,
}

impl Mention {
    /// Whether the finding is shown: affirmed, or historical for findings where history counts.
    pub fn shows(&self, kb: &Knowledge) -> bool {
        self.status == Status::Affirmed
            || (self.status == Status::Historical
                && kb.report_findings[self.finding].history_counts)
    }
}

#[derive(Debug, Clone)]
struct Phrase {
    text: String,
    /// Trailing `*`: any word ending.
    open: bool,
    /// The phrase's pattern in [`Lexicon::matcher`] (one per distinct text).
    pattern: usize,
}

/// The distinct phrase texts of a lexicon, in pattern order.
#[derive(Default)]
struct Patterns {
    texts: Vec<String>,
    ids: std::collections::HashMap<String, usize>,
}

impl Patterns {
    fn phrase(&mut self, p: &str) -> Phrase {
        let (text, open) = match p.strip_suffix('*') {
            Some(t) => (t, true),
            None => (p, false),
        };
        let next = self.texts.len();
        let pattern = *self.ids.entry(text.to_owned()).or_insert(next);
        if pattern == next {
            self.texts.push(text.to_owned());
        }
        Phrase {
            text: text.to_owned(),
            open,
            pattern,
        }
    }

    fn phrases(&mut self, list: &[String]) -> Vec<Phrase> {
        let mut v: Vec<Phrase> = list
            .iter()
            .filter(|p| !p.trim_end_matches('*').is_empty())
            .map(|p| self.phrase(p))
            .collect();
        // Longest first, so that "no evidence of" wins over "no".
        v.sort_by_key(|p| std::cmp::Reverse(p.text.len()));
        v
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Every occurrence of every phrase text in one text (lower case), found in one pass: `(pattern,
/// start)` sorted, so that one phrase's occurrences are a contiguous run in text order.
struct Hits {
    /// (pattern, start), sorted.
    hits: Vec<(usize, usize)>,
    /// Bit `p` set when pattern `p` occurs: most phrases do not occur in a clause, and each
    /// is looked up (issue 12: a binary search per phrase and clause, some 260 per call).
    present: Vec<u64>,
}

impl Hits {
    fn of(matcher: &AhoCorasick, text: &str) -> Hits {
        let mut hits: Vec<(usize, usize)> = matcher
            .find_overlapping_iter(text)
            .map(|m| (m.pattern().as_usize(), m.start()))
            .collect();
        hits.sort_unstable();
        let mut present = vec![0u64; matcher.patterns_len().div_ceil(64)];
        for &(p, _) in &hits {
            present[p / 64] |= 1 << (p % 64);
        }
        Hits { hits, present }
    }

    /// Start offsets of `pattern`, ascending.
    fn starts(&self, pattern: usize) -> impl Iterator<Item = usize> + '_ {
        let found = self
            .present
            .get(pattern / 64)
            .is_some_and(|w| w & (1 << (pattern % 64)) != 0);
        let from = if found {
            self.hits.partition_point(|h| h.0 < pattern)
        } else {
            self.hits.len()
        };
        self.hits[from..]
            .iter()
            .take_while(move |h| h.0 == pattern)
            .map(|h| h.1)
    }
}

/// Byte spans of every whole-word occurrence of `p` in `text` (lower case); `hits` are the
/// occurrences of the lexicon's phrase texts in `text` (every substring occurrence, overlapping
/// ones included, as a repeated `str::find` from one character past each would give).
fn find_all(text: &str, hits: &Hits, p: &Phrase, out: &mut Vec<(usize, usize)>) {
    for start in hits.starts(p.pattern) {
        let end = start + p.text.len();
        let left_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word_char(c))
            || !p.text.chars().next().is_some_and(is_word_char);
        let right_ok = p.open
            || text[end..].chars().next().is_none_or(|c| !is_word_char(c))
            || !p.text.chars().next_back().is_some_and(is_word_char);
        if left_ok && right_ok {
            // An open phrase takes the rest of the word.
            let end = if p.open {
                end + text[end..]
                    .char_indices()
                    .find(|(_, c)| !is_word_char(*c))
                    .map_or(text.len() - end, |(j, _)| j)
            } else {
                end
            };
            out.push((start, end));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    NegBefore,
    NegAfter,
    UncBefore,
    UncAfter,
    HistBefore,
    Pseudo,
    Terminator,
}

#[derive(Debug)]
struct Finding {
    id: String,
    phrases: Vec<Phrase>,
    except: Vec<Phrase>,
}

/// The report-reading rules of a knowledge file, compiled once.
#[derive(Debug)]
pub struct Lexicon {
    scope: usize,
    cues: Vec<(Cue, Vec<Phrase>)>,
    findings: Vec<Finding>,
    spine: Vec<Phrase>,
    modalities: Vec<(String, Vec<Phrase>)>,
    /// Every distinct phrase text above, searched in one pass per text (issue 12: a substring
    /// searcher per phrase per clause was a sixth of a hook call's instructions).
    matcher: AhoCorasick,
}

/// Separators allowed between the levels of one list ("T12, L1 and L2", "T11-L1").
const LIST_WORDS: &[&str] = &["and", "to", "through", "thru", "or", "levels", "level"];
const RANGE_WORDS: &[&str] = &["to", "through", "thru"];

#[derive(Debug, Clone)]
struct Word<'t> {
    start: usize,
    end: usize,
    text: &'t str,
}

fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (is_word_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(Word {
                    start: s,
                    end: i,
                    text: &text[s..i],
                });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Word {
            start: s,
            end: text.len(),
            text: &text[s..],
        });
    }
    out
}

/// Clauses of a report: split at sentence ends (". ", ";", "!", "?", line ends); a '.' inside a
/// number ("2.5 cm") does not split.
fn clauses(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let split = match c {
            ';' | '!' | '?' | '\n' | '\r' => true,
            '.' => bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace()),
            _ => false,
        };
        if split {
            if start < i {
                out.push(&text[start..i]);
            }
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A list of levels named together, with the word positions it covers.
#[derive(Debug, Clone)]
struct LevelGroup {
    first_word: usize,
    last_word: usize,
    levels: Vec<Level>,
}

fn level_groups(ws: &[Word<'_>], text: &str) -> Vec<LevelGroup> {
    let mut groups: Vec<LevelGroup> = Vec::new();
    let mut pending_range = false;
    let mut last_level_word: Option<usize> = None;
    for (wi, w) in ws.iter().enumerate() {
        if let Some(level) = Level::parse(w.text) {
            let joined = last_level_word.is_some_and(|lw| {
                // Only list words and punctuation between the previous level and this one.
                ws[lw + 1..wi].iter().all(|x| LIST_WORDS.contains(&x.text))
            });
            let dash_between = last_level_word.is_some_and(|lw| {
                let gap = &text[ws[lw].end..w.start];
                ws[lw + 1..wi].is_empty() && (gap.contains('-') || gap.contains('–'))
            });
            if joined && let Some(g) = groups.last_mut() {
                let prev = *g.levels.last().expect("a group has a level");
                if dash_between || pending_range {
                    for l in level_range(prev, level) {
                        if !g.levels.contains(&l) {
                            g.levels.push(l);
                        }
                    }
                } else if !g.levels.contains(&level) {
                    g.levels.push(level);
                }
                g.last_word = wi;
            } else {
                groups.push(LevelGroup {
                    first_word: wi,
                    last_word: wi,
                    levels: vec![level],
                });
            }
            last_level_word = Some(wi);
            pending_range = false;
        } else if RANGE_WORDS.contains(&w.text) && last_level_word == Some(wi.wrapping_sub(1)) {
            pending_range = true;
        } else if !LIST_WORDS.contains(&w.text) {
            last_level_word = None;
            pending_range = false;
        }
    }
    groups
}

impl Lexicon {
    /// Compiles the report language of `kb`; fails only when the phrases are too many for one
    /// matcher (the error says why).
    pub fn new(kb: &Knowledge) -> Result<Lexicon, aho_corasick::BuildError> {
        let l = &kb.report_language;
        let mut pats = Patterns::default();
        let cues = vec![
            (Cue::Pseudo, pats.phrases(&l.pseudo)),
            (Cue::UncBefore, pats.phrases(&l.uncertainty_before)),
            (Cue::UncAfter, pats.phrases(&l.uncertainty_after)),
            (Cue::NegBefore, pats.phrases(&l.negation_before)),
            (Cue::NegAfter, pats.phrases(&l.negation_after)),
            (Cue::HistBefore, pats.phrases(&l.history_before)),
            (Cue::Terminator, pats.phrases(&l.terminators)),
        ];
        let findings = kb
            .report_findings
            .iter()
            .map(|f: &ReportFindingDef| Finding {
                id: f.id.clone(),
                phrases: pats.phrases(&f.phrases),
                except: pats.phrases(&f.except),
            })
            .collect();
        let spine = pats.phrases(&l.spine_phrases);
        let modalities = l
            .modality_phrases
            .iter()
            .map(|m| (m.modality.clone(), pats.phrases(&m.phrases)))
            .collect();
        // Standard semantics + overlapping search: every occurrence of every text.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&pats.texts)?;
        Ok(Lexicon {
            scope: l.scope_words as usize,
            cues,
            findings,
            spine,
            modalities,
            matcher,
        })
    }

    /// Index of a finding id in the knowledge file.
    pub fn finding_index(&self, id: &str) -> Option<usize> {
        self.findings.iter().position(|f| f.id == id)
    }

    /// Whether a report title / code text names the spine.
    pub fn is_spine_text(&self, text: &str) -> bool {
        let t = text.to_lowercase();
        let hits = Hits::of(&self.matcher, &t);
        let mut spans = Vec::new();
        self.spine
            .iter()
            .for_each(|p| find_all(&t, &hits, p, &mut spans));
        !spans.is_empty()
    }

    /// Modality named by a report title / code text (`MR`, `CT`, ...), the earliest named.
    pub fn modality_of_text(&self, text: &str) -> Option<&str> {
        let t = text.to_lowercase();
        let hits = Hits::of(&self.matcher, &t);
        let mut best: Option<(usize, &str)> = None;
        for (m, ps) in &self.modalities {
            let mut spans = Vec::new();
            ps.iter().for_each(|p| find_all(&t, &hits, p, &mut spans));
            if let Some(s) = spans.iter().map(|s| s.0).min()
                && best.is_none_or(|(b, _)| s < b)
            {
                best = Some((s, m.as_str()));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Every finding stated in `text`, in text order.
    pub fn extract(&self, text: &str) -> Vec<Mention> {
        let lower = text.to_lowercase();
        let mut out = Vec::new();
        for clause in clauses(&lower) {
            self.extract_clause(clause, &mut out);
        }
        out
    }

    fn extract_clause(&self, clause: &str, out: &mut Vec<Mention>) {
        let ws = words(clause);
        if ws.is_empty() {
            return;
        }
        // Word index of the first word starting at or after `byte`.
        let word_at = |byte: usize| ws.partition_point(|w| w.start < byte);

        let hits = Hits::of(&self.matcher, clause);
        // Cues; a cue lying inside a longer cue (of any kind, pseudo included) is dropped.
        let mut cues: Vec<(Cue, usize, usize)> = Vec::new();
        for (kind, ps) in &self.cues {
            let mut spans = Vec::new();
            ps.iter()
                .for_each(|p| find_all(clause, &hits, p, &mut spans));
            cues.extend(spans.into_iter().map(|(s, e)| (*kind, s, e)));
        }
        let inside = |a: &(Cue, usize, usize), b: &(Cue, usize, usize)| {
            b.1 <= a.1 && a.2 <= b.2 && (b.2 - b.1) > (a.2 - a.1)
        };
        let cues: Vec<(Cue, usize, usize)> = cues
            .iter()
            .filter(|a| !cues.iter().any(|b| inside(a, b)))
            .filter(|a| a.0 != Cue::Pseudo)
            .copied()
            .collect();
        let terminated = |from: usize, to: usize| {
            cues.iter()
                .any(|c| c.0 == Cue::Terminator && c.1 >= from && c.2 <= to)
        };
        let scope = self.scope;
        let before = |kind: Cue, start: usize| {
            cues.iter().any(|c| {
                c.0 == kind
                    && c.2 <= start
                    && word_at(start).saturating_sub(word_at(c.2)) <= scope
                    && !terminated(c.2, start)
            })
        };
        let after = |kind: Cue, end: usize| {
            cues.iter().any(|c| {
                c.0 == kind
                    && c.1 >= end
                    && word_at(c.1).saturating_sub(word_at(end)) <= scope
                    && !terminated(end, c.1)
            })
        };
        let groups = level_groups(&ws, clause);
        let all_levels: Vec<Level> = {
            let mut v: Vec<Level> = groups.iter().flat_map(|g| g.levels.clone()).collect();
            v.sort();
            v.dedup();
            v
        };

        let mut found: Vec<(usize, usize, usize, &Phrase)> = Vec::new();
        for (fi, f) in self.findings.iter().enumerate() {
            let mut ex = Vec::new();
            f.except
                .iter()
                .for_each(|p| find_all(clause, &hits, p, &mut ex));
            let mut spans: Vec<(usize, usize, &Phrase)> = Vec::new();
            for p in &f.phrases {
                let mut s = Vec::new();
                find_all(clause, &hits, p, &mut s);
                for (a, b) in s {
                    if ex.iter().any(|(x, y)| *x <= a && b <= *y) {
                        continue;
                    }
                    // Longest phrase first: skip a match overlapping one already taken.
                    if spans.iter().any(|(x, y, _)| a < *y && *x < b) {
                        continue;
                    }
                    spans.push((a, b, p));
                }
            }
            found.extend(spans.into_iter().map(|(a, b, p)| (a, b, fi, p)));
        }
        found.sort_by_key(|f| (f.0, f.2));
        for (start, end, fi, p) in found {
            let status = if before(Cue::UncBefore, start) || after(Cue::UncAfter, end) {
                Status::Uncertain
            } else if before(Cue::NegBefore, start) || after(Cue::NegAfter, end) {
                Status::Negated
            } else if before(Cue::HistBefore, start) {
                Status::Historical
            } else {
                Status::Affirmed
            };
            let levels = if self.findings[fi].id == "fracture" {
                all_levels.clone()
            } else {
                // The nearest list of levels (a finding about one level, e.g. "acute L1 and
                // chronic T12 fractures").
                let (w0, w1) = (word_at(start), word_at(end).saturating_sub(1));
                groups
                    .iter()
                    // Not across a scope terminator ("no retropulsion, but ... at T12").
                    .filter(|g| {
                        let (a, b) = if g.last_word < w0 {
                            (ws[g.last_word].end, start)
                        } else {
                            (end, ws[g.first_word].start)
                        };
                        a > b || !terminated(a, b)
                    })
                    .min_by_key(|g| {
                        if g.last_word < w0 {
                            w0 - g.last_word
                        } else {
                            g.first_word.saturating_sub(w1)
                        }
                    })
                    .map(|g| g.levels.clone())
                    .unwrap_or_default()
            };
            out.push(Mention {
                finding: fi,
                id: self.findings[fi].id.clone(),
                status,
                levels,
                phrase: p.text.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_print() {
        assert_eq!(Level::parse("L1").unwrap().to_string(), "L1");
        assert_eq!(Level::parse("t12").unwrap().to_string(), "T12");
        assert!(Level::parse("T13").is_none());
        assert!(Level::parse("L6").is_none());
        assert!(Level::parse("C0").is_none());
        let r = level_range(Level::parse("L1").unwrap(), Level::parse("T11").unwrap());
        let names: Vec<String> = r.iter().map(|l| l.to_string()).collect();
        assert_eq!(names, ["T11", "T12", "L1"]);
    }

    #[test]
    fn clauses_split_at_sentence_ends_not_decimals() {
        assert_eq!(
            clauses("A 2.5 cm mass. No edema; acute L1\nfracture"),
            vec!["A 2.5 cm mass", " No edema", " acute L1", "fracture"]
        );
    }
}

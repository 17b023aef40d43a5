//! Finding and reading the input files: FHIR Bulk Data NDJSON (one resource a line) and JSON
//! documents (a Bundle, or one resource), plain or gzip-compressed.
//!
//! Reading yields [`Unit`]s (one resource each, with where it came from) in chunks, so that the
//! caller can parse a chunk on all cores while the next one is read. Nothing holds a whole
//! NDJSON file in memory; a JSON document (a Bundle) is read whole, as it is one value.

use flate2::read::MultiGzDecoder;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One resource per line.
    Ndjson,
    /// One JSON value: a Bundle, or a single resource.
    Json,
}

#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: Format,
    /// Size on disk (compressed size for gzip), for the progress bar.
    pub size: u64,
}

/// Where a resource came from: a line of an NDJSON file or an entry of a Bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Line(u64),
    Entry(u32),
    /// The whole file (a JSON document that is one resource, or that could not be read).
    Document,
}

/// A problem with one input item, reported with file and position and then skipped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub file: String,
    /// `line 12`, `entry[3]` or `document`.
    pub position: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.position, self.message)
    }
}

impl Loc {
    pub fn describe(self) -> String {
        match self {
            Loc::Line(n) => format!("line {n}"),
            Loc::Entry(i) => format!("entry[{i}]"),
            Loc::Document => "document".into(),
        }
    }
}

/// One resource to process.
pub struct Unit {
    pub file: u32,
    pub loc: Loc,
    pub json: String,
    /// In a Bundle: `fullUrl` -> `Patient/id` of the Patient entries, so that `urn:uuid:`
    /// references (transaction Bundles) resolve to the patient.
    pub urns: Option<Arc<HashMap<String, String>>>,
}

/// A fatal input error (the run stops): a missing file, an unreadable directory.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    pub path: String,
    pub message: String,
}

fn input_error(path: &Path, message: impl Into<String>) -> InputError {
    InputError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The format a file name announces, if it is an input file.
fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        Some(Format::Ndjson)
    } else if name.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// Expands the command line inputs into files, in a stable order. A directory contributes its
/// `.ndjson`, `.jsonl` and `.json` files (optionally `.gz`), searched recursively; other files in
/// it are ignored. A named file must exist and have one of these extensions.
pub fn discover(inputs: &[PathBuf]) -> Result<Vec<InputFile>, InputError> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input)
            .map_err(|e| input_error(input, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let before = files.len();
            walk(input, &mut files)?;
            if files.len() == before {
                return Err(input_error(
                    input,
                    "the directory holds no .ndjson, .jsonl or .json files (optionally .gz)",
                ));
            }
        } else {
            let format = format_of(input).ok_or_else(|| {
                input_error(
                    input,
                    "not an input file: expected .ndjson, .jsonl or .json (optionally .gz)",
                )
            })?;
            files.push(InputFile {
                path: input.clone(),
                format,
                size: meta.len(),
            });
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<InputFile>) -> Result<(), InputError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| input_error(dir, format!("cannot read the directory: {e}")))?;
    let mut entries: Vec<PathBuf> = Vec::new();
    for e in rd {
        let e = e.map_err(|e| input_error(dir, format!("cannot read the directory: {e}")))?;
        entries.push(e.path());
    }
    entries.sort();
    for path in entries {
        let meta = std::fs::metadata(&path)
            .map_err(|e| input_error(&path, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else if let Some(format) = format_of(&path) {
            out.push(InputFile {
                path,
                format,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

/// Opens a file, decompressing gzip (recognised by its magic bytes, whatever the name).
fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut f = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let gz = f.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(f)))
    } else {
        Box::new(f)
    })
}

/// Reads every file and hands the units to `sink` in chunks of about `chunk` units.
/// `keep(file_index)` says whether a file is read at all. Problems found while reading (a line
/// that is not UTF-8, a Bundle that is not JSON) are reported to `problem`. Returns the bytes
/// read per file through `progress`.
pub fn read_all(
    files: &[InputFile],
    keep: &dyn Fn(usize) -> bool,
    chunk: usize,
    sink: &mut dyn FnMut(Vec<Unit>),
    problem: &mut dyn FnMut(Problem),
    progress: &dyn Fn(u64),
) -> Result<(), InputError> {
    let mut buf: Vec<Unit> = Vec::with_capacity(chunk);
    for (i, file) in files.iter().enumerate() {
        if !keep(i) {
            continue;
        }
        let name = file.path.display().to_string();
        let mut reader =
            open(&file.path).map_err(|e| input_error(&file.path, format!("cannot open: {e}")))?;
        match file.format {
            Format::Ndjson => {
                let mut line_no = 0u64;
                let mut bytes: Vec<u8> = Vec::new();
                loop {
                    bytes.clear();
                    let n = reader
                        .read_until(b'\n', &mut bytes)
                        .map_err(|e| input_error(&file.path, format!("read error: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    line_no += 1;
                    progress(n as u64);
                    let text = match std::str::from_utf8(&bytes) {
                        Ok(t) => t.trim(),
                        Err(_) => {
                            problem(Problem {
                                file: name.clone(),
                                position: Loc::Line(line_no).describe(),
                                message: "not UTF-8 text".into(),
                            });
                            continue;
                        }
                    };
                    if text.is_empty() {
                        continue;
                    }
                    buf.push(Unit {
                        file: i as u32,
                        loc: Loc::Line(line_no),
                        json: text.to_owned(),
                        urns: None,
                    });
                    if buf.len() >= chunk {
                        sink(std::mem::replace(&mut buf, Vec::with_capacity(chunk)));
                    }
                }
            }
            Format::Json => {
                let mut text = String::new();
                if let Err(e) = reader.read_to_string(&mut text) {
                    problem(Problem {
                        file: name.clone(),
                        position: Loc::Document.describe(),
                        message: format!("cannot read as UTF-8 text: {e}"),
                    });
                    continue;
                }
                progress(file.size);
                match split_document(&text) {
                    Ok(units) => {
                        for (loc, json, urns) in units {
                            buf.push(Unit {
                                file: i as u32,
                                loc,
                                json,
                                urns,
                            });
                        }
                        if buf.len() >= chunk {
                            sink(std::mem::replace(&mut buf, Vec::with_capacity(chunk)));
                        }
                    }
                    Err(message) => problem(Problem {
                        file: name.clone(),
                        position: Loc::Document.describe(),
                        message,
                    }),
                }
            }
        }
    }
    if !buf.is_empty() {
        sink(buf);
    }
    Ok(())
}

type DocUnit = (Loc, String, Option<Arc<HashMap<String, String>>>);

/// A JSON document: a Bundle's entries (nested Bundles are not opened), or the one resource.
fn split_document(text: &str) -> Result<Vec<DocUnit>, String> {
    #[derive(serde::Deserialize)]
    struct Doc<'a> {
        #[serde(rename = "resourceType", default)]
        resource_type: Option<String>,
        #[serde(default, borrow)]
        entry: Vec<Entry<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        #[serde(rename = "fullUrl", default)]
        full_url: Option<String>,
        #[serde(default, borrow)]
        resource: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "resourceType", default)]
        resource_type: Option<String>,
        #[serde(default)]
        id: Option<String>,
    }
    let doc: Doc = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    if doc.resource_type.as_deref() != Some("Bundle") {
        return Ok(vec![(Loc::Document, minify(text)?, None)]);
    }
    let mut urns = HashMap::new();
    for e in &doc.entry {
        if let (Some(url), Some(r)) = (&e.full_url, e.resource)
            && let Ok(h) = serde_json::from_str::<Head>(r.get())
            && h.resource_type.as_deref() == Some("Patient")
            && let Some(id) = h.id
        {
            urns.insert(url.clone(), format!("Patient/{id}"));
        }
    }
    let urns = (!urns.is_empty()).then(|| Arc::new(urns));
    let mut out = Vec::with_capacity(doc.entry.len());
    for (i, e) in doc.entry.iter().enumerate() {
        if let Some(r) = e.resource {
            out.push((Loc::Entry(i as u32), minify(r.get())?, urns.clone()));
        }
    }
    Ok(out)
}

/// Compact JSON text (Bundles are often pretty-printed; the per-patient store keeps text).
fn minify(json: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(
            format_of(Path::new("x/Condition.ndjson")),
            Some(Format::Ndjson)
        );
        assert_eq!(
            format_of(Path::new("Condition.NDJSON.gz")),
            Some(Format::Ndjson)
        );
        assert_eq!(format_of(Path::new("b.json")), Some(Format::Json));
        assert_eq!(format_of(Path::new("notes.csv")), None);
    }

    #[test]
    fn bundles_resolve_urn_patients() {
        let b = r#"{"resourceType":"Bundle","type":"transaction","entry":[
          {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"p1"}},
          {"fullUrl":"urn:uuid:2","resource":{"resourceType":"Condition","subject":{"reference":"urn:uuid:1"}}}]}"#;
        let units = split_document(b).unwrap();
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].0, Loc::Entry(1));
        assert_eq!(
            units[1].2.as_ref().unwrap().get("urn:uuid:1").unwrap(),
            "Patient/p1"
        );
        assert!(!units[1].1.contains('\n'));
    }
}

//! Durable local spool: append-only JSON-lines segment files in `audit_spool_dir`, used when the
//! audit store cannot take records. A batch is written and `fsync`ed before the hook response is
//! released. Segments are replayed into the store in order (idempotently: the store ignores
//! records it already has) and deleted once every line is in the store.
//!
//! Files: `spool-<seq>.jsonl` (segments), `dead-letter.jsonl` (records the store rejected
//! individually while it was otherwise working; kept for a person to look at), `spool.lock` (an
//! exclusive lock: one service instance per spool directory).
//!
//! A torn last line (the process died mid-write) is ignored on replay: its batch was never
//! acknowledged, so no response was sent for it.

use super::records::SpoolRecord;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const SEGMENT_PREFIX: &str = "spool-";
const SEGMENT_SUFFIX: &str = ".jsonl";
/// A segment is closed and a new one started after this many bytes.
const SEGMENT_MAX_BYTES: u64 = 16 * 1024 * 1024;

pub struct Spool {
    dir: PathBuf,
    _lock: File,
    /// The segment being appended to.
    current: Option<Segment>,
    next_seq: u64,
    /// Records in segments not yet replayed.
    backlog: u64,
    /// Replay position in the oldest segment.
    read: Option<ReadPos>,
    /// Lines that could not be parsed (skipped).
    pub corrupt_lines: u64,
}

struct Segment {
    seq: u64,
    file: File,
    bytes: u64,
}

#[derive(Debug, Clone)]
struct ReadPos {
    seq: u64,
    offset: u64,
}

/// Records read from the spool, to be confirmed with [`Spool::confirm`] once stored.
#[derive(Debug)]
pub struct Chunk {
    pub records: Vec<SpoolRecord>,
    seq: u64,
    end_offset: u64,
    /// Lines consumed (records plus skipped corrupt lines).
    lines: u64,
    at_eof: bool,
}

impl Spool {
    /// Opens (creating) the spool directory, takes its lock and counts the backlog.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("spool.lock"))?;
        lock.try_lock().map_err(|_| {
            std::io::Error::other(format!(
                "audit spool {} is in use by another process",
                dir.display()
            ))
        })?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            _lock: lock,
            current: None,
            next_seq: 1,
            backlog: 0,
            read: None,
            corrupt_lines: 0,
        };
        for seq in spool.segments()? {
            spool.next_seq = spool.next_seq.max(seq + 1);
            let f = BufReader::new(File::open(spool.segment_path(seq))?);
            let mut n = 0;
            for line in f.split(b'\n') {
                let line = line?;
                if !line.iter().all(u8::is_ascii_whitespace) {
                    n += 1;
                }
            }
            spool.backlog += n;
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records waiting to be replayed (upper bound: a torn last line counts).
    pub fn backlog(&self) -> u64 {
        self.backlog
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir
            .join(format!("{SEGMENT_PREFIX}{seq:016}{SEGMENT_SUFFIX}"))
    }

    /// Sequence numbers of the segment files, oldest first.
    fn segments(&self) -> std::io::Result<Vec<u64>> {
        let mut seqs = vec![];
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix(SEGMENT_PREFIX)
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                && let Ok(seq) = n.parse::<u64>()
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Appends records and `fsync`s them; when this returns `Ok` they survive a crash.
    pub fn append(&mut self, records: &[&SpoolRecord]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(records.len() * 1024);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.bytes >= SEGMENT_MAX_BYTES)
        {
            self.current = None;
        }
        if self.current.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let path = self.segment_path(seq);
            let mut opts = OpenOptions::new();
            opts.create_new(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let file = opts.open(&path)?;
            sync_dir(&self.dir)?;
            self.current = Some(Segment {
                seq,
                file,
                bytes: 0,
            });
        }
        let seg = self.current.as_mut().expect("segment just opened");
        if let Err(e) = seg.file.write_all(&buf).and_then(|_| seg.file.sync_data()) {
            // The segment may now end in a partial line: start a fresh one next time.
            self.current = None;
            return Err(e);
        }
        seg.bytes += buf.len() as u64;
        self.backlog += records.len() as u64;
        Ok(())
    }

    /// Reads up to `max` records from the oldest segment (closing the segment being appended to
    /// if it is the oldest). `None` when the spool is empty.
    pub fn read_chunk(&mut self, max: usize) -> std::io::Result<Option<Chunk>> {
        loop {
            let Some(&seq) = self.segments()?.first() else {
                self.backlog = 0;
                return Ok(None);
            };
            if self.current.as_ref().is_some_and(|c| c.seq == seq) {
                self.current = None;
            }
            let offset = match &self.read {
                Some(r) if r.seq == seq => r.offset,
                _ => 0,
            };
            let mut file = File::open(self.segment_path(seq))?;
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(offset))?;
            let mut reader = BufReader::new(file);
            let mut records = vec![];
            let mut pos = offset;
            let mut lines = 0u64;
            let mut line = Vec::new();
            while records.len() < max {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    // Torn write at the end of a closed segment: never acknowledged.
                    pos += n as u64;
                    lines += 1;
                    break;
                }
                pos += n as u64;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                lines += 1;
                match serde_json::from_slice::<SpoolRecord>(&line) {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        self.corrupt_lines += 1;
                        tracing::error!(segment = seq, offset = pos, error = %e, "audit spool: unreadable line skipped");
                    }
                }
            }
            let at_eof = pos >= len;
            if records.is_empty() && at_eof {
                // Nothing (left) in this segment.
                self.remove_segment(seq, lines)?;
                continue;
            }
            return Ok(Some(Chunk {
                records,
                seq,
                end_offset: pos,
                lines,
                at_eof,
            }));
        }
    }

    /// Marks a chunk as stored: advances the read position, deleting the segment at its end.
    pub fn confirm(&mut self, chunk: &Chunk) -> std::io::Result<()> {
        if chunk.at_eof {
            self.remove_segment(chunk.seq, chunk.lines)?;
        } else {
            self.read = Some(ReadPos {
                seq: chunk.seq,
                offset: chunk.end_offset,
            });
            self.backlog = self.backlog.saturating_sub(chunk.lines);
        }
        Ok(())
    }

    fn remove_segment(&mut self, seq: u64, lines: u64) -> std::io::Result<()> {
        std::fs::remove_file(self.segment_path(seq))?;
        sync_dir(&self.dir)?;
        if self.read.as_ref().is_some_and(|r| r.seq == seq) {
            self.read = None;
        }
        self.backlog = self.backlog.saturating_sub(lines);
        if self.segments()?.is_empty() {
            self.backlog = 0;
        }
        Ok(())
    }

    /// Keeps a record the store refused for a person to look at.
    pub fn dead_letter(&mut self, record: &SpoolRecord, error: &str) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dead-letter.jsonl"))?;
        let line = serde_json::json!({ "error": error, "record": record });
        writeln!(f, "{line}")?;
        f.sync_data()
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::records::StoredFeedback;

    fn fb(i: u32) -> SpoolRecord {
        SpoolRecord::Feedback(StoredFeedback {
            feedback_id: format!("id{i}"),
            received_at_ms: 1,
            service_id: "s".into(),
            card_uuid: "c".into(),
            outcome: "accepted".into(),
            outcome_at_ms: 1,
            accepted_suggestions: vec!["x".into()],
            override_system: None,
            override_code: None,
            override_display: None,
            user_comment: None,
        })
    }

    #[test]
    fn append_read_confirm_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        assert!(Spool::open(dir.path()).is_err(), "second opener is refused");
        let recs: Vec<SpoolRecord> = (0..5).map(fb).collect();
        s.append(&recs.iter().take(3).collect::<Vec<_>>()).unwrap();
        s.append(&recs.iter().skip(3).collect::<Vec<_>>()).unwrap();
        assert_eq!(s.backlog(), 5);
        let c = s.read_chunk(2).unwrap().unwrap();
        assert_eq!(c.records, recs[..2]);
        s.confirm(&c).unwrap();
        assert_eq!(s.backlog(), 3);
        // New appends go to a new segment once the old one is being read.
        s.append(&[&fb(9)]).unwrap();
        drop(s);

        // Torn last line in the newest segment.
        let mut segs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
            .collect();
        segs.sort();
        let mut f = OpenOptions::new()
            .append(true)
            .open(segs.last().unwrap())
            .unwrap();
        f.write_all(br#"{"kind":"feedback","feedb"#).unwrap();
        drop(f);

        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.backlog(), 7, "5 + 1 + torn line, counted from the files");
        let mut got = vec![];
        while let Some(c) = s.read_chunk(100).unwrap() {
            got.extend(c.records.clone());
            s.confirm(&c).unwrap();
        }
        // The first chunk was confirmed before the restart, but the read position is not
        // persisted: replay is at-least-once and the store de-duplicates.
        assert_eq!(got.len(), 6);
        assert_eq!(got.last().unwrap(), &fb(9));
        assert_eq!(s.backlog(), 0);
        assert_eq!(s.segments().unwrap().len(), 0);
    }
}

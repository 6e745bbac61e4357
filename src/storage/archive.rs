//! The archived part of the event log: gzip-compressed JSON-lines segment
//! files under `<data>/archive/events/`, one per contiguous range of
//! sequence numbers, each line exactly as `agora events export` writes it.
//!
//! A segment is named `events-<first>-<last>.jsonl.gz` (20-digit, so names
//! sort by sequence), written under a temporary name, fsynced, renamed and
//! the folder fsynced: a segment either exists whole or not at all. The
//! highest `last` is the *archived-through* mark: a reader takes events up
//! to it from the archive and the rest from sled, so a crash between a
//! segment's rename and the trim of its events from sled duplicates nothing
//! (the leftovers in sled are ignored, then trimmed by the next pass).
//!
//! gzip because every batch engine and shell tool reads it as it is
//! (Spark, DuckDB, `zcat | jq`); the JSON of item events compresses ~6x.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// Most events in one segment: bounds how much a reader decompresses to
/// reach an event in the middle of one.
pub const MAX_SEGMENT_EVENTS: u64 = 100_000;

/// File name prefix and suffix of a segment.
const PREFIX: &str = "events-";
const SUFFIX: &str = ".jsonl.gz";
/// Suffix of a segment being written (removed at the next pass if a crash
/// left it behind).
const TEMPORARY: &str = ".tmp";

/// The archive folder of one node. Cheap to clone; does no I/O until asked.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

/// One segment file: the events `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its first sequence number.
    pub first: u64,
    /// Its last sequence number.
    pub last: u64,
    /// Where it is.
    pub path: PathBuf,
}

impl Archive {
    /// The archive of the node whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> Archive {
        Archive {
            dir: data_dir.join("archive").join("events"),
        }
    }

    /// The folder holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every segment, oldest first (none if the folder does not exist).
    pub fn segments(&self) -> io::Result<Vec<Segment>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut segments = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if let Some((first, last)) = name.to_str().and_then(parse_name) {
                segments.push(Segment {
                    first,
                    last,
                    path: entry.path(),
                });
            }
        }
        segments.sort_by_key(|s| (s.first, s.last));
        Ok(segments)
    }

    /// The last archived sequence number (0 when nothing is archived).
    pub fn archived_through(&self) -> io::Result<u64> {
        Ok(self.segments()?.iter().map(|s| s.last).max().unwrap_or(0))
    }

    /// Removes segments a crash left half-written.
    pub fn remove_temporaries(&self) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(TEMPORARY) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Writes the segment `first..=last`: `fill` writes its lines (JSON
    /// objects, each followed by `\n`) into the compressor. The segment
    /// exists, durable, once this returns `Ok`; on error nothing is left
    /// but a temporary file the next pass removes.
    pub fn write_segment(
        &self,
        first: u64,
        last: u64,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Segment> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join(segment_name(first, last));
        let temporary = self
            .dir
            .join(format!("{}{TEMPORARY}", segment_name(first, last)));
        let file = create_private_file(&temporary)?;
        let mut gzip = GzEncoder::new(BufWriter::new(file), Compression::default());
        fill(&mut gzip)?;
        let file = gzip
            .finish()?
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &path)?;
        // The rename itself is durable only once the folder is.
        File::open(&self.dir)?.sync_all()?;
        Ok(Segment { first, last, path })
    }

    /// The archived lines after `after`, in order, across segments.
    pub fn lines_after(&self, after: u64) -> io::Result<ArchivedLines> {
        let segments = self
            .segments()?
            .into_iter()
            .filter(|s| s.last > after)
            .collect();
        Ok(ArchivedLines {
            segments,
            current: None,
            position: after,
        })
    }
}

/// A cursor over archived lines; keeps its place in an open segment, so a
/// reader taking the archive batch by batch decompresses each segment once.
pub struct ArchivedLines {
    segments: VecDeque<Segment>,
    current: Option<BufReader<MultiGzDecoder<File>>>,
    position: u64,
}

impl ArchivedLines {
    /// The sequence number of the last line handed out (or where it began).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next line after [`Self::position`]: its sequence number and
    /// text (without the newline); `None` past the last segment. A line
    /// whose sequence number cannot be read is an error: the file is not
    /// one this node wrote.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, String)>> {
        loop {
            let Some(reader) = self.current.as_mut() else {
                let Some(segment) = self.segments.pop_front() else {
                    return Ok(None);
                };
                let file = File::open(&segment.path)?;
                self.current = Some(BufReader::new(MultiGzDecoder::new(file)));
                continue;
            };
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                self.current = None;
                continue;
            }
            let line = line.trim_end_matches(['\n', '\r']).to_owned();
            if line.is_empty() {
                continue;
            }
            let seq = line_seq(&line).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "an archived line without a sequence number",
                )
            })?;
            // Lines at or before the position: the start of the first
            // segment, or an overlap between segments.
            if seq <= self.position {
                continue;
            }
            self.position = seq;
            return Ok(Some((seq, line)));
        }
    }
}

/// The `seq` of an export line.
pub fn line_seq(line: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_str::<Seq>(line).ok().map(|s| s.seq)
}

fn segment_name(first: u64, last: u64) -> String {
    format!("{PREFIX}{first:020}-{last:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let range = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first >= 1 && first <= last).then_some((first, last))
}

/// A new file only the node's user may read (on Unix: `0600`).
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates `dir` (and its parents); on Unix only the node's user may enter
/// it, like the rest of the data directory.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for folder in [dir, dir.parent().unwrap_or(dir)] {
            fs::set_permissions(folder, fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(archive: &Archive, first: u64, last: u64) {
        archive
            .write_segment(first, last, |out| {
                for seq in first..=last {
                    writeln!(out, "{{\"seq\":{seq},\"type\":\"x\"}}")?;
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn segments_sort_by_sequence_and_read_as_one_stream() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::new(dir.path());
        assert_eq!(archive.archived_through().unwrap(), 0);
        write(&archive, 11, 25);
        write(&archive, 1, 10);
        assert_eq!(archive.archived_through().unwrap(), 25);
        let firsts: Vec<u64> = archive
            .segments()
            .unwrap()
            .iter()
            .map(|s| s.first)
            .collect();
        assert_eq!(firsts, [1, 11]);
        let mut lines = archive.lines_after(7).unwrap();
        let mut seqs = Vec::new();
        while let Some((seq, line)) = lines.next_line().unwrap() {
            assert_eq!(line_seq(&line), Some(seq));
            seqs.push(seq);
        }
        assert_eq!(seqs, (8..=25).collect::<Vec<_>>());
    }

    #[test]
    fn a_half_written_segment_is_not_a_segment_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::new(dir.path());
        write(&archive, 1, 3);
        let half = archive
            .dir()
            .join(format!("{}{TEMPORARY}", segment_name(4, 9)));
        fs::write(&half, b"partial").unwrap();
        assert_eq!(archive.archived_through().unwrap(), 3);
        archive.remove_temporaries().unwrap();
        assert!(!half.exists());
        assert_eq!(archive.segments().unwrap().len(), 1);
    }
}

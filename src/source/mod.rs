//! Sources: where events come from. Files here (JSONL, optionally gzip; CSV and Parquet via
//! polars); the Kafka source lives beside them in the streaming service.
//!
//! A source yields [`Item`]s: a decoded event, a [`Reject`] carrying the reason and the
//! original record with anything PAN-shaped masked, or a blank line. Nothing is dropped
//! silently: every record read is one item (or counted in a reject's `records`).
//!
//! - [`stream`]: opening a file, standard input (`-`) or a pipe, gzip detected by magic bytes;
//! - [`jsonl`]: JSON Lines; [`csv`]: CSV, a row per line; [`table`]: Parquet (polars);
//! - [`merge`]: several files merged by event time.

mod csv;
mod jsonl;
mod merge;
mod stream;
mod table;

pub use self::csv::CsvSource;
pub use jsonl::JsonlSource;
pub use merge::MergedSource;
pub use stream::{open_stream, same_file, STDIN};
pub use table::TableSource;

use crate::decode::{DecodeError, Decoder};
use crate::event::Event;
use crate::pan;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// Most bytes of a rejected record kept in its `raw` (masked first, then cut).
pub const RAW_KEPT: usize = 4096;

/// A record that could not be decoded, as written to `rejects.jsonl` / the DLQ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// Where it came from: `file:line` or `topic/partition@offset`.
    pub source: String,
    pub reason_code: &'static str,
    pub reason: String,
    /// The record as text, PAN-shaped digit runs masked, invalid UTF-8 replaced, cut to
    /// [`RAW_KEPT`] bytes (after masking, so no PAN is cut in half and left partly in clear).
    pub raw: String,
    /// Records this reject stands for: 1, or every row of a file whose header is unusable.
    #[serde(skip_serializing_if = "is_one")]
    pub records: u64,
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl Reject {
    pub fn new(source: String, err: &DecodeError, raw: &[u8]) -> Self {
        Self {
            source,
            reason_code: err.code(),
            reason: pan::redact(&err.to_string()).into_owned(),
            raw: pan::redact_truncated(raw, RAW_KEPT),
            records: 1,
        }
    }
}

/// What a source yields. Events dominate, so they are not boxed (one allocation per event
/// would cost more than the size difference).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Event(Event),
    /// A control record (README "Control records"), mixed into an event file or given with
    /// `replay --control`.
    Control(crate::control::Control),
    Reject(Reject),
    /// A blank line: read, nothing to process (counted so that every record read is
    /// accounted for in the report).
    Blank,
}

/// The file formats replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    /// By extension: `.parquet`, `.csv` (`.csv.gz` too), anything else JSONL (`.gz` allowed,
    /// and standard input `-`, pipes and devices, gzip or not).
    pub fn of(path: &Path) -> Format {
        let name = path.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".parquet") {
            Format::Parquet
        } else if name.ends_with(".csv") {
            Format::Csv
        } else {
            Format::Jsonl
        }
    }
}

/// Open one file as a source of items.
pub fn open(path: &Path, decoder: Decoder) -> Result<Box<dyn Iterator<Item = Item> + Send>> {
    let opening = || format!("opening {}", path.display());
    Ok(match Format::of(path) {
        Format::Jsonl => Box::new(JsonlSource::open(path, decoder).with_context(opening)?),
        Format::Csv => Box::new(CsvSource::open(path, decoder).with_context(opening)?),
        Format::Parquet => Box::new(
            TableSource::open(path, decoder)
                .with_context(|| format!("reading {}", path.display()))?,
        ),
    })
}

/// Open `files` as one source, merged by event time; one file goes straight through, in its
/// own order, with no merge.
pub fn open_all(
    files: &[impl AsRef<Path>],
    decoder: &Decoder,
) -> Result<Box<dyn Iterator<Item = Item> + Send>> {
    let mut sources = files
        .iter()
        .map(|f| open(f.as_ref(), decoder.clone()))
        .collect::<Result<Vec<_>>>()?;
    Ok(match sources.len() {
        1 => sources.pop().expect("one source"),
        _ => Box::new(MergedSource::new(sources)),
    })
}

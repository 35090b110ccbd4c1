//! Sources: where events come from. Files here (JSONL, optionally gzip; CSV and Parquet via
//! polars); the Kafka source lives beside them in the streaming service.
//!
//! A source yields [`Item`]s: a decoded event, or a [`Reject`] carrying the reason and the
//! original record with anything PAN-shaped masked. Nothing is dropped silently.

mod jsonl;
mod merge;
mod table;

pub use jsonl::JsonlSource;
pub use merge::MergedSource;
pub use table::TableSource;

use crate::decode::{pan, DecodeError, Decoder};
use crate::event::Event;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// A record that could not be decoded, as written to `rejects.jsonl` / the DLQ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// Where it came from: `file:line` or `topic/partition@offset`.
    pub source: String,
    pub reason_code: &'static str,
    pub reason: String,
    /// The record as text, PAN-shaped digit runs masked, invalid UTF-8 replaced.
    pub raw: String,
}

impl Reject {
    pub fn new(source: String, err: &DecodeError, raw: &[u8]) -> Self {
        Self {
            source,
            reason_code: err.code(),
            reason: err.to_string(),
            raw: pan::redact(&String::from_utf8_lossy(raw)),
        }
    }
}

/// What a source yields. Events dominate, so they are not boxed (one allocation per event
/// would cost more than the size difference).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Event(Event),
    Reject(Reject),
}

/// The file formats replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    /// By extension: `.parquet`, `.csv` (`.csv.gz` too), anything else JSONL (`.gz` allowed).
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
    Ok(match Format::of(path) {
        Format::Jsonl => Box::new(
            JsonlSource::open(path, decoder)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        f => Box::new(
            TableSource::open(path, f == Format::Parquet, decoder)
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

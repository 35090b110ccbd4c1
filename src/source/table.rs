//! CSV and Parquet files through polars: columns carry the contract's field names. Every
//! column is read as text and validated by the same decoder as JSON, so a file format never
//! changes what counts as valid. Rows are converted a slice at a time to bound memory.

use super::{Item, Reject};
use crate::decode::raw::{RawEvent, FIELDS};
use crate::decode::Decoder;
use anyhow::Result;
use polars::prelude::*;
use std::collections::VecDeque;
use std::path::Path;

const SLICE: usize = 65_536;

/// Rows of a CSV or Parquet file as items.
pub struct TableSource {
    df: DataFrame,
    name: String,
    offset: usize,
    ready: VecDeque<Item>,
    decoder: Decoder,
}

impl TableSource {
    pub fn open(path: &Path, parquet: bool, decoder: Decoder) -> Result<Self> {
        let df = if parquet {
            let f = std::fs::File::open(path)?;
            ParquetReader::new(f).finish()?
        } else {
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))?
                .finish()
                .map_err(|e| anyhow::anyhow!("parsing CSV: {e}"))?
        };
        Ok(Self {
            df,
            name: path.display().to_string(),
            offset: 0,
            ready: VecDeque::new(),
            decoder,
        })
    }

    fn fill(&mut self) -> Result<()> {
        let len = SLICE.min(self.df.height() - self.offset);
        let part = self.df.slice(self.offset as i64, len);
        let mut cols: Vec<(&'static str, Column)> = Vec::new();
        for name in FIELDS {
            if let Ok(c) = part.column(name) {
                cols.push((name, c.cast(&DataType::String)?));
            }
        }
        let mut iters: Vec<(&'static str, _)> = Vec::new();
        for (name, c) in &cols {
            iters.push((*name, c.str()?.iter()));
        }
        for row in 0..len {
            let mut pairs: Vec<(&str, Option<&str>)> = Vec::with_capacity(iters.len());
            for (name, it) in iters.iter_mut() {
                pairs.push((name, it.next().flatten()));
            }
            let raw = RawEvent::from_pairs(pairs.iter().copied());
            let item = match self.decoder.validate(raw) {
                Ok(ev) => Item::Event(ev),
                Err(err) => {
                    let obj: serde_json::Map<String, serde_json::Value> = pairs
                        .iter()
                        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.into())))
                        .collect();
                    let text = serde_json::Value::Object(obj).to_string();
                    Item::Reject(Reject::new(
                        format!("{}:row {}", self.name, self.offset + row + 1),
                        &err,
                        text.as_bytes(),
                    ))
                }
            };
            self.ready.push_back(item);
        }
        self.offset += len;
        Ok(())
    }
}

impl Iterator for TableSource {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if self.ready.is_empty() && self.offset < self.df.height() {
            if let Err(e) = self.fill() {
                let err =
                    crate::decode::DecodeError::MalformedJson(format!("unreadable rows: {e}"));
                self.offset = self.df.height();
                return Some(Item::Reject(Reject::new(self.name.clone(), &err, b"")));
            }
        }
        self.ready.pop_front()
    }
}

//! Parquet files through polars: columns carry the contract's field names (any case). Every
//! cell is turned into text and validated by the same decoder as JSON, so a file format never
//! changes what counts as valid, with two exceptions for Parquet's own types: a timestamp
//! column (naive or timezone-aware, any unit) or a date column for `ts` is event time, and a
//! binary column is text when it is UTF-8. A cell that cannot be read makes its row a reject
//! (with the row number and the column), never the whole file. Rows are converted a slice at
//! a time to bound memory.

use super::{Item, Reject};
use crate::decode::raw::{RawEvent, FIELDS};
use crate::decode::{DecodeError, Decoder};
use anyhow::Result;
use polars::prelude::*;
use std::collections::VecDeque;
use std::path::Path;

const SLICE: usize = 65_536;

/// Rows of a Parquet file as items.
pub struct TableSource {
    df: DataFrame,
    name: String,
    offset: usize,
    ready: VecDeque<Item>,
    decoder: Decoder,
}

/// One column of a slice, as text: borrowed from polars when it is text already.
enum Cells {
    Text(StringChunked),
    Owned(Vec<Result<Option<String>, String>>),
}

impl Cells {
    fn get(&self, row: usize) -> Result<Option<&str>, &str> {
        match self {
            Cells::Text(c) => Ok(c.get(row)),
            Cells::Owned(v) => match &v[row] {
                Ok(s) => Ok(s.as_deref()),
                Err(e) => Err(e),
            },
        }
    }
}

impl TableSource {
    pub fn open(path: &Path, decoder: Decoder) -> Result<Self> {
        let f = std::fs::File::open(path)?;
        let df = ParquetReader::new(f).finish()?;
        Ok(Self::from_frame(df, path.display().to_string(), decoder))
    }

    pub fn from_frame(df: DataFrame, name: String, decoder: Decoder) -> Self {
        Self {
            df,
            name,
            offset: 0,
            ready: VecDeque::new(),
            decoder,
        }
    }

    fn fill(&mut self) {
        let len = SLICE.min(self.df.height() - self.offset);
        let part = self.df.slice(self.offset as i64, len);
        let mut cols: Vec<(&'static str, Cells)> = Vec::new();
        for c in part.columns() {
            let name = c.name().trim().to_ascii_lowercase();
            if let Some(field) = FIELDS.iter().copied().find(|f| *f == name) {
                cols.push((field, cells(field, c)));
            }
        }
        for row in 0..len {
            let item = self.row(&cols, row);
            self.ready.push_back(item);
        }
        self.offset += len;
    }

    fn row(&self, cols: &[(&'static str, Cells)], row: usize) -> Item {
        let source = || format!("{}:row {}", self.name, self.offset + row + 1);
        let mut pairs: Vec<(&str, Option<&str>)> = Vec::with_capacity(cols.len());
        let mut bad = None;
        for (name, c) in cols {
            match c.get(row) {
                Ok(v) => pairs.push((name, v)),
                Err(why) => bad = bad.or(Some(format!("column `{name}`: {why}"))),
            }
        }
        let err = match bad {
            Some(why) => DecodeError::MalformedRow(why),
            None => match self
                .decoder
                .validate(RawEvent::from_pairs(pairs.iter().copied()))
            {
                Ok(ev) => return Item::Event(ev),
                Err(e) => e,
            },
        };
        let obj: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.into())))
            .collect();
        let text = serde_json::Value::Object(obj).to_string();
        Item::Reject(Reject::new(source(), &err, text.as_bytes()))
    }
}

/// Epoch milliseconds of a physical timestamp value in `unit`.
fn to_ms(v: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Nanoseconds => v.div_euclid(1_000_000),
        TimeUnit::Microseconds => v.div_euclid(1_000),
        TimeUnit::Milliseconds => v,
    }
}

/// The cells of column `c` (contract field `field`) as text.
fn cells(field: &str, c: &Column) -> Cells {
    let owned = |v: Vec<Result<Option<String>, String>>| Cells::Owned(v);
    match c.dtype() {
        DataType::String => match c.str() {
            Ok(s) => Cells::Text(s.clone()),
            Err(e) => unreadable(c, &e.to_string()),
        },
        DataType::Datetime(unit, _) if field == "ts" => {
            let unit = *unit;
            match c.cast(&DataType::Int64) {
                Ok(p) => owned(p.i64().map_or_else(
                    |e| vec![Err(e.to_string()); c.len()],
                    |a| {
                        a.iter()
                            .map(|v| Ok(v.map(|v| to_ms(v, unit).to_string())))
                            .collect()
                    },
                )),
                Err(e) => unreadable(c, &e.to_string()),
            }
        }
        DataType::Date if field == "ts" => match c.cast(&DataType::Int32) {
            Ok(p) => owned(p.i32().map_or_else(
                |e| vec![Err(e.to_string()); c.len()],
                |a| {
                    a.iter()
                        .map(|v| Ok(v.map(|d| (i64::from(d) * 86_400_000).to_string())))
                        .collect()
                },
            )),
            Err(e) => unreadable(c, &e.to_string()),
        },
        DataType::Binary => match c.binary() {
            Ok(b) => owned(
                b.iter()
                    .map(|v| match v.map(std::str::from_utf8) {
                        None => Ok(None),
                        Some(Ok(s)) => Ok(Some(s.to_string())),
                        Some(Err(e)) => Err(format!("not UTF-8 (at byte {})", e.valid_up_to())),
                    })
                    .collect(),
            ),
            Err(e) => unreadable(c, &e.to_string()),
        },
        _ => match c.cast(&DataType::String) {
            Ok(s) => match s.str() {
                Ok(s) => Cells::Text(s.clone()),
                Err(e) => unreadable(c, &e.to_string()),
            },
            Err(e) => unreadable(c, &e.to_string()),
        },
    }
}

/// Every row's cell of a column that cannot be read as text: each row is refused with why.
fn unreadable(c: &Column, why: &str) -> Cells {
    let msg = format!("type {} cannot be read as text ({why})", c.dtype());
    Cells::Owned(vec![Err(msg); c.len()])
}

impl Iterator for TableSource {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if self.ready.is_empty() && self.offset < self.df.height() {
            self.fill();
        }
        self.ready.pop_front()
    }
}

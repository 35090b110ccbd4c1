//! Parquet output of the simulator (polars' batched writer, one row group per 256k events).
//! Columns are the contract's field names; `amount` is Int64, everything else text.

use crate::decode::raw::FIELDS;
use crate::sim::{self, SimConfig};
use anyhow::Result;
use polars::prelude::*;

const BATCH: usize = 262_144;

/// Column buffers for one batch.
struct Batch {
    text: Vec<Vec<Option<String>>>,
    amount: Vec<Option<i64>>,
}

impl Batch {
    fn new() -> Self {
        Self {
            text: FIELDS.iter().map(|_| Vec::with_capacity(BATCH)).collect(),
            amount: Vec::with_capacity(BATCH),
        }
    }

    fn push(&mut self, obj: &serde_json::Map<String, serde_json::Value>) {
        for (i, name) in FIELDS.iter().enumerate() {
            if *name == "amount" {
                self.amount.push(obj.get("amount").and_then(|v| v.as_i64()));
            } else {
                let v = obj.get(*name).and_then(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                });
                self.text[i].push(v);
            }
        }
    }

    fn frame(&mut self) -> Result<DataFrame> {
        let height = self.amount.len();
        let mut cols = Vec::with_capacity(FIELDS.len());
        for (i, name) in FIELDS.iter().enumerate() {
            if *name == "amount" {
                cols.push(Column::new(
                    (*name).into(),
                    std::mem::take(&mut self.amount),
                ));
            } else {
                cols.push(Column::new(
                    (*name).into(),
                    std::mem::take(&mut self.text[i]),
                ));
            }
        }
        Ok(DataFrame::new(height, cols)?)
    }
}

fn schema() -> Schema {
    FIELDS
        .iter()
        .map(|n| {
            let dt = if *n == "amount" {
                DataType::Int64
            } else {
                DataType::String
            };
            Field::new((*n).into(), dt)
        })
        .collect()
}

/// Generate `cfg` straight into a Parquet file. Returns the event count.
pub fn write_sim(cfg: &SimConfig, file: std::fs::File) -> Result<u64> {
    let mut writer = ParquetWriter::new(file).batched(&schema())?;
    let mut batch = Batch::new();
    let mut n = 0u64;
    let mut err: Option<anyhow::Error> = None;
    sim::generate(cfg, &mut |ev| {
        if err.is_some() {
            return;
        }
        if let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(&ev) {
            batch.push(&obj);
            n += 1;
        }
        if batch.amount.len() >= BATCH {
            if let Err(e) = batch.frame().and_then(|df| Ok(writer.write_batch(&df)?)) {
                err = Some(e);
            }
            batch = Batch::new();
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if !batch.amount.is_empty() {
        writer.write_batch(&batch.frame()?)?;
    }
    writer.finish()?;
    Ok(n)
}

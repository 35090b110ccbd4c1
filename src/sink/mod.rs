//! Sinks: where decisions go. Files here (`alerts.jsonl`, `commands.jsonl`, `rejects.jsonl`,
//! `report.json`, `report.html`); the Kafka sink lives beside them in the streaming service.

pub mod html;
pub mod parquet;
pub mod report;

use crate::decision::Decisions;
use crate::source::Reject;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The three JSONL outputs of a replay.
pub struct FileSink {
    alerts: BufWriter<File>,
    commands: BufWriter<File>,
    rejects: BufWriter<File>,
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let p = dir.join(name);
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(&p).with_context(|| format!("creating {}", p.display()))?,
    ))
}

impl FileSink {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            alerts: create(dir, "alerts.jsonl")?,
            commands: create(dir, "commands.jsonl")?,
            rejects: create(dir, "rejects.jsonl")?,
        })
    }

    pub fn write(&mut self, d: &Decisions) -> Result<()> {
        for a in &d.alerts {
            serde_json::to_writer(&mut self.alerts, a)?;
            self.alerts.write_all(b"\n")?;
        }
        for c in &d.commands {
            serde_json::to_writer(&mut self.commands, c)?;
            self.commands.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn reject(&mut self, r: &Reject) -> Result<()> {
        serde_json::to_writer(&mut self.rejects, r)?;
        self.rejects.write_all(b"\n")?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.alerts.flush()?;
        self.commands.flush()?;
        self.rejects.flush()?;
        Ok(())
    }
}

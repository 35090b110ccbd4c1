//! Sinks: where decisions go. Files here (`alerts.jsonl`, `commands.jsonl`, `evidence.jsonl`,
//! `control.jsonl`, `rejects.jsonl`, `locks.json`, `report.json`, `report.html`); the Kafka
//! sink lives beside them in the streaming service.

pub mod html;
pub mod parquet;
pub mod report;

use crate::decision::Decisions;
use crate::source::Reject;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The JSONL outputs of a replay.
pub struct FileSink {
    alerts: BufWriter<File>,
    commands: BufWriter<File>,
    evidence: BufWriter<File>,
    /// The control records replayed, in the contract's shape (for the risk console).
    control: BufWriter<File>,
    rejects: BufWriter<File>,
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let p = dir.join(name);
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(&p).with_context(|| format!("creating {}", p.display()))?,
    ))
}

/// A control record the engine refused (an acknowledgement of an unknown command, an
/// extension of a lock not in force), as a reject line.
pub fn control_reject(r: &crate::decision::ControlReject) -> Reject {
    Reject {
        source: format!("control {}", r.control_id),
        reason_code: r.reason_code,
        reason: crate::pan::redact(&r.reason).into_owned(),
        raw: String::new(),
        records: 1,
    }
}

fn line<T: serde::Serialize>(w: &mut BufWriter<File>, v: &T) -> Result<()> {
    w.write_all(&crate::pan::masked_json(v)?)?;
    w.write_all(b"\n")?;
    Ok(())
}

impl FileSink {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            alerts: create(dir, "alerts.jsonl")?,
            commands: create(dir, "commands.jsonl")?,
            evidence: create(dir, "evidence.jsonl")?,
            control: create(dir, "control.jsonl")?,
            rejects: create(dir, "rejects.jsonl")?,
        })
    }

    /// A control record that entered the engine.
    pub fn control(&mut self, c: &crate::control::Control) -> Result<()> {
        line(&mut self.control, &c.contract())
    }

    /// Every line goes out through [`crate::pan::masked_json`]: no PAN-shaped run leaves in
    /// clear, whatever field carried it in.
    pub fn write(&mut self, d: &Decisions) -> Result<()> {
        for a in &d.alerts {
            line(&mut self.alerts, a)?;
        }
        for c in &d.commands {
            line(&mut self.commands, c)?;
        }
        for e in &d.evidence {
            line(&mut self.evidence, e)?;
        }
        for r in &d.rejects {
            line(&mut self.rejects, &control_reject(r))?;
        }
        Ok(())
    }

    pub fn reject(&mut self, r: &Reject) -> Result<()> {
        line(&mut self.rejects, r)
    }

    pub fn finish(mut self) -> Result<()> {
        self.alerts.flush()?;
        self.commands.flush()?;
        self.evidence.flush()?;
        self.control.flush()?;
        self.rejects.flush()?;
        Ok(())
    }
}

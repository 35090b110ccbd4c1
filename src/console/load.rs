//! Loading a replay output directory (`alerts.jsonl`, `commands.jsonl`, `control.jsonl`,
//! `evidence.jsonl`) for offline work. Idempotent like the Kafka ingest: loading the same
//! directory twice stores nothing twice. Bad lines are rejects, stored with `file:line`.

use super::store::ingest::{self, Applied, Kind};
use super::store::Db;
use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;

/// Lines written per transaction.
const BATCH: usize = 5000;

/// The file of each kind in a replay output directory.
pub fn file_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Alert => "alerts.jsonl",
        Kind::Command => "commands.jsonl",
        Kind::Control => "control.jsonl",
        Kind::Evidence => "evidence.jsonl",
    }
}

/// Totals of one load.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    pub alerts: usize,
    pub repeats: u64,
    pub commands: u64,
    pub controls: u64,
    pub evidence: u64,
    pub rejects: usize,
}

/// Load every contract file present in `dir`; `on_batch` sees each committed batch.
pub async fn load_dir(db: &Db, dir: &Path, on_batch: &dyn Fn(&Applied)) -> Result<Loaded> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let mut total = Loaded::default();
    for kind in Kind::ALL {
        let path = dir.join(file_of(kind));
        if !path.exists() {
            continue;
        }
        let f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut batch = Vec::with_capacity(BATCH);
        let mut lines = std::io::BufReader::new(f)
            .split(b'\n')
            .enumerate()
            .peekable();
        while let Some((n, line)) = lines.next() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if !line.iter().all(u8::is_ascii_whitespace) {
                let source = format!("{}:{}", path.display(), n + 1);
                batch.push(ingest::parse(kind, &line, &source));
            }
            if batch.len() >= BATCH || (lines.peek().is_none() && !batch.is_empty()) {
                let a = ingest::apply(db, std::mem::take(&mut batch), &[]).await?;
                total.alerts += a.new_alerts.len();
                total.repeats += a.repeats;
                total.commands += a.commands;
                total.controls += a.controls;
                total.evidence += a.evidence;
                total.rejects += a.rejects.len();
                on_batch(&a);
            }
        }
    }
    Ok(total)
}

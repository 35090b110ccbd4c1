//! `switchguard simulate`: realistic switch traffic with labelled attacks.

use crate::sim::{self, SimConfig};
use anyhow::{Context, Result};
use clap::Args;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output file: `.jsonl` (or anything else) for JSON Lines, `.parquet` for Parquet.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 10_000)]
    pub cards: usize,
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    #[arg(long, default_value_t = 2_000)]
    pub terminals: usize,
    /// Multiplier on how many attack instances are injected.
    #[arg(long, default_value_t = 1.0)]
    pub attack_rate: f64,
    /// Emit events up to this many ms out of order (tests the reorder buffer).
    #[arg(long, default_value_t = 0)]
    pub disorder_ms: i64,
}

impl SimulateArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            cards: self.cards,
            days: self.days,
            terminals: self.terminals,
            attack_rate: self.attack_rate,
            disorder_ms: self.disorder_ms,
            ..SimConfig::default()
        }
    }
}

pub fn command(a: SimulateArgs) -> Result<ExitCode> {
    let n = write(&a.config(), &a.out)?;
    tracing::info!("wrote {n} events to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Write simulated traffic to `out`, format by extension. Returns the event count.
pub fn write(cfg: &SimConfig, out: &std::path::Path) -> Result<u64> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    if out.extension().is_some_and(|e| e == "parquet") {
        super::super::sink::parquet::write_sim(cfg, f)
    } else {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let n = sim::write_jsonl(cfg, &mut w)?;
        w.flush()?;
        Ok(n)
    }
}

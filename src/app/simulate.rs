//! `switchguard simulate`: realistic switch traffic with labelled attacks.

use super::flags;
use crate::sim::{self, SimConfig, WorldParams};
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
    /// Cards in the world (1 to 20,000,000).
    #[arg(long, default_value_t = 10_000, value_parser = flags::cards)]
    pub cards: usize,
    /// Days simulated (1 to 3,660).
    #[arg(long, default_value_t = 7, value_parser = flags::days)]
    pub days: u32,
    /// Terminals of the normal fleet (1 to 400,000).
    #[arg(long, default_value_t = 2_000, value_parser = flags::terminals)]
    pub terminals: usize,
    /// Multiplier on how many attack instances are injected (0 to 100).
    #[arg(long, default_value_t = 1.0, value_parser = flags::attack_rate)]
    pub attack_rate: f64,
    /// Emit events up to this many ms out of order (tests the reorder buffer); default: the
    /// world's own (0 for `default`).
    #[arg(long, value_parser = flags::disorder_ms)]
    pub disorder_ms: Option<i64>,
    /// The world: `default`, `metro`, `rural` or `tourist` (README "The simulator").
    #[arg(long, default_value = "default", value_parser = world)]
    pub world: WorldParams,
}

fn world(s: &str) -> Result<WorldParams, String> {
    WorldParams::preset(s).ok_or_else(|| {
        format!(
            "unknown world (known: {})",
            crate::sim::params::PRESETS.join(", ")
        )
    })
}

impl SimulateArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            cards: self.cards,
            days: self.days,
            terminals: self.terminals,
            attack_rate: self.attack_rate,
            disorder_ms: self.disorder_ms.unwrap_or(self.world.disorder_ms),
            world: self.world.clone(),
            ..SimConfig::default()
        }
    }
}

/// Refuse a run whose attack plan would not fit in memory (every instance is planned first).
pub fn check_size(cfg: &SimConfig) -> Result<()> {
    let instances = cfg.attack_rate * cfg.cards as f64 * cfg.days as f64 / 10_000.0;
    anyhow::ensure!(
        instances <= flags::MAX_INSTANCES,
        "--attack-rate {} x --cards {} x --days {} / 10000 = {instances:.0} attack instances per \
         scenario, more than {} (they are planned in memory): lower one of them",
        cfg.attack_rate,
        cfg.cards,
        cfg.days,
        flags::MAX_INSTANCES
    );
    Ok(())
}

pub fn command(a: SimulateArgs) -> Result<ExitCode> {
    let cfg = a.config();
    check_size(&cfg)?;
    let n = write(&cfg, &a.out)?;
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

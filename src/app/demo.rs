//! `switchguard demo`: the main job on an embedded default, for a first run. Simulates a few
//! days of switch traffic, replays it through the engine with the default rulepack, and shows
//! the summary with a sample of alerts and lockout commands.

use super::EngineArgs;
use crate::sim::SimConfig;
use anyhow::Result;
use clap::Args;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Where the demo writes its traffic and outputs.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2_000)]
    pub cards: usize,
    #[arg(long, default_value_t = 3)]
    pub days: u32,
}

pub fn command(a: DemoArgs) -> Result<ExitCode> {
    let cfg = SimConfig {
        cards: a.cards,
        days: a.days,
        terminals: (a.cards / 5).max(50),
        ..SimConfig::default()
    };
    let input = a.out.join("traffic.jsonl");
    let n = super::simulate::write(&cfg, &input)?;
    println!(
        "simulated {n} switch events ({} cards, {} days) → {}",
        cfg.cards,
        cfg.days,
        input.display()
    );
    let pack = crate::rules::RulePack::load_dir(&a.engine.rules).map_err(anyhow::Error::new)?;
    println!(
        "loaded {} rules from {}",
        pack.rules.len(),
        a.engine.rules.display()
    );
    let report = super::replay::run(
        &[input],
        Arc::new(pack),
        a.engine.engine_config()?,
        a.engine.tokenizer()?,
        &a.out,
        true,
    )?;
    print!("{}", report.table());
    for (name, what) in [
        ("alerts.jsonl", "alerts"),
        ("commands.jsonl", "lockout commands"),
    ] {
        let f = std::fs::File::open(a.out.join(name))?;
        println!("\nfirst {what} ({}):", a.out.join(name).display());
        for line in std::io::BufReader::new(f).lines().take(3) {
            println!("  {}", line?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `demo --offline`: simulate to a file, replay it; then let the simulated switch and analyst
//! answer the commands ([`crate::sim::switch`]) and replay again with their control records,
//! as a live run with the same answers would decide.

use super::{sim_config, DemoArgs};
use crate::app::replay::{self, Threads};
use crate::sim::switch::SwitchSide;
use anyhow::Result;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let cfg = sim_config(&a);
    let input = a.out.join("traffic.jsonl");
    let n = crate::app::simulate::write(&cfg, &input)?;
    println!(
        "simulated {n} switch events ({} cards, {} days) → {}",
        cfg.cards,
        cfg.days,
        input.display()
    );
    let pack =
        Arc::new(crate::rules::RulePack::load_dir(&a.engine.rules).map_err(anyhow::Error::new)?);
    println!(
        "loaded {} rules from {}",
        pack.rules.len(),
        a.engine.rules.display()
    );
    let models = crate::app::load_models(&a.engine.models);
    let first = a.out.join("without-answers");
    replay::run(
        std::slice::from_ref(&input),
        pack.clone(),
        models.clone(),
        a.engine.engine_config()?,
        a.engine.tokenizer()?,
        &first,
        false,
        Threads::Two,
    )?;
    let control = a.out.join("answers.jsonl");
    let answers = answer(&first.join("commands.jsonl"), &control)?;
    println!(
        "the switch and an analyst answered with {answers} control records → {}",
        control.display()
    );
    let report = replay::run(
        &[input, control],
        pack,
        models,
        a.engine.engine_config()?,
        a.engine.tokenizer()?,
        &a.out,
        true,
        Threads::Two,
    )?;
    print!("{}", report.table());
    for (name, what) in [("alerts.jsonl", "alerts"), ("commands.jsonl", "commands")] {
        let f = std::fs::File::open(a.out.join(name))?;
        println!("\nfirst {what} ({}):", a.out.join(name).display());
        for line in std::io::BufReader::new(f).lines().take(3) {
            println!("  {}", line?);
        }
    }
    println!("\nlock records: switchguard locks {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The simulated switch's and analyst's control records for every command in `commands`.
fn answer(commands: &Path, out: &Path) -> Result<usize> {
    let side = SwitchSide::default();
    let mut records = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(commands)?).lines() {
        let cmd: serde_json::Value = serde_json::from_str(&line?)?;
        records.extend(side.answer(&cmd));
    }
    let ts = |v: &serde_json::Value| v["ts"].as_str().unwrap_or("").to_string();
    records.sort_by_key(ts);
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for r in &records {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(records.len())
}

//! `switchguard train`: read history (JSONL, CSV, Parquet; PANs tokenised by the same decoder
//! as replay), fit the models, write `<kind>.model.json` and `<kind>.md` per model and
//! `evaluation.json`, and print the holdout figures.

use super::EngineArgs;
use crate::decode::Decoder;
use crate::event::Event;
use crate::models::train::{train, TrainOptions};
use crate::models::{model_card, ModelFile};
use crate::source::{self, Item};
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::Table;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// History files: JSONL (optionally gzip), CSV, Parquet.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory to write the model files and cards into.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// Seed of every random choice (mixture initialisation, sampling).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Share of the history (the latest part) held out for evaluation.
    #[arg(long, default_value_t = 0.25)]
    pub holdout: f64,
    /// Per-event false-positive rate the thresholds of all models together may spend.
    #[arg(long, default_value_t = 1e-4)]
    pub fpr: f64,
    /// No-PIN limit (minor units): an absent PIN above it counts as forced no-PIN.
    #[arg(long, default_value_t = 100_000)]
    pub nopin_limit: i64,
    /// Trailing window of the terminal wrong-PIN count, in hours.
    #[arg(long, default_value_t = 6)]
    pub window_hours: u32,
    /// Mixture components of the density model.
    #[arg(long, default_value_t = 6)]
    pub components: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// No progress bar and no table.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Decode `files`, drop rejects and repeated ids, sort by (ts, id): the engine's order.
pub fn read_history(files: &[PathBuf], decoder: Decoder) -> Result<(Vec<Event>, u64)> {
    let (mut events, mut rejects) = (Vec::new(), 0u64);
    for item in source::open_all(files, &decoder)? {
        match item {
            Item::Event(ev) => events.push(ev),
            Item::Reject(_) => rejects += 1,
            Item::Blank | Item::Control(_) => {}
        }
    }
    crate::models::train::engine_order(&mut events);
    Ok((events, rejects))
}

/// Write each model file and its card; returns the paths written.
pub fn write_models(dir: &Path, files: &[ModelFile]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for m in files {
        let p = dir.join(format!("{}.model.json", m.kind.as_str()));
        let mut json = serde_json::to_string_pretty(m)?;
        json.push('\n');
        std::fs::write(&p, json).with_context(|| format!("writing {}", p.display()))?;
        let c = dir.join(format!("{}.md", m.kind.as_str()));
        std::fs::write(&c, model_card(m)).with_context(|| format!("writing {}", c.display()))?;
        out.push(p);
    }
    Ok(out)
}

pub fn command(a: TrainArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .expect("valid template"),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    };
    bar.set_message("reading and decoding history");
    let (events, rejects) = read_history(&a.files, Decoder::new(a.engine.tokenizer()?))?;
    let opts = TrainOptions {
        seed: a.seed,
        holdout: a.holdout,
        fpr: a.fpr,
        nopin_limit: a.nopin_limit,
        window_h: a.window_hours,
        components: a.components,
        ..TrainOptions::default()
    };
    let n = events.len();
    let trained = train(&events, &opts, |s| bar.set_message(s.to_string()))?;
    drop(events);
    let written = write_models(&a.out, &trained.files)?;
    let eval = serde_json::json!({
        "events": n,
        "rejects": rejects,
        "models": trained.files.iter().map(|m| (m.kind.as_str(), &m.evaluation)).collect::<std::collections::BTreeMap<_, _>>(),
        "combined_recall": trained.combined,
    });
    std::fs::write(
        a.out.join("evaluation.json"),
        serde_json::to_string_pretty(&eval)? + "\n",
    )?;
    bar.finish_and_clear();
    if !a.quiet {
        let mut t = Table::new();
        t.set_header([
            "model",
            "threshold",
            "PR-AUC",
            "recall @ FPR 1e-4",
            "threshold FPR",
        ]);
        for m in &trained.files {
            let e = &m.evaluation;
            let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
            t.add_row([
                m.kind.as_str().to_string(),
                format!("{:.3}", m.threshold),
                f(e.pr_auc),
                f(e.recall_at_fpr_1e4),
                f(e.threshold_fpr),
            ]);
        }
        println!("{t}");
        let mut s = Table::new();
        s.set_header(["scenario (holdout)", "recall, any model"]);
        for (l, r) in &trained.combined {
            s.add_row([l.clone(), format!("{r:.4}")]);
        }
        println!("{s}");
        println!(
            "trained on {n} events ({rejects} rejects) in {:.1}s; wrote {}",
            started.elapsed().as_secs_f64(),
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

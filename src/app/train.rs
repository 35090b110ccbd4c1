//! `switchguard train`: read history (JSONL, CSV, Parquet; PANs tokenised by the same decoder
//! as replay), fit the models, judge them by replaying the later part of the history and every
//! `--evaluate` world with the rules, and write the model set: `<kind>.model.json` and
//! `<kind>.md` per model, `evaluation.json`, and `manifest.json` last (files of an earlier set
//! that this one does not have are removed first).

use super::evaluate::evaluate_world;
use super::flags;
use super::EngineArgs;
use crate::decode::Decoder;
use crate::event::Event;
use crate::models::evaluate::{bars, WorldEval};
use crate::models::labels::Labels;
use crate::models::manifest::{self, Manifest};
use crate::models::train::{train, TrainOptions, Trained};
use crate::models::{model_card, CardEval, ModelFile, ModelKind, Models};
use crate::rules::RulePack;
use crate::source::{self, Item};
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::Table;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The bars the replay evaluation is held to (issue 14): each model rule's precision, each
/// model scenario's recall.
pub const PRECISION_BAR: f64 = 0.9;
pub const RECALL_BAR: f64 = 0.9;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// History files: JSONL (optionally gzip), CSV, Parquet.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory to write the model set into.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// Seed of every random choice (mixture initialisation, sampling).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Share of the history (the latest part) held out for evaluation (above 0, at most 0.9).
    #[arg(long, default_value_t = 0.25, value_parser = flags::holdout)]
    pub holdout: f64,
    /// Per-event false-positive rate the thresholds of all models together may spend (above
    /// 0, at most 0.1).
    #[arg(long, default_value_t = 1e-4, value_parser = flags::fpr)]
    pub fpr: f64,
    /// No-PIN limit (minor units): an absent PIN above it counts as forced no-PIN.
    #[arg(long, default_value_t = 100_000, value_parser = flags::nopin_limit)]
    pub nopin_limit: i64,
    /// Trailing window of the terminal PIN counts, in hours (1 to 24).
    #[arg(long, default_value_t = 12, value_parser = flags::window_hours)]
    pub window_hours: u32,
    /// Also fit the Gaussian-mixture density model (off by default: README "Models").
    #[arg(long)]
    pub density: bool,
    /// Mixture components of the density model (1 to 32).
    #[arg(long, default_value_t = 6, value_parser = flags::components)]
    pub components: usize,
    /// Dispositions exported by the risk console (JSONL, README "Labels file"): events of
    /// confirmed fraud are positives, of false positives negatives.
    #[arg(long, num_args = 1..)]
    pub labels: Vec<PathBuf>,
    /// Other worlds' labelled traffic to judge the models on (replayed with the rules; the
    /// later `--holdout` share of each is counted). Repeatable.
    #[arg(long)]
    pub evaluate: Vec<PathBuf>,
    /// What the history is: `simulated`, `recorded`, or `auto` (simulated when it carries the
    /// simulator's `label` field). Recorded in each model file; `run` warns about simulated.
    #[arg(long, default_value = "auto", value_parser = ["auto", "simulated", "recorded"])]
    pub source: String,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// No progress bar and no table.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Decode `files`, drop rejects and repeated ids, sort by (ts, id): the engine's order.
pub fn read_history(files: &[PathBuf], decoder: Decoder) -> Result<(Vec<Event>, u64)> {
    let (mut events, rejects) = read_arrival(files, decoder)?;
    crate::models::train::engine_order(&mut events);
    Ok((events, rejects))
}

/// Decode `files` in arrival order (repeats and disorder kept, as a replay sees them).
fn read_arrival(files: &[PathBuf], decoder: Decoder) -> Result<(Vec<Event>, u64)> {
    let (mut events, mut rejects) = (Vec::new(), 0u64);
    for item in source::open_all(files, &decoder)? {
        match item {
            Item::Event(ev) => events.push(ev),
            Item::Reject(_) => rejects += 1,
            Item::Blank | Item::Control(_) => {}
        }
    }
    Ok((events, rejects))
}

/// The simulator's look-alike markers (`lookalike`) by event id, from JSONL files (optionally
/// gzip); other formats carry none.
pub fn read_marks(files: &[PathBuf]) -> Result<FxHashMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Mark {
        id: String,
        lookalike: String,
    }
    let mut out = FxHashMap::default();
    for f in files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if ["parquet", "csv"].contains(&ext) || f.as_os_str() == "-" {
            continue;
        }
        let mut raw = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        let mut magic = [0u8; 2];
        let gz = std::io::Read::read(&mut raw, &mut magic)? == 2 && magic == [0x1f, 0x8b];
        let raw = std::fs::File::open(f)?;
        let r: Box<dyn BufRead> = if gz {
            Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                raw,
            )))
        } else {
            Box::new(std::io::BufReader::new(raw))
        };
        for line in r.split(b'\n') {
            let Ok(line) = line else { break };
            if memchr::memmem::find(&line, b"\"lookalike\"").is_some() {
                if let Ok(m) = serde_json::from_slice::<Mark>(&line) {
                    out.insert(m.id, m.lookalike);
                }
            }
        }
    }
    Ok(out)
}

/// The bytes of each model file of a trained set.
fn file_bytes(files: &[ModelFile]) -> Result<BTreeMap<String, Vec<u8>>> {
    files
        .iter()
        .map(|m| {
            let mut json = serde_json::to_string_pretty(m)?;
            json.push('\n');
            Ok((m.kind.file_name(), json.into_bytes()))
        })
        .collect()
}

/// The models of a trained set, as the engine loads them.
pub fn in_memory(files: &[ModelFile]) -> Result<Models> {
    let mut m = Models::default();
    for (name, bytes) in file_bytes(files)? {
        m.add(&name, &bytes).map_err(anyhow::Error::new)?;
    }
    Ok(m)
}

/// Write the set to `dir`: each model file and its card, then remove the model files and cards
/// of kinds this set does not have, then the manifest. Returns the paths written.
pub fn write_models(
    dir: &Path,
    files: &[ModelFile],
    eval: Option<(&[WorldEval], &RulePack)>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = file_bytes(files)?;
    let mut out = Vec::new();
    for m in files {
        let p = dir.join(m.kind.file_name());
        std::fs::write(&p, &bytes[&m.kind.file_name()])
            .with_context(|| format!("writing {}", p.display()))?;
        let rules = eval.map(|(_, pack)| rules_reading(pack, m.kind));
        let card = model_card(
            m,
            eval.zip(rules.as_deref())
                .map(|((worlds, _), rules)| CardEval { worlds, rules }),
        );
        let c = dir.join(format!("{}.md", m.kind.as_str()));
        std::fs::write(&c, card).with_context(|| format!("writing {}", c.display()))?;
        out.push(p);
    }
    // Stale files: any model file not in this set, and the cards of kinds it lacks.
    for e in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let stale_card = ModelKind::ALL
            .iter()
            .any(|k| name == format!("{}.md", k.as_str()) && !files.iter().any(|m| m.kind == *k));
        if (name.ends_with(".model.json") && !bytes.contains_key(&name)) || stale_card {
            std::fs::remove_file(e.path())
                .with_context(|| format!("removing stale {}", e.path().display()))?;
        }
    }
    let t = &files[0].training;
    let m = Manifest::of(&bytes, &t.source, (&t.window_start, &t.window_end));
    let tmp = dir.join(format!(".{}.tmp", manifest::FILE));
    std::fs::write(&tmp, serde_json::to_string_pretty(&m)? + "\n")?;
    std::fs::rename(&tmp, dir.join(manifest::FILE))?;
    Ok(out)
}

/// The rules of `pack` that read a score of `kind`.
fn rules_reading(pack: &RulePack, kind: ModelKind) -> Vec<String> {
    pack.rules
        .iter()
        .filter(|r| r.reads.iter().any(|f| f.model() == Some(kind.as_str())))
        .map(|r| r.id.to_string())
        .collect()
}

/// The time from which a world is counted: its latest `holdout` share of events (none for no
/// events).
fn counted_from(events: &[Event], holdout: f64) -> Option<crate::time::EventTime> {
    let mut ts: Vec<_> = events.iter().map(|e| e.ts).collect();
    ts.sort_unstable();
    let cut = ((ts.len() as f64 * (1.0 - holdout)) as usize).min(ts.len().saturating_sub(1));
    ts.get(cut).copied()
}

/// The replay evaluation: the later part of the history, then each `--evaluate` world.
fn evaluate_all(
    a: &TrainArgs,
    history: &[Event],
    trained: &Trained,
    pack: &Arc<RulePack>,
    decoder: &Decoder,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<WorldEval>> {
    let models = Arc::new(in_memory(&trained.files)?);
    let name = |f: &Path| {
        f.file_stem()
            .map(|s| s.to_string_lossy().trim_end_matches(".jsonl").to_string())
            .unwrap_or_default()
    };
    bar.set_message("replay evaluation: the later part of the history");
    let marks = read_marks(&a.files)?;
    let own = format!("{} (training world, later part)", name(&a.files[0]));
    let mut worlds = vec![evaluate_world(
        &own,
        history,
        &marks,
        pack,
        &models,
        trained.holdout_from,
    )];
    for f in &a.evaluate {
        bar.set_message(format!("replay evaluation: {}", f.display()));
        let files = std::slice::from_ref(f);
        let (events, _) = read_arrival(files, decoder.clone())?;
        let from = counted_from(&events, a.holdout)
            .with_context(|| format!("{}: no events to evaluate on", f.display()))?;
        let marks = read_marks(files)?;
        worlds.push(evaluate_world(
            &name(f),
            &events,
            &marks,
            pack,
            &models,
            from,
        ));
    }
    Ok(worlds)
}

pub fn command(a: TrainArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let bar = progress(a.quiet);
    let labels = read_labels(&a.labels)?;
    bar.set_message("reading and decoding history");
    let decoder = Decoder::new(a.engine.tokenizer()?);
    let (events, rejects) = read_history(&a.files, decoder.clone())?;
    let n = events.len();
    let trained = train(&events, &options(&a), labels.as_ref(), |s| {
        bar.set_message(s.to_string())
    })?;
    let pack = load_pack(&a.engine.rules);
    let worlds = match &pack {
        Some(pack) => evaluate_all(&a, &events, &trained, pack, &decoder, &bar)?,
        None => Vec::new(),
    };
    let bars = (!worlds.is_empty()).then(|| bars(&worlds, PRECISION_BAR, RECALL_BAR));
    let dispositions = labels.as_ref().map(|l| {
        let ids: rustc_hash::FxHashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        l.report(
            a.labels.iter().map(|p| p.display().to_string()).collect(),
            &|id| ids.contains(id),
        )
    });
    drop(events);
    bar.set_message("writing the model set");
    let written = write_models(
        &a.out,
        &trained.files,
        pack.as_deref().map(|p| (&worlds[..], p)),
    )?;
    let eval = serde_json::json!({
        "events": n,
        "rejects": rejects,
        "models": trained.files.iter().map(|m| (m.kind.as_str(), &m.evaluation)).collect::<BTreeMap<_, _>>(),
        "combined_recall": trained.combined,
        "replay": { "worlds": worlds, "bars": bars },
        "dispositions": dispositions,
    });
    std::fs::write(
        a.out.join("evaluation.json"),
        serde_json::to_string_pretty(&eval)? + "\n",
    )?;
    bar.finish_and_clear();
    if !a.quiet {
        print_summary(&trained, bars.as_ref());
        print_done(n, rejects, started, &written);
    }
    Ok(ExitCode::SUCCESS)
}

/// A spinner with the elapsed time and the current step; hidden under `--quiet`.
fn progress(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .expect("valid template"),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}

/// The `--labels` files, if any; lines they could not use are warned about, not fatal.
fn read_labels(files: &[PathBuf]) -> Result<Option<Labels>> {
    let labels = (!files.is_empty())
        .then(|| Labels::read(files))
        .transpose()?;
    for p in labels.iter().flat_map(|l| &l.problems) {
        tracing::warn!("labels: {p} (line skipped)");
    }
    Ok(labels)
}

/// The training options the flags give (`--source auto`: simulated when the history carries
/// the simulator's `label` field).
fn options(a: &TrainArgs) -> TrainOptions {
    TrainOptions {
        seed: a.seed,
        holdout: a.holdout,
        fpr: a.fpr,
        nopin_limit: a.nopin_limit,
        window_h: a.window_hours,
        components: a.components,
        density: a.density,
        simulated: match a.source.as_str() {
            "simulated" => Some(true),
            "recorded" => Some(false),
            _ => None,
        },
        ..TrainOptions::default()
    }
}

/// The rule pack for the replay evaluation. A pack that does not load only skips that
/// evaluation (with a warning): training does not need the rules.
fn load_pack(rules: &Path) -> Option<Arc<RulePack>> {
    match RulePack::load_dir(rules) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            tracing::warn!(
                "rules in {} not loaded, so no replay evaluation: {e}",
                rules.display()
            );
            None
        }
    }
}

/// The closing line: what was trained on, how long it took, what was written.
fn print_done(n: usize, rejects: u64, started: Instant, written: &[PathBuf]) {
    println!(
        "trained on {n} events ({rejects} rejects) in {:.1}s; wrote {} and manifest.json",
        started.elapsed().as_secs_f64(),
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// ", lowest in WORLD x" for a bar's per-world minimum.
fn lowest(m: &Option<crate::models::evaluate::WorldMin>) -> String {
    m.as_ref().map_or(String::new(), |m| {
        format!(", lowest {:.4} ({})", m.value, m.world)
    })
}

fn print_summary(trained: &Trained, bars: Option<&crate::models::evaluate::Bars>) {
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
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
        t.add_row([
            m.kind.as_str().to_string(),
            format!("{:.3}", m.threshold),
            f(e.pr_auc),
            f(e.recall_at_fpr_1e4),
            f(e.threshold_fpr),
        ]);
    }
    println!("{t}");
    if let Some(b) = bars {
        let mut t = Table::new();
        t.set_header(["replay evaluation (all worlds)", "count", "measure"]);
        for (r, e) in &b.model_rules {
            t.add_row([
                r.clone(),
                format!("{} alerts", e.alerts),
                format!("precision {}{}", f(e.precision), lowest(&e.world_min)),
            ]);
        }
        for (s, e) in &b.model_scenarios {
            t.add_row([
                s.clone(),
                format!("{} instances", e.instances),
                format!("recall {}{}", f(e.recall), lowest(&e.world_min)),
            ]);
        }
        t.add_row([
            "look-alikes alerted".to_string(),
            format!("{} instances", b.lookalike_instances),
            b.lookalikes_alerted.to_string(),
        ]);
        println!("{t}");
        for m in &b.missed {
            println!("bar missed: {m}");
        }
        for m in &b.missed_in_a_world {
            println!("bar missed in one world: {m}");
        }
    }
}

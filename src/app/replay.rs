//! `switchguard replay`: history files → the same pipeline the live service runs → files.

use super::EngineArgs;
use crate::decision::Decisions;
use crate::decode::{Decoder, Tokenizer};
use crate::engine::{Engine, EngineConfig, Pipeline};
use crate::models::{ModelOut, Models};
use crate::rules::RulePack;
use crate::sink::html::{self, Activity, ScoreSampler, ScoreSeries};
use crate::sink::report::{Evaluator, Report};
use crate::sink::FileSink;
use crate::source::{self, Item};
use anyhow::{Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Items handed from the reader thread to the engine at a time.
const BATCH: usize = 1024;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Input files: JSONL (optionally gzip, also `-` for standard input, pipes and devices),
    /// CSV, Parquet. Several files are merged by event time.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Control records (manual locks, releases, extensions, the switch's acknowledgements:
    /// README "Control records"), merged with the events by event time as the service merges
    /// its control topic. Control records may also be mixed into the event files.
    #[arg(long, value_name = "FILE")]
    pub control: Vec<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output directory for alerts.jsonl, commands.jsonl, evidence.jsonl, control.jsonl,
    /// rejects.jsonl, locks.json, report.json and report.html.
    #[arg(long, default_value = "replay-out")]
    pub out: PathBuf,
    /// No progress bar and no summary table.
    #[arg(long, short)]
    pub quiet: bool,
    /// Threads: 2 decodes on a reader thread beside the engine; 1 runs both back to back on
    /// one thread (for a single core, or to measure one core's throughput). Same outputs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: u8,
}

/// The files replay writes into its output directory.
pub const OUTPUTS: [&str; 8] = [
    "alerts.jsonl",
    "commands.jsonl",
    "evidence.jsonl",
    "control.jsonl",
    "rejects.jsonl",
    "locks.json",
    "report.json",
    "report.html",
];

/// Refuse an input that is also one of the outputs: creating the outputs would truncate it
/// before it is read.
pub fn refuse_input_as_output(files: &[PathBuf], out: &Path) -> Result<()> {
    for f in files {
        for name in OUTPUTS {
            let o = out.join(name);
            if source::same_file(f, &o) {
                anyhow::bail!(
                    "input {} is the output {} of this replay: writing the outputs would destroy it \
                     before it is read; copy it elsewhere or choose another --out",
                    f.display(),
                    o.display()
                );
            }
        }
    }
    Ok(())
}

pub fn command(a: ReplayArgs) -> Result<ExitCode> {
    let files: Vec<PathBuf> = a.files.iter().chain(&a.control).cloned().collect();
    refuse_input_as_output(&files, &a.out)?;
    let pack = RulePack::load_dir_allow_empty(&a.engine.rules).map_err(anyhow::Error::new)?;
    if let Some(p) = crate::rules::empty_pack_problem(&a.engine.rules, &pack) {
        tracing::warn!("{p}; replaying with NO RULES (models alone, if any)");
    }
    let cfg = a.engine.engine_config()?;
    let report = run(
        &files,
        Arc::new(pack),
        super::load_models(&a.engine.models),
        cfg,
        a.engine.tokenizer()?,
        &a.out,
        !a.quiet,
        if a.threads == 1 {
            Threads::One
        } else {
            Threads::Two
        },
    )?;
    if !a.quiet {
        print!("{}", report.table());
        println!("outputs in {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// How many threads replay uses. The outputs are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Decode and engine back to back on the calling thread (one core's throughput).
    One,
    /// Decode on a reader thread, the engine on the calling thread.
    Two,
}

/// Replay `files` through a fresh pipeline, writing the outputs to `out`, on `threads`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    files: &[PathBuf],
    pack: Arc<RulePack>,
    models: Option<Arc<Models>>,
    cfg: EngineConfig,
    tokenizer: Tokenizer,
    out: &Path,
    progress: bool,
    threads: Threads,
) -> Result<Report> {
    let items = source::open_all(files, &Decoder::new(tokenizer))?;
    let digest = pack.digest.clone();
    let mut engine = Engine::new(pack, cfg);
    let samples = models.as_deref().map(ScoreSamples::new);
    if let Some(s) = &samples {
        engine.set_score_tap(Some(s.tap()));
    }
    engine.set_models(models);
    let bar = progress_bar(progress);
    let mut c = Consumer {
        pipeline: Pipeline::new(engine),
        sink: FileSink::create(out)?,
        d: Decisions::default(),
        eval: Evaluator::default(),
        activity: Activity::default(),
        rejects: BTreeMap::new(),
        records: 0,
        blank: 0,
        n: 0,
        bar: &bar,
    };
    let started = Instant::now();
    drive(items, threads, &mut c)?;
    let report = c.finish(files, digest, started, out, samples)?;
    bar.finish_and_clear();
    Ok(report)
}

/// A spinner on a terminal, or nothing.
fn progress_bar(progress: bool) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed} {human_pos} events {per_sec} {msg}",
        )
        .expect("valid template"),
    );
    b
}

/// Feed every item to `c`, on one thread or with decoding on a reader thread.
fn drive(
    items: Box<dyn Iterator<Item = Item> + Send>,
    threads: Threads,
    c: &mut Consumer<'_>,
) -> Result<()> {
    if threads == Threads::One {
        return items.into_iter().try_for_each(|item| c.take(item));
    }
    // Decoding runs on a reader thread, the engine on this one; batches keep the hand-over
    // cheap and the order exact.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(16);
    let reader = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        for item in items {
            batch.push(item);
            if batch.len() == BATCH
                && tx
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    .is_err()
            {
                return;
            }
        }
        let _ = tx.send(batch);
    });
    for item in rx.into_iter().flatten() {
        c.take(item)?;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))
}

/// The engine side of a replay: takes items in order, feeds the pipeline, writes what it
/// decides. One type so the one-thread and two-thread loops share every step.
struct Consumer<'b> {
    pipeline: Pipeline,
    sink: FileSink,
    d: Decisions,
    eval: Evaluator,
    activity: Activity,
    rejects: BTreeMap<String, u64>,
    /// Records read (see [`Report`]), and blank lines among them.
    records: u64,
    blank: u64,
    n: u64,
    bar: &'b indicatif::ProgressBar,
}

impl Consumer<'_> {
    /// End of input: release what is buffered, close the outputs, write the reports.
    fn finish(
        mut self,
        files: &[PathBuf],
        digest: String,
        started: Instant,
        out: &Path,
        samples: Option<ScoreSamples>,
    ) -> Result<Report> {
        self.pipeline.flush(&mut self.d);
        self.sink.write(&self.d)?;
        self.eval.observe_decisions(&self.d);
        self.activity.observe_decisions(&self.d);
        self.sink.finish()?;
        super::locks::write(&out.join("locks.json"), self.pipeline.engine())?;
        let elapsed = started.elapsed().as_secs_f64();
        let engine = self.pipeline.engine();
        let inputs = files.iter().map(|f| f.display().to_string()).collect();
        let mut report = Report::new(inputs, digest, engine.stats(), self.rejects);
        report.state_entries = engine
            .state_sizes()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        report.records = self.records;
        report.blank = self.blank;
        report.elapsed_s = elapsed;
        report.events_per_s = self.records as f64 / elapsed.max(1e-9);
        report.evaluation = self.eval.finish();
        for (model, feature, psi) in engine.model_drift().map(|d| d.psi()).unwrap_or_default() {
            report
                .model_drift
                .entry(model.to_string())
                .or_default()
                .insert(feature.to_string(), (psi * 1e4).round() / 1e4);
        }
        let path = out.join("report.json");
        std::fs::write(&path, crate::pan::masked_json_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        html::write(
            &out.join("report.html"),
            &report,
            &self.activity,
            &samples.map(ScoreSamples::finish).unwrap_or_default(),
        )?;
        Ok(report)
    }

    fn take(&mut self, item: Item) -> Result<()> {
        match item {
            Item::Event(ev) => {
                self.records += 1;
                self.eval.observe_event(&ev);
                self.activity.observe_event(&ev);
                self.pipeline.push(ev, &mut self.d);
            }
            Item::Control(c) => {
                self.records += 1;
                self.sink.control(&c)?;
                let input = crate::control::Input::Control(c);
                self.pipeline.push_input(input, &mut self.d);
            }
            Item::Reject(r) => {
                self.records += r.records;
                *self.rejects.entry(r.reason_code.to_string()).or_default() += r.records;
                if r.reason_code == "bad_header" || r.reason_code == "read_error" {
                    tracing::warn!("{}: {}", r.source, r.reason);
                }
                self.sink.reject(&r)?;
            }
            Item::Blank => {
                self.records += 1;
                self.blank += 1;
            }
        }
        if !self.d.is_empty() {
            self.sink.write(&self.d)?;
            self.eval.observe_decisions(&self.d);
            self.activity.observe_decisions(&self.d);
            self.d.clear();
        }
        self.n += 1;
        if self.n.is_multiple_of(65_536) {
            self.bar.set_position(self.n);
        }
        Ok(())
    }
}

/// Bounded samples of each loaded model's scores over the replay, for the HTML report's
/// histograms (one [`ScoreSeries`] per model, its threshold marked). Per-purchase scores are
/// sampled on one event in [`ScoreSamples::EVERY`]: a histogram needs no more, and taking every
/// event cost a lock and a reservoir draw per event (8% of replay time with every model).
struct ScoreSamples(Arc<Mutex<Vec<Option<ScoreSampler>>>>);

impl ScoreSamples {
    const EVERY: u32 = 8;

    fn new(m: &Models) -> Self {
        let s = |name: &str, t: Option<f64>| {
            t.map(|t| ScoreSampler::new(name, Some(t), ScoreSampler::DEFAULT_CAP))
        };
        Self(Arc::new(Mutex::new(vec![
            s(
                "terminal_pin_score (wrong PINs)",
                m.terminal_pin.as_ref().map(|l| l.threshold),
            ),
            s(
                "merchant_nopin_score (forced no-PIN approvals)",
                m.merchant_nopin.as_ref().map(|l| l.threshold),
            ),
            s(
                "card_outlier_score (card purchases)",
                m.card_outlier.as_ref().map(|l| l.threshold),
            ),
            s(
                "density_score (card purchases)",
                m.density.as_ref().map(|l| l.threshold),
            ),
            s(
                "fraud_probability (card purchases)",
                m.supervised.as_ref().map(|l| l.threshold),
            ),
        ])))
    }

    fn tap(&self) -> crate::engine::ScoreTap {
        let shared = self.0.clone();
        let mut tick = 0u32;
        Box::new(move |o: &ModelOut| {
            // The rare terminal and merchant scores always; the per-purchase ones sampled.
            tick = tick.wrapping_add(1);
            let each = tick.is_multiple_of(Self::EVERY);
            if !each && o.terminal_pin.is_none() && o.merchant_nopin.is_none() {
                return;
            }
            let every = |v: Option<f64>| v.filter(|_| each);
            let mut s = shared.lock().expect("score samples lock");
            let scores = [
                o.terminal_pin.map(|x| x.score),
                o.merchant_nopin.map(|x| x.score),
                every(o.card_outlier.map(|x| x.score)),
                every(o.density.map(|x| x.score)),
                every(o.fraud_probability),
            ];
            for (sampler, v) in s.iter_mut().zip(scores) {
                if let (Some(sampler), Some(v)) = (sampler, v) {
                    sampler.push(v);
                }
            }
        })
    }

    fn finish(self) -> Vec<ScoreSeries> {
        let v = std::mem::take(&mut *self.0.lock().expect("score samples lock"));
        v.into_iter().flatten().map(ScoreSampler::finish).collect()
    }
}

//! Replay benchmark (`cargo bench --bench replay`; not a timed test).
//!
//! Generates simulated traffic once (cached under `$SWITCHGUARD_BENCH_DIR`, default
//! `target/bench-data`), then reports, single-threaded:
//! - decode only (JSONL read + parse + validate + tokenise), events/s;
//! - engine only (pre-decoded events through the pipeline and the default rulepack), events/s;
//! - full replay of JSONL on one thread (decode and engine back to back: one core's figure),
//!   then of JSONL and Parquet with a reader thread beside the engine (the `replay` command's
//!   default), events/s;
//! - state memory per active card (heap growth while the engine holds its state / cards);
//! - training time on the whole history, and the cost of scoring every model (engine only and
//!   full replay, against rules alone).
//!
//! Sizes: `SWITCHGUARD_BENCH_CARDS` (default 100000), `SWITCHGUARD_BENCH_DAYS` (default 33,
//! which gives ~6.6M events at 100k cards). `SWITCHGUARD_BENCH_QUICK=1` measures only the
//! throughput figures (decode, engine on rules alone, JSONL replay on one and two threads),
//! skipping state memory, Parquet, training and models; `SWITCHGUARD_BENCH_REPEAT=N` repeats
//! each of those N times (the figures are noisy on a shared machine). With QUICK,
//! `SWITCHGUARD_BENCH_MODELS=1` adds the model figures (engine alone and JSONL replay with every
//! model, against rules alone), with the models trained on the history or loaded from
//! `SWITCHGUARD_BENCH_MODELS_DIR`.

use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchguard::app::replay::{self, Threads};
use switchguard::app::train::{read_history, write_models};
use switchguard::decision::Decisions;
use switchguard::decode::{Decoder, Tokenizer};
use switchguard::engine::{Engine, EngineConfig, Pipeline};
use switchguard::models::train::{train, TrainOptions};
use switchguard::models::Models;
use switchguard::rules::RulePack;
use switchguard::sim::SimConfig;
use switchguard::source::{Item, JsonlSource};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts live heap bytes while `COUNTING` is on, and their peak, so the state benchmark
/// measures what the pipeline holds rather than the allocator's page reuse (RSS growth read 0
/// once earlier passes had left freed pages behind).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

fn count(delta: i64) {
    if COUNTING.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

/// The binary's allocator (src/main.rs), so the bench measures what `replay` runs.
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: every call is passed straight to the binary's allocator; counting only adds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { INNER.alloc(l) };
        if !p.is_null() {
            count(l.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as i64));
        unsafe { INNER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { INNER.realloc(p, l, new) };
        if !q.is_null() {
            count(new as i64 - l.size() as i64);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak live heap bytes above the start while `f` runs.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, f64) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    (out, PEAK.load(Ordering::Relaxed) as f64)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let cards = env("SWITCHGUARD_BENCH_CARDS", 100_000);
    let days = env("SWITCHGUARD_BENCH_DAYS", 33) as u32;
    let dir = PathBuf::from(
        std::env::var("SWITCHGUARD_BENCH_DIR").unwrap_or_else(|_| "target/bench-data".into()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = SimConfig {
        cards,
        days,
        terminals: (cards / 5).max(100),
        ..SimConfig::default()
    };
    let jsonl = dir.join(format!("sim-{cards}-{days}.jsonl"));
    let parquet = dir.join(format!("sim-{cards}-{days}.parquet"));
    if !jsonl.exists() {
        let t = Instant::now();
        let mut w = std::io::BufWriter::new(std::fs::File::create(&jsonl).unwrap());
        let n = switchguard::sim::write_jsonl(&cfg, &mut w).unwrap();
        println!("generated {n} events in {:.1}s", t.elapsed().as_secs_f64());
    }
    let quick = env("SWITCHGUARD_BENCH_QUICK", 0) != 0;
    if !parquet.exists() && !quick {
        switchguard::sink::parquet::write_sim(&cfg, std::fs::File::create(&parquet).unwrap())
            .unwrap();
    }
    let pack = Arc::new(RulePack::load_dir(&PathBuf::from("rules")).unwrap());
    let bytes = std::fs::metadata(&jsonl).unwrap().len();
    println!(
        "input: {} ({:.0} MB), {cards} cards, {days} days",
        jsonl.display(),
        bytes as f64 / 1e6
    );

    let repeat = env("SWITCHGUARD_BENCH_REPEAT", 1).max(1);
    // With QUICK: also the model figures (engine alone and JSONL replay with every model).
    let bench_models = env("SWITCHGUARD_BENCH_MODELS", 0) != 0;

    // 1. Decode only (read + parse + validate + tokenise), one thread.
    let mut active = std::collections::HashSet::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let mut n = 0usize;
        for item in JsonlSource::open(&jsonl, Decoder::default()).unwrap() {
            if let Item::Event(e) = item {
                n += 1;
                if let Some(c) = e.card {
                    active.insert(c);
                }
            }
        }
        let dt = t.elapsed().as_secs_f64();
        println!(
            "decode only:   {:>10.0} events/s  ({n} events, {dt:.2}s, one thread)",
            n as f64 / dt
        );
    }

    // 2. State memory: stream the file through a fresh pipeline; the peak live heap of decode
    //    plus engine, less the peak of decoding alone, per active card.
    if !quick {
        let before = rss_kib();
        let (_, decode_peak) = peak_heap(|| {
            JsonlSource::open(&jsonl, Decoder::default())
                .unwrap()
                .filter(|i| matches!(i, Item::Event(_)))
                .count()
        });
        let (sizes, peak) = peak_heap(|| {
            let mut p = Pipeline::new(Engine::new(pack.clone(), EngineConfig::default()));
            let mut d = Decisions::default();
            for item in JsonlSource::open(&jsonl, Decoder::default()).unwrap() {
                if let Item::Event(e) = item {
                    p.push(e, &mut d);
                    d.clear();
                }
            }
            p.engine().state_sizes()
        });
        let held = (peak - decode_peak).max(0.0);
        let rss = rss_kib().saturating_sub(before) as f64 * 1024.0;
        println!(
            "state: {sizes:?}; {} active cards; peak heap {:.1} MB (decoding alone {:.1} MB) = {:.0} bytes per active card (RSS growth {:.1} MB)",
            active.len(),
            peak / 1e6,
            decode_peak / 1e6,
            held / active.len().max(1) as f64,
            rss / 1e6
        );
    }

    // 3. Engine only (pre-decoded events, first 2M), one thread: rules alone.
    let head: Vec<_> = JsonlSource::open(&jsonl, Decoder::default())
        .unwrap()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .take(2_000_000)
        .collect();
    let engine_only = |models: Option<Arc<Models>>, what: &str| {
        let mut d = Decisions::default();
        let n = head.len();
        let mut engine = Engine::new(pack.clone(), EngineConfig::default());
        engine.set_models(models);
        let mut p = Pipeline::new(engine);
        let t = Instant::now();
        let mut alerts = 0usize;
        for e in head.iter().cloned() {
            p.push(e, &mut d);
            alerts += d.alerts.len();
            d.clear();
        }
        p.flush(&mut d);
        let dt = t.elapsed().as_secs_f64();
        println!(
            "engine only, {what}: {:>10.0} events/s  ({n} events, {alerts} alerts, {dt:.2}s, one thread)",
            n as f64 / dt
        );
        // The streaming service takes this snapshot on its event loop for every checkpoint:
        // the time is a stall every event behind it waits for.
        let t = Instant::now();
        let snap = p.snapshot();
        let stall = t.elapsed().as_secs_f64() * 1e3;
        drop(snap);
        println!(
            "checkpoint snapshot on the loop, {what}: {stall:.2} ms (state {:?})",
            p.engine().state_sizes()
        );
        n as f64 / dt
    };
    let rules_only = (0..repeat)
        .map(|_| engine_only(None, "rules alone"))
        .fold(0.0, f64::max);

    // 4. Training on the whole history (read + decode + polars features + fits), or the model
    // set in SWITCHGUARD_BENCH_MODELS_DIR.
    let models = (!quick || bench_models).then(|| {
        let mdir = match std::env::var("SWITCHGUARD_BENCH_MODELS_DIR") {
            Ok(d) => PathBuf::from(d),
            Err(_) => {
                let t = Instant::now();
                let (events, _) =
                    read_history(std::slice::from_ref(&jsonl), Decoder::default()).unwrap();
                let read = t.elapsed().as_secs_f64();
                let trained = train(&events, &TrainOptions::default(), None, |_| {}).unwrap();
                println!(
                    "train:         {} events in {:.1}s (reading and decoding {read:.1}s)",
                    events.len(),
                    t.elapsed().as_secs_f64()
                );
                drop(events);
                let mdir = dir.join("models");
                write_models(&mdir, &trained.files, None).unwrap();
                mdir
            }
        };
        let models = Arc::new(Models::load_dir(&mdir).unwrap());
        println!("models: {}", models.names().join(", "));

        // 5. Engine only with every model scoring.
        let with_models = (0..repeat)
            .map(|_| engine_only(Some(models.clone()), "all models "))
            .fold(0.0, f64::max);
        println!(
            "model scoring cost: {:.1}% of rules-alone engine throughput",
            100.0 * (1.0 - with_models / rules_only)
        );
        models
    });
    drop(head);

    // 6. Full replay: JSONL on one thread (decode and engine back to back: one core), then with
    // a reader thread beside the engine (the command's default) for JSONL and Parquet, then
    // JSONL with models.
    let mut runs = Vec::new();
    for _ in 0..repeat {
        runs.push((&jsonl, None, Threads::One));
        runs.push((&jsonl, None, Threads::Two));
    }
    if let Some(m) = models {
        if !quick {
            runs.push((&parquet, None, Threads::Two));
        }
        for _ in 0..repeat {
            runs.push((&jsonl, Some(m.clone()), Threads::Two));
        }
    }
    for (input, m, threads) in runs {
        let out = dir.join("out");
        let t = Instant::now();
        let with = if m.is_some() { " + models" } else { "" };
        let how = match threads {
            Threads::One => "one thread",
            Threads::Two => "two threads",
        };
        let r = replay::run(
            std::slice::from_ref(input),
            pack.clone(),
            m,
            EngineConfig::default(),
            Tokenizer::default(),
            &out,
            false,
            threads,
        )
        .unwrap();
        let dt = t.elapsed().as_secs_f64();
        println!(
            "replay {:>7}{with}, {how}: {:>10.0} events/s  ({} events, {} alerts, {} lockouts, {dt:.2}s)",
            input.extension().unwrap().to_string_lossy(),
            r.events as f64 / dt,
            r.events,
            r.alerts,
            r.lockouts
        );
    }
}

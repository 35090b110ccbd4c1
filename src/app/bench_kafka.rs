//! `switchguard bench-kafka`: the streaming benchmark (not a timed test). Starts one service
//! instance in this process against the given brokers (fresh topics), then
//! 1. throughput: pre-loads `--events` simulated events and measures how fast the instance
//!    consumes them with checkpoints on;
//! 2. latency: for each `--rates` value, produces live traffic at that rate (event `ts` = now)
//!    in which every 500th event completes a 3-wrong-PIN attack, and measures from producing
//!    that event to its lockout command being readable on the commands topic: p50/p99/p99.9.

use crate::service::{self, config::RunConfig, Signals};
use crate::sim::{self, SimConfig};
use crate::time::Span;
use anyhow::{Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Message};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Events pre-loaded for the throughput measurement.
    #[arg(long, default_value_t = 500_000)]
    pub events: usize,
    /// Fixed rates (events/s) for the latency measurement.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value = "1s")]
    pub checkpoint_interval: String,
    /// Use librdkafka's in-process mock cluster instead of `--brokers` (separates the
    /// service's own cost from the broker's).
    #[arg(long)]
    pub mock: bool,
}

/// Terminals of the live traffic.
const TERMINALS: u64 = 997;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn producer(brokers: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.nagle.disable", "true")
        // librdkafka's default, as a switch's producer would likely run. Counted in the latency;
        // fewer, larger batches also keep tansu's fetches cheap (each lists every batch).
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

use crate::service::kafka::send_blocking as send;

fn metric(addr: &str, name: &str) -> f64 {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    use std::io::{Read, Write};
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Latency of one command: now minus its `ts` (the triggering event's produce time). Commands
/// triggered before `since` (the phase's start) are not this phase's: the pre-load's last
/// decisions are released by the first live events, with the pre-load's old event times.
fn record_latency(
    m: &rdkafka::message::BorrowedMessage<'_>,
    since: i64,
    lat: &mut Vec<f64>,
    seen: &mut std::collections::HashSet<String>,
) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or(b"{}")) else {
        return;
    };
    // A repeated command (same id) is not a new lockout.
    if !seen.insert(v["command_id"].as_str().unwrap_or_default().to_string()) {
        return;
    }
    if let Some(ts) = v["ts"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        if ts.timestamp_millis() >= since {
            lat.push((now_ms() - ts.timestamp_millis()) as f64);
        }
    }
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

pub fn command(mut a: BenchArgs) -> Result<ExitCode> {
    let mock = if a.mock {
        let m = rdkafka::mocking::MockCluster::new(1)?;
        a.brokers = m.bootstrap_servers();
        Some(m)
    } else {
        None
    };
    let run = format!("bench-{}", std::process::id());
    let cfg = bench_config(&a, &run)?;
    if let Some(m) = &mock {
        crate::service::kafka::create_mock_topics(m, &cfg)?;
    }
    crate::service::kafka::ensure_topics(&cfg, &[])?;

    // 1. Throughput: pre-load, then start the instance and time it to the end of the input.
    let p = producer(&a.brokers)?;
    let n = preload(&a, &cfg, &p)?;
    println!("pre-loaded {n} events");
    let signals = Signals::default();
    let (svc_cfg, svc_sig) = (cfg.clone(), signals.clone());
    let svc = std::thread::spawn(move || {
        service::run(svc_cfg, crate::decode::Tokenizer::default(), svc_sig)
    });
    let started = Instant::now();
    let addr = cfg.metrics_addr.clone();
    let done = wait_for_throughput(&addr, n, &svc, started)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: {:.0} events/s ({done} of {n} events processed in {secs:.2}s, checkpoints every {})",
        done as f64 / secs,
        a.checkpoint_interval
    );

    // 2. Latency at fixed rates.
    let viewer = commands_viewer(&a.brokers, &run, &cfg.topics.commands)?;
    sign_on_terminals(&p, &cfg.topics.input, &run)?;
    for &rate in &a.rates {
        measure_latency(&p, &viewer, &cfg.topics.input, &addr, &run, rate, a.seconds)?;
    }
    signals.shutdown.store(true, Ordering::Relaxed);
    svc.join()
        .map_err(|_| anyhow::anyhow!("service panicked"))?
        .context("service")?;
    drop(mock);
    Ok(ExitCode::SUCCESS)
}

/// The service's configuration for this run: fresh topics (suffixed with the run's name), a
/// free metrics port, short lateness and idle timeouts.
fn bench_config(a: &BenchArgs, run: &str) -> Result<RunConfig> {
    let mut cfg = RunConfig {
        brokers: a.brokers.clone(),
        group: run.to_string(),
        metrics_addr: "127.0.0.1:0".into(),
        allowed_lateness: Span::ms(2),
        idle_timeout: Span::ms(50),
        checkpoint_interval: crate::rules::duration::span(&a.checkpoint_interval)
            .context("--checkpoint-interval")?,
        // The attacks would trip the lockout guard; this measures latency, not the guard.
        max_lockouts_per_minute: 0,
        ..RunConfig::default()
    };
    for t in [
        &mut cfg.topics.input,
        &mut cfg.topics.alerts,
        &mut cfg.topics.commands,
        &mut cfg.topics.dlq,
        &mut cfg.topics.state,
    ] {
        *t = format!("{t}.{run}");
    }
    cfg.metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.to_string()
    };
    Ok(cfg)
}

/// Produces `--events` simulated events to the input topic; returns how many.
fn preload(a: &BenchArgs, cfg: &RunConfig, p: &BaseProducer) -> Result<usize> {
    let sim_cfg = SimConfig {
        cards: (a.events / 8).max(500),
        days: 5,
        terminals: (a.events / 40).max(100),
        ..SimConfig::default()
    };
    let mut n = 0usize;
    sim::generate(&sim_cfg, &mut |e| {
        if n < a.events {
            let json = serde_json::to_vec(&e).expect("serialisable");
            send(
                p,
                &cfg.topics.input,
                e.terminal.as_deref().unwrap_or(""),
                &json,
            );
            n += 1;
        }
    });
    p.flush(Duration::from_secs(120))?;
    Ok(n)
}

/// Waits for the instance to process the pre-load; returns how many events it counted.
fn wait_for_throughput(
    addr: &str,
    n: usize,
    svc: &std::thread::JoinHandle<Result<()>>,
    started: Instant,
) -> Result<usize> {
    // Done when every event is counted, or when the instance has caught up (no lag, nothing
    // buffered) twice in a row: librdkafka's mock cluster has been seen to lose records of a
    // large pre-load, so the count alone could wait forever there.
    let mut caught_up = 0;
    loop {
        let done = metric(addr, "switchguard_events_total")
            + metric(addr, "switchguard_rejects_total")
            + metric(addr, "switchguard_duplicates_total");
        let idle = metric(addr, "switchguard_consumer_lag") == 0.0
            && metric(addr, "switchguard_buffered_events") == 0.0
            && done > 0.0;
        caught_up = if idle { caught_up + 1 } else { 0 };
        if done as usize >= n || caught_up >= 3 {
            return Ok(done as usize);
        }
        anyhow::ensure!(!svc.is_finished(), "service stopped");
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "throughput run timed out at {done} events"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A consumer of the commands topic from its end, with its partitions assigned.
fn commands_viewer(brokers: &str, run: &str, commands: &str) -> Result<BaseConsumer> {
    let viewer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{run}-viewer"))
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "5")
        .set("socket.nagle.disable", "true")
        .create()?;
    viewer.subscribe(&[commands])?;
    for _ in 0..20 {
        viewer.poll(Duration::from_millis(100));
    }
    Ok(viewer)
}

/// The switch's terminals sign on first (0800), as they do each day: traffic from terminals
/// that never signed on would make every approved event an alert.
fn sign_on_terminals(p: &BaseProducer, input: &str, run: &str) -> Result<()> {
    let signed_on = now_ms();
    for t in 0..TERMINALS {
        let ev = format!(
            r#"{{"id":"{run}-signon-{t}","ts":{signed_on},"type":"sign_on","terminal":"T{t}","batch":"000001","response_code":"00"}}"#
        );
        send(p, input, &format!("T{t}"), ev.as_bytes());
    }
    p.flush(Duration::from_secs(30))?;
    Ok(())
}

/// One live event of the latency traffic: every 500th completes a 3-wrong-PIN attack. Returns
/// the card (the record's key) and the JSON.
fn live_event(run: &str, rate: u64, i: u64, attack: &mut u64) -> (String, String) {
    let ts = now_ms();
    // The attack completes mid-block, so live traffic follows the last one: the
    // watermark passes it as it would in a continuous stream.
    let (card, rc) = if (247..250).contains(&(i % 500)) {
        (format!("ATTACK-{rate}-{attack}"), "55")
    } else {
        (format!("CARD-{rate}-{i}"), "00")
    };
    if i % 500 == 249 {
        *attack += 1;
    }
    let ev = format!(
        r#"{{"id":"{run}-{rate}-{i}","ts":{ts},"type":"auth","card":"{card}","terminal":"T{}","merchant":"M1","amount":1000,"currency":"CNY","entry_mode":"chip","pin":"entered","response_code":"{rc}"}}"#,
        i % TERMINALS
    );
    (card, ev)
}

/// Produces live traffic at `rate` events/s for `seconds`, then prints the latencies from
/// producing an attack's last event to its lockout command being readable.
fn measure_latency(
    p: &BaseProducer,
    viewer: &BaseConsumer,
    input: &str,
    addr: &str,
    run: &str,
    rate: u64,
    seconds: u64,
) -> Result<()> {
    let total = rate * seconds;
    let mut lat: Vec<f64> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let alerts0 = metric(addr, "switchguard_alerts_total");
    let t0 = Instant::now();
    let since = now_ms();
    let mut sent = 0u64;
    let mut attack = 0u64;
    while sent < total {
        let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due.min(total) {
            let (card, ev) = live_event(run, rate, sent, &mut attack);
            send(p, input, &card, ev.as_bytes());
            sent += 1;
        }
        p.poll(Duration::ZERO);
        while let Some(Ok(m)) = viewer.poll(Duration::ZERO) {
            record_latency(&m, since, &mut lat, &mut seen);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let achieved = sent as f64 / t0.elapsed().as_secs_f64();
    p.flush(Duration::from_secs(30))?;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if let Some(Ok(m)) = viewer.poll(Duration::from_millis(20)) {
            record_latency(&m, since, &mut lat, &mut seen);
        }
    }
    println!(
        "rate {rate:>6}/s (achieved {achieved:.0}/s): {:.0} alerts, {} lockouts, produce→command readable p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
        metric(addr, "switchguard_alerts_total") - alerts0,
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 0.999)
    );
    Ok(())
}

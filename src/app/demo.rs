//! `switchguard demo`: the main job on an embedded default, in one process with no external
//! service: an in-process Kafka cluster (librdkafka's mock cluster), the simulator playing the
//! switch, the streaming service, live output of alerts and lockouts, and the metrics
//! endpoint. `--offline` instead simulates to a file and replays it.

use super::replay::Threads;
use super::EngineArgs;
use crate::service::{self, config::RunConfig, Signals};
use crate::sim::{self, SimConfig};
use anyhow::{Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Message};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Where the demo writes its files.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2_000)]
    pub cards: usize,
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
    /// Simulate to a file and replay it instead of streaming through embedded Kafka.
    #[arg(long)]
    pub offline: bool,
}

fn sim_config(a: &DemoArgs) -> SimConfig {
    SimConfig {
        cards: a.cards,
        days: a.days,
        terminals: (a.cards / 5).max(50),
        ..SimConfig::default()
    }
}

pub fn command(a: DemoArgs) -> Result<ExitCode> {
    if a.offline {
        return offline(a);
    }
    let mock = MockCluster::new(1).context("starting the embedded Kafka cluster")?;
    let brokers = mock.bootstrap_servers();
    // The demo runs on rules alone (with the warning) where `run` would refuse to start.
    let models = match crate::models::Models::load_set(&a.engine.models) {
        Ok(Ok(m)) if !m.is_empty() => a.engine.models.clone(),
        _ => {
            crate::models::Models::open(&a.engine.models, false).ok();
            PathBuf::from("none")
        }
    };
    let cfg = RunConfig {
        brokers: brokers.clone(),
        rules: a.engine.rules.clone(),
        models,
        metrics_addr: a.metrics_addr.clone(),
        allowed_lateness: "1s".into(),
        ..RunConfig::default()
    };
    crate::service::kafka::create_mock_topics(&mock, &cfg)?;
    println!(
        "embedded Kafka at {brokers}; metrics on http://{}/metrics",
        cfg.metrics_addr
    );

    let signals = Signals::default();
    let tokenizer = a.engine.tokenizer()?;
    let svc_cfg = cfg.clone();
    let svc_signals = signals.clone();
    let service = std::thread::spawn(move || service::run(svc_cfg, tokenizer, svc_signals));

    // The switch: simulated traffic into the input topic, keyed by terminal.
    let sim_cfg = sim_config(&a);
    let input = cfg.topics.input.clone();
    let producer_brokers = brokers.clone();
    let switch = std::thread::spawn(move || -> Result<u64> {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &producer_brokers)
            .set("linger.ms", "5")
            .create()?;
        let mut n = 0u64;
        sim::generate(&sim_cfg, &mut |e| {
            let json = serde_json::to_vec(&e).expect("serialisable");
            let key = e.terminal.clone().unwrap_or_default();
            crate::service::kafka::send_blocking(&p, &input, &key, &json);
            n += 1;
            if n.is_multiple_of(1000) {
                p.poll(Duration::ZERO);
            }
        });
        p.flush(Duration::from_secs(30))?;
        Ok(n)
    });

    // The risk team's view: alerts and lockout commands as they are committed.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "demo-viewer")
        .set("auto.offset.reset", "earliest")
        .create()?;
    reader.subscribe(&[&cfg.topics.alerts, &cfg.topics.commands])?;
    let (mut alerts, mut commands) = (0u64, 0u64);
    let mut quiet_since = Instant::now();
    let started = Instant::now();
    loop {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or(b"{}"))?;
                if m.topic() == cfg.topics.alerts {
                    alerts += 1;
                    if alerts <= 40 {
                        println!(
                            "ALERT   {:<8} {:<27} {}",
                            v["severity"].as_str().unwrap_or(""),
                            v["rule"].as_str().unwrap_or(""),
                            v["reason"].as_str().unwrap_or("")
                        );
                    }
                } else {
                    commands += 1;
                    if commands <= 20 {
                        println!(
                            "COMMAND {} {} until {} ({})",
                            v["action"].as_str().unwrap_or(""),
                            v["pan_masked"]
                                .as_str()
                                .or(v["target"].as_str())
                                .unwrap_or(""),
                            v["expires_at"].as_str().unwrap_or(""),
                            v["reason_code"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Some(Err(e)) => tracing::warn!("viewer: {e}"),
            None => {}
        }
        let done = switch.is_finished();
        if (done && quiet_since.elapsed() > Duration::from_secs(4))
            || service.is_finished()
            || started.elapsed() > Duration::from_secs(300)
        {
            break;
        }
    }
    let sent = switch
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    signals.shutdown.store(true, Ordering::Relaxed);
    service
        .join()
        .map_err(|_| anyhow::anyhow!("service thread panicked"))??;
    println!("\nthe switch sent {sent} events; switchguard answered with {alerts} alerts and {commands} lockout commands");
    println!("(first 40 alerts and 20 commands shown; `switchguard demo --offline` for the replay report)");
    drop(reader);
    drop(mock);
    Ok(ExitCode::SUCCESS)
}

fn offline(a: DemoArgs) -> Result<ExitCode> {
    let cfg = sim_config(&a);
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
        super::load_models(&a.engine.models),
        a.engine.engine_config()?,
        a.engine.tokenizer()?,
        &a.out,
        true,
        Threads::Two,
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

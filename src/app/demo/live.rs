//! The embedded run: mock Kafka, the service, the simulated switch (traffic, then answers to
//! every command on the control topic), an analyst's releases, the console, and a viewer that
//! prints what the risk team and the switch receive.

use super::{sim_config, DemoArgs};
use crate::service::config::RunConfig;
use crate::service::{self, Signals};
use crate::sim::{self, switch::SwitchSide};
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Message};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let mock = MockCluster::new(1).context("starting the embedded Kafka cluster")?;
    let brokers = mock.bootstrap_servers();
    // The demo runs on rules alone (with the warning) where `run` would refuse to start.
    let models = match crate::models::Models::load_set(&a.engine.models) {
        Ok(Ok(m)) if !m.is_empty() => a.engine.models.clone(),
        _ => {
            crate::models::Models::open(&a.engine.models, false).ok();
            std::path::PathBuf::from("none")
        }
    };
    let cfg = RunConfig {
        brokers: brokers.clone(),
        rules: a.engine.rules.clone(),
        models,
        metrics_addr: a.metrics_addr.clone(),
        allowed_lateness: crate::time::Span::SECOND,
        // The demo streams days of traffic in seconds: the switch's answers, stamped a few
        // seconds after each command, arrive behind the watermark, so a deadline in event
        // time would flag every command. `demo --offline` shows the deadlines.
        ack_timeout: crate::time::Span::ZERO,
        allow_dev_key: true,
        ..RunConfig::default()
    };
    crate::service::kafka::create_mock_topics(&mock, &cfg)?;
    println!(
        "embedded Kafka at {brokers}; metrics and lock records on http://{}/metrics and /locks",
        cfg.metrics_addr
    );
    let console = start_console(&a, &brokers, &cfg)?;
    let signals = Signals::default();
    let (tokenizer, svc_cfg, svc_signals) = (a.engine.tokenizer()?, cfg.clone(), signals.clone());
    let service = std::thread::spawn(move || service::run(svc_cfg, tokenizer, svc_signals));
    let switch = traffic(&a, &brokers, &cfg.topics.input);
    let answering = Arc::new(AtomicBool::new(true));
    let answers = answer(&brokers, &cfg, answering.clone())?;
    let (alerts, commands) = super::view::view(&brokers, &cfg, &switch, &service)?;
    let sent = switch
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    std::thread::sleep(Duration::from_secs(2)); // the last answers in, processed
    answering.store(false, Ordering::Relaxed);
    let answered = answers
        .join()
        .map_err(|_| anyhow::anyhow!("switch thread panicked"))??;
    print_locks(&cfg.metrics_addr);
    signals.shutdown.store(true, Ordering::Relaxed);
    service
        .join()
        .map_err(|_| anyhow::anyhow!("service thread panicked"))??;
    println!("\nthe switch sent {sent} events and {answered} answers (acknowledgements, analyst releases); switchguard answered with {alerts} alerts and {commands} commands");
    println!("(first 40 alerts and 20 commands shown; `switchguard demo --offline` for the replay report)");
    if let Some(c) = console {
        if a.linger
            .unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stdin()))
        {
            println!("the console stays up: Ctrl-C to stop");
            let stop = Signals::install()?;
            while !stop.shutdown.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        c.stop()?;
    }
    drop(mock);
    Ok(ExitCode::SUCCESS)
}

/// The risk console on the embedded cluster, with a fresh demo login.
fn start_console(
    a: &DemoArgs,
    brokers: &str,
    cfg: &RunConfig,
) -> Result<Option<crate::console::Background>> {
    if a.console == "none" {
        return Ok(None);
    }
    let db = a.out.join("console.db");
    let _ = std::fs::remove_file(&db); // a fresh database: the login below is this run's
    let password = crate::console::store::users::random_token();
    let args = crate::console::ServeArgs {
        db: crate::console::DbArg {
            database: db.display().to_string(),
        },
        listen: a
            .console
            .parse()
            .context("--console: an address such as 127.0.0.1:8088")?,
        metrics_addr: "127.0.0.1:0".parse().expect("an address"),
        brokers: Some(brokers.to_string()),
        props: Vec::new(),
        alerts_topic: cfg.topics.alerts.clone(),
        commands_topic: cfg.topics.commands.clone(),
        control_topic: cfg.topics.control.clone(),
        evidence_topic: cfg.topics.evidence.clone(),
        partitions: cfg.partitions,
        load: Vec::new(),
        secure_cookies: false,
    };
    let c = crate::console::Background::spawn(args, Some(("demo".into(), password.clone())))?;
    println!(
        "risk console on http://{}: log in as demo / {password}",
        a.console
    );
    Ok(Some(c))
}

/// The switch's traffic: simulated events into the input topic, keyed by terminal.
fn traffic(a: &DemoArgs, brokers: &str, input: &str) -> JoinHandle<Result<u64>> {
    let (sim_cfg, brokers, input) = (sim_config(a), brokers.to_string(), input.to_string());
    std::thread::spawn(move || -> Result<u64> {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
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
    })
}

/// The switch applying commands and an analyst releasing locks: every command read from the
/// commands topic is answered on the control topic ([`SwitchSide`]), until `on` is cleared.
fn answer(brokers: &str, cfg: &RunConfig, on: Arc<AtomicBool>) -> Result<JoinHandle<Result<u64>>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "demo-switch")
        .set("auto.offset.reset", "earliest")
        .create()?;
    c.subscribe(&[&cfg.topics.commands])?;
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let control = cfg.topics.control.clone();
    Ok(std::thread::spawn(move || -> Result<u64> {
        let (side, mut n) = (SwitchSide::default(), 0u64);
        let started = Instant::now();
        while on.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(600) {
            let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
                continue;
            };
            let Ok(cmd) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or(b""))
            else {
                continue;
            };
            for r in side.answer(&cmd) {
                let key = r["id"].as_str().unwrap_or("").to_string();
                crate::service::kafka::send_blocking(&p, &control, &key, &serde_json::to_vec(&r)?);
                n += 1;
            }
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(10))?;
        Ok(n)
    }))
}

/// The service's lock records, as `switchguard locks --service` shows them (first lines).
fn print_locks(metrics_addr: &str) {
    let url = format!("http://{metrics_addr}");
    match crate::app::locks::service_table(&url, 12) {
        Ok(t) => println!("\nlock records (switchguard locks --service {url}):\n{t}"),
        Err(e) => tracing::warn!("reading the lock records: {e:#}"),
    }
}

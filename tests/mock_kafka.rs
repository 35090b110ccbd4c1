//! The streaming service on librdkafka's in-process mock cluster: the transactional
//! (`exactly_once = true`) path at the API level, and checkpoint restore across a restart (state
//! survives: two wrong PINs before the restart and one after lock the card).

mod common;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchguard::decode::Tokenizer;
use switchguard::service::{self, config::RunConfig, Signals};

fn event(id: &str, card: &str, ts: &str, rc: &str) -> String {
    format!(
        r#"{{"id":"{id}","ts":"{ts}","type":"auth","card":"{card}","terminal":"T1","merchant":"M1","pin":"entered","response_code":"{rc}"}}"#
    )
}

fn produce(brokers: &str, topic: &str, values: &[String]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for v in values {
        p.send(BaseRecord::to(topic).key("T1").payload(v)).unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

fn read_all(brokers: &str, topic: &str, wait_for: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && out.len() < wait_for {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    out
}

fn start(cfg: RunConfig) -> (Signals, std::thread::JoinHandle<anyhow::Result<()>>) {
    let signals = Signals::default();
    let s = signals.clone();
    let h = std::thread::spawn(move || service::run(cfg, Tokenizer::default(), s));
    (signals, h)
}

#[test]
fn transactional_service_commits_and_resumes_from_its_checkpoint() {
    let mock = MockCluster::new(1).unwrap();
    let brokers = mock.bootstrap_servers();
    let cfg = RunConfig {
        brokers: brokers.clone(),
        rules: common::root().join("rules"),
        metrics_addr: "127.0.0.1:0".into(),
        exactly_once: true,
        checkpoint_interval: switchguard::time::Span::ms(200),
        idle_timeout: switchguard::time::Span::ms(300),
        partitions: 2,
        ..RunConfig::default()
    };
    switchguard::service::kafka::create_mock_topics(&mock, &cfg).unwrap();

    // First life: two wrong PINs, then a clean shutdown (final transaction).
    let (sig, h) = start(cfg.clone());
    produce(
        &brokers,
        &cfg.topics.input,
        &[
            event("a1", "C1", "2026-10-01T10:00:00Z", "55"),
            event("a2", "C1", "2026-10-01T10:01:00Z", "55"),
            "{not json".to_string(),
        ],
    );
    let dlq = read_all(&brokers, &cfg.topics.dlq, 1);
    assert_eq!(
        dlq,
        vec!["{not json".to_string()],
        "the reject is committed to the DLQ"
    );
    std::thread::sleep(Duration::from_millis(800));
    sig.shutdown.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
    let states = read_all(&brokers, &cfg.topics.state, 1);
    assert!(
        !states.is_empty(),
        "a checkpoint was committed in a transaction"
    );

    // Second life: the third wrong PIN completes the run restored from the checkpoint.
    let (sig, h) = start(cfg.clone());
    produce(
        &brokers,
        &cfg.topics.input,
        &[event("a3", "C1", "2026-10-01T10:02:00Z", "55")],
    );
    let cmds = read_all(&brokers, &cfg.topics.commands, 1);
    sig.shutdown.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
    assert_eq!(cmds.len(), 1, "exactly one lockout command");
    let c: serde_json::Value = serde_json::from_str(&cmds[0]).unwrap();
    assert_eq!(c["rule"], "pin_consecutive_wrong");
    assert_eq!(c["event_ids"], serde_json::json!(["a1", "a2", "a3"]));
}

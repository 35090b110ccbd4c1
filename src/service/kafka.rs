//! Kafka clients for the service (rdkafka over the bundled librdkafka): configuration with
//! `-X` pass-through, topic creation, and a producer whose delivery failures are counted so a
//! checkpoint is only written once every output before it is acknowledged.

use super::config::RunConfig;
use anyhow::{Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts deliveries and failures, and tracks which outputs are still unacknowledged (by a
/// sequence number each), so a checkpoint can wait for exactly the outputs before it without
/// flushing the producer; the event time of each delivered output feeds the end-to-end
/// latency histogram.
#[derive(Default)]
pub struct Deliveries {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
    in_flight: std::sync::Mutex<std::collections::BTreeSet<u64>>,
    next: AtomicU64,
}

impl Deliveries {
    /// A sequence number for one output about to be produced, counted as in flight.
    pub fn register(&self) -> u64 {
        let s = self.next.fetch_add(1, Ordering::Relaxed);
        self.in_flight.lock().expect("lock").insert(s);
        s
    }

    /// Drop a registered output that was never produced.
    pub fn forget(&self, seq: u64) {
        self.in_flight.lock().expect("lock").remove(&seq);
    }

    /// The sequence number the next output will get.
    pub fn barrier(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Outputs settled so far: acknowledged or failed.
    pub fn settled(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Outputs registered before `barrier` still waiting for their delivery report.
    pub fn in_flight_before(&self, barrier: u64) -> usize {
        self.in_flight
            .lock()
            .expect("lock")
            .range(..barrier)
            .count()
    }

    /// Every output registered before `barrier` has been acknowledged (or has failed, which
    /// `failed` counts).
    pub fn settled_before(&self, barrier: u64) -> bool {
        self.in_flight
            .lock()
            .expect("lock")
            .first()
            .is_none_or(|s| *s >= barrier)
    }
}

/// The opaque of each produced record: its event time (ms, or 0) and its sequence number.
pub type Opaque = Box<(i64, u64)>;

/// Producer context: delivery reports land in [`Deliveries`].
pub struct Ctx {
    pub deliveries: Arc<Deliveries>,
    pub e2e: Option<prometheus::Histogram>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Opaque;
    fn delivery(&self, r: &DeliveryResult<'_>, o: Self::DeliveryOpaque) {
        let (ts, seq) = *o;
        match r {
            Ok(_) => {
                self.deliveries.ok.fetch_add(1, Ordering::Relaxed);
                if let (Some(h), true) = (&self.e2e, ts > 0) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    h.observe((now - ts).max(0) as f64 / 1000.0);
                }
            }
            Err((e, _)) => {
                self.deliveries.failed.fetch_add(1, Ordering::Relaxed);
                *self.deliveries.last_error.lock().expect("lock") = Some(e.to_string());
            }
        }
        self.deliveries.in_flight.lock().expect("lock").remove(&seq);
    }
}

pub type Producer = BaseProducer<Ctx>;

/// Serve every delivery report waiting, without blocking. `BaseProducer::poll(0)` serves one
/// event, and an event reports one produced batch: with one poll per loop pass, reports fell
/// behind whenever the outputs of a pass went out in more than one batch (always, with
/// `-X batch.num.messages=1`), so the outputs before a checkpoint never all settled and no
/// checkpoint was written, without a word.
pub fn poll_deliveries(producer: &Producer, deliveries: &Deliveries) {
    loop {
        let before = deliveries.settled();
        producer.poll(Duration::ZERO);
        if deliveries.settled() == before {
            return;
        }
    }
}

/// Base client configuration: brokers plus every pass-through property.
pub fn base_config(c: &RunConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &c.brokers)
        // Small records must not wait for Nagle's algorithm (tens of ms per hop).
        .set("socket.nagle.disable", "true");
    for (k, v) in &c.kafka {
        cfg.set(k, v);
    }
    cfg
}

/// Create every topic the service uses when missing (some brokers do not auto-create), plus
/// `extra` (name, partitions): scale-out's stage topics.
pub fn ensure_topics(c: &RunConfig, extra: &[(String, i32)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(c)
        .create()
        .context("creating Kafka admin client")?;
    let t = &c.topics;
    let repl = || TopicReplication::Fixed(c.replication);
    let meta = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .context("reading cluster metadata")?;
    let exists = |name: &str| {
        meta.topics()
            .iter()
            .any(|m| m.name() == name && !m.partitions().is_empty())
    };
    let mut topics: Vec<NewTopic> = [
        &t.input,
        &t.alerts,
        &t.commands,
        &t.dlq,
        &t.control,
        &t.evidence,
    ]
    .into_iter()
    .filter(|name| !exists(name))
    .map(|name| NewTopic::new(name, c.partitions, repl()))
    .collect();
    for (name, n) in extra {
        if !exists(name) {
            // Retention: records are read once by the next stage; a week covers any outage.
            topics.push(NewTopic::new(name, *n, repl()).set("retention.ms", "604800000"));
        }
    }
    if !exists(&t.state) {
        topics.push(
            NewTopic::new(&t.state, 1, repl())
                .set("cleanup.policy", "compact")
                .set("max.message.bytes", "67108864"),
        );
    }
    if topics.is_empty() {
        return Ok(());
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = futures_executor::block_on(admin.create_topics(&topics, &opts))
        .context("creating topics")?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// The output producer (idempotent; transactional when `exactly_once`).
pub fn producer(
    c: &RunConfig,
    deliveries: Arc<Deliveries>,
    e2e: Option<prometheus::Histogram>,
) -> Result<Producer> {
    let mut cfg = base_config(c);
    cfg.set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.max.bytes", "67108864");
    if c.exactly_once {
        cfg.set(
            "transactional.id",
            format!("switchguard-{}-{}", c.group, c.topics.input),
        );
    }
    cfg.create_with_context(Ctx { deliveries, e2e })
        .context("creating Kafka producer")
}

/// The producer of background checkpoints (at-least-once mode), on a connection of its own:
/// a broker serves one connection's requests in order, so a checkpoint of several megabytes on
/// the output producer's connection would hold up every lockout command queued behind it.
/// It shares `deliveries`, so "every output before the snapshot is acknowledged" still holds
/// across both.
pub fn checkpoint_producer(c: &RunConfig, deliveries: Arc<Deliveries>) -> Result<Producer> {
    let mut cfg = base_config(c);
    cfg.set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.max.bytes", "67108864");
    cfg.create_with_context(Ctx {
        deliveries,
        e2e: None,
    })
    .context("creating Kafka checkpoint producer")
}

/// Create every topic of `c` on librdkafka's in-process mock cluster (demo, tests, bench).
pub fn create_mock_topics<C: ClientContext>(
    mock: &rdkafka::mocking::MockCluster<'_, C>,
    c: &RunConfig,
) -> rdkafka::error::KafkaResult<()> {
    let t = &c.topics;
    for name in [
        &t.input,
        &t.alerts,
        &t.commands,
        &t.dlq,
        &t.control,
        &t.evidence,
    ] {
        mock.create_topic(name, c.partitions, 1)?;
    }
    mock.create_topic(&t.state, 1, 1)
}

/// Produce one record, waiting for queue space when the local queue is full (load drivers).
pub fn send_blocking(p: &BaseProducer, topic: &str, key: &str, payload: &[u8]) {
    let mut rec = rdkafka::producer::BaseRecord::to(topic)
        .key(key)
        .payload(payload);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                rec = r;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

/// What one pass of a service loop takes from its consumer: it waits up to `first` for the
/// first result, then takes only what is already there, at most `max` results, so the pass
/// gets back to watermarks, outputs and checkpoints in bounded time.
pub fn poll_batch<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    first: Duration,
    max: usize,
) -> impl Iterator<Item = rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>> {
    let mut timeout = first;
    (0..max).map_while(move |_| {
        let r = consumer.poll(timeout);
        timeout = Duration::ZERO;
        r
    })
}

//! Kafka at the console's edge: the ingest loop (alerts, commands, control, evidence) and the
//! control-record writer. The console assigns itself every partition of its topics and keeps
//! the next offset of each in its own database, written in the same transaction as the rows
//! (the group's committed offsets are never used), so a restart — kill -9 included — resumes
//! exactly after the last committed batch: nothing lost, nothing twice.

use super::store::ingest::{self, Kind, Record};
use super::store::Db;
use anyhow::{Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the console reads and writes.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    /// librdkafka properties passed through (`-X key=value`).
    pub props: Vec<(String, String)>,
    pub alerts: String,
    pub commands: String,
    pub control: String,
    pub evidence: String,
    /// Partitions for topics the console creates when missing.
    pub partitions: i32,
}

impl KafkaConfig {
    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("socket.nagle.disable", "true");
        for (k, v) in &self.props {
            c.set(k, v);
        }
        c
    }

    /// The topics ingested, with the contract each follows.
    pub fn inputs(&self) -> Vec<(Kind, String)> {
        vec![
            (Kind::Alert, self.alerts.clone()),
            (Kind::Command, self.commands.clone()),
            (Kind::Control, self.control.clone()),
            (Kind::Evidence, self.evidence.clone()),
        ]
    }

    /// Create the console's topics when missing (some brokers do not auto-create).
    pub fn ensure_topics(&self) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .client()
            .create()
            .context("creating Kafka admin client")?;
        let meta = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .context("reading cluster metadata")?;
        let topics: Vec<NewTopic> = [&self.alerts, &self.commands, &self.control, &self.evidence]
            .into_iter()
            .filter(|n| {
                !meta
                    .topics()
                    .iter()
                    .any(|m| m.name() == n.as_str() && !m.partitions().is_empty())
            })
            .map(|n| NewTopic::new(n, self.partitions, TopicReplication::Fixed(1)))
            .collect();
        if topics.is_empty() {
            return Ok(());
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for r in futures_executor::block_on(admin.create_topics(&topics, &opts))? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
            }
        }
        Ok(())
    }
}

/// What the ingest loop hands on after each committed batch.
pub type OnBatch = Box<dyn Fn(ingest::Applied) + Send>;

/// The ingest loop: runs on its own thread until `stop`, driving the async database through
/// `rt`. A batch that cannot be written is retried (kept in memory) until it is.
pub fn ingest_loop(
    cfg: KafkaConfig,
    db: Db,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    on_batch: OnBatch,
) -> Result<()> {
    let consumer: BaseConsumer = cfg
        .client()
        .set("group.id", "switchguard-console")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating Kafka consumer")?;
    let inputs = cfg.inputs();
    let kind_of: BTreeMap<String, Kind> = inputs.iter().map(|(k, t)| (t.clone(), *k)).collect();
    // (topic, partition) → next offset to read, for every assigned partition.
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut last_refresh: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if last_refresh.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
            last_refresh = Some(Instant::now());
            if let Err(e) = refresh(&consumer, &inputs, &db, &rt, &mut next) {
                tracing::warn!("console: kafka assignment: {e:#}");
            }
        }
        let mut records = Vec::new();
        let mut reached: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for m in crate::service::kafka::poll_batch(&consumer, Duration::from_millis(200), 2000) {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("console: kafka: {e}");
                    continue;
                }
            };
            let (topic, part, off) = (m.topic().to_string(), m.partition(), m.offset());
            let Some(kind) = kind_of.get(&topic) else {
                continue;
            };
            let source = format!("{topic}/{part}@{off}");
            records.push(match m.payload() {
                Some(p) => ingest::parse(*kind, p, &source),
                None => Record::Reject {
                    source,
                    reason: "empty record".into(),
                    raw: String::new(),
                },
            });
            reached.insert((topic, part), off + 1);
        }
        if reached.is_empty() {
            continue;
        }
        let offsets: Vec<(String, i64, i64)> = reached
            .iter()
            .map(|((t, p), o)| (t.clone(), *p as i64, *o))
            .collect();
        let applied = loop {
            match rt.block_on(ingest::apply(&db, records.clone(), &offsets)) {
                Ok(a) => break a,
                Err(e) => {
                    tracing::warn!("console: ingest batch not written, retrying: {e:#}");
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        next.extend(reached);
        on_batch(applied);
    }
    Ok(())
}

/// Assign every partition of the input topics that is not yet assigned (topics may appear
/// after the console starts, partitions may be added), starting at the stored offsets.
fn refresh(
    consumer: &BaseConsumer,
    inputs: &[(Kind, String)],
    db: &Db,
    rt: &tokio::runtime::Handle,
    next: &mut BTreeMap<(String, i32), i64>,
) -> Result<()> {
    let mut added = false;
    for (_, topic) in inputs {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let Some(t) = meta.topics().iter().find(|t| t.name() == topic) else {
            continue;
        };
        let stored: BTreeMap<i64, i64> = rt
            .block_on(ingest::offsets(db, topic))?
            .into_iter()
            .collect();
        for p in t.partitions() {
            if let std::collections::btree_map::Entry::Vacant(e) =
                next.entry((topic.clone(), p.id()))
            {
                e.insert(stored.get(&(p.id() as i64)).copied().unwrap_or(-1));
                added = true;
            }
        }
    }
    if added {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in next.iter() {
            let off = if *o < 0 {
                Offset::Beginning
            } else {
                Offset::Offset(*o)
            };
            tpl.add_partition_offset(t, *p, off)?;
        }
        consumer.assign(&tpl)?;
    }
    Ok(())
}

/// Delivery reports of control records, each to the request that sent it.
struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<mpsc::Sender<Result<(), String>>>;
    fn delivery(&self, r: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let _ = tx.send(r.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

/// Writes control records to the control topic and waits for the broker's acknowledgement.
pub struct ControlWriter {
    producer: Mutex<BaseProducer<Reports>>,
    topic: String,
}

impl ControlWriter {
    pub fn new(cfg: &KafkaConfig) -> Result<ControlWriter> {
        let producer = cfg
            .client()
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            .create_with_context(Reports)
            .context("creating Kafka producer")?;
        Ok(ControlWriter {
            producer: Mutex::new(producer),
            topic: cfg.control.clone(),
        })
    }

    /// Produce `rec` keyed by its target and wait (up to 15 s) until the broker has it.
    pub fn send(&self, rec: &super::contract::ControlRecord) -> Result<()> {
        let key = rec.target().map(|t| t.0).unwrap_or_else(|| rec.id.clone());
        let payload = serde_json::to_vec(rec)?;
        let (tx, rx) = mpsc::channel();
        let p = self.producer.lock().expect("producer lock");
        p.send(
            BaseRecord::with_opaque_to(&self.topic, Box::new(tx))
                .key(&key)
                .payload(&payload),
        )
        .map_err(|(e, _)| anyhow::anyhow!("queueing the control record: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            p.poll(Duration::from_millis(50));
            match rx.try_recv() {
                Ok(r) => return r.map_err(|e| anyhow::anyhow!("control topic: {e}")),
                Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {}
                Err(_) => {
                    let _ = p.flush(Duration::from_millis(0));
                    anyhow::bail!("control topic: no acknowledgement within 15s")
                }
            }
        }
    }
}

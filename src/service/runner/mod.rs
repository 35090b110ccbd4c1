//! The streaming service's one loop, for a single instance and for scale-out alike:
//! set-up → { reload → dispatch → tick → checkpoint } until stopped → final checkpoint.
//!
//! A single instance is the scale-out topology collapsed: its input partitions are tasks that
//! decode and route, and one in-memory task owns every stage (the same [`ShardTask`] a
//! scale-out shard is), fed in-process. With scale-out the first stage is a Kafka topic and
//! every stage partition the group gives this instance is a task ([`topology`]).
//!
//! - [`tasks`]: the tasks and their checkpoint records;
//! - [`topology`]: where records go (in-process or a stage topic), and the marks;
//! - [`open`]: start-up and assignments (each task restored before it processes anything);
//! - [`promise`]: what a control partition promises the watermark;
//! - [`save`]: checkpoints (in the background, transactional, final).

mod open;
mod promise;
mod save;
pub mod tasks;
mod topology;

use super::background::Background;
use super::config::RunConfig;
use super::health::Health;
use super::highwater::HighWater;
use super::kafka::{self, Deliveries, Producer};
use super::metrics::Metrics;
use super::out::Out;
use super::positions::Positions;
use super::reload::Reloader;
use super::{Signals, Start};
use crate::decision::Decisions;
use crate::decode::{DecodeError, Decoder, Input, Tokenizer};
use crate::engine::shard_task::{Envelope, Forward};
use crate::engine::EngineConfig;
use crate::models::Models;
use crate::rules::RulePack;
use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasks::{Task, Work};
use topology::Topology;

/// Most consumer results one loop pass takes.
const POLL_MAX: usize = 2048;

/// Consumer context: notes each new assignment for the loop (the callback runs inside poll).
#[derive(Default)]
pub struct Ctx {
    assigned: Mutex<Option<BTreeSet<(String, i32)>>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            let set = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            *self.assigned.lock().expect("lock") = Some(set);
        }
    }
}

/// Rules and models in force, and the engine settings every task's engine is built with.
pub struct Core {
    pub pack: Arc<RulePack>,
    pub models: Option<Arc<Models>>,
    pub engine_cfg: EngineConfig,
    pub lateness: crate::time::Span,
}

/// Everything the loop holds.
pub struct Runner {
    cfg: RunConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    core: Core,
    idle: Duration,
    every: Duration,
    topo: Topology,
    tasks: BTreeMap<(String, i32), Task>,
    positions: Positions,
    /// Shared so that a polled record (which borrows it) can be handled with `&mut self`.
    consumer: Arc<BaseConsumer<Ctx>>,
    producer: Producer,
    deliveries: Arc<Deliveries>,
    background: Background,
    highwater: Arc<HighWater>,
    reloader: Reloader,
    decoder: Decoder,
    state_reader: BaseConsumer,
    d: Decisions,
    fwd: Vec<Forward>,
    last_checkpoint: Instant,
    lag_due: Instant,
    /// Partitions of the transactions topic (control partitions are numbered after them).
    parts_in: u32,
    /// When each newest transaction time was reached (control partitions promise by it).
    input_times: promise::InputTimes,
}

/// Run until `signals.shutdown`; returns after a final checkpoint.
pub fn run(cfg: RunConfig, tokenizer: Tokenizer, signals: Signals) -> Result<()> {
    let start = Start::new(&cfg)?;
    let mut r = open::runner(cfg, tokenizer, start)?;
    while !signals.shutdown.load(Ordering::Relaxed) {
        r.reload(signals.reload.swap(false, Ordering::Relaxed));
        r.dispatch()?;
        r.tick()?;
        r.checkpoint()?;
    }
    r.shutdown()
}

impl Runner {
    /// The source number of input partition `p` of `topic` (see [`Task::src`]).
    fn src_of(&self, topic: &str, p: i32) -> u32 {
        match topic == self.cfg.topics.control {
            true => self.parts_in + p as u32,
            false => p as u32,
        }
    }

    /// Rules and models: SIGHUP or an edited file. Validated first (with scale-out, also that
    /// every rule can be sharded); a bad set leaves the old one in force.
    fn reload(&mut self, forced: bool) {
        let scaled = matches!(self.topo, Topology::Scaled { .. });
        let check = |p: &RulePack| crate::engine::shard::check(p);
        let extra: Option<&super::reload::Validate> = scaled.then_some(&check);
        let changes = self.reloader.changes(forced, &self.metrics, extra);
        if let Some(p) = &changes.rules {
            self.core.pack = p.clone();
        }
        if let Some(m) = &changes.models {
            self.core.models = m.clone();
        }
        for st in topology::shards_mut(&mut self.topo, &mut self.tasks) {
            changes.apply(st.engine_mut());
        }
    }

    /// Take what the consumer has (bounded), each record to its task.
    fn dispatch(&mut self) -> Result<()> {
        let mut polled = 0;
        let first = self.topo.poll_wait();
        let consumer = self.consumer.clone();
        for res in kafka::poll_batch(&consumer, first, POLL_MAX) {
            polled += 1;
            if let Some(a) = consumer.context().assigned.lock().expect("lock").take() {
                open::assigned(self, a)?;
                // Fetched before the assignment put every partition at its task's position:
                // the broker delivers it again if it is still wanted.
                continue;
            }
            match res {
                Ok(m) => self.handle(&m)?,
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => tracing::warn!("consumer: {e}"),
            }
        }
        self.highwater.watch(self.positions.seeking());
        if polled < POLL_MAX {
            let hw = self.highwater.clone();
            self.positions
                .check_stalls(&self.consumer, |t, p| hw.high(t, p));
        }
        Ok(())
    }

    /// One record: checked against its partition's position, then handed to its task.
    fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<()> {
        let k = (m.topic().to_string(), m.partition());
        if !self.tasks.contains_key(&k) {
            open::missing(self, &k)?;
        }
        if !self
            .positions
            .accept(&self.consumer, &k.0, k.1, m.offset())?
        {
            return Ok(()); // covered by the restored checkpoint, or seeking back to it
        }
        let started = Instant::now();
        let Runner {
            cfg,
            producer,
            deliveries,
            tasks,
            topo,
            decoder,
            d,
            fwd,
            metrics,
            ..
        } = self;
        let task = tasks.get_mut(&k).expect("opened");
        task.next_offset = Some(m.offset() + 1);
        let mut out = Out {
            cfg,
            producer,
            deliveries,
        };
        let bytes = m.payload().unwrap_or(b"");
        match &mut task.work {
            Work::Ingest(i) => {
                i.idle = false;
                i.last_msg = Instant::now();
                let on_control = k.0 == cfg.topics.control;
                match decoder.decode_input(bytes) {
                    Ok(input) if matches!(input, Input::Control(_)) == on_control => {
                        let ts = input.ts();
                        i.max_ts = Some(i.max_ts.map_or(ts, |t| t.max(ts)));
                        topo.route_input(task.src, m.offset(), input, &mut out, d, fwd)?;
                    }
                    Ok(input) => {
                        let e = misplaced(&input);
                        reject(&mut out, metrics, bytes, m, &e)?;
                    }
                    Err(e) => reject(&mut out, metrics, bytes, m, &e)?,
                }
            }
            Work::Shard(st) => {
                let dropped =
                    topology::from_stage(topo, st, &k, m.offset(), bytes, &mut out, d, fwd)?;
                metrics.repeats.inc_by(dropped);
            }
        }
        out.decisions(d)?;
        d.clear();
        metrics
            .decision_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Idle input partitions, marks downstream, outputs, metrics.
    fn tick(&mut self) -> Result<()> {
        let input = &self.cfg.topics.input;
        let ingests = || {
            self.tasks.values().filter_map(move |t| match &t.work {
                Work::Ingest(i) if t.topic == *input => Some(i),
                _ => None,
            })
        };
        let newest = ingests().filter_map(|i| i.max_ts).max();
        let inputs_idle = ingests().all(|i| i.idle);
        self.input_times.note(Instant::now(), newest);
        for t in self.tasks.values_mut() {
            let Work::Ingest(i) = &mut t.work else {
                continue;
            };
            let next = t.next_offset.unwrap_or(0);
            if i.control {
                let (hw, times) = (&self.highwater, &self.input_times);
                control_promise(hw, times, (&t.topic, t.partition, next), i, inputs_idle);
            } else if !i.idle && i.last_msg.elapsed() >= self.idle {
                i.idle = self
                    .highwater
                    .caught_up(&t.topic, t.partition, next, i.last_msg)
                    .unwrap_or(false);
                if i.idle {
                    tracing::info!("{}/{} idle at offset {next}", t.topic, t.partition);
                }
            }
        }
        let mut out = Out {
            cfg: &self.cfg,
            producer: &self.producer,
            deliveries: &self.deliveries,
        };
        self.topo.marks(
            &mut self.tasks,
            self.core.lateness,
            &mut out,
            &mut self.d,
            &mut self.fwd,
        )?;
        out.decisions(&self.d)?;
        self.d.clear();
        kafka::poll_deliveries(&self.producer, &self.deliveries);
        self.observe();
        Ok(())
    }

    /// Engine counters, state sizes, consumer lag.
    fn observe(&mut self) {
        let shards: Vec<_> = topology::shards(&self.topo, &self.tasks).collect();
        self.metrics.observe_shards(&self.core.pack, &shards);
        let inputs = self
            .tasks
            .values()
            .filter(|t| matches!(t.work, Work::Ingest(_)))
            .count();
        self.metrics.observe_tasks(inputs, &shards);
        if Instant::now() >= self.lag_due {
            self.lag_due = Instant::now() + Duration::from_secs(1);
            self.metrics.observe_locks(&shards);
            for t in self.tasks.values() {
                if t.topic != self.cfg.topics.input {
                    continue;
                }
                if let (Work::Ingest(_), Some((_, high, _))) =
                    (&t.work, self.highwater.get(&t.topic, t.partition))
                {
                    let lag = high - t.next_offset.unwrap_or(0);
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&t.partition.to_string()])
                        .set(lag.max(0));
                }
            }
        }
    }

    /// Stop: a checkpoint in flight lands, then a final one is written.
    fn shutdown(mut self) -> Result<()> {
        let events: u64 = topology::shards(&self.topo, &self.tasks)
            .map(|s| s.engine().stats().events)
            .sum();
        tracing::info!(
            "shutting down ({events} events processed, {} tasks)",
            self.tasks.len()
        );
        self.background.flush(Duration::from_secs(30))?;
        anyhow::ensure!(
            save::now(&mut self)?,
            "the final checkpoint was not written (see above); a restart resumes from the last one"
        );
        self.metrics.up.set(0);
        Ok(())
    }
}

/// A record that cannot be decoded: counted and set aside on the DLQ with its reason.
fn reject(
    out: &mut Out<'_>,
    metrics: &Metrics,
    bytes: &[u8],
    m: &BorrowedMessage<'_>,
    e: &DecodeError,
) -> Result<()> {
    metrics.rejects.with_label_values(&[e.code()]).inc();
    let source = format!("{}/{}@{}", m.topic(), m.partition(), m.offset());
    out.dlq(bytes, m.key(), e, &source)
}

/// A control record on the transactions topic, or an event on the control topic.
fn misplaced(input: &Input) -> DecodeError {
    let reason = match input {
        Input::Control(c) => format!("control record {:?} on the transactions topic", c.id),
        Input::Event(e) => format!("transaction {:?} on the control topic", e.id),
    };
    DecodeError::BadValue {
        field: "control",
        reason,
    }
}

/// Every shard task's envelope parse error is logged with where it came from.
fn unreadable(k: &(String, i32), offset: i64, e: impl std::fmt::Display) {
    tracing::warn!("unreadable record at {}/{}@{offset}: {e}", k.0, k.1);
}

/// An envelope from a stage topic.
fn envelope(k: &(String, i32), offset: i64, bytes: &[u8]) -> Option<Envelope> {
    serde_json::from_slice(bytes)
        .map_err(|e| unreadable(k, offset, e))
        .ok()
}

/// A control partition's promise, from its latest confirmed catch-up ([`promise`]); idle
/// (out of the watermark) only when caught up while every transactions partition is idle,
/// so the end of the input is not held back.
fn control_promise(
    highwater: &HighWater,
    times: &promise::InputTimes,
    (topic, partition, next): (&str, i32, i64),
    i: &mut tasks::Ingest,
    inputs_idle: bool,
) {
    if let Some(asked) = highwater.read_through(topic, partition, next) {
        if let Some(m) = times.at(asked) {
            i.floor = Some(i.floor.map_or(m, |f| f.max(m)));
        }
    }
    let caught_up = highwater.caught_up(topic, partition, next, i.last_msg);
    let idle = inputs_idle && caught_up.unwrap_or(false);
    if idle != i.idle {
        tracing::debug!("{topic}/{partition} idle: {idle} at offset {next}");
    }
    i.idle = idle;
}

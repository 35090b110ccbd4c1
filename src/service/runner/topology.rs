//! Where records go. A single instance: its input partitions feed one in-memory task that owns
//! every stage. Scale-out: the input feeds the first stage's topic, each stage shard the next
//! stage's topic (keyed by that stage's entity), and each sends its watermark downstream as
//! marks. Everything else in the loop is the same for both.

use super::tasks::{Task, Work, MARK_EVERY};
use super::{envelope, unreadable};
use crate::control::Input;
use crate::decision::Decisions;
use crate::engine::shard_task::{self, Envelope, Forward, ShardTask};
use crate::feature::Carried;
use crate::keyed::Stage;
use crate::service::out::Out;
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The shape of the work (see the module docs).
pub enum Topology {
    /// One instance: every stage in one task, fed in-process.
    Single { shard: Box<ShardTask> },
    /// Scale-out: stage topics, `shards` partitions each; `sources` input partitions
    /// (transactions and control) feed the first.
    Scaled {
        stage_topics: Vec<String>,
        sources: u32,
        shards: u32,
    },
}

impl Topology {
    /// How long a poll waits for its first record: scale-out has more hops to keep moving.
    pub fn poll_wait(&self) -> Duration {
        match self {
            Topology::Single { .. } => Duration::from_millis(50),
            Topology::Scaled { .. } => Duration::from_millis(20),
        }
    }

    /// An input (event or control record), at `offset` of input source `src`, to the first
    /// stage.
    pub fn route_input(
        &mut self,
        src: u32,
        offset: i64,
        input: Input,
        out: &mut Out<'_>,
        d: &mut Decisions,
        fwd: &mut Vec<Forward>,
    ) -> Result<()> {
        match self {
            Topology::Single { shard } => {
                let env = match input {
                    Input::Event(ev) => Envelope::Event {
                        src,
                        seq: offset as u64,
                        ev,
                        c: Carried::default(),
                    },
                    Input::Control(ctl) => Envelope::Control {
                        src,
                        seq: offset as u64,
                        ctl,
                    },
                };
                shard.accept(env, fwd, d)?;
                Ok(())
            }
            Topology::Scaled {
                stage_topics,
                shards,
                ..
            } => {
                let f = shard_task::ingest(src, offset as u64, input, *shards);
                send_forward(out, &stage_topics[0], Stage::Id, &f)
            }
        }
    }

    /// Marks downstream: each input partition's promise (and with scale-out each shard's
    /// watermark). In-process every pass; to a stage topic when it moved, at most every
    /// [`MARK_EVERY`] (at once when a partition turns idle or live).
    pub fn marks(
        &mut self,
        tasks: &mut BTreeMap<(String, i32), Task>,
        lateness: crate::time::Span,
        out: &mut Out<'_>,
        d: &mut Decisions,
        fwd: &mut Vec<Forward>,
    ) -> Result<()> {
        // Control partitions first: one that stops being idle must hold the watermark back
        // before the transactions' new marks can move it.
        let control = |t: &Task| matches!(&t.work, Work::Ingest(i) if i.control);
        let (first, rest): (Vec<&mut Task>, Vec<&mut Task>) =
            tasks.values_mut().partition(|t| control(t));
        for t in first.into_iter().chain(rest) {
            let (mark, stage) = match &t.work {
                Work::Ingest(i) => (i.mark(lateness), Stage::Id),
                Work::Shard(st) => match st.stage.and_then(Stage::next) {
                    Some(next) => (st.source_mark(), next),
                    None => (None, Stage::Card),
                },
            };
            let Some(mark) = mark else { continue };
            if t.sent == Some(mark) {
                continue;
            }
            let env = Envelope::Mark { src: t.src, mark };
            match self {
                Topology::Single { shard } => shard.accept(env, fwd, d)?,
                Topology::Scaled {
                    stage_topics,
                    shards,
                    ..
                } => {
                    let idle_flip = t.sent.map(|m| m.idle) != Some(mark.idle);
                    if !idle_flip && t.sent_at.elapsed() < MARK_EVERY {
                        continue;
                    }
                    for shard in 0..*shards {
                        let f = Forward {
                            shard,
                            env: env.clone(),
                        };
                        send_forward(out, &stage_topics[stage.index()], stage, &f)?;
                    }
                }
            }
            t.sent = Some(mark);
            t.sent_at = Instant::now();
        }
        Ok(())
    }
}

/// A record of a stage topic to its shard; what the shard passes on goes to the next stage's
/// topic. Returns how many repeats (records re-sent after an upstream restart) it dropped.
#[allow(clippy::too_many_arguments)]
pub fn from_stage(
    topo: &mut Topology,
    st: &mut ShardTask,
    k: &(String, i32),
    offset: i64,
    bytes: &[u8],
    out: &mut Out<'_>,
    d: &mut Decisions,
    fwd: &mut Vec<Forward>,
) -> Result<u64> {
    let Some(env) = envelope(k, offset, bytes) else {
        return Ok(0);
    };
    let repeats = st.repeats;
    if let Err(e) = st.accept(env, fwd, d) {
        unreadable(k, offset, e);
    }
    let dropped = st.repeats - repeats;
    let Topology::Scaled { stage_topics, .. } = topo else {
        fwd.clear();
        return Ok(dropped);
    };
    if let Some(next) = st.stage.and_then(Stage::next) {
        for f in fwd.drain(..) {
            send_forward(out, &stage_topics[next.index()], next, &f)?;
        }
    }
    Ok(dropped)
}

/// Produce one envelope to its shard of `stage`'s topic, keyed by the stage's key.
fn send_forward(out: &mut Out<'_>, topic: &str, stage: Stage, f: &Forward) -> Result<()> {
    let key = match &f.env {
        Envelope::Event { ev, .. } => stage.key(ev).to_string(),
        Envelope::Control { ctl, .. } => stage.control_key(ctl).to_string(),
        Envelope::Mark { .. } => String::new(),
    };
    let payload = serde_json::to_vec(&f.env)?;
    out.send_to(topic, f.shard as i32, key.as_bytes(), &payload, 0)
}

/// Every shard task of this instance (the single instance's one, or the stage shards it owns).
pub fn shards<'a>(
    topo: &'a Topology,
    tasks: &'a BTreeMap<(String, i32), Task>,
) -> impl Iterator<Item = &'a ShardTask> {
    let single = match topo {
        Topology::Single { shard } => Some(shard.as_ref()),
        Topology::Scaled { .. } => None,
    };
    single
        .into_iter()
        .chain(tasks.values().filter_map(|t| match &t.work {
            Work::Shard(st) => Some(st.as_ref()),
            Work::Ingest(_) => None,
        }))
}

/// [`shards`], mutably.
pub fn shards_mut<'a>(
    topo: &'a mut Topology,
    tasks: &'a mut BTreeMap<(String, i32), Task>,
) -> impl Iterator<Item = &'a mut ShardTask> {
    let single = match topo {
        Topology::Single { shard } => Some(shard.as_mut()),
        Topology::Scaled { .. } => None,
    };
    single
        .into_iter()
        .chain(tasks.values_mut().filter_map(|t| match &mut t.work {
            Work::Shard(st) => Some(st.as_mut()),
            Work::Ingest(_) => None,
        }))
}

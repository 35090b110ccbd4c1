//! The engine: the pure, synchronous core that live streaming and offline replay share.
//! Events in (in event-time order, via [`Pipeline`]), decisions out. No I/O, no clock, no
//! threads: the same input gives the same output, byte for byte.
//!
//! Per event: dedup → features from the shared books → every rule → decisions → fold the
//! event into the books → evict by event time when due.

mod control;
mod error;
pub mod order;
mod pipeline;
pub mod shard;
pub mod shard_task;
mod stats;

pub use error::{RestoreError, ShardError, Unshardable};
pub use pipeline::{Pipeline, PipelineSnapshot};
pub use stats::{ControlStats, RuleStats, Stats, TableStats};

use crate::decision::locks::{DEFAULT_ACK_TIMEOUT, DEFAULT_RETENTION};
use crate::decision::{decide, Decisions, Guard, LockBook, LockOutcome};
use crate::event::Event;
use crate::feature::Carried;
use crate::feature::Features;
use crate::keyed::{Stage, Stages};
use crate::models::features::FeatureState;
use crate::models::{Models, Scorer};
use crate::rules::exec::{self, RuleState};
use crate::rules::RulePack;
use crate::state::{Books, Retention};
use crate::time::{EventTime, Span};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Engine settings (event-time durations in ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// How far behind the newest event an event may arrive and still be processed in order.
    pub allowed_lateness: Span,
    pub retention: Retention,
    /// How often (event time) state is swept for expired entries.
    pub sweep_every: Span,
    /// Lockout guard: most lockouts per rule per minute (event time); `None` = no guard.
    pub max_lockouts_per_minute: Option<u32>,
    /// How long the switch has to acknowledge a command before it is reported (event time);
    /// 0: acknowledgements are not expected.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: Span,
    /// How long a lock record is kept after it ends.
    #[serde(default = "default_lock_retention")]
    pub lock_retention: Span,
}

fn default_ack_timeout() -> Span {
    DEFAULT_ACK_TIMEOUT
}

fn default_lock_retention() -> Span {
    DEFAULT_RETENTION
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            allowed_lateness: Span::ms(5_000),
            retention: Retention::default(),
            sweep_every: Span::MINUTE,
            max_lockouts_per_minute: Some(100),
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            lock_retention: DEFAULT_RETENTION,
        }
    }
}

/// The engine's whole state, serialisable for checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineSnapshot {
    pub version: u32,
    pub rules_digest: String,
    pub books: Books,
    pub locks: LockBook,
    #[serde(default)]
    pub guard: Guard,
    /// Rule state by rule id (so a reload keeps the state of rules that still exist).
    pub rules: BTreeMap<String, RuleState>,
    /// Stream time (none before the first input), as the bare number earlier checkpoints held.
    #[serde(with = "crate::time::opt_min")]
    pub clock: Option<EventTime>,
    #[serde(with = "crate::time::opt_min")]
    pub next_sweep: Option<EventTime>,
    pub stats: Stats,
    /// The models' streaming feature state (absent when no models were loaded).
    #[serde(default)]
    pub model_state: Option<FeatureState>,
}

/// Snapshot format version; bump on incompatible changes.
pub const SNAPSHOT_VERSION: u32 = 2;

/// Runs a rule pack over events in order. See the module docs.
pub struct Engine {
    pack: Arc<RulePack>,
    rule_state: Vec<RuleState>,
    books: Books,
    locks: LockBook,
    guard: Guard,
    stats: Stats,
    feat: Features,
    cfg: EngineConfig,
    /// Newest event time processed (none before the first input).
    clock: Option<EventTime>,
    /// When the books, locks and models are next swept (none: the first input schedules it).
    next_sweep: Option<EventTime>,
    /// Per rule: event time of its next state sweep (none: at the next sweep).
    rule_sweep: Vec<Option<EventTime>>,
    /// The statistical models and their feature state, when loaded.
    scorer: Option<Scorer>,
    /// Sees every event's model output (replay samples score distributions with it).
    tap: Option<ScoreTap>,
    /// Stream time for the late event being processed (see [`Engine::process_late`]).
    late_now: Option<EventTime>,
    /// The stages this engine runs: all (one engine) or one (a shard of scale-out).
    own: Stages,
    /// Per rule: does this engine run it (its home stage is owned).
    active: Vec<bool>,
}

/// A hook that sees what the models said about each event.
pub type ScoreTap = Box<dyn FnMut(&crate::models::ModelOut) + Send>;

impl Engine {
    pub fn new(pack: Arc<RulePack>, cfg: EngineConfig) -> Self {
        let n = pack.rules.len();
        Self {
            stats: Stats::for_pack(&pack),
            rule_state: vec![RuleState::default(); n],
            pack,
            books: Books::new(cfg.retention),
            locks: LockBook::default(),
            guard: Guard::default(),
            feat: Features::default(),
            cfg,
            clock: None,
            next_sweep: None,
            rule_sweep: vec![None; n],
            scorer: None,
            tap: None,
            late_now: None,
            own: Stages::ALL,
            active: vec![true; n],
        }
    }

    /// Run only `stage` of the sharded engine (`None`: every stage, the default). Rules whose
    /// home is another stage are not run here; see [`shard`].
    pub fn set_stage(&mut self, stage: Option<Stage>) {
        self.own = stage.map_or(Stages::ALL, Stages::only);
        self.recompute_active();
    }

    fn recompute_active(&mut self) {
        let own = self.own;
        self.active = self
            .pack
            .rules
            .iter()
            .map(|r| own.is_all() || shard::home(r).is_ok_and(|h| own.has(h)))
            .collect();
    }

    /// Call `tap` with the model output of every event scored from now on.
    pub fn set_score_tap(&mut self, tap: Option<ScoreTap>) {
        self.tap = tap;
    }

    /// Score events with `models` from now on (`None`: rules only). The feature state is kept
    /// across a swap: it describes the traffic, not the model.
    pub fn set_models(&mut self, models: Option<Arc<Models>>) {
        let state = self.scorer.take().map(|s| s.state).unwrap_or_default();
        self.scorer = models
            .filter(|m| !m.is_empty())
            .map(|m| Scorer::with_state(m, state));
        self.feat.model = Default::default();
    }

    pub fn models(&self) -> Option<&Arc<Models>> {
        self.scorer.as_ref().map(|s| &s.models)
    }

    /// The live sample of the models' inputs, for drift (PSI against training).
    pub fn model_drift(&self) -> Option<&crate::models::drift::Drift> {
        self.scorer.as_ref().map(|s| s.drift())
    }

    /// The features of the last event processed (tests compare them with the batch side).
    pub fn last_features(&self) -> &Features {
        &self.feat
    }

    pub fn pack(&self) -> &Arc<RulePack> {
        &self.pack
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Every lock record (README "Lock records").
    pub fn locks(&self) -> &LockBook {
        &self.locks
    }

    /// Stream time: the newest event or control time processed (none before the first).
    pub fn clock(&self) -> Option<EventTime> {
        self.clock
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Process one event; decisions are appended to `out`.
    pub fn process(&mut self, ev: &Event, out: &mut Decisions) {
        self.process_inner(ev, None, out);
    }

    /// Process one event that arrived behind the watermark `watermark` (late): decisions are
    /// taken at stream time, so a lock it triggers runs from the watermark, not from the
    /// event's own, older, time.
    pub fn process_late(&mut self, ev: &Event, watermark: EventTime, out: &mut Decisions) {
        self.late_now = Some(watermark);
        self.process_inner(ev, None, out);
        self.late_now = None;
    }

    fn process_inner(
        &mut self,
        ev: &Event,
        carried: Option<&mut Carried>,
        out: &mut Decisions,
    ) -> bool {
        if self.own.has(Stage::Id) {
            if !self.books.first_sighting(ev) {
                self.stats.duplicates += 1;
                return false;
            }
            self.stats.count_event(ev);
        }
        if let Some(c) = carried.as_deref() {
            c.fill(&mut self.feat);
        }
        crate::feature::join(&self.books, ev, &mut self.feat, self.own);
        if let Some(s) = &mut self.scorer {
            s.score(ev, &mut self.feat.model, self.own);
            if let Some(t) = &mut self.tap {
                t(&self.feat.model);
            }
        }
        let facts = crate::rules::facts::of_event(ev, &self.feat);
        let misses = std::cell::Cell::new(0u64);
        for (i, rule) in self.pack.rules.iter().enumerate() {
            if facts & !rule.facts != 0 || !self.active[i] {
                continue;
            }
            if let Some(hit) = exec::eval(rule, &mut self.rule_state[i], ev, &self.feat, &misses) {
                let before = out.alerts.len();
                let now = self.stream_time(ev.ts);
                let cx = crate::decision::decide::Ctx {
                    locks: &mut self.locks,
                    guard: &mut self.guard,
                    limit: self.cfg.max_lockouts_per_minute,
                    now,
                    ack_timeout: self.cfg.ack_timeout,
                };
                let outcome = decide(rule, hit, ev, &self.feat, cx, out);
                if out.alerts.len() - before > 1 {
                    // The guard's own critical alert.
                    self.stats.guard_alerts += 1;
                    self.stats.alerts_by_severity[crate::rules::Severity::Critical as usize] += 1;
                }
                let rs = &mut self.stats.rules[i];
                match rule.mode {
                    crate::rules::Mode::Shadow => rs.shadow += 1,
                    _ => rs.enforce += 1,
                }
                match outcome {
                    LockOutcome::Issued => rs.lockouts += 1,
                    LockOutcome::AlreadyLocked => rs.already_locked += 1,
                    LockOutcome::HeldByGuard => rs.held_by_guard += 1,
                    _ => {}
                }
                self.stats.alerts_by_severity[rule.severity as usize] += 1;
            }
        }
        self.stats.count_table_defaults(misses.get());
        self.books.update(ev, self.own);
        self.tick(ev.ts);
        if let Some(c) = carried {
            c.take(&self.feat);
        }
        true
    }

    /// The time a decision on an input stamped `ts` is taken at: the stream time, which a
    /// late input (behind the watermark) does not move back.
    fn stream_time(&self, ts: EventTime) -> EventTime {
        let t = self.late_now.unwrap_or(ts);
        self.clock.map_or(t, |c| t.max(c))
    }

    /// An input stamped `ts` was processed: move the clock on, and sweep when one is due.
    fn tick(&mut self, ts: EventTime) {
        let now = self.clock.map_or(ts, |c| c.max(ts));
        self.clock = Some(now);
        if self.next_sweep.is_none_or(|n| now >= n) {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: EventTime) {
        if self.next_sweep.is_some() {
            self.books.evict(now);
            self.locks.evict(now, self.cfg.lock_retention);
            self.guard.evict(now);
            if let Some(s) = &mut self.scorer {
                s.evict(now);
            }
            for (i, rule) in self.pack.rules.iter().enumerate() {
                let horizon = exec::horizon(rule) + self.cfg.allowed_lateness;
                if self.rule_sweep[i].is_none_or(|t| now >= t) {
                    self.rule_state[i].evict(now, horizon);
                    self.rule_sweep[i] = Some(now + crate::keyed::sweep_interval(horizon));
                }
            }
        }
        self.next_sweep = Some(now + self.cfg.sweep_every);
    }

    /// Entries held, by kind (for metrics and the memory benchmark).
    pub fn state_sizes(&self) -> BTreeMap<&'static str, usize> {
        let b = self.books.sizes();
        let rules: usize = self.rule_state.iter().map(RuleState::len).sum();
        BTreeMap::from([
            ("dedup", b.dedup),
            ("preauth", b.preauths),
            ("qr", b.qr),
            ("terminal", b.terminals),
            ("lock", self.locks.len()),
            ("rule_keys", rules),
            (
                "model_entities",
                self.scorer.as_ref().map_or(0, |s| s.state.len()),
            ),
        ])
    }

    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot {
            version: SNAPSHOT_VERSION,
            rules_digest: self.pack.digest.clone(),
            books: self.books.clone(),
            locks: self.locks.clone(),
            guard: self.guard.clone(),
            rules: self
                .pack
                .rules
                .iter()
                .zip(&self.rule_state)
                .map(|(r, s)| (r.id.to_string(), s.clone()))
                .collect(),
            clock: self.clock,
            next_sweep: self.next_sweep,
            stats: self.stats.clone(),
            model_state: self.scorer.as_ref().map(|s| s.state.clone()),
        }
    }

    /// Rebuild an engine from a snapshot, with `pack` (which may differ: rules that kept their
    /// id keep their state, new rules start empty).
    pub fn restore(
        pack: Arc<RulePack>,
        cfg: EngineConfig,
        snap: EngineSnapshot,
    ) -> Result<Self, RestoreError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version {
                found: snap.version,
                expected: SNAPSHOT_VERSION,
            });
        }
        let mut e = Engine::new(pack, cfg);
        let mut rules = snap.rules;
        e.rule_state = e
            .pack
            .rules
            .iter()
            .map(|r| rules.remove(r.id.as_str()).unwrap_or_default())
            .collect();
        e.books = snap.books;
        e.books.retention = cfg.retention;
        e.locks = snap.locks;
        e.guard = snap.guard;
        e.clock = snap.clock;
        e.next_sweep = snap.next_sweep;
        e.stats.merge_from(&snap.stats);
        if let Some(state) = snap.model_state {
            e.scorer = Some(Scorer::with_state(Arc::new(Models::default()), state));
        }
        Ok(e)
    }

    /// Swap in a new rule pack, keeping state of rules whose id is unchanged.
    pub fn set_rules(&mut self, pack: Arc<RulePack>) {
        let mut old: BTreeMap<String, RuleState> = self
            .pack
            .rules
            .iter()
            .zip(std::mem::take(&mut self.rule_state))
            .map(|(r, s)| (r.id.to_string(), s))
            .collect();
        self.rule_state = pack
            .rules
            .iter()
            .map(|r| old.remove(r.id.as_str()).unwrap_or_default())
            .collect();
        self.rule_sweep = vec![None; pack.rules.len()];
        let old_stats = std::mem::replace(&mut self.stats, Stats::for_pack(&pack));
        self.stats.merge_from(&old_stats);
        self.pack = pack;
        self.recompute_active();
    }
}

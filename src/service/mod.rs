//! The streaming service (`switchguard run`): Kafka in, alerts and lockout commands out.
//!
//! One loop on one thread ([`runner`]), for a single instance and for scale-out alike: poll
//! → decode (rejects to the DLQ with the original bytes and the reason in headers) → the
//! engine, behind the event-time ordering replay uses, its watermark the minimum over the
//! input partitions' promises → alerts (keyed by entity) and commands (keyed by target) →
//! checkpoint.
//!
//! Checkpoint order: every output acknowledged → the state (with the input offsets it covers)
//! to the compacted state topic → offsets committed. On start the newest checkpoint is
//! restored and consumption resumes at *its* offsets, so a crash at any point re-emits only
//! byte-identical records (deterministic ids). With `exactly_once = true` outputs, checkpoint
//! and offsets go in one Kafka transaction instead.
//!
//! - [`config`]: the settings; [`kafka`]: clients; [`out`]: what is produced;
//! - [`positions`]: input positions checked record by record; [`highwater`]: lag and idleness;
//! - [`checkpoint`], [`background`], [`checkpoint_health`]: the state topic;
//! - [`metrics`], [`health`]: the HTTP endpoint; [`reload`]: rules and models live.

pub mod background;
pub mod checkpoint;
pub mod checkpoint_health;
pub mod config;
pub mod health;
mod highwater;
pub mod kafka;
mod lock_view;
pub mod metrics;
mod out;
pub mod positions;
mod reload;
pub mod runner;

use crate::engine::EngineConfig;
use anyhow::Result;
use checkpoint_health::CheckpointHealth;
use config::RunConfig;
use health::Health;
use metrics::Metrics;
use positions::Positions;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Flags the outside world sets: stop (SIGTERM/SIGINT), reload rules (SIGHUP).
#[derive(Clone, Default)]
pub struct Signals {
    pub shutdown: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
}

impl Signals {
    /// Hook SIGTERM, SIGINT and SIGHUP to the flags.
    pub fn install() -> Result<Self> {
        let s = Self::default();
        signal_hook::flag::register(signal_hook::consts::SIGTERM, s.shutdown.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, s.shutdown.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.reload.clone())?;
        Ok(s)
    }
}

/// What the runner starts with: the metrics endpoint (not ready yet), the parsed timings, the
/// engine settings, and the watchers of input positions and checkpoints.
pub struct Start {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub lateness: crate::time::Span,
    pub idle: Duration,
    pub every: Duration,
    pub checkpoint_timeout: Duration,
    pub engine_cfg: EngineConfig,
    pub positions: Positions,
    pub checkpoints: CheckpointHealth,
}

impl Start {
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let t = cfg.timings();
        let metrics = Metrics::new();
        let health = Arc::new(Health::default());
        let addr = metrics::serve(&cfg.metrics_addr, metrics.clone(), health.clone())?;
        tracing::info!("metrics on http://{addr}/metrics");
        Ok(Self {
            positions: Positions::new(cfg.on_offset_gap, metrics.clone(), health.clone()),
            checkpoints: CheckpointHealth::new(
                cfg.max_checkpoint_failures,
                metrics.clone(),
                health.clone(),
            ),
            metrics,
            health,
            lateness: t.lateness,
            idle: t.idle,
            every: t.checkpoint_every,
            checkpoint_timeout: t.checkpoint_timeout,
            engine_cfg: EngineConfig {
                allowed_lateness: t.lateness,
                max_lockouts_per_minute: (cfg.max_lockouts_per_minute > 0)
                    .then_some(cfg.max_lockouts_per_minute),
                ack_timeout: t.ack_timeout,
                lock_retention: t.lock_retention,
                ..EngineConfig::default()
            },
        })
    }
}

/// Run until `signals.shutdown`; returns after a final checkpoint.
pub fn run(cfg: RunConfig, tokenizer: crate::decode::Tokenizer, signals: Signals) -> Result<()> {
    runner::run(cfg, tokenizer, signals)
}

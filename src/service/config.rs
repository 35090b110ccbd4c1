//! `switchguard run` settings: a serde type (TOML file) with defaults, overridden by
//! environment variables and flags (clap reads both), plus librdkafka properties passed through
//! with `-X key=value`, as kcat does.

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Topic names.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    pub input: String,
    pub alerts: String,
    pub commands: String,
    pub dlq: String,
    /// Compacted topic holding the engine checkpoints.
    pub state: String,
    /// Control records from the switch and the risk team (README "Control records"),
    /// merged with the transactions by event time.
    pub control: String,
    /// The events behind each alert, for the risk console.
    pub evidence: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            input: "switch.transactions".into(),
            alerts: "risk.alerts".into(),
            commands: "switch.commands".into(),
            dlq: "switch.transactions.dlq".into(),
            state: "switchguard.state".into(),
            control: "switch.control".into(),
            evidence: "risk.evidence".into(),
        }
    }
}

/// Everything `run` needs. Field docs are the user documentation (README "Configuration").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub brokers: String,
    pub group: String,
    pub metrics_addr: String,
    pub rules: PathBuf,
    /// Model files (`switchguard train`); none or refused: rules alone. Reloaded with the rules.
    pub models: PathBuf,
    pub topics: Topics,
    /// Partitions for topics this service creates.
    pub partitions: i32,
    pub replication: i32,
    /// Allowed lateness within a partition (event time), e.g. "100ms".
    pub allowed_lateness: String,
    /// A partition with no message for this long (wall clock) while caught up stops holding
    /// the watermark back.
    pub idle_timeout: String,
    /// Wall-clock interval between checkpoints.
    pub checkpoint_interval: String,
    /// A checkpoint not acknowledged this long after its snapshot counts as failed (and again
    /// every further `checkpoint_timeout`).
    pub checkpoint_timeout: String,
    /// Readiness is withdrawn after this many checkpoint failures in a row (0: never).
    pub max_checkpoint_failures: u32,
    /// What a genuine gap in a consumed partition's offsets does besides its metric and log
    /// line: `log`, `unready` or `stop`.
    pub on_offset_gap: super::positions::GapPolicy,
    /// Commit outputs, checkpoint and offsets in one Kafka transaction.
    pub exactly_once: bool,
    /// Share the work with every instance of the group: the input is repartitioned through
    /// internal stage topics keyed by id, auth_ref, qr_ref, terminal, merchant and card.
    /// Off: this instance reads every input partition itself.
    pub scale_out: bool,
    /// Partitions of each internal stage topic (0: `partitions`); fixed for the group's life.
    pub stage_partitions: i32,
    /// Lockout guard: most lockouts per rule per minute; 0 disables the guard.
    pub max_lockouts_per_minute: u32,
    /// How long (event time) the switch has to acknowledge a command before the alert
    /// `command_unacknowledged`; "0" when the switch sends no acknowledgements.
    pub ack_timeout: String,
    /// How long a lock record is kept after it is released or expires.
    pub lock_retention: String,
    /// PAN tokenisation key file (else SWITCHGUARD_TOKEN_KEY). Without either the service
    /// refuses to start, unless `allow_dev_key` (tokens are then not secret).
    pub token_key_file: Option<PathBuf>,
    /// Run on the public development key when no key is configured (demos and tests only).
    pub allow_dev_key: bool,
    /// librdkafka properties for every client (`-X` adds to these).
    pub kafka: BTreeMap<String, String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            group: "switchguard".into(),
            metrics_addr: "127.0.0.1:9464".into(),
            rules: PathBuf::from("rules"),
            models: PathBuf::from("models"),
            topics: Topics::default(),
            partitions: 4,
            replication: 1,
            allowed_lateness: "100ms".into(),
            idle_timeout: "1s".into(),
            checkpoint_interval: "1s".into(),
            checkpoint_timeout: "10s".into(),
            max_checkpoint_failures: 3,
            on_offset_gap: super::positions::GapPolicy::Log,
            exactly_once: false,
            scale_out: false,
            stage_partitions: 0,
            max_lockouts_per_minute: 100,
            ack_timeout: "30s".into(),
            lock_retention: "30d".into(),
            token_key_file: None,
            allow_dev_key: false,
            kafka: BTreeMap::new(),
        }
    }
}

/// Flags of `switchguard run`; each also reads an environment variable.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// TOML config file (see README); flags and environment override it.
    #[arg(long, env = "SWITCHGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "SWITCHGUARD_BROKERS")]
    pub brokers: Option<String>,
    #[arg(long, env = "SWITCHGUARD_GROUP")]
    pub group: Option<String>,
    #[arg(long, env = "SWITCHGUARD_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    #[arg(long, env = "SWITCHGUARD_RULES")]
    pub rules: Option<PathBuf>,
    #[arg(long, env = "SWITCHGUARD_MODELS")]
    pub models: Option<PathBuf>,
    #[arg(long, env = "SWITCHGUARD_INPUT_TOPIC")]
    pub input_topic: Option<String>,
    #[arg(long, env = "SWITCHGUARD_STATE_TOPIC")]
    pub state_topic: Option<String>,
    #[arg(long, env = "SWITCHGUARD_ALLOWED_LATENESS")]
    pub allowed_lateness: Option<String>,
    #[arg(long, env = "SWITCHGUARD_CHECKPOINT_INTERVAL")]
    pub checkpoint_interval: Option<String>,
    #[arg(long, env = "SWITCHGUARD_EXACTLY_ONCE")]
    pub exactly_once: Option<bool>,
    /// Scale out over every instance of the group (see README "Scaling out").
    #[arg(long, env = "SWITCHGUARD_SCALE_OUT")]
    pub scale_out: Option<bool>,
    #[arg(long, env = "SWITCHGUARD_MAX_LOCKOUTS_PER_MINUTE")]
    pub max_lockouts_per_minute: Option<u32>,
    #[arg(long, env = "SWITCHGUARD_ACK_TIMEOUT")]
    pub ack_timeout: Option<String>,
    #[arg(long, env = "SWITCHGUARD_CONTROL_TOPIC")]
    pub control_topic: Option<String>,
    #[arg(long, env = "SWITCHGUARD_TOKEN_KEY_FILE")]
    pub token_key_file: Option<PathBuf>,
    /// Run on the public development key when no key is configured (tokens are then not
    /// secret; for demos and tests).
    #[arg(long, env = "SWITCHGUARD_ALLOW_DEV_KEY")]
    pub allow_dev_key: Option<bool>,
    /// A librdkafka property, e.g. `-X security.protocol=SASL_SSL` (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
}

impl RunArgs {
    /// Defaults < file < environment / flags.
    pub fn resolve(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => RunConfig::default(),
        };
        macro_rules! set {
            ($field:ident, $val:expr) => {
                if let Some(v) = $val.clone() {
                    c.$field = v;
                }
            };
        }
        set!(brokers, self.brokers);
        set!(group, self.group);
        set!(metrics_addr, self.metrics_addr);
        set!(rules, self.rules);
        set!(models, self.models);
        set!(allowed_lateness, self.allowed_lateness);
        set!(checkpoint_interval, self.checkpoint_interval);
        set!(exactly_once, self.exactly_once);
        set!(scale_out, self.scale_out);
        set!(max_lockouts_per_minute, self.max_lockouts_per_minute);
        set!(allow_dev_key, self.allow_dev_key);
        set!(ack_timeout, self.ack_timeout);
        if let Some(t) = &self.control_topic {
            c.topics.control = t.clone();
        }
        if let Some(t) = &self.input_topic {
            c.topics.input = t.clone();
        }
        if let Some(t) = &self.state_topic {
            c.topics.state = t.clone();
        }
        if self.token_key_file.is_some() {
            c.token_key_file = self.token_key_file.clone();
        }
        for kv in &self.kafka {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("-X {kv}: expected KEY=VALUE"))?;
            c.kafka.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(c)
    }
}

/// The duration settings, parsed.
pub struct Timings {
    /// Event time, ms.
    pub lateness: i64,
    pub idle: std::time::Duration,
    pub checkpoint_every: std::time::Duration,
    pub checkpoint_timeout: std::time::Duration,
    /// Event time, ms (0: acknowledgements not expected).
    pub ack_timeout: i64,
    pub lock_retention: i64,
}

impl RunConfig {
    /// Parse `allowed_lateness`, `idle_timeout` and `checkpoint_interval`.
    pub fn timings(&self) -> Result<Timings> {
        let wall = |s: &str, what: &str| {
            Self::ms(s, what).map(|ms| std::time::Duration::from_millis(ms.max(0) as u64))
        };
        Ok(Timings {
            lateness: Self::ms(&self.allowed_lateness, "allowed_lateness")?,
            idle: wall(&self.idle_timeout, "idle_timeout")?,
            checkpoint_every: wall(&self.checkpoint_interval, "checkpoint_interval")?,
            checkpoint_timeout: wall(&self.checkpoint_timeout, "checkpoint_timeout")?,
            ack_timeout: match self.ack_timeout.trim() {
                "0" => 0,
                t => Self::ms(t, "ack_timeout")?,
            },
            lock_retention: Self::ms(&self.lock_retention, "lock_retention")?,
        })
    }

    pub fn ms(s: &str, what: &str) -> Result<i64> {
        crate::rules::compile::duration_ms(s).map_err(|e| anyhow::anyhow!("{what}: {e}"))
    }
}

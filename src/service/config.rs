//! `switchguard run` settings: a serde type (TOML file) with defaults, overridden by
//! environment variables and flags (clap reads both), plus librdkafka properties passed through
//! with `-X key=value`, as kcat does.

use crate::time::Span;
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
    /// Allowed lateness within a partition (event time), e.g. "100ms". Durations are written
    /// as text (`90s`, `10m`, `24h`) and held in milliseconds, parsed when the config loads.
    #[serde(deserialize_with = "durations::allowed_lateness")]
    pub allowed_lateness: Span,
    /// A partition with no message for this long (wall clock) while caught up stops holding
    /// the watermark back.
    #[serde(deserialize_with = "durations::idle_timeout")]
    pub idle_timeout: Span,
    /// Wall-clock interval between checkpoints.
    #[serde(deserialize_with = "durations::checkpoint_interval")]
    pub checkpoint_interval: Span,
    /// A checkpoint not acknowledged this long after its snapshot counts as failed (and again
    /// every further `checkpoint_timeout`).
    #[serde(deserialize_with = "durations::checkpoint_timeout")]
    pub checkpoint_timeout: Span,
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
    /// `command_unacknowledged`; "0" (0 here) when the switch sends no acknowledgements.
    #[serde(deserialize_with = "durations::ack_timeout")]
    pub ack_timeout: Span,
    /// How long a lock record is kept after it is released or expires.
    #[serde(deserialize_with = "durations::lock_retention")]
    pub lock_retention: Span,
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
            allowed_lateness: Span::ms(100),
            idle_timeout: Span::SECOND,
            checkpoint_interval: Span::SECOND,
            checkpoint_timeout: Span::ms(10_000),
            max_checkpoint_failures: 3,
            on_offset_gap: super::positions::GapPolicy::Log,
            exactly_once: false,
            scale_out: false,
            stage_partitions: 0,
            max_lockouts_per_minute: 100,
            ack_timeout: Span::ms(30_000),
            lock_retention: Span::days(30),
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
    #[arg(long, env = "SWITCHGUARD_ALLOWED_LATENESS", value_parser = durations::flag)]
    pub allowed_lateness: Option<Span>,
    #[arg(long, env = "SWITCHGUARD_CHECKPOINT_INTERVAL", value_parser = durations::flag)]
    pub checkpoint_interval: Option<Span>,
    #[arg(long, env = "SWITCHGUARD_EXACTLY_ONCE")]
    pub exactly_once: Option<bool>,
    /// Scale out over every instance of the group (see README "Scaling out").
    #[arg(long, env = "SWITCHGUARD_SCALE_OUT")]
    pub scale_out: Option<bool>,
    #[arg(long, env = "SWITCHGUARD_MAX_LOCKOUTS_PER_MINUTE")]
    pub max_lockouts_per_minute: Option<u32>,
    #[arg(long, env = "SWITCHGUARD_ACK_TIMEOUT", value_parser = durations::ack_flag)]
    pub ack_timeout: Option<Span>,
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

/// The duration settings, as the service uses them.
pub struct Timings {
    /// Event time.
    pub lateness: Span,
    pub idle: std::time::Duration,
    pub checkpoint_every: std::time::Duration,
    pub checkpoint_timeout: std::time::Duration,
    /// Event time (0: acknowledgements not expected).
    pub ack_timeout: Span,
    pub lock_retention: Span,
}

impl RunConfig {
    /// The durations (parsed when the config loaded), the wall-clock ones as [`Duration`]s.
    ///
    /// [`Duration`]: std::time::Duration
    pub fn timings(&self) -> Timings {
        Timings {
            lateness: self.allowed_lateness,
            idle: self.idle_timeout.to_std(),
            checkpoint_every: self.checkpoint_interval.to_std(),
            checkpoint_timeout: self.checkpoint_timeout.to_std(),
            ack_timeout: self.ack_timeout,
            lock_retention: self.lock_retention,
        }
    }
}

/// Duration settings parsed when the config loads, with the parser rules use
/// ([`crate::rules::duration`]): a bad value in the file is refused with its key's name (and
/// toml's line and column), a bad flag or environment value by clap with the flag's name.
pub(crate) mod durations {
    use crate::rules::duration::DurationError;
    use crate::time::Span;
    use serde::{de::Error, Deserialize, Deserializer};

    /// `s` in milliseconds; `"0"` is 0 where `zero` allows it (no unit needed for none).
    fn parse(s: &str, zero: bool) -> Result<Span, DurationError> {
        if zero && s.trim() == "0" {
            return Ok(Span::ZERO);
        }
        crate::rules::duration::span(s)
    }

    fn field<'de, D: Deserializer<'de>>(d: D, key: &str, zero: bool) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s, zero).map_err(|e| D::Error::custom(format!("{key}: {e}")))
    }

    macro_rules! fields {
        ($($name:ident: $zero:expr),*) => {$(
            pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
                field(d, stringify!($name), $zero)
            }
        )*};
    }
    fields!(
        allowed_lateness: false,
        idle_timeout: false,
        checkpoint_interval: false,
        checkpoint_timeout: false,
        ack_timeout: true,
        lock_retention: false
    );

    /// A duration flag (`--allowed-lateness 100ms`).
    pub fn flag(s: &str) -> Result<Span, DurationError> {
        parse(s, false)
    }

    /// `--ack-timeout`: a duration, or 0.
    pub fn ack_flag(s: &str) -> Result<Span, DurationError> {
        parse(s, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_parsed_when_the_config_loads() {
        let c: RunConfig = toml::from_str(
            "allowed_lateness = \"250ms\"\nack_timeout = \"0\"\nlock_retention = \"2d\"",
        )
        .unwrap();
        assert_eq!(c.allowed_lateness, Span::ms(250));
        assert_eq!(c.ack_timeout, Span::ZERO);
        assert_eq!(c.lock_retention, Span::days(2));
        assert_eq!(c.idle_timeout, RunConfig::default().idle_timeout);
        let t = RunConfig::default().timings();
        assert_eq!(t.checkpoint_every, std::time::Duration::from_secs(1));
        assert_eq!(t.lock_retention, Span::days(30));
        for (text, key) in [
            ("idle_timeout = \"ten\"", "idle_timeout: bad duration"),
            (
                "checkpoint_timeout = \"400d\"",
                "checkpoint_timeout: duration",
            ),
            (
                "\n\nallowed_lateness = \"-5s\"",
                "allowed_lateness: bad duration",
            ),
        ] {
            let e = toml::from_str::<RunConfig>(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
            let line = text.lines().count();
            assert!(e.contains(&format!("line {line}")), "{text}: {e}");
        }
    }
}

//! The command line (clap derive: typed flags, env fallbacks, generated help) and the commands.

mod bench_kafka;
pub mod cases;
mod demo;
pub mod evaluate;
pub mod flags;
pub mod locks;
pub mod replay;
mod rules_cmd;
mod run;
pub(crate) mod simulate;
pub mod train;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Fraud and anomaly detection beside a card payment switch.
#[derive(Debug, Parser)]
#[command(name = "switchguard", version, about)]
pub struct Cli {
    /// Log lines as human text or JSON (every line masked either way).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "SWITCHGUARD_LOG_FORMAT"
    )]
    pub log_format: crate::telemetry::LogFormat,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Replay history files through the engine and write alerts, commands, rejects, report.
    Replay(replay::ReplayArgs),
    /// Write realistic switch traffic with labelled attacks (JSONL or Parquet by extension).
    Simulate(simulate::SimulateArgs),
    /// Validate rule files, or run their example cases.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// The streaming service: Kafka in, alerts and lockout commands out.
    Run(crate::service::config::RunArgs),
    /// The main job on an embedded default: an in-process Kafka cluster, the simulator as the
    /// switch, the service, live alerts and lockouts, metrics. Needs no external service.
    Demo(demo::DemoArgs),
    /// Fit the statistical models on history and write them (with model cards) to `models/`.
    Train(train::TrainArgs),
    /// Streaming benchmark against a real broker: throughput and lockout latency at fixed rates.
    BenchKafka(bench_kafka::BenchArgs),
    /// The risk team's console: alert inbox, cases, lock actions, labels for training.
    Console(crate::console::ConsoleArgs),
    /// Lock records (who locked what, why, until when, the switch's answer, the release) from
    /// a replay's output directory or a running service.
    Locks(locks::LocksArgs),
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Report every problem in every rule file at once.
    Check {
        dir: Option<PathBuf>,
        /// Also report rules the scale-out service cannot run (see README "Scaling out").
        #[arg(long)]
        scale_out: bool,
    },
    /// Run the example cases embedded in the rule files.
    Test {
        dir: Option<PathBuf>,
        /// Models for the rules that read model scores.
        #[arg(long, default_value = "models", env = "SWITCHGUARD_MODELS")]
        models: PathBuf,
    },
}

/// Engine settings shared by commands that run the engine.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Rules directory.
    #[arg(long, default_value = "rules", env = "SWITCHGUARD_RULES")]
    pub rules: PathBuf,
    /// Allowed lateness of out-of-order events (event time), e.g. 5s.
    #[arg(long, default_value = "5s", env = "SWITCHGUARD_ALLOWED_LATENESS",
          value_parser = crate::service::config::durations::flag)]
    pub lateness: crate::time::Span,
    /// Models directory (a model set from `switchguard train`), or `none` for rules alone. A
    /// directory that does not exist, holds no set or a bad one is reported loudly and the
    /// command runs on rules alone (`run` refuses to start instead).
    #[arg(long, default_value = "models", env = "SWITCHGUARD_MODELS")]
    pub models: PathBuf,
    /// File holding the PAN tokenisation key (HMAC-SHA256). Also SWITCHGUARD_TOKEN_KEY.
    #[arg(long, env = "SWITCHGUARD_TOKEN_KEY_FILE")]
    pub token_key_file: Option<PathBuf>,
    /// How long (event time) the switch has to acknowledge a command before the alert
    /// `command_unacknowledged`; 0 when the switch sends no acknowledgements.
    #[arg(long, default_value = "30s", env = "SWITCHGUARD_ACK_TIMEOUT",
          value_parser = crate::service::config::durations::ack_flag)]
    pub ack_timeout: crate::time::Span,
}

impl EngineArgs {
    /// The tokenisation key (see [`crate::pan::load_key`]); without one, the public
    /// development key with a warning. Any problem with a configured key is an error.
    pub fn tokenizer(&self) -> Result<crate::decode::Tokenizer> {
        self.tokenizer_or(true)
    }

    /// As [`EngineArgs::tokenizer`]; without a key, an error unless `allow_dev`.
    pub fn tokenizer_or(&self, allow_dev: bool) -> Result<crate::decode::Tokenizer> {
        tokenizer_or(self.token_key_file.as_deref(), allow_dev)
    }

    pub fn engine_config(&self) -> Result<crate::engine::EngineConfig> {
        Ok(crate::engine::EngineConfig {
            allowed_lateness: self.lateness,
            ack_timeout: self.ack_timeout,
            ..Default::default()
        })
    }
}

/// The tokenisation key of `key_file` or SWITCHGUARD_TOKEN_KEY; without a key, an error
/// unless `allow_dev`.
pub fn tokenizer_or(
    key_file: Option<&std::path::Path>,
    allow_dev: bool,
) -> Result<crate::decode::Tokenizer> {
    use crate::pan::{load_key, KeySource};
    let env = std::env::var_os("SWITCHGUARD_TOKEN_KEY");
    match load_key(key_file, env)? {
        KeySource::Key(t) => Ok(t),
        KeySource::Missing if allow_dev => {
            tracing::warn!("no tokenisation key configured (SWITCHGUARD_TOKEN_KEY or --token-key-file); using the public development key: tokens are not secret");
            Ok(crate::decode::Tokenizer::default())
        }
        KeySource::Missing => anyhow::bail!(
            "no tokenisation key configured: set SWITCHGUARD_TOKEN_KEY or token_key_file \
                 (the switch must hold the same key to map lock targets back), or \
                 allow_dev_key = true to run on the public development key"
        ),
    }
}

/// Load the models in `dir` for a command: `None` (rules only) when asked (`none`), or when
/// there are none or they are refused, with a loud warning naming the problem; the command
/// carries on with its rules.
pub fn load_models(dir: &std::path::Path) -> Option<std::sync::Arc<crate::models::Models>> {
    crate::models::Models::load_or_rules_alone(dir)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init(cli.log_format);
    let res = match cli.command {
        Cmd::Replay(a) => replay::command(a),
        Cmd::Simulate(a) => simulate::command(a),
        Cmd::Rules { action } => rules_cmd::command(action),
        Cmd::Run(a) => run::command(a),
        Cmd::Demo(a) => demo::command(a),
        Cmd::BenchKafka(a) => bench_kafka::command(a),
        Cmd::Train(a) => train::command(a),
        Cmd::Console(a) => crate::console::command(a),
        Cmd::Locks(a) => locks::command(a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            // Errors may quote input (a file name, a cell, a rule line): masked like any line.
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
    }
}

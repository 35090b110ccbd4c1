//! `switchguard run`: the streaming service against a real Kafka cluster.

use crate::service::{self, config::RunArgs, Signals};
use anyhow::Result;
use std::process::ExitCode;

pub fn command(a: RunArgs) -> Result<ExitCode> {
    let cfg = a.resolve()?;
    let engine = super::EngineArgs {
        rules: cfg.rules.clone(),
        models: cfg.models.clone(),
        lateness: cfg.allowed_lateness.clone(),
        token_key_file: cfg.token_key_file.clone(),
        ack_timeout: cfg.ack_timeout.clone(),
    };
    let tokenizer = engine.tokenizer_or(cfg.allow_dev_key)?;
    service::run(cfg, tokenizer, Signals::install()?)?;
    Ok(ExitCode::SUCCESS)
}

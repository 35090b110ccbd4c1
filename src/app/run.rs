//! `switchguard run`: the streaming service against a real Kafka cluster.

use crate::service::{self, config::RunArgs, Signals};
use anyhow::Result;
use std::process::ExitCode;

pub fn command(a: RunArgs) -> Result<ExitCode> {
    let cfg = a.resolve()?;
    let tokenizer = super::tokenizer_or(cfg.token_key_file.as_deref(), cfg.allow_dev_key)?;
    service::run(cfg, tokenizer, Signals::install()?)?;
    Ok(ExitCode::SUCCESS)
}

//! `switchguard demo`: the main job on an embedded default, in one process with no external
//! service: an in-process Kafka cluster (librdkafka's mock cluster), the simulator playing the
//! switch (traffic in; acknowledgements of the commands out, some rejected, some never) and an
//! analyst (releasing some locks), the streaming service, the risk console, live output of
//! alerts and commands, the lock records at the end, and the metrics endpoint. `--offline`
//! instead simulates to a file and replays it, then replays it again with the switch's and the
//! analyst's answers as control records.
//!
//! - [`live`]: the embedded run; [`view`]: what it prints; [`offline`]: the replay run.

mod live;
mod offline;
mod view;

use super::EngineArgs;
use crate::sim::SimConfig;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Where the demo writes its files.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2_000)]
    pub cards: usize,
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
    /// Simulate to a file and replay it instead of streaming through embedded Kafka.
    #[arg(long)]
    pub offline: bool,
    /// Address of the risk console the demo starts ("none": no console).
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub console: String,
    /// After the stream, keep the console up until Ctrl-C (default: when on a terminal).
    #[arg(long)]
    pub linger: Option<bool>,
}

fn sim_config(a: &DemoArgs) -> SimConfig {
    SimConfig {
        cards: a.cards,
        days: a.days,
        terminals: (a.cards / 5).max(50),
        ..SimConfig::default()
    }
}

pub fn command(a: DemoArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.out)?;
    if a.offline {
        offline::run(a)
    } else {
        live::run(a)
    }
}

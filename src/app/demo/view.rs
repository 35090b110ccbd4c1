//! What the risk team and the switch see during the demo: alerts, commands (locks and the
//! analyst's releases) and the switch's acknowledgements, printed as they are committed.

use crate::service::config::RunConfig;
use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::Value;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counts of what was printed (and seen).
#[derive(Default)]
struct Seen {
    alerts: u64,
    locks: u64,
    releases: u64,
    acks: u64,
}

impl Seen {
    fn show(&mut self, topic: &str, cfg: &RunConfig, v: &Value) {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let target = v["pan_masked"]
            .as_str()
            .or(v["target"].as_str())
            .unwrap_or("")
            .to_string();
        if topic == cfg.topics.alerts {
            self.alerts += 1;
            if self.alerts <= 40 {
                println!(
                    "ALERT   {:<8} {:<27} {}",
                    s("severity"),
                    s("rule"),
                    s("reason")
                );
            }
        } else if topic == cfg.topics.control {
            self.acks += u64::from(s("control") == "ack");
            if self.acks <= 5 && s("control") == "ack" {
                println!(
                    "SWITCH  {} {} {}",
                    s("status"),
                    s("command_id"),
                    s("detail")
                );
            }
        } else if s("action").starts_with("unlock") {
            self.releases += 1;
            if self.releases <= 10 {
                println!(
                    "RELEASE {} {} by {} ({})",
                    s("action"),
                    target,
                    s("actor"),
                    s("reason")
                );
            }
        } else {
            self.locks += 1;
            if self.locks <= 20 {
                println!(
                    "COMMAND {} {} until {} ({})",
                    s("action"),
                    target,
                    s("expires_at"),
                    s("reason_code")
                );
            }
        }
    }
}

/// Print until the switch has sent everything and the topics are quiet; returns the alerts
/// and commands seen.
pub fn view(
    brokers: &str,
    cfg: &RunConfig,
    switch: &JoinHandle<Result<u64>>,
    service: &JoinHandle<Result<()>>,
) -> Result<(u64, u64)> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "demo-viewer")
        .set("auto.offset.reset", "earliest")
        .create()?;
    reader.subscribe(&[
        &cfg.topics.alerts,
        &cfg.topics.commands,
        &cfg.topics.control,
    ])?;
    let mut seen = Seen::default();
    let (mut quiet_since, started) = (Instant::now(), Instant::now());
    loop {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let v: Value =
                    serde_json::from_slice(m.payload().unwrap_or(b"{}")).unwrap_or_default();
                seen.show(m.topic(), cfg, &v);
            }
            Some(Err(e)) => tracing::warn!("viewer: {e}"),
            None => {}
        }
        if (switch.is_finished() && quiet_since.elapsed() > Duration::from_secs(4))
            || service.is_finished()
            || started.elapsed() > Duration::from_secs(300)
        {
            return Ok((seen.alerts, seen.locks + seen.releases));
        }
    }
}

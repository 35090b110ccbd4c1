//! A checkpoint that cannot be written is loud: every failure, and every `checkpoint_timeout`
//! a checkpoint stays incomplete, is a log line with the reason and a count in
//! `switchguard_checkpoint_failures_total{reason}`; after `max_checkpoint_failures` in a row
//! readiness is withdrawn, and given back by the next acknowledged checkpoint. Silence here
//! once meant that a service restarted from offset 0 every time without anyone knowing.

use super::health::Health;
use super::metrics::Metrics;
use std::sync::Arc;

/// Why a checkpoint did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not completed within `checkpoint_timeout` (outputs or the record still unacknowledged).
    Timeout,
    /// Outputs before it were not acknowledged (their delivery failed).
    OutputsFailed,
    /// The checkpoint record could not be produced (too large, unknown topic, ...).
    ProduceError,
    /// The broker refused the checkpoint record, or its delivery timed out.
    NotAcknowledged,
    /// The state could not be encoded.
    EncodeError,
    /// The Kafka transaction did not commit (`exactly_once`).
    Transaction,
}

impl Failure {
    /// Every reason label, in the order of the variants.
    pub const REASONS: [&'static str; 6] = [
        "timeout",
        "outputs_failed",
        "produce_error",
        "not_acknowledged",
        "encode_error",
        "transaction",
    ];

    pub fn as_str(self) -> &'static str {
        Self::REASONS[self as usize]
    }
}

/// Consecutive checkpoint failures, and what they lead to.
pub struct CheckpointHealth {
    in_a_row: u32,
    max: u32,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl CheckpointHealth {
    /// Readiness goes after `max` failures in a row (0: never).
    pub fn new(max: u32, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Self {
            in_a_row: 0,
            max,
            metrics,
            health,
        }
    }

    /// A checkpoint was acknowledged.
    pub fn ok(&mut self) {
        if self.in_a_row > 0 {
            eprintln!(
                "switchguard: checkpoint written again after {} failure(s)",
                self.in_a_row
            );
            self.health.checkpoints(None);
        }
        self.in_a_row = 0;
    }

    /// A checkpoint failed, or is still incomplete after `checkpoint_timeout`.
    pub fn failed(&mut self, reason: Failure, detail: &str) {
        self.in_a_row += 1;
        self.metrics
            .checkpoint_failures
            .with_label_values(&[reason.as_str()])
            .inc();
        eprintln!(
            "switchguard: checkpoint failed ({}): {detail} [{} in a row; a restart now resumes \
             from the last checkpoint written]",
            reason.as_str(),
            self.in_a_row
        );
        if self.max > 0 && self.in_a_row >= self.max {
            self.health.checkpoints(Some(format!(
                "{} checkpoints failed in a row (last: {}: {detail})",
                self.in_a_row,
                reason.as_str()
            )));
        }
    }

    /// The outcome of a blocking checkpoint: `ok`, or `failed` for `reason`.
    pub fn report<T>(&mut self, outcome: &anyhow::Result<T>, reason: Failure) {
        match outcome {
            Ok(_) => self.ok(),
            Err(e) => self.failed(reason, &format!("{e:#}")),
        }
    }

    /// Failures in a row so far.
    pub fn in_a_row(&self) -> u32 {
        self.in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &Metrics, reason: &str) -> u64 {
        m.checkpoint_failures.with_label_values(&[reason]).get()
    }

    #[test]
    fn failures_are_counted_by_reason_and_withdraw_readiness_after_the_limit() {
        let m = Metrics::new();
        let h = Arc::new(Health::default());
        h.started();
        let mut c = CheckpointHealth::new(2, m.clone(), h.clone());
        c.failed(Failure::Timeout, "12 outputs unacknowledged");
        assert_eq!(count(&m, "timeout"), 1);
        assert!(h.status().is_ok(), "one failure is not enough");
        c.failed(Failure::NotAcknowledged, "Broker: Message size too large");
        assert_eq!(count(&m, "not_acknowledged"), 1);
        let why = h.status().unwrap_err().to_string();
        assert!(why.contains("2 checkpoints failed in a row"), "{why}");
        assert!(why.contains("Message size too large"), "{why}");
        c.ok();
        assert_eq!(c.in_a_row(), 0);
        assert!(
            h.status().is_ok(),
            "a written checkpoint gives readiness back"
        );
        let text = m.render();
        for r in Failure::REASONS {
            assert!(
                text.contains(&format!(
                    "switchguard_checkpoint_failures_total{{reason=\"{r}\"}}"
                )),
                "{r} exists from the start"
            );
        }
        assert_eq!(Failure::Transaction.as_str(), "transaction");
    }

    #[test]
    fn zero_never_withdraws_readiness() {
        let m = Metrics::new();
        let h = Arc::new(Health::default());
        h.started();
        let mut c = CheckpointHealth::new(0, m, h.clone());
        for _ in 0..5 {
            c.failed(Failure::Timeout, "slow");
        }
        assert!(h.status().is_ok());
    }
}

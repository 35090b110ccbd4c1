//! Readiness (`/readyz`) from every condition that can withdraw it, with the reason shown:
//! not started yet (checkpoint restored, partitions assigned), checkpoints failing
//! (`max_checkpoint_failures` in a row), or an input offset gap under
//! `on_offset_gap = "unready"`.

use std::sync::Mutex;

/// Why the service is not ready, if it is not. Shared between the loop and the metrics thread.
#[derive(Debug)]
pub struct Health {
    state: Mutex<Conditions>,
}

/// Each condition that withdraws readiness.
#[derive(Debug, Default)]
struct Conditions {
    started: bool,
    checkpoints: Option<String>,
    offset_gap: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: Mutex::new(Conditions::default()),
        }
    }
}

impl Health {
    /// The checkpoint is restored and the partitions assigned.
    pub fn started(&self) {
        self.state.lock().expect("lock").started = true;
    }

    /// Checkpoints failing (`Some(reason)`) or working again (`None`).
    pub fn checkpoints(&self, failing: Option<String>) {
        self.state.lock().expect("lock").checkpoints = failing;
    }

    /// An input offset gap withdrew readiness (until restart).
    pub fn offset_gap(&self, why: String) {
        self.state.lock().expect("lock").offset_gap = Some(why);
    }

    /// `Ok` when ready, else why not.
    pub fn status(&self) -> Result<(), NotReady> {
        let c = self.state.lock().expect("lock");
        let mut why: Vec<Withdrawn> = Vec::new();
        if !c.started {
            why.push(Withdrawn::Starting);
        }
        why.extend(c.checkpoints.iter().cloned().map(Withdrawn::Checkpoints));
        why.extend(c.offset_gap.iter().cloned().map(Withdrawn::OffsetGap));
        if why.is_empty() {
            Ok(())
        } else {
            Err(NotReady(why))
        }
    }
}

/// Why the service is not ready: every condition that withdraws readiness, in a fixed order.
/// Its text, the conditions' joined by "; ", is the body of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct NotReady(pub Vec<Withdrawn>);

/// One condition that withdraws readiness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Withdrawn {
    /// The checkpoint is not restored or the partitions not assigned yet.
    #[error("starting")]
    Starting,
    /// Checkpoints failing, with the reason.
    #[error("{0}")]
    Checkpoints(String),
    /// An input offset gap (under `on_offset_gap = "unready"`), with the partition and offsets.
    #[error("{0}")]
    OffsetGap(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_started_and_while_nothing_withdraws_it() {
        let h = Health::default();
        assert_eq!(h.status(), Err(NotReady(vec![Withdrawn::Starting])));
        assert_eq!(h.status().unwrap_err().to_string(), "starting");
        h.started();
        assert_eq!(h.status(), Ok(()));
        h.checkpoints(Some("3 checkpoints failed in a row".into()));
        let why = h.status().unwrap_err();
        assert_eq!(why.to_string(), "3 checkpoints failed in a row");
        h.checkpoints(None);
        assert_eq!(h.status(), Ok(()));
        h.offset_gap("offset gap on t/0".into());
        h.checkpoints(Some("x".into()));
        let why = h.status().unwrap_err();
        assert_eq!(why.to_string(), "x; offset gap on t/0");
        assert_eq!(
            why,
            NotReady(vec![
                Withdrawn::Checkpoints("x".into()),
                Withdrawn::OffsetGap("offset gap on t/0".into())
            ])
        );
    }
}

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
    pub fn status(&self) -> Result<(), String> {
        let c = self.state.lock().expect("lock");
        let mut why: Vec<String> = Vec::new();
        if !c.started {
            why.push("starting".into());
        }
        why.extend(c.checkpoints.iter().cloned());
        why.extend(c.offset_gap.iter().cloned());
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_started_and_while_nothing_withdraws_it() {
        let h = Health::default();
        assert_eq!(h.status(), Err("starting".into()));
        h.started();
        assert_eq!(h.status(), Ok(()));
        h.checkpoints(Some("3 checkpoints failed in a row".into()));
        assert_eq!(h.status(), Err("3 checkpoints failed in a row".into()));
        h.checkpoints(None);
        assert_eq!(h.status(), Ok(()));
        h.offset_gap("offset gap on t/0".into());
        h.checkpoints(Some("x".into()));
        assert_eq!(h.status(), Err("x; offset gap on t/0".into()));
    }
}

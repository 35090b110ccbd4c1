//! The lockout guard (see [`Guard`]).

use crate::event::Millis;
use serde::{Deserialize, Serialize};

/// Lockout safety: at most `limit` lockouts per rule per minute of event time. Past it, the
/// rule's lockouts are held back (its alerts say `held_by_guard`) and one critical alert per
/// minute says why, so a bad rule cannot lock thousands of cards. Event time keeps replay and
/// live identical.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Guard {
    /// Lockouts issued within the last minute, per rule id.
    issued: std::collections::BTreeMap<String, std::collections::VecDeque<Millis>>,
    /// Until when the "guard tripped" alert for a rule is not repeated.
    quiet_until: std::collections::BTreeMap<String, Millis>,
}

/// The guard's window.
pub const GUARD_WINDOW: Millis = 60_000;

impl Guard {
    /// May `rule` issue one more lockout at `now`? Records it if so.
    pub(super) fn allow(&mut self, rule: &str, now: Millis, limit: Option<u32>) -> bool {
        let Some(limit) = limit else { return true };
        let q = self.issued.entry(rule.to_string()).or_default();
        while q.front().is_some_and(|t| *t <= now - GUARD_WINDOW) {
            q.pop_front();
        }
        if q.len() as u32 >= limit {
            return false;
        }
        q.push_back(now);
        true
    }

    /// True once per window while a rule is held: time to say so.
    pub(super) fn announce(&mut self, rule: &str, now: Millis) -> bool {
        let until = self
            .quiet_until
            .entry(rule.to_string())
            .or_insert(Millis::MIN);
        if now >= *until {
            *until = now + GUARD_WINDOW;
            true
        } else {
            false
        }
    }

    pub fn evict(&mut self, now: Millis) {
        self.issued
            .retain(|_, q| q.back().is_some_and(|t| *t > now - GUARD_WINDOW));
        self.quiet_until.retain(|_, t| *t > now);
    }
}

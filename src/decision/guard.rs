//! The lockout guard (see [`Guard`]).

use crate::time::{EventTime, Span};
use serde::{Deserialize, Serialize};

/// Lockout safety: at most `limit` lockouts per rule per minute of event time. Past it, the
/// rule's lockouts are held back (its alerts say `held_by_guard`) and one critical alert per
/// minute says why, so a bad rule cannot lock thousands of cards. Event time keeps replay and
/// live identical.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Guard {
    /// Lockouts issued within the last minute, per rule id.
    issued: std::collections::BTreeMap<String, std::collections::VecDeque<EventTime>>,
    /// Until when the "guard tripped" alert for a rule is not repeated.
    quiet_until: std::collections::BTreeMap<String, EventTime>,
}

/// The guard's window.
pub const GUARD_WINDOW: Span = Span::MINUTE;

impl Guard {
    /// May `rule` issue one more lockout at `now`? Records it if so.
    pub(super) fn allow(&mut self, rule: &str, now: EventTime, limit: Option<u32>) -> bool {
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
    pub(super) fn announce(&mut self, rule: &str, now: EventTime) -> bool {
        let quiet = self.quiet_until.get(rule).is_some_and(|until| now < *until);
        if !quiet {
            self.quiet_until
                .insert(rule.to_string(), now + GUARD_WINDOW);
        }
        !quiet
    }

    pub fn evict(&mut self, now: EventTime) {
        self.issued
            .retain(|_, q| q.back().is_some_and(|t| *t > now - GUARD_WINDOW));
        self.quiet_until.retain(|_, t| *t > now);
    }
}

//! Counters the engine keeps as it runs: plain numbers, deterministic, part of the snapshot.
//! The telemetry edge turns them into metrics; replay turns them into its report.

use crate::event::{Event, EventType};
use crate::rules::RulePack;
use serde::{Deserialize, Serialize};

/// Counters for one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleStats {
    pub rule: String,
    pub enforce: u64,
    pub shadow: u64,
    pub lockouts: u64,
    pub already_locked: u64,
    /// Lockouts held back by the lockout guard.
    #[serde(default)]
    pub held_by_guard: u64,
}

/// Engine counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub events: u64,
    /// By [`EventType`] in `EventType::ALL` order, split approved / not approved.
    pub by_type: [[u64; 2]; 9],
    pub duplicates: u64,
    pub late: u64,
    pub alerts_by_severity: [u64; 4],
    #[serde(default)]
    pub guard_alerts: u64,
    pub rules: Vec<RuleStats>,
}

impl Stats {
    pub fn for_pack(pack: &RulePack) -> Self {
        Self {
            rules: pack
                .rules
                .iter()
                .map(|r| RuleStats {
                    rule: r.id.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn count_event(&mut self, ev: &Event) {
        self.events += 1;
        let t = EventType::ALL
            .iter()
            .position(|t| *t == ev.kind)
            .unwrap_or(0);
        self.by_type[t][usize::from(!ev.approved())] += 1;
    }

    /// Carry counters over from an older set (same rule ids keep their counts).
    pub fn merge_from(&mut self, old: &Stats) {
        self.events = old.events;
        self.by_type = old.by_type;
        self.duplicates = old.duplicates;
        self.late = old.late;
        self.alerts_by_severity = old.alerts_by_severity;
        self.guard_alerts = old.guard_alerts;
        for r in &mut self.rules {
            if let Some(o) = old.rules.iter().find(|o| o.rule == r.rule) {
                *r = o.clone();
            }
        }
    }

    /// Add another engine's counters (scale-out: the instance's total over its shards).
    pub fn absorb(&mut self, o: &Stats) {
        self.events += o.events;
        for (a, b) in self.by_type.iter_mut().zip(&o.by_type) {
            a[0] += b[0];
            a[1] += b[1];
        }
        self.duplicates += o.duplicates;
        self.late += o.late;
        for (a, b) in self
            .alerts_by_severity
            .iter_mut()
            .zip(&o.alerts_by_severity)
        {
            *a += b;
        }
        self.guard_alerts += o.guard_alerts;
        for r in &o.rules {
            match self.rules.iter_mut().find(|x| x.rule == r.rule) {
                Some(x) => {
                    x.enforce += r.enforce;
                    x.shadow += r.shadow;
                    x.lockouts += r.lockouts;
                    x.already_locked += r.already_locked;
                    x.held_by_guard += r.held_by_guard;
                }
                None => self.rules.push(r.clone()),
            }
        }
    }

    pub fn alerts(&self) -> u64 {
        self.alerts_by_severity.iter().sum()
    }

    pub fn lockouts(&self) -> u64 {
        self.rules.iter().map(|r| r.lockouts).sum()
    }
}

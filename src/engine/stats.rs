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

/// Counters for one lookup table of the rule pack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    pub table: String,
    /// Events on which a rule's lookup found no entry for the event's key (unlisted or
    /// missing) and used the table's default (or null, for a table without one).
    pub defaults: u64,
}

/// Counters of the control stream: what people and the switch told the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlStats {
    /// Manual lock, unlock and extend records applied.
    pub manual: [u64; 3],
    /// Acknowledgements recorded: applied, rejected, not found.
    pub acks: [u64; 3],
    /// Control records the engine refused (unknown command, extension of no lock).
    pub rejected: u64,
    /// Commands reported unacknowledged after their deadline.
    pub overdue: u64,
    /// Commands sent for control records: unlock and extend (manual locks are in `manual`).
    pub unlocks: u64,
    pub extends: u64,
}

impl ControlStats {
    pub const MANUAL: [&'static str; 3] = ["lock", "unlock", "extend"];
    pub const ACKS: [&'static str; 3] = ["applied", "rejected", "not_found"];

    /// Count an applied control record.
    pub fn count(&mut self, c: &crate::control::Control, _out: &[crate::decision::Command]) {
        use crate::control::{AckStatus, Action};
        match &c.action {
            Action::Lock { .. } => self.manual[0] += 1,
            Action::Unlock { .. } => {
                self.manual[1] += 1;
                self.unlocks += 1;
            }
            Action::Extend { .. } => {
                self.manual[2] += 1;
                self.extends += 1;
            }
            Action::Ack { status, .. } => match status {
                AckStatus::Applied => self.acks[0] += 1,
                AckStatus::Rejected => self.acks[1] += 1,
                AckStatus::NotFound => self.acks[2] += 1,
                AckStatus::None => {}
            },
        }
    }

    fn absorb(&mut self, o: &ControlStats) {
        for i in 0..3 {
            self.manual[i] += o.manual[i];
            self.acks[i] += o.acks[i];
        }
        self.rejected += o.rejected;
        self.overdue += o.overdue;
        self.unlocks += o.unlocks;
        self.extends += o.extends;
    }
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
    /// The control stream's counters.
    #[serde(default)]
    pub control: ControlStats,
    pub rules: Vec<RuleStats>,
    /// By table, in the pack's table order (a table's `slot`).
    #[serde(default)]
    pub tables: Vec<TableStats>,
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
            tables: pack
                .tables
                .iter()
                .map(|t| TableStats {
                    table: t.name.clone(),
                    defaults: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Count one event's fall-backs to table defaults (`misses`: bit per table slot).
    #[inline]
    pub fn count_table_defaults(&mut self, mut misses: u64) {
        while misses != 0 {
            let slot = misses.trailing_zeros() as usize;
            misses &= misses - 1;
            if let Some(t) = self.tables.get_mut(slot) {
                t.defaults += 1;
            }
        }
    }

    /// Fall-backs to a default, by table name.
    pub fn table_defaults(&self) -> std::collections::BTreeMap<String, u64> {
        self.tables
            .iter()
            .map(|t| (t.table.clone(), t.defaults))
            .collect()
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
        self.control = old.control.clone();
        for r in &mut self.rules {
            if let Some(o) = old.rules.iter().find(|o| o.rule == r.rule) {
                *r = o.clone();
            }
        }
        for t in &mut self.tables {
            if let Some(o) = old.tables.iter().find(|o| o.table == t.table) {
                t.defaults = o.defaults;
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
        self.control.absorb(&o.control);
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
        for t in &o.tables {
            match self.tables.iter_mut().find(|x| x.table == t.table) {
                Some(x) => x.defaults += t.defaults,
                None => self.tables.push(t.clone()),
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

//! Lock records: every lock switchguard issued or was asked to place, with its extensions, its
//! release, and the switch's acknowledgement of each command sent for it. The lockout decision
//! reads it ("is this card locked now?"), the control stream writes it (manual lock, unlock,
//! extend, acknowledgements), and `switchguard locks` / `GET /locks` show it.
//!
//! Why records and not a set of "locked until" times: a card released by hand must be lockable
//! again while the attack goes on, a command the switch rejected or never acknowledged must be
//! noticed, and "who locked this card, why, and who released it?" must have an answer.
//!
//! Everything is in event time and part of the checkpointed state, so live and replay agree.
//! A record is kept until its end (release or expiry) plus a retention (30 days by default),
//! so memory is bounded by the locks of the last month.

pub use crate::control::{AckStatus, TargetKind};
use crate::keyed::{key_hash, CowMap};
use crate::time::{EventTime, Span};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a record is kept after it ends (released or expired).
pub const DEFAULT_RETENTION: Span = Span::days(30);
/// How long a command may wait for the switch's acknowledgement before it is reported.
pub const DEFAULT_ACK_TIMEOUT: Span = Span::ms(30_000);

/// One command sent for a lock, and what the switch said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandState {
    pub command_id: String,
    pub action: String,
    pub issued_at: EventTime,
    pub ack: AckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<EventTime>,
    /// Not acknowledged within the timeout: reported once.
    #[serde(default)]
    pub overdue: bool,
}

impl CommandState {
    /// A command just sent at `at`, not acknowledged yet.
    pub fn new(command_id: &str, action: &str, at: EventTime) -> Self {
        Self {
            command_id: command_id.to_string(),
            action: action.to_string(),
            issued_at: at,
            ack: AckStatus::None,
            ack_detail: None,
            acked_at: None,
            overdue: false,
        }
    }
}

/// Who placed a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin_kind", content = "origin", rename_all = "snake_case")]
pub enum Origin {
    /// A rule, by id.
    Rule(String),
    /// A person (the control record's `actor`).
    Manual(String),
    /// Not placed by switchguard: a release or extension for a lock it did not know.
    External,
}

/// One lock: placed, perhaps extended, perhaps released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    pub target: String,
    pub kind: TargetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    #[serde(flatten)]
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    pub reason_code: String,
    /// The person's reason, for a manual lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub issued_at: EventTime,
    pub expires_at: EventTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<String>,
    /// The lock command, each extension, the release, in order.
    pub commands: Vec<CommandState>,
}

impl LockRecord {
    /// In force at `now`: not released and not expired.
    pub fn active(&self, now: EventTime) -> bool {
        self.released_at.is_none() && self.expires_at > now
    }

    /// `active`, `released` or `expired` at `now`.
    pub fn state(&self, now: EventTime) -> &'static str {
        match (self.released_at, self.active(now)) {
            (Some(_), _) => "released",
            (None, true) => "active",
            (None, false) => "expired",
        }
    }

    /// When the record stopped mattering (released or expired).
    fn end(&self) -> EventTime {
        self.released_at
            .map_or(self.expires_at, |r| r.min(self.expires_at))
    }
}

/// What an acknowledgement changed.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    /// Recorded; `report` when the switch refused the command (rejected, not found).
    Recorded {
        report: bool,
        record: Box<LockRecord>,
    },
    /// No command with that id is known (never issued, or long evicted).
    UnknownCommand,
}

/// Every lock record, findable by target and by command id (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockBook {
    next: u64,
    records: CowMap<LockRecord>,
    /// Target key → the newest record on it.
    latest: CowMap<u64>,
    /// Command id key → its record.
    by_command: CowMap<u64>,
    /// Commands awaiting an acknowledgement, by deadline.
    pending: BTreeMap<EventTime, Vec<u64>>,
}

fn target_key(kind: TargetKind, target: &str) -> u64 {
    key_hash(target) ^ (kind as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl LockBook {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The newest record on `target`.
    pub fn latest(&self, kind: TargetKind, target: &str) -> Option<&LockRecord> {
        let seq = self.latest.get(&target_key(kind, target))?;
        self.records.get(seq)
    }

    /// Is `command_id` one of the commands of the records held?
    pub fn has_command(&self, command_id: &str) -> bool {
        self.by_command.get(&key_hash(command_id)).is_some()
    }

    /// Is a lock in force on `target` at `now`?
    pub fn is_locked(&self, kind: TargetKind, target: &str, now: EventTime) -> bool {
        self.latest(kind, target).is_some_and(|r| r.active(now))
    }

    /// Add a new lock record (its first command is the lock command), replacing the target's
    /// newest record as "the" lock on it. An active lock it supersedes is closed as released.
    pub fn place(&mut self, rec: LockRecord, ack_timeout: Span) -> &LockRecord {
        let tk = target_key(rec.kind, &rec.target);
        if let Some(&old) = self.latest.get(&tk) {
            let at = rec.issued_at;
            if let Some(prev) = self.records.get_mut(&old).filter(|p| p.active(at)) {
                prev.released_at = Some(at);
                prev.released_by = Some(rec_actor(&rec.origin));
                prev.release_reason = Some("superseded by a new lock".into());
            }
        }
        let seq = self.next;
        self.next += 1;
        for c in &rec.commands {
            self.watch(&c.command_id, c.issued_at, ack_timeout, seq);
        }
        self.latest.insert(tk, seq);
        self.records.insert(seq, rec);
        self.records.get(&seq).expect("just inserted")
    }

    /// Index a command by id, and (unless acknowledgements are not expected: `ack_timeout`
    /// 0) wait for its acknowledgement until `deadline`.
    fn watch(&mut self, command_id: &str, issued: EventTime, ack_timeout: Span, seq: u64) {
        let ck = key_hash(command_id);
        self.by_command.insert(ck, seq);
        if ack_timeout > Span::ZERO {
            self.pending
                .entry(issued + ack_timeout)
                .or_default()
                .push(ck);
        }
    }

    /// Apply `change` to the newest record on `target` if it is active at `at`, recording the
    /// command `cmd` for it. `None` when there is no active lock.
    pub fn update_active(
        &mut self,
        kind: TargetKind,
        target: &str,
        at: EventTime,
        cmd: CommandState,
        ack_timeout: Span,
        change: impl FnOnce(&mut LockRecord),
    ) -> Option<LockRecord> {
        let seq = *self.latest.get(&target_key(kind, target))?;
        let rec = self.records.get_mut(&seq).filter(|r| r.active(at))?;
        change(rec);
        let (id, issued) = (cmd.command_id.clone(), cmd.issued_at);
        rec.commands.push(cmd);
        let out = rec.clone();
        self.watch(&id, issued, ack_timeout, seq);
        Some(out)
    }

    /// Record the switch's answer to `command_id`.
    pub fn ack(
        &mut self,
        command_id: &str,
        status: AckStatus,
        detail: Option<String>,
        at: EventTime,
    ) -> AckOutcome {
        let Some(&seq) = self.by_command.get(&key_hash(command_id)) else {
            return AckOutcome::UnknownCommand;
        };
        let Some(rec) = self.records.get_mut(&seq) else {
            return AckOutcome::UnknownCommand;
        };
        let Some(c) = rec.commands.iter_mut().find(|c| c.command_id == command_id) else {
            return AckOutcome::UnknownCommand;
        };
        // The switch may resend an acknowledgement: the first one stands, and a refusal is
        // reported once.
        let repeat = c.ack == status;
        if !repeat {
            c.ack = status;
            c.ack_detail = detail;
            c.acked_at = Some(at);
        }
        let report = !repeat && matches!(status, AckStatus::Rejected | AckStatus::NotFound);
        AckOutcome::Recorded {
            report,
            record: Box::new(rec.clone()),
        }
    }

    /// Commands whose deadline is at or before `now` and that are still unacknowledged: each
    /// is marked overdue and returned once (with its record), oldest deadline first.
    pub fn overdue(&mut self, now: EventTime) -> Vec<(CommandState, LockRecord)> {
        let mut out = Vec::new();
        while let Some((&deadline, _)) = self.pending.first_key_value() {
            if deadline > now {
                break;
            }
            let (_, keys) = self.pending.pop_first().expect("first");
            for ck in keys {
                let Some(&seq) = self.by_command.get(&ck) else {
                    continue;
                };
                let Some(rec) = self.records.get_mut(&seq) else {
                    continue;
                };
                let due = rec
                    .commands
                    .iter_mut()
                    .find(|c| key_hash(&c.command_id) == ck && c.ack == AckStatus::None);
                if let Some(c) = due {
                    c.overdue = true;
                    let c = c.clone();
                    out.push((c, rec.clone()));
                }
            }
        }
        out
    }

    /// Forget records that ended more than `retention` before `now`.
    pub fn evict(&mut self, now: EventTime, retention: Span) {
        let mut gone = Vec::new();
        self.records.retain(|seq, r| {
            let keep = r.end().saturating_add(retention) > now;
            if !keep {
                gone.push((*seq, target_key(r.kind, &r.target), r.commands.clone()));
            }
            keep
        });
        for (seq, tk, cmds) in gone {
            if self.latest.get(&tk) == Some(&seq) {
                self.latest.remove(&tk);
            }
            for c in cmds {
                let ck = key_hash(&c.command_id);
                if self.by_command.get(&ck) == Some(&seq) {
                    self.by_command.remove(&ck);
                }
            }
        }
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Vec<&LockRecord> {
        let mut v: Vec<(&u64, &LockRecord)> = self.records.iter().collect();
        v.sort_unstable_by_key(|(s, _)| **s);
        v.into_iter().map(|(_, r)| r).collect()
    }

    /// Active locks at `now`, by kind.
    pub fn active_counts(&self, now: EventTime) -> [usize; 2] {
        let mut n = [0; 2];
        for (_, r) in self.records.iter() {
            if r.active(now) {
                n[r.kind as usize] += 1;
            }
        }
        n
    }

    /// Commands not acknowledged yet (overdue or not).
    pub fn unacknowledged(&self) -> usize {
        self.records
            .iter()
            .flat_map(|(_, r)| &r.commands)
            .filter(|c| c.ack == AckStatus::None)
            .count()
    }
}

/// The lock listing `switchguard locks`, replay's `locks.json` and the service's `GET /locks`
/// share: every record with its state at `now`, newest first; `target` keeps the records on
/// that card token, masked PAN or terminal id.
pub fn document<'a>(
    records: impl IntoIterator<Item = &'a LockRecord>,
    now: EventTime,
    target: Option<&str>,
) -> serde_json::Value {
    let mut locks: Vec<&LockRecord> = records
        .into_iter()
        .filter(|r| target.is_none_or(|t| r.target == t || r.pan_masked.as_deref() == Some(t)))
        .collect();
    locks.sort_by(|a, b| (b.issued_at, &b.target).cmp(&(a.issued_at, &a.target)));
    let rows: Vec<serde_json::Value> = locks
        .into_iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("a lock record serialises");
            let o = v.as_object_mut().expect("an object");
            o.insert("state".into(), r.state(now).into());
            times(o, &["issued_at", "expires_at", "released_at"]);
            if let Some(serde_json::Value::Array(cmds)) = o.get_mut("commands") {
                for c in cmds.iter_mut().filter_map(|c| c.as_object_mut()) {
                    times(c, &["issued_at", "acked_at"]);
                }
            }
            v
        })
        .collect();
    serde_json::json!({ "as_of": crate::event::format_ts(now), "locks": rows })
}

/// Event times as RFC 3339 text, for people and for the console.
fn times(o: &mut serde_json::Map<String, serde_json::Value>, keys: &[&str]) {
    for k in keys {
        if let Some(ms) = o.get(*k).and_then(serde_json::Value::as_i64) {
            o.insert((*k).into(), crate::event::format_ts(ms).into());
        }
    }
}

fn rec_actor(o: &Origin) -> String {
    match o {
        Origin::Rule(r) => format!("rule {r}"),
        Origin::Manual(a) => a.clone(),
        Origin::External => "external".into(),
    }
}

#[cfg(test)]
mod tests;

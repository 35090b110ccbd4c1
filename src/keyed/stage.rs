//! The stages of the sharded engine (README "Scaling out"): each keyed by one entity, visited
//! by every event in this order. One engine owns them all; a scale-out shard owns one.

use super::key_hash;
use crate::control::{Action, Control, TargetKind};
use crate::event::Event;
use serde::{Deserialize, Serialize};

/// One stage of the sharded engine, in the order an event visits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Id,
    AuthRef,
    QrRef,
    Terminal,
    Merchant,
    Card,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Id,
        Stage::AuthRef,
        Stage::QrRef,
        Stage::Terminal,
        Stage::Merchant,
        Stage::Card,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Id => "id",
            Stage::AuthRef => "auth_ref",
            Stage::QrRef => "qr_ref",
            Stage::Terminal => "terminal",
            Stage::Merchant => "merchant",
            Stage::Card => "card",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn next(self) -> Option<Stage> {
        Stage::ALL.get(self.index() + 1).copied()
    }

    /// The key this stage shards `ev` by (the event id when the event has none).
    pub fn key(self, ev: &Event) -> &str {
        let k = match self {
            Stage::Id => None,
            Stage::AuthRef => ev.auth_ref.as_deref(),
            Stage::QrRef => ev.qr_ref.as_deref(),
            Stage::Terminal => Some(ev.terminal.as_str()),
            Stage::Merchant => ev.merchant.as_deref(),
            Stage::Card => ev.card.as_deref(),
        };
        k.unwrap_or(&ev.id)
    }

    /// The key this stage shards a control record by: its target at the stage that holds the
    /// target's locks, else the record's id.
    pub fn control_key(self, c: &Control) -> &str {
        let target = match &c.action {
            Action::Lock { target, .. }
            | Action::Unlock { target, .. }
            | Action::Extend { target, .. } => Some(target),
            Action::Ack { .. } => None,
        };
        match (self, target) {
            (Stage::Card, Some(t)) if t.kind == TargetKind::Card => &t.id,
            (Stage::Terminal, Some(t)) if t.kind == TargetKind::Terminal => &t.id,
            _ => &c.id,
        }
    }

    /// The shard of control record `c` among `shards`.
    pub fn control_shard(self, c: &Control, shards: u32) -> u32 {
        (key_hash(self.control_key(c)) % u64::from(shards.max(1))) as u32
    }

    /// The shard (partition of the stage's topic) of `ev` among `shards`.
    pub fn shard(self, ev: &Event, shards: u32) -> u32 {
        (key_hash(self.key(ev)) % u64::from(shards.max(1))) as u32
    }
}

/// The stages an engine owns: all of them (one engine) or one (a stage shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    pub const ALL: Stages = Stages(0b11_1111);

    pub fn only(s: Stage) -> Self {
        Stages(1 << s.index())
    }

    #[inline]
    pub fn has(self, s: Stage) -> bool {
        self.0 & (1 << s.index()) != 0
    }

    pub fn is_all(self) -> bool {
        self == Self::ALL
    }
}

//! Control records: what people and the switch tell switchguard about locks, as data in event
//! time beside the transactions (README "Control records"). A manual lock, unlock or extension
//! from the risk team, and the switch's acknowledgement of each command. They enter the engine
//! in the same event-time order as transactions, so a replay of the same files gives the
//! decisions the service gave.

use crate::event::Millis;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// What a lock is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Card,
    Terminal,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Terminal => "terminal",
        }
    }

    /// The command that places a lock on this kind of target.
    pub fn lock_action(self) -> &'static str {
        match self {
            Self::Card => "lock_card",
            Self::Terminal => "lock_terminal",
        }
    }

    /// The command that releases it.
    pub fn unlock_action(self) -> &'static str {
        match self {
            Self::Card => "unlock_card",
            Self::Terminal => "unlock_terminal",
        }
    }
}

/// The switch's answer to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Not acknowledged (yet).
    #[default]
    None,
    Applied,
    Rejected,
    NotFound,
}

impl AckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::NotFound => "not_found",
        }
    }

    /// The statuses a switch may send (`none` is not one).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Applied, Self::Rejected, Self::NotFound]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A lock's target: a card token (a PAN is tokenised on the way in) or a terminal id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub kind: TargetKind,
    pub id: CompactString,
    /// When the record gave a PAN: its masked form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<CompactString>,
}

/// When an extended lock ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// This long after the control record's time.
    Ttl(Millis),
    /// At this event time.
    At(Millis),
}

/// What a control record asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "control")]
pub enum Action {
    Lock {
        target: Target,
        ttl: Millis,
        reason: CompactString,
        actor: CompactString,
    },
    Unlock {
        target: Target,
        reason: CompactString,
        actor: CompactString,
    },
    Extend {
        target: Target,
        until: Until,
        reason: CompactString,
        actor: CompactString,
    },
    Ack {
        command_id: CompactString,
        status: AckStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<CompactString>,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lock { .. } => "lock",
            Self::Unlock { .. } => "unlock",
            Self::Extend { .. } => "extend",
            Self::Ack { .. } => "ack",
        }
    }
}

/// One validated control record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    pub id: CompactString,
    pub ts: Millis,
    pub action: Action,
}

/// Default TTL of a manual lock given without one.
pub const DEFAULT_MANUAL_TTL: Millis = 24 * 3_600_000;

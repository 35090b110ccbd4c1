//! Control records: what people and the switch tell switchguard about locks, as data in event
//! time beside the transactions (README "Control records"). A manual lock, unlock or extension
//! from the risk team, and the switch's acknowledgement of each command. They enter the engine
//! in the same event-time order as transactions, so a replay of the same files gives the
//! decisions the service gave.

use crate::time::{EventTime, Span};
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
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
    Ttl(Span),
    /// At this event time.
    At(EventTime),
}

/// What a control record asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "control")]
pub enum Action {
    Lock {
        target: Target,
        ttl: Span,
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
    pub ts: EventTime,
    pub action: Action,
}

impl Control {
    /// The record in the control contract's own shape (as the switch and the console write
    /// it): `{"id", "ts", "control", target, ...}`; a target given as a PAN is its token.
    pub fn contract(&self) -> serde_json::Value {
        use serde_json::json;
        let ts = crate::event::format_ts(self.ts);
        let mut v = json!({"id": self.id, "ts": ts, "control": self.action.name()});
        let o = v.as_object_mut().expect("an object");
        let mut target = |t: &Target| {
            o.insert(t.kind.as_str().into(), t.id.as_str().into());
            if let Some(p) = &t.pan_masked {
                o.insert("pan_masked".into(), p.as_str().into());
            }
        };
        match &self.action {
            Action::Lock {
                target: t,
                ttl,
                reason,
                actor,
            } => {
                target(t);
                o.insert("ttl".into(), human(*ttl).into());
                o.insert("reason".into(), reason.as_str().into());
                o.insert("actor".into(), actor.as_str().into());
            }
            Action::Unlock {
                target: t,
                reason,
                actor,
            } => {
                target(t);
                o.insert("reason".into(), reason.as_str().into());
                o.insert("actor".into(), actor.as_str().into());
            }
            Action::Extend {
                target: t,
                until,
                reason,
                actor,
            } => {
                target(t);
                match until {
                    Until::Ttl(ms) => o.insert("ttl".into(), human(*ms).into()),
                    Until::At(at) => {
                        o.insert("expires_at".into(), crate::event::format_ts(*at).into())
                    }
                };
                o.insert("reason".into(), reason.as_str().into());
                o.insert("actor".into(), actor.as_str().into());
            }
            Action::Ack {
                command_id,
                status,
                detail,
            } => {
                o.insert("command_id".into(), command_id.as_str().into());
                o.insert("status".into(), status.as_str().into());
                if let Some(d) = detail {
                    o.insert("detail".into(), d.as_str().into());
                }
            }
        }
        v
    }
}

/// A duration as the contract writes it (`2h`, `1day 6h`; humantime reads it back).
fn human(s: Span) -> String {
    humantime::format_duration(s.to_std()).to_string()
}

/// Default TTL of a manual lock given without one.
pub const DEFAULT_MANUAL_TTL: Span = Span::hours(24);

/// What the engine takes in: a transaction event or a control record, in one event-time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // events dominate; boxing them would cost an allocation each
pub enum Input {
    Event(crate::event::Event),
    Control(Control),
}

impl Input {
    pub fn ts(&self) -> EventTime {
        match self {
            Input::Event(e) => e.ts,
            Input::Control(c) => c.ts,
        }
    }

    pub fn id(&self) -> &CompactString {
        match self {
            Input::Event(e) => &e.id,
            Input::Control(c) => &c.id,
        }
    }
}

//! The lock view: fold a target's commands (lock, extend, unlock) and the switch's acks into
//! lock records — who locked what, why, until when, who released it, and whether the switch
//! applied it. Pure; the store feeds it rows in event-time order.

use super::contract::{AckStatus, LockRecord};

/// One stored command, as the fold needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommandRow {
    pub command_id: String,
    pub ts_ms: i64,
    pub action: String,
    pub target: String,
    pub kind: String,
    pub pan_masked: Option<String>,
    pub expires_ms: Option<i64>,
    pub reason_code: String,
    pub rule: Option<String>,
    pub alert_id: Option<String>,
    pub actor: Option<String>,
}

/// Lock records of the commands given (any targets), in the order the locks were issued.
/// `cmds` must be sorted by (ts, command id); `ack` answers a command id's acknowledgement.
/// An extend or unlock applies to the newest unreleased lock of the same target and kind; one
/// with no such lock changes nothing (it still shows in the case's command list).
pub fn fold(cmds: &[CommandRow], ack: impl Fn(&str) -> AckStatus) -> Vec<LockRecord> {
    let mut out: Vec<LockRecord> = Vec::new();
    for c in cmds {
        let open = out
            .iter()
            .rposition(|l| l.target == c.target && l.kind == c.kind && l.released_at.is_none());
        match c.action.as_str() {
            "lock_card" | "lock_terminal" => out.push(LockRecord {
                target: c.target.clone(),
                kind: c.kind.clone(),
                pan_masked: c.pan_masked.clone(),
                origin: c
                    .rule
                    .clone()
                    .or_else(|| c.actor.clone())
                    .unwrap_or_else(|| "unknown".into()),
                alert_id: c.alert_id.clone(),
                reason_code: c.reason_code.clone(),
                command_id: c.command_id.clone(),
                issued_at: c.ts_ms,
                expires_at: c.expires_ms,
                released_at: None,
                released_by: None,
                ack: ack(&c.command_id),
            }),
            "extend" => {
                if let (Some(i), Some(exp)) = (open, c.expires_ms) {
                    out[i].expires_at = Some(exp);
                }
            }
            "unlock_card" | "unlock_terminal" => {
                if let Some(i) = open {
                    out[i].released_at = Some(c.ts_ms);
                    out[i].released_by = Some(
                        c.actor
                            .clone()
                            .or_else(|| c.rule.clone())
                            .unwrap_or_else(|| "switchguard".into()),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// Is `l` in force at `now` (epoch ms)?
pub fn active(l: &LockRecord, now: i64) -> bool {
    l.released_at.is_none() && l.expires_at.is_none_or(|e| e > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(id: &str, ts: i64, action: &str, exp: Option<i64>, actor: Option<&str>) -> CommandRow {
        CommandRow {
            command_id: id.into(),
            ts_ms: ts,
            action: action.into(),
            target: "tok_a".into(),
            kind: "card".into(),
            expires_ms: exp,
            reason_code: "X".into(),
            rule: (actor.is_none() && action.starts_with("lock")).then(|| "pin_rule".into()),
            actor: actor.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn lock_extend_unlock_relock_gives_two_records_with_acks() {
        let cmds = vec![
            cmd("c1", 10, "lock_card", Some(100), None),
            cmd("c2", 20, "extend", Some(500), Some("bob")),
            cmd("c3", 30, "unlock_card", None, Some("alice")),
            cmd("c4", 40, "lock_card", Some(140), None),
        ];
        let locks = fold(&cmds, |id| match id {
            "c1" => AckStatus::Applied,
            "c4" => AckStatus::Rejected,
            _ => AckStatus::None,
        });
        assert_eq!(locks.len(), 2);
        assert_eq!(locks[0].origin, "pin_rule");
        assert_eq!(locks[0].expires_at, Some(500));
        assert_eq!(locks[0].released_at, Some(30));
        assert_eq!(locks[0].released_by.as_deref(), Some("alice"));
        assert_eq!(locks[0].ack, AckStatus::Applied);
        assert!(!active(&locks[0], 35));
        assert_eq!(locks[1].ack, AckStatus::Rejected);
        assert!(active(&locks[1], 139) && !active(&locks[1], 140));
    }

    #[test]
    fn an_unlock_without_a_lock_changes_nothing() {
        let locks = fold(&[cmd("c1", 10, "unlock_card", None, Some("a"))], |_| {
            AckStatus::None
        });
        assert!(locks.is_empty());
    }
}

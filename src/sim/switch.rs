//! The switch's side of the lock loop, and an analyst's, for the demo and the tests: given a
//! command switchguard sent, the control records that come back. Most commands are applied
//! within a few seconds, some are rejected (the switch does not know the card or terminal),
//! a few are never answered; an analyst releases some rule locks after checking with the
//! cardholder. Deterministic: every choice is a hash of the command id and the seed, so the
//! same commands always get the same answers (a replay of them gives the live decisions).

use crate::event::format_ts;
use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How the simulated switch and analyst answer commands.
#[derive(Debug, Clone, Copy)]
pub struct SwitchSide {
    pub seed: u64,
    /// Per mille of commands the switch rejects.
    pub reject_pm: u64,
    /// Per mille it never answers.
    pub silent_pm: u64,
    /// Per mille of rule locks on cards an analyst releases.
    pub release_pm: u64,
}

impl Default for SwitchSide {
    fn default() -> Self {
        Self {
            seed: 17,
            reject_pm: 50,
            silent_pm: 30,
            release_pm: 150,
        }
    }
}

impl SwitchSide {
    /// A number in 0..1000 for `what` about command `id`.
    fn roll(&self, id: &str, what: &str) -> u64 {
        xxh3_64_with_seed(format!("{what}/{id}").as_bytes(), self.seed) % 1000
    }

    /// The control records answering `cmd` (a command as switchguard writes it), oldest first.
    pub fn answer(&self, cmd: &Value) -> Vec<Value> {
        let (Some(id), Some(ts)) = (cmd["command_id"].as_str(), ts_of(cmd)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let r = self.roll(id, "ack");
        if r >= self.silent_pm {
            let rejected = r < self.silent_pm + self.reject_pm;
            let delay = 200 + self.roll(id, "delay") * 3;
            let mut ack = json!({
                "id": format!("ack-{id}"), "ts": format_ts(ts + delay as i64),
                "control": "ack", "command_id": id,
                "status": if rejected { "rejected" } else { "applied" },
            });
            if rejected {
                ack["detail"] = json!(format!(
                    "{} not on file",
                    cmd["target_kind"].as_str().unwrap_or("target")
                ));
            }
            out.push(ack);
        }
        let rule_card_lock = cmd["action"] == "lock_card" && cmd["rule"].is_string();
        if rule_card_lock && self.roll(id, "release") < self.release_pm {
            let after = 15 * 60_000 + self.roll(id, "after") as i64 * 1_800;
            out.push(json!({
                "id": format!("rel-{id}"), "ts": format_ts(ts + after), "control": "unlock",
                "card": cmd["target"], "actor": "analyst.demo",
                "reason": "cardholder verified by phone: the attempts were theirs",
            }));
        }
        out
    }
}

fn ts_of(cmd: &Value) -> Option<i64> {
    let s = cmd["ts"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_mixed() {
        let side = SwitchSide::default();
        let cmds: Vec<Value> = (0..2000)
            .map(|i| json!({"command_id": format!("cmd_{i}"), "ts": "2026-10-01T10:00:00.000Z",
                            "action": "lock_card", "rule": "r", "target": "tok_x", "target_kind": "card"}))
            .collect();
        let all: Vec<Value> = cmds.iter().flat_map(|c| side.answer(c)).collect();
        assert_eq!(
            all,
            cmds.iter().flat_map(|c| side.answer(c)).collect::<Vec<_>>()
        );
        let count = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|v| f(v)).count();
        let applied = count(&|v| v["status"] == "applied");
        let rejected = count(&|v| v["status"] == "rejected");
        let released = count(&|v| v["control"] == "unlock");
        let silent = 2000 - applied - rejected;
        for (n, pm) in [(rejected, 50), (silent, 30), (released, 150)] {
            assert!((n as i64 - pm * 2).abs() < pm, "{n} vs {pm} per mille");
        }
        // Every record decodes as a control record.
        let d = crate::decode::Decoder::default();
        for v in &all {
            let bytes = serde_json::to_vec(v).unwrap();
            assert!(d.decode_input(&bytes).is_ok(), "{v}");
        }
    }
}

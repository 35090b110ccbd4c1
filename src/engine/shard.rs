//! Scale-out: the engine split into stages, each keyed by one entity, so that several
//! instances can share the work and still give exactly the decisions of one engine.
//!
//! Every piece of engine state belongs to one key: event ids (dedup), `auth_ref` (pre-auth
//! book), `qr_ref` (QR book), terminal (sign-on book, wrong-PIN baseline, terminal rules),
//! merchant (no-PIN profile, merchant rules) and card (card profile, density and supervised
//! models, card rules, card locks). An event visits the stages in that order, each stage
//! sharded by its key (`hash(key) % shards`, falling back to the event id when the event has
//! no such key). A stage reads its own state, runs the rules whose state it owns and passes on
//! what it learnt ([`crate::feature::Carried`]) with the event, so the next stage reads the same feature values
//! one engine would have read. Within a stage every event is processed in (ts, id) order.
//! Rules with no key (match rules) run at the card stage, where every feature is known, unless
//! they lock terminals (then at the terminal stage, where terminal locks live).
//!
//! What does not shard exactly: the lockout guard counts per stage shard, not per cluster.

use super::Unshardable;
use crate::feature::Field;
use crate::keyed::Stage;
use crate::rules::compile::Rule;
use crate::rules::config::ActionKind;
use crate::rules::{Logic, Problem, RulePack};

/// The stage whose shard runs `rule`: where the state the rule keeps, and the lock it issues,
/// live. Refused (with the reason) when no stage can run it exactly.
pub fn home(rule: &Rule) -> Result<Stage, Unshardable> {
    let keyed = !matches!(rule.logic, Logic::Match { .. });
    let home = match rule.key.first() {
        Some(Field::Card) => Stage::Card,
        Some(Field::Terminal) => Stage::Terminal,
        Some(Field::Merchant) => Stage::Merchant,
        Some(Field::AuthRef) => Stage::AuthRef,
        Some(Field::QrRef) => Stage::QrRef,
        Some(Field::Id) => Stage::Id,
        Some(f) if keyed => return Err(Unshardable::Key(f.name())),
        None if keyed => return Err(Unshardable::NoKey),
        _ => match rule.action.as_ref().map(|a| a.kind) {
            Some(ActionKind::LockTerminal) => Stage::Terminal,
            _ => Stage::Card,
        },
    };
    match rule.action.as_ref().map(|a| a.kind) {
        Some(ActionKind::LockCard) if home != Stage::Card => {
            return Err(Unshardable::CardLock(home.as_str()))
        }
        Some(ActionKind::LockTerminal) if home != Stage::Terminal => {
            return Err(Unshardable::TerminalLock(home.as_str()))
        }
        _ => {}
    }
    if let Some(f) = rule.reads.iter().find(|f| f.stage().index() > home.index()) {
        return Err(Unshardable::ReadsLater {
            home: home.as_str(),
            field: f.name(),
            later: f.stage().as_str(),
        });
    }
    Ok(home)
}

/// Every rule of `pack` that scale-out cannot run exactly, with the reason.
pub fn check(pack: &RulePack) -> Vec<Problem> {
    pack.rules
        .iter()
        .filter_map(|r| {
            home(r).err().map(|m| Problem {
                file: r.file.clone(),
                rule: Some(r.id.to_string()),
                line: None,
                message: format!("cannot scale out: {m}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(rules: &str) -> RulePack {
        RulePack::from_sources(&[("t.toml".into(), rules.into())]).expect("valid rules")
    }

    #[test]
    fn the_default_pack_runs_sharded_and_rules_go_where_their_state_is() {
        let p = RulePack::load_dir(std::path::Path::new("rules")).unwrap();
        assert!(check(&p).is_empty(), "{:?}", check(&p));
        let home_of = |id: &str| home(p.rule(id).unwrap()).unwrap();
        assert_eq!(home_of("pin_consecutive_wrong"), Stage::Card);
        assert_eq!(home_of("pin_probing_terminal"), Stage::Terminal);
        assert_eq!(home_of("completion_without_preauth"), Stage::Card);
        assert_eq!(home_of("preauth_cancel_cycling"), Stage::Card);
    }

    #[test]
    fn rules_scale_out_cannot_run_exactly_are_all_reported_with_the_reason() {
        let p = pack(
            r#"
[[rule]]
id = "by_currency"
description = "d"
severity = "low"
mode = "enforce"
kind = "window"
key = ["currency"]
when = 'response_code == "55"'
window = "1h"
aggregates = { n = "count" }
fire = "n >= 3"
reason = "r"

[[rule]]
id = "terminal_locks_card"
description = "d"
severity = "high"
mode = "enforce"
kind = "window"
key = ["terminal"]
when = 'response_code == "55"'
window = "1h"
aggregates = { n = "count" }
fire = "n >= 3"
action = { type = "lock_card", ttl = "1h", reason_code = "X" }
reason = "r"

[[rule]]
id = "terminal_reads_card_model"
description = "d"
severity = "low"
mode = "enforce"
kind = "window"
key = ["terminal"]
when = 'amount_dev >= 5'
window = "1h"
aggregates = { n = "count" }
fire = "n >= 2"
reason = "r"

[[rule]]
id = "match_locks_terminal"
description = "d"
severity = "high"
mode = "enforce"
kind = "match"
when = 'terminal_signed_off'
action = { type = "lock_terminal", ttl = "1h", reason_code = "X" }
reason = "r"
"#,
        );
        let problems = check(&p);
        let ids: Vec<_> = problems.iter().map(|p| p.rule.clone().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "by_currency",
                "terminal_locks_card",
                "terminal_reads_card_model"
            ],
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("`currency`"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].message.contains("locks cards"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].message.contains("amount_dev"),
            "{}",
            problems[2]
        );
        assert!(problems.iter().all(|p| p.file == "t.toml"));
        // A match rule that locks terminals runs where terminal locks live.
        assert_eq!(
            home(p.rule("match_locks_terminal").unwrap()),
            Ok(Stage::Terminal)
        );
    }

    #[test]
    fn every_stage_shards_by_its_key_and_falls_back_to_the_id() {
        let d = crate::decode::Decoder::default();
        let ev = d
            .decode_json(br#"{"id":"e1","ts":1790000000000,"type":"sign_on","terminal":"T1"}"#)
            .unwrap();
        assert_eq!(Stage::Terminal.key(&ev), "T1");
        for s in [
            Stage::Id,
            Stage::AuthRef,
            Stage::QrRef,
            Stage::Merchant,
            Stage::Card,
        ] {
            assert_eq!(s.key(&ev), "e1", "{s:?}");
        }
        assert!(Stage::Card.shard(&ev, 4) < 4);
        assert_eq!(Stage::Card.shard(&ev, 4), Stage::Id.shard(&ev, 4));
    }
}

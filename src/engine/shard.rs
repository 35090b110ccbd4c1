//! Scale-out: the engine split into stages, each keyed by one entity, so that several
//! instances can share the work and still give exactly the decisions of one engine.
//!
//! Every piece of engine state belongs to one key: event ids (dedup), `auth_ref` (pre-auth
//! book), `qr_ref` (QR book), terminal (sign-on book, wrong-PIN baseline, terminal rules),
//! merchant (no-PIN profile, merchant rules) and card (card profile, density and supervised
//! models, card rules, card locks). An event visits the stages in that order, each stage
//! sharded by its key (`hash(key) % shards`, falling back to the event id when the event has
//! no such key). A stage reads its own state, runs the rules whose state it owns and passes on
//! what it learnt ([`Carried`]) with the event, so the next stage reads the same feature values
//! one engine would have read. Within a stage every event is processed in (ts, id) order.
//! Rules with no key (match rules) run at the card stage, where every feature is known, unless
//! they lock terminals (then at the terminal stage, where terminal locks live).
//!
//! What does not shard exactly: the lockout guard counts per stage shard, not per cluster.

use crate::event::Event;
use crate::models::{MerchantNopinScore, TerminalPinScore};
use crate::rules::compile::Rule;
use crate::rules::config::ActionKind;
use crate::rules::fields::Field;
use crate::rules::{Logic, Problem, RulePack};
use crate::state::{key_hash, Features, PreAuthView};
use compact_str::CompactString;
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

    /// The shard (partition of the stage's topic) of `ev` among `shards`.
    pub fn shard(self, ev: &Event, shards: u32) -> u32 {
        (key_hash(self.key(ev)) % u64::from(shards.max(1))) as u32
    }

    /// The stage that computes `field` (event fields are known from the start).
    pub fn of_field(field: Field) -> Stage {
        use Field::*;
        match field {
            PreauthFound | PreauthOpen | PreauthAmount | PreauthMerchant | PreauthAgeH => {
                Stage::AuthRef
            }
            QrPriorPayments => Stage::QrRef,
            TerminalSignonAgeH | TerminalSignedOff | TerminalPinScore | TerminalPinAnomalous => {
                Stage::Terminal
            }
            MerchantNopinScore | MerchantNopinAnomalous => Stage::Merchant,
            CardTx1h | CardTx24h | AmountDev | AmountZ | DensityScore | DensityPct
            | DensityAnomalous | FraudProbability | FraudAnomalous => Stage::Card,
            _ => Stage::Id,
        }
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

/// The stage whose shard runs `rule`: where the state the rule keeps, and the lock it issues,
/// live. Refused (with the reason) when no stage can run it exactly.
pub fn home(rule: &Rule) -> Result<Stage, String> {
    let keyed = !matches!(rule.logic, Logic::Match { .. });
    let home = match rule.key.first() {
        Some(Field::Card) => Stage::Card,
        Some(Field::Terminal) => Stage::Terminal,
        Some(Field::Merchant) => Stage::Merchant,
        Some(Field::AuthRef) => Stage::AuthRef,
        Some(Field::QrRef) => Stage::QrRef,
        Some(Field::Id) => Stage::Id,
        Some(f) if keyed => {
            return Err(format!(
                "its state is keyed by `{}` first; scale-out shards only by card, terminal, \
                 merchant, auth_ref, qr_ref or id (put one of those first in `key`)",
                f.name()
            ))
        }
        None if keyed => {
            return Err("a stateful rule without `key` cannot be sharded".into());
        }
        _ => match rule.action.as_ref().map(|a| a.kind) {
            Some(ActionKind::LockTerminal) => Stage::Terminal,
            _ => Stage::Card,
        },
    };
    match rule.action.as_ref().map(|a| a.kind) {
        Some(ActionKind::LockCard) if home != Stage::Card => {
            return Err(format!(
                "it locks cards, but its state is keyed by {}; card locks live with the card \
                 (key it by card first)",
                home.as_str()
            ))
        }
        Some(ActionKind::LockTerminal) if home != Stage::Terminal => {
            return Err(format!(
                "it locks terminals, but its state is keyed by {}; terminal locks live with the \
                 terminal (key it by terminal first)",
                home.as_str()
            ))
        }
        _ => {}
    }
    if let Some(f) = rule
        .reads
        .iter()
        .find(|f| Stage::of_field(**f).index() > home.index())
    {
        return Err(format!(
            "it runs at the {} stage but reads `{}`, which the later {} stage computes",
            home.as_str(),
            f.name(),
            Stage::of_field(*f).as_str()
        ));
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

/// What earlier stages learnt about an event, carried with it to the next stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preauth: Option<PreAuthView>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub qr_prior_payments: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signon_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_off: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_pin: Option<TerminalPinScore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_nopin: Option<MerchantNopinScore>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Carried {
    /// Put what earlier stages computed into the features before this stage adds its own.
    pub fn fill(&self, f: &mut Features) {
        f.preauth.clone_from(&self.preauth);
        f.qr_prior_payments = self.qr_prior_payments;
        f.signon_ts = self.signon_ts;
        f.signed_off = self.signed_off;
        f.related.clone_from(&self.related);
        f.model.terminal_pin = self.terminal_pin;
        f.model.merchant_nopin = self.merchant_nopin;
    }

    /// Take everything known after this stage, for the next one.
    pub fn take(&mut self, f: &Features) {
        self.preauth.clone_from(&f.preauth);
        self.qr_prior_payments = f.qr_prior_payments;
        self.signon_ts = f.signon_ts;
        self.signed_off = f.signed_off;
        self.related.clone_from(&f.related);
        self.terminal_pin = f.model.terminal_pin;
        self.merchant_nopin = f.model.merchant_nopin;
    }
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
            .decode_json(br#"{"id":"e1","ts":1,"type":"sign_on","terminal":"T1"}"#)
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

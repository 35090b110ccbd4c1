//! Example cases embedded in rule files (`[[rule.example]]`): events in, the ids of the events
//! on which the rule fires out. `switchguard rules test` and `cargo test` run them. Each case
//! runs its rule alone (in enforce mode) through the real decoder, pipeline and engine.

use super::{Mode, RulePack};
use crate::decision::Decisions;
use crate::decode::Decoder;
use crate::engine::{Engine, EngineConfig, Pipeline};
use std::sync::Arc;

/// The outcome of one example.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub file: String,
    pub rule: String,
    pub name: String,
    pub expected: Vec<String>,
    pub got: Vec<String>,
    /// Decoding problems in the example's own events.
    pub errors: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.expected == self.got
    }
}

/// Run every example of every rule in `pack`.
pub fn run_all(pack: &RulePack) -> Vec<CaseResult> {
    let decoder = Decoder::default();
    let mut out = Vec::new();
    for rule in &pack.rules {
        for ex in &rule.examples {
            let mut solo = rule.clone();
            solo.mode = Mode::Enforce;
            solo.examples.clear();
            let one = RulePack {
                rules: vec![solo],
                files: vec![],
                digest: String::new(),
            };
            let mut p = Pipeline::new(Engine::new(Arc::new(one), EngineConfig::default()));
            let mut d = Decisions::default();
            let mut errors = Vec::new();
            for (i, t) in ex.events.iter().enumerate() {
                let json = serde_json::to_vec(t).expect("TOML tables are JSON-representable");
                match decoder.decode_json(&json) {
                    Ok(ev) => p.push(ev, &mut d),
                    Err(e) => errors.push(format!("event {}: {e}", i + 1)),
                }
            }
            p.flush(&mut d);
            let got = d
                .alerts
                .iter()
                .filter_map(|a| a.event_ids.last().cloned())
                .collect();
            out.push(CaseResult {
                file: rule.file.clone(),
                rule: rule.id.to_string(),
                name: ex.name.clone(),
                expected: ex.expect.clone(),
                got,
                errors,
            });
        }
    }
    out
}

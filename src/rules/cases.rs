//! Example cases embedded in rule files (`[[rule.example]]`): events in, the ids of the events
//! on which the rule fires out. `switchguard rules test` and `cargo test` run them. Each case
//! runs its rule alone (in enforce mode) through the real decoder, pipeline and engine. A rule
//! that reads a model score runs with the loaded models; without models its cases are skipped
//! (reported as such, never passed).

use super::{Mode, RulePack};
use crate::decision::Decisions;
use crate::decode::Decoder;
use crate::engine::{Engine, EngineConfig, Pipeline};
use crate::models::Models;
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
    /// The rule reads a model score and no models were given.
    pub skipped: bool,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        !self.skipped && self.errors.is_empty() && self.expected == self.got
    }
}

/// Run every example of every rule in `pack` (with `models` for rules that read scores).
pub fn run_all(pack: &RulePack, models: Option<&Arc<Models>>) -> Vec<CaseResult> {
    let decoder = Decoder::default();
    let mut out = Vec::new();
    for rule in &pack.rules {
        for ex in &rule.examples {
            let mut solo = rule.clone();
            solo.mode = Mode::Enforce;
            solo.examples.clear();
            let one = RulePack {
                rules: vec![solo],
                tables: pack.tables.clone(),
                defined: 1,
                ..RulePack::default()
            };
            let needs_models = rule.reads.iter().any(|f| f.model().is_some());
            if needs_models && models.is_none() {
                out.push(CaseResult {
                    file: rule.file.clone(),
                    rule: rule.id.to_string(),
                    name: ex.name.clone(),
                    expected: ex.expect.clone(),
                    got: Vec::new(),
                    errors: Vec::new(),
                    skipped: true,
                });
                continue;
            }
            let mut engine = Engine::new(Arc::new(one), EngineConfig::default());
            if needs_models {
                engine.set_models(models.cloned());
            }
            let mut p = Pipeline::new(engine);
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
                skipped: false,
            });
        }
    }
    out
}

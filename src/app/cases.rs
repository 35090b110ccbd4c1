//! Example cases embedded in rule files (`[[rule.example]]`): events in, the ids of the events
//! on which the rule fires out. `switchguard rules test` and `cargo test` run them. Each case
//! runs its rule alone (in enforce mode) through the real decoder, pipeline and engine. A rule
//! that reads a model score runs with the loaded models; without models its cases are skipped
//! (reported as such, never passed).

use crate::decision::Decisions;
use crate::decode::Decoder;
use crate::engine::{Engine, EngineConfig, Pipeline};
use crate::models::Models;
use crate::rules::{Mode, RulePack};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rulepack_loads_and_every_example_passes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let pack = crate::rules::RulePack::load_dir(&dir).expect("default rules are valid");
        assert_eq!(pack.rules.len(), 18);
        // The committed models (models/), for the rules that read model scores.
        let models_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let models = crate::models::Models::load_dir(&models_dir).expect("committed models load");
        let results = run_all(&pack, Some(&std::sync::Arc::new(models)));
        assert!(results.iter().all(|r| !r.skipped));
        assert!(results.len() >= 20);
        let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
        assert!(failed.is_empty(), "failing examples: {failed:#?}");
        // Every rule carries at least one example.
        for r in &pack.rules {
            assert!(!r.examples.is_empty(), "{} has no example", r.id);
        }
    }
}

//! Live reload of rules and models: on SIGHUP, or when a file in either directory changes
//! (checked once a second). Each set is validated before it goes live; a bad set is reported
//! and the one in force stays (rules and models independently).

use super::metrics::Metrics;
use crate::engine::Engine;
use crate::models::Models;
use crate::rules::{Problem, RuleErrors, RulePack};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The files of a directory as (path, size, mtime), to notice edits.
type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// A fingerprint of the files in a directory, to notice edits.
fn fingerprint(dir: &Path) -> Fingerprint {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((e.path().display().to_string(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A further check on a rule set before it goes live (scale-out's shardability).
pub type Validate = dyn Fn(&RulePack) -> Vec<Problem>;

/// Watches the rules and models directories.
pub struct Reloader {
    rules: PathBuf,
    models: PathBuf,
    /// Fingerprints of the rules and the models directory last seen.
    seen: (Fingerprint, Fingerprint),
    checked: Instant,
}

impl Reloader {
    pub fn new(rules: &Path, models: &Path) -> Self {
        Self {
            rules: rules.to_path_buf(),
            models: models.to_path_buf(),
            seen: (fingerprint(rules), fingerprint(models)),
            checked: Instant::now(),
        }
    }

    /// Load the models for start-up: an error when the directory does not exist, holds no
    /// model set or a bad one (`models = "none"` runs on rules alone on purpose); a loud
    /// warning when the models were trained on simulated traffic.
    pub fn initial_models(&self) -> anyhow::Result<Option<Arc<Models>>> {
        let m = Models::open(&self.models, true).map_err(anyhow::Error::msg)?;
        if let Some(m) = m.as_ref().filter(|m| m.simulated()) {
            tracing::warn!(
                "the models in {} were trained on SIMULATED traffic ({}): their baselines and \
                 thresholds describe the simulator's world, not your switch's. Retrain on your \
                 own history (`switchguard train`) before relying on them; watch \
                 switchguard_model_feature_psi for drift.",
                self.models.display(),
                m.files
                    .iter()
                    .map(|f| format!("{} from {}", f.kind.as_str(), f.training.window_start))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(m)
    }

    /// Reload what changed (everything when `forced`, i.e. on SIGHUP) into one engine.
    #[cfg(test)]
    pub fn poll(&mut self, forced: bool, engine: &mut Engine, metrics: &Metrics) {
        self.changes(forced, metrics, None).apply(engine);
    }

    /// What changed and passed validation (`extra`: a further check on a rule set, e.g. that
    /// scale-out can run it); refused sets are reported and counted, the old ones stay.
    pub fn changes(
        &mut self,
        forced: bool,
        metrics: &Metrics,
        extra: Option<&Validate>,
    ) -> Changes {
        let mut out = Changes::default();
        if !forced && self.checked.elapsed() < Duration::from_secs(1) {
            return out;
        }
        self.checked = Instant::now();
        let now = (fingerprint(&self.rules), fingerprint(&self.models));
        let rules_changed = forced || now.0 != self.seen.0;
        let models_changed = forced || now.1 != self.seen.1;
        self.seen = now;
        if rules_changed {
            let loaded = RulePack::load_dir(&self.rules).and_then(|p| {
                let problems = extra.map(|f| f(&p)).unwrap_or_default();
                if problems.is_empty() {
                    Ok(p)
                } else {
                    Err(RuleErrors(problems))
                }
            });
            match loaded {
                Ok(p) => {
                    eprintln!(
                        "switchguard: rules reloaded: {} rules (digest {})",
                        p.rules.len(),
                        p.digest
                    );
                    out.rules = Some(Arc::new(p));
                    metrics.rule_reloads.with_label_values(&["ok"]).inc();
                }
                Err(e) => {
                    eprintln!("switchguard: rules NOT reloaded, old rules stay in force: {e}");
                    metrics.rule_reloads.with_label_values(&["rejected"]).inc();
                }
            }
        }
        if models_changed {
            match Models::reload(&self.models) {
                Ok(m) => {
                    eprintln!(
                        "switchguard: models reloaded: {}",
                        m.as_ref().map_or("none".into(), |m| m.names().join(", "))
                    );
                    out.models = Some(m);
                    metrics.model_reloads.with_label_values(&["ok"]).inc();
                }
                Err(e) => {
                    eprintln!("switchguard: models NOT reloaded, old models stay in force: {e}");
                    metrics.model_reloads.with_label_values(&["rejected"]).inc();
                }
            }
        }
        out
    }
}

/// A validated new rule set and/or model set, to put into every engine.
#[derive(Default)]
pub struct Changes {
    pub rules: Option<Arc<RulePack>>,
    /// `Some(None)`: the models were removed (rules alone from now on).
    pub models: Option<Option<Arc<Models>>>,
}

impl Changes {
    pub fn apply(&self, engine: &mut Engine) {
        if let Some(p) = &self.rules {
            engine.set_rules(p.clone());
        }
        if let Some(m) = &self.models {
            engine.set_models(m.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    /// A live reload to hostile or empty rules keeps the rules in force (no stack overflow).
    #[test]
    fn a_hostile_or_empty_rule_set_is_refused_and_the_old_rules_stay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(root.join("rules")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let pack = Arc::new(RulePack::load_dir(dir.path()).unwrap());
        let digest = pack.digest.clone();
        let mut engine = Engine::new(pack, EngineConfig::default());
        let metrics = Metrics::new();
        let mut reloader = Reloader::new(dir.path(), &dir.path().join("no-models"));
        let n = 100_000;
        let hostile = [
            vec!["approved"; 10_000].join(" || "),
            format!("{}approved{}", "(".repeat(n), ")".repeat(n)),
            format!("{}approved", "!".repeat(n)),
        ];
        for (i, when) in hostile.iter().enumerate() {
            let text = format!(
                "[[rule]]\nid = \"hostile_{i}\"\ndescription = \"d\"\nseverity = \"low\"\n\
                 mode = \"enforce\"\nkind = \"match\"\nwhen = '{when}'\nreason = \"r\"\n"
            );
            std::fs::write(dir.path().join("zz_hostile.toml"), text).unwrap();
            reloader.poll(true, &mut engine, &metrics);
            assert_eq!(engine.pack().digest, digest);
        }
        for f in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        reloader.poll(true, &mut engine, &metrics);
        assert_eq!(engine.pack().digest, digest);
        assert_eq!(engine.pack().rules.len(), 18);
        let rejected = metrics.rule_reloads.with_label_values(&["rejected"]).get();
        assert_eq!(rejected, 4);
    }
}

//! The model file: JSON with a format tag and version, the feature list the model was trained
//! on, its training window, seed, source (simulated or recorded traffic), threshold, holdout
//! figures, a summary of its training inputs (for drift), and its parameters. A directory is
//! loaded as one model set (`manifest.rs`): a file that is corrupt, of another version, trained
//! on other features, missing from the manifest or not matching it is refused with an error
//! naming the file; nothing of the set is loaded, and the caller keeps running on rules (and on
//! the models it had).

use super::card_outlier::CardOutlier;
use super::density::Density;
use super::drift::FeatureSummary;
use super::manifest::{self, Manifest};
use super::merchant_nopin::MerchantNopin;
use super::supervised::Supervised;
use super::terminal_pin::TerminalPin;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Tag in every model file.
pub const FORMAT: &str = "switchguard-model";
/// Model file format version; bump on incompatible changes. 2: PIN attempts only, the
/// terminal model's episodes and online baseline, the robust card profile, the card outlier
/// model, training summaries, model sets.
pub const FORMAT_VERSION: u32 = 2;

/// Which model a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    TerminalPin,
    MerchantNopin,
    CardOutlier,
    Density,
    Supervised,
}

impl ModelKind {
    pub const ALL: [ModelKind; 5] = [
        Self::TerminalPin,
        Self::MerchantNopin,
        Self::CardOutlier,
        Self::Density,
        Self::Supervised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TerminalPin => "terminal_pin",
            Self::MerchantNopin => "merchant_nopin",
            Self::CardOutlier => "card_outlier",
            Self::Density => "density",
            Self::Supervised => "supervised",
        }
    }

    /// The file a model of this kind is written to.
    pub fn file_name(self) -> String {
        format!("{}.model.json", self.as_str())
    }
}

/// How a model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub window_start: String,
    pub window_end: String,
    /// Events before this time trained the model; the rest were the holdout.
    pub holdout_from: String,
    pub events: u64,
    pub seed: u64,
    /// `simulated` (the history carried the simulator's `label` field, or `train --source
    /// simulated`) or `recorded`.
    #[serde(default)]
    pub source: String,
}

impl Training {
    pub fn simulated(&self) -> bool {
        self.source == "simulated"
    }
}

/// Holdout figures, as `train` measured them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub holdout_events: u64,
    pub holdout_fraud: u64,
    pub pr_auc: Option<f64>,
    pub recall_at_fpr_1e4: Option<f64>,
    /// False-positive rate of the live threshold on holdout legitimate events.
    pub threshold_fpr: Option<f64>,
    /// Recall of the live threshold, by labelled scenario.
    pub scenario_recall: BTreeMap<String, f64>,
}

/// One model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    pub kind: ModelKind,
    pub features: Vec<String>,
    pub training: Training,
    /// Scores at or above this are anomalous (`*_anomalous` fields).
    pub threshold: f64,
    pub evaluation: Evaluation,
    /// Distribution of each summarised input on the training part (see `drift`).
    #[serde(default)]
    pub summary: BTreeMap<String, FeatureSummary>,
    pub params: serde_json::Value,
}

/// Why a model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a valid model file: {msg}")]
    Parse { file: String, msg: String },
    #[error("{file}: model format version {found} is not supported (this build reads version {expected}); retrain with `switchguard train`")]
    Version {
        file: String,
        found: u32,
        expected: u32,
    },
    #[error("{file}: incompatible with this build: {msg}; retrain with `switchguard train`")]
    Incompatible { file: String, msg: String },
    #[error("{file}: a second {kind} model (the first is {first})")]
    Duplicate {
        file: String,
        kind: &'static str,
        first: String,
    },
    #[error("{dir}: does not exist")]
    NoDir { dir: String },
    #[error("{file}: {msg}")]
    Manifest { file: String, msg: String },
    #[error("{file}: not in {dir}/manifest.json: a file of another model set (remove it, or retrain into an empty directory)")]
    Unlisted { file: String, dir: String },
    #[error("{file}: listed in the manifest but missing")]
    Missing { file: String },
    #[error("{file}: does not match the manifest's digest (changed after `switchguard train` wrote the set)")]
    Digest { file: String },
}

/// Every problem found loading a models directory.
#[derive(Debug)]
pub struct ModelErrors(pub Vec<ModelError>);

impl std::fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} model problem(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelErrors {}

/// A loaded model with its file's threshold.
#[derive(Debug, Clone)]
pub struct Loaded<M> {
    pub model: M,
    pub threshold: f64,
    pub file: String,
}

/// The models the engine scores with (any subset), with the file each came from.
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub terminal_pin: Option<Loaded<TerminalPin>>,
    pub merchant_nopin: Option<Loaded<MerchantNopin>>,
    pub card_outlier: Option<Loaded<CardOutlier>>,
    pub density: Option<Loaded<Density>>,
    pub supervised: Option<Loaded<Supervised>>,
    /// The set's id (its manifest), and the files' headers (for drift and the start-up
    /// warning).
    pub set: Option<String>,
    pub files: Vec<ModelFile>,
}

/// What a models directory holds, when it holds no usable set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// `--models none`: rules alone, as asked.
    Disabled,
    /// The directory does not exist.
    NoDir,
    /// It exists but holds no model set (no manifest, no model file).
    NoSet,
}

impl Models {
    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    /// Kinds loaded, for logs and the report.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.terminal_pin.is_some(), ModelKind::TerminalPin),
            (self.merchant_nopin.is_some(), ModelKind::MerchantNopin),
            (self.card_outlier.is_some(), ModelKind::CardOutlier),
            (self.density.is_some(), ModelKind::Density),
            (self.supervised.is_some(), ModelKind::Supervised),
        ]
        .into_iter()
        .filter_map(|(loaded, kind)| loaded.then_some(kind.as_str()))
        .collect()
    }

    /// Were any of the models trained on simulated traffic? (`run` warns at start.)
    pub fn simulated(&self) -> bool {
        self.files.iter().any(|f| f.training.simulated())
    }

    /// Load the model set in `dir` (see `manifest.rs`). All problems are reported at once;
    /// nothing is loaded if any file is bad, so a half-updated directory never goes live.
    /// `Ok(Err(_))`: the directory does not exist or holds no set.
    pub fn load_set(dir: &Path) -> Result<Result<Models, Empty>, ModelErrors> {
        let shown = dir.display().to_string();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err(Empty::NoDir)),
            Err(source) => {
                return Err(ModelErrors(vec![ModelError::Io {
                    file: shown,
                    source,
                }]))
            }
        };
        let mut present: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".model.json"))
            .collect();
        present.sort();
        let mut errs = Vec::new();
        let mf_file = dir.join(manifest::FILE).display().to_string();
        let manifest = match Manifest::read(dir) {
            Ok(Some(m)) => m,
            Ok(None) if present.is_empty() => return Ok(Err(Empty::NoSet)),
            Ok(None) => {
                return Err(ModelErrors(vec![ModelError::Manifest {
                    file: mf_file,
                    msg: format!(
                        "missing, beside {}: model files not written as a set by this build's \
                         `switchguard train`; retrain",
                        present.join(", ")
                    ),
                }]))
            }
            Err(msg) => {
                return Err(ModelErrors(vec![ModelError::Manifest {
                    file: mf_file,
                    msg,
                }]));
            }
        };
        for name in present.iter().filter(|n| !manifest.files.contains_key(*n)) {
            errs.push(ModelError::Unlisted {
                file: dir.join(name).display().to_string(),
                dir: shown.clone(),
            });
        }
        let mut m = Models {
            set: Some(manifest.set.clone()),
            ..Models::default()
        };
        for (name, want) in &manifest.files {
            let p = dir.join(name);
            let file = p.display().to_string();
            match std::fs::read(&p) {
                Ok(bytes) if manifest::digest(&bytes) != *want => {
                    errs.push(ModelError::Digest { file })
                }
                Ok(bytes) => {
                    if let Err(e) = m.add(&file, &bytes) {
                        errs.push(e);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    errs.push(ModelError::Missing { file })
                }
                Err(source) => errs.push(ModelError::Io { file, source }),
            }
        }
        if errs.is_empty() {
            Ok(Ok(m))
        } else {
            Err(ModelErrors(errs))
        }
    }

    /// Load for tests and tools: the set in `dir`, an error when there is none.
    pub fn load_dir(dir: &Path) -> Result<Models, ModelErrors> {
        match Models::load_set(dir)? {
            Ok(m) => Ok(m),
            Err(e) => Err(ModelErrors(vec![ModelError::Manifest {
                file: dir.display().to_string(),
                msg: match e {
                    Empty::NoDir => "does not exist".into(),
                    _ => "holds no model set".into(),
                },
            }])),
        }
    }

    /// Reload for a running engine: the new models, or the problems (the caller keeps the
    /// models it has). `Ok(None)`: the directory holds no model set (rules alone).
    pub fn reload(dir: &Path) -> Result<Option<std::sync::Arc<Models>>, ModelErrors> {
        Ok(Models::load_set(dir)?
            .ok()
            .filter(|m| !m.is_empty())
            .map(std::sync::Arc::new))
    }

    /// Load the set in `dir` for a command starting up, saying what it loaded. `none` runs on
    /// rules alone, as asked. A directory that does not exist, holds no model set or holds a
    /// bad one is an error when `strict` (`run`), else a loud warning and rules alone
    /// (`replay`, `demo`, `rules test`).
    pub fn open(dir: &Path, strict: bool) -> Result<Option<std::sync::Arc<Models>>, String> {
        let shown = dir.display();
        if dir.as_os_str() == "none" {
            tracing::info!("models: none (rules alone, as asked)");
            return Ok(None);
        }
        let problem = match Models::load_set(dir) {
            Ok(Ok(m)) if !m.is_empty() => {
                tracing::info!(
                    "models loaded from {shown} (set {}): {}",
                    m.set.as_deref().unwrap_or("?"),
                    m.names().join(", ")
                );
                return Ok(Some(std::sync::Arc::new(m)));
            }
            Ok(Err(Empty::NoDir)) => format!("models directory {shown} does not exist"),
            Ok(_) => format!("models directory {shown} holds no model set"),
            Err(e) => format!("models in {shown} refused: {e}"),
        };
        let hint = "(`--models none` runs on rules alone on purpose)";
        if strict {
            return Err(format!("{problem} {hint}"));
        }
        tracing::warn!("{problem}: running on RULES ALONE, no model rule can fire {hint}");
        Ok(None)
    }

    /// [`Models::open`], not strict.
    pub fn load_or_rules_alone(dir: &Path) -> Option<std::sync::Arc<Models>> {
        Models::open(dir, false).ok().flatten()
    }

    /// Parse, check and add one model file.
    pub fn add(&mut self, file: &str, bytes: &[u8]) -> Result<(), ModelError> {
        let mut mf = ModelFile::parse_checked(file, bytes)?;
        let header = mf.clone_header();
        let r = match mf.kind {
            ModelKind::TerminalPin => {
                place(&mut self.terminal_pin, &mut mf, file, TerminalPin::new)
            }
            ModelKind::MerchantNopin => {
                place(&mut self.merchant_nopin, &mut mf, file, MerchantNopin::new)
            }
            ModelKind::Density => place(&mut self.density, &mut mf, file, Density::new),
            ModelKind::CardOutlier => {
                place(&mut self.card_outlier, &mut mf, file, CardOutlier::new)
            }
            ModelKind::Supervised => place(&mut self.supervised, &mut mf, file, Supervised::new),
        };
        if r.is_ok() {
            self.files.push(header);
        }
        r
    }
}

/// [`ModelError::Incompatible`] for `file`.
fn incompatible(file: &str, msg: String) -> ModelError {
    ModelError::Incompatible {
        file: file.to_string(),
        msg,
    }
}

/// Builds the model of `mf`'s parameters with `new` and puts it in its slot `s`, which must
/// be empty (one model of a kind per set).
fn place<P: serde::de::DeserializeOwned, M>(
    s: &mut Option<Loaded<M>>,
    mf: &mut ModelFile,
    file: &str,
    new: fn(P) -> Result<M, super::params::ParamsError>,
) -> Result<(), ModelError> {
    let p: P = serde_json::from_value(std::mem::take(&mut mf.params))
        .map_err(|e| incompatible(file, format!("parameters: {e}")))?;
    let model = new(p).map_err(|e| incompatible(file, e.to_string()))?;
    if let Some(first) = s {
        return Err(ModelError::Duplicate {
            file: file.into(),
            kind: mf.kind.as_str(),
            first: first.file.clone(),
        });
    }
    *s = Some(Loaded {
        model,
        threshold: mf.threshold,
        file: file.into(),
    });
    Ok(())
}

/// The inputs each model kind is trained on (stored in its file and checked at load).
pub fn inputs_of(kind: ModelKind) -> Vec<String> {
    let v: Vec<&str> = match kind {
        ModelKind::TerminalPin => vec![
            "mcc",
            "pin_attempts_in_window",
            "wrong_pin_episodes_in_window",
            "unresolved_in_window",
            "terminal_daily_counts",
        ],
        ModelKind::MerchantNopin => vec![
            "mcc",
            "cp_approved_today",
            "forced_nopin_today",
            "merchant_daily_counts",
        ],
        ModelKind::CardOutlier => vec!["mcc", "log_amount", "amount_z"],
        ModelKind::Density => super::features::NAMES.to_vec(),
        ModelKind::Supervised => return super::supervised::input_names(),
    };
    v.into_iter().map(String::from).collect()
}

impl ModelFile {
    /// Parses one model file: its format tag and version first (so a newer version is
    /// reported as such, not as a parse error), then the whole, and checks it was trained on
    /// the features this build computes.
    fn parse_checked(file: &str, bytes: &[u8]) -> Result<ModelFile, ModelError> {
        let parse = |msg: String| ModelError::Parse {
            file: file.to_string(),
            msg,
        };
        let head: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| parse(e.to_string()))?;
        if head.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(parse(format!("no \"format\": \"{FORMAT}\" tag")));
        }
        let found = head.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found != FORMAT_VERSION {
            return Err(ModelError::Version {
                file: file.into(),
                found,
                expected: FORMAT_VERSION,
            });
        }
        let mf: ModelFile = serde_json::from_value(head).map_err(|e| parse(e.to_string()))?;
        let expected = inputs_of(mf.kind);
        if mf.features != expected {
            return Err(incompatible(
                file,
                format!(
                    "trained on features {:?}, this build computes {:?}",
                    mf.features, expected
                ),
            ));
        }
        Ok(mf)
    }

    /// Everything but the parameters (the loaded model holds those).
    fn clone_header(&self) -> ModelFile {
        ModelFile {
            format: self.format.clone(),
            version: self.version,
            kind: self.kind,
            features: self.features.clone(),
            training: self.training.clone(),
            threshold: self.threshold,
            evaluation: self.evaluation.clone(),
            summary: self.summary.clone(),
            params: serde_json::Value::Null,
        }
    }
}

//! The model file: JSON with a format tag and version, the feature list the model was trained
//! on, its training window, seed, threshold and evaluation figures, and its parameters. A file
//! that is corrupt, of another version or trained on other features is refused with an error
//! naming the file; the caller keeps running on rules (and on the models it had).

use super::density::{Density, DensityParams};
use super::merchant_nopin::{MerchantNopin, MerchantNopinParams};
use super::supervised::{Supervised, SupervisedParams};
use super::terminal_pin::{TerminalPin, TerminalPinParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Tag in every model file.
pub const FORMAT: &str = "switchguard-model";
/// Model file format version; bump on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Which model a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    TerminalPin,
    MerchantNopin,
    Density,
    Supervised,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        Self::TerminalPin,
        Self::MerchantNopin,
        Self::Density,
        Self::Supervised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TerminalPin => "terminal_pin",
            Self::MerchantNopin => "merchant_nopin",
            Self::Density => "density",
            Self::Supervised => "supervised",
        }
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

/// The models the engine scores with (any subset).
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub terminal_pin: Option<Loaded<TerminalPin>>,
    pub merchant_nopin: Option<Loaded<MerchantNopin>>,
    pub density: Option<Loaded<Density>>,
    pub supervised: Option<Loaded<Supervised>>,
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
            (self.density.is_some(), ModelKind::Density),
            (self.supervised.is_some(), ModelKind::Supervised),
        ]
        .into_iter()
        .filter_map(|(loaded, kind)| loaded.then_some(kind.as_str()))
        .collect()
    }

    /// Load every `*.model.json` in `dir`. All problems are reported at once; nothing is
    /// loaded if any file is bad, so a half-updated directory never goes live.
    pub fn load_dir(dir: &Path) -> Result<Models, ModelErrors> {
        let mut errs = Vec::new();
        let mut files: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".model.json"))
                .collect(),
            Err(source) => {
                return Err(ModelErrors(vec![ModelError::Io {
                    file: dir.display().to_string(),
                    source,
                }]))
            }
        };
        files.sort();
        let mut m = Models::default();
        for p in files {
            let name = p.display().to_string();
            match std::fs::read(&p) {
                Ok(bytes) => {
                    if let Err(e) = m.add(&name, &bytes) {
                        errs.push(e);
                    }
                }
                Err(source) => errs.push(ModelError::Io { file: name, source }),
            }
        }
        if errs.is_empty() {
            Ok(m)
        } else {
            Err(ModelErrors(errs))
        }
    }

    /// Reload for a running engine: the new models, or the problems (the caller keeps the
    /// models it has). `Ok(None)`: the directory holds no model file (rules alone).
    pub fn reload(dir: &Path) -> Result<Option<std::sync::Arc<Models>>, ModelErrors> {
        if !dir.is_dir() {
            return Ok(None);
        }
        let m = Models::load_dir(dir)?;
        Ok((!m.is_empty()).then(|| std::sync::Arc::new(m)))
    }

    /// Load for start-up: the models in `dir`, or `None` (rules alone) when there are none or
    /// they are refused, with every problem printed.
    pub fn load_or_rules_alone(dir: &Path) -> Option<std::sync::Arc<Models>> {
        match Models::reload(dir) {
            Ok(m) => {
                if let Some(m) = &m {
                    eprintln!(
                        "models loaded from {}: {}",
                        dir.display(),
                        m.names().join(", ")
                    );
                }
                m
            }
            Err(e) => {
                eprintln!("error: {e}\nmodels NOT loaded: running on rules alone");
                None
            }
        }
    }

    /// Parse, check and add one model file.
    pub fn add(&mut self, file: &str, bytes: &[u8]) -> Result<(), ModelError> {
        let parse = |msg: String| ModelError::Parse {
            file: file.to_string(),
            msg,
        };
        // The header first, so a newer version is reported as such, not as a parse error.
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
        let mut mf: ModelFile = serde_json::from_value(head).map_err(|e| parse(e.to_string()))?;
        let bad = |msg: String| ModelError::Incompatible {
            file: file.to_string(),
            msg,
        };
        let expected = super::train::inputs_of(mf.kind);
        if mf.features != expected {
            return Err(bad(format!(
                "trained on features {:?}, this build computes {:?}",
                mf.features, expected
            )));
        }
        fn params<T: serde::de::DeserializeOwned>(
            v: serde_json::Value,
            bad: &dyn Fn(String) -> ModelError,
        ) -> Result<T, ModelError> {
            serde_json::from_value(v).map_err(|e| bad(format!("parameters: {e}")))
        }
        fn slot<M>(
            s: &mut Option<Loaded<M>>,
            model: M,
            mf: &ModelFile,
            file: &str,
        ) -> Result<(), ModelError> {
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
        match mf.kind {
            ModelKind::TerminalPin => {
                let p: TerminalPinParams = params(std::mem::take(&mut mf.params), &bad)?;
                slot(
                    &mut self.terminal_pin,
                    TerminalPin::new(p).map_err(bad)?,
                    &mf,
                    file,
                )
            }
            ModelKind::MerchantNopin => {
                let p: MerchantNopinParams = params(std::mem::take(&mut mf.params), &bad)?;
                slot(
                    &mut self.merchant_nopin,
                    MerchantNopin::new(p).map_err(bad)?,
                    &mf,
                    file,
                )
            }
            ModelKind::Density => {
                let p: DensityParams = params(std::mem::take(&mut mf.params), &bad)?;
                slot(&mut self.density, Density::new(p).map_err(bad)?, &mf, file)
            }
            ModelKind::Supervised => {
                let p: SupervisedParams = params(std::mem::take(&mut mf.params), &bad)?;
                slot(
                    &mut self.supervised,
                    Supervised::new(p).map_err(bad)?,
                    &mf,
                    file,
                )
            }
        }
    }
}

//! Model 4, the supervised scorer, trained only when the history carries labels: a linfa
//! logistic regression over the purchase features, the rule-level event traits (wrong PIN,
//! forced no-PIN) and the three unsupervised scores. Logistic regression, not a tree
//! ensemble: its coefficients are readable in the model card, each alert's explanation is an
//! exact sum of per-feature contributions, and scoring is one dot product in the hot path.

use super::features::{NAMES, NF};
use super::params::{FitError, ParamsError};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// Inputs beyond the purchase features, in vector order.
pub const EXTRA: [&str; 5] = [
    "wrong_pin",
    "forced_nopin",
    "terminal_pin_score",
    "merchant_nopin_score",
    "density_score",
];
/// Length of the input vector.
pub const NI: usize = NF + EXTRA.len();

/// The input names in order.
pub fn input_names() -> Vec<String> {
    NAMES
        .iter()
        .chain(EXTRA.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Learned parameters (the model file's `params`): coefficients for the fraud class on
/// standardised inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisedParams {
    pub inputs: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub coef: Vec<f64>,
    pub intercept: f64,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct Supervised {
    pub params: SupervisedParams,
    /// Per input, its mean and `coef / std`, inline: the dot product on every card purchase
    /// then needs no division and no bounds check.
    mean: [f64; NI],
    scale: [f64; NI],
}

impl Supervised {
    pub fn new(params: SupervisedParams) -> Result<Self, ParamsError> {
        if params.inputs != input_names() {
            return Err(ParamsError::Inputs {
                found: params.inputs.clone(),
                expected: input_names(),
            });
        }
        if params.mean.len() != NI || params.std.len() != NI || params.coef.len() != NI {
            return Err(ParamsError::Coefficients(NI));
        }
        let mut mean = [0.0; NI];
        let mut scale = [0.0; NI];
        for j in 0..NI {
            mean[j] = params.mean[j];
            scale[j] = params.coef[j] / params.std[j];
        }
        Ok(Self {
            params,
            mean,
            scale,
        })
    }

    /// Per-input contribution to the log-odds.
    pub fn contributions(&self, x: &[f64; NI]) -> [f64; NI] {
        let mut c = [0.0; NI];
        for j in 0..NI {
            c[j] = self.scale[j] * (x[j] - self.mean[j]);
        }
        c
    }

    /// Probability that the event is fraud.
    pub fn probability(&self, x: &[f64; NI]) -> f64 {
        let z = self.params.intercept + self.contributions(x).iter().sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Fit on (inputs, is_fraud). Needs both classes.
    pub fn fit(rows: &[[f64; NI]], labels: &[bool]) -> Result<SupervisedParams, FitError> {
        let (mean, std) = super::stats::mean_std(rows);
        let mut x = Array2::<f64>::zeros((rows.len(), NI));
        for (i, r) in rows.iter().enumerate() {
            for j in 0..NI {
                x[[i, j]] = (r[j] - mean[j]) / std[j];
            }
        }
        let y: Array1<bool> = labels.iter().copied().collect();
        let fitted = LogisticRegression::default()
            .alpha(0.01)
            .max_iterations(200)
            .fit(&Dataset::new(x, y))
            .map_err(|e| FitError::Logistic(e.to_string()))?;
        // linfa reports the probability of its "positive" class (the larger one): flip the
        // signs when that is the legitimate class, so the coefficients are for fraud.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(SupervisedParams {
            inputs: input_names(),
            mean,
            std,
            coef: fitted.params().iter().map(|c| sign * c).collect(),
            intercept: sign * fitted.intercept(),
        })
    }

    /// The inputs pushing the probability up the most: (name, value, training mean).
    pub fn top_inputs(&self, x: &[f64; NI], n: usize) -> Vec<(String, f64, f64)> {
        let c = self.contributions(x);
        let mut idx: Vec<usize> = (0..NI).collect();
        idx.sort_by(|a, b| c[*b].total_cmp(&c[*a]).then(a.cmp(b)));
        idx.into_iter()
            .take(n)
            .map(|j| (self.params.inputs[j].clone(), x[j], self.params.mean[j]))
            .collect()
    }
}

//! Model 3, the transaction density: a Gaussian mixture (linfa-clustering) over each card
//! purchase's standardised features (amount, hour, entry mode, MCC group, the card's velocity
//! and its distance from its own usual amount). The anomaly score is the negative log density;
//! `density_pct` calibrates it to the percentile of training scores, and the threshold is the
//! score that training traffic exceeds at the chosen false-positive rate.
//!
//! Why a mixture: it is a true density, so "how unusual" is one comparable number, and each
//! event's most responsible component gives a local "normal" to explain the score against
//! (k-means distances have no scale; DBSCAN cannot score a new point). linfa fits it; the
//! engine scores with the fitted parameters directly (no allocation per event).

use super::features::NF;
use super::params::{FitError, ParamsError};
use super::stats::quantile;
use linfa::prelude::*;
use linfa_clustering::GaussianMixtureModel;
use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Added to every component's variances (standardised units): count features are discrete,
/// and without a floor a component collapses onto one count value and calls its neighbour
/// thirty sds away.
const REG_COVARIANCE: f64 = 0.1;

/// Most mixture components a model file may have (scoring keeps them on the stack).
pub const MAX_COMPONENTS: usize = 32;

/// The 0/1 features (entry mode, MCC group).
const BINARY: std::ops::Range<usize> = 3..9;

/// Probabilities at which training score quantiles are kept (dense in the upper tail).
fn quantile_grid() -> Vec<f64> {
    let mut g: Vec<f64> = (0..990).map(|i| i as f64 / 1000.0).collect();
    g.extend((0..=1000).map(|i| 0.99 + i as f64 * 0.00001));
    g
}

/// Learned parameters (the model file's `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DensityParams {
    /// Standardisation of each feature.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Mixture: weights, means and precision matrices (row-major) in standardised units, and
    /// each component's standard deviation per feature (for explanations).
    pub weights: Vec<f64>,
    pub means: Vec<Vec<f64>>,
    pub precisions: Vec<Vec<f64>>,
    pub sds: Vec<Vec<f64>>,
    /// Training scores at [`quantile_grid`] probabilities (for `density_pct`).
    pub quantiles: Vec<f64>,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct Density {
    pub params: DensityParams,
    /// Per component: ln weight + ½ ln det precision − (d/2) ln 2π.
    log_norm: Vec<f64>,
    grid: Vec<f64>,
    /// The same parameters in fixed-size arrays for the hot path (no bounds checks).
    means_a: Vec<[f64; NF]>,
    prec_a: Vec<[[f64; NF]; NF]>,
}

/// One scored purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DensityScore {
    pub score: f64,
    pub pct: f64,
    /// The most responsible component.
    pub component: usize,
}

impl Density {
    pub fn new(params: DensityParams) -> Result<Self, ParamsError> {
        let k = params.weights.len();
        let shapes_ok = params.mean.len() == NF
            && params.std.len() == NF
            && params.means.len() == k
            && params.precisions.len() == k
            && params.sds.len() == k
            && params.means.iter().all(|m| m.len() == NF)
            && params.sds.iter().all(|m| m.len() == NF)
            && params.precisions.iter().all(|p| p.len() == NF * NF);
        if k == 0 || k > MAX_COMPONENTS || !shapes_ok {
            return Err(ParamsError::Mixture {
                features: NF,
                max: MAX_COMPONENTS,
            });
        }
        let grid = quantile_grid();
        if params.quantiles.len() != grid.len() {
            return Err(ParamsError::Calibration);
        }
        let mut log_norm = Vec::with_capacity(k);
        for (w, p) in params.weights.iter().zip(&params.precisions) {
            let ld = log_det_spd(p, NF).ok_or(ParamsError::Precision)?;
            log_norm.push(w.ln() + 0.5 * ld - 0.5 * NF as f64 * std::f64::consts::TAU.ln());
        }
        let means_a = params
            .means
            .iter()
            .map(|m| std::array::from_fn(|j| m[j]))
            .collect();
        let prec_a = params
            .precisions
            .iter()
            .map(|p| std::array::from_fn(|i| std::array::from_fn(|j| p[i * NF + j])))
            .collect();
        Ok(Self {
            params,
            log_norm,
            grid,
            means_a,
            prec_a,
        })
    }

    fn standardise(&self, x: &[f64; NF]) -> [f64; NF] {
        let mut z = [0.0; NF];
        for j in 0..NF {
            z[j] = (x[j] - self.params.mean[j]) / self.params.std[j];
        }
        z
    }

    /// Negative log density of `x` and its most responsible component.
    pub fn raw_score(&self, x: &[f64; NF]) -> (f64, usize) {
        let z = self.standardise(x);
        let mut best = (f64::NEG_INFINITY, 0);
        let mut terms = [0.0f64; MAX_COMPONENTS];
        let k = self.log_norm.len().min(MAX_COMPONENTS);
        let comps = self.means_a.iter().zip(&self.prec_a).zip(&self.log_norm);
        for (c, ((mu, p), ln)) in comps.enumerate().take(k) {
            let d: [f64; NF] = std::array::from_fn(|j| z[j] - mu[j]);
            let mut maha = 0.0;
            for (row, di) in p.iter().zip(d) {
                let s: f64 = row.iter().zip(d).map(|(a, b)| a * b).sum();
                maha += di * s;
            }
            terms[c] = ln - 0.5 * maha;
            if terms[c] > best.0 {
                best = (terms[c], c);
            }
        }
        let lse = best.0
            + terms[..k]
                .iter()
                .map(|t| (t - best.0).exp())
                .sum::<f64>()
                .ln();
        (-lse, best.1)
    }

    pub fn score(&self, x: &[f64; NF]) -> DensityScore {
        let (score, component) = self.raw_score(x);
        DensityScore {
            score,
            pct: self.percentile(score),
            component,
        }
    }

    /// Percentile (0..=100) of `score` among training scores.
    pub fn percentile(&self, score: f64) -> f64 {
        let q = &self.params.quantiles;
        let i = q.partition_point(|v| *v <= score);
        if i == 0 {
            return 0.0;
        }
        if i >= q.len() {
            return 100.0;
        }
        let (a, b) = (q[i - 1], q[i]);
        let t = if b > a { (score - a) / (b - a) } else { 0.0 };
        100.0 * (self.grid[i - 1] + t * (self.grid[i] - self.grid[i - 1]))
    }

    /// Fit on `rows` (training purchases' feature vectors; a deterministic sample of at most
    /// `max_fit` rows is used for EM), then calibrate on all of them.
    pub fn fit(
        rows: &[[f64; NF]],
        components: usize,
        max_fit: usize,
        rng: ChaCha8Rng,
    ) -> Result<DensityParams, FitError> {
        if rows.len() < components * 10 {
            return Err(FitError::TooFew(rows.len()));
        }
        let (mut mean, mut std) = super::stats::mean_std(rows);
        // Indicator features stay 0/1: standardising a rare category would put it dozens of
        // sds out and let "uncommon entry mode" drown every other kind of unusual.
        for j in BINARY {
            mean[j] = 0.0;
            std[j] = 1.0;
        }
        let step = (rows.len() / max_fit).max(1);
        let sample: Vec<&[f64; NF]> = rows.iter().step_by(step).collect();
        let mut x = Array2::<f64>::zeros((sample.len(), NF));
        for (i, r) in sample.iter().enumerate() {
            for j in 0..NF {
                x[[i, j]] = (r[j] - mean[j]) / std[j];
            }
        }
        let gmm = GaussianMixtureModel::params_with_rng(components, rng)
            .n_runs(1)
            .tolerance(1e-3)
            .reg_covariance(REG_COVARIANCE)
            .max_n_iterations(200)
            .fit(&DatasetBase::from(x))
            .map_err(|e| FitError::Mixture(e.to_string()))?;
        let k = gmm.weights().len();
        let params = DensityParams {
            mean,
            std,
            weights: gmm.weights().to_vec(),
            means: (0..k).map(|c| gmm.means().row(c).to_vec()).collect(),
            precisions: (0..k)
                .map(|c| {
                    gmm.precisions()
                        .index_axis(ndarray::Axis(0), c)
                        .iter()
                        .copied()
                        .collect()
                })
                .collect(),
            sds: (0..k)
                .map(|c| {
                    let cov = gmm.covariances().index_axis(ndarray::Axis(0), c);
                    (0..NF).map(|j| cov[[j, j]].max(1e-12).sqrt()).collect()
                })
                .collect(),
            quantiles: vec![0.0; quantile_grid().len()],
        };
        // Calibrate on every training row.
        let model = Density::new(params.clone())?;
        let mut scores: Vec<f64> = rows.iter().map(|r| model.raw_score(r).0).collect();
        scores.sort_unstable_by(f64::total_cmp);
        let quantiles = quantile_grid()
            .iter()
            .map(|p| quantile(&scores, *p))
            .collect();
        Ok(DensityParams {
            quantiles,
            ..params
        })
    }

    /// The features furthest from the most responsible component, in raw units, with that
    /// component's mean as "normal": (name, value, normal, deviation in sds).
    pub fn top_features(
        &self,
        x: &[f64; NF],
        component: usize,
        n: usize,
    ) -> Vec<(usize, f64, f64, f64)> {
        let z = self.standardise(x);
        let (mu, sd) = (&self.params.means[component], &self.params.sds[component]);
        let mut v: Vec<(usize, f64, f64, f64)> = (0..NF)
            .map(|j| {
                let dev = (z[j] - mu[j]) / sd[j];
                let normal = mu[j] * self.params.std[j] + self.params.mean[j];
                (j, x[j], normal, dev)
            })
            .collect();
        v.sort_by(|a, b| b.3.abs().total_cmp(&a.3.abs()).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// ln det of a symmetric positive definite matrix (Cholesky), or None.
fn log_det_spd(a: &[f64], n: usize) -> Option<f64> {
    let mut l = vec![0.0; n * n];
    let mut ld = 0.0;
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
                ld += 2.0 * s.sqrt().ln();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(ld)
}

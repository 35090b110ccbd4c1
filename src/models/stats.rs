//! The small amount of statistics the models need: Poisson and beta-binomial upper tails (as
//! -log10 p, so scores grow with surprise and never underflow), and the evaluation measures
//! `train` reports (PR-AUC, recall at a fixed false-positive rate).

/// Beta prior / posterior of a share.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BetaShare {
    pub alpha: f64,
    pub beta: f64,
}

impl BetaShare {
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// Beta prior by the method of moments over entities' (n, k) (entities with fewer than
/// `min_n` trials are left out), with the binomial sampling variance taken out; weak,
/// defaulted priors when there is too little to go on.
pub fn moments(it: impl Iterator<Item = (f64, f64)>, min_n: f64) -> BetaShare {
    let v: Vec<(f64, f64)> = it.filter(|(n, _)| *n >= min_n).collect();
    let (tn, tk): (f64, f64) = v.iter().fold((0.0, 0.0), |a, (n, k)| (a.0 + n, a.1 + k));
    let mu = if tn > 0.0 {
        (tk / tn).clamp(1e-4, 0.5)
    } else {
        0.01
    };
    let mut strength = 200.0;
    if v.len() >= 3 {
        let shares: Vec<f64> = v.iter().map(|(n, k)| k / n).collect();
        let m = shares.iter().sum::<f64>() / shares.len() as f64;
        let var = shares.iter().map(|s| (s - m).powi(2)).sum::<f64>() / shares.len() as f64;
        let noise = v.iter().map(|(n, _)| mu * (1.0 - mu) / n).sum::<f64>() / v.len() as f64;
        let true_var = var - noise;
        if true_var > 1e-12 {
            strength = (mu * (1.0 - mu) / true_var - 1.0).clamp(10.0, 2000.0);
        } else {
            strength = 2000.0;
        }
    }
    BetaShare {
        alpha: mu * strength,
        beta: (1.0 - mu) * strength,
    }
}

/// ln Γ(x) (libm: the C library's lgamma, no hand-written approximation).
fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// Terms below this share of the running sum end a tail sum.
const EPS: f64 = 1e-15;

/// -log10 P(X >= k) for X ~ Poisson(lambda). 0 when k is 0.
pub fn poisson_tail_score(k: u32, lambda: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let lambda = lambda.max(1e-9);
    let k = k as f64;
    // Sum pmf(j) for j >= k in log space relative to pmf(k), which keeps far tails exact.
    let ln_pk = -lambda + k * lambda.ln() - ln_gamma(k + 1.0);
    let (mut term, mut sum, mut j) = (1.0f64, 1.0f64, k);
    loop {
        term *= lambda / (j + 1.0);
        sum += term;
        j += 1.0;
        if term < EPS * sum || j > k + 10_000.0 {
            break;
        }
    }
    let ln_p = (ln_pk + sum.ln()).min(0.0);
    -ln_p / std::f64::consts::LN_10
}

/// -log10 P(K >= k) for K ~ BetaBinomial(n, alpha, beta). 0 when k is 0.
pub fn beta_binomial_tail_score(k: u32, n: u32, alpha: f64, beta: f64) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    let (kf, nf) = (k.min(n) as f64, n as f64);
    let ln_choose = ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0);
    let ln_b = |a: f64, b: f64| ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b);
    let ln_pk = ln_choose + ln_b(kf + alpha, nf - kf + beta) - ln_b(alpha, beta);
    let (mut term, mut sum, mut j) = (1.0f64, 1.0f64, kf);
    while j < nf {
        term *= (nf - j) / (j + 1.0) * (j + alpha) / (nf - j - 1.0 + beta);
        sum += term;
        j += 1.0;
        if term < EPS * sum && j > kf + 1.0 {
            break;
        }
    }
    let ln_p = (ln_pk + sum.ln()).min(0.0);
    -ln_p / std::f64::consts::LN_10
}

/// Area under the precision-recall curve (average precision) of `scores` against `labels`.
/// Ties are ranked as one step, so the value does not depend on input order.
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 {
        return 0.0;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    ap
}

/// The lowest threshold at which at most `fpr` of the negatives score at or above it, and the
/// recall of the positives there. Returns (threshold, recall).
pub fn recall_at_fpr(scores: &[f64], labels: &[bool], fpr: f64) -> (f64, f64) {
    let mut neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s)
        .collect();
    neg.sort_unstable_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * neg.len() as f64).floor() as usize;
    // Strictly above the (allowed+1)-th highest negative.
    let threshold = neg.get(allowed).map_or(f64::NEG_INFINITY, |s| next_up(*s));
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(s, _)| *s)
        .collect();
    let recall = if pos.is_empty() {
        0.0
    } else {
        pos.iter().filter(|s| **s >= threshold).count() as f64 / pos.len() as f64
    };
    (threshold, recall)
}

/// The smallest float above `x` (for thresholds strictly above a score).
pub fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// Per-column mean and standard deviation of `rows` (a constant column gets sd 1, so
/// standardising it gives 0 rather than a division by zero).
pub fn mean_std<const N: usize>(rows: &[[f64; N]]) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; N];
    for r in rows {
        for j in 0..N {
            mean[j] += r[j] / n;
        }
    }
    let mut var = vec![0.0; N];
    for r in rows {
        for j in 0..N {
            var[j] += (r[j] - mean[j]).powi(2) / n;
        }
    }
    let std = var
        .into_iter()
        .map(|v| if v.sqrt() > 1e-9 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, std)
}

/// The q-quantile (0..=1) of sorted values, by nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_matches_direct_sums() {
        // P(X >= 1 | 2) = 1 - e^-2
        let p = 1.0 - (-2.0f64).exp();
        assert!((poisson_tail_score(1, 2.0) + p.log10()).abs() < 1e-12);
        // P(X >= 3 | 0.5) = 1 - e^-0.5 (1 + 0.5 + 0.125)
        let p = 1.0 - (-0.5f64).exp() * 1.625;
        assert!((poisson_tail_score(3, 0.5) + p.log10()).abs() < 1e-9);
        // A far tail stays finite and large.
        let s = poisson_tail_score(60, 2.0);
        assert!(s > 40.0 && s.is_finite(), "{s}");
        assert_eq!(poisson_tail_score(0, 3.0), 0.0);
    }

    #[test]
    fn beta_binomial_tail_matches_direct_sums() {
        // alpha = beta = 1: uniform over 0..=n, so P(K >= k) = (n - k + 1) / (n + 1).
        for (k, n) in [(1, 4), (3, 10), (10, 10)] {
            let p = (n - k + 1) as f64 / (n + 1) as f64;
            let s = beta_binomial_tail_score(k, n, 1.0, 1.0);
            assert!((s + p.log10()).abs() < 1e-9, "k={k} n={n} s={s}");
        }
        // A prior near 1%: 30 of 100 is very surprising, 1 of 100 is not (values from direct
        // sums of the pmf in double precision).
        assert!((beta_binomial_tail_score(30, 100, 2.0, 198.0) - 14.359472161796484).abs() < 1e-6);
        assert!((beta_binomial_tail_score(1, 100, 2.0, 198.0) - 0.2535310636674392).abs() < 1e-9);
    }

    #[test]
    fn pr_auc_and_recall_at_fpr() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [true, false, true, false, false, false];
        // AP = 1/2 * 1 + 1/2 * 2/3
        assert!((pr_auc(&scores, &labels) - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        let perfect = [true, true, false, false, false, false];
        assert!((pr_auc(&scores, &perfect) - 1.0).abs() < 1e-12);
        // No false positive allowed: threshold just above 0.8, recall 1/2.
        let (t, r) = recall_at_fpr(&scores, &labels, 0.0);
        assert!(t > 0.8 && t < 0.81);
        assert_eq!(r, 0.5);
        // One in four negatives allowed: threshold above 0.6, both positives.
        let (_, r) = recall_at_fpr(&scores, &labels, 0.25);
        assert_eq!(r, 1.0);
    }
}

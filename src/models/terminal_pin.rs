//! Model 1, the terminal PIN-failure baseline: each terminal's own rate of wrong PINs per day
//! (shrunk toward the mean terminal's), spread over the hours of the day by the shape all
//! terminals share, so each terminal has an expected count for every hour. On each wrong PIN the
//! engine counts the terminal's wrong PINs over the trailing window and scores how improbable
//! that count is under the terminal's own normal (Poisson upper tail, as -log10 p). This
//! catches probing at busy terminals, where any fixed threshold is either noisy or blind.

use super::features::{hour_of_day, DAY};
use super::stats::poisson_tail_score;
use crate::event::Millis;
use crate::keyed::key_hash;
use polars::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Strength of the all-terminals prior, in days of the terminal's own history.
const PRIOR_DAYS: f64 = 3.0;

/// Learned parameters (the model file's `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerminalPinParams {
    /// Trailing window the live count covers, in hours.
    pub window_h: u32,
    /// Days of history the rates were learned from.
    pub days: f64,
    /// Mean wrong PINs per terminal per hour, by hour of day (UTC): for unknown terminals.
    pub global: Vec<f64>,
    /// Each terminal's smoothed rate by hour of day.
    pub terminals: BTreeMap<String, Vec<f64>>,
}

/// The loaded model: rates by terminal hash for the hot path.
#[derive(Debug, Clone)]
pub struct TerminalPin {
    pub params: TerminalPinParams,
    rates: FxHashMap<u64, [f32; 24]>,
}

/// One scored wrong PIN: the count, what was expected, and the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TerminalPinScore {
    pub count: u32,
    pub expected: f64,
    pub score: f64,
}

impl TerminalPin {
    pub fn new(params: TerminalPinParams) -> Result<Self, String> {
        if params.global.len() != 24 || params.terminals.values().any(|r| r.len() != 24) {
            return Err("hourly rates must have 24 values".into());
        }
        if params.window_h == 0 || params.window_h > 24 {
            return Err(format!("window_h {} is outside 1..=24", params.window_h));
        }
        let rates = params
            .terminals
            .iter()
            .map(|(t, r)| {
                let mut a = [0f32; 24];
                for (d, s) in a.iter_mut().zip(r) {
                    *d = *s as f32;
                }
                (key_hash(t), a)
            })
            .collect();
        Ok(Self { params, rates })
    }

    pub fn window(&self) -> Millis {
        self.params.window_h as Millis * 3_600_000
    }

    /// Expected wrong PINs at `terminal` over the window ending at `ts`.
    pub fn expected(&self, terminal: &str, ts: Millis) -> f64 {
        let h = hour_of_day(ts);
        let w = self.params.window_h as usize;
        match self.rates.get(&key_hash(terminal)) {
            Some(r) => (0..w).map(|j| r[(h + 24 - j) % 24] as f64).sum(),
            None => (0..w).map(|j| self.params.global[(h + 24 - j) % 24]).sum(),
        }
    }

    pub fn score(&self, terminal: &str, ts: Millis, count: u32) -> TerminalPinScore {
        let expected = self.expected(terminal, ts);
        TerminalPinScore {
            count,
            expected,
            score: poisson_tail_score(count, expected),
        }
    }

    /// Learn from the training rows: `wrong` has columns terminal, hour (wrong PINs only);
    /// `terminals` lists every terminal with traffic; `span` is the training span.
    pub fn fit(
        wrong: LazyFrame,
        terminals: &[String],
        span: Millis,
        window_h: u32,
    ) -> PolarsResult<TerminalPinParams> {
        let counts = wrong
            .group_by([col("terminal"), col("hour")])
            .agg([len().alias("n")])
            .collect()?;
        let days = (span as f64 / DAY as f64).max(1.0);
        let mut by_term: BTreeMap<String, [f64; 24]> =
            terminals.iter().map(|t| (t.clone(), [0.0; 24])).collect();
        let (t, h, n) = (
            counts.column("terminal")?.str()?.clone(),
            counts.column("hour")?.i64()?.clone(),
            counts.column("n")?.cast(&DataType::Float64)?,
        );
        let n = n.f64()?;
        for i in 0..counts.height() {
            if let (Some(t), Some(h), Some(n)) = (t.get(i), h.get(i), n.get(i)) {
                by_term.entry(t.to_string()).or_insert([0.0; 24])[h as usize] += n;
            }
        }
        // A terminal's rate is its own daily count (shrunk toward the mean terminal's) times
        // the hour-of-day shape of all terminals together: a few days of one terminal cannot
        // fill 24 hourly cells, but they do say how busy its PIN pad is.
        let nt = by_term.len().max(1) as f64;
        let mut by_hour = [0.0f64; 24];
        for r in by_term.values() {
            for (g, c) in by_hour.iter_mut().zip(r) {
                *g += c;
            }
        }
        let total: f64 = by_hour.iter().sum();
        let shape: Vec<f64> = by_hour.iter().map(|c| (c + 1.0) / (total + 24.0)).collect();
        let mean_daily = total / (nt * days);
        let global: Vec<f64> = shape.iter().map(|s| s * mean_daily).collect();
        let terminals = by_term
            .into_iter()
            .map(|(t, c)| {
                let own: f64 = c.iter().sum();
                let daily = (own + PRIOR_DAYS * mean_daily) / (days + PRIOR_DAYS);
                (t, shape.iter().map(|s| s * daily).collect())
            })
            .collect();
        Ok(TerminalPinParams {
            window_h,
            days,
            global,
            terminals,
        })
    }

    /// Why a score is high, in words and as (feature, value, normal) rows.
    pub fn explain(&self, s: &TerminalPinScore) -> (String, Vec<(String, f64, f64)>) {
        let text = format!(
            "{} wrong PINs at this terminal in the last {}h where its own normal is {:.1} (p = 1e-{:.1})",
            s.count, self.params.window_h, s.expected, s.score
        );
        let rows = vec![(
            format!("wrong_pins_{}h", self.params.window_h),
            s.count as f64,
            s.expected,
        )];
        (text, rows)
    }
}

//! Chart geometry for the overview: alerts per rule per hour as stacked bars. Computed here,
//! drawn by the template as SVG rectangles (so every label goes through the template's
//! escaping, and no chart library or script is needed in the browser).

use std::collections::BTreeMap;

/// Colours for rules: Okabe-Ito first (readable by colour-blind people), then darker and
/// lighter variants; reused past sixteen rules.
const PALETTE: [&str; 16] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#003f63", "#8c6100", "#00583f", "#7a3600", "#7f4b68", "#a6d8f5", "#9c9300", "#7f7f7f",
];

/// One rectangle with its hover text.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub color: &'static str,
    pub title: String,
}

/// A labelled tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub pos: f64,
    pub label: String,
}

/// A stacked bar chart ready to draw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub bottom: f64,
    pub bars: Vec<Bar>,
    pub xticks: Vec<Tick>,
    pub yticks: Vec<Tick>,
    pub legend: Vec<(String, &'static str)>,
    pub empty: bool,
}

/// Stacked bars: one bar per hour of the 48 up to `now`, one segment per rule.
pub fn hourly(rows: &[(String, i64, i64)], now: i64) -> Chart {
    let (width, height, left, bottom, top) = (900.0, 260.0, 48.0, 230.0, 10.0);
    let hours = 48i64;
    let last = now.div_euclid(3_600_000) * 3_600_000;
    let first = last - (hours - 1) * 3_600_000;
    let rules: Vec<&str> = {
        let mut r: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        r.sort();
        r.dedup();
        r
    };
    let color =
        |rule: &str| PALETTE[rules.iter().position(|r| *r == rule).unwrap_or(0) % PALETTE.len()];
    let mut per_hour: BTreeMap<i64, Vec<(&str, i64)>> = BTreeMap::new();
    for (rule, h, n) in rows {
        if (first..=last).contains(h) {
            per_hour.entry(*h).or_default().push((rule, *n));
        }
    }
    let max = per_hour
        .values()
        .map(|v| v.iter().map(|x| x.1).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (width - left - 10.0) / hours as f64;
    let scale = (bottom - top) / max as f64;
    let mut bars = Vec::new();
    for (h, segs) in &per_hour {
        let x = left + ((h - first) / 3_600_000) as f64 * slot;
        let mut y = bottom;
        for (rule, n) in segs {
            let hgt = *n as f64 * scale;
            y -= hgt;
            bars.push(Bar {
                x,
                y,
                w: (slot - 2.0).max(1.0),
                h: hgt,
                color: color(rule),
                title: format!("{} {}: {n} alerts", hour_label(*h), rule),
            });
        }
    }
    let xticks = (0..hours)
        .step_by(6)
        .map(|k| Tick {
            pos: left + k as f64 * slot,
            label: hour_label(first + k * 3_600_000),
        })
        .collect();
    let yticks = [0, max / 2, max]
        .iter()
        .map(|v| Tick {
            pos: bottom - *v as f64 * scale,
            label: v.to_string(),
        })
        .collect();
    Chart {
        width,
        height,
        left,
        bottom,
        empty: bars.is_empty(),
        bars,
        xticks,
        yticks,
        legend: rules.iter().map(|r| (r.to_string(), color(r))).collect(),
    }
}

fn hour_label(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d %H:00").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_segments_per_hour_and_scales_to_the_tallest() {
        let h = 3_600_000;
        let now = 100 * h + 5;
        let rows = vec![
            ("a".to_string(), 100 * h, 3),
            ("b".to_string(), 100 * h, 1),
            ("a".to_string(), 99 * h, 2),
            ("a".to_string(), 10 * h, 50), // outside the 48 hours
        ];
        let c = hourly(&rows, now);
        assert_eq!(c.bars.len(), 3);
        let tallest: f64 = c
            .bars
            .iter()
            .filter(|b| b.title.starts_with(&hour_label(100 * h)))
            .map(|b| b.h)
            .sum();
        assert!((tallest - (c.bottom - 10.0)).abs() < 1e-6, "{tallest}");
        assert_eq!(c.legend.len(), 2);
        assert!(!c.empty);
    }
}

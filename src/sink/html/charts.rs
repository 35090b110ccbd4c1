//! The report's charts, drawn in Rust with plotters' SVG backend into strings that the HTML
//! inlines: no script library, no font files, nothing fetched when the report is opened.

use super::activity::Buckets;
use super::ScoreSeries;
use plotters::prelude::*;

/// Lines beyond this many rules are summed into one "other rules" line, so a chart stays
/// readable with a large rulepack.
const MAX_LINES: usize = 8;

/// What drawing into an SVG string can fail with: plotters' error for its SVG backend (a
/// layout problem, or the backend's I/O error).
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// Draw into an SVG string; plotters' errors become a short message (the caller shows it).
fn svg(draw: impl FnOnce(&mut String) -> Result<(), DrawError>) -> String {
    let mut buf = String::new();
    match draw(&mut buf) {
        Ok(()) => buf,
        Err(e) => format!(
            "<p class=\"error\">chart failed: {}</p>",
            super::esc(&e.to_string())
        ),
    }
}

/// `(label, counts per bucket)` lines for a timeline: the busiest rules, then the rest summed.
pub fn top_lines(rules: &[String], counts: Vec<Vec<u64>>) -> Vec<(String, Vec<u64>)> {
    let mut lines: Vec<(String, Vec<u64>)> = rules
        .iter()
        .cloned()
        .zip(counts)
        .filter(|(_, c)| c.iter().any(|x| *x > 0))
        .collect();
    lines.sort_by(|a, b| {
        let (sa, sb) = (a.1.iter().sum::<u64>(), b.1.iter().sum::<u64>());
        sb.cmp(&sa).then_with(|| a.0.cmp(&b.0))
    });
    if lines.len() > MAX_LINES {
        let rest = lines.split_off(MAX_LINES - 1);
        let mut other = vec![0u64; rest[0].1.len()];
        for (_, c) in &rest {
            for (o, x) in other.iter_mut().zip(c) {
                *o += x;
            }
        }
        lines.push((format!("other rules ({})", rest.len()), other));
    }
    lines
}

/// The start time of bucket `k` (a tick on the x axis, which counts buckets).
fn time_label(b: &Buckets, k: i64) -> String {
    let ms = b.start + b.width * k;
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return ms.to_string();
    };
    if b.width >= 86_400_000 {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%m-%d %H:%M").to_string()
    }
}

/// Counts per event-time bucket, one line per rule (step-shaped: a bucket's count holds for its
/// whole width), with a legend.
pub fn timeline(title: &str, b: &Buckets, lines: &[(String, Vec<u64>)]) -> String {
    let size = (1000, 340);
    svg(|buf| {
        let root = SVGBackend::with_string(buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        let n = b.count as i64;
        let ymax = lines
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .max()
            .unwrap_or(0);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, 0..headroom(ymax))?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|k| time_label(b, *k))
            .y_desc(format!("per {}", b.label))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        for (i, (label, counts)) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let mut pts = Vec::with_capacity(counts.len() * 2);
            for (k, c) in counts.iter().enumerate() {
                pts.push((k as i64, *c));
                pts.push((k as i64 + 1, *c));
            }
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        if lines.is_empty() {
            chart.draw_series(std::iter::once(Text::new(
                "none in this replay",
                (n / 2, 1),
                ("sans-serif", 16)
                    .into_font()
                    .color(&RGBColor(120, 120, 120)),
            )))?;
        } else {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 12))
                .draw()?;
        }
        root.present()?;
        Ok(())
    })
}

/// Top of an integer y axis: room above the highest count for the legend.
fn headroom(max: u64) -> u64 {
    (max + max / 5).max(max + 1).max(2)
}

/// Histogram bins over the finite values of a series: (lo, hi, counts).
pub fn bins(values: &[f64], n: usize) -> (f64, f64, Vec<u64>) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    } else if lo == hi {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let mut counts = vec![0u64; n];
    let w = (hi - lo) / n as f64;
    for v in finite {
        counts[(((v - lo) / w) as usize).min(n - 1)] += 1;
    }
    (lo, hi, counts)
}

/// One model's score histogram, with its threshold as a vertical line when it has one.
pub fn histogram(s: &ScoreSeries) -> String {
    let size = (480, 260);
    svg(|buf| {
        let root = SVGBackend::with_string(buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (blo, bhi, counts) = bins(&s.values, 40);
        let (mut lo, mut hi) = (blo, bhi);
        if let Some(t) = s.threshold.filter(|t| t.is_finite()) {
            let pad = (hi - lo) * 0.02;
            lo = lo.min(t - pad);
            hi = hi.max(t + pad);
        }
        let w = (bhi - blo) / counts.len() as f64;
        let ytop = headroom(counts.iter().copied().max().unwrap_or(0));
        let mut chart = ChartBuilder::on(&root)
            .caption(&s.name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0..ytop)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_desc("score")
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let fill = RGBColor(70, 110, 180);
        chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
            let x0 = blo + w * i as f64;
            Rectangle::new([(x0, 0), (x0 + w, *c)], fill.filled())
        }))?;
        if let Some(t) = s.threshold.filter(|t| t.is_finite()) {
            let red = RGBColor(200, 40, 40);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, 0), (t, ytop)],
                    red.stroke_width(2),
                )))?
                .label(format!("threshold {t}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], red));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .label_font(("sans-serif", 12))
                .draw()?;
        }
        root.present()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_every_finite_value() {
        let (lo, hi, c) = bins(&[0.0, 0.5, 1.0, f64::NAN, 1.0], 4);
        assert_eq!((lo, hi), (0.0, 1.0));
        assert_eq!(c, vec![1, 0, 1, 2]);
        let (lo, hi, c) = bins(&[], 3);
        assert_eq!((lo, hi, c), (0.0, 1.0, vec![0, 0, 0]));
        let (lo, hi, _) = bins(&[2.0, 2.0], 3);
        assert_eq!((lo, hi), (1.5, 2.5));
    }

    #[test]
    fn small_rules_fold_into_other() {
        let rules: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
        let counts: Vec<Vec<u64>> = (0..12).map(|i| vec![i as u64, 1]).collect();
        let lines = top_lines(&rules, counts);
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0].0, "r11");
        assert_eq!(lines.last().unwrap().0, "other rules (5)");
        assert_eq!(lines.last().unwrap().1, vec![10, 5]);
    }
}

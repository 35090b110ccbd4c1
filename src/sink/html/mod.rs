//! `report.html`: the replay report as one self-contained page for analysts, beside
//! `report.json`. Alerts and lockouts over event time by rule, the per-rule hit table with
//! precision (and per-scenario recall) when the input is labelled, the entities that drew the
//! most alerts, and model score distributions when models supply them.
//!
//! Self-contained means: charts are SVG drawn in Rust ([`charts`]) and inlined, styles and the
//! one script are inline, and a Content-Security-Policy forbids every fetch, so the file opens
//! offline and leaks nothing. Every text is HTML-escaped; entity ids and masked PANs are also
//! passed through [`redact`], so no PAN-shaped digit run can reach the page.
//!
//! The inline script is a self-check only: it verifies each chart rendered and no script error
//! happened, and records the verdict in `#selfcheck[data-selfcheck]` (the headless-browser test
//! reads it).

mod activity;
mod charts;

pub use activity::{Activity, Buckets, EntityCount};

use super::report::Report;
use crate::pan::redact;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// How many entities the top-entities table lists.
const TOP_ENTITIES: usize = 20;

/// Samples of one model's scores for the report's histograms. Models (or whoever runs them)
/// hand these to [`render`] / [`write`]; the report draws one histogram per series, with the
/// threshold as a line when given.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSeries {
    /// Model name, shown as the chart title.
    pub name: String,
    /// Scores (non-finite values are counted but not drawn).
    pub values: Vec<f64>,
    /// The alerting threshold, if the model has one.
    pub threshold: Option<f64>,
}

impl ScoreSeries {
    pub fn new(name: impl Into<String>, values: Vec<f64>, threshold: Option<f64>) -> Self {
        Self {
            name: name.into(),
            values,
            threshold,
        }
    }
}

/// Keeps a bounded, uniform sample of a score stream (reservoir sampling with a fixed-seed
/// generator, so replays stay deterministic) for a model that scores every event of a long
/// replay: memory stays at `cap` values however long the history.
#[derive(Debug, Clone)]
pub struct ScoreSampler {
    series: ScoreSeries,
    cap: usize,
    seen: u64,
    rng: u64,
}

impl ScoreSampler {
    /// Default sample size: plenty for a 40-bin histogram.
    pub const DEFAULT_CAP: usize = 100_000;

    pub fn new(name: impl Into<String>, threshold: Option<f64>, cap: usize) -> Self {
        Self {
            series: ScoreSeries::new(name, Vec::new(), threshold),
            cap: cap.max(1),
            seen: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn push(&mut self, v: f64) {
        self.seen += 1;
        if self.series.values.len() < self.cap {
            self.series.values.push(v);
            return;
        }
        // Reservoir sampling on a SplitMix64 stream (value-stable, like the simulator's).
        let z = crate::sim::splitmix(self.rng);
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let j = z % self.seen;
        if (j as usize) < self.cap {
            self.series.values[j as usize] = v;
        }
    }

    /// Scores pushed so far (the sample holds at most `cap` of them).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn finish(self) -> ScoreSeries {
        self.series
    }
}

/// Escape text for HTML element content and attribute values, every PAN-shaped run masked
/// first ([`redact`]): whatever the page shows went through the same mask as every output.
pub fn esc(s: &str) -> String {
    esc_raw(&redact(s))
}

/// Escape text switchguard computed itself (a content digest), which is not masked.
fn esc_raw(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1060px;\
color:#222;padding:0 12px}h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}\
.meta{color:#666;font-size:13px}.tiles{display:flex;flex-wrap:wrap;gap:10px}\
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:90px}\
.tile b{display:block;font-size:20px}table{border-collapse:collapse;font-size:14px;margin:8px 0}\
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}td.n{text-align:right;\
font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}\
figure.chart{margin:10px 0}figure.chart svg{max-width:100%;height:auto}\
.models{display:flex;flex-wrap:wrap;gap:12px}.error{color:#b00}\
#selfcheck{color:#999;font-size:12px;margin-top:40px}";

/// Sets `#selfcheck[data-selfcheck]` to `ok` when every `figure.chart` holds a drawn SVG, the
/// count matches `data-expected-charts`, and no script error was raised; `failed` otherwise.
const SELF_CHECK: &str = r#"(function(){
var errors=[];
window.addEventListener('error',function(e){errors.push(String(e.message));});
function check(){
var figs=document.querySelectorAll('figure.chart'),drawn=0;
figs.forEach(function(f){var s=f.querySelector('svg');
if(s&&s.getBBox().width>0&&s.querySelectorAll('*').length>4)drawn++;});
var want=parseInt(document.body.getAttribute('data-expected-charts'),10);
var ok=errors.length===0&&drawn===want&&figs.length===want;
var m=document.getElementById('selfcheck');
m.setAttribute('data-charts-drawn',String(drawn));
m.setAttribute('data-selfcheck',ok?'ok':'failed');
m.textContent='rendering self-check: '+(ok?'ok':'FAILED')+', '+drawn+' of '+want+' charts drawn'+
(errors.length?', errors: '+errors.join('; '):'');
if(!ok)console.error('switchguard report self-check failed: '+m.textContent);}
check();})();"#;

fn num_td(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "<td class=\"n\">{n}</td>");
}

/// The whole page. `scores` may be empty: the models section then says no models are loaded.
pub fn render(report: &Report, activity: &Activity, scores: &[ScoreSeries]) -> String {
    let mut body = String::with_capacity(64 * 1024);
    let b = &mut body;
    header_section(b, report, activity);
    let mut charts_n = timeline_section(b, activity);
    rules_section(b, report);
    entities_section(b, activity);
    charts_n += models_section(b, scores);
    rejects_section(b, report);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>switchguard replay report</title><style>{STYLE}</style></head>\n\
         <body data-expected-charts=\"{charts_n}\">\n{body}\
         <footer id=\"selfcheck\" data-selfcheck=\"pending\">rendering self-check: needs \
         JavaScript</footer>\n<script>{SELF_CHECK}</script>\n</body></html>\n"
    )
}

fn header_section(b: &mut String, report: &Report, activity: &Activity) {
    b.push_str("<header><h1>switchguard replay report</h1><p class=\"meta\">");
    let _ = write!(
        b,
        "inputs: {}<br>rules digest: <code>{}</code>",
        esc(&report.inputs.join(", ")),
        esc_raw(&report.rules_digest)
    );
    if let Some((first, last)) = activity.span() {
        let _ = write!(
            b,
            "<br>event time: {} to {} (UTC)",
            esc(&crate::event::format_ts(first)),
            esc(&crate::event::format_ts(last))
        );
    }
    b.push_str("</p></header>\n<section id=\"summary\"><h2>Summary</h2><div class=\"tiles\">");
    for (k, v) in [
        ("events", report.events.to_string()),
        ("rejects", report.rejects.to_string()),
        ("duplicates", report.duplicates.to_string()),
        ("late", report.late.to_string()),
        ("alerts", report.alerts.to_string()),
        ("lockouts", report.lockouts.to_string()),
        ("events/s", format!("{:.0}", report.events_per_s)),
    ] {
        let _ = write!(b, "<div class=\"tile\"><b>{}</b>{}</div>", esc(&v), esc(k));
    }
    b.push_str("</div></section>\n");
}

/// Alerts and lockouts over event time; the number of charts drawn.
fn timeline_section(b: &mut String, activity: &Activity) -> usize {
    b.push_str("<section id=\"timeline\"><h2>Alerts and lockouts over time</h2>");
    let (first, last) = activity.timeline_span().unwrap_or((0, 0));
    let buckets = Buckets::for_span(first, last);
    let _ = write!(
        b,
        "<p class=\"meta\">Event time (UTC), {} buckets of {}; one line per rule, the busiest \
         first, the rest summed.</p>",
        buckets.count,
        esc(buckets.label)
    );
    let n_rules = activity.rules().len();
    let mut n = 0;
    for (id, title, points) in [
        ("alerts", "Alerts by rule", &activity.alerts),
        ("lockouts", "Lockout commands by rule", &activity.lockouts),
    ] {
        let lines = charts::top_lines(activity.rules(), buckets.count(points, n_rules));
        let _ = write!(
            b,
            "<figure class=\"chart\" data-chart=\"{id}\">{}</figure>",
            charts::timeline(title, &buckets, &lines)
        );
        n += 1;
    }
    b.push_str("</section>\n");
    n
}

/// One line under a score histogram: how many, the mean, how many reach the threshold.
fn score_meta(s: &ScoreSeries) -> String {
    let finite: Vec<f64> = s.values.iter().copied().filter(|v| v.is_finite()).collect();
    let mut meta = format!("{} scores", s.values.len());
    if finite.len() < s.values.len() {
        let _ = write!(meta, " ({} not finite)", s.values.len() - finite.len());
    }
    if !finite.is_empty() {
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        let _ = write!(meta, ", mean {mean:.4}");
    }
    if let Some(t) = s.threshold {
        let above = finite.iter().filter(|v| **v >= t).count();
        let _ = write!(
            meta,
            ", threshold {t}: {above} at or above ({:.2}%)",
            100.0 * above as f64 / finite.len().max(1) as f64
        );
    }
    meta
}

/// Score distributions of the models loaded; the number of charts drawn.
fn models_section(b: &mut String, scores: &[ScoreSeries]) -> usize {
    b.push_str("<section id=\"models\"><h2>Model score distributions</h2>");
    if scores.is_empty() {
        b.push_str("<p>No models loaded: no score distributions in this replay.</p></section>\n");
        return 0;
    }
    b.push_str("<div class=\"models\">");
    for s in scores {
        let _ = write!(
            b,
            "<figure class=\"chart\" data-chart=\"score\" data-model=\"{}\">{}\
             <figcaption class=\"meta\">{}</figcaption></figure>",
            esc(&s.name),
            charts::histogram(s),
            esc(&score_meta(s))
        );
    }
    b.push_str("</div></section>\n");
    scores.len()
}

fn rejects_section(b: &mut String, report: &Report) {
    if report.rejects_by_reason.is_empty() {
        return;
    }
    b.push_str("<section id=\"rejects\"><h2>Rejected records</h2><table>");
    b.push_str("<tr><th>reason</th><th>records</th></tr>");
    for (k, v) in &report.rejects_by_reason {
        let _ = write!(b, "<tr><td>{}</td>", esc(k));
        num_td(b, v);
        b.push_str("</tr>");
    }
    b.push_str("</table></section>\n");
}

fn rules_section(b: &mut String, report: &Report) {
    let eval = report.evaluation.as_ref();
    b.push_str("<section id=\"rules\"><h2>Rules</h2>");
    if eval.is_none() {
        b.push_str("<p class=\"meta\">The input carried no labels: no precision or recall.</p>");
    }
    b.push_str(
        "<table><tr><th>rule</th><th>enforce</th><th>shadow</th><th>lockouts</th>\
         <th>already locked</th><th>held by guard</th>",
    );
    if eval.is_some() {
        b.push_str("<th>true positives</th><th>precision</th>");
    }
    b.push_str("</tr>");
    for r in &report.rules {
        let _ = write!(b, "<tr><td>{}</td>", esc(&r.rule));
        for n in [
            r.enforce,
            r.shadow,
            r.lockouts,
            r.already_locked,
            r.held_by_guard,
        ] {
            num_td(b, n);
        }
        if let Some(e) = eval {
            match e.per_rule.get(&r.rule) {
                Some(x) => {
                    num_td(b, x.true_positives);
                    num_td(b, format!("{:.3}", x.precision));
                }
                None => b.push_str("<td class=\"n\">-</td><td class=\"n\">-</td>"),
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
    if let Some(e) = eval {
        b.push_str(
            "<h3>Recall by attack scenario</h3><table><tr><th>scenario</th><th>instances</th>\
             <th>caught</th><th>recall</th></tr>",
        );
        for (k, v) in &e.per_scenario {
            let _ = write!(b, "<tr><td>{}</td>", esc(k));
            num_td(b, v.instances);
            num_td(b, v.caught);
            num_td(b, format!("{:.3}", v.recall));
            b.push_str("</tr>");
        }
        let _ = write!(
            b,
            "</table><p>Benign lockouts (no attack event among the evidence): <b>{}</b></p>",
            e.benign_lockouts
        );
    }
    b.push_str("</section>\n");
}

fn entities_section(b: &mut String, activity: &Activity) {
    b.push_str("<section id=\"entities\"><h2>Top entities</h2>");
    let top = activity.top_entities(TOP_ENTITIES);
    if top.is_empty() {
        b.push_str("<p>No alerts.</p></section>\n");
        return;
    }
    let _ = write!(
        b,
        "<p class=\"meta\">The {} entities with the most alerts. Cards are shown by token and \
         masked PAN only.</p><table><tr><th>entity</th><th>id</th><th>masked PAN</th>\
         <th>alerts</th><th>lockouts</th><th>rules</th></tr>",
        top.len()
    );
    for e in top {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td>",
            esc(&e.kind),
            esc(&redact(&e.id)),
            esc(&redact(e.pan_masked.as_deref().unwrap_or("")))
        );
        num_td(b, e.alerts);
        num_td(b, e.lockouts);
        let _ = write!(b, "<td>{}</td></tr>", esc(&e.rules.join(", ")));
    }
    b.push_str("</table></section>\n");
}

/// Render and write `path`.
pub fn write(
    path: &Path,
    report: &Report,
    activity: &Activity,
    scores: &[ScoreSeries],
) -> Result<()> {
    std::fs::write(path, render(report, activity, scores))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;

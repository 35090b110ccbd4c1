use super::*;
use crate::decision::{Alert, Command, Decisions};
use crate::engine::{RuleStats, Stats};
use crate::sink::report::{Evaluation, RuleEval, ScenarioEval};
use std::collections::BTreeMap;

const CLEAR_PAN: &str = "6225881234567890";

fn alert(ts: &str, rule: &str, entity: &str, id: &str, pan_masked: Option<&str>) -> Alert {
    Alert {
        alert_id: format!("al_{rule}_{ts}"),
        ts: ts.into(),
        rule: rule.into(),
        severity: crate::rules::Severity::High,
        mode: crate::rules::Mode::Enforce,
        entity: serde_json::from_value(serde_json::json!(entity)).unwrap(),
        entity_id: id.into(),
        card: None,
        pan_masked: pan_masked.map(Into::into),
        terminal: "T1".into(),
        merchant: Some("M1".into()),
        event_ids: vec!["e1".into()],
        reason: "test".into(),
        features: Default::default(),
    }
}

fn sample() -> (Report, Activity) {
    let mut d = Decisions::default();
    d.alerts.push(alert(
        "2026-10-01T01:05:00.000Z",
        "pin_consecutive_wrong",
        "card",
        "tok_Lr8AgcA6Mkg8R08u",
        Some("622588******0018"),
    ));
    d.alerts.push(alert(
        "2026-10-02T13:00:00.000Z",
        "pin_consecutive_wrong",
        "card",
        "tok_Lr8AgcA6Mkg8R08u",
        Some("622588******0018"),
    ));
    // Hostile text: markup in a merchant id, a clear PAN as a terminal id.
    d.alerts.push(alert(
        "2026-10-03T09:30:00.000Z",
        "qr_<b>replay</b>",
        "merchant",
        "M&<script>alert(1)</script>",
        None,
    ));
    d.alerts.push(alert(
        "2026-10-03T10:00:00.000Z",
        "terminal_no_sign_on",
        "terminal",
        CLEAR_PAN,
        None,
    ));
    d.commands.push(Command {
        command_id: "cmd_1".into(),
        ts: "2026-10-01T01:05:00.000Z".into(),
        action: "lock_card".into(),
        target: "tok_Lr8AgcA6Mkg8R08u".into(),
        pan_masked: Some("622588******0018".into()),
        target_kind: crate::control::TargetKind::Card,
        expires_at: Some("2026-10-02T01:05:00.000Z".into()),
        reason_code: "PIN_BRUTE_FORCE".into(),
        rule: Some("pin_consecutive_wrong".into()),
        alert_id: Some("al_x".into()),
        event_ids: vec!["e1".into()],
        control_id: None,
        actor: None,
        reason: None,
    });
    let mut activity = Activity::default();
    activity.observe_decisions(&d);

    let stats = Stats {
        events: 1000,
        rules: vec![
            RuleStats {
                rule: "pin_consecutive_wrong".into(),
                enforce: 2,
                lockouts: 1,
                ..RuleStats::default()
            },
            RuleStats {
                rule: "qr_<b>replay</b>".into(),
                shadow: 1,
                ..RuleStats::default()
            },
        ],
        ..Stats::default()
    };
    let mut rejects = BTreeMap::new();
    rejects.insert("malformed_json".to_string(), 2);
    let mut report = Report::new(vec!["traffic.jsonl".into()], "abc".into(), &stats, rejects);
    let mut per_rule = BTreeMap::new();
    per_rule.insert(
        "pin_consecutive_wrong".to_string(),
        RuleEval {
            alerts: 2,
            true_positives: 2,
            precision: 1.0,
        },
    );
    let mut per_scenario = BTreeMap::new();
    per_scenario.insert(
        "pin_brute_force".to_string(),
        ScenarioEval {
            instances: 4,
            caught: 3,
            recall: 0.75,
        },
    );
    report.evaluation = Some(Evaluation {
        per_rule,
        per_scenario,
        benign_lockouts: 0,
    });
    (report, activity)
}

#[test]
fn report_has_every_section_and_one_svg_per_chart() {
    let (report, activity) = sample();
    let scores = vec![
        ScoreSeries::new(
            "isolation_forest",
            (0..500).map(|i| (i % 97) as f64 / 97.0).collect(),
            Some(0.9),
        ),
        ScoreSeries::new("velocity <z>", vec![1.0, 2.0, f64::NAN, 2.5], None),
    ];
    let html = render(&report, &activity, &scores);
    // To look at it: SWITCHGUARD_HTML_SAMPLE=/tmp/sample.html cargo test --release --lib html
    if let Some(p) = std::env::var_os("SWITCHGUARD_HTML_SAMPLE") {
        std::fs::write(p, &html).unwrap();
    }
    for id in [
        "summary", "timeline", "rules", "entities", "models", "rejects",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("data-expected-charts=\"4\""));
    assert!(html.contains("data-chart=\"alerts\""));
    assert!(html.contains("data-chart=\"lockouts\""));
    assert_eq!(html.matches("data-chart=\"score\"").count(), 2);
    assert!(html.contains("data-model=\"isolation_forest\""));
    assert!(html.contains("threshold 0.9"));
    assert!(html.contains("(1 not finite)"));
    assert!(!html.contains("No models loaded"));
    // Precision and recall from the evaluation.
    assert!(html.contains("<th>precision</th>"));
    assert!(html.contains("<td class=\"n\">1.000</td>"));
    assert!(html.contains("<td class=\"n\">0.750</td>"));
    // Top entity: the card, by token and masked PAN.
    assert!(html.contains("tok_Lr8AgcA6Mkg8R08u"));
    assert!(html.contains("622588******0018"));
}

#[test]
fn report_escapes_text_and_never_shows_a_clear_pan() {
    let (report, activity) = sample();
    let scores = vec![ScoreSeries::new("m<script>", vec![0.5], Some(1.0))];
    let html = render(&report, &activity, &scores);
    assert!(!html.contains(CLEAR_PAN), "clear PAN in the report");
    assert!(html.contains("622588******7890"), "masked instead");
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<b>replay"));
    assert!(html.contains("M&amp;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("qr_&lt;b&gt;replay&lt;/b&gt;"));
    assert!(html.contains("m&lt;script&gt;"));
    // The only script is the self-check; nothing is fetched.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("Content-Security-Policy"));
    for bad in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(bad), "{bad}");
    }
    let stripped = html.replace("http://www.w3.org/", "");
    assert!(!stripped.contains("http://") && !stripped.contains("https://"));
}

#[test]
fn without_models_or_alerts_the_report_says_so() {
    let stats = Stats::default();
    let report = Report::new(vec![], String::new(), &stats, BTreeMap::new());
    let html = render(&report, &Activity::default(), &[]);
    assert!(html.contains("No models loaded"));
    assert!(html.contains("no labels"));
    assert!(html.contains("No alerts."));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("data-expected-charts=\"2\""));
    assert!(!html.contains("<section id=\"rejects\">"));
}

#[test]
fn sampler_keeps_a_bounded_deterministic_sample() {
    let run = || {
        let mut s = ScoreSampler::new("m", Some(0.5), 100);
        for i in 0..10_000 {
            s.push(i as f64);
        }
        assert_eq!(s.seen(), 10_000);
        s.finish()
    };
    let a = run();
    assert_eq!(a.values.len(), 100);
    assert_eq!(a, run());
    // A uniform sample of 0..10000 reaches well past the first 100 values.
    assert!(a.values.iter().filter(|v| **v >= 100.0).count() > 80);
    assert_eq!(a.threshold, Some(0.5));
}

#[test]
fn esc_covers_markup_and_quotes() {
    assert_eq!(
        esc(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

//! Labels from the risk console (`switchguard train --labels FILE`): JSONL, one line per alert
//! of a disposed case (README "Labels file"). The events of a `confirmed_fraud` alert are
//! positives and those of a `false_positive` alert negatives for the supervised model (beside,
//! or instead of, the simulator's `label`); `inconclusive` is ignored. Per rule, the
//! dispositions give the rule's precision as the analysts judged it (`evaluation.json`).
//! A line that is not a disposition is reported with its file and line and skipped; unknown
//! fields are ignored.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One line of a labels file (the fields `train` reads).
#[derive(Debug, Deserialize)]
struct Line {
    #[serde(default)]
    alert_id: Option<String>,
    rule: String,
    event_ids: Vec<String>,
    disposition: Disposition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Disposition {
    ConfirmedFraud,
    FalsePositive,
    Inconclusive,
}

/// Dispositions of one rule's alerts, and its precision as the analysts judged it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleDispositions {
    pub confirmed_fraud: u64,
    pub false_positive: u64,
    pub inconclusive: u64,
    /// confirmed / (confirmed + false positive); absent when neither.
    pub precision: Option<f64>,
}

/// Everything read from the labels files.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Event id → fraud (true) or not (false). An event both confirmed and cleared in
    /// different alerts is fraud: an analyst confirmed it.
    events: FxHashMap<String, bool>,
    pub per_rule: BTreeMap<String, RuleDispositions>,
    /// Alerts read (lines), and lines skipped with their reason (`file:line: reason`).
    pub alerts: u64,
    pub problems: Vec<String>,
}

/// The summary written to `evaluation.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LabelsReport {
    pub files: Vec<String>,
    pub alerts: u64,
    pub positive_events: u64,
    pub negative_events: u64,
    /// Labelled events the history does not hold (they trained nothing).
    pub not_in_history: u64,
    pub per_rule: BTreeMap<String, RuleDispositions>,
    pub problems: Vec<String>,
}

impl Labels {
    /// Read every file; a file that cannot be read is an error, a bad line a problem.
    pub fn read(files: &[impl AsRef<Path>]) -> anyhow::Result<Labels> {
        let mut l = Labels::default();
        for f in files {
            let f = f.as_ref();
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("labels file {}: {e}", f.display()))?;
            l.add(&f.display().to_string(), &text);
        }
        Ok(l)
    }

    /// Add the lines of one file (`name` for problems).
    pub fn add(&mut self, name: &str, text: &str) {
        for (n, raw) in text.lines().enumerate() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let line: Line = match serde_json::from_str(raw) {
                Ok(l) => l,
                Err(e) => {
                    self.problems.push(format!("{name}:{}: {e}", n + 1));
                    continue;
                }
            };
            if line.event_ids.is_empty() {
                let id = line.alert_id.as_deref().unwrap_or("?");
                self.problems
                    .push(format!("{name}:{}: alert {id} lists no event_ids", n + 1));
                continue;
            }
            self.alerts += 1;
            let r = self.per_rule.entry(line.rule).or_default();
            let fraud = match line.disposition {
                Disposition::ConfirmedFraud => {
                    r.confirmed_fraud += 1;
                    true
                }
                Disposition::FalsePositive => {
                    r.false_positive += 1;
                    false
                }
                Disposition::Inconclusive => {
                    r.inconclusive += 1;
                    continue;
                }
            };
            for id in line.event_ids {
                let v = self.events.entry(id).or_insert(fraud);
                *v |= fraud;
            }
        }
    }

    /// The label of event `id`, if a disposition gives one.
    pub fn of(&self, id: &str) -> Option<bool> {
        self.events.get(id).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The summary for `evaluation.json`, against the ids the history holds.
    pub fn report(&self, files: Vec<String>, in_history: &dyn Fn(&str) -> bool) -> LabelsReport {
        let pos = self.events.values().filter(|v| **v).count() as u64;
        LabelsReport {
            files,
            alerts: self.alerts,
            positive_events: pos,
            negative_events: self.events.len() as u64 - pos,
            not_in_history: self.events.keys().filter(|k| !in_history(k)).count() as u64,
            per_rule: self
                .per_rule
                .iter()
                .map(|(k, r)| {
                    let judged = r.confirmed_fraud + r.false_positive;
                    let precision = (judged > 0).then(|| r.confirmed_fraud as f64 / judged as f64);
                    (
                        k.clone(),
                        RuleDispositions {
                            precision,
                            ..r.clone()
                        },
                    )
                })
                .collect(),
            problems: self.problems.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_label_events_and_give_each_rule_its_precision() {
        let mut l = Labels::default();
        l.add(
            "x.jsonl",
            r#"{"alert_id":"al_1","rule":"pin_consecutive_wrong","entity":"card","entity_id":"tok_a","event_ids":["e1","e2"],"disposition":"confirmed_fraud","disposed_at":"2026-10-02T09:00:00.000Z","actor":"alice","note":"extra fields are fine"}
{"alert_id":"al_2","rule":"pin_consecutive_wrong","event_ids":["e3"],"disposition":"false_positive"}
{"alert_id":"al_3","rule":"qr_replay","event_ids":["e4"],"disposition":"inconclusive"}
{"alert_id":"al_4","rule":"qr_replay","event_ids":["e2"],"disposition":"false_positive"}

not json
{"alert_id":"al_5","rule":"qr_replay","event_ids":[],"disposition":"confirmed_fraud"}
{"alert_id":"al_6","rule":"qr_replay","event_ids":["e9"],"disposition":"maybe"}
"#,
        );
        assert_eq!(l.of("e1"), Some(true));
        assert_eq!(l.of("e2"), Some(true), "confirmed in one alert: fraud");
        assert_eq!(l.of("e3"), Some(false));
        assert_eq!(l.of("e4"), None, "inconclusive trains nothing");
        assert_eq!(l.alerts, 4);
        assert_eq!(l.problems.len(), 3, "{:?}", l.problems);
        assert!(l.problems[0].starts_with("x.jsonl:6:"), "{:?}", l.problems);
        let r = &l.per_rule["pin_consecutive_wrong"];
        assert_eq!((r.confirmed_fraud, r.false_positive), (1, 1));
        let rep = l.report(vec!["x.jsonl".into()], &|id| id != "e3");
        assert_eq!(
            (rep.positive_events, rep.negative_events, rep.not_in_history),
            (2, 1, 1)
        );
    }

    /// What the risk console writes (its own `Label` type, serialised as its export does) is
    /// what `train --labels` reads, line for line.
    #[test]
    fn reads_the_labels_file_the_console_writes() {
        use crate::console::contract::{Disposition as D, Label};
        let line = |id: &str, rule: &str, events: &[&str], d: D| {
            serde_json::to_string(&Label {
                alert_id: id.into(),
                rule: rule.into(),
                entity: "card".into(),
                entity_id: "tok_a".into(),
                event_ids: events.iter().map(|e| e.to_string()).collect(),
                disposition: d,
                disposed_at: "2026-10-02T09:00:00.000Z".into(),
                actor: "alice".into(),
            })
            .unwrap()
        };
        let text = [
            line("al_1", "model_card_outlier", &["e1"], D::ConfirmedFraud),
            line(
                "al_2",
                "model_card_outlier",
                &["e2", "e3"],
                D::FalsePositive,
            ),
            line("al_3", "qr_replay", &["e4"], D::Inconclusive),
        ]
        .join("\n");
        let mut l = Labels::default();
        l.add("console.jsonl", &text);
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        assert_eq!(l.alerts, 3);
        assert_eq!(
            ["e1", "e2", "e3", "e4"].map(|e| l.of(e)),
            [Some(true), Some(false), Some(false), None]
        );
        let r = &l.per_rule["model_card_outlier"];
        assert_eq!((r.confirmed_fraud, r.false_positive), (1, 1));
        assert_eq!(l.per_rule["qr_replay"].inconclusive, 1);
        let rep = l.report(vec!["console.jsonl".into()], &|_| true);
        assert_eq!(rep.per_rule["model_card_outlier"].precision, Some(0.5));
        assert_eq!((rep.positive_events, rep.negative_events), (1, 2));
    }
}

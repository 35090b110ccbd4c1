//! Rule files as an attacker or a careless operator writes them: every problem reported at
//! once with file, rule and line; hostile expressions and durations refused; arithmetic that
//! does not wrap; tables that never silently switch a rule off; PIN semantics; empty rule
//! directories; a digest of the content alone.

use super::*;
use crate::decision::Decisions;
use crate::engine::{Engine, EngineConfig};
use crate::event::Event;

fn src(name: &str, text: &str) -> (String, String) {
    (name.to_string(), text.to_string())
}

fn problems(sources: &[(String, String)]) -> Vec<Problem> {
    RulePack::from_sources(sources).unwrap_err().0
}

fn find<'a>(ps: &'a [Problem], rule: Option<&str>, needle: &str) -> &'a Problem {
    ps.iter()
        .find(|p| p.rule.as_deref() == rule && p.message.contains(needle))
        .unwrap_or_else(|| {
            let all: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            panic!("no {rule:?}/{needle} in:\n{}", all.join("\n"))
        })
}

const BROKEN: &str = r#"
[[rule]]
id = "first_bad"
description = "x"
severity = "hgh"
mode = "enforce"
kind = "consecutive"
key = ["card"]
when = 'response_code == 55'
threshold = "3"
within = "300000000y"
colour = "red"
reason = "r {nope}"

[[rule]]
description = 5
severity = "low"
kind = 7
when = 'approved'
reason = "r"

[[rule]]
id = "third_bad"
description = "z"
severity = "low"
mode = "shadow"
kind = "window"
key = ["card"]
when = 'approved'
window = "10m"
aggregates = "count"
fire = 'n > 1'
reason = "r"
action = { type = "lock_everything", ttl = "24h", reason_code = "X" }

[[rule.example]]
name = 1
events = []
expect = []

[tables.broken]
key = 5
values = { A = 1 }
extra = true

[tables.no_values]
key = "currency"
"#;

#[test]
fn every_problem_of_every_rule_with_its_line() {
    let ps = problems(&[src("broken.toml", BROKEN)]);
    for p in &ps {
        assert_eq!(p.file, "broken.toml");
        assert!(p.line.is_some(), "{p}");
    }
    let line = |rule, needle| find(&ps, rule, needle).line.unwrap();
    let r1 = Some("first_bad");
    assert_eq!(line(r1, "`severity`: unknown variant `hgh`"), 5);
    assert_eq!(line(r1, "quote it"), 9);
    assert_eq!(line(r1, "`threshold`: invalid type: string"), 10);
    assert_eq!(line(r1, "longer than 366 days"), 11);
    assert_eq!(line(r1, "unknown key `colour`"), 12);
    assert_eq!(line(r1, "unknown placeholder {nope}"), 13);
    // No id: the rule is named by its place in the file.
    let r2 = Some("#2");
    assert_eq!(line(r2, "missing `id`"), 15);
    assert_eq!(line(r2, "missing `mode`"), 15);
    assert_eq!(line(r2, "`description`: invalid type: integer"), 16);
    assert_eq!(line(r2, "`kind`: expected one of match, window"), 18);
    let r3 = Some("third_bad");
    assert_eq!(line(r3, "`aggregates`: invalid type: string"), 31);
    assert_eq!(line(r3, "`action`: unknown variant `lock_everything`"), 34);
    assert_eq!(line(r3, "example #1"), 36);
    assert_eq!(line(None, "table broken: `key`: invalid type: integer"), 42);
    assert_eq!(line(None, "table broken: unknown key `extra`"), 44);
    assert_eq!(line(None, "table no_values: missing `values`"), 46);
    // Nothing is reported twice: a broken `aggregates` is not also "needs `aggregates`",
    // a broken `kind` not also "unused" settings.
    assert!(!ps.iter().any(|p| p.message.contains("needs `aggregates`")));
    assert!(!ps.iter().any(|p| p.message.contains("is not used by kind")));
    // Only TOML syntax stops a file, and it says where.
    let ps = problems(&[src("a.toml", "[[rule]]\nid = \"x\"\nseverity = \n")]);
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].line, Some(3));
    assert!(ps[0].message.contains("line 3, column"), "{}", ps[0]);
    assert!(ps[0].to_string().starts_with("a.toml:3: "));
}

/// A rule with `when`, `fire`, an aggregate and `reset` at the given places.
fn rule_with(id: &str, when: &str, fire: &str, count_if: &str) -> String {
    format!(
        r#"
[[rule]]
id = "{id}"
description = "d"
severity = "low"
mode = "enforce"
kind = "window"
key = ["card"]
when = '{when}'
window = "10m"
aggregates = {{ n = 'count_if({count_if})' }}
fire = '{fire}'
reason = "r"
"#
    )
}

#[test]
fn hostile_expressions_are_ordinary_rule_problems() {
    let n = 100_000;
    let ors = vec!["approved"; 10_000].join(" || ");
    let parens = format!("{}n > 1{}", "(".repeat(n), ")".repeat(n));
    let nots = format!("{}approved", "!".repeat(n));
    let calls = format!("{}amount{} ", "has(".repeat(n), ")".repeat(n));
    let negs = format!("{}n > 1", "-".repeat(n));
    let text = rule_with("deep_one", &ors, &parens, &nots)
        + &rule_with("deep_two", &calls, &negs, "approved");
    let ps = problems(&[src("deep.toml", &text)]);
    for (rule, needle) in [
        ("deep_one", "when: expression is"),
        ("deep_one", "fire: expression is"),
        ("deep_one", "aggregate `n`: expression is"),
        ("deep_two", "when: expression is"),
        ("deep_two", "fire: expression is"),
    ] {
        let p = find(&ps, Some(rule), needle);
        assert!(p.line.is_some() && p.message.len() < 400, "{p}");
    }
}

#[test]
fn durations_that_cannot_be_honoured_are_refused() {
    let text = GOOD_WINDOW
        .replace("window = \"10m\"", "window = \"300000000y\"")
        .replace("ttl = \"24h\"", "ttl = \"300000y\"");
    let ps = problems(&[src("d.toml", &text)]);
    find(
        &ps,
        Some("split"),
        "window: duration \"300000000y\" is longer than 366 days",
    );
    find(
        &ps,
        Some("split"),
        "action.ttl: duration \"300000y\" is longer than 366 days",
    );
}

const GOOD_WINDOW: &str = r#"
[[rule]]
id = "split"
description = "taps"
severity = "medium"
mode = "enforce"
kind = "window"
key = ["card"]
when = 'approved'
window = "10m"
aggregates = { taps = "count", total = "sum(amount)" }
fire = "taps >= 3 && total > limit"
params = { limit = 100000 }
reason = "r"
action = { type = "lock_card", ttl = "24h", reason_code = "X" }
"#;

fn event(id: &str, minute: i64, amount: i64, currency: Option<&str>) -> Event {
    serde_json::from_value(serde_json::json!({
        "id": id, "ts": 1_790_816_700_000i64 + minute * 60_000, "type": "auth", "card": "C1",
        "pan_masked": null, "terminal": "T1", "merchant": "M1", "mcc": null, "amount": amount,
        "currency": currency, "entry_mode": "contactless", "pin": "absent",
        "response_code": "00", "auth_ref": null, "original_id": null, "batch": null,
        "qr_ref": null, "label": null,
    }))
    .unwrap()
}

fn run(pack: RulePack, events: &[Event]) -> (Decisions, crate::engine::Stats) {
    let mut engine = Engine::new(Arc::new(pack), EngineConfig::default());
    let mut d = Decisions::default();
    for e in events {
        engine.process(e, &mut d);
    }
    (d, engine.stats().clone())
}

#[test]
fn three_taps_of_2_pow_62_do_not_wrap() {
    let pack = RulePack::from_sources(&[src("w.toml", GOOD_WINDOW)]).unwrap();
    let big = 1i64 << 62;
    let evs: Vec<Event> = (0..3)
        .map(|i| event(&format!("t{i}"), i, big, Some("CNY")))
        .collect();
    let (d, _) = run(pack, &evs);
    assert_eq!(d.alerts.len(), 1, "the split-tap rule fires");
    let total = &d.alerts[0].features["total"];
    assert!(total.as_f64().unwrap() > 1.3e19, "{total}");
}

#[test]
fn a_table_default_is_used_and_counted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let pack = RulePack::load_dir(&dir).unwrap();
    let slot = pack
        .tables
        .iter()
        .find(|t| t.name == "nocvm_limit")
        .unwrap()
        .slot;
    let bypass = |id: &str, amount, currency: Option<&str>| {
        let mut e = event(id, 0, amount, currency);
        e.entry_mode = Some(crate::event::EntryMode::Chip);
        e.pin = Some(crate::event::Pin::Bypassed);
        e
    };
    let evs = [
        bypass("cny", 150_000, Some("CNY")),
        bypass("jpy", 12_000, Some("JPY")),
        bypass("xaf", 150_000, Some("XAF")),
        bypass("none", 150_000, None),
    ];
    let (d, stats) = run(pack, &evs);
    let hits: Vec<&str> = d
        .alerts
        .iter()
        .filter(|a| a.rule == "nopin_bypass_over_limit")
        .map(|a| a.event_ids.last().unwrap().as_str())
        .collect();
    assert_eq!(hits, ["cny", "jpy", "xaf", "none"]);
    assert_eq!(stats.tables[slot].table, "nocvm_limit");
    assert_eq!(
        stats.tables[slot].defaults, 2,
        "XAF and no currency used the default"
    );
    assert_eq!(stats.table_defaults()["nocvm_limit"], 2);
}

#[test]
fn rules_check_describes_tables_and_warns_without_a_default() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let notes = tables::notes(&RulePack::load_dir(&dir).unwrap());
    assert_eq!(notes.len(), 1);
    assert!(!notes[0].warning);
    for needle in [
        "table nocvm_limit (by currency",
        "JPY",
        "KRW",
        "AUD",
        "THB",
        ": 0 (the default)",
    ] {
        assert!(
            notes[0].text.contains(needle),
            "{needle}: {}",
            notes[0].text
        );
    }
    let no_default = format!(
        "{}\n[tables.limit]\nkey = \"currency\"\nvalues = {{ CNY = 100000 }}\n",
        GOOD_WINDOW.replace("params = { limit = 100000 }\n", "")
    );
    let pack = RulePack::from_sources(&[src("t.toml", &no_default)]).unwrap();
    let notes = tables::notes(&pack);
    assert!(
        notes[0].warning && notes[0].text.contains("NO DEFAULT"),
        "{notes:?}"
    );
    // Mixed types and a numeric key field are refused.
    let bad = "[tables.x]\nkey = \"mcc\"\nvalues = { A = 1, B = \"two\" }\n";
    let ps = problems(&[src("t.toml", bad)]);
    find(&ps, None, "key field `mcc` is not a text field");
    find(&ps, None, "of one type");
}

#[test]
fn pin_fields_count_only_pin_attempts() {
    let pin_attempt = |e: &crate::event::Event| e.pin_attempt();
    let wrong_pin = |e: &crate::event::Event| e.wrong_pin();
    let pin_verified = |e: &crate::event::Event| e.pin_verified();
    let e = |kind: &str, pin: Option<&str>, rc: &str| {
        let mut e = event("x", 0, 100, Some("CNY"));
        e.kind = crate::event::EventType::parse(kind).unwrap();
        e.pin = pin.map(|p| crate::event::Pin::parse(p).unwrap());
        e.response_code = Some(rc.into());
        e
    };
    for kind in ["auth", "preauth", "transfer"] {
        assert!(wrong_pin(&e(kind, Some("entered"), "55")));
        assert!(pin_verified(&e(kind, Some("entered"), "00")));
        assert!(pin_verified(&e(kind, Some("entered"), "51")));
        assert!(!wrong_pin(&e(kind, Some("timeout"), "55")));
        assert!(!wrong_pin(&e(kind, None, "55")));
        assert!(!pin_verified(&e(kind, Some("absent"), "00")));
        assert!(!pin_verified(&e(kind, Some("entered"), "05")));
    }
    for kind in [
        "reversal",
        "refund",
        "preauth_cancel",
        "completion",
        "sign_on",
        "sign_off",
    ] {
        assert!(!pin_attempt(&e(kind, Some("entered"), "55")), "{kind}");
        assert!(!wrong_pin(&e(kind, Some("entered"), "55")), "{kind}");
        assert!(!pin_verified(&e(kind, Some("entered"), "00")), "{kind}");
    }
}

#[test]
fn a_directory_without_rules_is_refused_or_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let err = RulePack::load_dir(dir.path()).unwrap_err();
    assert!(err.0[0].message.contains("no rule files (*.toml)"), "{err}");
    let pack = RulePack::load_dir_allow_empty(dir.path()).unwrap();
    assert!(pack.rules.is_empty());
    assert!(empty_pack_problem(dir.path(), &pack).is_some());
    // Files with tables but no [[rule]] are no better.
    std::fs::write(
        dir.path().join("limits.toml"),
        "[tables.t]\nkey = \"currency\"\nvalues = { CNY = 1 }\n",
    )
    .unwrap();
    let err = RulePack::load_dir(dir.path()).unwrap_err();
    assert!(err.0[0].message.contains("no [[rule]]"), "{err}");
}

#[test]
fn the_digest_depends_on_content_only() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let digest = |p: &std::path::Path| RulePack::load_dir(p).unwrap().digest;
    let a = digest(&root.join("rules"));
    assert_eq!(a, digest(&root.join("rules/")));
    assert_eq!(a, digest(&root.join("rules/../rules/.")));
    assert_eq!(a, digest(&root.join("models/../rules")));
    let copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(root.join("rules")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
    }
    assert_eq!(a, digest(copy.path()), "same files elsewhere");
    let pin = copy.path().join("pin.toml");
    let text = std::fs::read_to_string(&pin).unwrap();
    std::fs::write(&pin, text.replace("threshold = 3", "threshold = 4")).unwrap();
    assert_ne!(a, digest(copy.path()), "an edit changes it");
}

/// Found by the fuzz: malformed TOML on which the toml parser's recursion guard goes
/// negative and the parser recurses once per `[` (46 KB overflowed an 8 MiB stack).
#[test]
fn a_toml_file_that_would_overflow_the_parser_is_refused_first() {
    let text = format!(
        "=[{{d{{d 1{}[]r \"\ne{}",
        "{}".repeat(11_230),
        "[".repeat(12_040)
    );
    let ps = problems(&[src("f.toml", &text)]);
    assert_eq!(ps.len(), 1);
    assert!(
        ps[0].message.contains("nested more than 64 deep"),
        "{}",
        ps[0]
    );
    assert_eq!(ps[0].line, Some(2));
}

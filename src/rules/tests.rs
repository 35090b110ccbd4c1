use super::*;

fn src(name: &str, text: &str) -> (String, String) {
    (name.to_string(), text.to_string())
}

const GOOD: &str = r#"
[[rule]]
id = "ok_rule"
description = "fine"
severity = "low"
mode = "enforce"
kind = "match"
when = 'response_code == "55"'
reason = "wrong PIN at {terminal}"
"#;

#[test]
fn every_problem_in_every_file_is_reported_at_once() {
    let bad_rules = r#"
[[rule]]
id = "bad_one"
description = "x"
severity = "high"
mode = "enforce"
kind = "window"
key = ["card", "amount"]
when = 'response_code == 55'
window = "ten minutes"
aggregates = { n = "count", s = "sum(terminal)" }
fire = "n >= 3 && nonsense > 1"
reason = "{n} and {missing}"

[[rule]]
id = "bad_two"
description = "y"
severity = "low"
mode = "shadow"
kind = "sequence"
key = ["card"]
first = 'pin == "entred"'
then = 'label == "attack"'
reason = "r"
action = { type = "lock_card", ttl = "forever", reason_code = "X" }

[[rule]]
id = "ok_rule"
description = "dup"
severity = "low"
mode = "enforce"
kind = "match"
when = "approved"
threshold = 3
reason = "r"
"#;
    let syntax = "[[rule]]\nid = \"broken\"\nseverity = \n";
    let unknown_key = GOOD.replace("reason =", "colour = \"red\"\nreason =");
    let err = RulePack::from_sources(&[
        src("a.toml", GOOD),
        src("b.toml", bad_rules),
        src("c.toml", syntax),
        src("d.toml", &unknown_key),
    ])
    .unwrap_err();
    let all: Vec<String> = err.0.iter().map(|p| p.to_string()).collect();
    let has = |file: &str, rule: Option<&str>, needle: &str| {
        assert!(
            err.0
                .iter()
                .any(|p| p.file == file && p.rule.as_deref() == rule && p.message.contains(needle)),
            "missing {file}/{rule:?}/{needle} in:\n{}",
            all.join("\n")
        )
    };
    has(
        "b.toml",
        Some("bad_one"),
        "key field `amount` is not a text field",
    );
    has("b.toml", Some("bad_one"), "quote it");
    has("b.toml", Some("bad_one"), "window: bad duration");
    has(
        "b.toml",
        Some("bad_one"),
        "sum(terminal) needs a numeric field",
    );
    has("b.toml", Some("bad_one"), "unknown name `nonsense`");
    has("b.toml", Some("bad_one"), "unknown placeholder {missing}");
    has(
        "b.toml",
        Some("bad_two"),
        "\"entred\" is not a value of `pin`",
    );
    has(
        "b.toml",
        Some("bad_two"),
        "`label` is evaluation ground truth",
    );
    has("b.toml", Some("bad_two"), "kind Sequence needs `within`");
    has("b.toml", Some("bad_two"), "action.ttl");
    has(
        "b.toml",
        Some("ok_rule"),
        "duplicate rule id (also in a.toml)",
    );
    has(
        "b.toml",
        Some("ok_rule"),
        "`threshold` is not used by kind Match",
    );
    has("c.toml", None, "line 3");
    has("d.toml", Some("ok_rule"), "unknown key `colour`");
    assert!(err.to_string().contains("problem(s) in rules"));
}

#[test]
fn off_rules_are_validated_but_not_loaded() {
    let off = GOOD.replace("enforce", "off");
    let pack = RulePack::from_sources(&[src("a.toml", &off)]).unwrap();
    assert!(pack.rules.is_empty());
    let broken = off.replace("response_code == \"55\"", "response_code == 55");
    assert!(RulePack::from_sources(&[src("a.toml", &broken)]).is_err());
}

#[test]
fn a_missing_directory_is_a_clear_problem() {
    let err = RulePack::load_dir(std::path::Path::new("/nonexistent/rules")).unwrap_err();
    assert!(err.0[0].message.contains("cannot read rules directory"));
}

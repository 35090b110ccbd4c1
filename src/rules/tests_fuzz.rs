//! A fuzz of the rule compiler, run for a bounded time in `cargo test`: random rule files
//! built from the format's grammar (every kind, key and setting, right and wrong types,
//! expressions from an expression grammar, deeply nested or very long ones) and default rule
//! files mutated byte by byte (insertions, deletions, repeated slices, truncation).
//!
//! Asserted for every input: the compiler neither panics nor overflows the stack (it runs on
//! a 1 MiB stack, half a test thread's); every problem names the file and a line, and every
//! problem inside a rule names the rule; messages stay short; a pack that loads evaluates
//! events without panicking.
//!
//! `SWITCHGUARD_FUZZ_SECS` sets the budget (default 15 s), `SWITCHGUARD_FUZZ_SEED` repeats a
//! run (the seed is printed; a failure prints its seed and round and the shrunk input), and
//! `SWITCHGUARD_FUZZ_LAST=FILE` writes each input to FILE before it is tried (after an abort,
//! FILE holds the input that caused it); `SWITCHGUARD_FUZZ_TRACE=1` prints each round and
//! `SWITCHGUARD_FUZZ_ROUND=N` starts at round N, to get there quickly.

use super::*;
use crate::decision::Decisions;
use crate::engine::{Engine, EngineConfig};
use crate::event::Event;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_FILES: [&str; 7] = [
    include_str!("../../rules/limits.toml"),
    include_str!("../../rules/models.toml"),
    include_str!("../../rules/nopin.toml"),
    include_str!("../../rules/pin.toml"),
    include_str!("../../rules/preauth.toml"),
    include_str!("../../rules/qr.toml"),
    include_str!("../../rules/terminal.toml"),
];

const NAMES: &[&str] = &[
    "amount",
    "approved",
    "card",
    "currency",
    "entry_mode",
    "financial",
    "mcc",
    "pin",
    "pin_attempt",
    "wrong_pin",
    "pin_verified",
    "response_code",
    "terminal",
    "type",
    "ts",
    "preauth_open",
    "preauth_amount",
    "qr_prior_payments",
    "density_pct",
    "fraud_probability",
    "nocvm_limit",
    "p",
    "n",
    "taps",
    "label",
    "nonsense",
    "explain",
];
const LITERALS: &[&str] = &[
    "0",
    "1",
    "3",
    "55",
    "\"55\"",
    "\"00\"",
    "\"entered\"",
    "\"entred\"",
    "\"auth\"",
    "\"contactless\"",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "99999999999999999999999",
    "1e308",
    "1e309",
    "0.5",
    "NaN",
    "inf",
    "true",
    "false",
    "()",
    "\"\"",
    "\"(((\"",
    "\"a\\\"b\"",
];
const UNARY: &[&str] = &["!", "-", "!!", "- -"];
const BINARY: &[&str] = &[
    "&&", "||", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "^", "=", ";", ",",
    "+=", "&&=",
];
const FUNCS: &[&str] = &["one_of", "has", "in_range", "count_if", "sum", "nope", ""];
/// (prefix, suffix) repeated around an expression to nest it deep or chain it long.
const DEEP: &[(&str, &str)] = &[
    ("(", ")"),
    ("!", ""),
    ("-", ""),
    ("has(", ")"),
    ("one_of(", ", 1)"),
    ("!(", ")"),
    ("approved || ", ""),
    ("1 + ", ""),
    ("-(", ")"),
    ("(", ""),
    ("", ")"),
];
const DURATIONS: &[&str] = &[
    "10m",
    "24h",
    "1h",
    "0s",
    "1ms",
    "1500us",
    "366d",
    "367d",
    "300000000y",
    "300000y",
    "18446744073709551615s",
    "ten minutes",
    "",
    "-1s",
    "1y 1ns",
];

fn expr() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        select(NAMES).prop_map(String::from),
        select(LITERALS).prop_map(String::from),
        any::<i64>().prop_map(|i| i.to_string()),
        "[a-z_0-9]{0,6}",
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (select(UNARY), inner.clone()).prop_map(|(op, e)| format!("{op}{e}")),
            (inner.clone(), select(BINARY), inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (select(FUNCS), vec(inner, 0..5))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
        ]
    })
    .boxed()
}

/// An expression, sometimes nested or chained up to 20,000 times.
fn any_expr() -> BoxedStrategy<String> {
    let deep = (select(DEEP), 1usize..20_000, expr())
        .prop_map(|((p, s), n, e)| format!("{}{e}{}", p.repeat(n), s.repeat(n)));
    prop_oneof![4 => expr(), 1 => deep].boxed()
}

/// Any TOML value, mostly of the wrong type for whatever key receives it.
fn junk() -> BoxedStrategy<toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        select(vec![0.5, f64::NAN, f64::INFINITY, -1e300]).prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        ".{0,12}".prop_map(toml::Value::String),
        vec(any::<i64>().prop_map(toml::Value::Integer), 0..3).prop_map(toml::Value::Array),
        Just(toml::Value::Table(toml::Table::new())),
    ]
    .boxed()
}

fn opt_str(s: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Option<toml::Value>> {
    proptest::option::of(s.prop_map(toml::Value::String)).boxed()
}

fn aggregate() -> BoxedStrategy<String> {
    prop_oneof![
        Just("count".to_string()),
        Just("sum(amount)".to_string()),
        Just("sum(terminal)".to_string()),
        Just("distinct(card)".to_string()),
        any_expr().prop_map(|e| format!("count_if({e})")),
        ".{0,10}",
    ]
    .boxed()
}

/// One `[[rule]]` from the format's grammar, right and wrong.
fn rule() -> BoxedStrategy<toml::Table> {
    let head = (
        prop_oneof!["[a-z_]{1,12}", ".{0,16}"],
        select(vec!["match", "window", "consecutive", "sequence", "bogus"]),
        select(vec!["low", "high", "hgh"]),
        select(vec!["enforce", "shadow", "off", "loud"]),
        vec(
            select(vec!["card", "merchant", "terminal", "amount", "nope"]),
            0..3,
        ),
    );
    let exprs = (
        opt_str(any_expr()),
        opt_str(any_expr()),
        opt_str(any_expr()),
        opt_str(any_expr()),
        opt_str(any_expr()),
    );
    let settings = (
        opt_str(select(DURATIONS).prop_map(String::from)),
        opt_str(select(DURATIONS).prop_map(String::from)),
        proptest::option::of(any::<i64>()),
        btree_map("[a-z]{1,4}", aggregate(), 0..6),
        btree_map("[a-z]{1,4}", junk(), 0..3),
        proptest::option::of((
            select(vec!["lock_card", "lock_terminal", "lock_all"]),
            select(DURATIONS),
        )),
        proptest::option::of((select(config::RULE_KEYS.to_vec()), junk())),
        proptest::option::of(("[a-z]{1,8}", junk())),
        ".{0,40}",
    );
    (head, exprs, settings)
        .prop_map(|((id, kind, sev, mode, key), e, s)| {
            let mut t = toml::Table::new();
            let mut put = |k: &str, v: toml::Value| {
                t.insert(k.into(), v);
            };
            put("id", toml::Value::String(id));
            put("description", "fuzzed".into());
            put("severity", sev.into());
            put("mode", mode.into());
            put("kind", kind.into());
            put(
                "key",
                toml::Value::Array(key.into_iter().map(Into::into).collect()),
            );
            for (k, v) in [
                ("when", e.0),
                ("reset", e.1),
                ("first", e.2),
                ("then", e.3),
                ("fire", e.4),
            ] {
                if let Some(v) = v {
                    put(k, v);
                }
            }
            for (k, v) in [("window", s.0), ("within", s.1)] {
                if let Some(v) = v {
                    put(k, v);
                }
            }
            if let Some(th) = s.2 {
                put("threshold", th.into());
            }
            if !s.3.is_empty() {
                put(
                    "aggregates",
                    toml::Value::Table(s.3.into_iter().map(|(k, v)| (k, v.into())).collect()),
                );
            }
            put("params", toml::Value::Table(s.4.into_iter().collect()));
            if let Some((kind, ttl)) = s.5 {
                let mut a = toml::Table::new();
                a.insert("type".into(), kind.into());
                a.insert("ttl".into(), ttl.into());
                a.insert("reason_code".into(), "X".into());
                put("action", toml::Value::Table(a));
            }
            // A known key given a value of the wrong type, and an unknown key.
            if let Some((k, v)) = s.6 {
                put(k, v);
            }
            if let Some((k, v)) = s.7 {
                put(&k, v);
            }
            put("reason", s.8.into());
            t
        })
        .boxed()
}

/// A whole file from the grammar: rules, and the default table or a broken one.
fn grammar_file() -> BoxedStrategy<String> {
    (
        vec(rule(), 1..4),
        any::<bool>(),
        proptest::option::of(junk()),
    )
        .prop_map(|(rules, limits, table)| {
            let mut doc = toml::Table::new();
            doc.insert(
                "rule".into(),
                toml::Value::Array(rules.into_iter().map(toml::Value::Table).collect()),
            );
            let mut text = toml::to_string(&doc).unwrap_or_default();
            if limits {
                text.push('\n');
                text.push_str(DEFAULT_FILES[0]);
            }
            if let Some(v) = table {
                text.push_str(&format!(
                    "\n[tables.fuzz]\nkey = \"currency\"\nvalues = {{ A = {v} }}\n"
                ));
            }
            text
        })
        .boxed()
}

/// What the byte-level mutation repeats: structure of TOML and of expressions.
const PIECES: &[&str] = &[
    "(", ")", "[", "]", "{", "}", "\"", "'", "\n", "=", "!", "|", "&", ",", "#", "{}", "[]", "[{",
    "a = [", "{ a = ", "\"\"\"", "'''", "/*", "//", "\\", "-",
];

/// A default rule file, mutated byte by byte.
fn mutated_file() -> BoxedStrategy<String> {
    let edit = (
        0u8..6,
        any::<usize>(),
        0usize..64,
        any::<u8>(),
        1usize..3000,
    );
    (select(DEFAULT_FILES.to_vec()), vec(edit, 1..8))
        .prop_map(|(base, edits)| {
            let mut b = base.as_bytes().to_vec();
            for (kind, pos, len, byte, reps) in edits {
                let at = pos % (b.len() + 1);
                let end = (at + len).min(b.len());
                match kind {
                    0 => b.insert(at, byte),
                    1 => drop(b.drain(at..end)),
                    2 => {
                        let slice = b[at..end].repeat(reps.min(200_000 / (end - at + 1)));
                        b.splice(at..at, slice);
                    }
                    3 => {
                        let piece = PIECES[byte as usize % PIECES.len()].as_bytes();
                        b.splice(at..at, piece.repeat(reps));
                    }
                    4 => b.truncate(at),
                    _ => {
                        if let Some(x) = b.get_mut(at) {
                            *x = byte;
                        }
                    }
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        })
        .boxed()
}

/// Rule-file-level messages: the only problems that name no rule.
const FILE_LEVEL: [&str; 5] = [
    "TOML syntax error",
    "table ",
    "unknown top-level key",
    "`rule` must",
    "`tables` must",
];

fn check(text: &str, events: &[Event]) {
    match RulePack::from_sources(&[("f.toml".to_string(), text.to_string())]) {
        Err(RuleErrors(problems)) => {
            assert!(!problems.is_empty());
            for p in &problems {
                assert_eq!(p.file, "f.toml");
                assert!(p.line.is_some(), "no line: {p}");
                assert!(
                    p.message.len() <= 600,
                    "long message: {}",
                    clip(&p.message, 600)
                );
                match &p.rule {
                    Some(r) => assert!(!r.is_empty(), "{p}"),
                    None => assert!(
                        FILE_LEVEL.iter().any(|f| p.message.starts_with(f)),
                        "a problem without a rule: {p}"
                    ),
                }
            }
        }
        Ok(pack) => {
            let mut engine = Engine::new(Arc::new(pack), EngineConfig::default());
            let mut d = Decisions::default();
            for e in events {
                engine.process(e, &mut d);
            }
        }
    }
}

fn events() -> Vec<Event> {
    let kinds = [
        "auth",
        "preauth",
        "transfer",
        "reversal",
        "refund",
        "completion",
        "sign_on",
    ];
    let mut out = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        for (j, rc) in ["55", "00", "75"].iter().enumerate() {
            let amount = [1i64 << 62, i64::MAX, 0][j];
            let (currency, pin) = (["CNY", "XAF"][i % 2], ["entered", "absent", "bypassed"][j]);
            let e = serde_json::json!({
                "id": format!("e{i}{j}"), "ts": 1_790_816_700_000i64 + (i * 3 + j) as i64 * 1000,
                "type": kind, "card": "C1", "pan_masked": null, "terminal": "T1",
                "merchant": "M1", "mcc": 5411, "amount": amount,
                "currency": currency, "entry_mode": "contactless",
                "pin": pin, "response_code": rc,
                "auth_ref": "A1", "original_id": null, "batch": null, "qr_ref": "Q1",
                "label": null,
            });
            out.push(serde_json::from_value(e).unwrap());
        }
    }
    out
}

#[test]
fn the_rule_compiler_survives_random_and_mutated_rule_files() {
    let secs: u64 = std::env::var("SWITCHGUARD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let seed: u64 = std::env::var("SWITCHGUARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("rule fuzz: {secs} s, SWITCHGUARD_FUZZ_SEED={seed}");
    let run = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || fuzz(secs, seed))
        .unwrap()
        .join();
    if let Err(e) = run {
        std::panic::resume_unwind(e);
    }
}

fn fuzz(secs: u64, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let strategy = prop_oneof![grammar_file(), mutated_file()];
    let events = events();
    let cases = AtomicUsize::new(0);
    let last = std::env::var_os("SWITCHGUARD_FUZZ_LAST");
    let trace = std::env::var_os("SWITCHGUARD_FUZZ_TRACE").is_some();
    let mut round: u64 = std::env::var("SWITCHGUARD_FUZZ_ROUND")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    while Instant::now() < deadline {
        if trace {
            eprintln!("rule fuzz: round {round}");
        }
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&round.to_le_bytes());
        let config = Config {
            cases: 16,
            failure_persistence: None,
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        let result = runner.run(&strategy, |text| {
            cases.fetch_add(1, Ordering::Relaxed);
            // An overflow aborts the process before proptest can report: keep the input.
            if let Some(path) = &last {
                std::fs::write(path, &text).expect("SWITCHGUARD_FUZZ_LAST is writable");
            }
            check(&text, &events);
            Ok(())
        });
        if let Err(e) = result {
            let shown: String = format!("{e}").chars().take(4000).collect();
            panic!("rule fuzz failed (SWITCHGUARD_FUZZ_SEED={seed}, round {round}): {shown}");
        }
        round += 1;
    }
    let n = cases.load(Ordering::Relaxed);
    eprintln!("rule fuzz: {n} rule files in {round} rounds");
    assert!(n >= 16, "the fuzz ran ({n} files)");
}

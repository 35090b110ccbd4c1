use super::*;
use crate::decode::Decoder;

fn ev(json: &str) -> Event {
    Decoder::default().decode_json(json.as_bytes()).unwrap()
}

fn run(src: &str, json: &str) -> Val<'static> {
    let params = BTreeMap::from([("limit".to_string(), Lit::Int(1000))]);
    let mut values = FxHashMap::default();
    values.insert(CompactString::from("CNY"), Lit::Int(100_000));
    let tables = BTreeMap::from([(
        "nocvm".to_string(),
        Arc::new(Table {
            name: "nocvm".into(),
            key: Field::Currency,
            values,
            default: Lit::Null,
            slot: 0,
        }),
    )]);
    let aggs = vec![];
    let scope = Scope {
        aggs: &aggs,
        params: &params,
        tables: &tables,
    };
    let (e, _, _) = compile(src, &scope).unwrap_or_else(|e| panic!("{e}"));
    let e: &'static Expr = Box::leak(Box::new(e));
    let ev: &'static Event = Box::leak(Box::new(ev(json)));
    let f: &'static Features = Box::leak(Box::default());
    let misses: &'static std::cell::Cell<u64> = Box::leak(Box::default());
    let ctx = Ctx {
        ev,
        f,
        aggs: &[],
        misses,
    };
    match e.eval(&ctx) {
        Val::Str(s) => Val::Str(Box::leak(s.to_string().into_boxed_str())),
        v => unsafe_static(v),
    }
}

fn unsafe_static(v: Val) -> Val<'static> {
    match v {
        Val::Null => Val::Null,
        Val::Bool(b) => Val::Bool(b),
        Val::Int(i) => Val::Int(i),
        Val::Float(f) => Val::Float(f),
        Val::Str(_) => unreachable!(),
    }
}

const E: &str = r#"{"id":"x","ts":1790816700000,"type":"auth","terminal":"T1","merchant":"M1","mcc":"7011","amount":150000,"currency":"CNY","pin":"bypassed","response_code":"00"}"#;
const BARE: &str = r#"{"id":"x","ts":1790816700000,"type":"auth","terminal":"T1","merchant":"M1"}"#;

#[test]
fn fields_params_tables_and_functions() {
    assert_eq!(
        run(r#"response_code == "00" && approved"#, E),
        Val::Bool(true)
    );
    assert_eq!(run("amount > nocvm", E), Val::Bool(true));
    assert_eq!(run("amount * 2 - limit", E), Val::Int(299_000));
    assert_eq!(run("amount / 4", E), Val::Float(37_500.0));
    assert_eq!(
        run(r#"mcc == "7011""#, E),
        Val::Bool(true),
        "digit strings coerce for numeric fields"
    );
    assert_eq!(run("in_range(mcc, 7000, 7100)", E), Val::Bool(true));
    assert_eq!(
        run(r#"one_of(pin, "timeout", "bypassed")"#, E),
        Val::Bool(true)
    );
    assert_eq!(run("has(qr_ref)", E), Val::Bool(false));
    assert_eq!(run("!(amount < 10) || false", E), Val::Bool(true));
}

#[test]
fn null_semantics() {
    assert_eq!(run("amount > 5", BARE), Val::Bool(false));
    assert_eq!(run("amount <= 5", BARE), Val::Bool(false));
    assert_eq!(run(r#"pin != "entered""#, BARE), Val::Bool(true));
    assert_eq!(run(r#"pin == "entered""#, BARE), Val::Bool(false));
    assert_eq!(run("amount + 1", BARE), Val::Null);
    assert_eq!(
        run("amount > nocvm", BARE),
        Val::Bool(false),
        "no currency → no limit → false"
    );
    assert_eq!(run("amount / 0", E), Val::Null);
    assert_eq!(run("terminal_signon_age_h <= 24", E), Val::Bool(false));
}

#[test]
fn nonsense_is_refused_at_compile_time() {
    let params = BTreeMap::new();
    let tables = BTreeMap::new();
    let scope = Scope {
        aggs: &[],
        params: &params,
        tables: &tables,
    };
    for (src, needle) in [
        ("response_code == 55", "quote it"),
        (
            r#"entry_mode == "contactles""#,
            "not a value of `entry_mode`",
        ),
        ("amount && approved", "join conditions"),
        ("amount + terminal", "arithmetic needs numbers"),
        ("foo > 1", "unknown name `foo`"),
        ("label == \"legit\"", "ground truth"),
        ("a = 1", "not allowed"),
        ("explode(amount)", "unknown function"),
        ("amount >", ""),
        (r#"amount == "lots""#, "compares a number with text"),
    ] {
        let err = compile(src, &scope)
            .err()
            .unwrap_or_else(|| panic!("{src} compiled"))
            .to_string();
        assert!(err.contains(needle), "{src}: {err}");
    }
    assert!(compile_bool("amount + 1", &scope)
        .unwrap_err()
        .to_string()
        .contains("must be a condition"));
}

#[test]
fn hostile_expressions_are_refused_without_overflowing_the_stack() {
    let params = BTreeMap::new();
    let tables = BTreeMap::new();
    let scope = Scope {
        aggs: &[],
        params: &params,
        tables: &tables,
    };
    let n = 100_000;
    let cases = [
        vec!["approved"; 10_000].join(" || "),
        vec!["approved"; 300].join(" || "),
        vec!["approved"; 100].join(" && "),
        format!("{}approved{}", "(".repeat(n), ")".repeat(n)),
        format!("{}approved", "!".repeat(n)),
        format!("{}approved", "!".repeat(400)),
        format!("{}1 > 0", "-".repeat(n)),
        format!("{}1 > 0", "- ".repeat(200)),
        format!("{}amount{} > 0", "has(".repeat(n), ")".repeat(n)),
        format!("{}amount{} > 0", "has(".repeat(80), ")".repeat(80)),
        format!("amount > {}", "9".repeat(n)),
        format!("merchant == \"{}\"", "x".repeat(n)),
        format!("one_of(mcc, {})", vec!["7011"; 2000].join(", ")),
        "(".repeat(n),
        ")".repeat(n),
        // A comment makes the quote no string: the brackets behind it still count.
        format!("/* \" */ {}1{} > 0", "(".repeat(2000), ")".repeat(2000)),
        format!("// \"\n{}approved", "!".repeat(1000)),
    ];
    for src in &cases {
        let err = compile_bool(src, &scope)
            .err()
            .unwrap_or_else(|| panic!("{} compiled", &src[..40]))
            .to_string();
        assert!(
            err.contains("limit is") || err.contains("levels deep"),
            "{}: {err}",
            &src[..40]
        );
        assert!(err.len() < 400, "the message does not echo the input");
    }
    // Within the limits, on a thread with a small stack: parse, compile, evaluate, drop.
    let within = [
        vec!["approved"; 60].join(" || "),
        format!("{}approved{}", "(".repeat(60), ")".repeat(60)),
        format!("{}approved", "!".repeat(62)),
        format!("one_of(mcc, {})", vec!["7011"; 250].join(", ")),
    ];
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let params = BTreeMap::new();
            let tables = BTreeMap::new();
            let scope = Scope {
                aggs: &[],
                params: &params,
                tables: &tables,
            };
            let ev = ev(E);
            let f = Features::default();
            let misses = std::cell::Cell::new(0);
            for src in &within {
                let (e, _) = compile_bool(src, &scope).unwrap_or_else(|e| panic!("{e}"));
                let ctx = Ctx {
                    ev: &ev,
                    f: &f,
                    aggs: &[],
                    misses: &misses,
                };
                e.test(&ctx);
                // Just under the token limit: prefix runs are refused before evalexpr sees
                // them; a chain and a mixed-precedence chain reach evalexpr's parser and are
                // refused on the tree, without overflowing this small stack.
                let nots = format!("{}approved", "!".repeat(MAX_TOKENS_FOR_TEST));
                assert!(compile_bool(&nots, &scope).is_err());
                let chain = vec!["approved"; MAX_TOKENS_FOR_TEST / 2].join(" || ");
                assert!(compile_bool(&chain, &scope).is_err());
                let mixed = vec!["amount"; MAX_TOKENS_FOR_TEST / 2 - 1].join(" + 1 * ");
                assert!(compile_bool(&format!("{mixed} > 0"), &scope).is_err());
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Half a standard thread's 2 MiB: the limits must leave that margin even in a debug build,
/// whose frames are several times larger than a release build's (256 KiB overflowed there
/// on a 60-term chain).
const STACK: usize = 1024 * 1024;

const MAX_TOKENS_FOR_TEST: usize = limits::MAX_EXPR_TOKENS - 1;

#[test]
fn arithmetic_never_wraps() {
    // -i64::MIN and i64::MAX + 1 become real numbers: the comparison keeps its direction.
    let big = format!(
        r#"{{"id":"x","ts":1790816700000,"type":"auth","terminal":"T1","merchant":"M1","amount":{}}}"#,
        i64::MAX
    );
    assert_eq!(run("amount + 1 > amount", &big), Val::Bool(true));
    assert_eq!(run("amount * 3 > 1000", &big), Val::Bool(true));
    assert_eq!(run("0 - amount - 2 < 0", &big), Val::Bool(true));
    assert_eq!(run("-(0 - amount - 1) > 0", &big), Val::Bool(true));
    assert!(matches!(run("-(0 - amount - 1)", &big), Val::Float(f) if f > 9.2e18));
    assert_eq!(run("amount % 0", &big), Val::Null);
    // Integers against reals compare exactly, whatever their size.
    assert_eq!(run("amount < amount + 1", &big), Val::Bool(true));
    assert_eq!(run("amount == amount + 1", &big), Val::Bool(false));
    assert_eq!(run("amount + 1 != amount", &big), Val::Bool(true));
    assert_eq!(
        run("amount >= 9.2e18 && amount < 9223372036854775808.0", &big),
        Val::Bool(true)
    );
    assert_eq!(run("0 - amount > -9.3e18", &big), Val::Bool(true));
    assert_eq!(run("3 > 2.5 && 2 < 2.5 && 2 == 2.0", E), Val::Bool(true));
}

#[test]
fn a_table_lookup_that_falls_back_to_the_default_is_marked() {
    let mut values = FxHashMap::default();
    values.insert(CompactString::from("CNY"), Lit::Int(100_000));
    let table = Arc::new(Table {
        name: "nocvm".into(),
        key: Field::Currency,
        values,
        default: Lit::Int(0),
        slot: 5,
    });
    let tables = BTreeMap::from([("nocvm".to_string(), table)]);
    let params = BTreeMap::new();
    let scope = Scope {
        aggs: &[],
        params: &params,
        tables: &tables,
    };
    let (e, _) = compile_bool("amount > nocvm", &scope).unwrap();
    let f = Features::default();
    for (json, hit, missed) in [
        (E.to_string(), true, false),
        (E.replace("CNY", "JPY"), true, true),
        (E.replace(r#","currency":"CNY""#, ""), true, true),
    ] {
        let ev = ev(&json);
        let misses = std::cell::Cell::new(0);
        let ctx = Ctx {
            ev: &ev,
            f: &f,
            aggs: &[],
            misses: &misses,
        };
        assert_eq!(e.test(&ctx), hit, "{json}");
        assert_eq!(misses.get() == 1 << 5, missed, "{json}");
    }
}

#[test]
fn non_finite_literals_are_refused() {
    let params = BTreeMap::new();
    let tables = BTreeMap::new();
    let scope = Scope {
        aggs: &[],
        params: &params,
        tables: &tables,
    };
    for src in ["amount > NaN", "amount < inf"] {
        let err = compile_bool(src, &scope).unwrap_err().to_string();
        assert!(err.contains("finite"), "{src}: {err}");
    }
    assert_eq!(Lit::from_toml(&toml::Value::Float(f64::NAN)), None);
}

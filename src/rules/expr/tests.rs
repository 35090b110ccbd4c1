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
    let ctx = Ctx { ev, f, aggs: &[] };
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

const E: &str = r#"{"id":"x","ts":1790000000000,"type":"auth","terminal":"T1","merchant":"M1","mcc":"7011","amount":150000,"currency":"CNY","pin":"bypassed","response_code":"00"}"#;
const BARE: &str = r#"{"id":"x","ts":1790000000000,"type":"auth","terminal":"T1","merchant":"M1"}"#;

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
            .unwrap_or_else(|| panic!("{src} compiled"));
        assert!(err.contains(needle), "{src}: {err}");
    }
    assert!(compile_bool("amount + 1", &scope)
        .unwrap_err()
        .contains("must be a condition"));
}

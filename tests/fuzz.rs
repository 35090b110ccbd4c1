//! Fuzzing every input parser for a bounded time (proptest, in the test command): the JSONL
//! decoder, the CSV row reader and the Parquet row decoder are fed random bytes, mutated valid
//! records and random typed values. Properties: no panic; every record gives exactly one item;
//! an event carries no PAN-shaped run in any text field and a plausible time; a reject has a
//! known code and a masked, bounded `raw`.
//!
//! `SWITCHGUARD_FUZZ_SECS` sets the time per target (default 8 s); failures print the seed.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::io::{BufReader, Cursor};
use std::time::{Duration, Instant};
use switchguard::decode::{DecodeError, Decoder};
use switchguard::event::Event;
use switchguard::pan::scan;
use switchguard::source::{CsvSource, Item, JsonlSource, TableSource, RAW_KEPT};

fn budget() -> Duration {
    let secs = std::env::var("SWITCHGUARD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    Duration::from_secs_f64(secs)
}

/// Run `prop` on values of `strategy` in batches of seeded runs until the time budget is spent.
fn fuzz<S: Strategy>(name: &str, strategy: S, prop: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let start = Instant::now();
    let mut batch = 0u64;
    let mut cases = 0u64;
    while start.elapsed() < budget() || batch == 0 {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&batch.to_le_bytes());
        seed[8..16].copy_from_slice(&(name.len() as u64).to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 128,
                failure_persistence: None,
                ..Config::default()
            },
            rng,
        );
        if let Err(e) = runner.run(&strategy, &prop) {
            panic!("{name}: batch {batch}: {e}");
        }
        batch += 1;
        cases += 128;
    }
    eprintln!(
        "{name}: {cases} cases in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

const GOOD: &str = r#"{"id":"e1","ts":"2026-10-01T09:00:00.250+08:00","type":"auth","pan":"6225880123456789","card":"C1","terminal":"T1","merchant":"M1","mcc":"5411","amount":1200,"currency":"CNY","entry_mode":"chip","pin":"entered","response_code":"55","auth_ref":"A1","qr_ref":"Q1","label":"legit"}"#;

/// Text fields an event carries out of the decoder: none may hold a PAN-shaped run.
fn check_event(ev: &Event) -> Result<(), TestCaseError> {
    let texts = [
        Some(&ev.id),
        ev.card.as_ref(),
        Some(&ev.terminal),
        ev.merchant.as_ref(),
        ev.auth_ref.as_ref(),
        ev.original_id.as_ref(),
        ev.batch.as_ref(),
        ev.qr_ref.as_ref(),
        ev.label.as_ref(),
        ev.currency.as_ref(),
        ev.response_code.as_ref(),
    ];
    for t in texts.into_iter().flatten() {
        prop_assert!(
            scan::runs(t.as_bytes()).is_empty(),
            "PAN-shaped run in {t:?}"
        );
    }
    prop_assert!(
        (946_684_800_000..4_102_444_800_000).contains(&ev.ts.as_ms()),
        "ts {}",
        ev.ts
    );
    if let Some(c) = &ev.currency {
        prop_assert!(
            c.len() == 3 && !c.bytes().any(|b| b.is_ascii_lowercase()),
            "{c}"
        );
    }
    Ok(())
}

fn check_item(item: &Item) -> Result<(), TestCaseError> {
    match item {
        Item::Event(ev) => check_event(ev),
        Item::Reject(r) => {
            prop_assert!(
                DecodeError::CODES.contains(&r.reason_code),
                "{}",
                r.reason_code
            );
            prop_assert!(r.raw.len() <= RAW_KEPT);
            for t in [&r.raw, &r.reason] {
                prop_assert!(
                    scan::runs(t.as_bytes()).is_empty(),
                    "clear PAN-shaped run in {t:?}"
                );
            }
            Ok(())
        }
        Item::Blank => Ok(()),
        Item::Control(c) => {
            let text = serde_json::to_string(&c.contract()).unwrap();
            prop_assert!(
                scan::runs(text.as_bytes()).is_empty(),
                "clear PAN in {text}"
            );
            Ok(())
        }
    }
}

/// A valid record with random byte-level damage.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 0..6);
    edits.prop_map(move |edits| {
        let mut b = base.as_bytes().to_vec();
        for (at, op, byte) in edits {
            if b.is_empty() {
                break;
            }
            let i = at.index(b.len());
            match op {
                0 => b[i] = byte,
                1 => {
                    b.remove(i);
                }
                2 => b.insert(i, byte),
                _ => b.truncate(i),
            }
        }
        b
    })
}

/// Field values worth trying: PANs in every shape, escapes, extremes, odd types.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{10,22}".prop_map(|d| format!("\"{d}\"")),
        "[0-9]{4}( |-)[0-9]{4}( |-)[0-9]{4}( |-)[0-9]{4}".prop_map(|d| format!("\"{d}\"")),
        "[0-9]{16}".prop_map(|d| format!(
            "\"{}\"",
            d.chars().map(|c| format!("\\u003{c}")).collect::<String>()
        )),
        "[0-9]{1,20}".prop_map(|d| d),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("[\"6225880123456789\"]".to_string()),
        Just("{\"a\":\"6225880123456789\"}".to_string()),
        "\\PC{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("\"2026-10-01T09:00:00Z\"".to_string()),
        Just("\"cny\"".to_string()),
        Just("\"156\"".to_string()),
    ]
}

fn structured() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "id",
        "ts",
        "type",
        "pan",
        "card",
        "terminal",
        "merchant",
        "mcc",
        "amount",
        "currency",
        "entry_mode",
        "pin",
        "response_code",
        "auth_ref",
        "original_id",
        "batch",
        "qr_ref",
        "label",
        "other",
    ]);
    prop::collection::vec((names, value()), 0..12).prop_map(|fields| {
        let mut base: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(GOOD).unwrap();
        let mut text = String::from("{");
        for (k, v) in &fields {
            base.remove(*k);
            text.push_str(&format!("\"{k}\":{v},"));
        }
        for (k, v) in base {
            text.push_str(&format!("\"{k}\":{v},"));
        }
        text.pop();
        text.push('}');
        text.into_bytes()
    })
}

#[test]
fn fuzz_the_jsonl_decoder() {
    let d = Decoder::default();
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        mutated(GOOD),
        structured(),
    ];
    fuzz("jsonl", prop::collection::vec(strategy, 1..8), |records| {
        let mut data = Vec::new();
        for r in &records {
            let r: Vec<u8> = r.iter().copied().filter(|b| *b != b'\n').collect();
            data.extend_from_slice(&r);
            data.push(b'\n');
            if let Ok(ev) = d.decode_json(&r) {
                check_event(&ev)?;
            }
        }
        let src = JsonlSource::from_reader(
            Box::new(BufReader::with_capacity(64, Cursor::new(data))),
            "f".into(),
            Decoder::default(),
        );
        let items: Vec<Item> = src.collect();
        prop_assert_eq!(items.len(), records.len(), "one item per line");
        items.iter().try_for_each(check_item)
    });
}

const CONTROLS: [&str; 4] = [
    r#"{"id":"c1","ts":"2026-10-01T09:00:00Z","control":"lock","pan":"6225880123456789","ttl":"24h","reason":"card 6225880123456789 stolen","actor":"alice"}"#,
    r#"{"id":"c2","ts":"2026-10-01T09:00:00Z","control":"unlock","terminal":"T1","reason":"r","actor":"bob"}"#,
    r#"{"id":"c3","ts":"2026-10-01T09:00:00Z","control":"extend","card":"tok_x","expires_at":"2026-10-02T09:00:00Z","reason":"r","actor":"bob"}"#,
    r#"{"id":"c4","ts":"2026-10-01T09:00:00Z","control":"ack","command_id":"cmd_1","status":"rejected","detail":"no such card"}"#,
];

/// Control records (README "Control records") damaged at the byte level: decoded or refused
/// with a known reason, never a panic, never a clear PAN in what is kept.
#[test]
fn fuzz_the_control_decoder() {
    let d = Decoder::default();
    let strategy = prop_oneof![
        mutated(CONTROLS[0]),
        mutated(CONTROLS[1]),
        mutated(CONTROLS[2]),
        mutated(CONTROLS[3]),
    ];
    fuzz("control", strategy, |r| match d.decode_input(&r) {
        Ok(switchguard::control::Input::Control(c)) => check_item(&Item::Control(c)),
        Ok(switchguard::control::Input::Event(ev)) => check_event(&ev),
        Err(e) => {
            prop_assert!(DecodeError::CODES.contains(&e.code()), "{}", e.code());
            let shown = e.to_string();
            prop_assert!(
                scan::runs(shown.as_bytes()).is_empty(),
                "clear PAN in {shown}"
            );
            Ok(())
        }
    });
}

const CSV_HEADER: &str = "id,ts,type,pan,card,terminal,merchant,amount,currency,pin,response_code";
const CSV_ROW: &str = "e1,2026-10-01T09:00:00Z,auth,6225880123456789,C1,T1,M1,1200,CNY,entered,55";

#[test]
fn fuzz_the_csv_reader() {
    let rows = prop::collection::vec(
        prop_oneof![mutated(CSV_ROW), prop::collection::vec(any::<u8>(), 0..120)],
        1..10,
    );
    let header = prop_oneof![
        Just(CSV_HEADER.as_bytes().to_vec()),
        Just(CSV_HEADER.to_uppercase().replace(',', ";").into_bytes()),
        mutated(CSV_HEADER),
    ];
    fuzz("csv", (header, rows), |(header, rows)| {
        let mut data: Vec<u8> = header.into_iter().filter(|b| *b != b'\n').collect();
        data.push(b'\n');
        for r in &rows {
            data.extend(r.iter().copied().filter(|b| *b != b'\n' && *b != b'\r'));
            data.push(b'\n');
        }
        let src = CsvSource::from_reader(
            Box::new(BufReader::new(Cursor::new(data))),
            "f.csv".into(),
            Decoder::default(),
        );
        let items: Vec<Item> = src.collect();
        let accounted: u64 = items
            .iter()
            .map(|i| match i {
                Item::Reject(r) => r.records,
                _ => 1,
            })
            .sum();
        let bad_header = items
            .iter()
            .any(|i| matches!(i, Item::Reject(r) if r.reason_code == "bad_header"));
        if !bad_header {
            prop_assert_eq!(accounted, rows.len() as u64, "one item per row");
        }
        items.iter().try_for_each(check_item)
    });
}

#[test]
fn fuzz_the_parquet_row_decoder() {
    use polars::prelude::*;
    let cell = prop_oneof![
        Just(None),
        "[ -~]{0,20}".prop_map(Some),
        "[0-9]{12,19}".prop_map(Some),
        Just(Some("2026-10-01T09:00:00Z".to_string())),
    ];
    let column = (
        prop::sample::select(vec![
            "id", "TS", "type", "card", "terminal", "merchant", "amount", "qr_ref", "x",
        ]),
        0u8..6,
        prop::collection::vec(cell, 4),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 4),
    );
    fuzz("parquet", prop::collection::vec(column, 1..8), |cols| {
        let mut seen = std::collections::BTreeSet::new();
        let mut series: Vec<Column> = Vec::new();
        for (name, kind, cells, bytes) in cols {
            if !seen.insert(name) {
                continue;
            }
            let s = match kind {
                0 => Series::new(name.into(), cells),
                1 => Series::new(name.into(), vec![1_790_000_000_000i64, -5, i64::MAX, 0]),
                2 => Series::new(name.into(), vec![1.5f64, f64::NAN, 0.0, 1e300]),
                3 => Series::new(
                    name.into(),
                    bytes.iter().map(|b| b.as_slice()).collect::<Vec<_>>(),
                ),
                4 => Series::new(name.into(), vec![1_790_000_000_000_000i64; 4])
                    .cast(&DataType::Datetime(
                        TimeUnit::Microseconds,
                        Some(TimeZone::UTC),
                    ))
                    .unwrap(),
                _ => Series::new(name.into(), vec![true, false, true, false]),
            };
            series.push(s.into());
        }
        let df = DataFrame::new_infer_height(series).unwrap();
        let items: Vec<Item> =
            TableSource::from_frame(df, "f.parquet".into(), Decoder::default()).collect();
        prop_assert_eq!(items.len(), 4, "one item per row");
        items.iter().try_for_each(check_item)
    });
}

//! The fast reader must agree with serde_json wherever it answers, and the decoder's results
//! (events and rejects, reasons included) must be those of the serde path on every input.

use crate::decode::raw::{RawEvent, FIELDS};
use crate::decode::scan;
use crate::decode::Decoder;
use proptest::prelude::*;

/// Values of the simple shape.
const SIMPLE: &[&str] = &[
    r#""e1""#,
    r#""""#,
    r#""auth""#,
    r#""sign_on""#,
    r#""6225880123456789""#,
    r#""62258801234""#,
    r#""2026-10-01T09:00:00.250+08:00""#,
    r#""2026-10-01T09:00:00Z""#,
    r#""5411""#,
    r#""CNY""#,
    r#""chip""#,
    r#""entered""#,
    r#""00""#,
    r#""é漢字""#,
    "null",
    "0",
    "7",
    "1200",
    "1790816400250",
    "999999999999999999",
    "true",
];

/// Values that are not (or not quite) the simple shape.
const OTHER: &[&str] = &[
    r#""caf\u00e9""#,
    r#""a\"b""#,
    r#""a\\b""#,
    "\"tab\there\"",
    "nul",
    "false",
    "tru",
    "00",
    "9999999999999999999",
    "99999999999999999999",
    "-1",
    "-0",
    "12.5",
    "1e3",
    "1E3",
    "0.0",
    "{}",
    r#"{"x":1}"#,
    "[1,2]",
    "[]",
    "x",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(FIELDS.to_vec()).prop_map(|s| format!("\"{s}\"")),
        1 => Just("\"extra\"".to_string()),
        1 => Just("\"kind\"".to_string()),
        1 => Just("\"t\\u0079pe\"".to_string()),
        1 => Just("\"ünknown\"".to_string()),
    ]
}

fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("\t\r\n "), 1 => Just("\u{a0}")]
}

/// A record built from members, with occasional damage.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        12 => proptest::sample::select(SIMPLE),
        1 => proptest::sample::select(OTHER),
    ];
    let member =
        (key(), ws(), value, ws()).prop_map(|(k, w1, v, w2)| format!("{k}{w1}:{w2}{v}{w1}"));
    (
        proptest::collection::vec(member, 0..8),
        ws(),
        0..16u8,
        any::<usize>(),
    )
        .prop_map(|(members, w, damage, at)| {
            let mut b = format!("{w}{{{w}{}}}{w}", members.join(",")).into_bytes();
            let i = at % (b.len() + 1);
            match damage {
                0 => b.push(b'x'),
                1 => b.insert(i, b','),
                2 => b.truncate(i),
                3 => {
                    b.insert(0, b'[');
                    b.push(b']');
                }
                4 => b.insert(i, 0xff),
                5 => b.insert(i, 0x01),
                _ => {}
            }
            b
        })
}

/// A record that decodes, with the contract's fields in a random order.
fn good_record() -> impl Strategy<Value = Vec<u8>> {
    let fields = vec![
        r#""id":"e0000023256""#,
        r#""ts":"2026-10-01T05:00:00.046+08:00""#,
        r#""type":"auth""#,
        r#""pan":"6225880123456789""#,
        r#""terminal":"T1006804""#,
        r#""merchant":"M1""#,
        r#""mcc":"5411""#,
        r#""amount":1200"#,
        r#""currency":"CNY""#,
        r#""entry_mode":"chip""#,
        r#""pin":"entered""#,
        r#""response_code":"00""#,
        r#""batch":"594954""#,
        r#""label":"legit""#,
    ];
    Just(fields)
        .prop_shuffle()
        .prop_map(|f| format!("{{{}}}", f.join(",")).into_bytes())
}

fn ignore(_: &str) {}

fn serde_raw(b: &[u8]) -> Option<String> {
    serde_json::from_slice::<RawEvent>(b)
        .ok()
        .map(|r| format!("{r:?}"))
}

fn check(b: &[u8]) {
    if let Some(raw) = scan::scan(b, ignore) {
        assert_eq!(
            Some(format!("{raw:?}")),
            serde_raw(b),
            "{:?}",
            String::from_utf8_lossy(b)
        );
    }
    let d = Decoder::default();
    assert_eq!(
        d.decode_json(b),
        d.decode_json_serde(b),
        "{:?}",
        String::from_utf8_lossy(b)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn the_fast_reader_agrees_with_serde(b in record()) {
        check(&b);
    }

    #[test]
    fn good_records_take_the_fast_path(b in good_record()) {
        prop_assert!(scan::scan(&b, ignore).is_some());
        check(&b);
    }
}

#[test]
fn edge_cases_agree_with_serde() {
    let cases: &[&[u8]] = &[
        b"",
        b" ",
        b"{}",
        b" { } ",
        b"{",
        b"}",
        b"{,}",
        b"{\"id\"}",
        b"{\"id\":}",
        b"{\"id\":\"a\",}",
        b"{\"id\":\"a\" \"ts\":1}",
        b"{\"id\":\"a\",\"id\":\"b\"}",
        b"{\"id\":null,\"id\":\"b\"}",
        b"{\"x\":1,\"x\":2,\"id\":\"a\",\"ts\":1,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"{\"id\":\"a\",\"ts\":1,\"type\":\"sign_on\",\"terminal\":\"T\"}{}",
        b"{\"id\":\"a\",\"ts\":01,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"{\"id\":\"a\",\"ts\":1.,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"{\"id\":\"a\",\"ts\":1x,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"{\"id\":\"a\",\"ts\":nulll,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"{\"id\":\"a\",\"ts\":true,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"{\"id\":\"a\xff\",\"ts\":1,\"type\":\"sign_on\",\"terminal\":\"T\"}",
        b"\xef\xbb\xbf{\"id\":\"a\",\"ts\":1,\"type\":\"sign_on\",\"terminal\":\"T\"}",
    ];
    for c in cases {
        check(c);
    }
    let good = br#"{"id":"a","ts":1,"type":"sign_on","terminal":"T","other":true,"n":null}"#;
    assert!(scan::scan(good, ignore).is_some());
    check(good);
}

/// Strings read eight bytes at a time: an escape, a control byte or non-ASCII text at every
/// position of strings of every length around the word size agrees with serde.
#[test]
fn string_specials_at_every_position_agree_with_serde() {
    let specials: &[&[u8]] = &[b"\\n", b"\\\"", b"\n", b"\x1f", b"\x7f", b"\xc3\xa9", b" "];
    for len in 0..26 {
        for pos in 0..=len {
            for sp in specials {
                let mut s = vec![b'a'; len];
                s.splice(pos..pos, sp.iter().copied());
                let mut rec = b"{\"id\":\"".to_vec();
                rec.extend_from_slice(&s);
                rec.extend_from_slice(br#"","ts":1,"type":"sign_on","terminal":"T"}"#);
                check(&rec);
            }
        }
    }
}

#[test]
fn the_field_table_follows_the_contract_field_order() {
    for (i, name) in crate::decode::raw::FIELDS.iter().enumerate() {
        assert_eq!(super::field(name.as_bytes()), Some(i as u32), "{name}");
    }
    assert_eq!(super::field(b"unknown"), None);
}

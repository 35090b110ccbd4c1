use super::*;
use crate::event::EventType;

fn dec(s: &str) -> Result<Event, DecodeError> {
    Decoder::default().decode_json(s.as_bytes())
}

const GOOD: &str = r#"{"id":"e1","ts":"2026-10-01T09:00:00.250+08:00","type":"auth","pan":"6225880123456789","terminal":"T1","merchant":"M1","mcc":"5411","amount":1200,"currency":"CNY","entry_mode":"chip","pin":"entered","response_code":"55","extra":{"x":1}}"#;

#[test]
fn decodes_a_full_event_and_tokenises_the_pan() {
    let e = dec(GOOD).unwrap();
    assert_eq!(e.ts.as_ms(), 1_790_816_400_250);
    assert_eq!(e.kind, EventType::Auth);
    assert_eq!(e.mcc, Some(5411));
    assert_eq!(e.pan_masked.as_deref(), Some("622588******6789"));
    let card = e.card.unwrap();
    assert!(card.starts_with("tok_"));
    assert!(!format!("{card}").contains("0123456789"));
}

#[test]
fn epoch_millis_and_card_token_are_accepted() {
    let e = dec(r#"{"id":"a","ts":1790816400250,"type":"sign_on","terminal":"T1","card":"C9"}"#)
        .unwrap();
    assert_eq!(e.ts.as_ms(), 1_790_816_400_250);
    assert_eq!(e.card.as_deref(), Some("C9"));
    assert_eq!(e.merchant, None);
}

#[test]
fn every_kind_of_bad_input_has_a_precise_reason() {
    let cases: &[(&[u8], &str, &str)] = &[
        (b"not json", "malformed_json", ""),
        (b"{\"id\":\"a\",", "malformed_json", ""),
        (b"[1,2]", "not_an_object", ""),
        (b"{\"id\":\"a\xff\"}", "invalid_utf8", ""),
        (br#"{"ts":1790000000000,"type":"auth","terminal":"T","merchant":"M"}"#, "missing_field", "`id`"),
        (br#"{"id":"a","type":"auth","terminal":"T","merchant":"M"}"#, "missing_field", "`ts`"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T"}"#, "missing_field", "`merchant`"),
        (br#"{"id":"a","ts":1790000000000,"type":"zap","terminal":"T","merchant":"M"}"#, "bad_value", "type"),
        (br#"{"id":"a","ts":"yesterday","type":"auth","terminal":"T","merchant":"M"}"#, "bad_value", "ts"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","amount":12.5}"#, "bad_value", "amount"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","amount":-1}"#, "bad_value", "amount"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","amount":"12"}"#, "bad_value", "amount"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","amount":99999999999999999999}"#, "bad_value", ""),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","pan":"12ab"}"#, "bad_value", "pan"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","mcc":"54111"}"#, "bad_value", "mcc"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","pin":"maybe"}"#, "bad_value", "pin"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":"T","merchant":"M","currency":"yuan"}"#, "bad_value", "currency"),
        (br#"{"id":"a","ts":1790000000000,"type":"auth","terminal":["T"],"merchant":"M"}"#, "bad_value", "terminal"),
    ];
    for (input, code, needle) in cases {
        let err = Decoder::default().decode_json(input).unwrap_err();
        assert_eq!(
            err.code(),
            *code,
            "{:?} gave {err}",
            String::from_utf8_lossy(input)
        );
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    let huge = vec![b' '; MAX_RECORD_BYTES + 1];
    assert_eq!(
        Decoder::default().decode_json(&huge).unwrap_err().code(),
        "too_large"
    );
}

#[test]
fn a_bad_pan_is_never_echoed_in_the_reason() {
    let err = dec(
        r#"{"id":"a","ts":1790000000000,"type":"6225880123456789","terminal":"T","merchant":"M"}"#,
    )
    .unwrap_err();
    assert!(!err.to_string().contains("6225880123456789"), "{err}");
}

#[test]
fn csv_style_pairs_decode_like_json() {
    let raw = RawEvent::from_pairs([
        ("id", Some("e1")),
        ("ts", Some("2026-10-01T09:00:00.250+08:00")),
        ("type", Some("auth")),
        ("pan", Some("6225880123456789")),
        ("terminal", Some("T1")),
        ("merchant", Some("M1")),
        ("mcc", Some("5411")),
        ("amount", Some("1200")),
        ("currency", Some("CNY")),
        ("entry_mode", Some("chip")),
        ("pin", Some("entered")),
        ("response_code", Some("55")),
        ("qr_ref", Some("")),
    ]);
    let a = Decoder::default().validate(raw).unwrap();
    assert_eq!(a, dec(GOOD).unwrap());
}

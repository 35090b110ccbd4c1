//! No clear PAN leaves switchguard, whatever field or shape carried it in: a PAN in `card`,
//! `terminal`, `merchant`, `id`, `qr_ref`, `auth_ref`, `label`, unknown fields or free text,
//! bare, in groups, JSON-escaped, fullwidth, across the reject's 4 KiB cut, in CSV — and
//! every output (alerts, commands, rejects, report.json, report.html, the process's stderr) is
//! searched for it after undoing every shape the masker knows.

mod common;

use common::*;
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

/// Digits of `text` with separators between digits removed and escapes decoded, so a PAN
/// written in any shape the masker knows is a plain digit run here.
fn normalise(text: &str) -> String {
    let text = text.replace("\\\\u00", "\\u00").replace("\\\\u00", "\\u00");
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'u') {
            let hex: String = chars.clone().skip(1).take(4).collect();
            if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                plain.push(ch);
                for _ in 0..5 {
                    chars.next();
                }
                continue;
            }
        }
        match c {
            '０'..='９' => plain.push((b'0' + (c as u32 - '０' as u32) as u8) as char),
            c => plain.push(c),
        }
    }
    // Drop separators that sit between digits.
    let b: Vec<char> = plain.chars().collect();
    let mut out = String::with_capacity(b.len());
    for (i, c) in b.iter().enumerate() {
        let sep = matches!(c, ' ' | '-' | '\u{a0}');
        let digit_before = out.chars().last().is_some_and(|p| p.is_ascii_digit());
        let digit_after = b[i + 1..]
            .iter()
            .find(|c| !matches!(c, ' ' | '-' | '\u{a0}'))
            .is_some_and(|c| c.is_ascii_digit());
        if !(sep && digit_before && digit_after) {
            out.push(*c);
        }
    }
    out
}

/// Panic if any `window` consecutive digits of `pan` appear in `text` (normalised). Masking
/// shows at most the first six and the last four digits, never `window` (≥ 7) in a row.
fn assert_no_leak(what: &str, text: &str, pan: &str, window: usize) {
    let norm = normalise(text);
    for w in pan.as_bytes().windows(window) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(
            !norm.contains(w),
            "{what}: {window} digits of {pan} ({w}) in clear:\n{}",
            &norm[norm.find(w).unwrap().saturating_sub(200)..][..400.min(norm.len())]
        );
    }
}

/// Every output file of a replay, plus what the process wrote to stderr.
fn outputs(out: &Path, stderr: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), read(&p)))
        .collect();
    v.push(("stderr".into(), stderr.to_string()));
    v
}

/// The binary under test: this build, or any other given in `SWITCHGUARD_TEST_BIN` (the test
/// can judge a released binary).
fn bin() -> String {
    std::env::var("SWITCHGUARD_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchguard").into())
}

fn replay_bin(inputs: &[&Path], out: &Path) -> (bool, String) {
    let o = Command::new(bin())
        .arg("replay")
        .args(inputs)
        .arg("--out")
        .arg(out)
        .arg("--rules")
        .arg(root().join("rules"))
        .arg("--models")
        .arg(root().join("models"))
        .arg("-q")
        .env("SWITCHGUARD_TOKEN_KEY", "pan-leak-test-key-0123456789")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Events that make rules fire and carry `pan` in `field` written as `shape`.
fn records(pan: &str, field: &str, shape: &str) -> Vec<String> {
    let v = match shape {
        "groups" => pan
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" "),
        "dashes" => pan
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("-"),
        "escaped" => pan.chars().map(|c| format!("\\u003{c}")).collect(),
        "fullwidth" => pan
            .chars()
            .map(|c| char::from_u32('０' as u32 + c.to_digit(10).unwrap()).unwrap())
            .collect(),
        "embedded" => format!("REF/{pan}/000123"),
        _ => pan.to_string(),
    };
    let mut out = Vec::new();
    // A sign-on, then three wrong PINs and a QR payment paid twice: alerts and a lock command
    // whose every text field carries the PAN where the test put it.
    let base = |i: usize, extra: &str| {
        let mut fields = vec![
            format!(r#""id":"ev{i}""#),
            format!(r#""ts":"2026-10-01T10:0{i}:00+08:00""#),
            r#""terminal":"T1""#.to_string(),
            r#""merchant":"M1""#.to_string(),
            r#""card":"C1""#.to_string(),
        ];
        for f in fields.iter_mut() {
            let name = f.split('"').nth(1).unwrap().to_string();
            if name == field {
                *f = format!(r#""{name}":"{v}""#);
                if name == "id" {
                    *f = format!(r#""id":"{v}-{i}""#);
                }
            }
        }
        if !["id", "terminal", "merchant", "card"].contains(&field) {
            fields.push(format!(r#""{field}":"{v}""#));
        }
        format!("{{{},{extra}}}", fields.join(","))
    };
    out.push(base(0, r#""type":"sign_on","response_code":"00""#).replace("\"card\":\"C1\",", ""));
    for i in 1..=3 {
        out.push(base(
            i,
            r#""type":"auth","entry_mode":"chip","pin":"entered","response_code":"55","amount":1000,"currency":"CNY""#,
        ));
    }
    for i in 4..=5 {
        out.push(base(
            i,
            r#""type":"auth","entry_mode":"qr","response_code":"00","amount":1000,"currency":"CNY""#,
        ));
    }
    // A reject: the PAN across the 4 KiB cut of the kept raw record, and in the reason.
    let pad = "x".repeat(4090);
    out.push(format!(
        r#"{{"id":"bad","pad":"{pad}{v}","ts":"yesterday {v}"}}"#
    ));
    out
}

#[test]
fn a_pan_in_any_field_and_shape_never_leaves_in_clear() {
    let pan = "6225880123456780";
    let dir = tempfile::tempdir().unwrap();
    for field in [
        "card", "terminal", "merchant", "id", "qr_ref", "auth_ref", "label", "note", "batch",
    ] {
        for shape in [
            "bare",
            "groups",
            "dashes",
            "escaped",
            "fullwidth",
            "embedded",
        ] {
            let input = dir.path().join(format!("{field}-{shape}.jsonl"));
            std::fs::write(&input, records(pan, field, shape).join("\n")).unwrap();
            let out = dir.path().join(format!("out-{field}-{shape}"));
            let (ok, stderr) = replay_bin(&[&input], &out);
            assert!(ok, "{field}/{shape}: {stderr}");
            let alerts = read(&out.join("alerts.jsonl"));
            assert!(!alerts.is_empty(), "{field}/{shape}: the rules must fire");
            for (name, text) in outputs(&out, &stderr) {
                assert_no_leak(&format!("{field}/{shape}: {name}"), &text, pan, 7);
            }
        }
    }
}

#[test]
fn a_twelve_digit_pan_keeps_six_digits_hidden_everywhere() {
    let pan = "622588012345";
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, records(pan, "card", "bare").join("\n")).unwrap();
    let out = dir.path().join("out");
    let (ok, stderr) = replay_bin(&[&input], &out);
    assert!(ok, "{stderr}");
    let alerts = read(&out.join("alerts.jsonl"));
    assert!(alerts.contains("62******2345"), "{alerts}");
    for (name, text) in outputs(&out, &stderr) {
        assert_no_leak(&name, &text, pan, 7);
    }
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n)
        .prop_map(|v| v.iter().map(|d| char::from(b'0' + d)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random PANs of every length in random fields and shapes, in JSONL and CSV at once.
    #[test]
    fn no_output_carries_an_input_pan(
        pan in (12usize..=19).prop_flat_map(digits),
        field in prop::sample::select(vec!["card", "terminal", "merchant", "id", "qr_ref", "auth_ref", "label", "note"]),
        shape in prop::sample::select(vec!["bare", "groups", "dashes", "escaped", "fullwidth", "embedded"]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("in.jsonl");
        std::fs::write(&jsonl, records(&pan, field, shape).join("\n")).unwrap();
        let csv = dir.path().join("in.csv");
        let shown = records(&pan, field, "bare").len();
        std::fs::write(&csv, format!(
            "id,ts,type,terminal,merchant,card,{f}\nc1,2026-10-02T10:00:00Z,auth,T9,M9,C9,{pan}\nc2,2026-10-02T10:00:01Z,auth,T9,M9,C9,{pan},extra\n",
            f = if ["id","terminal","merchant","card"].contains(&field) { "qr_ref" } else { field },
        )).unwrap();
        let out = dir.path().join("out");
        let (ok, stderr) = replay_bin(&[&jsonl, &csv], &out);
        prop_assert!(ok, "{}", stderr);
        prop_assert!(shown > 0);
        for (name, text) in outputs(&out, &stderr) {
            // Ten in a row: random digits elsewhere in the outputs cannot match by chance.
            assert_no_leak(&name, &text, &pan, 10);
        }
    }
}

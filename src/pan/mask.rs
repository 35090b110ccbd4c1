//! Masking: what a person may see of a card number, and the one function every emitted text
//! goes through on its way out ([`redact`], and [`redact_json`] for JSON records).

use super::scan::{self, Run, MAX_PAN_DIGITS};
use compact_str::CompactString;
use std::borrow::Cow;

/// Digits of a PAN always hidden, whatever its length (PCI DSS allows at most the first six
/// and the last four to be shown; on a 12-digit PAN that would hide only two).
pub const MIN_HIDDEN: usize = 6;
/// Trailing digits shown.
const LAST: usize = 4;

/// How many leading digits of an `n`-digit PAN are shown: up to six, fewer on short PANs so
/// that at least [`MIN_HIDDEN`] stay hidden; none on runs too long to be one PAN.
fn shown_first(n: usize) -> usize {
    if n > MAX_PAN_DIGITS {
        0
    } else {
        n.saturating_sub(MIN_HIDDEN + LAST).min(6)
    }
}

/// Whether digit `i` of an `n`-digit run is shown.
fn shown(i: usize, n: usize) -> bool {
    n <= MAX_PAN_DIGITS && (i < shown_first(n) || i >= n - LAST)
}

/// The masked form of a card number given as its digits: `622588******6780`; a 12-digit PAN
/// shows two leading digits (`62******2345`), so six are always hidden.
pub fn mask(digits: &str) -> CompactString {
    let n = digits.len();
    digits
        .bytes()
        .enumerate()
        .map(|(i, c)| if shown(i, n) { c as char } else { '*' })
        .collect()
}

/// Write `text` with every run masked: each hidden digit (however it was written) becomes
/// `*`, shown digits become plain ASCII digits, separators and everything else are kept.
fn rewrite(text: &[u8], runs: &[Run], out: &mut Vec<u8>) {
    let mut at = 0;
    for r in runs {
        out.extend_from_slice(&text[at..r.start]);
        let n = r.digits.len();
        let mut pos = r.start;
        for (i, (&d, &(s, e))) in r.digits.iter().zip(&r.spans).enumerate() {
            out.extend_from_slice(&text[pos..s]); // separators between digits
            out.push(if shown(i, n) { d } else { b'*' });
            pos = e;
        }
        at = r.end;
    }
    out.extend_from_slice(&text[at..]);
}

/// `text` with every PAN-shaped run masked (see [`super::scan`]). Borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    match redact_bytes(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only ASCII was written in place of whole digit units, so the text stays UTF-8.
        Cow::Owned(v) => Cow::Owned(String::from_utf8(v).expect("masking keeps UTF-8")),
    }
}

/// [`redact`] on bytes that may not be UTF-8 (a rejected record, a DLQ payload).
pub fn redact_bytes(text: &[u8]) -> Cow<'_, [u8]> {
    let runs = scan::runs(text);
    if runs.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    rewrite(text, &runs, &mut out);
    Cow::Owned(out)
}

/// Mask, then cut to at most `max` bytes on a character boundary: masking first, so a PAN
/// across the cut is masked as a whole (cutting first would leave its tail in clear).
pub fn redact_truncated(text: &[u8], max: usize) -> String {
    let masked = redact_bytes(text);
    let lossy = String::from_utf8_lossy(&masked);
    let mut end = lossy.len().min(max);
    while !lossy.is_char_boundary(end) {
        end -= 1;
    }
    lossy[..end].to_string()
}

/// Keys whose values switchguard computes itself (content hashes), never taken from input:
/// their hex may hold twelve decimal digits in a row by chance and must stay intact.
const OWN_KEYS: [&[u8]; 4] = [b"alert_id", b"command_id", b"rules_digest", b"digest"];

/// Mask every PAN-shaped run in a serialised JSON document: in every string (keys included)
/// and in every number (a 12+ digit integer becomes a masked string). Values of [`OWN_KEYS`]
/// are kept. The input must be JSON as serde_json writes it; the output is valid JSON.
pub fn redact_json(json: &[u8]) -> Cow<'_, [u8]> {
    if !scan::may_hold_run(json) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut changed = false;
    let mut i = 0;
    let mut last_key: &[u8] = b"";
    while i < json.len() {
        let c = json[i];
        if c == b'"' {
            let end = string_end(json, i);
            let body = &json[i + 1..end - 1];
            let is_key = json[end..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b':');
            let keep = !is_key && OWN_KEYS.contains(&last_key);
            if is_key {
                last_key = body;
            }
            let runs = if keep { Vec::new() } else { scan::runs(body) };
            out.push(b'"');
            if runs.is_empty() {
                out.extend_from_slice(body);
            } else {
                changed = true;
                rewrite(body, &runs, &mut out);
            }
            out.push(b'"');
            i = end;
        } else if c == b'-' || c.is_ascii_digit() {
            let end = i + json[i..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || b"-+.eE".contains(b))
                .count();
            let num = &json[i..end];
            let runs = scan::runs(num);
            if runs.is_empty() {
                out.extend_from_slice(num);
            } else {
                changed = true;
                out.push(b'"');
                rewrite(num, &runs, &mut out);
                out.push(b'"');
            }
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(json)
    }
}

/// Index just past the closing quote of the string starting at `start` (a `"`).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_six_digits_stay_hidden_whatever_the_length() {
        assert_eq!(mask("6225880123456789"), "622588******6789");
        assert_eq!(mask("622588012345678901"), "622588********8901");
        assert_eq!(mask("622588012345"), "62******2345");
        assert_eq!(mask("6225880123456"), "622******3456");
        for n in 12..=19 {
            let p: String = "6225880123456789012".chars().take(n).collect();
            let m = mask(&p);
            assert_eq!(m.len(), n);
            assert!(m.chars().filter(|c| *c == '*').count() >= MIN_HIDDEN, "{m}");
            assert!(m.starts_with(&p[..shown_first(n)]) && m.ends_with(&p[n - 4..]));
        }
    }

    #[test]
    fn redact_masks_every_shape_and_keeps_the_rest() {
        let r = redact(r#"{"id":"e12","pan":"6225880123456789","amount":12345678901}"#);
        assert!(
            r.contains("622588******6789") && r.contains("12345678901"),
            "{r}"
        );
        assert_eq!(redact("6225 8801 2345 6780"), "6225 88** **** 6780");
        assert_eq!(redact("x ü 12"), "x ü 12");
        assert_eq!(redact("12345678901234567890123"), "*".repeat(23));
        let esc: String = "6225880123456780"
            .chars()
            .map(|c| format!("\\u003{c}"))
            .collect();
        let r = redact(&esc);
        assert!(
            !r.contains("\\u0030") && r.starts_with("622588******"),
            "{r}"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_pan_across_the_cut_is_masked_whole() {
        let mut raw = vec![b'x'; 4090];
        raw.extend_from_slice(b"6225880123456780\"}");
        let t = redact_truncated(&raw, 4096);
        assert_eq!(t.len(), 4096);
        assert!(t.ends_with("622588"), "{}", &t[4080..]);
    }

    #[test]
    fn json_keeps_own_ids_and_stays_valid() {
        let line = br#"{"alert_id":"al_0123456789012345abc","card":"6225880123456789","n":6225880123456789,"x":[1,2],"f":0.5,"event_ids":["6225-8801-2345-6789"],"6225880123456789":1}"#;
        let out = redact_json(line);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["alert_id"], "al_0123456789012345abc");
        assert_eq!(v["card"], "622588******6789");
        assert_eq!(v["n"], "622588******6789");
        assert_eq!(v["event_ids"][0], "6225-88**-****-6789");
        assert_eq!(v["x"], serde_json::json!([1, 2]));
        assert!(v.get("622588******6789").is_some());
    }
}

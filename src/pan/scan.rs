//! Finding PAN-shaped digit runs in any text: the one detector behind tokenising at ingest and
//! masking on the way out.
//!
//! A *run* is a sequence of digits where consecutive digits are adjacent or separated by at
//! most [`MAX_SEPARATORS`] separator characters (space, dash, no-break space: `6225 - 8801`), so
//! `6225 8801 2345 6780` and `6225-8801-2345-6780` are runs of 16 digits. A digit may be
//! written as an ASCII digit, a fullwidth digit (`６`), or a JSON escape (`\u0036`, with any
//! number of backslashes before the `u`, so text escaped once or twice more is still seen);
//! separators may be escaped the same way. A run of 12 or more digits is *PAN-shaped*: card
//! numbers are 12 to 19 digits, and a longer run may embed one.
//!
//! The detector works on bytes, so it also sees digits inside invalid UTF-8.

/// Fewest digits in a PAN-shaped run.
pub const MIN_DIGITS: usize = 12;
/// Most digits in a card number; longer runs are masked whole.
pub const MAX_PAN_DIGITS: usize = 19;
/// Most separator characters allowed between two digits of one run.
pub const MAX_SEPARATORS: usize = 3;

/// What starts at one position of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A digit (its value) written in `len` bytes.
    Digit(u8, usize),
    /// A separator written in `len` bytes.
    Sep(usize),
    Other,
}

/// A PAN-shaped run found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Byte range of the run, from its first digit to the end of its last.
    pub start: usize,
    pub end: usize,
    /// The digits, as ASCII (`b'0'..=b'9'`).
    pub digits: Vec<u8>,
    /// Byte range of each digit in the text (same order as `digits`).
    pub spans: Vec<(usize, usize)>,
}

/// The escaped character at `i` (`\` repeated, `u`, four hex digits), and the length of the
/// whole escape, if there is one.
fn escape_at(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let mut j = i;
    while j < b.len() && b[j] == b'\\' {
        j += 1;
    }
    if j == i || b.get(j) != Some(&b'u') {
        return None;
    }
    let hex = b.get(j + 1..j + 5)?;
    let s = std::str::from_utf8(hex).ok()?;
    let v = u32::from_str_radix(s, 16).ok()?;
    Some((v, j + 5 - i))
}

#[inline]
fn unit_at(b: &[u8], i: usize) -> Unit {
    match b[i] {
        c @ b'0'..=b'9' => Unit::Digit(c - b'0', 1),
        b' ' | b'-' => Unit::Sep(1),
        0xEF if b.get(i + 1) == Some(&0xBC) => match b.get(i + 2) {
            Some(&c @ 0x90..=0x99) => Unit::Digit(c - 0x90, 3),
            _ => Unit::Other,
        },
        0xC2 if b.get(i + 1) == Some(&0xA0) => Unit::Sep(2),
        b'\\' => match escape_at(b, i) {
            Some((v @ 0x30..=0x39, len)) => Unit::Digit((v - 0x30) as u8, len),
            Some((0x20 | 0x2d | 0xa0, len)) => Unit::Sep(len),
            Some((v @ 0xff10..=0xff19, len)) => Unit::Digit((v - 0xff10) as u8, len),
            _ => Unit::Other,
        },
        _ => Unit::Other,
    }
}

/// Quick test: could `b` hold a PAN-shaped run at all? Counts bytes that can start a digit;
/// most texts (ids, terminal ids, amounts) are answered here without a scan.
#[inline]
pub fn may_hold_run(b: &[u8]) -> bool {
    b.len() >= MIN_DIGITS
        && b.iter()
            .filter(|c| c.is_ascii_digit() || **c == 0xEF || **c == b'\\')
            .count()
            >= MIN_DIGITS
}

/// Every PAN-shaped run in `b`, in order.
pub fn runs(b: &[u8]) -> Vec<Run> {
    let mut out = Vec::new();
    if !may_hold_run(b) {
        return out;
    }
    let mut i = 0;
    while i < b.len() {
        let Unit::Digit(d, len) = unit_at(b, i) else {
            i += 1;
            continue;
        };
        let mut run = Run {
            start: i,
            end: i + len,
            digits: vec![b'0' + d],
            spans: vec![(i, i + len)],
        };
        let mut j = i + len;
        loop {
            // Up to MAX_SEPARATORS separators, then a digit, continue the run.
            let mut k = j;
            let mut seps = 0;
            while k < b.len() && seps <= MAX_SEPARATORS {
                match unit_at(b, k) {
                    Unit::Sep(l) => {
                        seps += 1;
                        k += l;
                    }
                    _ => break,
                }
            }
            if seps > MAX_SEPARATORS || k >= b.len() {
                break;
            }
            match unit_at(b, k) {
                Unit::Digit(d, l) => {
                    run.digits.push(b'0' + d);
                    run.spans.push((k, k + l));
                    run.end = k + l;
                    j = k + l;
                }
                _ => break,
            }
        }
        i = run.end;
        if run.digits.len() >= MIN_DIGITS {
            out.push(run);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<String> {
        runs(s.as_bytes())
            .into_iter()
            .map(|r| String::from_utf8(r.digits).unwrap())
            .collect()
    }

    #[test]
    fn finds_runs_in_every_shape() {
        let p = "6225880123456780";
        for s in [
            "6225880123456780".to_string(),
            "x 6225 8801 2345 6780 y".to_string(),
            "6225-8801-2345-6780".to_string(),
            "6225 - 8801 - 2345 - 6780".to_string(),
            "6225\u{a0}8801\u{a0}2345\u{a0}6780".to_string(),
            "６２２５８８０１２３４５６７８０".to_string(),
            p.chars().map(|c| format!("\\u003{c}")).collect::<String>(),
            p.chars()
                .map(|c| format!("\\\\u003{c}"))
                .collect::<String>(),
            format!("QR reference {p} paid again"),
            format!("T{p}"),
        ] {
            assert_eq!(digits(&s), [p], "{s}");
        }
    }

    #[test]
    fn short_runs_and_broken_runs_are_not_runs() {
        for s in [
            "12345678901",
            "2026-10-01T10:00:00.000Z",
            "6225.8801.2345.6780",
            "6225    8801    2345    6780",
            "amount 12345678901 and 1",
            "",
        ] {
            assert!(digits(s).is_empty(), "{s}");
        }
        assert_eq!(
            digits("a 123456789012 b 1234567890123456789012"),
            ["123456789012", "1234567890123456789012"]
        );
    }

    #[test]
    fn spans_cover_each_digit() {
        let s = "x6225 8801\\u0032345 6780";
        let r = &runs(s.as_bytes())[0];
        assert_eq!(r.digits.len(), 16);
        assert_eq!(&s[r.spans[8].0..r.spans[8].1], "\\u0032");
        assert_eq!((r.start, r.end), (1, s.len()));
    }
}

//! A fast path for the event time's usual text form, `YYYY-MM-DDTHH:MM:SS(.f{1,9})?(Z|±HH:MM)`.
//!
//! [`rfc3339_ms`] answers only for that exact shape with a valid date and time (years from
//! 1970, no leap second); anything else, well formed or not, is left to chrono, so accepted
//! values, rejects and their reasons stay chrono's. Tested against chrono.

/// Epoch milliseconds of `s`, or `None` to let chrono decide.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = num(b, 0, 4)?;
    let month = num(b, 5, 2)?;
    let day = num(b, 8, 2)?;
    let hour = num(b, 11, 2)?;
    let min = num(b, 14, 2)?;
    let sec = num(b, 17, 2)?;
    if year < 1970 {
        return None;
    }
    // chrono checks the calendar (month lengths, leap years) and does the day arithmetic.
    let utc = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?
        .and_hms_opt(hour as u32, min as u32, sec as u32)?
        .and_utc()
        .timestamp();
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        // Milliseconds are the first three digits (chrono truncates to them too).
        for k in 0..3 {
            ms = ms * 10
                + if k < n {
                    i64::from(b[start + k] - b'0')
                } else {
                    0
                };
        }
    }
    let offset_s = match &b[i..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(b, i + 1, 2)?, num(b, i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let v = h * 3600 + m * 60;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    Some((utc - offset_s) * 1000 + ms)
}

/// `len` ASCII digits at `at` as a number.
fn num(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let mut v = 0;
    for &c in b.get(at..at + len)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_ms(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    fn check(s: &str) {
        if let Some(ms) = rfc3339_ms(s) {
            assert_eq!(Some(ms), chrono_ms(s), "{s}");
        }
    }

    #[test]
    fn common_shapes_match_chrono_and_take_the_fast_path() {
        for s in [
            "2026-10-01T09:00:00.250+08:00",
            "2026-10-01T09:00:00+08:00",
            "2026-10-01T09:00:00Z",
            "2026-10-01T09:00:00.2Z",
            "2026-10-01T09:00:00.25-05:30",
            "2026-10-01T09:00:00.123456789Z",
            "2026-10-01T09:00:00.999999999+23:59",
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.001+00:01",
            "2024-02-29T23:59:59.999-23:59",
            "2000-02-29T12:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999-23:59",
        ] {
            assert!(rfc3339_ms(s).is_some(), "{s}");
            check(s);
        }
    }

    #[test]
    fn other_shapes_are_left_to_chrono() {
        for s in [
            "2026-10-01t09:00:00Z",
            "2026-10-01 09:00:00Z",
            "2026-10-01T09:00:00z",
            "2026-10-01T09:00:60Z",
            "2026-10-01T09:00:00.1234567891Z",
            "2026-10-01T09:00:00.Z",
            "2026-10-01T09:00:00",
            "2026-10-01T09:00:00+0800",
            "2026-10-01T09:00:00+24:00",
            "2026-10-01T09:00:00+08:60",
            "2026-10-01T09:00:00ZZ",
            "2026-10-01T24:00:00Z",
            "2026-02-29T09:00:00Z",
            "1900-02-29T09:00:00Z",
            "2026-04-31T09:00:00Z",
            "2026-13-01T09:00:00Z",
            "2026-00-01T09:00:00Z",
            "2026-10-00T09:00:00Z",
            "1969-12-31T23:59:59Z",
            "+2026-10-01T09:00:00Z",
            "2026-10-01T09:00:00.250+08:00 ",
            "２026-10-01T09:00:00Z",
            "yesterday",
            "",
        ] {
            assert_eq!(rfc3339_ms(s), None, "{s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50_000))]

        /// Random components, valid and not, in the fast path's shape: whenever it answers,
        /// chrono agrees; whenever chrono accepts a year from 1970 on, the fast path answers.
        #[test]
        fn agrees_with_chrono(
            y in prop_oneof![1960..2100i64, 1900..10000i64],
            mo in 0..14i64, d in 0..33i64, h in 0..25i64, mi in 0..61i64, s in 0..61i64,
            frac in proptest::option::of("[0-9]{1,10}"),
            off in prop_oneof![
                Just("Z".to_string()),
                (any::<bool>(), 0..25i64, 0..61i64).prop_map(|(neg, oh, om)| {
                    format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' })
                }),
            ],
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}");
            check(&t);
            let fast_shape = frac.len() <= 10 && s < 60;
            if let Some(ms) = chrono_ms(&t) {
                if fast_shape && y >= 1970 {
                    prop_assert_eq!(rfc3339_ms(&t), Some(ms), "{}", t);
                }
            }
        }
    }
}

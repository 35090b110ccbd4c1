//! Validation of one field at a time: what each contract field accepts, and the reason given
//! when it does not. Lenient where the switch's own encodings differ harmlessly (lowercase or
//! numeric currency codes, a PAN written in groups), strict where a wrong value would change
//! a decision (implausible event times, negative amounts).

use super::raw::StrOrInt;
use super::{ts, DecodeError};
use crate::event::EventType;
use crate::pan;
use compact_str::CompactString;
use std::borrow::Cow;

/// Earliest accepted event time, 2000-01-01T00:00:00Z (epoch ms).
pub const MIN_TS: i64 = 946_684_800_000;
/// First rejected event time, 2100-01-01T00:00:00Z (epoch ms).
pub const MAX_TS: i64 = 4_102_444_800_000;

/// A value for a reason, PAN-shaped runs masked and cut to 40 characters.
pub fn truncate(s: &str) -> String {
    let mut t: String = pan::redact(s).chars().take(40).collect();
    if s.chars().count() > 40 {
        t.push('…');
    }
    t
}

#[inline]
pub fn opt_str(v: Option<Cow<'_, str>>) -> Option<CompactString> {
    v.filter(|s| !s.is_empty())
        .map(|s| CompactString::from(s.as_ref()))
}

#[inline]
pub fn required_str(
    v: Option<Cow<'_, str>>,
    field: &'static str,
) -> Result<CompactString, DecodeError> {
    match v {
        None => Err(DecodeError::MissingField(field)),
        Some(s) if s.is_empty() => Err(DecodeError::bad(field, "must not be empty")),
        Some(s) if s.len() > 128 => Err(DecodeError::bad(field, "longer than 128 bytes")),
        Some(s) => Ok(CompactString::from(s.as_ref())),
    }
}

pub fn parse_kind(s: Cow<'_, str>) -> Result<EventType, DecodeError> {
    EventType::parse(&s)
        .ok_or_else(|| DecodeError::bad("type", format!("unknown message type {:?}", truncate(&s))))
}

/// A closed-domain text field (`entry_mode`, `pin`).
pub fn parse_enum<T>(
    s: &str,
    field: &'static str,
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, DecodeError> {
    parse(s).ok_or_else(|| DecodeError::bad(field, format!("unknown {what} {:?}", truncate(s))))
}

/// Event time: epoch milliseconds, or RFC 3339 with an explicit offset, from 2000 to 2099.
/// Epoch seconds (or microseconds) sent as milliseconds would put every window and lock in
/// another decade; they are refused with a reason that says so.
pub fn parse_ts(v: StrOrInt<'_>) -> Result<crate::time::EventTime, DecodeError> {
    let ms = match v {
        StrOrInt::Int(ms) => ms,
        StrOrInt::Str(s) => match ts::rfc3339_ms(&s) {
            Some(ms) => ms,
            None => chrono::DateTime::parse_from_rfc3339(&s)
                .map_err(|e| DecodeError::bad("ts", format!("not RFC 3339 with offset ({e})")))?
                .timestamp_millis(),
        },
        StrOrInt::Float(_) => {
            return Err(DecodeError::bad(
                "ts",
                "expected RFC 3339 text or integer epoch ms",
            ))
        }
    };
    if (MIN_TS..MAX_TS).contains(&ms) {
        return Ok(crate::time::EventTime::from_ms(ms));
    }
    let why = if (MIN_TS / 1000..MAX_TS / 1000).contains(&ms) {
        "looks like epoch seconds; send epoch milliseconds or RFC 3339"
    } else if ms >= MAX_TS && (MIN_TS..MAX_TS).contains(&(ms / 1000)) {
        "looks like epoch microseconds; send epoch milliseconds or RFC 3339"
    } else {
        "implausible event time: outside 2000-01-01 .. 2099-12-31"
    };
    Err(DecodeError::bad("ts", why))
}

pub fn parse_mcc(v: StrOrInt<'_>) -> Result<u16, DecodeError> {
    let ok = match &v {
        StrOrInt::Str(s) if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        StrOrInt::Int(i) if (0..=9999).contains(i) => Some(*i as u16),
        _ => None,
    };
    ok.ok_or_else(|| DecodeError::bad("mcc", "expected 4 digits"))
}

pub fn parse_amount(v: StrOrInt<'_>) -> Result<i64, DecodeError> {
    match v {
        StrOrInt::Int(a) if a >= 0 => Ok(a),
        StrOrInt::Int(_) => Err(DecodeError::bad("amount", "must be ≥ 0")),
        _ => Err(DecodeError::bad(
            "amount",
            "expected an integer in minor units",
        )),
    }
}

/// ISO 4217, normalised to the uppercase alphabetic code: `cny` and DE49's numeric `156` both
/// give `CNY`. A numeric code ISO does not list is kept as its digits (tables then use their
/// default); anything else is refused.
pub fn parse_currency(c: CompactString) -> Result<CompactString, DecodeError> {
    let b = c.as_bytes();
    if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
        return Ok(c);
    }
    if b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic) {
        return Ok(c.to_ascii_uppercase());
    }
    if b.len() == 3 && b.iter().all(u8::is_ascii_digit) {
        let n: u16 = c.parse().expect("three digits");
        return Ok(match iso_currency::Currency::from_numeric(n) {
            Some(cur) => cur.code().into(),
            None => c,
        });
    }
    Err(DecodeError::bad(
        "currency",
        "expected an ISO 4217 code (alpha-3 like CNY, or numeric like 156)",
    ))
}

pub fn parse_response_code(c: CompactString) -> Result<CompactString, DecodeError> {
    if (2..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(c)
    } else {
        Err(DecodeError::bad(
            "response_code",
            "expected 2 alphanumeric characters (DE39)",
        ))
    }
}

/// The `pan` field: 12 to 19 digits, optionally in groups separated by spaces or dashes.
pub fn clean_pan(p: &str) -> Result<CompactString, DecodeError> {
    if pan::is_pan(p) {
        return Ok(p.into());
    }
    let digits: CompactString = p.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if pan::is_pan(&digits) {
        Ok(digits)
    } else {
        Err(DecodeError::bad(
            "pan",
            "expected 12 to 19 digits (groups may be separated by spaces or dashes)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_outside_the_plausible_range_are_refused_with_the_reason() {
        let ok = |v| parse_ts(StrOrInt::Int(v));
        assert_eq!(
            ok(1_790_000_000_000),
            Ok(crate::time::EventTime::from_ms(1_790_000_000_000))
        );
        let why = |r: Result<crate::time::EventTime, DecodeError>| r.unwrap_err().to_string();
        assert!(why(ok(1_790_000_000)).contains("epoch seconds"));
        assert!(why(ok(1_790_000_000_000_000)).contains("microseconds"));
        assert!(why(ok(1)).contains("implausible"));
        let s = |t: &str| parse_ts(StrOrInt::Str(t.into()));
        assert!(why(s("9999-12-31T00:00:00Z")).contains("implausible"));
        assert!(why(s("1999-12-31T23:59:59Z")).contains("implausible"));
        assert!(s("2099-12-31T23:59:59.999Z").is_ok());
    }

    #[test]
    fn currencies_in_any_case_or_numeric_are_normalised() {
        let c = |s: &str| parse_currency(s.into()).map(|c| c.to_string());
        assert_eq!(c("CNY").unwrap(), "CNY");
        assert_eq!(c("cny").unwrap(), "CNY");
        assert_eq!(c("Jpy").unwrap(), "JPY");
        assert_eq!(c("156").unwrap(), "CNY");
        assert_eq!(c("392").unwrap(), "JPY");
        assert_eq!(c("999").unwrap(), "XXX");
        assert_eq!(c("001").unwrap(), "001");
        for bad in ["YUAN", "C$", "", "1560", "¥"] {
            assert!(c(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pan_in_groups_is_one_pan() {
        assert_eq!(
            clean_pan("6225 8801 2345 6780").unwrap(),
            "6225880123456780"
        );
        assert_eq!(
            clean_pan("6225-8801-2345-6780").unwrap(),
            "6225880123456780"
        );
        assert!(clean_pan("6225x8801").is_err());
        assert!(clean_pan("62258801234567801234").is_err());
    }
}

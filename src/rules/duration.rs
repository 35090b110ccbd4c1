//! Durations as rule files and settings write them (`90s`, `10m`, `24h`, `30d`), bounded.
//!
//! One parser for every duration: a rule's `window`, `within` and `action.ttl`, `replay
//! --lateness`, and the service's `allowed_lateness`, `idle_timeout` and
//! `checkpoint_interval`. Unbounded, `window = "300000000y"` overflowed the i64 of
//! milliseconds and wrapped negative (the rule never fired), and `ttl = "300000y"` put the
//! lock's expiry past the years a timestamp can print. Whatever is accepted here can be
//! honoured: kept in event-time state, added to any plausible event time, printed as RFC 3339.

use crate::time::Span;

/// The longest duration accepted: 366 days. Longer than every retention the engine keeps
/// (pre-auths: 45 days) and a leap year of history; a rule that needs more is better served
/// by a model trained on that history.
pub const MAX: Span = Span::days(366);

/// A duration refused; each holds the text as given (its first 40 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all; humantime's reason.
    #[error("bad duration {shown:?} ({reason}); use e.g. 90s, 10m, 24h, 30d")]
    Syntax { shown: String, reason: String },
    #[error("duration {0:?} is not a whole number of milliseconds")]
    SubMillisecond(String),
    #[error("duration {0:?} is longer than 366 days, the longest switchguard accepts")]
    TooLong(String),
}

/// Parse a duration: whole milliseconds, at most [`MAX`]. Zero is accepted (a lateness of
/// `0s`); rules refuse it where it means nothing.
pub fn span(s: &str) -> Result<Span, DurationError> {
    let shown: String = s.chars().take(40).collect();
    let d = match humantime::parse_duration(s.trim()) {
        Ok(d) => d,
        Err(e) => {
            let reason = e.to_string();
            return Err(DurationError::Syntax { shown, reason });
        }
    };
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(DurationError::SubMillisecond(shown));
    }
    match i64::try_from(d.as_millis()) {
        Ok(ms) if Span::ms(ms) <= MAX => Ok(Span::ms(ms)),
        _ => Err(DurationError::TooLong(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(span("90s"), Ok(Span::ms(90_000)));
        assert_eq!(span("24h"), Ok(Span::hours(24)));
        assert_eq!(span("0s"), Ok(Span::ZERO));
        assert_eq!(span("366d"), Ok(MAX));
        for (s, needle) in [
            ("367d", "longer than 366 days"),
            ("300000000y", "longer than 366 days"),
            ("300000y", "longer than 366 days"),
            ("18446744073709551615s", ""),
            ("99999999999999999999999999y", ""),
            ("1500us", "whole number of milliseconds"),
            ("ten minutes", "bad duration"),
            ("", "bad duration"),
            ("-5s", "bad duration"),
        ] {
            let e = span(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }
}

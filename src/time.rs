//! Event time, the engine's only clock, and spans of it.
//!
//! - [`EventTime`]: an instant, epoch milliseconds as the switch stamped it;
//! - [`Span`]: a signed length of event time in milliseconds (retention, windows, lateness,
//!   timeouts, and the difference of two instants).
//!
//! Both are `i64` underneath and serialise as the bare number (`serde(transparent)`), so
//! checkpoints and outputs are the same as when they were bare `i64`. The types keep an
//! instant from being used as a length (`ts + ts` does not compile) and a span from standing
//! for a moment. "No time yet" is `Option<EventTime>`, never a sentinel value; the one place a
//! checkpoint still needs a number for it, [`opt_min`] writes `i64::MIN`, the value earlier
//! checkpoints held.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};

/// An instant of event time: epoch milliseconds, UTC. Its default is the epoch, as for the
/// bare `i64` it replaces (book entries start there before their first event).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct EventTime(i64);

/// A signed length of event time in milliseconds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Span(i64);

impl EventTime {
    /// The Unix epoch, the origin of event time.
    pub const EPOCH: EventTime = EventTime(0);

    pub const fn from_ms(ms: i64) -> Self {
        Self(ms)
    }

    /// Epoch milliseconds, for formatting, columnar data and hashing.
    pub const fn as_ms(self) -> i64 {
        self.0
    }

    /// The instant `s` later, saturating at the ends of `i64` instead of wrapping.
    pub fn saturating_add(self, s: Span) -> Self {
        Self(self.0.saturating_add(s.0))
    }

    /// The instant `s` earlier, saturating at the ends of `i64` instead of wrapping.
    pub fn saturating_sub(self, s: Span) -> Self {
        Self(self.0.saturating_sub(s.0))
    }

    /// Whole days since the epoch (floor), the unit of daily baselines.
    pub fn day(self) -> i64 {
        self.0.div_euclid(Span::DAY.0)
    }
}

impl Span {
    pub const ZERO: Span = Span(0);
    pub const SECOND: Span = Span(1_000);
    pub const MINUTE: Span = Span(60_000);
    pub const HOUR: Span = Span(3_600_000);
    pub const DAY: Span = Span(86_400_000);

    pub const fn ms(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn minutes(n: i64) -> Self {
        Self(n * 60_000)
    }

    pub const fn hours(n: i64) -> Self {
        Self(n * 3_600_000)
    }

    pub const fn days(n: i64) -> Self {
        Self(n * 86_400_000)
    }

    pub const fn as_ms(self) -> i64 {
        self.0
    }

    /// The span in hours, as a real number (features such as "hours since sign-on").
    pub fn as_hours_f64(self) -> f64 {
        self.0 as f64 / Self::HOUR.0 as f64
    }

    /// A wall-clock duration of the same length (negative spans become zero): the service
    /// runs its timers with the lengths the config gives in event-time units.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
}

impl Sub for EventTime {
    type Output = Span;
    fn sub(self, rhs: EventTime) -> Span {
        Span(self.0 - rhs.0)
    }
}

impl Add<Span> for EventTime {
    type Output = EventTime;
    fn add(self, rhs: Span) -> EventTime {
        EventTime(self.0 + rhs.0)
    }
}

impl Sub<Span> for EventTime {
    type Output = EventTime;
    fn sub(self, rhs: Span) -> EventTime {
        EventTime(self.0 - rhs.0)
    }
}

impl AddAssign<Span> for EventTime {
    fn add_assign(&mut self, rhs: Span) {
        self.0 += rhs.0;
    }
}

impl SubAssign<Span> for EventTime {
    fn sub_assign(&mut self, rhs: Span) {
        self.0 -= rhs.0;
    }
}

impl Add for Span {
    type Output = Span;
    fn add(self, rhs: Span) -> Span {
        Span(self.0 + rhs.0)
    }
}

impl Sub for Span {
    type Output = Span;
    fn sub(self, rhs: Span) -> Span {
        Span(self.0 - rhs.0)
    }
}

impl Mul<i64> for Span {
    type Output = Span;
    fn mul(self, rhs: i64) -> Span {
        Span(self.0 * rhs)
    }
}

impl Div<i64> for Span {
    type Output = Span;
    fn div(self, rhs: i64) -> Span {
        Span(self.0 / rhs)
    }
}

impl Neg for Span {
    type Output = Span;
    fn neg(self) -> Span {
        Span(-self.0)
    }
}

impl From<EventTime> for i64 {
    fn from(t: EventTime) -> i64 {
        t.0
    }
}

impl fmt::Display for EventTime {
    /// See [`format_ts`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_ts(self.0))
    }
}

/// An instant (or epoch milliseconds) as RFC 3339 UTC with milliseconds, the form every
/// output uses (the bare number when it is outside chrono's range). The edges that keep times
/// as plain numbers (the console's database, the simulator) format with it too.
pub fn format_ts(t: impl Into<i64>) -> String {
    let ms: i64 = t.into();
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// `Option<EventTime>` in a checkpoint as the bare number earlier versions wrote, with
/// `i64::MIN` for "none yet", so checkpoints stay readable across this change.
pub mod opt_min {
    use super::EventTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<EventTime>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.map_or(i64::MIN, EventTime::as_ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EventTime>, D::Error> {
        let ms = i64::deserialize(d)?;
        Ok((ms != i64::MIN).then_some(EventTime::from_ms(ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_spans_compose() {
        let t = EventTime::from_ms(1_700_000_000_000);
        assert_eq!((t + Span::HOUR) - t, Span::hours(1));
        assert_eq!(t - Span::MINUTE, EventTime::from_ms(1_699_999_940_000));
        assert_eq!(EventTime::from_ms(-1).day(), -1);
        assert_eq!(Span::minutes(90).as_hours_f64(), 1.5);
        assert_eq!(Span::ms(-5).to_std(), std::time::Duration::ZERO);
        assert_eq!(t.to_string(), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn a_checkpoint_keeps_its_number_for_none() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct S(#[serde(with = "opt_min")] Option<EventTime>);
        assert_eq!(
            serde_json::to_string(&S(None)).unwrap(),
            i64::MIN.to_string()
        );
        assert_eq!(
            serde_json::to_string(&S(Some(EventTime::from_ms(7)))).unwrap(),
            "7"
        );
        for v in [S(None), S(Some(EventTime::from_ms(-3)))] {
            let back: S = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(serde_json::to_string(&Span::SECOND).unwrap(), "1000");
    }
}

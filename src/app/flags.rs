//! Numeric command-line flags checked at parse time: each parser names what it accepts, and
//! clap puts the flag's name in front (`invalid value 'NaN' for '--fpr <FPR>': ...`), so a
//! silly value fails at once with a message naming the flag, never deep inside a run.

/// A finite number within `[lo, hi]` (`open_lo`: strictly above `lo`).
fn number(s: &str, lo: f64, hi: f64, open_lo: bool) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number (expected {})", range(lo, hi, open_lo)))?;
    let above = if open_lo { v > lo } else { v >= lo };
    if !v.is_finite() || !above || v > hi {
        return Err(format!("must be {}", range(lo, hi, open_lo)));
    }
    Ok(v)
}

fn range(lo: f64, hi: f64, open_lo: bool) -> String {
    format!(
        "a finite number {} {lo} and at most {hi}",
        if open_lo { "above" } else { "at least" }
    )
}

/// A whole number within `[lo, hi]`.
fn whole(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let v: u64 = s
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("not a whole number (expected {lo} to {hi})"))?;
    if !(lo..=hi).contains(&v) {
        return Err(format!("must be a whole number from {lo} to {hi}"));
    }
    Ok(v)
}

/// Most cards `simulate` builds: the card table is held in memory (about 60 bytes a card).
pub const MAX_CARDS: u64 = 20_000_000;
/// Most terminals (each world's TIDs live in a range of a million, with room for cold starts).
pub const MAX_TERMINALS: u64 = 400_000;
/// Most attack instances per scenario `simulate` plans up front (they are held in memory).
pub const MAX_INSTANCES: f64 = 1_000_000.0;

pub fn cards(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_CARDS).map(|v| v as usize)
}

pub fn terminals(s: &str) -> Result<usize, String> {
    whole(s, 1, MAX_TERMINALS).map(|v| v as usize)
}

pub fn days(s: &str) -> Result<u32, String> {
    whole(s, 1, 3_660).map(|v| v as u32)
}

pub fn attack_rate(s: &str) -> Result<f64, String> {
    number(s, 0.0, 100.0, false)
}

pub fn disorder_ms(s: &str) -> Result<i64, String> {
    whole(s, 0, 86_400_000).map(|v| v as i64)
}

/// `train --holdout`: a share strictly between 0 and 1 (at most 0.9: something to train on).
pub fn holdout(s: &str) -> Result<f64, String> {
    number(s, 0.0, 0.9, true)
}

/// `train --fpr`: a per-event false-positive budget above 0, at most 0.1.
pub fn fpr(s: &str) -> Result<f64, String> {
    number(s, 0.0, 0.1, true)
}

/// `train --nopin-limit`: minor units, 0 to 10^12.
pub fn nopin_limit(s: &str) -> Result<i64, String> {
    whole(s, 0, 1_000_000_000_000).map(|v| v as i64)
}

/// `train --window-hours`: 1 to 24.
pub fn window_hours(s: &str) -> Result<u32, String> {
    whole(s, 1, 24).map(|v| v as u32)
}

/// `train --components`: 1 to the most a model file may hold.
pub fn components(s: &str) -> Result<usize, String> {
    whole(s, 1, crate::models::density::MAX_COMPONENTS as u64).map(|v| v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silly_values_are_refused_with_what_is_accepted() {
        for bad in ["NaN", "inf", "-0.5", "0", "1", "x", ""] {
            assert!(holdout(bad).is_err(), "holdout {bad}");
        }
        assert_eq!(holdout("0.25"), Ok(0.25));
        for bad in ["NaN", "-1e-4", "0", "0.5"] {
            assert!(fpr(bad).is_err(), "fpr {bad}");
        }
        assert!(attack_rate("NaN").unwrap_err().contains("finite number"));
        assert!(attack_rate("-1").is_err() && attack_rate("1e9").is_err());
        assert_eq!(attack_rate("0"), Ok(0.0));
        assert!(window_hours("0").unwrap_err().contains("1 to 24"));
        assert!(cards("4000000000").unwrap_err().contains("20000000"));
        assert_eq!(cards("10_000"), Ok(10_000));
        assert!(days("0").is_err() && terminals("-3").is_err());
        assert!(components("0").is_err() && components("33").is_err());
        assert!(nopin_limit("-1").is_err());
        assert!(disorder_ms("-5").is_err());
    }
}

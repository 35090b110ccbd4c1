//! How a reason sentence writes a value: the way a person would, in one place. Money in major
//! units with the event currency's minor-unit exponent and thousands separators
//! (`4,690.86`), hours as hours and minutes or days (`19 h 14 min`, `31 days 1 h`), other
//! numbers with at most two decimals, booleans as yes/no, a missing value as `none`. The kind
//! of a value comes from its name: money ends in `amount`, `total` or `_limit`, hours in `_h`.
//! The alert's `features` keep the exact values; only the sentence is for people.

use serde_json::Value;

/// `v`, named `name`, as a reason sentence writes it; `currency`: the event's (ISO 4217).
pub fn word(name: &str, v: &Value, currency: Option<&str>) -> String {
    let money = name.ends_with("amount") || name.ends_with("total") || name.ends_with("_limit");
    match v {
        Value::Null if name.ends_with("_h") => "none recorded".into(),
        Value::Null => "none".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if money => n.as_i64().map_or_else(
            || decimals(n.as_f64().unwrap_or(0.0)),
            |m| amount(m, currency),
        ),
        Value::Number(n) if name.ends_with("_h") => hours(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => decimals(n.as_f64().unwrap_or(0.0)),
        },
        other => other.to_string(),
    }
}

/// Minor units as major units with the currency's exponent (2 when unknown).
fn amount(minor: i64, currency: Option<&str>) -> String {
    let exp = currency
        .and_then(iso_currency::Currency::from_code)
        .and_then(|c| c.exponent())
        .unwrap_or(2) as u32;
    let unit = 10i64.pow(exp);
    let (sign, abs) = if minor < 0 {
        ("-", minor.unsigned_abs())
    } else {
        ("", minor as u64)
    };
    let whole = grouped(abs / unit as u64);
    match exp {
        0 => format!("{sign}{whole}"),
        _ => format!("{sign}{whole}.{:0w$}", abs % unit as u64, w = exp as usize),
    }
}

/// Thousands separated by commas.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Hours as a person says them.
fn hours(h: f64) -> String {
    if !h.is_finite() || h < 0.0 {
        return decimals(h);
    }
    let minutes = (h * 60.0).round() as u64;
    let (d, hh, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, hh, m) {
        (0, 0, 0) => "under a minute".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} day{}", if d == 1 { "" } else { "s" }),
        (d, h, _) => format!("{d} day{} {h} h", if d == 1 { "" } else { "s" }),
    }
}

/// At most two decimals, no trailing zeros.
fn decimals(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_a_person_writes_them() {
        let w = |n: &str, v: Value, c: Option<&str>| word(n, &v, c);
        assert_eq!(w("amount", json!(469086), Some("CNY")), "4,690.86");
        assert_eq!(w("total", json!(172317), Some("JPY")), "172,317");
        assert_eq!(w("nocvm_limit", json!(100000), Some("KWD")), "100.000");
        assert_eq!(w("preauth_amount", json!(5), None), "0.05");
        assert_eq!(w("amount", json!(-120), Some("CNY")), "-1.20");
        assert_eq!(
            w("terminal_signon_age_h", json!(19.236254), None),
            "19 h 14 min"
        );
        assert_eq!(w("preauth_age_h", json!(745.210663), None), "31 days 1 h");
        assert_eq!(w("preauth_age_h", json!(24.0), None), "1 day");
        assert_eq!(w("age_h", json!(0.5), None), "30 min");
        assert_eq!(
            w("terminal_signon_age_h", Value::Null, None),
            "none recorded"
        );
        assert_eq!(w("preauth_merchant", Value::Null, None), "none");
        assert_eq!(w("preauth_found", json!(true), None), "yes");
        assert_eq!(w("score", json!(0.123456), None), "0.12");
        assert_eq!(w("ratio", json!(2.5), None), "2.5");
        assert_eq!(w("mcc", json!(5999), None), "5999");
        assert_eq!(w("merchant", json!("M1"), None), "M1");
    }
}

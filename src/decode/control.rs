//! Control records (see [`crate::control`]): a JSON object with `id`, `ts` and `control`.
//! Rare beside transactions, so read through `serde_json::Value` for the clearest reasons.
//! Every problem is a reject with the field named; a PAN given as target is tokenised, and
//! PAN-shaped runs in free text (reason, actor, detail) are replaced by their tokens, as in
//! every event field.

use super::fields::{clean_pan, parse_ts, truncate};
use super::raw::StrOrInt;
use super::{DecodeError, Decoder};
use crate::control::{AckStatus, Action, Control, Target, TargetKind, Until, DEFAULT_MANUAL_TTL};
use crate::time::{EventTime, Span};
use compact_str::CompactString;
use serde_json::{Map, Value};

/// Longest TTL or extension a control record may ask for (ten years).
pub const MAX_TTL: Span = Span::days(3650);
/// Longest `reason`, `actor` or `detail` kept.
const MAX_TEXT: usize = 512;

impl Decoder {
    /// Decode a control record (`bytes` holds a JSON object with a `control` field).
    pub fn decode_control(&self, bytes: &[u8]) -> Result<Control, DecodeError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| match std::str::from_utf8(bytes) {
                Err(u) => DecodeError::InvalidUtf8(u.valid_up_to()),
                Ok(_) => DecodeError::MalformedJson(e.to_string()),
            })?;
        let obj = v.as_object().ok_or(DecodeError::NotAnObject)?;
        let id = self
            .text(obj, "id", 128)?
            .ok_or(DecodeError::MissingField("id"))?;
        let ts = parse_ts(time_field(obj, "ts")?.ok_or(DecodeError::MissingField("ts"))?)?;
        let kind = obj
            .get("control")
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError::bad("control", "expected lock, unlock, extend or ack"))?;
        let action = match kind {
            "lock" => Action::Lock {
                target: self.target(obj)?,
                ttl: match obj.get("ttl").filter(|v| !v.is_null()) {
                    None => DEFAULT_MANUAL_TTL,
                    Some(t) => duration(t, "ttl")?,
                },
                reason: self.required_text(obj, "reason")?,
                actor: self.required_text(obj, "actor")?,
            },
            "unlock" => Action::Unlock {
                target: self.target(obj)?,
                reason: self.required_text(obj, "reason")?,
                actor: self.required_text(obj, "actor")?,
            },
            "extend" => Action::Extend {
                target: self.target(obj)?,
                until: until(obj, ts)?,
                reason: self.required_text(obj, "reason")?,
                actor: self.required_text(obj, "actor")?,
            },
            "ack" => Action::Ack {
                command_id: self
                    .text(obj, "command_id", 128)?
                    .ok_or(DecodeError::MissingField("command_id"))?,
                status: obj
                    .get("status")
                    .and_then(Value::as_str)
                    .and_then(AckStatus::parse)
                    .ok_or_else(|| {
                        DecodeError::bad("status", "expected applied, rejected or not_found")
                    })?,
                detail: self.text(obj, "detail", MAX_TEXT)?,
            },
            other => {
                return Err(DecodeError::bad(
                    "control",
                    format!(
                        "unknown control {:?}: expected lock, unlock, extend or ack",
                        truncate(other)
                    ),
                ))
            }
        };
        Ok(Control { id, ts, action })
    }

    /// A text field (absent, null or empty: `None`), PAN-shaped runs tokenised.
    fn text(
        &self,
        obj: &Map<String, Value>,
        field: &'static str,
        max: usize,
    ) -> Result<Option<CompactString>, DecodeError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.len() > max => {
                Err(DecodeError::bad(field, format!("longer than {max} bytes")))
            }
            Some(Value::String(s)) => Ok(Some(self.protect(s.as_str().into()))),
            Some(_) => Err(DecodeError::bad(field, "expected text")),
        }
    }

    fn required_text(
        &self,
        obj: &Map<String, Value>,
        field: &'static str,
    ) -> Result<CompactString, DecodeError> {
        let what = if field == "actor" {
            "required on manual control records (who asked for it)"
        } else {
            "required on manual control records (why)"
        };
        self.text(obj, field, MAX_TEXT)?
            .ok_or_else(|| DecodeError::bad(field, what))
    }

    /// Exactly one of `card`, `pan`, `terminal`.
    fn target(&self, obj: &Map<String, Value>) -> Result<Target, DecodeError> {
        let given: Vec<&str> = ["card", "pan", "terminal"]
            .into_iter()
            .filter(|k| obj.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        let target = match given.as_slice() {
            [one] => *one,
            [] => {
                let others: Vec<&str> = ["merchant", "account", "customer", "target"]
                    .into_iter()
                    .filter(|k| obj.contains_key(*k))
                    .collect();
                let why = if others.is_empty() {
                    "missing: give one of card, pan or terminal".to_string()
                } else {
                    format!(
                        "unknown target kind {}: only card, pan or terminal can be locked",
                        others.join(", ")
                    )
                };
                return Err(DecodeError::bad("target", why));
            }
            many => {
                return Err(DecodeError::bad(
                    "target",
                    format!("more than one target given ({})", many.join(", ")),
                ))
            }
        };
        let raw = match obj.get(target) {
            Some(Value::String(v)) if !v.is_empty() && v.len() <= 128 => v.as_str(),
            _ => {
                return Err(DecodeError::bad(
                    target_field(target),
                    "expected text of 1 to 128 bytes",
                ))
            }
        };
        Ok(match target {
            // The clear PAN itself: checked and tokenised, never kept.
            "pan" => {
                let p = clean_pan(raw)?;
                Target {
                    kind: TargetKind::Card,
                    id: self.token(&p),
                    pan_masked: Some(crate::pan::mask(&p)),
                }
            }
            "card" => {
                let (id, pan_masked) = self.card(Some(raw.into()));
                Target {
                    kind: TargetKind::Card,
                    id: id.expect("a card value"),
                    pan_masked,
                }
            }
            _ => Target {
                kind: TargetKind::Terminal,
                id: self.protect(raw.into()),
                pan_masked: None,
            },
        })
    }
}

/// The static name of a target field (for reasons).
fn target_field(name: &str) -> &'static str {
    match name {
        "pan" => "pan",
        "card" => "card",
        _ => "terminal",
    }
}

fn time_field<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<StrOrInt<'a>>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(StrOrInt::Str(s.as_str().into()))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(StrOrInt::Int(i))),
            None => Err(DecodeError::bad(
                field,
                "expected RFC 3339 text or integer epoch ms",
            )),
        },
        Some(_) => Err(DecodeError::bad(
            field,
            "expected RFC 3339 text or integer epoch ms",
        )),
    }
}

/// A duration such as `24h`: above zero and at most [`MAX_TTL`].
fn duration(v: &Value, field: &'static str) -> Result<Span, DecodeError> {
    let s = v
        .as_str()
        .ok_or_else(|| DecodeError::bad(field, "expected a duration such as 24h or 30m"))?;
    let d = humantime::parse_duration(s).map_err(|e| {
        DecodeError::bad(
            field,
            format!(
                "bad duration {:?} ({e}); use e.g. 30m, 24h, 7d",
                truncate(s)
            ),
        )
    })?;
    let ms = Span::ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    if ms <= Span::ZERO || ms > MAX_TTL {
        return Err(DecodeError::bad(
            field,
            "must be above zero and at most 3650 days",
        ));
    }
    Ok(ms)
}

/// An extension's end: `ttl` from the record's time, or `expires_at`, exactly one.
fn until(obj: &Map<String, Value>, ts: EventTime) -> Result<Until, DecodeError> {
    let ttl = obj.get("ttl").filter(|v| !v.is_null());
    let at = time_field(obj, "expires_at")?;
    match (ttl, at) {
        (Some(t), None) => Ok(Until::Ttl(duration(t, "ttl")?)),
        (None, Some(a)) => {
            let at = parse_ts(a).map_err(|e| match e {
                DecodeError::BadValue { reason, .. } => DecodeError::bad("expires_at", reason),
                other => other,
            })?;
            if at <= ts || at - ts > MAX_TTL {
                return Err(DecodeError::bad(
                    "expires_at",
                    "must be after the record's ts and at most 3650 days after it",
                ));
            }
            Ok(Until::At(at))
        }
        (Some(_), Some(_)) => Err(DecodeError::bad("ttl", "give ttl or expires_at, not both")),
        (None, None) => Err(DecodeError::bad("ttl", "extend needs ttl or expires_at")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl(s: &str) -> Result<Control, DecodeError> {
        Decoder::default().decode_control(s.as_bytes())
    }

    #[test]
    fn every_kind_of_control_record_decodes() {
        let c = ctl(r#"{"id":"c1","ts":"2026-10-01T10:00:00Z","control":"lock","pan":"6225 8801 2345 6780","ttl":"12h","reason":"customer called","actor":"alice"}"#).unwrap();
        let Action::Lock { target, ttl, .. } = &c.action else {
            panic!("{c:?}")
        };
        assert_eq!(*ttl, Span::hours(12));
        assert_eq!(target.kind, TargetKind::Card);
        assert!(target.id.starts_with("tok_"));
        assert_eq!(target.pan_masked.as_deref(), Some("622588******6780"));
        let c = ctl(r#"{"id":"c2","ts":1790820000000,"control":"unlock","terminal":"T1","reason":"ok","actor":"bob"}"#).unwrap();
        assert!(matches!(c.action, Action::Unlock { .. }));
        let c = ctl(r#"{"id":"c3","ts":1790820000000,"control":"extend","card":"C1","expires_at":"2026-10-09T00:00:00Z","reason":"r","actor":"a"}"#).unwrap();
        assert!(matches!(
            c.action,
            Action::Extend {
                until: Until::At(_),
                ..
            }
        ));
        let c = ctl(r#"{"id":"a1","ts":1790820000000,"control":"ack","command_id":"cmd_1","status":"not_found","detail":"no such card"}"#).unwrap();
        assert!(matches!(
            c.action,
            Action::Ack {
                status: AckStatus::NotFound,
                ..
            }
        ));
        let c = ctl(r#"{"id":"c4","ts":1790820000000,"control":"lock","card":"C9","reason":"r","actor":"a"}"#).unwrap();
        assert!(matches!(
            c.action,
            Action::Lock {
                ttl: DEFAULT_MANUAL_TTL,
                ..
            }
        ));
    }

    #[test]
    fn every_bad_control_record_has_a_precise_reason() {
        let t = r#""id":"x","ts":1790820000000"#;
        let cases = [
            (
                format!(r#"{{{t},"control":"lock","merchant":"M1","reason":"r","actor":"a"}}"#),
                "unknown target kind merchant",
            ),
            (
                format!(r#"{{{t},"control":"lock","card":"C1","reason":"r"}}"#),
                "`actor`",
            ),
            (
                format!(r#"{{{t},"control":"unlock","card":"C1","actor":"a"}}"#),
                "`reason`",
            ),
            (
                format!(
                    r#"{{{t},"control":"lock","card":"C1","terminal":"T1","reason":"r","actor":"a"}}"#
                ),
                "more than one target",
            ),
            (
                format!(
                    r#"{{{t},"control":"lock","card":"C1","ttl":"soon","reason":"r","actor":"a"}}"#
                ),
                "bad duration",
            ),
            (
                format!(
                    r#"{{{t},"control":"lock","card":"C1","ttl":"0s","reason":"r","actor":"a"}}"#
                ),
                "above zero",
            ),
            (
                format!(
                    r#"{{{t},"control":"lock","card":"C1","ttl":"300000y","reason":"r","actor":"a"}}"#
                ),
                "3650 days",
            ),
            (
                format!(r#"{{{t},"control":"extend","card":"C1","reason":"r","actor":"a"}}"#),
                "ttl or expires_at",
            ),
            (
                format!(
                    r#"{{{t},"control":"extend","card":"C1","expires_at":"2020-01-01T00:00:00Z","reason":"r","actor":"a"}}"#
                ),
                "after the record",
            ),
            (
                format!(r#"{{{t},"control":"ack","status":"applied"}}"#),
                "`command_id`",
            ),
            (
                format!(r#"{{{t},"control":"ack","command_id":"c","status":"maybe"}}"#),
                "applied, rejected or not_found",
            ),
            (format!(r#"{{{t},"control":"zap"}}"#), "unknown control"),
            (
                format!(r#"{{{t},"control":"lock","pan":"12ab","reason":"r","actor":"a"}}"#),
                "`pan`",
            ),
            (r#"{"id":"x","control":"ack"}"#.to_string(), "`ts`"),
            (
                r#"{"id":"x","ts":1790820000,"control":"ack"}"#.to_string(),
                "epoch seconds",
            ),
            (
                r#"{"id":"x","ts":1790820000000,"control":"lock""#.to_string(),
                "malformed JSON",
            ),
        ];
        for (rec, needle) in cases {
            let err = ctl(&rec).unwrap_err().to_string();
            assert!(err.contains(needle), "{rec}: {err} lacks {needle}");
        }
    }

    #[test]
    fn free_text_carries_no_pan() {
        let c = ctl(r#"{"id":"c1","ts":1790820000000,"control":"unlock","card":"6225880123456780","reason":"card 6225880123456780 verified","actor":"alice"}"#).unwrap();
        let Action::Unlock { target, reason, .. } = c.action else {
            panic!()
        };
        assert!(target.id.starts_with("tok_"));
        assert!(!reason.contains("0123456"), "{reason}");
    }
}

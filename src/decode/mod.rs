//! Decode: bytes (a JSON object, or a CSV/Parquet row) → validated [`Event`], or a reject with
//! its reason. PANs are tokenised here and go no further.
//!
//! The fast path deserialises straight into borrowed [`raw::RawEvent`] fields; only a failing
//! record is parsed a second time, generically, to say precisely which field is wrong.

pub mod pan;
pub mod raw;
mod scan;
pub mod tokens;
mod ts;

use crate::event::{EntryMode, Event, EventType, Pin};
use compact_str::CompactString;
use raw::{RawEvent, StrOrInt};
use std::borrow::Cow;
use std::cell::RefCell;
use thiserror::Error;
use tokens::TokenCache;

pub use pan::Tokenizer;

/// Largest accepted record, in bytes. Anything bigger is a reject, not a memory problem.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Why a record was set aside. Callers match on it; [`DecodeError::code`] is the stable,
/// low-cardinality label used in metrics and reject files.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    #[error("record is {0} bytes, over the {MAX_RECORD_BYTES} byte limit")]
    TooLarge(usize),
    #[error("record is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}`: {reason}")]
    BadValue { field: &'static str, reason: String },
}

impl DecodeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::InvalidUtf8(_) => "invalid_utf8",
            Self::MalformedJson(_) => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField(_) => "missing_field",
            Self::BadValue { .. } => "bad_value",
        }
    }

    pub const CODES: [&'static str; 6] = [
        "too_large",
        "invalid_utf8",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "bad_value",
    ];

    fn bad(field: &'static str, reason: impl Into<String>) -> Self {
        Self::BadValue {
            field,
            reason: reason.into(),
        }
    }
}

/// Turns records into events. Holds the tokenisation key and a cache of recent tokens
/// ([`TokenCache`]); a clone shares the key and starts with an empty cache of its own.
#[derive(Debug, Default)]
pub struct Decoder {
    tokenizer: Tokenizer,
    tokens: RefCell<TokenCache>,
}

impl Clone for Decoder {
    fn clone(&self) -> Self {
        Self::new(self.tokenizer.clone())
    }
}

impl Decoder {
    pub fn new(tokenizer: Tokenizer) -> Self {
        Self {
            tokenizer,
            tokens: RefCell::default(),
        }
    }

    /// Decode one JSON record (a Kafka message value or a JSONL line without its newline).
    pub fn decode_json(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        // A prefetch only: a value that is not a PAN is refused later, by validation.
        let warm = |p: &str| self.tokens.borrow().warm(p);
        if let Some(raw) = scan::scan(bytes, warm) {
            return self.validate(raw);
        }
        self.decode_json_serde(bytes)
    }

    /// The general path: serde_json, then a second look at a failing record to say why.
    fn decode_json_serde(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        match serde_json::from_slice::<RawEvent>(bytes) {
            Ok(raw) => self.validate(raw),
            Err(e) => Err(explain_json_error(bytes, e)),
        }
    }

    /// Validate a raw event: required fields, enumerations, formats; tokenise the PAN.
    pub fn validate(&self, raw: RawEvent<'_>) -> Result<Event, DecodeError> {
        let id = required_str(raw.id, "id")?;
        let ts = parse_ts(raw.ts.ok_or(DecodeError::MissingField("ts"))?)?;
        let kind_s = raw.kind.ok_or(DecodeError::MissingField("type"))?;
        let kind = EventType::parse(&kind_s).ok_or_else(|| {
            DecodeError::bad(
                "type",
                format!("unknown message type {:?}", truncate(&kind_s)),
            )
        })?;
        let terminal = required_str(raw.terminal, "terminal")?;
        let merchant = opt_str(raw.merchant);
        if merchant.is_none() && !kind.is_management() {
            return Err(DecodeError::MissingField("merchant"));
        }
        // The PAN is checked here and tokenised last, once the record is known to be good.
        let (card, pan) = match (raw.pan, raw.card) {
            (Some(p), _) => {
                if !pan::is_pan(&p) {
                    return Err(DecodeError::bad("pan", "expected 12 to 19 digits"));
                }
                (None, Some(p))
            }
            (None, Some(c)) if !c.is_empty() => (Some(CompactString::from(c.as_ref())), None),
            _ => (None, None),
        };
        let mcc = match raw.mcc {
            None => None,
            Some(v) => Some(parse_mcc(v)?),
        };
        let amount = match raw.amount {
            None => None,
            Some(StrOrInt::Int(a)) if a >= 0 => Some(a),
            Some(StrOrInt::Int(_)) => return Err(DecodeError::bad("amount", "must be ≥ 0")),
            Some(_) => {
                return Err(DecodeError::bad(
                    "amount",
                    "expected an integer in minor units",
                ))
            }
        };
        let currency = match opt_str(raw.currency) {
            Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Some(c),
            Some(_) => {
                return Err(DecodeError::bad(
                    "currency",
                    "expected an ISO 4217 alpha-3 code",
                ))
            }
            None => None,
        };
        let entry_mode = match raw.entry_mode {
            None => None,
            Some(s) => Some(EntryMode::parse(&s).ok_or_else(|| {
                DecodeError::bad(
                    "entry_mode",
                    format!("unknown entry mode {:?}", truncate(&s)),
                )
            })?),
        };
        let pin = match raw.pin {
            None => None,
            Some(s) => Some(Pin::parse(&s).ok_or_else(|| {
                DecodeError::bad("pin", format!("unknown PIN outcome {:?}", truncate(&s)))
            })?),
        };
        let response_code = match opt_str(raw.response_code) {
            Some(c)
                if (2..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Some(c)
            }
            Some(_) => {
                return Err(DecodeError::bad(
                    "response_code",
                    "expected 2 alphanumeric characters (DE39)",
                ))
            }
            None => None,
        };
        let (card, pan_masked) = match pan {
            Some(p) => (
                Some(self.tokens.borrow_mut().token(&self.tokenizer, &p)),
                Some(pan::mask(&p)),
            ),
            None => (card, None),
        };
        Ok(Event {
            id,
            ts,
            kind,
            card,
            pan_masked,
            terminal,
            merchant,
            mcc,
            amount,
            currency,
            entry_mode,
            pin,
            response_code,
            auth_ref: opt_str(raw.auth_ref),
            original_id: opt_str(raw.original_id),
            batch: opt_str(raw.batch),
            qr_ref: opt_str(raw.qr_ref),
            label: opt_str(raw.label),
        })
    }
}

fn truncate(s: &str) -> String {
    let mut t: String = pan::redact(s).chars().take(40).collect();
    if s.chars().count() > 40 {
        t.push('…');
    }
    t
}

#[inline]
fn opt_str(v: Option<Cow<'_, str>>) -> Option<CompactString> {
    v.filter(|s| !s.is_empty())
        .map(|s| CompactString::from(s.as_ref()))
}

#[inline]
fn required_str(
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

/// Epoch milliseconds, or RFC 3339 with an explicit offset. Years 1970..=9999 only.
fn parse_ts(v: StrOrInt<'_>) -> Result<i64, DecodeError> {
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
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
    if !(0..=MAX).contains(&ms) {
        return Err(DecodeError::bad("ts", "out of range"));
    }
    Ok(ms)
}

fn parse_mcc(v: StrOrInt<'_>) -> Result<u16, DecodeError> {
    let ok = match &v {
        StrOrInt::Str(s) if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        StrOrInt::Int(i) if (0..=9999).contains(i) => Some(*i as u16),
        _ => None,
    };
    ok.ok_or_else(|| DecodeError::bad("mcc", "expected 4 digits"))
}

/// Slow path: say what is wrong with a record the typed parser refused.
fn explain_json_error(bytes: &[u8], err: serde_json::Error) -> DecodeError {
    if let Err(e) = std::str::from_utf8(bytes) {
        return DecodeError::InvalidUtf8(e.valid_up_to());
    }
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return DecodeError::MalformedJson(e.to_string()),
    };
    let Some(obj) = value.as_object() else {
        return DecodeError::NotAnObject;
    };
    for name in raw::FIELDS {
        let Some(v) = obj.get(name) else { continue };
        let ok = match name {
            "ts" | "mcc" | "amount" => v.is_string() || v.is_number() || v.is_null(),
            _ => v.is_string() || v.is_null(),
        };
        if !ok {
            let field = raw::FIELDS.iter().find(|f| **f == name).expect("listed");
            let got = match v {
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::Object(_) => "an object",
                _ => "a string",
            };
            return DecodeError::bad(field, format!("wrong type: got {got}"));
        }
    }
    DecodeError::MalformedJson(err.to_string())
}

#[cfg(test)]
mod tests;

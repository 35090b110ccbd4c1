//! Decode: bytes (a JSON object, or a CSV/Parquet row) → validated [`Event`], or a reject with
//! its reason. PANs are tokenised here and go no further.
//!
//! The fast path deserialises straight into borrowed [`raw::RawEvent`] fields; only a failing
//! record is parsed a second time, generically, to say precisely which field is wrong.

mod control;
mod fields;
pub mod raw;
mod scan;
pub mod tokens;
mod ts;

use crate::event::{EntryMode, Event, Pin};
use compact_str::CompactString;
use fields::*;
use raw::RawEvent;
use std::cell::RefCell;
use thiserror::Error;
use tokens::TokenCache;

use crate::pan;
pub use crate::pan::Tokenizer;

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
    /// A CSV or Parquet row whose shape is wrong (field count, quoting, a cell of a type that
    /// cannot be read).
    #[error("malformed row: {0}")]
    MalformedRow(String),
    /// A CSV file whose header cannot be used: its rows are not read.
    #[error("bad header: {0}")]
    BadHeader(String),
    /// The file could not be read further (a truncated gzip stream, trailing garbage, an I/O
    /// error): the rest of the file is not read.
    #[error("read error: {0}")]
    ReadError(String),
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
            Self::MalformedRow(_) => "malformed_row",
            Self::BadHeader(_) => "bad_header",
            Self::ReadError(_) => "read_error",
        }
    }

    pub const CODES: [&'static str; 9] = [
        "too_large",
        "invalid_utf8",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "bad_value",
        "malformed_row",
        "bad_header",
        "read_error",
    ];

    pub(crate) fn bad(field: &'static str, reason: impl Into<String>) -> Self {
        Self::BadValue {
            field,
            reason: reason.into(),
        }
    }
}

pub use crate::control::Input;

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

    /// Decode one record that may be a transaction event or a control record (an object with a
    /// `control` field): replay files and the service's topics carry both.
    pub fn decode_input(&self, bytes: &[u8]) -> Result<Input, DecodeError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let warm = |p: &str| self.tokens.borrow().warm(p);
        if let Some(raw) = scan::scan(bytes, warm) {
            return self.validate(raw).map(Input::Event);
        }
        // The fast reader gives up on a `control` key: only then is it looked for.
        if memchr::memmem::find(bytes, b"\"control\"").is_some() {
            return self.decode_control(bytes).map(Input::Control);
        }
        self.decode_json_serde(bytes).map(Input::Event)
    }

    /// The general path: serde_json, then a second look at a failing record to say why.
    fn decode_json_serde(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        match serde_json::from_slice::<RawEvent>(bytes) {
            Ok(raw) => self.validate(raw),
            Err(e) => Err(explain_json_error(bytes, e)),
        }
    }

    /// Validate a raw event: required fields, enumerations, formats; tokenise the PAN, and
    /// any PAN-shaped digit run in any other text field.
    pub fn validate(&self, raw: RawEvent<'_>) -> Result<Event, DecodeError> {
        let id = required_str(raw.id, "id")?;
        let ts = parse_ts(raw.ts.ok_or(DecodeError::MissingField("ts"))?)?;
        let kind = parse_kind(raw.kind.ok_or(DecodeError::MissingField("type"))?)?;
        let terminal = required_str(raw.terminal, "terminal")?;
        let merchant = opt_str(raw.merchant);
        if merchant.is_none() && !kind.is_management() {
            return Err(DecodeError::MissingField("merchant"));
        }
        // The PAN is checked here and tokenised last, once the record is known to be good.
        let pan = raw.pan.as_deref().map(clean_pan).transpose()?;
        let card = opt_str(raw.card);
        let mcc = raw.mcc.map(parse_mcc).transpose()?;
        let amount = raw.amount.map(parse_amount).transpose()?;
        let currency = opt_str(raw.currency).map(parse_currency).transpose()?;
        let entry_mode = raw
            .entry_mode
            .map(|s| parse_enum(&s, "entry_mode", "entry mode", EntryMode::parse))
            .transpose()?;
        let pin = raw
            .pin
            .map(|s| parse_enum(&s, "pin", "PIN outcome", Pin::parse))
            .transpose()?;
        let response_code = opt_str(raw.response_code)
            .map(parse_response_code)
            .transpose()?;
        let (card, pan_masked) = match pan {
            Some(p) => (Some(self.token(&p)), Some(pan::mask(&p))),
            None => self.card(card),
        };
        let protect = |v: Option<CompactString>| v.map(|s| self.protect(s));
        Ok(Event {
            id: self.protect(id),
            ts,
            kind,
            card,
            pan_masked,
            terminal: self.protect(terminal),
            merchant: protect(merchant),
            mcc,
            amount,
            currency,
            entry_mode,
            pin,
            response_code,
            auth_ref: protect(opt_str(raw.auth_ref)),
            original_id: protect(opt_str(raw.original_id)),
            batch: protect(opt_str(raw.batch)),
            qr_ref: protect(opt_str(raw.qr_ref)),
            label: protect(opt_str(raw.label)),
        })
    }

    /// The token of a PAN given as its digits.
    fn token(&self, digits: &str) -> CompactString {
        self.tokens.borrow_mut().token(&self.tokenizer, digits)
    }

    /// A `card` value: the switch's token as it is, unless it holds a PAN-shaped run (a PAN
    /// sent as a card, bare or inside other text), which is tokenised like the `pan` field.
    fn card(&self, card: Option<CompactString>) -> (Option<CompactString>, Option<CompactString>) {
        let Some(c) = card else {
            return (None, None);
        };
        match pan::scan::runs(c.as_bytes()).into_iter().next() {
            None => (Some(c), None),
            Some(run) => {
                let digits = std::str::from_utf8(&run.digits).expect("ASCII digits");
                (Some(self.token(digits)), Some(pan::mask(digits)))
            }
        }
    }

    /// `s` with every PAN-shaped digit run replaced by its token: a PAN inside an id, a QR
    /// payload, a reference or free text never goes further than the decoder. The same text
    /// always gives the same result, so ids, joins and keys still match.
    fn protect(&self, s: CompactString) -> CompactString {
        if !pan::scan::may_hold_run(s.as_bytes()) {
            return s;
        }
        let runs = pan::scan::runs(s.as_bytes());
        if runs.is_empty() {
            return s;
        }
        let mut out = CompactString::with_capacity(s.len() + 8);
        let mut at = 0;
        for r in &runs {
            out.push_str(&s[at..r.start]);
            out.push_str(&self.token(std::str::from_utf8(&r.digits).expect("ASCII digits")));
            at = r.end;
        }
        out.push_str(&s[at..]);
        out
    }
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

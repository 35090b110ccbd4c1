//! The wire shape of an event before validation: every field optional, strings borrowed from
//! the input buffer where possible, so the fast path allocates nothing.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A field that may arrive as a string or as an integer (`ts`, `mcc`, `amount` in CSV).
#[derive(Debug, Clone, PartialEq)]
pub enum StrOrInt<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// A JSON number that is not an integer, kept so the reason can say so.
    Float(f64),
}

impl<'de: 'a, 'a> Deserialize<'de> for StrOrInt<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrInt<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrOrInt::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOrInt::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StrOrInt::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(StrOrInt::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(StrOrInt::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(StrOrInt::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One event as it arrives. `null` and absent are the same (`None`); validation decides what
/// is required. Unknown fields are ignored, as the contract says.
#[derive(Debug, Default, Deserialize)]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub ts: Option<StrOrInt<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub pan: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub card: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub terminal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub merchant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub mcc: Option<StrOrInt<'a>>,
    #[serde(borrow)]
    pub amount: Option<StrOrInt<'a>>,
    #[serde(borrow)]
    pub currency: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub entry_mode: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub pin: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub response_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub auth_ref: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub original_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub batch: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub qr_ref: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub label: Option<Cow<'a, str>>,
}

/// The names of the contract's fields, in contract order (CSV/Parquet columns use them too).
pub const FIELDS: [&str; 18] = [
    "id",
    "ts",
    "type",
    "pan",
    "card",
    "terminal",
    "merchant",
    "mcc",
    "amount",
    "currency",
    "entry_mode",
    "pin",
    "response_code",
    "auth_ref",
    "original_id",
    "batch",
    "qr_ref",
    "label",
];

impl<'a> RawEvent<'a> {
    /// Build from (column name, text) pairs, as CSV and Parquet rows arrive. Empty text is absent.
    pub fn from_pairs<'b>(pairs: impl IntoIterator<Item = (&'b str, Option<&'a str>)>) -> Self {
        let mut raw = RawEvent::default();
        for (name, value) in pairs {
            let Some(v) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let s = || Some(Cow::Borrowed(v));
            let n = || {
                Some(match v.parse::<i64>() {
                    Ok(i) => StrOrInt::Int(i),
                    Err(_) => StrOrInt::Str(Cow::Borrowed(v)),
                })
            };
            match name {
                "id" => raw.id = s(),
                "ts" => raw.ts = n(),
                "type" => raw.kind = s(),
                "pan" => raw.pan = s(),
                "card" => raw.card = s(),
                "terminal" => raw.terminal = s(),
                "merchant" => raw.merchant = s(),
                "mcc" => raw.mcc = Some(StrOrInt::Str(Cow::Borrowed(v))),
                "amount" => raw.amount = n(),
                "currency" => raw.currency = s(),
                "entry_mode" => raw.entry_mode = s(),
                "pin" => raw.pin = s(),
                "response_code" => raw.response_code = s(),
                "auth_ref" => raw.auth_ref = s(),
                "original_id" => raw.original_id = s(),
                "batch" => raw.batch = s(),
                "qr_ref" => raw.qr_ref = s(),
                "label" => raw.label = s(),
                _ => {}
            }
        }
        raw
    }
}

//! The validated transaction event: what every stage after decoding works on.
//!
//! Strings are `CompactString` (inline up to 24 bytes, no allocation for ids, TIDs, MIDs and
//! tokens), enumerations are closed Rust enums, and time is epoch milliseconds of event time.
//! A clear PAN never reaches this type: decoding replaces it with a token and a masked form.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub use crate::time::{format_ts, EventTime, Span};

/// The message class of a switch event (ISO 8583 MTI plus processing code / DE25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Auth,
    Preauth,
    Completion,
    PreauthCancel,
    Reversal,
    Refund,
    Transfer,
    SignOn,
    SignOff,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        Self::Auth,
        Self::Preauth,
        Self::Completion,
        Self::PreauthCancel,
        Self::Reversal,
        Self::Refund,
        Self::Transfer,
        Self::SignOn,
        Self::SignOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Preauth => "preauth",
            Self::Completion => "completion",
            Self::PreauthCancel => "preauth_cancel",
            Self::Reversal => "reversal",
            Self::Refund => "refund",
            Self::Transfer => "transfer",
            Self::SignOn => "sign_on",
            Self::SignOff => "sign_off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Messages that move money (or reserve it): the ones a terminal must be signed on for.
    pub fn is_financial(self) -> bool {
        matches!(
            self,
            Self::Auth | Self::Preauth | Self::Completion | Self::Refund | Self::Transfer
        )
    }

    /// Terminal management messages (0800/0820), which carry no merchant.
    pub fn is_management(self) -> bool {
        matches!(self, Self::SignOn | Self::SignOff)
    }
}

/// How the card was read (DE22 POS entry mode, simplified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryMode {
    Chip,
    Contactless,
    Magstripe,
    Fallback,
    Manual,
    Ecom,
    CardOnFile,
    Qr,
    Unknown,
}

impl EntryMode {
    pub const ALL: [EntryMode; 9] = [
        Self::Chip,
        Self::Contactless,
        Self::Magstripe,
        Self::Fallback,
        Self::Manual,
        Self::Ecom,
        Self::CardOnFile,
        Self::Qr,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chip => "chip",
            Self::Contactless => "contactless",
            Self::Magstripe => "magstripe",
            Self::Fallback => "fallback",
            Self::Manual => "manual",
            Self::Ecom => "ecom",
            Self::CardOnFile => "card_on_file",
            Self::Qr => "qr",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What happened to cardholder verification by PIN in this transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    Entered,
    Absent,
    Bypassed,
    Timeout,
}

impl Pin {
    pub const ALL: [Pin; 4] = [Self::Entered, Self::Absent, Self::Bypassed, Self::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entered => "entered",
            Self::Absent => "absent",
            Self::Bypassed => "bypassed",
            Self::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A decoded, validated event. Produced by `decode`, consumed by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: CompactString,
    pub ts: EventTime,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Card token (keyed HMAC of the PAN, or the switch's own token).
    pub card: Option<CompactString>,
    /// First 6 and last 4 digits of the PAN, when the event carried one.
    pub pan_masked: Option<CompactString>,
    pub terminal: CompactString,
    pub merchant: Option<CompactString>,
    pub mcc: Option<u16>,
    pub amount: Option<i64>,
    pub currency: Option<CompactString>,
    pub entry_mode: Option<EntryMode>,
    pub pin: Option<Pin>,
    pub response_code: Option<CompactString>,
    pub auth_ref: Option<CompactString>,
    pub original_id: Option<CompactString>,
    pub batch: Option<CompactString>,
    pub qr_ref: Option<CompactString>,
    /// Ground truth for evaluation only. No rule may read it (the expression compiler refuses it).
    pub label: Option<CompactString>,
}

/// The message types on which a cardholder enters a PIN for the issuer to verify.
pub const PIN_ATTEMPT_TYPES: [EventType; 3] =
    [EventType::Auth, EventType::Preauth, EventType::Transfer];

/// Response codes that say the issuer checked the PIN and accepted it: approved, or declined
/// for a reason checked after the PIN (51 insufficient funds, 61 amount limit, 65 count limit).
pub const PIN_VERIFIED_CODES: [&str; 4] = ["00", "51", "61", "65"];

/// The wrong-PIN response code.
pub const WRONG_PIN_CODE: &str = "55";

impl Event {
    /// Response code `00`.
    pub fn approved(&self) -> bool {
        self.response_code.as_deref() == Some("00")
    }

    /// A PIN attempt: an auth, preauth or transfer on which a PIN was entered. Only these
    /// count toward or reset a wrong-PIN run: a reversal, refund, cancel or sign-on echoes a
    /// response code without any PIN being tried. Rules read it as `pin_attempt`; the models
    /// share it.
    pub fn pin_attempt(&self) -> bool {
        self.pin == Some(Pin::Entered) && PIN_ATTEMPT_TYPES.contains(&self.kind)
    }

    /// A PIN attempt the issuer answered "wrong PIN" (`55`): `wrong_pin`.
    pub fn wrong_pin(&self) -> bool {
        self.pin_attempt() && self.response_code.as_deref() == Some(WRONG_PIN_CODE)
    }

    /// A PIN attempt whose PIN the issuer accepted ([`PIN_VERIFIED_CODES`]): `pin_verified`.
    pub fn pin_verified(&self) -> bool {
        self.pin_attempt()
            && self
                .response_code
                .as_deref()
                .is_some_and(|rc| PIN_VERIFIED_CODES.contains(&rc))
    }
}

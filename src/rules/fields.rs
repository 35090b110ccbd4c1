//! The names a rule expression can read: event fields and the derived features that state
//! computes for the event (joins to the pre-auth book, the QR book and terminal sessions).

use crate::event::{EntryMode, Event, EventType, Pin};
use crate::models::features;
use crate::state::Features;

fn num<'a>(v: Option<f64>) -> Val<'a> {
    v.map_or(Val::Null, Val::Float)
}

fn boolean<'a>(v: Option<bool>) -> Val<'a> {
    v.map_or(Val::Null, Val::Bool)
}
use compact_str::CompactString;

/// The message types on which a cardholder enters a PIN for the issuer to verify.
pub const PIN_ATTEMPT_TYPES: [EventType; 3] =
    [EventType::Auth, EventType::Preauth, EventType::Transfer];

/// Response codes that say the issuer checked the PIN and accepted it: approved, or declined
/// for a reason checked after the PIN (51 insufficient funds, 61 amount limit, 65 count limit).
pub const PIN_VERIFIED_CODES: [&str; 4] = ["00", "51", "61", "65"];

/// The wrong-PIN response code.
pub const WRONG_PIN_CODE: &str = "55";

/// A PIN attempt: an auth, preauth or transfer on which a PIN was entered. Only these count
/// toward or reset a wrong-PIN run: a reversal, refund, cancel or sign-on echoes a response
/// code without any PIN being tried. Rules read it as `pin_attempt`; the models share it.
pub fn pin_attempt(ev: &Event) -> bool {
    ev.pin == Some(Pin::Entered) && PIN_ATTEMPT_TYPES.contains(&ev.kind)
}

/// A PIN attempt the issuer answered "wrong PIN" (`55`): `wrong_pin`.
pub fn wrong_pin(ev: &Event) -> bool {
    pin_attempt(ev) && ev.response_code.as_deref() == Some(WRONG_PIN_CODE)
}

/// A PIN attempt whose PIN the issuer accepted ([`PIN_VERIFIED_CODES`]): `pin_verified`.
pub fn pin_verified(ev: &Event) -> bool {
    pin_attempt(ev)
        && ev
            .response_code
            .as_deref()
            .is_some_and(|rc| PIN_VERIFIED_CODES.contains(&rc))
}

/// A readable field. Resolved from its name once, at rule load; read per event by a `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    Ts,
    Type,
    Card,
    PanMasked,
    Terminal,
    Merchant,
    Mcc,
    Amount,
    Currency,
    EntryMode,
    Pin,
    ResponseCode,
    AuthRef,
    OriginalId,
    Batch,
    QrRef,
    Approved,
    Financial,
    PinAttempt,
    WrongPin,
    PinVerified,
    PreauthFound,
    PreauthOpen,
    PreauthAmount,
    PreauthMerchant,
    PreauthAgeH,
    QrPriorPayments,
    TerminalSignonAgeH,
    TerminalSignedOff,
    CardTx1h,
    CardTx24h,
    AmountDev,
    AmountZ,
    TerminalPinScore,
    TerminalPinAnomalous,
    MerchantNopinScore,
    MerchantNopinAnomalous,
    DensityScore,
    DensityPct,
    DensityAnomalous,
    FraudProbability,
    FraudAnomalous,
}

/// The static type of a field or expression, used to refuse nonsense at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Num,
    Str,
}

/// A value read from an event or computed by an expression. Borrows strings; never allocates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Val<'_> {
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Bool(b) => b.into(),
            Val::Int(i) => i.into(),
            Val::Float(f) => serde_json::Number::from_f64((f * 1e6).round() / 1e6)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Val::Str(s) => s.into(),
        }
    }
}

/// (name, field, type, description): one table drives name lookup, typing and the README.
pub const FIELDS: &[(&str, Field, Ty, &str)] = &[
    ("id", Field::Id, Ty::Str, "event id"),
    ("ts", Field::Ts, Ty::Num, "event time, epoch ms"),
    ("type", Field::Type, Ty::Str, "message class"),
    ("card", Field::Card, Ty::Str, "card token"),
    (
        "pan_masked",
        Field::PanMasked,
        Ty::Str,
        "first 6 / last 4 of the PAN",
    ),
    ("terminal", Field::Terminal, Ty::Str, "terminal id"),
    ("merchant", Field::Merchant, Ty::Str, "merchant id"),
    (
        "mcc",
        Field::Mcc,
        Ty::Num,
        "merchant category code (a number: mcc >= 3501)",
    ),
    ("amount", Field::Amount, Ty::Num, "amount in minor units"),
    ("currency", Field::Currency, Ty::Str, "ISO 4217 alpha-3"),
    (
        "entry_mode",
        Field::EntryMode,
        Ty::Str,
        "how the card was read",
    ),
    ("pin", Field::Pin, Ty::Str, "PIN outcome"),
    (
        "response_code",
        Field::ResponseCode,
        Ty::Str,
        "DE39 response code",
    ),
    ("auth_ref", Field::AuthRef, Ty::Str, "pre-auth reference"),
    (
        "original_id",
        Field::OriginalId,
        Ty::Str,
        "reversed event id",
    ),
    ("batch", Field::Batch, Ty::Str, "terminal batch number"),
    ("qr_ref", Field::QrRef, Ty::Str, "QR payload / order id"),
    (
        "approved",
        Field::Approved,
        Ty::Bool,
        "response_code == \"00\"",
    ),
    (
        "financial",
        Field::Financial,
        Ty::Bool,
        "auth, preauth, completion, refund or transfer",
    ),
    (
        "pin_attempt",
        Field::PinAttempt,
        Ty::Bool,
        "a PIN attempt: auth, preauth or transfer with pin == \"entered\"",
    ),
    (
        "wrong_pin",
        Field::WrongPin,
        Ty::Bool,
        "a PIN attempt answered 55 (wrong PIN)",
    ),
    (
        "pin_verified",
        Field::PinVerified,
        Ty::Bool,
        "a PIN attempt whose PIN the issuer accepted: 00, or 51/61/65 (declined after the PIN check)",
    ),
    (
        "preauth_found",
        Field::PreauthFound,
        Ty::Bool,
        "a pre-auth with this auth_ref is in the book",
    ),
    (
        "preauth_open",
        Field::PreauthOpen,
        Ty::Bool,
        "... and was neither completed, cancelled nor reversed",
    ),
    (
        "preauth_amount",
        Field::PreauthAmount,
        Ty::Num,
        "amount of that pre-auth",
    ),
    (
        "preauth_merchant",
        Field::PreauthMerchant,
        Ty::Str,
        "merchant of that pre-auth",
    ),
    (
        "preauth_age_h",
        Field::PreauthAgeH,
        Ty::Num,
        "hours since that pre-auth",
    ),
    (
        "qr_prior_payments",
        Field::QrPriorPayments,
        Ty::Num,
        "approved payments of this qr_ref before this event",
    ),
    (
        "terminal_signon_age_h",
        Field::TerminalSignonAgeH,
        Ty::Num,
        "hours since the terminal's last sign-on (null if none known)",
    ),
    (
        "terminal_signed_off",
        Field::TerminalSignedOff,
        Ty::Bool,
        "the terminal signed off after its last sign-on",
    ),
    (
        "card_tx_1h",
        Field::CardTx1h,
        Ty::Num,
        "model feature: the card's purchases in the hour before (null without models)",
    ),
    (
        "card_tx_24h",
        Field::CardTx24h,
        Ty::Num,
        "model feature: the card's purchases in the day before",
    ),
    (
        "amount_dev",
        Field::AmountDev,
        Ty::Num,
        "model feature: ln(1+amount) minus the card's running average of it",
    ),
    (
        "amount_z",
        Field::AmountZ,
        Ty::Num,
        "model feature: amount_dev over the card's own spread of log amounts",
    ),
    (
        "terminal_pin_score",
        Field::TerminalPinScore,
        Ty::Num,
        "terminal PIN baseline: -log10 p of the terminal's wrong PINs in its window (wrong PINs only)",
    ),
    (
        "terminal_pin_anomalous",
        Field::TerminalPinAnomalous,
        Ty::Bool,
        "terminal_pin_score is at or above the model's threshold",
    ),
    (
        "merchant_nopin_score",
        Field::MerchantNopinScore,
        Ty::Num,
        "merchant no-PIN profile: -log10 p of today's forced no-PIN count (forced no-PIN approvals only)",
    ),
    (
        "merchant_nopin_anomalous",
        Field::MerchantNopinAnomalous,
        Ty::Bool,
        "merchant_nopin_score is at or above the model's threshold",
    ),
    (
        "density_score",
        Field::DensityScore,
        Ty::Num,
        "transaction density: negative log density of the purchase (card purchases only)",
    ),
    (
        "density_pct",
        Field::DensityPct,
        Ty::Num,
        "density_score as a percentile (0-100) of training purchases",
    ),
    (
        "density_anomalous",
        Field::DensityAnomalous,
        Ty::Bool,
        "density_score is at or above the model's threshold",
    ),
    (
        "fraud_probability",
        Field::FraudProbability,
        Ty::Num,
        "supervised scorer: probability the purchase is fraud",
    ),
    (
        "fraud_anomalous",
        Field::FraudAnomalous,
        Ty::Bool,
        "fraud_probability is at or above the model's threshold",
    ),
];

impl Field {
    pub fn lookup(name: &str) -> Option<(Field, Ty)> {
        FIELDS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, f, t, _)| (*f, *t))
    }

    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f, ..)| *f == self)
            .map(|(n, ..)| *n)
            .expect("every field is listed")
    }

    /// The closed set of values a text field can take, to catch typos in rule constants.
    pub fn domain(self) -> Option<Vec<&'static str>> {
        match self {
            Field::Type => Some(EventType::ALL.iter().map(|t| t.as_str()).collect()),
            Field::EntryMode => Some(EntryMode::ALL.iter().map(|t| t.as_str()).collect()),
            Field::Pin => Some(Pin::ALL.iter().map(|t| t.as_str()).collect()),
            _ => None,
        }
    }

    /// Read this field of `ev` (with its derived features `f`).
    #[inline]
    pub fn read<'a>(self, ev: &'a Event, f: &'a Features) -> Val<'a> {
        fn s(v: &Option<CompactString>) -> Val<'_> {
            v.as_deref().map_or(Val::Null, Val::Str)
        }
        match self {
            Field::Id => Val::Str(&ev.id),
            Field::Ts => Val::Int(ev.ts),
            Field::Type => Val::Str(ev.kind.as_str()),
            Field::Card => s(&ev.card),
            Field::PanMasked => s(&ev.pan_masked),
            Field::Terminal => Val::Str(&ev.terminal),
            Field::Merchant => s(&ev.merchant),
            Field::Mcc => ev.mcc.map_or(Val::Null, |m| Val::Int(m as i64)),
            Field::Amount => ev.amount.map_or(Val::Null, Val::Int),
            Field::Currency => s(&ev.currency),
            Field::EntryMode => ev.entry_mode.map_or(Val::Null, |m| Val::Str(m.as_str())),
            Field::Pin => ev.pin.map_or(Val::Null, |p| Val::Str(p.as_str())),
            Field::ResponseCode => s(&ev.response_code),
            Field::AuthRef => s(&ev.auth_ref),
            Field::OriginalId => s(&ev.original_id),
            Field::Batch => s(&ev.batch),
            Field::QrRef => s(&ev.qr_ref),
            Field::Approved => Val::Bool(ev.approved()),
            Field::Financial => Val::Bool(ev.kind.is_financial()),
            Field::PinAttempt => Val::Bool(pin_attempt(ev)),
            Field::WrongPin => Val::Bool(wrong_pin(ev)),
            Field::PinVerified => Val::Bool(pin_verified(ev)),
            Field::PreauthFound => Val::Bool(f.preauth.is_some()),
            Field::PreauthOpen => Val::Bool(f.preauth.as_ref().is_some_and(|p| p.open)),
            Field::PreauthAmount => f.preauth.as_ref().map_or(Val::Null, |p| Val::Int(p.amount)),
            Field::PreauthMerchant => f
                .preauth
                .as_ref()
                .map_or(Val::Null, |p| Val::Str(&p.merchant)),
            Field::PreauthAgeH => f.preauth.as_ref().map_or(Val::Null, |p| {
                Val::Float((ev.ts - p.ts) as f64 / 3_600_000.0)
            }),
            Field::QrPriorPayments => Val::Int(f.qr_prior_payments as i64),
            Field::TerminalSignonAgeH => f
                .signon_ts
                .map_or(Val::Null, |t| Val::Float((ev.ts - t) as f64 / 3_600_000.0)),
            Field::TerminalSignedOff => Val::Bool(f.signed_off),
            Field::CardTx1h => num(f.model.card.map(|c| c.x[features::CARD_TX_1H])),
            Field::CardTx24h => num(f.model.card.map(|c| c.x[features::CARD_TX_24H])),
            Field::AmountDev => num(f.model.card.map(|c| c.x[features::AMOUNT_DEV])),
            Field::AmountZ => num(f.model.card.map(|c| c.x[features::AMOUNT_Z])),
            Field::TerminalPinScore => num(f.model.terminal_pin.map(|s| s.score)),
            Field::TerminalPinAnomalous => boolean(f.model.terminal_pin_anomalous()),
            Field::MerchantNopinScore => num(f.model.merchant_nopin.map(|s| s.score)),
            Field::MerchantNopinAnomalous => boolean(f.model.merchant_nopin_anomalous()),
            Field::DensityScore => num(f.model.density.map(|s| s.score)),
            Field::DensityPct => num(f.model.density.map(|s| s.pct)),
            Field::DensityAnomalous => boolean(f.model.density_anomalous()),
            Field::FraudProbability => num(f.model.fraud_probability),
            Field::FraudAnomalous => boolean(f.model.fraud_anomalous()),
        }
    }

    /// What an alert reports for a rule that reads this field: the field itself, or for a
    /// derived PIN field the event fields it is computed from (the analyst sees `type`, `pin`
    /// and `response_code` rather than `wrong_pin: true`).
    pub fn reported(self) -> &'static [Field] {
        match self {
            Field::PinAttempt | Field::WrongPin | Field::PinVerified => {
                &[Field::Type, Field::Pin, Field::ResponseCode]
            }
            _ => FIELDS
                .iter()
                .find(|(_, f, ..)| *f == self)
                .map(|(_, f, ..)| std::slice::from_ref(f))
                .expect("every field is listed"),
        }
    }

    /// The model whose score this field reads, if any (for the alert's explanation).
    pub fn model(self) -> Option<&'static str> {
        match self {
            Field::TerminalPinScore | Field::TerminalPinAnomalous => Some("terminal_pin"),
            Field::MerchantNopinScore | Field::MerchantNopinAnomalous => Some("merchant_nopin"),
            Field::DensityScore
            | Field::DensityPct
            | Field::DensityAnomalous
            | Field::CardTx1h
            | Field::CardTx24h
            | Field::AmountDev
            | Field::AmountZ => Some("density"),
            Field::FraudProbability | Field::FraudAnomalous => Some("supervised"),
            _ => None,
        }
    }
}

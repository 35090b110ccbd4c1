//! The field table: every name a rule can read, declared once. One list gives the [`Field`]
//! enum, [`FIELDS`] (name, type, the stage that computes it, the model that fills it, its
//! description), and [`Field::read`]. A field declared without a stage does not compile.

use super::Features;
use crate::event::{EntryMode, Event, EventType, Pin};
use crate::keyed::Stage;
use crate::models::features as mf;
use compact_str::CompactString;

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

/// One row of the field table.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    pub field: Field,
    pub name: &'static str,
    pub ty: Ty,
    /// The stage of the sharded engine that computes it (event fields: the first).
    pub stage: Stage,
    /// The model whose output it reads, if any.
    pub model: Option<&'static str>,
    pub doc: &'static str,
}

fn s(v: &Option<CompactString>) -> Val<'_> {
    v.as_deref().map_or(Val::Null, Val::Str)
}

fn num<'a>(v: Option<f64>) -> Val<'a> {
    v.map_or(Val::Null, Val::Float)
}

fn boolean<'a>(v: Option<bool>) -> Val<'a> {
    v.map_or(Val::Null, Val::Bool)
}

fn hours(from: crate::time::EventTime, to: crate::time::EventTime) -> f64 {
    (to - from).as_hours_f64()
}

/// Declares every field once (see the module docs).
macro_rules! fields {
    ($(
        $var:ident $name:literal : $ty:ident @ $stage:ident $(, model $model:literal)?,
        $doc:literal => |$ev:ident, $f:ident| $read:expr;
    )*) => {
        /// A readable field. Resolved from its name once, at rule load; read per event by a
        /// `match`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field {
            $($var,)*
        }

        /// Every field, in declaration order.
        pub const FIELDS: &[FieldInfo] = &[$(FieldInfo {
            field: Field::$var,
            name: $name,
            ty: Ty::$ty,
            stage: Stage::$stage,
            model: fields!(@model $($model)?),
            doc: $doc,
        },)*];

        impl Field {
            /// Read this field of `ev` (with its derived features `f`).
            #[inline]
            #[allow(unused_variables)]
            pub fn read<'a>(self, ev: &'a Event, f: &'a Features) -> Val<'a> {
                match self {
                    $(Field::$var => {
                        let $ev = ev;
                        let $f = f;
                        $read
                    })*
                }
            }
        }
    };
    (@model) => { None };
    (@model $m:literal) => { Some($m) };
}

fields! {
    Id "id": Str @ Id, "event id" => |ev, f| Val::Str(&ev.id);
    Ts "ts": Num @ Id, "event time, epoch ms" => |ev, f| Val::Int(ev.ts.as_ms());
    Type "type": Str @ Id, "message class" => |ev, f| Val::Str(ev.kind.as_str());
    Card "card": Str @ Id, "card token" => |ev, f| s(&ev.card);
    PanMasked "pan_masked": Str @ Id, "the PAN, masked" => |ev, f| s(&ev.pan_masked);
    Terminal "terminal": Str @ Id, "terminal id" => |ev, f| Val::Str(&ev.terminal);
    Merchant "merchant": Str @ Id, "merchant id" => |ev, f| s(&ev.merchant);
    Mcc "mcc": Num @ Id, "merchant category code (a number: mcc >= 3501)"
        => |ev, f| ev.mcc.map_or(Val::Null, |m| Val::Int(i64::from(m)));
    Amount "amount": Num @ Id, "amount in minor units" => |ev, f| ev.amount.map_or(Val::Null, Val::Int);
    Currency "currency": Str @ Id, "ISO 4217 alpha-3" => |ev, f| s(&ev.currency);
    EntryMode "entry_mode": Str @ Id, "how the card was read"
        => |ev, f| ev.entry_mode.map_or(Val::Null, |m| Val::Str(m.as_str()));
    Pin "pin": Str @ Id, "PIN outcome" => |ev, f| ev.pin.map_or(Val::Null, |p| Val::Str(p.as_str()));
    ResponseCode "response_code": Str @ Id, "DE39 response code" => |ev, f| s(&ev.response_code);
    AuthRef "auth_ref": Str @ Id, "pre-auth reference" => |ev, f| s(&ev.auth_ref);
    OriginalId "original_id": Str @ Id, "reversed event id" => |ev, f| s(&ev.original_id);
    Batch "batch": Str @ Id, "terminal batch number" => |ev, f| s(&ev.batch);
    QrRef "qr_ref": Str @ Id, "QR payload / order id" => |ev, f| s(&ev.qr_ref);
    Approved "approved": Bool @ Id, "response_code == \"00\"" => |ev, f| Val::Bool(ev.approved());
    Financial "financial": Bool @ Id, "auth, preauth, completion, refund or transfer"
        => |ev, f| Val::Bool(ev.kind.is_financial());
    PinAttempt "pin_attempt": Bool @ Id,
        "a PIN attempt: auth, preauth or transfer with pin == \"entered\""
        => |ev, f| Val::Bool(ev.pin_attempt());
    WrongPin "wrong_pin": Bool @ Id, "a PIN attempt answered 55 (wrong PIN)"
        => |ev, f| Val::Bool(ev.wrong_pin());
    PinVerified "pin_verified": Bool @ Id,
        "a PIN attempt whose PIN the issuer accepted: 00, or 51/61/65 (declined after the PIN check)"
        => |ev, f| Val::Bool(ev.pin_verified());
    PreauthFound "preauth_found": Bool @ AuthRef, "a pre-auth with this auth_ref is in the book"
        => |ev, f| Val::Bool(f.preauth.is_some());
    PreauthOpen "preauth_open": Bool @ AuthRef, "... and was neither completed, cancelled nor reversed"
        => |ev, f| Val::Bool(f.preauth.as_ref().is_some_and(|p| p.open));
    PreauthAmount "preauth_amount": Num @ AuthRef, "amount of that pre-auth"
        => |ev, f| f.preauth.as_ref().map_or(Val::Null, |p| Val::Int(p.amount));
    PreauthMerchant "preauth_merchant": Str @ AuthRef, "merchant of that pre-auth"
        => |ev, f| f.preauth.as_ref().map_or(Val::Null, |p| Val::Str(&p.merchant));
    PreauthAgeH "preauth_age_h": Num @ AuthRef, "hours since that pre-auth"
        => |ev, f| f.preauth.as_ref().map_or(Val::Null, |p| Val::Float(hours(p.ts, ev.ts)));
    QrPriorPayments "qr_prior_payments": Num @ QrRef,
        "approved payments of this qr_ref before this event"
        => |ev, f| Val::Int(i64::from(f.qr_prior_payments));
    TerminalSignonAgeH "terminal_signon_age_h": Num @ Terminal,
        "hours since the terminal's last sign-on (null if none known)"
        => |ev, f| f.signon_ts.map_or(Val::Null, |t| Val::Float(hours(t, ev.ts)));
    TerminalSignedOff "terminal_signed_off": Bool @ Terminal,
        "the terminal signed off after its last sign-on" => |ev, f| Val::Bool(f.signed_off);
    CardTx1h "card_tx_1h": Num @ Card, model "card_outlier",
        "model feature: the card's purchases in the hour before (null without models)"
        => |ev, f| num(f.model.card.map(|c| c.x[mf::CARD_TX_1H]));
    CardTx24h "card_tx_24h": Num @ Card, model "card_outlier",
        "model feature: the card's purchases in the day before"
        => |ev, f| num(f.model.card.map(|c| c.x[mf::CARD_TX_24H]));
    AmountDev "amount_dev": Num @ Card, model "card_outlier",
        "model feature: ln(1+amount) minus the card's normal (median of its last purchases, in this category group once it has 3 there)"
        => |ev, f| num(f.model.card.map(|c| c.x[mf::AMOUNT_DEV]));
    AmountZ "amount_z": Num @ Card, model "card_outlier",
        "model feature: amount_dev over the card's own robust spread of log amounts (0 under 5 purchases of history)"
        => |ev, f| num(f.model.card.map(|c| c.x[mf::AMOUNT_Z]));
    TerminalPinScore "terminal_pin_score": Num @ Terminal, model "terminal_pin",
        "terminal PIN baseline: -log10 p of the terminal's wrong PINs in its window (wrong PINs only)"
        => |ev, f| num(f.model.terminal_pin.map(|s| s.score));
    TerminalPinAnomalous "terminal_pin_anomalous": Bool @ Terminal, model "terminal_pin",
        "terminal_pin_score is at or above the model's threshold"
        => |ev, f| boolean(f.model.terminal_pin_anomalous());
    MerchantNopinScore "merchant_nopin_score": Num @ Merchant, model "merchant_nopin",
        "merchant no-PIN profile: -log10 p of today's forced no-PIN count (forced no-PIN approvals only)"
        => |ev, f| num(f.model.merchant_nopin.map(|s| s.score));
    MerchantNopinAnomalous "merchant_nopin_anomalous": Bool @ Merchant, model "merchant_nopin",
        "merchant_nopin_score is at or above the model's threshold"
        => |ev, f| boolean(f.model.merchant_nopin_anomalous());
    CardOutlierScore "card_outlier_score": Num @ Card, model "card_outlier",
        "card outlier: min(z of the amount against the card's own normal here or over its largest recent purchase, 2 x z against the MCC's) (card purchases with 5+ purchases of history only)"
        => |ev, f| num(f.model.card_outlier.map(|s| s.score));
    CardOutlierScoreAll "card_outlier_score_all": Num @ Card, model "card_outlier",
        "card outlier against the card's whole profile (all category groups): min(z against it, 2 x z against the MCC's)"
        => |ev, f| num(f.model.card_outlier.map(|s| s.score_all));
    AmountDevAll "amount_dev_all": Num @ Card, model "card_outlier",
        "ln(1+amount) minus the median of the card's last purchases in every category group (card_outlier)"
        => |ev, f| num(f.model.card_outlier.map(|s| s.dev_all));
    CardOutlierAnomalous "card_outlier_anomalous": Bool @ Card, model "card_outlier",
        "card_outlier_score is at or above the model's threshold"
        => |ev, f| boolean(f.model.card_outlier_anomalous());
    DensityScore "density_score": Num @ Card, model "density",
        "transaction density: negative log density of the purchase (card purchases only)"
        => |ev, f| num(f.model.density.map(|s| s.score));
    DensityPct "density_pct": Num @ Card, model "density",
        "density_score as a percentile (0-100) of training purchases"
        => |ev, f| num(f.model.density.map(|s| s.pct));
    DensityAnomalous "density_anomalous": Bool @ Card, model "density",
        "density_score is at or above the model's threshold"
        => |ev, f| boolean(f.model.density_anomalous());
    FraudProbability "fraud_probability": Num @ Card, model "supervised",
        "supervised scorer: probability the purchase is fraud"
        => |ev, f| num(f.model.fraud_probability);
    FraudAnomalous "fraud_anomalous": Bool @ Card, model "supervised",
        "fraud_probability is at or above the model's threshold"
        => |ev, f| boolean(f.model.fraud_anomalous());
}

impl Field {
    fn info(self) -> &'static FieldInfo {
        FIELDS
            .iter()
            .find(|i| i.field == self)
            .expect("every field is in the table")
    }

    pub fn lookup(name: &str) -> Option<(Field, Ty)> {
        FIELDS
            .iter()
            .find(|i| i.name == name)
            .map(|i| (i.field, i.ty))
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The stage of the sharded engine that computes this field.
    pub fn stage(self) -> Stage {
        self.info().stage
    }

    /// The model whose score this field reads, if any (for the alert's explanation).
    pub fn model(self) -> Option<&'static str> {
        self.info().model
    }

    /// A number only the models give (null whenever the models said nothing).
    pub fn is_model_score(self) -> bool {
        let i = self.info();
        i.model.is_some() && i.ty == Ty::Num
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

    /// What an alert reports for a rule that reads this field: the field itself, or for a
    /// derived PIN field the event fields it is computed from (the analyst sees `type`, `pin`
    /// and `response_code` rather than `wrong_pin: true`).
    pub fn reported(self) -> &'static [Field] {
        match self {
            Field::PinAttempt | Field::WrongPin | Field::PinVerified => {
                &[Field::Type, Field::Pin, Field::ResponseCode]
            }
            _ => std::slice::from_ref(&self.info().field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_field_is_listed_once() {
        let mut names: Vec<&str> = FIELDS.iter().map(|i| i.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
        for i in FIELDS {
            assert_eq!(Field::lookup(i.name), Some((i.field, i.ty)));
            assert_eq!(i.field.name(), i.name);
        }
    }

    /// "The models said nothing" (one cheap test per event) agrees with the table: every
    /// model score field reads null then, and not otherwise.
    #[test]
    fn models_silent_means_every_model_score_reads_null() {
        let ev = crate::decode::Decoder::default()
            .decode_json(br#"{"id":"e1","ts":1790000000000,"type":"auth","card":"C1","terminal":"T1","merchant":"M1","amount":100}"#)
            .unwrap();
        let mut f = Features::default();
        let nulls = |f: &Features| {
            FIELDS
                .iter()
                .filter(|i| i.field.is_model_score())
                .all(|i| i.field.read(&ev, f) == Val::Null)
        };
        assert!(f.model.says_nothing() && nulls(&f));
        f.model.fraud_probability = Some(0.5);
        assert!(!f.model.says_nothing() && !nulls(&f));
        f.model.fraud_probability = None;
        f.model.terminal_pin = Some(crate::models::TerminalPinScore {
            attempts: 3,
            episodes: 1,
            unresolved: 1,
            expected_episodes: 0.1,
            expected_unresolved: 0.1,
            score: 1.0,
        });
        assert!(!f.model.says_nothing() && !nulls(&f));
    }
}

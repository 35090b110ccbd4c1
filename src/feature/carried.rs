//! What an event carries from one scale-out stage to the next: every slot of [`Features`]
//! computed before the card stage (the last), generated from one list with the stage that
//! fills each slot. A test reads every field of the table computed before the card stage
//! through a round trip of [`Carried`] and checks nothing is lost.

use super::Features;
use crate::keyed::Stage;
use crate::models::{MerchantNopinScore, TerminalPinScore};
use crate::state::PreAuthView;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Declares the carried slots once: the struct, its fill and take, and their stages.
macro_rules! slots {
    ($($name:ident = $($path:ident).+ @ $stage:ident : $ty:ty;)*) => {
        /// What earlier stages learnt about an event, carried with it to the next stage.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Carried {
            $(
                #[serde(default, skip_serializing_if = "is_default")]
                pub $name: $ty,
            )*
        }

        impl Carried {
            /// Put what earlier stages computed into the features before this stage adds its
            /// own.
            pub fn fill(&self, f: &mut Features) {
                $(f.$($path).+.clone_from(&self.$name);)*
            }

            /// Take everything known after this stage, for the next one.
            pub fn take(&mut self, f: &Features) {
                $(self.$name.clone_from(&f.$($path).+);)*
            }
        }

        /// Each carried slot and the stage that fills it.
        pub const SLOTS: &[(&str, Stage)] = &[$((stringify!($name), Stage::$stage),)*];
    };
}

slots! {
    preauth = preauth @ AuthRef: Option<PreAuthView>;
    preauth_id = preauth_id @ AuthRef: Option<CompactString>;
    qr_prior_payments = qr_prior_payments @ QrRef: u32;
    qr_first_id = qr_first_id @ QrRef: Option<CompactString>;
    signon_ts = signon_ts @ Terminal: Option<crate::time::EventTime>;
    signed_off = signed_off @ Terminal: bool;
    terminal_pin = model.terminal_pin @ Terminal: Option<TerminalPinScore>;
    merchant_nopin = model.merchant_nopin @ Merchant: Option<MerchantNopinScore>;
    // Filled at the terminal stage, added to at the merchant stage.
    model_evidence = model.evidence @ Terminal: Vec<CompactString>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::FIELDS;

    #[test]
    fn no_slot_is_filled_by_the_last_stage() {
        assert!(SLOTS.iter().all(|(_, s)| *s < Stage::Card), "{SLOTS:?}");
    }

    /// Every field the table says an earlier stage computes reads the same after a round trip
    /// through `Carried` (as JSON, as on a stage topic).
    #[test]
    fn carried_holds_every_field_computed_before_the_card_stage() {
        let d = crate::decode::Decoder::default();
        let ev = d
            .decode_json(br#"{"id":"e1","ts":1790000000000,"type":"completion","card":"C1","terminal":"T1","merchant":"M1","amount":100,"auth_ref":"A1","qr_ref":"Q1"}"#)
            .unwrap();
        let mut f = Features {
            preauth: Some(PreAuthView {
                ts: crate::time::EventTime::from_ms(1_789_990_000_000),
                amount: 90,
                merchant: "M1".into(),
                open: true,
            }),
            preauth_id: Some("p1".into()),
            qr_prior_payments: 2,
            qr_first_id: Some("q0".into()),
            signon_ts: Some(crate::time::EventTime::from_ms(1_789_999_000_000)),
            signed_off: true,
            ..Features::default()
        };
        f.model.terminal_pin = Some(TerminalPinScore {
            attempts: 30,
            episodes: 5,
            unresolved: 4,
            expected_episodes: 1.5,
            expected_unresolved: 0.5,
            score: 4.5,
        });
        f.model.merchant_nopin = Some(MerchantNopinScore {
            n: 40,
            k: 9,
            n_recent: 200,
            k_recent: 12,
            normal: 0.01,
            peer: 0.02,
            score: 3.25,
        });
        f.model.evidence = vec!["w1".into(), "w2".into()];
        let mut c = Carried::default();
        c.take(&f);
        let json = serde_json::to_string(&c).unwrap();
        let back: Carried = serde_json::from_str(&json).unwrap();
        let mut g = Features::default();
        back.fill(&mut g);
        for i in FIELDS
            .iter()
            .filter(|i| i.stage < Stage::Card && i.model.is_none())
        {
            assert_eq!(i.field.read(&ev, &f), i.field.read(&ev, &g), "{}", i.name);
        }
        assert_eq!(g.model.terminal_pin, f.model.terminal_pin);
        assert_eq!(g.model.merchant_nopin, f.model.merchant_nopin);
        assert_eq!(g.related().collect::<Vec<_>>(), ["p1", "q0", "w1", "w2"]);
    }
}

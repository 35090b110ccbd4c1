//! Evidence: the events behind an alert, for the risk console's timeline (`risk.evidence`,
//! `evidence.jsonl`), one record per alert. The console never reads the transactions; this is
//! what it shows instead, tokenised and masked like every output.
//!
//! The triggering event is given whole (every contract field but the clear PAN, which never
//! reaches the engine). The earlier events the rule counted are given by id and time — the
//! engine keeps no more of them, so that its state stays bounded — and the joined pre-auth
//! with what the book knows of it (time, amount, merchant).

use crate::event::{format_ts, Event};
use crate::feature::Features;
use crate::time::EventTime;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// One event behind an alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvidenceEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_ref: Option<String>,
}

impl EvidenceEvent {
    /// Every field of `ev` the contract has (the PAN was tokenised before the engine).
    pub fn whole(ev: &Event) -> Self {
        let s = |v: &Option<CompactString>| v.as_ref().map(|x| x.to_string());
        Self {
            id: ev.id.to_string(),
            ts: Some(format_ts(ev.ts)),
            kind: Some(ev.kind.as_str().into()),
            card: s(&ev.card),
            pan_masked: s(&ev.pan_masked),
            terminal: Some(ev.terminal.to_string()),
            merchant: s(&ev.merchant),
            mcc: ev.mcc,
            amount: ev.amount,
            currency: s(&ev.currency),
            entry_mode: ev.entry_mode.map(|m| m.as_str().into()),
            pin: ev.pin.map(|p| p.as_str().into()),
            response_code: s(&ev.response_code),
            auth_ref: s(&ev.auth_ref),
            qr_ref: s(&ev.qr_ref),
        }
    }
}

/// The events behind one alert, oldest first, the trigger last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub alert_id: String,
    pub ts: String,
    pub rule: String,
    pub events: Vec<EvidenceEvent>,
}

impl Evidence {
    /// The evidence of an alert on `ev`, whose events are `ids` at times `ts` (trigger last).
    pub fn of(
        alert_id: &str,
        rule: &str,
        ev: &Event,
        f: &Features,
        ids: &[CompactString],
        ts: &[Option<EventTime>],
    ) -> Self {
        let mut events: Vec<EvidenceEvent> = Vec::with_capacity(ids.len().max(1));
        for (i, id) in ids.iter().enumerate() {
            if *id == ev.id {
                continue;
            }
            let mut e = EvidenceEvent {
                id: id.to_string(),
                ts: ts.get(i).copied().flatten().map(format_ts),
                ..EvidenceEvent::default()
            };
            if f.preauth_id.as_ref() == Some(id) {
                if let Some(p) = &f.preauth {
                    e.kind = Some("preauth".into());
                    e.ts = Some(format_ts(p.ts));
                    e.amount = Some(p.amount);
                    e.merchant = Some(p.merchant.to_string());
                    e.auth_ref = ev.auth_ref.as_ref().map(|r| r.to_string());
                }
            }
            events.push(e);
        }
        events.push(EvidenceEvent::whole(ev));
        Self {
            alert_id: alert_id.to_string(),
            ts: format_ts(ev.ts),
            rule: rule.to_string(),
            events,
        }
    }
}

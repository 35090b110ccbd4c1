//! The service's view of its lock records: published by the loop once a second (a copy, so
//! the HTTP thread never touches engine state), served as `GET /locks` and
//! `GET /locks/{target}` in the shape of `switchguard locks` and replay's `locks.json`, and
//! turned into the lock metrics (locks in force by kind, commands by action and
//! acknowledgement, commands awaiting one). With scale-out an instance shows the locks of the
//! card and terminal shards it owns.

use super::metrics::Metrics;
use crate::decision::locks::{document, AckStatus, LockRecord};
use crate::engine::shard_task::ShardTask;
use crate::engine::ControlStats;
use crate::time::EventTime;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The latest copy of the lock records and the stream time they are judged at.
#[derive(Default)]
pub struct LockView {
    inner: Mutex<(Vec<LockRecord>, EventTime)>,
}

impl LockView {
    /// The listing document, filtered to `target` (a token, masked PAN or terminal id).
    pub fn document(&self, target: Option<&str>) -> serde_json::Value {
        let g = self.inner.lock().expect("lock view");
        document(g.0.iter(), g.1, target)
    }
}

/// Percent-decode a URL path segment (a masked PAN's `*` may arrive as `%2A`).
fn decode_segment(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer to a `/locks` path, if `url` is one: status and JSON body (masked).
pub fn route(view: &LockView, url: &str) -> Option<(u16, String)> {
    let path = url.split('?').next().unwrap_or(url);
    let target = match path {
        "/locks" | "/locks/" => None,
        p => Some(decode_segment(p.strip_prefix("/locks/")?)),
    };
    let doc = view.document(target.as_deref());
    let body = crate::pan::masked_json_pretty(&doc).unwrap_or_default();
    Some((200, String::from_utf8_lossy(&body).into_owned()))
}

impl Metrics {
    /// Publish the lock records of `shards` and set the lock gauges.
    pub fn observe_locks(&self, shards: &[&ShardTask]) {
        let now = shards
            .iter()
            .filter_map(|s| s.engine().clock())
            .max()
            .unwrap_or_default();
        let mut records = Vec::new();
        let mut active = [0i64; 2];
        let mut commands: BTreeMap<(String, AckStatus), i64> = BTreeMap::new();
        let mut unacked = 0;
        for st in shards {
            for r in st.engine().locks().records() {
                if r.active(now) {
                    active[r.kind as usize] += 1;
                }
                for c in &r.commands {
                    *commands.entry((c.action.clone(), c.ack)).or_default() += 1;
                    unacked += i64::from(c.ack == AckStatus::None);
                }
                records.push(r.clone());
            }
        }
        *self.lock_view.inner.lock().expect("lock view") = (records, now);
        self.locks_active
            .with_label_values(&["card"])
            .set(active[0]);
        self.locks_active
            .with_label_values(&["terminal"])
            .set(active[1]);
        self.lock_commands.reset();
        for ((action, status), n) in commands {
            self.lock_commands
                .with_label_values(&[&action, status.as_str()])
                .set(n);
        }
        self.commands_unacknowledged.set(unacked);
    }

    /// Add what the engines counted of the control stream since the last call.
    pub fn observe_control(&self, s: &ControlStats, last: &ControlStats) {
        for (i, kind) in ControlStats::MANUAL.iter().enumerate() {
            let d = s.manual[i].saturating_sub(last.manual[i]);
            self.control_records.with_label_values(&[kind]).inc_by(d);
        }
        for (i, status) in ControlStats::ACKS.iter().enumerate() {
            let d = s.acks[i].saturating_sub(last.acks[i]);
            self.command_acks.with_label_values(&[status]).inc_by(d);
        }
        self.control_rejected
            .inc_by(s.rejected.saturating_sub(last.rejected));
        self.commands_overdue
            .inc_by(s.overdue.saturating_sub(last.overdue));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_routed_and_targets_decoded() {
        let v = LockView::default();
        assert!(route(&v, "/metrics").is_none());
        let (code, body) = route(&v, "/locks").unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("\"locks\": []"), "{body}");
        assert!(route(&v, "/locks/622588%2A%2A%2A%2A%2A%2A1234").is_some());
        assert_eq!(decode_segment("622588%2A%2a1234%zz"), "622588**1234%zz");
    }
}

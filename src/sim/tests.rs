//! Unit tests for the simulator: determinism, ordering and bounded disorder,
//! the JSON contract, Luhn-valid PANs, label coverage, the terminal sign-on
//! invariant, and that legit traffic never forms an attack pattern while the
//! attack scenarios have their intended shape.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const H: i64 = 3_600_000;

fn cfg(seed: u64, cards: usize, days: u32) -> SimConfig {
    SimConfig {
        seed,
        cards,
        days,
        terminals: 60,
        ..SimConfig::default()
    }
}

fn collect(c: &SimConfig) -> Vec<SimEvent> {
    let mut v = Vec::new();
    generate(c, &mut |e| v.push(e));
    v
}

/// The shared 300-card, 35-day run used by most tests.
pub(super) fn small() -> &'static [SimEvent] {
    static S: OnceLock<Vec<SimEvent>> = OnceLock::new();
    S.get_or_init(|| collect(&cfg(7, 300, 35)))
}

fn legit(evs: &[SimEvent]) -> impl Iterator<Item = &SimEvent> {
    evs.iter().filter(|e| e.label == "legit")
}

pub(super) fn rc(e: &SimEvent) -> &str {
    e.response_code.as_deref().unwrap_or("")
}

pub(super) fn approved(e: &SimEvent) -> bool {
    e.kind.is_financial() && rc(e) == "00"
}

#[test]
fn deterministic_per_seed() {
    let c = cfg(11, 300, 4);
    let (mut a, mut b, mut x) = (Vec::new(), Vec::new(), Vec::new());
    let na = write_jsonl(&c, &mut a).unwrap();
    write_jsonl(&c, &mut b).unwrap();
    write_jsonl(
        &SimConfig {
            seed: 12,
            ..c.clone()
        },
        &mut x,
    )
    .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, x);
    assert_eq!(na as usize, collect(&c).len());
    assert_eq!(na as usize, a.iter().filter(|&&b| b == b'\n').count());
}

#[test]
fn ordered_and_timestamps_consistent() {
    let evs = small();
    assert!(evs.len() > 10_000);
    for w in evs.windows(2) {
        assert!(w[0].ts_ms <= w[1].ts_ms, "{} after {}", w[1].id, w[0].id);
    }
    for e in evs {
        assert_eq!(e.ts.len(), 29, "{}", e.ts);
        assert!(e.ts.ends_with("+08:00"));
        let t = chrono::DateTime::parse_from_rfc3339(&e.ts).unwrap();
        assert_eq!(t.timestamp_millis(), e.ts_ms);
    }
    assert_eq!(SimConfig::default().start_ms, 1_790_784_000_000);
    assert!(evs[evs.len() - 1].ts_ms < SimConfig::default().start_ms + 35 * 24 * H);
}

#[test]
fn every_label_appears() {
    let seen: BTreeSet<&str> = small().iter().map(|e| e.label.as_str()).collect();
    for l in LABELS {
        assert!(seen.contains(l), "missing label {l}");
    }
    assert_eq!(seen.len(), LABELS.len());
}

#[test]
fn pans_are_luhn_valid() {
    for e in small() {
        if let Some(p) = &e.pan {
            assert!((16..=19).contains(&p.len()) && p.starts_with("62"), "{p}");
            assert!(luhn_valid(p), "{p}");
        }
    }
    assert!(!luhn_valid("6225880000000001") || !luhn_valid("6225880000000002"));
}

#[test]
fn events_follow_contract() {
    let evs = small();
    let mut ids = BTreeSet::new();
    for e in evs {
        assert!(ids.insert(e.id.as_str()), "duplicate id {}", e.id);
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    for e in evs {
        let tid = e.terminal.as_deref().expect("terminal");
        assert!(
            tid.len() == 8 && tid.starts_with('T') && digits(&tid[1..], 7),
            "{tid}"
        );
        assert!(LABELS.contains(&e.label.as_str()));
        assert!(
            ["00", "55", "75", "38", "77", "51", "05"].contains(&rc(e)),
            "{:?}",
            e
        );
        if !e.kind.is_financial() {
            assert!(e.pan.is_none() && e.merchant.is_none() && e.amount.is_none());
            assert_eq!(rc(e), "00");
            assert!(digits(e.batch.as_deref().unwrap(), 6));
            continue;
        }
        assert!(e.pan.is_some(), "{:?}", e);
        let mid = e.merchant.as_deref().unwrap();
        assert!(
            mid.len() == 16 && digits(&mid[..11], 11) && &mid[11..12] == "M",
            "{mid}"
        );
        assert!(
            crate::pan::scan::runs(mid.as_bytes()).is_empty(),
            "not PAN-shaped: {mid}"
        );
        assert!(digits(e.mcc.as_deref().unwrap(), 4));
        assert!(e.amount.unwrap() > 0);
        assert_eq!(e.currency.as_deref(), Some("CNY"));
        if let Some(b) = &e.batch {
            assert!(digits(b, 6));
        }
        if e.entry_mode == Some(EntryMode::Qr) {
            assert!(e.qr_ref.is_some());
        }
        match e.kind {
            EventType::Preauth | EventType::Completion | EventType::PreauthCancel => {
                assert_eq!(e.auth_ref.as_ref().unwrap().len(), 18)
            }
            EventType::Reversal => assert!(ids.contains(e.original_id.as_deref().unwrap())),
            _ => {}
        }
    }
    let line =
        serde_json::to_string(evs.iter().find(|e| e.kind == EventType::SignOn).unwrap()).unwrap();
    assert!(
        line.starts_with("{\"id\":\"e") && line.contains("\"type\":\"sign_on\""),
        "{line}"
    );
    assert!(!line.contains("ts_ms") && !line.contains("null"), "{line}");
}

#[test]
fn legit_terminals_are_signed_on() {
    let mut on: BTreeMap<&str, i64> = BTreeMap::new();
    let mut off: BTreeMap<&str, i64> = BTreeMap::new();
    let mut checked = 0;
    for e in small() {
        let t = e.terminal.as_deref().unwrap();
        match e.kind {
            EventType::SignOn => {
                on.insert(t, e.ts_ms);
            }
            EventType::SignOff => {
                off.insert(t, e.ts_ms);
            }
            _ if e.label == "legit" && rc(e) != "77" => {
                let last_on = *on
                    .get(t)
                    .unwrap_or_else(|| panic!("never signed on: {:?}", e));
                assert!(e.ts_ms - last_on <= 24 * H, "{:?}", e);
                assert!(off.get(t).is_none_or(|&o| o < last_on), "{:?}", e);
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn look_alikes_are_present() {
    let l: Vec<&SimEvent> = legit(small()).collect();
    assert!(l.iter().filter(|e| rc(e) == "55").count() > 100);
    assert!(l.iter().any(|e| rc(e) == "77"));
    assert!(l.iter().any(|e| e.pin == Some(PinStatus::Timeout)));
    assert!(l
        .iter()
        .any(|e| e.pin == Some(PinStatus::Bypassed) && approved(e)));
    assert!(l.iter().any(|e| e.kind == EventType::PreauthCancel));
    assert!(l
        .iter()
        .any(|e| e.kind == EventType::Reversal && e.original_id.is_some()));
    assert!(l.iter().any(|e| e.kind == EventType::Refund));
    assert!(l
        .iter()
        .any(|e| e.kind == EventType::Preauth && e.entry_mode == Some(EntryMode::Manual)));
}

#[test]
fn legit_preauths_stay_quiet() {
    let mut pre: BTreeMap<&str, &SimEvent> = BTreeMap::new();
    let mut cancels: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    let mut completions = 0;
    for e in legit(small()) {
        let key = e.auth_ref.as_deref().unwrap_or("");
        match e.kind {
            EventType::Preauth => {
                assert!(
                    ["7011", "7512"].contains(&e.mcc.as_deref().unwrap()),
                    "{:?}",
                    e
                );
                pre.insert(key, e);
            }
            EventType::Completion => {
                let p = pre
                    .get(key)
                    .unwrap_or_else(|| panic!("completion without preauth {:?}", e));
                assert_eq!(p.merchant, e.merchant);
                let ratio = e.amount.unwrap() as f64 / p.amount.unwrap() as f64;
                assert!((0.89..=1.11).contains(&ratio), "{ratio}");
                assert!(e.ts_ms - p.ts_ms <= 6 * 24 * H);
                completions += 1;
            }
            EventType::PreauthCancel => {
                let p = pre[key];
                let v = cancels
                    .entry((e.pan.as_deref().unwrap(), e.merchant.as_deref().unwrap()))
                    .or_default();
                v.push(p.ts_ms);
                assert!(
                    v.iter().filter(|&&t| p.ts_ms - t <= 24 * H).count() < 3,
                    "cycling {:?}",
                    e
                );
            }
            _ => {}
        }
    }
    assert!(completions > 20);
}

#[test]
fn attack_scenarios_have_their_shape() {
    let evs = small();
    let of = |l: &'static str| evs.iter().filter(move |e| e.label == l);
    for e in of("nopin_bypass_over_limit") {
        assert!(approved(e) && e.pin == Some(PinStatus::Bypassed) && e.amount.unwrap() > 100_000);
    }
    for e in of("preauth_keyed_unusual_mcc").filter(|e| e.kind == EventType::Preauth) {
        assert!(matches!(
            e.entry_mode,
            Some(EntryMode::Manual | EntryMode::Ecom)
        ));
        assert!(["5732", "5944", "5999"].contains(&e.mcc.as_deref().unwrap()));
    }
    let mut qr: BTreeMap<&str, usize> = BTreeMap::new();
    for e in of("qr_replay") {
        *qr.entry(e.qr_ref.as_deref().unwrap()).or_default() += 1;
    }
    assert!(qr.len() >= 2 && qr.values().all(|&n| n >= 2));
    let pre: BTreeMap<&str, &SimEvent> = evs
        .iter()
        .filter(|e| e.kind == EventType::Preauth)
        .map(|e| (e.auth_ref.as_deref().unwrap(), e))
        .collect();
    for e in of("completion_over_tolerance").filter(|e| e.kind == EventType::Completion) {
        let p = pre[e.auth_ref.as_deref().unwrap()];
        let r = e.amount.unwrap() as f64 / p.amount.unwrap() as f64;
        assert!(
            (1.24..=1.61).contains(&r) && p.merchant == e.merchant,
            "{r}"
        );
    }
    for e in of("completion_late").filter(|e| e.kind == EventType::Completion) {
        let gap = e.ts_ms - pre[e.auth_ref.as_deref().unwrap()].ts_ms;
        assert!((30 * 24 * H..41 * 24 * H).contains(&gap));
    }
    let mut split: BTreeMap<&str, (i64, usize)> = BTreeMap::new();
    for e in of("nopin_contactless_split") {
        let s = split.entry(e.pan.as_deref().unwrap()).or_default();
        s.0 += e.amount.unwrap();
        s.1 += 1;
    }
    assert!(split
        .values()
        .all(|&(sum, n)| sum > 100_000 && (3..=5).contains(&n)));
}

#[test]
fn late_completion_in_short_run_has_presignon() {
    let c = cfg(3, 300, 5);
    let evs = collect(&c);
    let late: Vec<&SimEvent> = evs
        .iter()
        .filter(|e| e.label == "completion_late")
        .collect();
    let pres: Vec<&&SimEvent> = late
        .iter()
        .filter(|e| e.kind == EventType::Preauth)
        .collect();
    assert!(pres.len() >= 2);
    for p in pres {
        assert!(p.ts_ms < c.start_ms);
        let t = p.terminal.as_deref();
        assert!(late.iter().any(|s| s.kind == EventType::SignOn
            && s.terminal.as_deref() == t
            && s.ts_ms < p.ts_ms
            && p.ts_ms - s.ts_ms <= 24 * H));
    }
    assert!(late
        .iter()
        .filter(|e| e.kind == EventType::Completion)
        .all(|e| e.ts_ms >= c.start_ms));
}

#[test]
fn disorder_is_bounded_and_deterministic() {
    let base = cfg(5, 300, 3);
    let dis = SimConfig {
        disorder_ms: 90_000,
        ..base.clone()
    };
    let sorted = collect(&base);
    let shuffled = collect(&dis);
    assert_eq!(shuffled, collect(&dis));
    assert_eq!(sorted.len(), shuffled.len());
    let mut max_ts = shuffled[0].ts_ms;
    let mut late = 0;
    for e in &shuffled {
        assert!(max_ts - e.ts_ms <= dis.disorder_ms, "{} too late", e.id);
        late += usize::from(max_ts > e.ts_ms);
        max_ts = max_ts.max(e.ts_ms);
    }
    assert!(late > 0, "disorder had no effect");
    let mut resorted = shuffled.clone();
    resorted.sort_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
    let mut again = sorted.clone();
    again.sort_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
    assert_eq!(resorted, again);
}

#[test]
fn tiny_and_empty_configs_work() {
    assert_eq!(collect(&cfg(1, 10, 0)).len(), 0);
    let evs = collect(&SimConfig {
        terminals: 3,
        ..cfg(1, 5, 2)
    });
    assert!(evs.iter().all(|e| e.label == "legit"));
    let evs = collect(&SimConfig {
        terminals: 1,
        ..cfg(1, 40, 1)
    });
    assert!(evs.iter().any(|e| e.label != "legit"));
}

//! Shape of the model-only scenarios (`terminal_pin_drift`,
//! `merchant_bypass_drift`, `card_spend_outlier`) and of the benign baselines
//! they depart from: busy lanes with a few wrong PINs a day, merchants with a
//! small usual bypass share, never more than three wrong-PIN cards an hour at
//! a terminal.

use super::params::WorldParams;
use super::tests::{approved, rc, small};
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;

/// A 2,000-card, 28-day run: enough instances and volume for shape checks.
fn mid() -> &'static (SimConfig, Vec<SimEvent>) {
    static S: OnceLock<(SimConfig, Vec<SimEvent>)> = OnceLock::new();
    S.get_or_init(|| {
        let c = SimConfig {
            seed: 9,
            cards: 2_000,
            days: 28,
            terminals: 400,
            ..SimConfig::default()
        };
        let mut v = Vec::new();
        generate(&c, &mut |e| v.push(e));
        (c, v)
    })
}

fn day(c: &SimConfig, e: &SimEvent) -> i64 {
    (e.ts_ms - c.start_ms).div_euclid(D)
}

/// Hour of day (local) as a fraction.
fn hour(c: &SimConfig, e: &SimEvent) -> f64 {
    (e.ts_ms - c.start_ms).rem_euclid(D) as f64 / H as f64
}

fn card_present(e: &SimEvent) -> bool {
    matches!(
        e.entry_mode,
        Some(EntryMode::Chip | EntryMode::Contactless | EntryMode::Magstripe | EntryMode::Fallback)
    )
}

#[test]
fn model_scenarios_reach_the_holdout_and_scale_with_attack_rate() {
    for (c, evs) in [(mid().0.clone(), &mid().1[..]), (small_cfg(), small())] {
        let cut = c.start_ms + (c.days as i64 * 4 / 5) * D;
        for l in MODEL_ONLY {
            assert!(
                evs.iter().any(|e| e.label == l && e.ts_ms >= cut),
                "{l} missing from the last fifth of the run"
            );
        }
    }
    let count = |rate: f64| {
        let c = SimConfig {
            attack_rate: rate,
            ..small_cfg()
        };
        let mut cards = BTreeSet::new();
        generate(&SimConfig { days: 10, ..c }, &mut |e| {
            if e.label == "card_spend_outlier" {
                cards.insert(e.pan.unwrap());
            }
        });
        cards.len()
    };
    assert_eq!(count(0.0), 0);
    assert!(count(10.0) > count(1.0), "instances scale with attack_rate");
}

fn small_cfg() -> SimConfig {
    SimConfig {
        seed: 7,
        cards: 300,
        days: 35,
        terminals: 60,
        ..SimConfig::default()
    }
}

#[test]
fn busy_lanes_have_a_stable_wrong_pin_base_rate() {
    let (c, evs) = mid();
    let mut per_term: BTreeMap<&str, usize> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.label == "legit" && rc(e) == "55") {
        *per_term.entry(e.terminal.as_deref().unwrap()).or_default() += 1;
    }
    let busy: Vec<f64> = per_term
        .values()
        .map(|&n| n as f64 / c.days as f64)
        .filter(|&r| r >= 1.0)
        .collect();
    assert!(busy.len() >= 4, "busy lanes: {busy:?}");
    assert!(busy.iter().any(|&r| r >= 2.5), "{busy:?}");
}

#[test]
fn at_most_three_wrong_pin_cards_an_hour_at_any_terminal() {
    for evs in [&mid().1[..], small()] {
        let mut by_term: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
        for e in evs.iter().filter(|e| rc(e) == "55") {
            if e.label == "pin_probing_terminal" {
                continue;
            }
            let v = by_term.entry(e.terminal.as_deref().unwrap()).or_default();
            v.push((e.ts_ms, e.pan.as_deref().unwrap()));
        }
        for (t, v) in &by_term {
            for (i, &(ts, _)) in v.iter().enumerate() {
                let cards: BTreeSet<&str> = v[i..]
                    .iter()
                    .take_while(|x| x.0 - ts <= H)
                    .map(|x| x.1)
                    .collect();
                assert!(cards.len() <= 3, "{t} at {ts}: {cards:?}");
            }
        }
    }
}

#[test]
fn terminal_pin_drift_garbles_a_share_of_a_lanes_pin_entries() {
    let (c, evs) = mid();
    let drift: Vec<&SimEvent> = evs
        .iter()
        .filter(|e| e.label == "terminal_pin_drift")
        .collect();
    // Every garbled customer (per day): a wrong PIN first; then at most a successful retry
    // (legit) or a second wrong PIN; always chip and PIN.
    let mut per_card: BTreeMap<(&str, i64), Vec<&SimEvent>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.kind == EventType::Auth) {
        if drift
            .iter()
            .any(|d| d.pan == e.pan && day(c, d) == day(c, e))
        {
            let k = (e.pan.as_deref().unwrap(), day(c, e));
            per_card.entry(k).or_default().push(e);
        }
    }
    assert!(per_card.len() >= 10, "{} drift cards", per_card.len());
    let (mut retried, mut gave_up) = (0, 0);
    for v in per_card.values() {
        assert_eq!(rc(v[0]), "55", "{v:?}");
        assert!(v.len() <= 2, "{v:?}");
        assert!(v.iter().all(|e| e.pin == Some(PinStatus::Entered)));
        match v.get(1) {
            Some(e) if approved(e) => retried += 1,
            Some(e) => assert_eq!(rc(e), "55"),
            None => gave_up += 1,
        }
    }
    // Half retry and succeed; many never do (what tells a garbling pad from a busy lane).
    assert!(retried > 0 && gave_up > 0, "{retried} {gave_up}");
    // Per (terminal, day): at least four garbled customers, never more than three wrong-PIN
    // cards in an hour (`at_most_three_wrong_pin_cards_an_hour_at_any_terminal`).
    let mut per_day: BTreeMap<(&str, i64), BTreeSet<&str>> = BTreeMap::new();
    for e in &drift {
        per_day
            .entry((e.terminal.as_deref().unwrap(), day(c, e)))
            .or_default()
            .insert(e.pan.as_deref().unwrap());
    }
    assert!(
        per_day.values().all(|cards| cards.len() >= 3),
        "{per_day:?}"
    );
    // Each drifting terminal drifts once (a pad is repaired once found).
    let terms: BTreeSet<&str> = per_day.keys().map(|k| k.0).collect();
    let instances = per_day
        .keys()
        .fold(BTreeMap::<&str, Vec<i64>>::new(), |mut m, k| {
            m.entry(k.0).or_default().push(k.1);
            m
        });
    for (t, days) in &instances {
        assert!(days.windows(2).all(|w| w[1] == w[0] + 1), "{t}: {days:?}");
    }
    assert!(terms.len() >= 3);
}

#[test]
fn merchant_bypass_share_climbs_day_over_day() {
    let (c, evs) = mid();
    let drift_days: BTreeMap<&str, BTreeSet<i64>> = evs
        .iter()
        .filter(|e| e.label == "merchant_bypass_drift")
        .fold(BTreeMap::new(), |mut m, e| {
            assert!(approved(e) && e.amount.unwrap() <= 95_000, "{e:?}");
            assert!(matches!(
                e.pin,
                Some(PinStatus::Bypassed | PinStatus::Timeout)
            ));
            m.entry(e.merchant.as_deref().unwrap())
                .or_default()
                .insert(day(c, e));
            m
        });
    assert!(drift_days.len() >= 3, "{drift_days:?}");
    let (mut firsts, mut middles, mut lasts) = (Vec::new(), Vec::new(), Vec::new());
    for (m, days) in &drift_days {
        // (forced no-PIN approvals, approved card-present) per day.
        let mut per_day = vec![(0usize, 0usize); c.days as usize];
        for e in evs.iter().filter(|e| e.merchant.as_deref() == Some(m)) {
            if approved(e) && card_present(e) && e.kind == EventType::Auth {
                let s = &mut per_day[day(c, e) as usize];
                s.1 += 1;
                s.0 += usize::from(matches!(
                    e.pin,
                    Some(PinStatus::Bypassed | PinStatus::Timeout)
                ));
            }
        }
        let share = |d: i64| {
            let (b, n) = per_day[d as usize];
            b as f64 / n.max(1) as f64
        };
        let (quiet_b, quiet_n) = (0..c.days as i64)
            .filter(|d| !days.contains(d))
            .fold((0, 0), |a, d| {
                (a.0 + per_day[d as usize].0, a.1 + per_day[d as usize].1)
            });
        let usual = quiet_b as f64 / quiet_n as f64;
        let s: Vec<f64> = days.iter().map(|&d| share(d)).collect();
        assert!(days.len() >= 3 && usual < 0.04, "{m}: usual {usual}, {s:?}");
        // Rising day over day, give or take the noise of a quiet day (a
        // merchant has ~5-25 card-present approvals a day).
        assert!(s.windows(2).all(|w| w[1] > w[0] - 0.16), "{m}: {s:?}");
        assert!(
            s[s.len() - 1] >= 0.2 && s[s.len() - 1] >= s[0] + 0.09,
            "{m}: {s:?}"
        );
        firsts.push(s[0]);
        middles.push(s[s.len() / 2]);
        lasts.push(s[s.len() - 1]);
    }
    // Over all instances: strictly rising.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (f, m, l) = (mean(&firsts), mean(&middles), mean(&lasts));
    assert!(f < m && m < l && f >= 0.05, "{f} {m} {l}");
}

#[test]
fn card_spend_outlier_is_far_outside_the_card_pattern() {
    let (c, evs) = mid();
    let mut cards = 0;
    let outliers: Vec<&SimEvent> = evs
        .iter()
        .filter(|e| e.label == "card_spend_outlier")
        .collect();
    for pan in outliers
        .iter()
        .map(|e| e.pan.as_deref())
        .collect::<BTreeSet<_>>()
    {
        let mine: Vec<&&SimEvent> = outliers
            .iter()
            .filter(|e| e.pan.as_deref() == pan)
            .collect();
        let first = mine[0].ts_ms;
        let mut hist: Vec<i64> = evs
            .iter()
            .filter(|e| e.pan.as_deref() == pan && e.label == "legit" && approved(e))
            .filter(|e| e.ts_ms < first)
            .map(|e| e.amount.unwrap())
            .collect();
        assert!(hist.len() >= 5, "{pan:?}: {} earlier payments", hist.len());
        hist.sort_unstable();
        let median = hist[hist.len() / 2];
        assert!((1..=2).contains(&mine.len()));
        for e in mine {
            assert!(
                e.amount.unwrap() >= 30 * median,
                "{} vs median {median}",
                e.amount.unwrap()
            );
            assert!(approved(e) && e.entry_mode == Some(EntryMode::Chip));
            assert_eq!(e.pin, Some(PinStatus::Entered));
            assert!(["5944", "5732"].contains(&e.mcc.as_deref().unwrap()));
            assert!((22.0..23.5).contains(&hour(c, e)), "{}", e.ts);
        }
        cards += 1;
    }
    assert!(cards >= 4, "{cards} outlier cards");
}

/// A 1,500-card, 21-day run of the `metro` world (variants, messy feed, look-alikes).
fn metro() -> &'static (SimConfig, Vec<SimEvent>) {
    static S: OnceLock<(SimConfig, Vec<SimEvent>)> = OnceLock::new();
    S.get_or_init(|| {
        let world = WorldParams::preset("metro").unwrap();
        let c = SimConfig {
            seed: 5,
            cards: 1_500,
            days: 21,
            terminals: 300,
            attack_rate: 3.0,
            disorder_ms: world.disorder_ms,
            world,
            ..SimConfig::default()
        };
        let mut v = Vec::new();
        generate(&c, &mut |e| v.push(e));
        (c, v)
    })
}

#[test]
fn another_world_has_its_own_ids_variants_feed_and_look_alikes() {
    let (_, evs) = metro();
    // Its own id space: no terminal or merchant id of the default world.
    assert!(evs
        .iter()
        .filter_map(|e| e.terminal.as_deref())
        .all(|t| t.starts_with("T2") || t.starts_with("T9")));
    assert!(evs
        .iter()
        .filter_map(|e| e.merchant.as_deref())
        .all(|m| m.starts_with("897")));
    // A messy feed: resent events (same id), timestamps in three formats.
    let mut seen = BTreeSet::new();
    let resent = evs.iter().filter(|e| !seen.insert(e.id.as_str())).count();
    assert!(resent > 10, "{resent} resent");
    for suffix in ["+08:00", "Z", "+00:00"] {
        assert!(
            evs.iter().any(|e| e.ts.ends_with(suffix)),
            "no {suffix} timestamps"
        );
    }
    // Every look-alike, marked on legit events only.
    for k in LOOKALIKES {
        assert!(
            evs.iter()
                .any(|e| e.lookalike.as_deref().is_some_and(|m| m.contains(k))),
            "no {k} look-alike"
        );
    }
    assert!(evs
        .iter()
        .all(|e| e.lookalike.is_none() || e.label == "legit"));
    // Attack variants the default world never shows.
    let outlier = |e: &&SimEvent| e.label == "card_spend_outlier";
    assert!(evs
        .iter()
        .filter(outlier)
        .any(|e| e.entry_mode == Some(EntryMode::Contactless)));
    assert!(evs
        .iter()
        .filter(outlier)
        .any(|e| ["5311", "5999"].contains(&e.mcc.as_deref().unwrap())));
    assert!(evs.iter().any(|e| e.label == "merchant_bypass_drift"
        && e.pin == Some(PinStatus::Absent)
        && e.amount.unwrap() > 100_000));
}

#[test]
fn the_default_world_shows_no_variant() {
    let (_, evs) = mid();
    for e in evs.iter().filter(|e| e.label == "card_spend_outlier") {
        assert_eq!(e.entry_mode, Some(EntryMode::Chip));
    }
    assert!(evs
        .iter()
        .filter(|e| e.label == "merchant_bypass_drift")
        .all(|e| e.pin != Some(PinStatus::Absent)));
    // ... but its own look-alikes and plain, ordered timestamps.
    for k in LOOKALIKES {
        assert!(
            evs.iter()
                .any(|e| e.lookalike.as_deref().is_some_and(|m| m.contains(k))),
            "no {k} look-alike"
        );
    }
    assert!(evs.iter().all(|e| e.ts.ends_with("+08:00")));
}

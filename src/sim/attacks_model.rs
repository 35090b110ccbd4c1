//! Labelled scenarios that no default rule catches but statistical models
//! should: each departs from an entity's own normal rather than crossing a
//! fixed threshold.
//!
//! - `terminal_pin_drift`: a busy lane whose wrong-PIN rate roughly triples
//!   for 6-10 hours on 1-3 consecutive days (a PIN-pad overlay garbling key
//!   presses): many distinct cards, one wrong PIN each, usually followed by a
//!   successful retry; never more than three cards with a wrong PIN in an hour.
//! - `merchant_bypass_drift`: a merchant whose share of approved PIN-bypassed
//!   (or PIN-timeout) chip payments, all under the no-PIN limit, climbs over
//!   3-4 days from its usual ~1 % to 30 % of its approved card-present
//!   payments (planned here, made day by day by `bypass_day` once the day's
//!   normal traffic is known, so the share is what was planned).
//! - `card_spend_outlier`: a card with a small-ticket everyday pattern makes
//!   one or two approved chip + PIN purchases of 150-400× its usual amount at a
//!   jeweller or electronics shop, late in the evening.
//!
//! Planned after the rule scenarios (`attacks::plan`), from their own RNG
//! stream; the count per scenario is the same as for the rule scenarios, and
//! the last instance always falls in the last fifth of the simulated days so
//! a time-split holdout sees every scenario.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::attacks::{instances, MARGIN};
use super::busy::{hour_share, PIN55_NEAR_MAX};
use super::world::{between, median_amount, purchase_amount, shop_time, HOUR, MIN, SEC};
use super::{lbl, mix, Ctx, EntryMode, EventType, PinStatus};

/// Small-ticket everyday MCCs (groceries, restaurants, fast food, misc retail).
const SMALL_TICKET: [u16; 4] = [5411, 5812, 5814, 5999];
/// Drift share of forced no-PIN approvals reached on the last drift day.
const BYPASS_PEAK: f64 = 0.30;
/// Extra wrong PINs in a drift window, as a multiple of the lane's expected
/// benign count there (so the total is about 3×).
const PIN_DRIFT_EXTRA: f64 = 2.2;

/// Plans every instance of the three model-only scenarios.
pub(crate) fn plan(ctx: &mut Ctx, rng: &mut ChaCha8Rng) {
    let n = instances(ctx);
    let days = ctx.cfg.days as i64;
    if n == 0 || days == 0 {
        return;
    }
    let mut used_terms = Vec::new();
    for i in 0..n {
        let d = model_day(rng, i, n, days, 0);
        pin_drift(ctx, rng, d, &mut used_terms);
    }
    let vol = merchant_volumes(ctx);
    let mut used_merchants = Vec::new();
    for i in 0..n {
        let d = model_day(rng, i, n, days, 0);
        bypass_drift(ctx, rng, d, &vol, &mut used_merchants);
    }
    // Outlier cards need some history first: days from a seventh of the run on.
    let mut used_cards = Vec::new();
    for i in 0..n {
        let d = model_day(rng, i, n, days, days / 7);
        spend_outlier(ctx, rng, d, &mut used_cards);
    }
}

/// Day of instance `i` of `n`: spread over [`from`, `days`), the last one in
/// the last fifth of the run.
fn model_day(rng: &mut ChaCha8Rng, i: usize, n: usize, days: i64, from: i64) -> i64 {
    let span = (days - from).max(1) as f64;
    let mut d = from + ((i as f64 + rng.gen::<f64>()) * span / n as f64) as i64;
    if i + 1 == n {
        d = d.max((days * 4 + 4) / 5);
    }
    d.clamp(0, days - 1)
}

/// `terminal_pin_drift`: extra single wrong PINs (and their retries) at a busy
/// lane over a 6-10 h window on 1-3 consecutive days.
fn pin_drift(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, used: &mut Vec<usize>) {
    let l = lbl::TERMINAL_PIN_DRIFT;
    if ctx.w.busy.is_empty() {
        return;
    }
    // One of the busier half of the lanes, preferring one not drifted yet.
    let mut order: Vec<usize> = (0..ctx.w.busy.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (
            ctx.w.busy[a].wrong_pins_per_day(),
            ctx.w.busy[b].wrong_pins_per_day(),
        );
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let top = &order[..order.len().div_ceil(2)];
    let fresh: Vec<usize> = top
        .iter()
        .copied()
        .filter(|&i| !used.contains(&ctx.w.busy[i].term))
        .collect();
    let pool = if fresh.is_empty() {
        top.to_vec()
    } else {
        fresh
    };
    let lane = ctx.w.busy[pool[rng.gen_range(0..pool.len())]].clone();
    used.push(lane.term);
    let days = ctx.cfg.days as i64;
    let nd = rng.gen_range(1..=3i64).min(days);
    let d0 = d.min(days - nd);
    let h0 = rng.gen_range(8..=12i64);
    let h1 = (h0 + rng.gen_range(6..=10i64)).min(22);
    let expected = lane.wrong_pins_per_day() * hour_share(h0, h1);
    let extra = ((PIN_DRIFT_EXTRA * expected).round() as usize).max(3);
    let t = lane.term;
    let tid = ctx.w.terms[t].tid;
    let mcc = ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc;
    for day in d0..d0 + nd {
        let ds = ctx.day_start(day);
        for _ in 0..extra {
            // A time with room left under the probing rule's hourly count.
            let Some(ts) = (0..40)
                .map(|_| ds + between(rng, h0 * HOUR, h1 * HOUR))
                .find(|&ts| ctx.pin55_near(tid, ts, 61 * MIN, 0) <= PIN55_NEAR_MAX)
            else {
                continue;
            };
            let c = ctx.pick_card(rng, ts, ts + 2 * MIN, MARGIN);
            let amount = purchase_amount(rng, mcc);
            let e = ctx.tx(ts, l, c, t, amount).with_rc("55");
            let pan = e.pan;
            ctx.push(e);
            ctx.add_pin55(tid, ts, pan);
            if rng.gen_bool(0.8) {
                // The customer's successful retry is not fraud: only the garbled wrong PIN
                // is labelled (per-event recall then measures what the model can see).
                let e = ctx.tx(
                    ts + rng.gen_range(15 * SEC..60 * SEC),
                    lbl::LEGIT,
                    c,
                    t,
                    amount,
                );
                ctx.push(e);
            }
        }
    }
}

/// Expected approved card-present payments per day at each merchant from the
/// cards' normal traffic (70 % at one of 3 home merchants, 30 % anywhere).
fn merchant_volumes(ctx: &Ctx) -> Vec<f64> {
    let w = &ctx.w;
    let mut vol = vec![0.0; w.merchants.len()];
    let mut total = 0.0;
    for c in &w.cards {
        let a = 1.5 * c.activity as f64;
        total += a;
        for &m in &c.home {
            vol[m as usize] += a * 0.7 / 3.0;
        }
    }
    let anywhere = total * 0.3 / w.merchants.len() as f64;
    // A quarter of everyday payments are QR (not card-present), 2 % declined.
    vol.iter().map(|v| (v + anywhere) * 0.75 * 0.98).collect()
}

/// `merchant_bypass_drift`, planning: picks the merchant and schedules its
/// 3-4 drift days, the target share climbing to `BYPASS_PEAK`; the payments
/// themselves are made by `bypass_day` once the day's normal traffic exists.
fn bypass_drift(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, vol: &[f64], used: &mut Vec<u32>) {
    let busy: Vec<u32> = ctx
        .w
        .busy
        .iter()
        .map(|b| ctx.w.terms[b.term].merchant)
        .collect();
    // The busiest of 40 small-ticket merchants (not a busy lane's, not reused).
    let mut m = None;
    for _ in 0..40 {
        let c = ctx.w.merchant_with(&SMALL_TICKET, rng);
        if busy.contains(&c) || used.contains(&c) {
            continue;
        }
        if m.is_none_or(|b: u32| vol[c as usize] > vol[b as usize]) {
            m = Some(c);
        }
    }
    let Some(m) = m else {
        return;
    };
    used.push(m);
    let days = ctx.cfg.days as i64;
    let k = rng.gen_range(3..=4i64).min(days);
    let d0 = d.min(days - k);
    for j in 0..k {
        let share = BYPASS_PEAK * (j + 1) as f64 / k as f64;
        ctx.bypass_drift.push((m, d0 + j, share));
    }
}

/// `merchant_bypass_drift` on day `d`: forced no-PIN approvals (bypassed or
/// timed-out PIN, under the no-PIN limit, each by a reserved card) at every
/// drifting merchant, sized so that they make the scheduled share of its
/// approved card-present payments that day. Own RNG stream per day.
pub(crate) fn bypass_day(ctx: &mut Ctx, d: i64) {
    let l = lbl::MERCHANT_BYPASS_DRIFT;
    let plan: Vec<(u32, f64)> = ctx
        .bypass_drift
        .iter()
        .filter(|x| x.1 == d)
        .map(|x| (x.0, x.2))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(ctx.cfg.seed, 6), d as u64));
    let ds = ctx.day_start(d);
    for (m, share) in plan {
        let (mid, mcc) = (
            ctx.w.merchants[m as usize].mid,
            ctx.w.merchants[m as usize].mcc,
        );
        let usual = ctx
            .today
            .iter()
            .filter(|e| e.mid == mid && e.kind == EventType::Auth && e.rc == Some("00"))
            .filter(|e| e.entry.is_some_and(card_present))
            .count();
        let forced = ((usual as f64 * share / (1.0 - share)).round() as usize).max(1);
        for _ in 0..forced {
            let ts = ds + shop_time(&mut rng);
            let c = ctx.pick_card(&mut rng, ts, ts, MARGIN);
            let t = ctx.w.term_of(m, &mut rng);
            let mut amount = purchase_amount(&mut rng, mcc);
            if amount > 95_000 {
                amount = rng.gen_range(20_000..95_000);
            }
            let pin = if rng.gen_bool(0.8) {
                PinStatus::Bypassed
            } else {
                PinStatus::Timeout
            };
            let e = ctx.tx(ts, l, c, t, amount).with_mode(EntryMode::Chip, pin);
            ctx.push(e);
        }
    }
}

/// Card-present entry modes (the denominator of a merchant's bypass share).
fn card_present(e: EntryMode) -> bool {
    matches!(
        e,
        EntryMode::Chip | EntryMode::Contactless | EntryMode::Magstripe | EntryMode::Fallback
    )
}

/// `card_spend_outlier`: one or two chip + PIN purchases of 150-400× the card's
/// usual amount at a jeweller or electronics shop, 22:15-23:15 on day `d`.
fn spend_outlier(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, used: &mut Vec<u32>) {
    let l = lbl::CARD_SPEND_OUTLIER;
    let (run0, run1) = (ctx.day_start(-1), ctx.day_start(ctx.cfg.days as i64 + 1));
    let n = ctx.w.cards.len();
    // An active card whose home merchants are all small-ticket, untouched by
    // any other attack over the whole run.
    let small = |ctx: &Ctx, c: u32| {
        let card = &ctx.w.cards[c as usize];
        card.activity >= 1.0
            && card
                .home
                .iter()
                .all(|&m| SMALL_TICKET.contains(&ctx.w.merchants[m as usize].mcc))
    };
    let Some(c) = (0..400)
        .map(|_| rng.gen_range(0..n) as u32)
        .find(|&c| !used.contains(&c) && small(ctx, c) && !ctx.blocked(c, run0, run1))
    else {
        return;
    };
    used.push(c);
    let usual = ctx.w.cards[c as usize]
        .home
        .iter()
        .map(|&m| median_amount(ctx.w.merchants[m as usize].mcc) as i64)
        .max()
        .unwrap_or(8_000);
    let t1 = ctx.day_start(d) + between(rng, 22 * HOUR + 15 * MIN, 23 * HOUR);
    let mut times = vec![t1];
    if rng.gen_bool(0.5) {
        times.push(t1 + rng.gen_range(5 * MIN..15 * MIN));
    }
    ctx.block(c, t1 - 2 * HOUR, t1 + 2 * HOUR);
    for ts in times {
        let m = ctx.w.merchant_with(&[5944, 5732], rng);
        let t = ctx.w.term_of(m, rng);
        let amount = (usual * rng.gen_range(150..=400) / 100 * 100).min(5_000_000);
        let e = ctx.tx(ts, l, c, t, amount);
        ctx.push(e);
    }
}

//! Labelled scenarios that no default rule catches but statistical models
//! should: each departs from an entity's own normal rather than crossing a
//! fixed threshold.
//!
//! - `terminal_pin_drift`: a PIN pad that garbles key presses for 4-10 hours on
//!   1-3 consecutive days (an overlay, a failing keypad): at a busy lane, 30-50 %
//!   of its PIN customers get a wrong PIN they did not type; half retry and
//!   succeed, some fail again, the rest give up. Only the wrong PINs are
//!   labelled (the successful retry is the customer's own). Never more than
//!   three cards with a wrong PIN in an hour, so the probing rule stays quiet.
//! - `merchant_bypass_drift`: a merchant whose share of approved PIN-bypassed
//!   (or PIN-timeout) chip payments, all under the no-PIN limit, climbs over
//!   3-4 days from its usual ~1 % to 30 % of its approved card-present
//!   payments (planned here, made day by day by `bypass_day` once the day's
//!   normal traffic is known, so the share is what was planned).
//! - `card_spend_outlier`: a card with a small-ticket everyday pattern makes
//!   one or two approved chip + PIN purchases of 150-400× its usual amount at a
//!   jeweller or electronics shop, late in the evening.
//!
//! With `WorldParams::variants` every other instance is a variant the default
//! world never shows: a garbling pad at a quiet terminal, or all day long at a
//! busy lane; a merchant forcing chip payments through with no PIN above the
//! no-PIN limit, or drifting slowly over 5-6 days with timeouts only; outlier
//! purchases at a department store or miscellaneous shop earlier in the evening,
//! or three contactless-with-PIN purchases within half an hour.
//!
//! Planned after the rule scenarios (`attacks::plan`), from their own RNG
//! stream; the count per scenario is the same as for the rule scenarios, and
//! the last instance always falls in the last fifth of the simulated days so
//! a time-split holdout sees every scenario.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::attacks::{instances, MARGIN};
use super::busy::{hour_share, CHIP_SHARE, PIN55_NEAR_MAX};
use super::world::{between, median_amount, shop_time, DAY, HOUR, MIN, SEC};
use super::{lbl, mix, Ctx, EntryMode, EventType, PinStatus};

/// Small-ticket everyday MCCs (groceries, restaurants, fast food, misc retail).
const SMALL_TICKET: [u16; 4] = [5411, 5812, 5814, 5999];
/// Drift share of forced no-PIN approvals reached on the last drift day.
const BYPASS_PEAK: f64 = 0.30;
/// Share of a drifting pad's PIN customers whose PIN it garbles (range).
const GARBLE: (f64, f64) = (0.30, 0.50);

/// Plans every instance of the three model-only scenarios.
pub(crate) fn plan(ctx: &mut Ctx, rng: &mut ChaCha8Rng) {
    let n = instances(ctx);
    let days = ctx.cfg.days as i64;
    if n == 0 || days == 0 {
        return;
    }
    let variants = ctx.cfg.world.variants;
    // Instance i's variant: 0 (the default world's) or, in worlds with variants, 1 or 2 for
    // every other instance.
    let variant = |i: usize| {
        if variants && i % 2 == 1 {
            1 + (i / 2 % 2) as u8
        } else {
            0
        }
    };
    let mut used_terms = Vec::new();
    for i in 0..n {
        let d = model_day(rng, i, n, days, 0);
        pin_drift(ctx, rng, d, &mut used_terms, variant(i));
    }
    let vol = merchant_volumes(ctx);
    let mut used_merchants = Vec::new();
    for i in 0..n {
        let d = model_day(rng, i, n, days, 0);
        bypass_drift(ctx, rng, d, &vol, &mut used_merchants, variant(i));
    }
    // Outlier cards need some history first: days from a seventh of the run on.
    let mut used_cards = Vec::new();
    for i in 0..n {
        let d = model_day(rng, i, n, days, days / 7);
        spend_outlier(ctx, rng, d, &mut used_cards, variant(i));
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

/// `terminal_pin_drift`: garbled PIN entries at one terminal over a window of
/// 1-3 consecutive days (see the module docs; `variant` 1: a quiet terminal,
/// 2: all day at a busy lane).
fn pin_drift(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, used: &mut Vec<usize>, variant: u8) {
    let days = ctx.cfg.days as i64;
    let nd = rng.gen_range(1..=3i64).min(days);
    let d0 = d.min(days - nd);
    let (h0, h1) = if variant == 2 {
        (8, 21)
    } else {
        let h0 = rng.gen_range(8..=12i64);
        (h0, (h0 + rng.gen_range(4..=10i64)).min(22))
    };
    let garble = rng.gen_range(GARBLE.0..GARBLE.1);
    let lane = (variant != 1)
        .then(|| drift_lane(ctx, rng, used, d0))
        .flatten();
    let (t, per_day) = match lane {
        Some(lane) => {
            let attempts = lane.volume * CHIP_SHARE * hour_share(h0, h1);
            (
                lane.term,
                Some(((garble * attempts).round() as usize).max(4)),
            )
        }
        None => {
            let Some(t) = quiet_terminal(ctx, rng, used, d0, nd) else {
                return;
            };
            (t, None)
        }
    };
    used.push(t);
    let tid = ctx.w.terms[t].tid;
    for day in d0..d0 + nd {
        let ds = ctx.day_start(day);
        let extra = per_day.unwrap_or_else(|| rng.gen_range(4..=7));
        for _ in 0..extra {
            // A time with room left under the probing rule's hourly count.
            let Some(ts) = (0..40)
                .map(|_| ds + between(rng, h0 * HOUR, h1 * HOUR))
                .find(|&ts| ctx.pin55_near(tid, ts, 61 * MIN, 0) <= PIN55_NEAR_MAX)
            else {
                continue;
            };
            garbled(ctx, rng, t, ts);
        }
    }
}

/// One customer at a garbling pad: a wrong PIN; then a successful retry (half of
/// them), a second garbled attempt and giving up (a fifth), or giving up at once.
fn garbled(ctx: &mut Ctx, rng: &mut ChaCha8Rng, t: usize, ts: i64) {
    let l = lbl::TERMINAL_PIN_DRIFT;
    let tid = ctx.w.terms[t].tid;
    let mcc = ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc;
    let c = ctx.pick_card(rng, ts, ts + 3 * MIN, MARGIN);
    let amount = ctx.w.amount(rng, mcc);
    let e = ctx.tx(ts, l, c, t, amount).with_rc("55");
    let pan = e.pan;
    ctx.push(e);
    ctx.add_pin55(tid, ts, pan);
    let r: f64 = rng.gen();
    let again = ts + rng.gen_range(15 * SEC..60 * SEC);
    if r < 0.5 {
        // The customer's successful retry is not fraud: only the garbled wrong PINs
        // are labelled (per-event recall then measures what the model can see).
        let e = ctx.tx(again, lbl::LEGIT, c, t, amount);
        ctx.push(e);
    } else if r < 0.7 {
        let e = ctx.tx(again, l, c, t, amount).with_rc("55");
        ctx.push(e);
    }
}

/// A busy lane (not a cold-start one) that has not drifted yet, from the busier
/// half if it can: a pad is repaired once found, so a lane drifts once (an
/// instance with no lane left becomes a quiet terminal's).
fn drift_lane(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    used: &[usize],
    d0: i64,
) -> Option<super::busy::BusyLane> {
    let mut order: Vec<usize> = (0..ctx.w.busy.len())
        .filter(|&i| !ctx.w.busy[i].cold && ctx.w.installed(ctx.w.busy[i].term, d0))
        .collect();
    if order.is_empty() {
        return None;
    }
    order.sort_by(|&a, &b| {
        let (ra, rb) = (
            ctx.w.busy[a].wrong_pins_per_day(),
            ctx.w.busy[b].wrong_pins_per_day(),
        );
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let top = order.len().div_ceil(2);
    let fresh = |v: &[usize]| -> Vec<usize> {
        v.iter()
            .copied()
            .filter(|&i| !used.contains(&ctx.w.busy[i].term))
            .collect()
    };
    let mut pool = fresh(&order[..top]);
    if pool.is_empty() {
        pool = fresh(&order);
    }
    (!pool.is_empty()).then(|| ctx.w.busy[pool[rng.gen_range(0..pool.len())]].clone())
}

/// An everyday terminal that is not a busy lane, with no wrong PIN registered
/// on the drift days so far.
fn quiet_terminal(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    used: &[usize],
    d0: i64,
    nd: i64,
) -> Option<usize> {
    let lanes: Vec<usize> = ctx.w.busy.iter().map(|l| l.term).collect();
    (0..40).find_map(|_| {
        let m = ctx.w.everyday_merchant(rng);
        let t = ctx.w.term_of(m, rng);
        let tid = ctx.w.terms[t].tid;
        let mid = ctx.day_start(d0) + nd * DAY / 2;
        let free = ctx.pin55_near(tid, mid, nd * DAY, 0) == 0;
        (!lanes.contains(&t) && free && !used.contains(&t)).then_some(t)
    })
}

/// Expected approved card-present payments per day at each merchant from the
/// cards' normal traffic (70 % at one of 3 home merchants, 30 % anywhere).
fn merchant_volumes(ctx: &Ctx) -> Vec<f64> {
    let w = &ctx.w;
    let mut vol = vec![0.0; w.merchants.len()];
    let mut total = 0.0;
    for c in &w.cards {
        let a = w.p.tx_per_card_day * c.activity as f64;
        total += a;
        for &m in &c.home {
            vol[m as usize] += a * 0.7 / 3.0;
        }
    }
    let anywhere = total * 0.3 / w.fleet_merchants.max(1) as f64;
    // The QR share of everyday payments is not card-present; 2 % are declined.
    let cp = 1.0 - w.p.qr_share;
    vol.iter().map(|v| (v + anywhere) * cp * 0.98).collect()
}

/// `merchant_bypass_drift`, planning: picks the merchant and schedules its
/// 3-4 drift days, the target share climbing to `BYPASS_PEAK`; the payments
/// themselves are made by `bypass_day` once the day's normal traffic exists.
fn bypass_drift(
    ctx: &mut Ctx,
    rng: &mut ChaCha8Rng,
    d: i64,
    vol: &[f64],
    used: &mut Vec<u32>,
    variant: u8,
) {
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
    let (k, peak) = if variant == 2 {
        (rng.gen_range(5..=6i64).min(days), rng.gen_range(0.20..0.25))
    } else {
        (rng.gen_range(3..=4i64).min(days), BYPASS_PEAK)
    };
    let d0 = d.min(days - k);
    for j in 0..k {
        let share = peak * (j + 1) as f64 / k as f64;
        ctx.bypass_drift.push((m, d0 + j, share, variant));
    }
}

/// `merchant_bypass_drift` on day `d`: forced no-PIN approvals (bypassed or
/// timed-out PIN, under the no-PIN limit, each by a reserved card) at every
/// drifting merchant, sized so that they make the scheduled share of its
/// approved card-present payments that day. Own RNG stream per day.
pub(crate) fn bypass_day(ctx: &mut Ctx, d: i64) {
    let l = lbl::MERCHANT_BYPASS_DRIFT;
    let plan: Vec<(u32, f64, u8)> = ctx
        .bypass_drift
        .iter()
        .filter(|x| x.1 == d)
        .map(|x| (x.0, x.2, x.3))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(ctx.cfg.seed, 6), d as u64));
    let ds = ctx.day_start(d);
    for (m, share, variant) in plan {
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
            let mut amount = ctx.w.amount(&mut rng, mcc);
            if amount > 95_000 {
                amount = rng.gen_range(20_000..95_000);
            }
            let pin = match variant {
                // No PIN at all on a chip payment above the no-PIN limit.
                1 => {
                    amount = rng.gen_range(100_100..300_000);
                    PinStatus::Absent
                }
                2 => PinStatus::Timeout,
                _ if rng.gen_bool(0.8) => PinStatus::Bypassed,
                _ => PinStatus::Timeout,
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
fn spend_outlier(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, used: &mut Vec<u32>, variant: u8) {
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
        .map(|&m| {
            let card = ctx.w.cards[c as usize].scale as f64;
            (median_amount(ctx.w.merchants[m as usize].mcc) * ctx.w.p.amount_scale * card) as i64
        })
        .max()
        .unwrap_or(8_000);
    let (from, to, mccs, mode): (i64, i64, &[u16], EntryMode) = match variant {
        1 => (20 * HOUR, 22 * HOUR, &[5311, 5999], EntryMode::Chip),
        2 => (
            21 * HOUR + 30 * MIN,
            22 * HOUR + 25 * MIN,
            &[5944, 5732],
            EntryMode::Contactless,
        ),
        _ => (
            22 * HOUR + 15 * MIN,
            23 * HOUR,
            &[5944, 5732],
            EntryMode::Chip,
        ),
    };
    let t1 = ctx.day_start(d) + between(rng, from, to);
    let mut times = vec![t1];
    if variant == 2 {
        times.push(t1 + rng.gen_range(5 * MIN..12 * MIN));
        times.push(t1 + rng.gen_range(15 * MIN..30 * MIN));
    } else if rng.gen_bool(0.5) {
        times.push(t1 + rng.gen_range(5 * MIN..15 * MIN));
    }
    ctx.block(c, t1 - 2 * HOUR, t1 + 2 * HOUR);
    for ts in times {
        let m = ctx.w.merchant_with(mccs, rng);
        let t = ctx.w.term_of(m, rng);
        let amount = (usual * rng.gen_range(150..=400) / 100 * 100).min(50_000_000);
        let e = ctx
            .tx(ts, l, c, t, amount)
            .with_mode(mode, PinStatus::Entered);
        ctx.push(e);
    }
}

//! Merchant traffic surges, a benign look-alike of `merchant_bypass_drift`: on a
//! surge day a shop (a sale, a festival, a neighbour closed) takes 2-5 times its
//! usual card-present payments, each by a different walk-in card, with its usual
//! small share of PIN-bypassed chip payments. The count of forced no-PIN
//! approvals climbs with the traffic; their share does not. Planned day by day
//! once the day's normal traffic is known (like `attacks_model::bypass_day`),
//! from its own RNG stream; every legit event at the merchant that day is marked
//! `merchant_surge` (`Ctx::lookalike`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::busy::WALK_IN_HOLD;
use super::world::{poisson, shop_time};
use super::{lbl, mix, Ctx, EntryMode, EventType, PinStatus};

/// Shops whose walk-in traffic can surge.
const SURGE_MCCS: [u16; 5] = [5411, 5812, 5814, 5999, 5311];

/// The surges of day `d`.
pub(crate) fn surge_day(ctx: &mut Ctx, d: i64) {
    if ctx.w.cards.len() < 16 {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(ctx.cfg.seed, 14), d as u64));
    let rate = ctx.w.p.surges_per_1000_merchants_day * ctx.w.fleet_merchants as f64 / 1000.0;
    let n = poisson(&mut rng, rate);
    for _ in 0..n {
        let m = ctx.w.merchant_with(&SURGE_MCCS, &mut rng);
        // Never a merchant drifting into bypasses around that day (the two would mix).
        if ctx
            .bypass_drift
            .iter()
            .any(|x| x.0 == m && (x.1 - d).abs() <= 2)
        {
            continue;
        }
        let (mid, mcc) = (
            ctx.w.merchants[m as usize].mid,
            ctx.w.merchants[m as usize].mcc,
        );
        if !ctx.surges.insert((mid, d)) {
            continue;
        }
        let usual = ctx
            .today
            .iter()
            .filter(|e| e.mid == mid && e.kind == EventType::Auth && e.rc == Some("00"))
            .count();
        let extra = ((usual as f64 * rng.gen_range(2.0..5.0)).round() as usize).max(20);
        for _ in 0..extra {
            walk_in(ctx, &mut rng, d, m, mcc);
        }
    }
}

/// One surge payment at merchant `m` by a walk-in card free around it.
fn walk_in(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, m: u32, mcc: u16) {
    let ts = ctx.day_start(d) + shop_time(rng);
    let n = ctx.w.cards.len();
    let Some(c) = (0..6)
        .map(|_| rng.gen_range(0..n) as u32)
        .find(|&c| !ctx.blocked(c, ts - WALK_IN_HOLD, ts + WALK_IN_HOLD))
    else {
        return;
    };
    ctx.block(c, ts - WALK_IN_HOLD, ts + WALK_IN_HOLD);
    let t = ctx.w.term_of(m, rng);
    let amount = ctx.w.card_amount(rng, mcc, c);
    let r: f64 = rng.gen();
    let mut e = ctx.tx(ts, lbl::LEGIT, c, t, amount);
    if r < 0.2 {
        let q = ctx.new_qr();
        e = e.with_mode(EntryMode::Qr, PinStatus::Absent).with_qr(q);
    } else if r < 0.45 {
        let amount = amount.min(rng.gen_range(20_000..60_000));
        e = e
            .with_amount(amount)
            .with_mode(EntryMode::Contactless, PinStatus::Absent);
    } else if amount <= 95_000 && rng.gen_bool(ctx.bypass_share(m)) {
        e.pin = Some(PinStatus::Bypassed);
    }
    ctx.push(e);
}

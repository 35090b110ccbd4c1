//! Busy checkout lanes and cold-start terminals: a few terminals (supermarkets,
//! department stores, petrol stations) with heavy walk-in traffic and a stable,
//! terminal-specific rate of PIN mistypes (a "55" usually followed by a
//! successful retry; a few customers give up and pay another way).
//!
//! Busy lanes exist so that a terminal's normal wrong-PIN rate is learnable from
//! history (a few wrong PINs a day on a busy lane, none on a quiet one), which
//! the `terminal_pin_drift` scenario then departs from. Cold-start terminals are
//! installed mid-run (a new lane at an existing shop, or a new shop) and have the
//! same kind of walk-in traffic from their first day: no history to compare with.
//! Everything here is labelled "legit" and kept below every PIN rule: each
//! mistype card is reserved around its episode, and no 60-minute span at a
//! terminal holds more than three distinct cards with a wrong PIN (the probing
//! rule needs five).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{mid_of, normal, shop_time, Merchant, Terminal, World, HOUR_W, MIN, SEC};
use super::{lbl, mix, Ctx, EntryMode, PinStatus};

/// Share of walk-in payments that are chip + PIN (the rest QR or contactless).
pub(crate) const CHIP_SHARE: f64 = 0.55;
/// Maximum other wrong-PIN events at a terminal within ±61 min of a new one:
/// keeps every hour at a terminal to ≤ 3 distinct cards (`pin_probing_terminal`
/// fires at 5).
pub(crate) const PIN55_NEAR_MAX: usize = 2;
/// A walk-in card is held this long either side of its payment: nobody pays at a
/// checkout lane, then another, then another within the hour (a walk-in picks a
/// random card, and without the hold busy worlds gave cards unreal velocity).
pub(crate) const WALK_IN_HOLD: i64 = 45 * MIN;
/// MCCs of shops with checkout lanes.
const LANE_MCCS: [u16; 3] = [5411, 5311, 5541];

/// A busy (or cold-start) terminal and its stable traffic profile.
#[derive(Debug, Clone)]
pub(crate) struct BusyLane {
    /// Index into `World::terms`.
    pub term: usize,
    /// Mean walk-in payments per day (on top of the cards' normal traffic).
    pub volume: f64,
    /// Probability that a chip + PIN walk-in starts with a mistyped PIN.
    pub mistype: f64,
    /// Installed mid-run (a cold-start terminal): no traffic before `World::terms[term].from_day`.
    pub cold: bool,
}

impl BusyLane {
    /// Expected benign wrong PINs per day at this lane.
    pub fn wrong_pins_per_day(&self) -> f64 {
        self.volume * CHIP_SHARE * self.mistype
    }
}

/// Picks the busy lanes of a world: `busy_share` of terminals (at least 2 in a
/// world with cards), at supermarkets, department stores and petrol stations.
pub(crate) fn pick_lanes(w: &World, seed: u64) -> Vec<BusyLane> {
    if w.cards.len() < 16 || w.terms.len() < 4 {
        return Vec::new();
    }
    let p = &w.p;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 3));
    let n = ((w.terms.len() as f64 * p.busy_share).round() as usize).max(2);
    let mut lanes: Vec<BusyLane> = Vec::with_capacity(n);
    for _ in 0..n * 10 {
        if lanes.len() == n {
            break;
        }
        let m = w.merchant_with(&LANE_MCCS, &mut rng);
        let term = w.term_of(m, &mut rng);
        if lanes.iter().any(|l| l.term == term) {
            continue;
        }
        lanes.push(BusyLane {
            term,
            volume: range(&mut rng, p.busy_volume),
            mistype: range(&mut rng, p.busy_mistype),
            cold: false,
        });
    }
    lanes
}

fn range(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

/// Adds the world's cold-start terminals (`cold_start_share` of the fleet, in
/// a world of at least 3 days with cards): each is a new terminal installed on
/// a day in the middle half of the run, half of them a new lane at an existing
/// shop, half a new shop; from that day on it has walk-in traffic like a busy
/// lane (from quiet to busy) and no history before.
pub(crate) fn add_cold_starts(w: &mut World, seed: u64, days: u32) -> Vec<BusyLane> {
    let n = (w.terms.len() as f64 * w.p.cold_start_share).round() as usize;
    if w.cards.len() < 16 || days < 3 || n == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 12));
    let days = days as i64;
    let tid_base = w.terms.first().map_or(0, |t| t.tid);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let existing = w.merchant_with(&LANE_MCCS, &mut rng);
        let m = if rng.gen_bool(0.5) {
            existing
        } else {
            // A new shop of the same kind, which nothing else picks.
            let i = w.merchants.len();
            let mcc = w.merchants[existing as usize].mcc;
            w.merchants.push(Merchant {
                mid: mid_of(w.p.id_space, i, mcc),
                mcc,
                term_start: w.terms.len() as u32,
                term_count: 1,
            });
            i as u32
        };
        let term = w.terms.len();
        w.terms.push(Terminal {
            tid: tid_base + term as u32,
            merchant: m,
            batch_base: rng.gen_range(100..800_000),
            signs_off: false,
            from_day: rng.gen_range(days / 4..=(3 * days / 4).max(days / 4 + 1)),
        });
        out.push(BusyLane {
            term,
            volume: rng.gen_range(10.0..w.p.busy_volume.1.max(11.0)),
            mistype: range(&mut rng, w.p.busy_mistype),
            cold: true,
        });
    }
    out
}

/// Walk-in traffic of every busy lane on day `d` (own RNG stream per day).
pub(crate) fn busy_day(ctx: &mut Ctx, d: i64) {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(ctx.cfg.seed, 5), d as u64));
    let ds = ctx.day_start(d);
    for i in 0..ctx.w.busy.len() {
        let lane = ctx.w.busy[i].clone();
        if !ctx.w.installed(lane.term, d) {
            continue;
        }
        let v = lane.volume;
        let k = (v + v.sqrt() * normal(&mut rng)).round().max(0.0) as usize;
        let mut times: Vec<i64> = (0..k).map(|_| ds + shop_time(&mut rng)).collect();
        times.sort_unstable();
        for ts in times {
            walk_in(ctx, &mut rng, &lane, ts);
        }
    }
}

/// One walk-in payment at a busy lane by a random card not reserved around
/// `ts`; a chip + PIN one may start with a mistyped PIN.
fn walk_in(ctx: &mut Ctx, rng: &mut ChaCha8Rng, lane: &BusyLane, ts: i64) {
    let n = ctx.w.cards.len();
    let Some(c) = (0..6)
        .map(|_| rng.gen_range(0..n) as u32)
        .find(|&c| !ctx.blocked(c, ts - WALK_IN_HOLD, ts + WALK_IN_HOLD))
    else {
        return;
    };
    let t = lane.term;
    let mcc = ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc;
    let amount = ctx.w.card_amount(rng, mcc, c);
    let r: f64 = rng.gen();
    if r >= CHIP_SHARE {
        // QR or contactless: one payment, the card held so two walk-ins of one
        // card never stack up into a tap split.
        ctx.block(c, ts - WALK_IN_HOLD, ts + WALK_IN_HOLD);
        let mut e = ctx.tx(ts, lbl::LEGIT, c, t, amount);
        if r < CHIP_SHARE + 0.2 {
            let q = ctx.new_qr();
            e = e.with_mode(EntryMode::Qr, PinStatus::Absent).with_qr(q);
        } else {
            let amount = amount.min(rng.gen_range(20_000..60_000));
            let pin = PinStatus::Absent;
            e = e.with_amount(amount).with_mode(EntryMode::Contactless, pin);
        }
        ctx.push(e);
        return;
    }
    let tid = ctx.w.terms[t].tid;
    let wrong = rng.gen_bool(lane.mistype)
        && ctx.pin55_near(tid, ts, 61 * MIN, 0) <= PIN55_NEAR_MAX
        && !ctx.blocked(c, ts - 90 * MIN, ts + 90 * MIN);
    if !wrong {
        ctx.block(c, ts - WALK_IN_HOLD, ts + WALK_IN_HOLD);
        let e = ctx.tx(ts, lbl::LEGIT, c, t, amount);
        ctx.push(e);
        return;
    }
    // A mistype episode: the card is held for ±90 min like other look-alikes.
    ctx.block(c, ts - 90 * MIN, ts + 90 * MIN);
    let e = ctx.tx(ts, lbl::LEGIT, c, t, amount).with_rc("55");
    ctx.push(e);
    ctx.add_pin55(tid, ts, ctx.w.cards[c as usize].pan);
    if rng.gen_bool(ctx.w.p.give_up) {
        // The customer gives up (pays cash, or by QR on their phone).
        return;
    }
    let e = ctx.tx(
        ts + rng.gen_range(15 * SEC..60 * SEC),
        lbl::LEGIT,
        c,
        t,
        amount,
    );
    ctx.push(e);
}

/// Share of the daily shop-traffic curve between local hours `from` and `to`.
pub(crate) fn hour_share(from: i64, to: i64) -> f64 {
    let total: u32 = HOUR_W.iter().sum();
    let part: u32 = HOUR_W
        .iter()
        .enumerate()
        .filter(|(i, _)| (from..to).contains(&(7 + *i as i64)))
        .map(|(_, w)| *w)
        .sum();
    part as f64 / total as f64
}

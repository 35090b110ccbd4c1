//! Labelled attack scenarios injected on top of legit traffic.
//!
//! All instances are planned up front (their number scales with
//! cards × days × `attack_rate`, spread over the days) and pushed into the
//! future-event heap, so they are emitted in order with everything else.
//! Every event of an instance, including setup events such as the
//! pre-authorisation of a late completion or its terminal's sign-on, carries
//! the scenario name as label. Attack cards are reserved around the attack
//! window so normal traffic of the same card cannot blur the pattern.
//! The pre-authorisation scenarios live in `attacks_preauth.rs`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::attacks_preauth::{
    cancel_cycling, completion_late, completion_over_tolerance, completion_without_preauth,
    keyed_unusual_mcc,
};
use super::world::{between, HOUR, MIN, ROGUE_TID_BASE};
use super::{lbl, Ctx, EntryMode, EventType, PinStatus};

/// Card-event type + entry/PIN used repeatedly below.
pub(super) const CHIP: (EntryMode, PinStatus) = (EntryMode::Chip, PinStatus::Entered);
/// Margin reserved on attack cards around the attack window: longer than the
/// 24 h look-back of the card rules, so legit traffic of the card stays clear.
pub(super) const MARGIN: i64 = 26 * HOUR;

/// Number of instances of each scenario for this run.
pub(super) fn instances(ctx: &Ctx) -> usize {
    let cfg = ctx.cfg;
    if cfg.attack_rate <= 0.0 || cfg.days == 0 {
        return 0;
    }
    let base = cfg.attack_rate * cfg.cards as f64 * cfg.days as f64 / 10_000.0;
    let min = if cfg.cards >= 200 && cfg.days >= 2 {
        2
    } else {
        1
    };
    (base.round() as usize).max(min)
}

/// Plans every attack instance and pushes its events into `ctx.heap`.
pub(crate) fn plan(ctx: &mut Ctx, rng: &mut ChaCha8Rng) {
    let n = instances(ctx);
    let days = ctx.cfg.days as i64;
    let mut rogue = 0u32;
    for s in lbl::PIN_CONSECUTIVE_WRONG..=lbl::QR_REPLAY {
        for i in 0..n {
            let d = (((i as f64 + rng.gen::<f64>()) * days as f64 / n as f64) as i64)
                .clamp(0, days - 1);
            match s {
                lbl::PIN_CONSECUTIVE_WRONG => consecutive_wrong(ctx, rng, d),
                lbl::PIN_SPREAD_TERMINALS => spread_terminals(ctx, rng, d),
                lbl::PIN_PROBING_TERMINAL => probing_terminal(ctx, rng, d),
                lbl::PIN_AFTER_TRIES_EXCEEDED => after_tries_exceeded(ctx, rng, d),
                lbl::NOPIN_WALKAWAY => walkaway(ctx, rng, d),
                lbl::NOPIN_BYPASS_OVER_LIMIT => bypass_over_limit(ctx, rng, d),
                lbl::NOPIN_CONTACTLESS_SPLIT => contactless_split(ctx, rng, d),
                lbl::PREAUTH_KEYED_UNUSUAL_MCC => keyed_unusual_mcc(ctx, rng, d),
                lbl::COMPLETION_WITHOUT_PREAUTH => completion_without_preauth(ctx, rng, d),
                lbl::COMPLETION_OVER_TOLERANCE => completion_over_tolerance(ctx, rng, d),
                lbl::COMPLETION_LATE => completion_late(ctx, rng, d),
                lbl::PREAUTH_CANCEL_CYCLING => cancel_cycling(ctx, rng, d),
                lbl::TERMINAL_NOT_SIGNED_ON => not_signed_on(ctx, rng, d, &mut rogue),
                _ => qr_replay(ctx, rng, d),
            }
        }
    }
}

/// Absolute time on day `d` between `from` and `to` (ms after midnight).
pub(super) fn at(ctx: &Ctx, rng: &mut ChaCha8Rng, d: i64, from: i64, to: i64) -> i64 {
    ctx.day_start(d) + between(rng, from, to)
}

/// An everyday terminal with no wrong PIN registered within 2 h of `ts`,
/// distinct from the terminals in `avoid`.
fn pin_term(ctx: &Ctx, rng: &mut ChaCha8Rng, ts: i64, avoid: &[usize]) -> usize {
    let mut t = 0;
    for _ in 0..30 {
        let m = ctx.w.everyday_merchant(rng);
        t = ctx.w.term_of(m, rng);
        if !avoid.contains(&t) && ctx.pin55_near(ctx.w.terms[t].tid, ts, 2 * HOUR, 0) == 0 {
            break;
        }
    }
    t
}

/// A "55" wrong-PIN decline (chip, PIN entered), registered per terminal.
fn wrong(ctx: &mut Ctx, rng: &mut ChaCha8Rng, ts: i64, label: u8, c: u32, t: usize) {
    let amount = ctx
        .w
        .amount(rng, ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc);
    let e = ctx.tx(ts, label, c, t, amount).with_rc("55");
    let (tid, pan) = (e.tid, e.pan);
    ctx.push(e);
    ctx.add_pin55(tid, ts, pan);
}

/// `k` sorted offsets in [lo, hi) added to `t0`.
fn sorted_times(rng: &mut ChaCha8Rng, t0: i64, k: usize, lo: i64, hi: i64) -> Vec<i64> {
    let mut v: Vec<i64> = (0..k).map(|_| t0 + between(rng, lo, hi)).collect();
    v.sort_unstable();
    v
}

fn consecutive_wrong(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PIN_CONSECUTIVE_WRONG;
    let n = rng.gen_range(3..=5);
    let nt = rng.gen_range(1..=3usize);
    // With 3 terminals keep them > 60 min apart so pin_spread_terminals stays quiet.
    let gap = if nt == 3 {
        31 * MIN..50 * MIN
    } else {
        5 * MIN..40 * MIN
    };
    let mut times = vec![at(ctx, rng, d, 8 * HOUR, 16 * HOUR)];
    for _ in 1..n {
        let last = times[times.len() - 1];
        times.push(last + rng.gen_range(gap.clone()));
    }
    let c = ctx.pick_card(rng, times[0], times[n - 1], MARGIN);
    let mut terms = Vec::new();
    for _ in 0..nt {
        let t = pin_term(ctx, rng, times[0], &terms);
        terms.push(t);
    }
    // Sometimes a contactless no-PIN approval sits between two wrong PINs.
    let between_at = if rng.gen_bool(0.5) {
        rng.gen_range(1..n)
    } else {
        n
    };
    for k in 0..n {
        if k == between_at {
            let m = ctx.w.everyday_merchant(rng);
            let t = ctx.w.term_of(m, rng);
            let ts = (times[k - 1] + times[k]) / 2;
            let e = ctx.tx(ts, l, c, t, rng.gen_range(1000..30_000));
            ctx.push(e.with_mode(EntryMode::Contactless, PinStatus::Absent));
        }
        wrong(ctx, rng, times[k], l, c, terms[k % nt]);
    }
}

fn spread_terminals(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PIN_SPREAD_TERMINALS;
    let k = rng.gen_range(3..=4);
    let t0 = at(ctx, rng, d, 8 * HOUR, 21 * HOUR);
    let mut times = sorted_times(rng, t0, k - 1, MIN, 44 * MIN);
    times.insert(0, t0);
    let c = ctx.pick_card(rng, t0, t0 + 45 * MIN, MARGIN);
    let mut terms = Vec::new();
    for &ts in &times {
        let t = pin_term(ctx, rng, ts, &terms);
        terms.push(t);
        wrong(ctx, rng, ts, l, c, t);
    }
}

fn probing_terminal(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PIN_PROBING_TERMINAL;
    let t0 = at(ctx, rng, d, 8 * HOUR, 22 * HOUR);
    let t = pin_term(ctx, rng, t0, &[]);
    let k = rng.gen_range(5..=8);
    for ts in sorted_times(rng, t0, k, 0, 39 * MIN) {
        let c = ctx.pick_card(rng, ts, ts, MARGIN);
        wrong(ctx, rng, ts, l, c, t);
    }
}

fn after_tries_exceeded(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PIN_AFTER_TRIES_EXCEEDED;
    let t0 = at(ctx, rng, d, 8 * HOUR, 20 * HOUR);
    let c = ctx.pick_card(rng, t0, t0 + 2 * HOUR, MARGIN);
    let ta = pin_term(ctx, rng, t0, &[]);
    let amount = ctx
        .w
        .amount(rng, ctx.w.merchants[ctx.w.terms[ta].merchant as usize].mcc);
    let first = if rng.gen_bool(0.25) { "38" } else { "75" };
    let e = ctx.tx(t0, l, c, ta, amount).with_rc(first);
    ctx.push(e);
    let m = rng.gen_range(1..=3);
    for (i, ts) in sorted_times(rng, t0, m, 3 * MIN, 115 * MIN)
        .into_iter()
        .enumerate()
    {
        let t = if rng.gen_bool(0.6) {
            ta
        } else {
            pin_term(ctx, rng, ts, &[ta])
        };
        if i == 0 && rng.gen_bool(0.3) {
            wrong(ctx, rng, ts, l, c, t);
        } else {
            let e = ctx.tx(ts, l, c, t, amount).with_rc("75");
            ctx.push(e);
        }
    }
}

fn walkaway(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::NOPIN_WALKAWAY;
    let t0 = at(ctx, rng, d, 8 * HOUR, 22 * HOUR);
    let c = ctx.pick_card(rng, t0, t0 + 30 * MIN, MARGIN);
    let m = ctx.w.everyday_merchant(rng);
    let t = ctx.w.term_of(m, rng);
    let pin = if rng.gen_bool(0.5) {
        PinStatus::Timeout
    } else {
        PinStatus::Bypassed
    };
    let rc = if rng.gen_bool(0.5) { "55" } else { "05" };
    let amount = ctx.w.amount(rng, ctx.w.merchants[m as usize].mcc);
    let e = ctx
        .tx(t0, l, c, t, amount)
        .with_mode(EntryMode::Chip, pin)
        .with_rc(rc);
    let (tid, pan) = (e.tid, e.pan);
    ctx.push(e);
    if rc == "55" {
        ctx.add_pin55(tid, t0, pan);
    }
    let ts = t0 + rng.gen_range(2 * MIN..29 * MIN);
    let m2 = ctx.w.everyday_merchant(rng);
    let t2 = ctx.w.term_of(m2, rng);
    let (mode, amt) = if rng.gen_bool(0.5) {
        (
            (EntryMode::Contactless, PinStatus::Absent),
            rng.gen_range(5000..95_000),
        )
    } else {
        let p = if rng.gen_bool(0.5) {
            PinStatus::Absent
        } else {
            PinStatus::Bypassed
        };
        ((EntryMode::Magstripe, p), rng.gen_range(5000..90_000))
    };
    let e = ctx.tx(ts, l, c, t2, amt).with_mode(mode.0, mode.1);
    ctx.push(e);
}

fn bypass_over_limit(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::NOPIN_BYPASS_OVER_LIMIT;
    let ts = at(ctx, rng, d, 8 * HOUR, 22 * HOUR + 50 * MIN);
    let c = ctx.pick_card(rng, ts, ts, MARGIN);
    let m = ctx.w.merchant_with(&[5732, 5311, 5944, 5999], rng);
    let t = ctx.w.term_of(m, rng);
    let entry = if rng.gen_bool(0.7) {
        EntryMode::Chip
    } else {
        EntryMode::Magstripe
    };
    let e = ctx.tx(ts, l, c, t, rng.gen_range(100_100..=800_000));
    ctx.push(e.with_mode(entry, PinStatus::Bypassed));
}

fn contactless_split(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::NOPIN_CONTACTLESS_SPLIT;
    let t0 = at(ctx, rng, d, 8 * HOUR, 22 * HOUR + 40 * MIN);
    let c = ctx.pick_card(rng, t0, t0 + 10 * MIN, MARGIN);
    let m = ctx.w.everyday_merchant(rng);
    let t = ctx.w.term_of(m, rng);
    let k = rng.gen_range(3..=5);
    for ts in sorted_times(rng, t0, k, 0, 9 * MIN + 30_000) {
        let e = ctx.tx(ts, l, c, t, rng.gen_range(40_000..=95_000));
        ctx.push(e.with_mode(EntryMode::Contactless, PinStatus::Absent));
    }
}

fn not_signed_on(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, rogue: &mut u32) {
    let l = lbl::TERMINAL_NOT_SIGNED_ON;
    let days = ctx.cfg.days as i64;
    let k = rng.gen_range(1..=4);
    if days >= 2 && rng.gen_bool(0.5) {
        // A terminal that signed off at ~23:30 keeps transacting before its
        // next sign-on at 05:00.
        let nt = ctx.w.terms.len();
        let cand = (0..50)
            .map(|_| rng.gen_range(0..nt))
            .find(|&t| ctx.w.terms[t].signs_off);
        if let Some(t) = cand {
            let night = d.min(days - 2) + 1;
            let ds = ctx.day_start(night);
            for ts in sorted_times(rng, ds, k, 10 * MIN, 4 * HOUR + 30 * MIN) {
                let c = ctx.pick_card(rng, ts, ts, MARGIN);
                let amount = ctx
                    .w
                    .amount(rng, ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc);
                let e = ctx.tx(ts, l, c, t, amount);
                ctx.push(e);
            }
            return;
        }
    }
    // A rogue TID that never signed on, presenting a real merchant id.
    let tid = ROGUE_TID_BASE + *rogue;
    *rogue += 1;
    let m = ctx.w.everyday_merchant(rng);
    let (mid, mcc) = (
        ctx.w.merchants[m as usize].mid,
        ctx.w.merchants[m as usize].mcc,
    );
    let t0 = at(ctx, rng, d, 8 * HOUR, 20 * HOUR);
    for ts in sorted_times(rng, t0, k, 0, 2 * HOUR) {
        let c = ctx.pick_card(rng, ts, ts, MARGIN);
        let mut e = ctx.new_ev(ts, EventType::Auth, l);
        e.pan = ctx.w.cards[c as usize].pan;
        e.tid = tid;
        e.mid = mid;
        e.mcc = mcc;
        let e = e
            .with_amount(ctx.w.amount(rng, mcc))
            .with_mode(CHIP.0, CHIP.1)
            .with_rc("00");
        ctx.push(e);
    }
}

fn qr_replay(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::QR_REPLAY;
    let t0 = at(ctx, rng, d, 8 * HOUR, 19 * HOUR);
    let c = ctx.pick_card(rng, t0, t0 + 3 * HOUR, MARGIN);
    let m = ctx.w.everyday_merchant(rng);
    let q = ctx.new_qr();
    let amount = rng.gen_range(2000..=200_000);
    let replays = rng.gen_range(1..=2);
    let mut times = sorted_times(rng, t0, replays, 2 * MIN, 3 * HOUR);
    times.insert(0, t0);
    for (i, ts) in times.into_iter().enumerate() {
        let card = if i > 0 && rng.gen_bool(0.5) {
            ctx.pick_card(rng, ts, ts, MARGIN)
        } else {
            c
        };
        let t = ctx.w.term_of(m, rng);
        let e = ctx
            .tx(ts, l, card, t, amount)
            .with_mode(EntryMode::Qr, PinStatus::Absent);
        ctx.push(e.with_qr(q));
    }
}

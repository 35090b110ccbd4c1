//! Labelled attack scenarios injected on top of legit traffic.
//!
//! All instances are planned up front (their number scales with
//! cards × days × `attack_rate`, spread over the days) and pushed into the
//! future-event heap, so they are emitted in order with everything else.
//! Every event of an instance, including setup events such as the
//! pre-authorisation of a late completion or its terminal's sign-on, carries
//! the scenario name as label. Attack cards are reserved around the attack
//! window so normal traffic of the same card cannot blur the pattern.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::benign::cancel;
use super::world::{between, purchase_amount, HOUR, MIN, ROGUE_TID_BASE};
use super::{lbl, Ctx, EntryMode, EventType, PinStatus};

/// Card-event type + entry/PIN used repeatedly below.
const CHIP: (EntryMode, PinStatus) = (EntryMode::Chip, PinStatus::Entered);
/// Margin reserved on attack cards around the attack window.
const MARGIN: i64 = 4 * HOUR;

/// Number of instances of each scenario for this run.
fn instances(ctx: &Ctx) -> usize {
    let cfg = ctx.cfg;
    if cfg.attack_rate <= 0.0 || cfg.days == 0 {
        return 0;
    }
    let base = cfg.attack_rate * cfg.cards as f64 * cfg.days as f64 / 10_000.0;
    let min = if cfg.cards >= 200 && cfg.days >= 2 { 2 } else { 1 };
    (base.round() as usize).max(min)
}

/// Plans every attack instance and pushes its events into `ctx.heap`.
pub(crate) fn plan(ctx: &mut Ctx, rng: &mut ChaCha8Rng) {
    let n = instances(ctx);
    let days = ctx.cfg.days as i64;
    let mut rogue = 0u32;
    for s in lbl::PIN_CONSECUTIVE_WRONG..=lbl::QR_REPLAY {
        for i in 0..n {
            let d = (((i as f64 + rng.gen::<f64>()) * days as f64 / n as f64) as i64).clamp(0, days - 1);
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
fn at(ctx: &Ctx, rng: &mut ChaCha8Rng, d: i64, from: i64, to: i64) -> i64 {
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
    let amount = purchase_amount(rng, ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc);
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
    let gap = if nt == 3 { 31 * MIN..50 * MIN } else { 5 * MIN..40 * MIN };
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
    let between_at = if rng.gen_bool(0.5) { rng.gen_range(1..n) } else { n };
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
    let amount = purchase_amount(rng, ctx.w.merchants[ctx.w.terms[ta].merchant as usize].mcc);
    let first = if rng.gen_bool(0.25) { "38" } else { "75" };
    let e = ctx.tx(t0, l, c, ta, amount).with_rc(first);
    ctx.push(e);
    let m = rng.gen_range(1..=3);
    for (i, ts) in sorted_times(rng, t0, m, 3 * MIN, 115 * MIN).into_iter().enumerate() {
        let t = if rng.gen_bool(0.6) { ta } else { pin_term(ctx, rng, ts, &[ta]) };
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
    let pin = if rng.gen_bool(0.5) { PinStatus::Timeout } else { PinStatus::Bypassed };
    let rc = if rng.gen_bool(0.5) { "55" } else { "05" };
    let amount = purchase_amount(rng, ctx.w.merchants[m as usize].mcc);
    let e = ctx.tx(t0, l, c, t, amount).with_mode(EntryMode::Chip, pin).with_rc(rc);
    let (tid, pan) = (e.tid, e.pan);
    ctx.push(e);
    if rc == "55" {
        ctx.add_pin55(tid, t0, pan);
    }
    let ts = t0 + rng.gen_range(2 * MIN..29 * MIN);
    let m2 = ctx.w.everyday_merchant(rng);
    let t2 = ctx.w.term_of(m2, rng);
    let (mode, amt) = if rng.gen_bool(0.5) {
        ((EntryMode::Contactless, PinStatus::Absent), rng.gen_range(5000..95_000))
    } else {
        let p = if rng.gen_bool(0.5) { PinStatus::Absent } else { PinStatus::Bypassed };
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
    let entry = if rng.gen_bool(0.7) { EntryMode::Chip } else { EntryMode::Magstripe };
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

/// Approved preauth at `t` with a fresh auth_ref; returns (auth_ref, amount).
fn preauth(ctx: &mut Ctx, rng: &mut ChaCha8Rng, ts: i64, l: u8, c: u32, t: usize, mode: (EntryMode, PinStatus)) -> (u64, i64) {
    let amount = rng.gen_range(500..=3000) * 100;
    let a = ctx.new_auth_ref();
    let e = ctx.tx(ts, l, c, t, amount).with_kind(EventType::Preauth).with_mode(mode.0, mode.1);
    ctx.push(e.with_auth(a));
    (a, amount)
}

/// Completion of auth_ref `a` at terminal `t`; reserves the card around it.
fn completion(ctx: &mut Ctx, ts: i64, l: u8, c: u32, t: usize, (a, amount): (u64, i64), entry: EntryMode) {
    ctx.block(c, ts - 3 * HOUR, ts + 3 * HOUR);
    let e = ctx.tx(ts, l, c, t, amount).with_kind(EventType::Completion).with_mode(entry, PinStatus::Absent);
    ctx.push(e.with_auth(a));
}

fn hotel_mode(rng: &mut ChaCha8Rng) -> (EntryMode, PinStatus) {
    if rng.gen_bool(0.4) {
        (EntryMode::Manual, PinStatus::Absent)
    } else {
        CHIP
    }
}

fn keyed_unusual_mcc(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PREAUTH_KEYED_UNUSUAL_MCC;
    let ts = at(ctx, rng, d, 8 * HOUR, 22 * HOUR);
    let c = ctx.pick_card(rng, ts, ts, MARGIN);
    let m = ctx.w.merchant_with(&[5732, 5944, 5999], rng);
    let t = ctx.w.term_of(m, rng);
    let entry = if rng.gen_bool(0.6) { EntryMode::Manual } else { EntryMode::Ecom };
    let amount = rng.gen_range(2000..=20_000) * 100;
    let a = ctx.new_auth_ref();
    let e = ctx.tx(ts, l, c, t, amount).with_kind(EventType::Preauth).with_mode(entry, PinStatus::Absent);
    ctx.push(e.with_auth(a));
    if rng.gen_bool(0.5) {
        let cd = d + rng.gen_range(1..=2);
        let cts = at(ctx, rng, cd, 9 * HOUR, 21 * HOUR);
        completion(ctx, cts, l, c, t, (a, amount), entry);
    }
}

/// Day for a preauth whose completion follows 1-3 days later, and that day.
fn two_days(ctx: &Ctx, rng: &mut ChaCha8Rng, d: i64) -> (i64, i64) {
    let days = ctx.cfg.days as i64;
    if days < 2 {
        return (0, 0);
    }
    let p = d.min(days - 2);
    (p, (p + rng.gen_range(1..=3)).min(days - 1))
}

fn completion_without_preauth(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::COMPLETION_WITHOUT_PREAUTH;
    let hotels = [7011, 7512];
    if ctx.cfg.days >= 2 && rng.gen_bool(0.5) {
        // Real preauth, completed at a different merchant.
        let (p, cd) = two_days(ctx, rng, d);
        let ts = at(ctx, rng, p, 8 * HOUR, 21 * HOUR);
        let c = ctx.pick_card(rng, ts, ts, MARGIN);
        let m = ctx.w.merchant_with(&hotels, rng);
        let t = ctx.w.term_of(m, rng);
        let mode = hotel_mode(rng);
        let (a, amount) = preauth(ctx, rng, ts, l, c, t, mode);
        let mut m2 = ctx.w.merchant_with(&hotels, rng);
        for _ in 0..10 {
            if m2 != m {
                break;
            }
            m2 = rng.gen_range(0..ctx.w.merchants.len()) as u32;
        }
        let t2 = ctx.w.term_of(m2, rng);
        let cts = at(ctx, rng, cd, 9 * HOUR, 21 * HOUR).max(ts + HOUR);
        completion(ctx, cts, l, c, t2, (a, amount * rng.gen_range(95..=105) / 100), mode.0);
    } else {
        // Completion referencing an auth_ref that was never pre-authorised.
        let ts = at(ctx, rng, d, 8 * HOUR, 22 * HOUR);
        let c = ctx.pick_card(rng, ts, ts, MARGIN);
        let m = ctx.w.merchant_with(&hotels, rng);
        let t = ctx.w.term_of(m, rng);
        let a = ctx.new_auth_ref();
        let entry = hotel_mode(rng).0;
        completion(ctx, ts, l, c, t, (a, rng.gen_range(500..=5000) * 100), entry);
    }
}

fn completion_over_tolerance(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::COMPLETION_OVER_TOLERANCE;
    let (p, cd) = two_days(ctx, rng, d);
    let ts = at(ctx, rng, p, 8 * HOUR, 12 * HOUR);
    let c = ctx.pick_card(rng, ts, ts, MARGIN);
    let m = ctx.w.merchant_with(&[7011, 7512], rng);
    let t = ctx.w.term_of(m, rng);
    let mode = hotel_mode(rng);
    let (a, amount) = preauth(ctx, rng, ts, l, c, t, mode);
    let cts = if cd > p { at(ctx, rng, cd, 9 * HOUR, 21 * HOUR) } else { ts + rng.gen_range(3 * HOUR..6 * HOUR) };
    completion(ctx, cts, l, c, t, (a, amount * rng.gen_range(125..=160) / 100), mode.0);
}

fn completion_late(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::COMPLETION_LATE;
    let days = ctx.cfg.days as i64;
    let (p, cd) = if days >= 32 {
        let gap = rng.gen_range(31..=days.min(41) - 1);
        let p = rng.gen_range(0..=days - 1 - gap);
        (p, p + gap)
    } else {
        (d - rng.gen_range(31..=40), d)
    };
    let ts = at(ctx, rng, p, 9 * HOUR, 21 * HOUR);
    let c = ctx.pick_card(rng, ts, ts, MARGIN);
    let m = ctx.w.merchant_with(&[7011, 7512], rng);
    let t = ctx.w.term_of(m, rng);
    if p < 0 {
        // Before the simulated period: emit the terminal's sign-on too.
        let on = ctx.day_start(p) + 5 * HOUR + rng.gen_range(0..HOUR);
        let mut e = ctx.new_ev(on, EventType::SignOn, l);
        e.tid = ctx.w.terms[t].tid;
        e.batch = ctx.batch(t, p);
        ctx.push(e.with_rc("00"));
    }
    let mode = hotel_mode(rng);
    let (a, amount) = preauth(ctx, rng, ts, l, c, t, mode);
    let cts = at(ctx, rng, cd, 9 * HOUR, 21 * HOUR);
    completion(ctx, cts, l, c, t, (a, amount * rng.gen_range(90..=110) / 100), mode.0);
}

fn cancel_cycling(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PREAUTH_CANCEL_CYCLING;
    let mut ts = at(ctx, rng, d, 8 * HOUR, 10 * HOUR);
    let c = ctx.pick_card(rng, ts, ts + 12 * HOUR, MARGIN);
    let m = if rng.gen_bool(0.7) { ctx.w.merchant_with(&[7011, 7512], rng) } else { ctx.w.everyday_merchant(rng) };
    let t = ctx.w.term_of(m, rng);
    let mode = hotel_mode(rng);
    for _ in 0..rng.gen_range(3..=4) {
        let (a, amount) = preauth(ctx, rng, ts, l, c, t, mode);
        cancel(ctx, ts + rng.gen_range(2 * MIN..30 * MIN), l, c, t, amount, a);
        ts += rng.gen_range(30 * MIN..150 * MIN);
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
        let cand = (0..50).map(|_| rng.gen_range(0..nt)).find(|&t| ctx.w.terms[t].signs_off);
        if let Some(t) = cand {
            let night = d.min(days - 2) + 1;
            let ds = ctx.day_start(night);
            for ts in sorted_times(rng, ds, k, 10 * MIN, 4 * HOUR + 30 * MIN) {
                let c = ctx.pick_card(rng, ts, ts, MARGIN);
                let amount = purchase_amount(rng, ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc);
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
    let (mid, mcc) = (ctx.w.merchants[m as usize].mid, ctx.w.merchants[m as usize].mcc);
    let t0 = at(ctx, rng, d, 8 * HOUR, 20 * HOUR);
    for ts in sorted_times(rng, t0, k, 0, 2 * HOUR) {
        let c = ctx.pick_card(rng, ts, ts, MARGIN);
        let mut e = ctx.new_ev(ts, EventType::Auth, l);
        e.pan = ctx.w.cards[c as usize].pan;
        e.tid = tid;
        e.mid = mid;
        e.mcc = mcc;
        let e = e.with_amount(purchase_amount(rng, mcc)).with_mode(CHIP.0, CHIP.1).with_rc("00");
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
        let card = if i > 0 && rng.gen_bool(0.5) { ctx.pick_card(rng, ts, ts, MARGIN) } else { c };
        let t = ctx.w.term_of(m, rng);
        let e = ctx.tx(ts, l, card, t, amount).with_mode(EntryMode::Qr, PinStatus::Absent);
        ctx.push(e.with_qr(q));
    }
}

//! Pre-authorisation attack scenarios (the card-absent / hotel side of the
//! switch): keyed pre-auths at unusual MCCs, completions without an open
//! pre-auth, over the tolerance or after the validity period, and
//! pre-auth/cancel cycling. Planned by `attacks::plan`, same conventions:
//! every event of an instance, setup included, carries the scenario label.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::attacks::{at, CHIP, MARGIN};
use super::benign::cancel;
use super::world::{HOUR, MIN};
use super::{lbl, Ctx, EntryMode, EventType, PinStatus};

/// Approved preauth at `t` with a fresh auth_ref; returns (auth_ref, amount).
fn preauth(
    ctx: &mut Ctx,
    rng: &mut ChaCha8Rng,
    ts: i64,
    l: u8,
    c: u32,
    t: usize,
    mode: (EntryMode, PinStatus),
) -> (u64, i64) {
    let amount = rng.gen_range(500..=3000) * 100;
    let a = ctx.new_auth_ref();
    let e = ctx
        .tx(ts, l, c, t, amount)
        .with_kind(EventType::Preauth)
        .with_mode(mode.0, mode.1);
    ctx.push(e.with_auth(a));
    (a, amount)
}

/// Completion of auth_ref `a` at terminal `t`; reserves the card around it.
fn completion(
    ctx: &mut Ctx,
    ts: i64,
    l: u8,
    c: u32,
    t: usize,
    (a, amount): (u64, i64),
    entry: EntryMode,
) {
    ctx.block(c, ts - 3 * HOUR, ts + 3 * HOUR);
    let e = ctx
        .tx(ts, l, c, t, amount)
        .with_kind(EventType::Completion)
        .with_mode(entry, PinStatus::Absent);
    ctx.push(e.with_auth(a));
}

fn hotel_mode(rng: &mut ChaCha8Rng) -> (EntryMode, PinStatus) {
    if rng.gen_bool(0.4) {
        (EntryMode::Manual, PinStatus::Absent)
    } else {
        CHIP
    }
}

pub(super) fn keyed_unusual_mcc(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PREAUTH_KEYED_UNUSUAL_MCC;
    let ts = at(ctx, rng, d, 8 * HOUR, 22 * HOUR);
    let c = ctx.pick_card(rng, ts, ts, MARGIN);
    let m = ctx.w.merchant_with(&[5732, 5944, 5999], rng);
    let t = ctx.w.term_of(m, rng);
    let entry = if rng.gen_bool(0.6) {
        EntryMode::Manual
    } else {
        EntryMode::Ecom
    };
    let amount = rng.gen_range(2000..=20_000) * 100;
    let a = ctx.new_auth_ref();
    let e = ctx
        .tx(ts, l, c, t, amount)
        .with_kind(EventType::Preauth)
        .with_mode(entry, PinStatus::Absent);
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

pub(super) fn completion_without_preauth(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
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
            m2 = ctx.w.any_merchant(rng);
        }
        let t2 = ctx.w.term_of(m2, rng);
        let cts = at(ctx, rng, cd, 9 * HOUR, 21 * HOUR).max(ts + HOUR);
        completion(
            ctx,
            cts,
            l,
            c,
            t2,
            (a, amount * rng.gen_range(95..=105) / 100),
            mode.0,
        );
    } else {
        // Completion referencing an auth_ref that was never pre-authorised.
        let ts = at(ctx, rng, d, 8 * HOUR, 22 * HOUR);
        let c = ctx.pick_card(rng, ts, ts, MARGIN);
        let m = ctx.w.merchant_with(&hotels, rng);
        let t = ctx.w.term_of(m, rng);
        let a = ctx.new_auth_ref();
        let entry = hotel_mode(rng).0;
        completion(
            ctx,
            ts,
            l,
            c,
            t,
            (a, rng.gen_range(500..=5000) * 100),
            entry,
        );
    }
}

pub(super) fn completion_over_tolerance(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::COMPLETION_OVER_TOLERANCE;
    let (p, cd) = two_days(ctx, rng, d);
    let ts = at(ctx, rng, p, 8 * HOUR, 12 * HOUR);
    let c = ctx.pick_card(rng, ts, ts, MARGIN);
    let m = ctx.w.merchant_with(&[7011, 7512], rng);
    let t = ctx.w.term_of(m, rng);
    let mode = hotel_mode(rng);
    let (a, amount) = preauth(ctx, rng, ts, l, c, t, mode);
    let cts = if cd > p {
        at(ctx, rng, cd, 9 * HOUR, 21 * HOUR)
    } else {
        ts + rng.gen_range(3 * HOUR..6 * HOUR)
    };
    completion(
        ctx,
        cts,
        l,
        c,
        t,
        (a, amount * rng.gen_range(125..=160) / 100),
        mode.0,
    );
}

pub(super) fn completion_late(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
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
    completion(
        ctx,
        cts,
        l,
        c,
        t,
        (a, amount * rng.gen_range(90..=110) / 100),
        mode.0,
    );
}

pub(super) fn cancel_cycling(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let l = lbl::PREAUTH_CANCEL_CYCLING;
    let mut ts = at(ctx, rng, d, 8 * HOUR, 10 * HOUR);
    let c = ctx.pick_card(rng, ts, ts + 12 * HOUR, MARGIN);
    let m = if rng.gen_bool(0.7) {
        ctx.w.merchant_with(&[7011, 7512], rng)
    } else {
        ctx.w.everyday_merchant(rng)
    };
    let t = ctx.w.term_of(m, rng);
    let mode = hotel_mode(rng);
    for _ in 0..rng.gen_range(3..=4) {
        let (a, amount) = preauth(ctx, rng, ts, l, c, t, mode);
        cancel(
            ctx,
            ts + rng.gen_range(2 * MIN..30 * MIN),
            l,
            c,
            t,
            amount,
            a,
        );
        ts += rng.gen_range(30 * MIN..150 * MIN);
    }
}

//! Legit traffic for one simulated day: terminal sign-on/sign-off, everyday
//! card payments (chip, contactless, QR, insufficient funds, reversals,
//! refunds, hotel/car-rental pre-authorisations with their completions or
//! cancels) and the benign look-alikes that resemble attacks but must stay
//! below every fraud rule (single PIN mistypes, supermarket lane mistypes,
//! small repeated taps, PIN timeouts, late sign-on, booking changes, small
//! bypasses, each merchant's small usual share of bypassed chip payments).
//! All of it is labelled "legit". Busy checkout lanes are in `busy.rs`.
//!
//! Look-alikes reserve their card's time window (`Ctx::block`) and register
//! wrong PINs per terminal (`Ctx::add_pin55`) so that normal traffic, other
//! look-alikes and attacks never combine into an attack pattern.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::world::{between, poisson, shop_time, HOUR, MIN, SEC};
use super::{lbl, Ctx, EntryMode, EventType, PinStatus};

const L: u8 = lbl::LEGIT;

/// Minimum spacing between two normal transactions of one card.
const CARD_GAP: i64 = 15 * MIN;

/// Generates all legit events of day `d` into `ctx` (today's buffer / heap).
pub(crate) fn legit_day(ctx: &mut Ctx, d: i64, rng: &mut ChaCha8Rng) {
    let ds = ctx.day_start(d);
    let nt = ctx.w.terms.len();
    let with_cards = ctx.w.cards.len() >= 16;

    // Terminals that will sign on late today (the "77 then sign on" look-alike).
    let mut late: Vec<usize> = Vec::new();
    if with_cards {
        let n_late = ((nt as f64 / 1000.0).round() as usize).clamp(1, nt);
        late = (0..n_late).map(|_| rng.gen_range(0..nt)).collect();
        late.sort_unstable();
        late.dedup();
    }
    for t in 0..nt {
        if !ctx.w.installed(t, d) {
            continue;
        }
        let tid = ctx.w.terms[t].tid;
        let batch = ctx.batch(t, d);
        if late.binary_search(&t).is_err() {
            let ts = ds + 5 * HOUR + rng.gen_range(0..HOUR);
            sign(ctx, ts, EventType::SignOn, tid, batch);
        }
        if ctx.w.terms[t].signs_off {
            let ts = ds + 23 * HOUR + 20 * MIN + rng.gen_range(0..20 * MIN);
            sign(ctx, ts, EventType::SignOff, tid, batch);
        }
    }
    if !with_cards {
        normal_traffic(ctx, d, rng);
        return;
    }
    for &t in &late {
        if ctx.w.installed(t, d) {
            late_sign_on(ctx, rng, d, t);
        }
    }

    let scale = ctx.w.cards.len() as f64 / 1000.0;
    let n = |f: f64| ((scale * f).round() as usize).max(1);
    for _ in 0..n(0.05) {
        supermarket_lane(ctx, rng, d);
    }
    for _ in 0..n(ctx.w.p.mistypes_per_1000_cards) {
        mistype(ctx, rng, d);
    }
    for _ in 0..n(0.5) {
        small_taps(ctx, rng, d);
    }
    for _ in 0..n(0.5) {
        pin_timeout_retry(ctx, rng, d);
    }
    for _ in 0..n(0.3) {
        small_bypass(ctx, rng, d);
    }
    for _ in 0..n(0.3) {
        booking_change(ctx, rng, d);
    }
    super::busy::busy_day(ctx, d);
    normal_traffic(ctx, d, rng);
}

fn sign(ctx: &mut Ctx, ts: i64, kind: EventType, tid: u32, batch: u32) {
    let mut e = ctx.new_ev(ts, kind, L);
    e.tid = tid;
    e.batch = batch;
    let e = e.with_rc("00");
    ctx.push(e);
}

/// Everyday traffic of every card not reserved by an attack or look-alike.
fn normal_traffic(ctx: &mut Ctx, d: i64, rng: &mut ChaCha8Rng) {
    let ds = ctx.day_start(d);
    let mut times: Vec<i64> = Vec::with_capacity(16);
    for c in 0..ctx.w.cards.len() as u32 {
        let lam = ctx.w.p.tx_per_card_day * ctx.w.cards[c as usize].activity as f64;
        let k = poisson(rng, lam);
        if k == 0 {
            continue;
        }
        times.clear();
        times.extend((0..k).map(|_| ds + shop_time(rng)));
        times.sort_unstable();
        let mut last = i64::MIN / 2;
        let mut preauth_done = false;
        for &ts in &times {
            if ts - last < CARD_GAP || ctx.blocked(c, ts, ts) {
                continue;
            }
            last = ts;
            card_tx(ctx, rng, d, c, ts, &mut preauth_done);
        }
    }
}

/// One normal card transaction (and its follow-ups) at `ts`.
fn card_tx(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, c: u32, ts: i64, preauth_done: &mut bool) {
    let m = if rng.gen_bool(0.7) {
        ctx.w.cards[c as usize].home[rng.gen_range(0..3)]
    } else {
        ctx.w.any_merchant(rng)
    };
    let mcc = ctx.w.merchants[m as usize].mcc;
    let t = ctx.w.term_of(m, rng);
    if (mcc == 7011 || mcc == 7512) && !*preauth_done && rng.gen_bool(0.5) {
        *preauth_done = true;
        preauth_flow(ctx, rng, d, c, t, ts);
        return;
    }
    let amount = ctx.w.card_amount(rng, mcc, c);
    let r: f64 = rng.gen();
    let (qr_p, cl_p) = if mcc == 4121 {
        (0.5, 0.3)
    } else {
        (ctx.w.p.qr_share, ctx.w.p.contactless_share)
    };
    let mut e = ctx.tx(ts, L, c, t, amount);
    if r < qr_p {
        let q = ctx.new_qr();
        e = e.with_mode(EntryMode::Qr, PinStatus::Absent).with_qr(q);
    } else if r < qr_p + cl_p {
        let pin = if amount < 100_000 {
            PinStatus::Absent
        } else {
            PinStatus::Entered
        };
        e = e.with_mode(EntryMode::Contactless, pin);
    } else if r < 0.97 {
        if rng.gen_bool(0.003) {
            e = e.with_kind(EventType::Transfer);
        }
    } else if r < 0.99 {
        e = e.with_mode(EntryMode::Magstripe, PinStatus::Entered);
    } else {
        e = e.with_mode(EntryMode::Fallback, PinStatus::Entered);
    }
    if rng.gen_bool(0.02) {
        e = e.with_rc("51");
        ctx.push(e);
        return;
    }
    // The merchant's usual small share of approved PIN bypass (under the limit).
    if e.kind == EventType::Auth
        && e.entry == Some(EntryMode::Chip)
        && amount <= 95_000
        && rng.gen_bool(ctx.bypass_share(m))
    {
        e.pin = Some(PinStatus::Bypassed);
    }
    let entry = e.entry;
    // Reversal of a card-present PIN payment, seconds to minutes later.
    if entry != Some(EntryMode::Qr) && entry != Some(EntryMode::Contactless) && rng.gen_bool(0.01) {
        let mut r = e.clone();
        r.ts = ts + rng.gen_range(5 * SEC..120 * SEC);
        r.seq = ctx.next_seq();
        r.kind = EventType::Reversal;
        r.original = e.seq;
        r.pin = None;
        r.qr = 0;
        ctx.push(r);
    } else if rng.gen_bool(0.01) {
        // Refund of part or all of it, 1-5 days later at the same merchant.
        let dd = d + rng.gen_range(1..=5);
        let rts = ctx.day_start(dd) + between(rng, 8 * HOUR, 22 * HOUR);
        let rt = ctx.w.term_of(m, rng);
        let ramt = (amount * rng.gen_range(30..=100) / 100).max(1);
        if follow_up_ok(ctx, c, rts) {
            let mut r = ctx.tx(rts, L, c, rt, ramt).with_kind(EventType::Refund);
            r.pin = None;
            ctx.push(r);
        }
    }
    ctx.push(e);
}

/// Hotel / car-rental pre-authorisation, then completion (1-5 days, 90-110 %)
/// or cancel, or nothing (expiry).
fn preauth_flow(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, c: u32, t: usize, ts: i64) {
    let amount = rng.gen_range(500..=3000) * 100;
    let (entry, pin) = if rng.gen_bool(0.4) {
        (EntryMode::Manual, PinStatus::Absent)
    } else {
        (EntryMode::Chip, PinStatus::Entered)
    };
    let a = ctx.new_auth_ref();
    let e = ctx
        .tx(ts, L, c, t, amount)
        .with_kind(EventType::Preauth)
        .with_mode(entry, pin)
        .with_auth(a);
    ctx.push(e);
    let r: f64 = rng.gen();
    if r < 0.88 {
        let dd = d + rng.gen_range(1..=5);
        let cts = ctx.day_start(dd) + between(rng, 8 * HOUR, 22 * HOUR);
        let camt = amount * rng.gen_range(90..=110) / 100;
        if !follow_up_ok(ctx, c, cts) {
            return; // the pre-auth simply expires
        }
        let e = ctx
            .tx(cts, L, c, t, camt)
            .with_kind(EventType::Completion)
            .with_mode(entry, PinStatus::Absent);
        ctx.push(e.with_auth(a));
    } else if r < 0.96 {
        let mut cts = ts + rng.gen_range(HOUR..6 * HOUR);
        if cts > ctx.day_start(d) + 22 * HOUR + 55 * MIN {
            cts = ctx.day_start(d + 1) + between(rng, 9 * HOUR, 12 * HOUR);
        }
        if follow_up_ok(ctx, c, cts) {
            cancel(ctx, cts, L, c, t, amount, a);
        }
    }
}

/// A scheduled legit follow-up (refund, completion, cancel) of card `c` at
/// `ts` is kept only away from reserved windows, and then reserves ±1 h
/// itself so no look-alike or no-PIN sequence lands next to it.
fn follow_up_ok(ctx: &mut Ctx, c: u32, ts: i64) -> bool {
    if ctx.blocked(c, ts - HOUR, ts + HOUR) {
        return false;
    }
    ctx.block(c, ts - HOUR, ts + HOUR);
    true
}

/// A preauth_cancel of auth_ref `a` (shared with the attack generator).
pub(crate) fn cancel(ctx: &mut Ctx, ts: i64, label: u8, c: u32, t: usize, amount: i64, a: u64) {
    let mut e = ctx
        .tx(ts, label, c, t, amount)
        .with_kind(EventType::PreauthCancel)
        .with_auth(a);
    e.entry = None;
    e.pin = None;
    ctx.push(e);
}

/// A random card free for [ts - margin, ts + margin], reserved for it.
fn free_card(ctx: &mut Ctx, rng: &mut ChaCha8Rng, ts: i64, margin: i64) -> u32 {
    ctx.pick_card(rng, ts, ts, margin)
}

/// Terminal misses its morning sign-on: a "77" decline, then the sign-on,
/// then the retry approved — all just before 07:00.
fn late_sign_on(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64, t: usize) {
    let on = ctx.day_start(d) + 6 * HOUR + 45 * MIN + rng.gen_range(0..8 * MIN);
    let c = free_card(ctx, rng, on, HOUR);
    let mcc = ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc;
    let amount = ctx.w.card_amount(rng, mcc, c);
    let mut e = ctx
        .tx(on - rng.gen_range(60 * SEC..240 * SEC), L, c, t, amount)
        .with_rc("77");
    e.batch = if d > 0 { ctx.batch(t, d - 1) } else { 0 };
    ctx.push(e);
    let (tid, batch) = (ctx.w.terms[t].tid, ctx.batch(t, d));
    sign(ctx, on, EventType::SignOn, tid, batch);
    let mut e = ctx.tx(on + rng.gen_range(20 * SEC..90 * SEC), L, c, t, amount);
    e.batch = batch;
    ctx.push(e);
}

/// A card mistypes its PIN and then succeeds: "55" ×1-2 then "00" pin entered.
fn mistype_at(ctx: &mut Ctx, rng: &mut ChaCha8Rng, c: u32, t: usize, ts: i64, times: u32) {
    let pan = ctx.w.cards[c as usize].pan;
    let tid = ctx.w.terms[t].tid;
    let mcc = ctx.w.merchants[ctx.w.terms[t].merchant as usize].mcc;
    let amount = ctx.w.card_amount(rng, mcc, c);
    let mut at = ts;
    for _ in 0..times {
        let e = ctx.tx(at, L, c, t, amount).with_rc("55");
        ctx.push(e);
        ctx.add_pin55(tid, at, pan);
        at += rng.gen_range(15 * SEC..60 * SEC);
    }
    if rng.gen_bool(ctx.w.p.give_up) {
        // The customer gives up and pays another way.
        return;
    }
    let e = ctx.tx(at + rng.gen_range(0..30 * SEC), L, c, t, amount);
    ctx.push(e);
}

/// One PIN-mistype episode at a terminal with no other wrong PIN within an hour.
fn mistype(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let ts = ctx.day_start(d) + between(rng, 7 * HOUR, 22 * HOUR + 50 * MIN);
    for _ in 0..8 {
        let m = ctx.w.everyday_merchant(rng);
        let t = ctx.w.term_of(m, rng);
        if ctx.pin55_near(ctx.w.terms[t].tid, ts, 61 * MIN, 0) == 0 {
            let c = free_card(ctx, rng, ts, 90 * MIN);
            let times = if rng.gen_bool(0.75) { 1 } else { 2 };
            mistype_at(ctx, rng, c, t, ts, times);
            return;
        }
    }
}

/// A busy supermarket lane: several cards each mistype once over the day,
/// spaced ≥ 25 min so no 60-minute span has more than 3 of them. When the world
/// has busy lanes (`busy.rs`), their daily mistypes are this look-alike, every
/// day: a burst of mistypes at a quiet terminal would be a real departure from
/// its normal (what the terminal baseline model exists to flag), not benign.
fn supermarket_lane(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    if !ctx.w.busy.is_empty() {
        return;
    }
    let ds = ctx.day_start(d);
    for _ in 0..8 {
        let m = ctx.w.merchant_with(&[5411], rng);
        let t = ctx.w.term_of(m, rng);
        let tid = ctx.w.terms[t].tid;
        if ctx.pin55_near(tid, ds + 12 * HOUR, 12 * HOUR, 0) > 0 {
            continue;
        }
        let k = rng.gen_range(4..=10);
        let mut ts = ds + between(rng, 7 * HOUR + 30 * MIN, 9 * HOUR);
        for _ in 0..k {
            if ts > ds + 22 * HOUR + 40 * MIN {
                break;
            }
            let c = free_card(ctx, rng, ts, 90 * MIN);
            mistype_at(ctx, rng, c, t, ts, 1);
            ts += rng.gen_range(25 * MIN..50 * MIN);
        }
        return;
    }
}

/// 2-4 small contactless taps of one card at one merchant within 10 minutes,
/// total well below the CNY 1000 no-PIN limit.
fn small_taps(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let ts = ctx.day_start(d) + between(rng, 7 * HOUR, 22 * HOUR + 45 * MIN);
    let c = free_card(ctx, rng, ts, HOUR);
    let m = ctx.w.merchant_with(&[5411, 5814, 5812, 5999], rng);
    let t = ctx.w.term_of(m, rng);
    let mut at = ts;
    for _ in 0..rng.gen_range(2..=4) {
        let amount = rng.gen_range(1500..=4000);
        let e = ctx
            .tx(at, L, c, t, amount)
            .with_mode(EntryMode::Contactless, PinStatus::Absent);
        ctx.push(e);
        at += rng.gen_range(MIN..3 * MIN);
    }
}

/// Customer is slow at the PIN pad: timeout decline, then PIN entered, approved.
fn pin_timeout_retry(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let ts = ctx.day_start(d) + between(rng, 7 * HOUR, 22 * HOUR + 50 * MIN);
    let c = free_card(ctx, rng, ts, HOUR);
    let m = ctx.w.everyday_merchant(rng);
    let t = ctx.w.term_of(m, rng);
    let amount = ctx.w.card_amount(rng, ctx.w.merchants[m as usize].mcc, c);
    let e = ctx
        .tx(ts, L, c, t, amount)
        .with_mode(EntryMode::Chip, PinStatus::Timeout)
        .with_rc("05");
    ctx.push(e);
    let e = ctx.tx(ts + rng.gen_range(30 * SEC..120 * SEC), L, c, t, amount);
    ctx.push(e);
}

/// Approved PIN bypass below the CNY 1000 no-PIN limit.
fn small_bypass(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let ts = ctx.day_start(d) + between(rng, 7 * HOUR, 22 * HOUR + 55 * MIN);
    let c = free_card(ctx, rng, ts, HOUR);
    let m = ctx.w.everyday_merchant(rng);
    let t = ctx.w.term_of(m, rng);
    let amount = rng.gen_range(1000..=90_000);
    let e = ctx
        .tx(ts, L, c, t, amount)
        .with_mode(EntryMode::Chip, PinStatus::Bypassed);
    ctx.push(e);
}

/// A single hotel pre-auth cancelled a few hours later (booking change).
fn booking_change(ctx: &mut Ctx, rng: &mut ChaCha8Rng, d: i64) {
    let ts = ctx.day_start(d) + between(rng, 8 * HOUR, 16 * HOUR);
    let c = free_card(ctx, rng, ts, 8 * HOUR);
    let m = ctx.w.merchant_with(&[7011], rng);
    let t = ctx.w.term_of(m, rng);
    let amount = rng.gen_range(500..=3000) * 100;
    let a = ctx.new_auth_ref();
    let e = ctx
        .tx(ts, L, c, t, amount)
        .with_kind(EventType::Preauth)
        .with_auth(a);
    ctx.push(e);
    let cts = ts + rng.gen_range(HOUR..6 * HOUR);
    cancel(ctx, cts, L, c, t, amount, a);
}

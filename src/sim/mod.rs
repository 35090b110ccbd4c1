//! Deterministic traffic simulator for switchguard.
//!
//! Produces realistic POS switch events (terminal sign-on/off, auths,
//! pre-authorisations and their completions/cancels, reversals, refunds, QR
//! payments) for a synthetic world of cards, merchants and terminals, with
//! labelled fraud scenarios injected on top. Output is streamed day by day in
//! non-decreasing timestamp order (optionally with bounded disorder), so that
//! millions of events can be produced without holding them in memory.
//!
//! Same `SimConfig` ⇒ byte-identical output: all randomness comes from
//! `ChaCha8Rng` streams derived from the seed, and no hash-map iteration or
//! wall clock is involved.

mod attacks;
mod attacks_model;
mod attacks_preauth;
mod benign;
mod busy;
mod ctx;
mod lookalike;
pub mod params;
pub mod switch;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_model;
mod world;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub(crate) use ctx::{lbl, mix, splitmix, Ctx};
pub use params::WorldParams;
pub use world::luhn_valid;
use world::{DAY, HOUR};

/// All labels the simulator emits: "legit" followed by the scenario names.
/// The last [`MODEL_ONLY`] of them are the scenarios no default rule catches
/// (for the statistical models).
pub const LABELS: [&str; 18] = [
    "legit",
    "pin_consecutive_wrong",
    "pin_spread_terminals",
    "pin_probing_terminal",
    "pin_after_tries_exceeded",
    "nopin_walkaway",
    "nopin_bypass_over_limit",
    "nopin_contactless_split",
    "preauth_keyed_unusual_mcc",
    "completion_without_preauth",
    "completion_over_tolerance",
    "completion_late",
    "preauth_cancel_cycling",
    "terminal_not_signed_on",
    "qr_replay",
    "terminal_pin_drift",
    "merchant_bypass_drift",
    "card_spend_outlier",
];

/// Scenarios meant for the statistical models: no default rule catches them
/// (a subset of [`LABELS`], at its end).
pub const MODEL_ONLY: [&str; 3] = [
    "terminal_pin_drift",
    "merchant_bypass_drift",
    "card_spend_outlier",
];

/// Benign look-alikes of the model scenarios, as marked in `SimEvent::lookalike` (every legit
/// event at a busy lane or cold-start terminal, of a big spender's card, or at a merchant on a
/// day of its traffic surge). Evaluation counts an alert on any of them as a false alarm on a
/// look-alike instance (the terminal, card or merchant).
pub const LOOKALIKES: [&str; 4] = [
    ctx::LOOK_BUSY_LANE,
    ctx::LOOK_COLD_START,
    ctx::LOOK_SURGE,
    ctx::LOOK_BIG_SPENDER,
];

/// Parameters of one simulation run; the whole output is a pure function of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// RNG seed.
    pub seed: u64,
    /// Number of cards in the population.
    pub cards: usize,
    /// Number of simulated days.
    pub days: u32,
    /// Number of normal terminals (about terminals/2 merchants).
    pub terminals: usize,
    /// Epoch millis of day 0, local midnight at UTC+08:00.
    pub start_ms: i64,
    /// Multiplier on the number of injected attack instances (0 = none).
    pub attack_rate: f64,
    /// Maximum lateness (ms) of an event relative to its sorted position.
    pub disorder_ms: i64,
    /// What the world looks like (merchant mix, busy lanes, spending, feed, variants).
    pub world: WorldParams,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            cards: 10_000,
            days: 7,
            terminals: 2_000,
            start_ms: chrono::DateTime::parse_from_rfc3339("2026-10-01T00:00:00+08:00")
                .map(|t| t.timestamp_millis())
                .unwrap_or(1_790_784_000_000),
            attack_rate: 1.0,
            disorder_ms: 0,
            world: WorldParams::default(),
        }
    }
}

/// Message type of a switch event (JSON field `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Auth,
    Preauth,
    Completion,
    PreauthCancel,
    Reversal,
    Refund,
    Transfer,
    SignOn,
    SignOff,
}

impl EventType {
    /// True for card (financial) messages, false for terminal sign-on/off.
    pub fn is_financial(self) -> bool {
        !matches!(self, EventType::SignOn | EventType::SignOff)
    }
}

/// How the card data was captured (JSON field `entry_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryMode {
    Chip,
    Contactless,
    Magstripe,
    Fallback,
    Manual,
    Ecom,
    CardOnFile,
    Qr,
    Unknown,
}

/// Cardholder PIN verification outcome (JSON field `pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinStatus {
    Entered,
    Absent,
    Bypassed,
    Timeout,
}

/// One switch event as delivered to the engine; serializes to the JSONL
/// contract (None fields are omitted, `ts_ms` is not serialized).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimEvent {
    /// Epoch millis of `ts`, for ordering; not part of the JSON.
    #[serde(skip)]
    pub ts_ms: i64,
    pub id: String,
    pub ts: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub terminal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub merchant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mcc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entry_mode: Option<EntryMode>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pin: Option<PinStatus>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub original_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qr_ref: Option<String>,
    pub label: String,
    /// Look-alike markers of a legit event (see [`LOOKALIKES`]), comma-separated; for
    /// evaluation only, like `label` (the decoder ignores it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lookalike: Option<String>,
}

/// Output stage: passes events through, or applies bounded disorder.
struct Emitter<'s> {
    sink: &'s mut dyn FnMut(SimEvent),
    disorder: i64,
    rng: ChaCha8Rng,
    buf: BinaryHeap<Reverse<Keyed>>,
    order: u64,
    /// Share of events sent twice, and the copies waiting: (events still to pass, copy).
    resend: f64,
    resends: Vec<(u32, SimEvent)>,
}

/// An event in the disorder buffer, released in (key, order) order.
struct Keyed {
    key: i64,
    order: u64,
    ev: SimEvent,
}

impl PartialEq for Keyed {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.order) == (o.key, o.order)
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.key, self.order).cmp(&(o.key, o.order))
    }
}

impl Emitter<'_> {
    /// Emit `ev`; a resent copy follows it 1-20 events later (same id and time: the switch
    /// resending after a timeout).
    fn push(&mut self, ev: SimEvent) {
        if self.resend > 0.0 && self.rng.gen_bool(self.resend) {
            let after = self.rng.gen_range(1..=20);
            self.resends.push((after, ev.clone()));
        }
        self.place(ev);
        let mut due = Vec::new();
        self.resends.retain_mut(|(n, e)| {
            *n -= 1;
            if *n == 0 {
                due.push(e.clone());
            }
            *n > 0
        });
        for e in due {
            self.place(e);
        }
    }

    fn place(&mut self, ev: SimEvent) {
        if self.disorder <= 0 {
            (self.sink)(ev);
            return;
        }
        let ts = ev.ts_ms;
        let key = ts + self.rng.gen_range(0..=self.disorder);
        self.order += 1;
        self.buf.push(Reverse(Keyed {
            key,
            order: self.order,
            ev,
        }));
        // Every later input has ts >= `ts`, hence key >= `ts`.
        while self.buf.peek().is_some_and(|k| k.0.key <= ts) {
            let k = self.buf.pop().map(|r| r.0.ev);
            if let Some(ev) = k {
                (self.sink)(ev);
            }
        }
    }

    fn finish(&mut self) {
        for (_, e) in std::mem::take(&mut self.resends) {
            self.place(e);
        }
        while let Some(Reverse(k)) = self.buf.pop() {
            (self.sink)(k.ev);
        }
    }
}

/// Generates the whole run, calling `sink` once per event in non-decreasing
/// `ts` order (ties by creation order), or with bounded disorder when
/// `cfg.disorder_ms > 0`. Memory is bounded by about one day of traffic.
pub fn generate(cfg: &SimConfig, sink: &mut dyn FnMut(SimEvent)) {
    let mut ctx = Ctx::new(cfg);
    let mut out = Emitter {
        sink,
        disorder: cfg.disorder_ms,
        rng: ChaCha8Rng::seed_from_u64(mix(cfg.seed, 2)),
        buf: BinaryHeap::new(),
        order: 0,
        resend: cfg.world.resend,
        resends: Vec::new(),
    };
    let with_cards = cfg.cards >= 16;
    if with_cards && cfg.days > 0 {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 1));
        attacks::plan(&mut ctx, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 4));
        attacks_model::plan(&mut ctx, &mut rng);
    }
    for d in 0..cfg.days as i64 {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 1000 + d as u64));
        let ds = ctx.day_start(d);
        ctx.day_end = ds + DAY;
        ctx.prune(ds - 2 * HOUR);
        benign::legit_day(&mut ctx, d, &mut rng);
        attacks_model::bypass_day(&mut ctx, d);
        lookalike::surge_day(&mut ctx, d);
        let mut today = std::mem::take(&mut ctx.today);
        while ctx.heap.peek().is_some_and(|e| e.0.ts < ctx.day_end) {
            if let Some(Reverse(e)) = ctx.heap.pop() {
                today.push(e);
            }
        }
        today.sort_unstable();
        for e in today.drain(..) {
            out.push(ctx.materialize(&e));
        }
        ctx.today = today;
    }
    out.finish();
}

/// Writes the run as JSON Lines to `w`; returns the number of events written.
pub fn write_jsonl(cfg: &SimConfig, w: &mut impl std::io::Write) -> std::io::Result<u64> {
    let mut bw = std::io::BufWriter::with_capacity(1 << 16, w);
    let mut n = 0u64;
    let mut err: Option<std::io::Error> = None;
    let mut line = Vec::with_capacity(512);
    generate(cfg, &mut |ev| {
        if err.is_some() {
            return;
        }
        line.clear();
        let r = serde_json::to_writer(&mut line, &ev)
            .map_err(std::io::Error::from)
            .and_then(|_| {
                line.push(b'\n');
                bw.write_all(&line)
            });
        match r {
            Ok(()) => n += 1,
            Err(e) => err = Some(e),
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    std::io::Write::flush(&mut bw)?;
    Ok(n)
}

//! Generation state of the simulator: the compact internal event (`Ev`),
//! label indices, the shared context (`Ctx`) with id counters, the
//! future-event heap, the per-card reservation and per-terminal wrong-PIN
//! registries, and the formatting that turns an `Ev` into a `SimEvent`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::world::{World, DAY, HOUR};
use super::{EntryMode, EventType, PinStatus, SimConfig, SimEvent, LABELS};

/// Compact internal event (no strings) used while generating; turned into a
/// `SimEvent` only when emitted, to keep memory and allocation low.
/// Zero / negative numeric fields mean "absent".
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub ts: i64,
    pub seq: u64,
    pub kind: EventType,
    pub pan: u64,
    pub tid: u32,
    pub mid: u64,
    pub mcc: u16,
    pub amount: i64,
    pub entry: Option<EntryMode>,
    pub pin: Option<PinStatus>,
    pub rc: Option<&'static str>,
    pub auth_ref: u64,
    pub original: u64,
    pub batch: u32,
    pub qr: u64,
    pub label: u8,
}

impl Ev {
    pub fn with_kind(mut self, k: EventType) -> Self {
        self.kind = k;
        self
    }
    pub fn with_amount(mut self, a: i64) -> Self {
        self.amount = a;
        self
    }
    pub fn with_mode(mut self, e: EntryMode, p: PinStatus) -> Self {
        self.entry = Some(e);
        self.pin = Some(p);
        self
    }
    pub fn with_rc(mut self, rc: &'static str) -> Self {
        self.rc = Some(rc);
        self
    }
    pub fn with_auth(mut self, a: u64) -> Self {
        self.auth_ref = a;
        self
    }
    pub fn with_qr(mut self, q: u64) -> Self {
        self.qr = q;
        self
    }
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        self.ts == o.ts && self.seq == o.seq
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// Look-alike markers (`SimEvent::lookalike`), see `LOOKALIKES`.
pub(crate) const LOOK_BUSY_LANE: &str = "busy_lane";
pub(crate) const LOOK_COLD_START: &str = "cold_start_terminal";
pub(crate) const LOOK_SURGE: &str = "merchant_surge";
pub(crate) const LOOK_BIG_SPENDER: &str = "big_spender";

/// Label index constants (positions in `LABELS`).
pub(crate) mod lbl {
    pub const LEGIT: u8 = 0;
    pub const PIN_CONSECUTIVE_WRONG: u8 = 1;
    pub const PIN_SPREAD_TERMINALS: u8 = 2;
    pub const PIN_PROBING_TERMINAL: u8 = 3;
    pub const PIN_AFTER_TRIES_EXCEEDED: u8 = 4;
    pub const NOPIN_WALKAWAY: u8 = 5;
    pub const NOPIN_BYPASS_OVER_LIMIT: u8 = 6;
    pub const NOPIN_CONTACTLESS_SPLIT: u8 = 7;
    pub const PREAUTH_KEYED_UNUSUAL_MCC: u8 = 8;
    pub const COMPLETION_WITHOUT_PREAUTH: u8 = 9;
    pub const COMPLETION_OVER_TOLERANCE: u8 = 10;
    pub const COMPLETION_LATE: u8 = 11;
    pub const PREAUTH_CANCEL_CYCLING: u8 = 12;
    pub const TERMINAL_NOT_SIGNED_ON: u8 = 13;
    pub const QR_REPLAY: u8 = 14;
    pub const TERMINAL_PIN_DRIFT: u8 = 15;
    pub const MERCHANT_BYPASS_DRIFT: u8 = 16;
    pub const CARD_SPEND_OUTLIER: u8 = 17;
}

/// Mutable generation state shared by the benign and attack generators:
/// the world, id counters, the future-event heap, the current day's buffer
/// and the registries that keep legit traffic from forming attack patterns.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a SimConfig,
    pub w: World,
    seq: u64,
    auth_seq: u64,
    qr_seq: u64,
    pub heap: BinaryHeap<Reverse<Ev>>,
    pub today: Vec<Ev>,
    /// Events with ts < day_end go to `today`, later ones to `heap`.
    pub day_end: i64,
    /// card index → time windows reserved for an attack / look-alike.
    blocks: BTreeMap<u32, Vec<(i64, i64)>>,
    /// tid → (ts, pan) of every wrong-PIN ("55") placed so far.
    pin55: BTreeMap<u32, Vec<(i64, u64)>>,
    /// Planned `merchant_bypass_drift` days: (merchant index, day, target share, variant).
    pub bypass_drift: Vec<(u32, i64, f64, u8)>,
    /// Look-alike markers: TID → busy lane or cold-start terminal, PAN → big spender, and
    /// the (merchant id, day) pairs of merchant traffic surges.
    look_terms: rustc_hash::FxHashMap<u32, &'static str>,
    look_cards: rustc_hash::FxHashSet<u64>,
    pub surges: rustc_hash::FxHashSet<(u64, i64)>,
}

impl<'a> Ctx<'a> {
    pub fn new(cfg: &'a SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed, 0));
        let mut w = World::build(cfg.cards, cfg.terminals, &cfg.world, &mut rng);
        w.busy = super::busy::pick_lanes(&w, cfg.seed);
        let cold = super::busy::add_cold_starts(&mut w, cfg.seed, cfg.days);
        w.busy.extend(cold);
        let look_terms = w
            .busy
            .iter()
            .map(|l| {
                let kind = if l.cold {
                    LOOK_COLD_START
                } else {
                    LOOK_BUSY_LANE
                };
                (w.terms[l.term].tid, kind)
            })
            .collect();
        let look_cards = w
            .big_spenders
            .iter()
            .map(|c| w.cards[*c as usize].pan)
            .collect();
        Ctx {
            cfg,
            w,
            seq: 0,
            auth_seq: 0,
            qr_seq: 0,
            heap: BinaryHeap::new(),
            today: Vec::new(),
            day_end: i64::MIN,
            blocks: BTreeMap::new(),
            pin55: BTreeMap::new(),
            bypass_drift: Vec::new(),
            look_terms,
            look_cards,
            surges: Default::default(),
        }
    }

    /// The look-alike markers of a legit event (comma-separated), if any.
    fn lookalike(&self, e: &Ev) -> Option<String> {
        if e.label != lbl::LEGIT {
            return None;
        }
        let mut v: Vec<&str> = Vec::new();
        if let Some(k) = self.look_terms.get(&e.tid) {
            v.push(k);
        }
        let day = (e.ts - self.cfg.start_ms).div_euclid(DAY);
        if e.mid != 0 && self.surges.contains(&(e.mid, day)) {
            v.push(LOOK_SURGE);
        }
        if e.pan != 0 && self.look_cards.contains(&e.pan) {
            v.push(LOOK_BIG_SPENDER);
        }
        (!v.is_empty()).then(|| v.join(","))
    }

    /// Epoch millis of local midnight of day `d` (may be negative).
    pub fn day_start(&self, d: i64) -> i64 {
        self.cfg.start_ms + d * DAY
    }

    /// Batch number terminal `t` got at its sign-on on day `d`.
    pub fn batch(&self, t: usize, d: i64) -> u32 {
        (self.w.terms[t].batch_base as i64 + d).max(1) as u32
    }

    /// Next creation sequence number (event ids and tie-breaks).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A bare event with a fresh sequence number.
    pub fn new_ev(&mut self, ts: i64, kind: EventType, label: u8) -> Ev {
        Ev {
            ts,
            seq: self.next_seq(),
            kind,
            pan: 0,
            tid: 0,
            mid: 0,
            mcc: 0,
            amount: -1,
            entry: None,
            pin: None,
            rc: None,
            auth_ref: 0,
            original: 0,
            batch: 0,
            qr: 0,
            label,
        }
    }

    /// An approved chip+PIN auth of `card` at normal terminal `t`; the batch is
    /// that of the terminal's last regular sign-on (sign-ons are before 07:00).
    pub fn tx(&mut self, ts: i64, label: u8, card: u32, t: usize, amount: i64) -> Ev {
        let term = &self.w.terms[t];
        let m = &self.w.merchants[term.merchant as usize];
        let (tid, mid, mcc) = (term.tid, m.mid, m.mcc);
        let d = (ts - 7 * HOUR - self.cfg.start_ms).div_euclid(DAY);
        let batch = self.batch(t, d);
        let pan = self.w.cards[card as usize].pan;
        let mut e = self.new_ev(ts, EventType::Auth, label);
        e.pan = pan;
        e.tid = tid;
        e.mid = mid;
        e.mcc = mcc;
        e.batch = batch;
        e.with_amount(amount)
            .with_mode(EntryMode::Chip, PinStatus::Entered)
            .with_rc("00")
    }

    /// Routes an event to today's buffer or the future heap.
    pub fn push(&mut self, e: Ev) {
        if e.ts < self.day_end {
            self.today.push(e);
        } else {
            self.heap.push(Reverse(e));
        }
    }

    pub fn new_auth_ref(&mut self) -> u64 {
        self.auth_seq += 1;
        self.auth_seq
    }

    pub fn new_qr(&mut self) -> u64 {
        self.qr_seq += 1;
        self.qr_seq
    }

    /// True when `card` has a reserved window overlapping [t0, t1].
    pub fn blocked(&self, card: u32, t0: i64, t1: i64) -> bool {
        self.blocks
            .get(&card)
            .is_some_and(|v| v.iter().any(|&(a, b)| a <= t1 && t0 <= b))
    }

    /// Reserves [t0, t1] of `card` (normal traffic and look-alikes avoid it).
    pub fn block(&mut self, card: u32, t0: i64, t1: i64) {
        self.blocks.entry(card).or_default().push((t0, t1));
    }

    /// A random card free over [t0, t1]; it is then reserved with `margin`.
    pub fn pick_card(&mut self, rng: &mut ChaCha8Rng, t0: i64, t1: i64, margin: i64) -> u32 {
        let n = self.w.cards.len();
        let mut c = rng.gen_range(0..n) as u32;
        let mut tries = 0;
        while self.blocked(c, t0 - margin, t1 + margin) && tries < n.min(200) {
            c = if tries < 30 {
                rng.gen_range(0..n) as u32
            } else {
                (c + 1) % n as u32
            };
            tries += 1;
        }
        self.block(c, t0 - margin, t1 + margin);
        c
    }

    /// Merchant `m`'s usual probability of pushing an approved chip payment
    /// through with the PIN bypassed: stable per merchant, 0.5-3.5 %.
    pub fn bypass_share(&self, m: u32) -> f64 {
        let h = mix(mix(self.cfg.seed, 11), u64::from(m));
        0.005 + 0.03 * ((h >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Number of wrong-PIN events at `tid` within ±`win` of `ts` by other PANs.
    pub fn pin55_near(&self, tid: u32, ts: i64, win: i64, pan: u64) -> usize {
        self.pin55.get(&tid).map_or(0, |v| {
            v.iter()
                .filter(|&&(t, p)| p != pan && (t - ts).abs() <= win)
                .count()
        })
    }

    pub fn add_pin55(&mut self, tid: u32, ts: i64, pan: u64) {
        self.pin55.entry(tid).or_default().push((ts, pan));
    }

    /// Forgets registry entries that ended before `before`.
    pub fn prune(&mut self, before: i64) {
        self.blocks.retain(|_, v| {
            v.retain(|&(_, b)| b >= before);
            !v.is_empty()
        });
        self.pin55.retain(|_, v| {
            v.retain(|&(t, _)| t >= before);
            !v.is_empty()
        });
    }

    /// Turns a compact event into its public, string-carrying form.
    pub fn materialize(&self, e: &Ev) -> SimEvent {
        let has_amt = e.amount >= 0;
        SimEvent {
            ts_ms: e.ts,
            id: fmt_id(e.seq),
            ts: if self.cfg.world.mixed_ts {
                fmt_ts_mixed(e.ts, splitmix(e.seq ^ mix(self.cfg.seed, 13)))
            } else {
                fmt_ts(e.ts)
            },
            kind: e.kind,
            pan: (e.pan != 0).then(|| e.pan.to_string()),
            terminal: (e.tid != 0).then(|| format!("T{:07}", e.tid)),
            merchant: (e.mid != 0).then(|| fmt_mid(e.mid)),
            mcc: (e.mcc != 0).then(|| format!("{:04}", e.mcc)),
            amount: has_amt.then_some(e.amount),
            currency: has_amt.then(|| "CNY".to_string()),
            entry_mode: e.entry,
            pin: e.pin,
            response_code: e.rc.map(str::to_string),
            auth_ref: (e.auth_ref != 0).then(|| fmt_auth_ref(self.cfg.seed, e.auth_ref)),
            original_id: (e.original != 0).then(|| fmt_id(e.original)),
            batch: (e.batch != 0).then(|| format!("{:06}", e.batch % 1_000_000)),
            qr_ref: (e.qr != 0)
                .then(|| format!("QR{:016X}", splitmix(e.qr ^ mix(self.cfg.seed, 7)))),
            label: LABELS[e.label as usize].to_string(),
            lookalike: self.lookalike(e),
        }
    }
}

/// SplitMix64: the output for state `z` (a bijective scrambler on u64); the generator's next
/// state is `z + 0x9E37_79B9_7F4A_7C15`.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives an independent sub-seed for stream `k`.
pub(crate) fn mix(seed: u64, k: u64) -> u64 {
    splitmix(seed ^ splitmix(k.wrapping_add(0x5151)))
}

/// A merchant id in UnionPay's 15-character shape (`898`, area, MCC, sequence) with a letter
/// before the sequence: fifteen digits in a row would be indistinguishable from a PAN, and the
/// decoder tokenises every PAN-shaped run (README "PAN protection").
fn fmt_mid(mid: u64) -> String {
    format!("{:011}M{:04}", mid / 10_000, mid % 10_000)
}

fn fmt_id(seq: u64) -> String {
    format!("e{seq:010}")
}

/// 6-char alphanumeric auth code followed by a 12-digit RRN.
fn fmt_auth_ref(seed: u64, n: u64) -> String {
    const ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h = splitmix(n ^ mix(seed, 9));
    let mut s = String::with_capacity(18);
    for _ in 0..6 {
        s.push(ALNUM[(h % 36) as usize] as char);
        h /= 36;
    }
    let _ = write!(s, "{:012}", n % 1_000_000_000_000);
    s
}

/// RFC 3339 local time at +08:00 with milliseconds.
pub(crate) fn fmt_ts(ts_ms: i64) -> String {
    let local = ts_ms + 8 * HOUR;
    let days = local.div_euclid(DAY);
    let ms = local.rem_euclid(DAY);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = String::with_capacity(29);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+08:00",
        year,
        month,
        day,
        ms / HOUR,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    s
}

/// The same instant in one of three formats (a messy feed): `+08:00` local time, UTC with `Z`,
/// or UTC with `+00:00`, chosen by `pick`.
pub(crate) fn fmt_ts_mixed(ts_ms: i64, pick: u64) -> String {
    match pick % 3 {
        0 => fmt_ts(ts_ms),
        k => {
            let local = fmt_ts(ts_ms - 8 * HOUR);
            let body = &local[..local.len() - 6];
            format!("{body}{}", if k == 1 { "Z" } else { "+00:00" })
        }
    }
}

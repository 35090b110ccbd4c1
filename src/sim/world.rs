//! World setup for the traffic simulator: the card population, the merchants
//! with their MCCs and the POS terminals installed at them, plus the small
//! numeric helpers (Luhn, random distributions, time-of-day picks) that the
//! benign and attack generators share.
//!
//! Everything is stored in flat `Vec`s indexed by integer ids so that setup
//! stays linear in the number of cards and terminals.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::params::WorldParams;

/// One day in milliseconds.
pub(crate) const DAY: i64 = 86_400_000;
/// One hour in milliseconds.
pub(crate) const HOUR: i64 = 3_600_000;
/// One minute in milliseconds.
pub(crate) const MIN: i64 = 60_000;
/// One second in milliseconds.
pub(crate) const SEC: i64 = 1_000;

/// UnionPay-style BINs and the PAN length issued under each.
const BINS: [(u64, u32); 5] = [
    (622_588, 16),
    (621_700, 19),
    (625_807, 16),
    (623_456, 16),
    (623_456, 19),
];

/// First TID number of the normal terminal fleet ("T1000000"); each world's id space starts
/// `ID_SPACE_SIZE` further on.
pub(crate) const TID_BASE: u32 = 1_000_000;
/// Terminals of one world's id space (TIDs of space k: T(1+k)000000..).
pub(crate) const ID_SPACE_SIZE: u32 = 1_000_000;
/// First TID number used for rogue terminals that never sign on.
pub(crate) const ROGUE_TID_BASE: u32 = 9_000_000;

/// A payment card: why it exists — every card event carries its PAN, and
/// cards have habitual ("home") merchants and an individual activity level.
#[derive(Debug, Clone)]
pub(crate) struct Card {
    pub pan: u64,
    pub home: [u32; 3],
    pub activity: f32,
    /// How much this cardholder spends relative to others at the same shop (log-normal,
    /// mean ~1): people have habits, so a card's amounts are tighter than the population's.
    pub scale: f32,
}

/// A merchant (MID + MCC) owning a contiguous run of terminals; exists so
/// that completions, refunds and attacks can stay "at the same merchant".
#[derive(Debug, Clone)]
pub(crate) struct Merchant {
    pub mid: u64,
    pub mcc: u16,
    pub term_start: u32,
    pub term_count: u32,
}

/// A POS terminal of the normal fleet; carries the data needed to derive its
/// daily sign-on batch number and whether it signs off at night.
#[derive(Debug, Clone)]
pub(crate) struct Terminal {
    pub tid: u32,
    pub merchant: u32,
    pub batch_base: u32,
    pub signs_off: bool,
    /// Day it is installed (0: there from the start; later: a cold-start terminal).
    pub from_day: i64,
}

/// The static simulated world, built once per run from the seed.
#[derive(Debug)]
pub(crate) struct World {
    pub cards: Vec<Card>,
    pub merchants: Vec<Merchant>,
    pub terms: Vec<Terminal>,
    /// Merchants suitable as everyday "home" merchants (no hotels/rentals).
    pub everyday: Vec<u32>,
    /// Merchant ids per entry of the world's MCC mix (same index).
    pub by_mcc: Vec<Vec<u32>>,
    /// Busy checkout lanes and cold-start terminals (set after building, from their own RNG
    /// stream).
    pub busy: Vec<super::busy::BusyLane>,
    /// Cards that make large purchases as a matter of course (a high-value home merchant).
    pub big_spenders: Vec<u32>,
    /// Merchants of the fleet (those after them are cold-start shops, which only their own
    /// walk-ins visit).
    pub fleet_merchants: u32,
    /// The world's parameters.
    pub p: WorldParams,
}

/// The merchants and terminals of a world, as [`World::build`] makes them.
struct Shops {
    merchants: Vec<Merchant>,
    terms: Vec<Terminal>,
    by_mcc: Vec<Vec<u32>>,
    everyday: Vec<u32>,
}

impl Shops {
    /// Merchants with 1–5 terminals each (`p.terminals_per_merchant`) until there are
    /// `terminals`, their MCCs drawn from `p.mcc_mix`.
    fn build(terminals: usize, p: &WorldParams, rng: &mut ChaCha8Rng) -> Shops {
        // TIDs of id space k: T(1+k)000000..; the T9xxxxxx range is reserved for rogue
        // terminals. Room is left for the cold-start terminals added later.
        let n_terms = terminals.clamp(1, ID_SPACE_SIZE as usize / 2);
        let mix = &p.mcc_mix;
        let mut s = Shops {
            merchants: Vec::with_capacity(n_terms / 2 + 1),
            terms: Vec::with_capacity(n_terms),
            by_mcc: vec![Vec::new(); mix.len()],
            everyday: Vec::new(),
        };
        let tid_base = TID_BASE + p.id_space * ID_SPACE_SIZE;
        while s.terms.len() < n_terms {
            let i = s.merchants.len();
            // The first merchants cover every MCC so small worlds still have all kinds.
            let mi = if i < mix.len() { i } else { pick_mcc(mix, rng) };
            let mcc = mix[mi].0;
            let want = terminals_wanted(&p.terminals_per_merchant, rng);
            let count = want.min(n_terms - s.terms.len()) as u32;
            let start = s.terms.len() as u32;
            for _ in 0..count {
                s.terms.push(Terminal {
                    tid: tid_base + s.terms.len() as u32,
                    merchant: i as u32,
                    batch_base: rng.gen_range(100..800_000),
                    signs_off: rng.gen_bool(0.3),
                    from_day: 0,
                });
            }
            s.merchants.push(Merchant {
                mid: mid_of(p.id_space, i, mcc),
                mcc,
                term_start: start,
                term_count: count,
            });
            s.by_mcc[mi].push(i as u32);
            if mcc != 7011 && mcc != 7512 {
                s.everyday.push(i as u32);
            }
        }
        if s.everyday.is_empty() {
            s.everyday.push(0);
        }
        s
    }
}

/// An index into the MCC mix, drawn by weight.
fn pick_mcc(mix: &[(u16, u32)], rng: &mut ChaCha8Rng) -> usize {
    let total_w: u32 = mix.iter().map(|m| m.1).sum::<u32>().max(1);
    let mut r = rng.gen_range(0..total_w);
    mix.iter()
        .position(|m| {
            if r < m.1 {
                true
            } else {
                r -= m.1;
                false
            }
        })
        .unwrap_or(0)
}

/// How many terminals a merchant has (1–5, by the weights; 5 if they are all zero).
fn terminals_wanted(weights: &[u32], rng: &mut ChaCha8Rng) -> usize {
    let tpm_w: u32 = weights.iter().sum::<u32>().max(1);
    let mut r = rng.gen_range(0..tpm_w);
    for (k, w) in weights.iter().enumerate() {
        if r < *w {
            return k + 1;
        }
        r -= w;
    }
    5
}

impl World {
    /// Builds cards, merchants and terminals; linear in their counts.
    pub fn build(cards: usize, terminals: usize, p: &WorldParams, rng: &mut ChaCha8Rng) -> World {
        let shops = Shops::build(terminals, p, rng);
        let mut w = World {
            cards: Vec::new(),
            merchants: shops.merchants,
            terms: shops.terms,
            everyday: shops.everyday,
            by_mcc: shops.by_mcc,
            busy: Vec::new(),
            big_spenders: Vec::new(),
            fleet_merchants: 0,
            p: p.clone(),
        };
        w.fleet_merchants = w.merchants.len() as u32;
        w.cards = w.build_cards(cards, rng);
        w
    }

    /// `cards` cards with distinct valid PANs, their regular shops and spending; marks the big
    /// spenders.
    fn build_cards(&mut self, cards: usize, rng: &mut ChaCha8Rng) -> Vec<Card> {
        let acct_off: u64 = rng.gen_range(0..1_000_000_000);
        let mut cv = Vec::with_capacity(cards);
        for c in 0..cards {
            let (bin, len) = BINS[rng.gen_range(0..BINS.len())];
            let k = len - 7; // account digits between BIN and check digit
            let modulus = 10u64.pow(k);
            // Multiplier coprime with 10: a bijection on the account space.
            let acct = (c as u64 * 2_654_435_761 + acct_off) % modulus;
            let body = bin * modulus + acct;
            let pan = body * 10 + luhn_digit(body);
            let mut home = [0u32; 3];
            for h in home.iter_mut() {
                *h = self.everyday[rng.gen_range(0..self.everyday.len())];
            }
            let z = normal(rng);
            let sigma = self.p.activity_sigma;
            // Log-normal with mean ~1.
            let activity = (sigma * z - sigma * sigma / 2.0).exp() as f32;
            if rng.gen_bool(self.p.big_spender_share) {
                // A big spender: one of its regular shops sells jewellery or electronics.
                home[2] = self.merchant_with(&HIGH_VALUE, rng);
                self.big_spenders.push(c as u32);
            }
            let cs = self.p.card_sigma;
            let scale = (cs * normal(rng) - cs * cs / 2.0).exp() as f32;
            cv.push(Card {
                pan,
                home,
                activity,
                scale,
            });
        }
        cv
    }

    /// A purchase amount at a merchant of `mcc` in this world by anyone (minor units):
    /// log-normal around the MCC's median with the spread of the whole population.
    pub fn amount(&self, rng: &mut ChaCha8Rng, mcc: u16) -> i64 {
        let p = &self.p;
        let sigma = (p.amount_sigma * p.amount_sigma + p.card_sigma * p.card_sigma).sqrt();
        let factor = (sigma * normal(rng)).exp();
        self.finish(rng, mcc, factor)
    }

    /// A purchase amount of card `c` at a merchant of `mcc`: around the MCC's median times the
    /// card's own scale, with the per-purchase spread; some baskets are five times larger.
    pub fn card_amount(&self, rng: &mut ChaCha8Rng, mcc: u16, c: u32) -> i64 {
        let p = &self.p;
        let own = self.cards[c as usize].scale as f64 * (p.amount_sigma * normal(rng)).exp();
        self.finish(rng, mcc, own)
    }

    fn finish(&self, rng: &mut ChaCha8Rng, mcc: u16, factor: f64) -> i64 {
        let p = &self.p;
        let mut a = median_amount(mcc) * p.amount_scale * factor;
        if BASKET_MCC.contains(&mcc) && rng.gen_bool(p.big_basket) {
            a *= 5.0;
        }
        let mut a = (a as i64).clamp(100, 50_000_000);
        if rng.gen_bool(0.5) {
            a = (a / 100).max(1) * 100;
        }
        a
    }

    /// Is terminal `t` installed on day `d`?
    pub fn installed(&self, t: usize, d: i64) -> bool {
        self.terms[t].from_day <= d
    }

    /// A random terminal index of merchant `m`.
    pub fn term_of(&self, m: u32, rng: &mut ChaCha8Rng) -> usize {
        let mm = &self.merchants[m as usize];
        (mm.term_start + rng.gen_range(0..mm.term_count)) as usize
    }

    /// A random merchant whose MCC is in `mccs`, falling back to any merchant.
    pub fn merchant_with(&self, mccs: &[u16], rng: &mut ChaCha8Rng) -> u32 {
        let lists: Vec<&Vec<u32>> = self
            .p
            .mcc_mix
            .iter()
            .zip(&self.by_mcc)
            .filter(|(m, l)| mccs.contains(&m.0) && !l.is_empty())
            .map(|(_, l)| l)
            .collect();
        let total: usize = lists.iter().map(|l| l.len()).sum();
        if total == 0 {
            return self.any_merchant(rng);
        }
        let mut r = rng.gen_range(0..total);
        for l in lists {
            if r < l.len() {
                return l[r];
            }
            r -= l.len();
        }
        0
    }

    /// A random merchant of the fleet (never a cold-start shop before it opens).
    pub fn any_merchant(&self, rng: &mut ChaCha8Rng) -> u32 {
        rng.gen_range(0..self.fleet_merchants.max(1))
    }

    /// A random everyday (non-hotel, non-rental) merchant.
    pub fn everyday_merchant(&self, rng: &mut ChaCha8Rng) -> u32 {
        self.everyday[rng.gen_range(0..self.everyday.len())]
    }
}

/// Luhn check digit for a PAN body (all digits except the check digit).
pub(crate) fn luhn_digit(body: u64) -> u64 {
    let mut sum = 0;
    let mut n = body;
    let mut dbl = true;
    while n > 0 {
        let mut d = n % 10;
        n /= 10;
        if dbl {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        dbl = !dbl;
    }
    (10 - sum % 10) % 10
}

/// True when `s` is all digits and passes the Luhn check.
pub fn luhn_valid(s: &str) -> bool {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in s.bytes().rev().enumerate() {
        let mut d = (b - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// Standard normal sample (Box–Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Poisson sample (Knuth; fine for the small rates used here).
pub(crate) fn poisson(rng: &mut ChaCha8Rng, lam: f64) -> u32 {
    let l = (-lam).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.gen::<f64>();
        if p <= l || k >= 64 {
            return k;
        }
        k += 1;
    }
}

/// Relative shop traffic per local hour from 07 to 22.
pub(crate) const HOUR_W: [u32; 16] = [3, 5, 5, 6, 9, 10, 7, 5, 5, 6, 9, 10, 9, 7, 4, 3];

/// Offset into the day (ms since local midnight) following the daily traffic
/// curve, between 07:00 and 22:55.
pub(crate) fn shop_time(rng: &mut ChaCha8Rng) -> i64 {
    let total: u32 = HOUR_W.iter().sum();
    let mut r = rng.gen_range(0..total);
    let mut h = 0;
    for (i, w) in HOUR_W.iter().enumerate() {
        if r < *w {
            h = i;
            break;
        }
        r -= w;
    }
    let span = if h == 15 { 55 * MIN } else { HOUR };
    (7 + h as i64) * HOUR + rng.gen_range(0..span)
}

/// Uniform offset into the day between `from` and `to` (ms since midnight).
pub(crate) fn between(rng: &mut ChaCha8Rng, from: i64, to: i64) -> i64 {
    rng.gen_range(from..to.max(from + 1))
}

/// The median purchase at a merchant of `mcc` (minor units).
pub(crate) fn median_amount(mcc: u16) -> f64 {
    match mcc {
        5411 => 9_000.0,
        5812 => 12_000.0,
        5541 => 25_000.0,
        5311 => 30_000.0,
        5732 => 80_000.0,
        7011 => 60_000.0,
        7512 => 50_000.0,
        4121 => 3_500.0,
        5814 => 4_000.0,
        5944 => 150_000.0,
        _ => 8_000.0,
    }
}

/// Shops where a basket can be five times the usual (a big weekly shop, a party): groceries,
/// restaurants, fast food, misc retail (not a fuel tank or a taxi ride).
pub(crate) const BASKET_MCC: [u16; 4] = [5411, 5812, 5814, 5999];

/// High-value retail MCCs (jewellery, electronics, department stores).
pub(crate) const HIGH_VALUE: [u16; 3] = [5944, 5732, 5311];

/// The merchant id of merchant `i` of MCC `mcc` in id space `space`.
pub(crate) fn mid_of(space: u32, i: usize, mcc: u16) -> u64 {
    let area = 1000 + (i as u64 / 10_000) % 9000;
    (898 - space as u64) * 1_000_000_000_000
        + area * 100_000_000
        + mcc as u64 * 10_000
        + i as u64 % 10_000
}

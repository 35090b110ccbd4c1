//! A bounded memo of PAN → token, so a card seen again skips the HMAC-SHA256.
//!
//! No clear PAN is kept. A slot holds a 128-bit keyed fingerprint of the PAN and the 16
//! characters of its token. The fingerprint is SipHash-1-3 (std's keyed hasher, random keys)
//! beside a seeded XXH3-64 (random seed); both keys are made per cache, live only in memory and
//! are never written anywhere. Telling a PAN from its fingerprint takes these keys, and anyone
//! who can read them from the process can read the tokenisation key as well. The keyed
//! SipHash half is what makes crafted collisions (a made-up PAN that borrows a real card's
//! token) infeasible: finding one needs the keys; by chance one is a 2^-127 event per lookup.
//!
//! Two-way set associative, least recently used out; a miss costs the HMAC plus ~30 ns.

use crate::pan::Tokenizer;
use compact_str::CompactString;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Sets in the cache (each of [`WAYS`] slots): 2^17 × 2 slots × 32 bytes = 8 MiB.
const SETS: usize = 1 << 17;
const WAYS: usize = 2;

/// One remembered token. An empty slot has `token[0] == 0` (a token character never is).
#[derive(Clone, Copy)]
struct Slot {
    tag: [u64; 2],
    token: [u8; 16],
}

const EMPTY: Slot = Slot {
    tag: [0; 2],
    token: [0; 16],
};

/// One set: its slots on one cache line, so a lookup touches one line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Set([Slot; WAYS]);

/// Remembers the tokens of recently seen PANs by keyed fingerprint (see the module comment).
/// Exists because HMAC-SHA256 on every event was the single largest cost of tokenising;
/// with it, a repeat card costs two short keyed hashes. The table is allocated on first use.
pub struct TokenCache {
    sip: RandomState,
    seed: u64,
    slots: Vec<Set>,
    /// Lookups answered from the table, and lookups that ran the HMAC.
    pub hits: u64,
    pub misses: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache(hits {}, misses {})", self.hits, self.misses)
    }
}

impl TokenCache {
    /// An empty cache with fresh random keys.
    pub fn new() -> Self {
        let sip = RandomState::new();
        let seed = sip.hash_one(0x5eed_u64) ^ rand::random::<u64>();
        Self {
            sip,
            seed,
            slots: Vec::new(),
            hits: 0,
            misses: 0,
        }
    }

    fn index(&self, pan: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(pan.as_bytes(), self.seed)
    }

    /// Start loading the set `pan` falls in, so that [`TokenCache::token`] a little later
    /// finds it in the CPU cache: the table is larger than the CPU caches, and waiting for
    /// memory cost about as much as the HMAC. A prefetch hint: nothing waits for it.
    pub fn warm(&self, pan: &str) {
        if let Some(set) = self.slots.get((self.index(pan) as usize) & (SETS - 1)) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch is a hint; it reads nothing into the program and cannot
            // fault. The address is that of a live element of `self.slots`.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>((set as *const Set).cast::<i8>());
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = set;
        }
    }

    /// The token of `pan`, exactly as [`Tokenizer::token`] gives it.
    pub fn token(&mut self, tokenizer: &Tokenizer, pan: &str) -> CompactString {
        let mut h = self.sip.build_hasher();
        h.write(pan.as_bytes());
        let tag = [h.finish(), self.index(pan)];
        if self.slots.is_empty() {
            self.slots = vec![Set([EMPTY; WAYS]); SETS];
        }
        let set = &mut self.slots[(tag[1] as usize) & (SETS - 1)].0;
        let hit = set.iter().position(|s| s.token[0] != 0 && s.tag == tag);
        if let Some(way) = hit {
            self.hits += 1;
            set[..=way].rotate_right(1);
            return render(&set[0].token);
        }
        self.misses += 1;
        let token = tokenizer.token(pan);
        let mut slot = Slot {
            tag,
            token: [0; 16],
        };
        slot.token.copy_from_slice(&token.as_bytes()[4..]);
        set.rotate_right(1);
        set[0] = slot;
        token
    }
}

fn render(chars: &[u8; 16]) -> CompactString {
    let mut buf = [0u8; 20];
    buf[..4].copy_from_slice(b"tok_");
    buf[4..].copy_from_slice(chars);
    CompactString::from(std::str::from_utf8(&buf).expect("base64 is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan(i: u64) -> String {
        format!("62258{:011}", i * 7919 % 100_000_000_000)
    }

    #[test]
    fn cached_tokens_are_the_slow_path_tokens() {
        let t = Tokenizer::new(b"k1");
        let mut c = TokenCache::new();
        // More distinct PANs than slots, each asked for more than once, so hits, misses and
        // evictions all happen.
        let n = (SETS * WAYS + SETS / 2) as u64;
        for round in 0..2 {
            for i in 0..n {
                let p = pan(i);
                assert_eq!(c.token(&t, &p), t.token(&p), "round {round}, {p}");
            }
        }
        for i in (0..1000).chain(n - 1000..n) {
            let p = pan(i);
            assert_eq!(c.token(&t, &p), t.token(&p));
            assert_eq!(c.token(&t, &p), t.token(&p));
        }
        assert!(c.hits >= 2000, "{c:?}");
        assert!(c.misses >= n, "{c:?}");
    }

    #[test]
    fn lengths_and_keys_are_told_apart() {
        let t = Tokenizer::new(b"k1");
        let mut c = TokenCache::new();
        for p in ["622588012345", "6225880123456789", "6225880123456789012"] {
            for _ in 0..3 {
                assert_eq!(c.token(&t, p), t.token(p));
            }
        }
        assert_eq!(c.hits, 6);
    }

    #[test]
    fn no_clear_pan_in_the_table() {
        let t = Tokenizer::default();
        let mut c = TokenCache::new();
        let p = "6225880123456789";
        c.token(&t, p);
        let bytes: Vec<u8> = c
            .slots
            .iter()
            .flat_map(|set| set.0)
            .flat_map(|s| {
                let mut v = s.tag[0].to_le_bytes().to_vec();
                v.extend(s.tag[1].to_le_bytes());
                v.extend(s.token);
                v
            })
            .collect();
        assert!(!bytes.windows(p.len()).any(|w| w == p.as_bytes()));
        assert!(!bytes.windows(10).any(|w| w == &p.as_bytes()[6..]));
    }
}

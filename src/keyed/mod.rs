//! What the core shares, at its bottom: nothing here imports anything of the core but the
//! event type.
//!
//! - [`key_hash`]: the 64-bit hash every keyed map uses for a key's text;
//! - [`CowMap`]: the keyed-state map whose snapshot shares its shards;
//! - [`Stage`], [`Stages`]: the stages of the sharded engine, and the entity each is keyed by
//!   (rules, state and models all say which stage computes what);
//! - [`sorted`], [`sweep_interval`]: deterministic serialisation and eviction cadence of keyed
//!   maps.

mod cow;
mod stage;

pub use cow::CowMap;
pub use stage::{Stage, Stages};

use crate::time::Span;
use rustc_hash::FxHashMap;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

/// Hash of a key's text. Collisions between 64-bit hashes of a few million live keys are
/// vanishingly rare (~1e-7) and would merge two keys' counters, never crash.
pub fn key_hash(s: &str) -> u64 {
    xxh3_64(s.as_bytes())
}

/// How often a map with retention `r` is swept: every eighth of its retention (at least a
/// minute), so entries outlive their retention by at most 12.5% and a sweep's cost is spread
/// over many events instead of paid on each.
pub fn sweep_interval(r: Span) -> Span {
    (r / 8).max(Span::MINUTE)
}

/// Serialise a hash map in key order, so equal state gives byte-identical snapshots.
pub fn sorted<S: serde::Serializer, V: Serialize>(
    m: &FxHashMap<u64, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_unstable_by_key(|(k, _)| **k);
    s.collect_map(v)
}

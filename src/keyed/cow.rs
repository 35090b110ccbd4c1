//! `CowMap`: the keyed state's map, cheap to snapshot.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// A map from 64-bit key hashes to `V` whose clone costs at most 64 reference counts, not a
/// copy of every entry. Why: the streaming service snapshots the engine's state for every
/// checkpoint (once a second by default) on its event loop; a deep copy of a few hundred
/// thousand card profiles and rule windows stalled every event behind it for 10-40 ms, growing
/// with the state. Here the entries live in 64 shards behind `Arc`s: a clone shares them, and
/// the first write to a shard still shared with a snapshot copies that one shard (1/64 of the
/// map), so the copying is spread over the writes that follow instead of stopping the loop.
/// Once the snapshot is encoded and dropped, writes go straight to the shards again.
///
/// Writes are the engine's hot path (several per event), so they do not ask the `Arc` whether
/// it is shared (an atomic read-modify-write each): `owned` remembers which shards this map
/// made unique since it was last cloned.
///
/// Keys are hashes already (`state::key_hash`); a multiplicative hash picks the shard, so keys
/// of any shape spread out. Serialises as a map in key order, exactly like the `FxHashMap` it
/// replaces (`state::sorted`), so snapshots keep their format and stay byte-identical.
#[derive(Debug)]
pub struct CowMap<V> {
    /// Inline (one pointer less to chase per lookup); a shard is allocated at its first insert,
    /// so the many maps that stay empty cost no allocation.
    shards: [Option<Arc<FxHashMap<u64, V>>>; SHARDS],
    /// Bit `i` set: `shards[i]` is referenced by this map alone (strong count 1, no weak). Set
    /// only right after making the shard unique; cleared for all shards by `clone`, the only way
    /// another reference to a shard comes to exist (the `Arc`s never leave this type). Atomic
    /// only so that `clone` can clear it through `&self`; `Relaxed` suffices, as a write
    /// needs `&mut self` and so never runs alongside a clone.
    owned: AtomicU64,
    len: usize,
}

impl<V> Default for CowMap<V> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| None),
            owned: AtomicU64::new(0),
            len: 0,
        }
    }
}

impl<V> Clone for CowMap<V> {
    fn clone(&self) -> Self {
        self.owned.store(0, Relaxed);
        Self {
            shards: self.shards.clone(),
            owned: AtomicU64::new(0),
            len: self.len,
        }
    }
}

fn shard_of(k: u64) -> usize {
    // A different multiplier from FxHash's, so the bits that choose the shard are not the bits
    // the shard's own table hashes on.
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

impl<V> CowMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, k: &u64) -> Option<&V> {
        self.shards[shard_of(*k)].as_ref()?.get(k)
    }

    pub fn contains_key(&self, k: &u64) -> bool {
        self.get(k).is_some()
    }

    /// Entries in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.shards.iter().flatten().flat_map(|s| s.iter())
    }
}

impl<V: Clone> CowMap<V> {
    /// Shard `i` for writing: copied first if a snapshot still shares it. (Takes the fields,
    /// not `self`, so a caller can still count into `len` while holding the shard.)
    fn shard_mut<'a>(
        shards: &'a mut [Option<Arc<FxHashMap<u64, V>>>; SHARDS],
        owned: &mut AtomicU64,
        i: usize,
    ) -> &'a mut FxHashMap<u64, V> {
        let owned = owned.get_mut();
        let bit = 1u64 << i;
        let shard = match &mut shards[i] {
            Some(a) => {
                if *owned & bit == 0 {
                    Arc::make_mut(a);
                    *owned |= bit;
                }
                a
            }
            slot @ None => {
                *owned |= bit;
                slot.insert(Arc::default())
            }
        };
        let p = Arc::as_ptr(shard).cast_mut();
        // SAFETY: the bit says this map holds the only reference to the shard (see `owned`),
        // and the `&mut` borrow of `shards` excludes any other use of it meanwhile: this is
        // what `Arc::get_mut` would return, without its atomic check.
        unsafe { &mut *p }
    }

    /// Whether a write for `k` can go to its shard as it is: the shard is this map's alone, or
    /// `k` is there (a miss must not copy a shard a snapshot still shares).
    fn worth_writing(&mut self, k: &u64) -> bool {
        *self.owned.get_mut() & (1u64 << shard_of(*k)) != 0 || self.contains_key(k)
    }

    pub fn get_mut(&mut self, k: &u64) -> Option<&mut V> {
        if !self.worth_writing(k) {
            return None;
        }
        Self::shard_mut(&mut self.shards, &mut self.owned, shard_of(*k)).get_mut(k)
    }

    /// The entry for `k`, made by `new` when missing; true when it was inserted now.
    pub fn get_or_insert_with(&mut self, k: u64, new: impl FnOnce() -> V) -> (&mut V, bool) {
        use std::collections::hash_map::Entry;
        match Self::shard_mut(&mut self.shards, &mut self.owned, shard_of(k)).entry(k) {
            Entry::Occupied(o) => (o.into_mut(), false),
            Entry::Vacant(v) => {
                self.len += 1;
                (v.insert(new()), true)
            }
        }
    }

    pub fn entry_or_default(&mut self, k: u64) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(k, V::default).0
    }

    pub fn insert(&mut self, k: u64, v: V) -> Option<V> {
        let old = Self::shard_mut(&mut self.shards, &mut self.owned, shard_of(k)).insert(k, v);
        self.len += usize::from(old.is_none());
        old
    }

    pub fn remove(&mut self, k: &u64) -> Option<V> {
        if !self.worth_writing(k) {
            return None;
        }
        let old = Self::shard_mut(&mut self.shards, &mut self.owned, shard_of(*k)).remove(k);
        self.len -= usize::from(old.is_some());
        old
    }

    /// Keep the entries `keep` accepts. `keep` must be a pure test: a shard still shared with a
    /// snapshot is tested first and copied only if something in it goes, so `keep` may see an
    /// entry twice.
    pub fn retain(&mut self, mut keep: impl FnMut(&u64, &V) -> bool) {
        for i in 0..SHARDS {
            let owned = *self.owned.get_mut() & (1u64 << i) != 0;
            let Some(shard) = &mut self.shards[i] else {
                continue;
            };
            if !owned && Arc::get_mut(shard).is_none() && shard.iter().all(|(k, v)| keep(k, v)) {
                continue;
            }
            let m = Self::shard_mut(&mut self.shards, &mut self.owned, i);
            let before = m.len();
            m.retain(|k, v| keep(k, v));
            self.len -= before - m.len();
        }
    }
}

impl<V: Serialize> Serialize for CowMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(&u64, &V)> = self.iter().collect();
        v.sort_unstable_by_key(|(k, _)| **k);
        s.collect_map(v)
    }
}

impl<'de, V: Deserialize<'de> + Clone> Deserialize<'de> for CowMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = FxHashMap::<u64, V>::deserialize(d)?;
        let mut c = Self::default();
        for (k, v) in m {
            c.insert(k, v);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Bump(u64),
        Remove(u64),
        RetainBelow(u32),
        Snapshot,
        /// Drop the oldest snapshot, so shards become unshared again.
        DropSnapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so operations meet the same entries; some spread over the range.
        let key = prop_oneof![0u64..40, any::<u64>()];
        prop_oneof![
            (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key.clone().prop_map(Op::Bump),
            key.prop_map(Op::Remove),
            any::<u32>().prop_map(Op::RetainBelow),
            Just(Op::Snapshot),
            Just(Op::DropSnapshot),
        ]
    }

    fn contents(m: &CowMap<u32>) -> BTreeMap<u64, u32> {
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }

    proptest! {
        /// Against a plain map, with snapshots taken along the way: the live map follows every
        /// write, its length stays right, and every snapshot keeps exactly what the map held
        /// when it was taken, whatever was written after.
        #[test]
        fn behaves_as_a_map_and_snapshots_do_not_move(ops in prop::collection::vec(op(), 1..300)) {
            let mut m = CowMap::<u32>::default();
            let mut reference = BTreeMap::<u64, u32>::new();
            let mut snaps: Vec<(CowMap<u32>, BTreeMap<u64, u32>)> = Vec::new();
            for o in ops {
                match o {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(m.insert(k, v), reference.insert(k, v));
                    }
                    Op::Bump(k) => {
                        let (e, new) = m.get_or_insert_with(k, || 7);
                        *e = e.wrapping_add(1);
                        let r = reference.entry(k).or_insert(7);
                        prop_assert_eq!(new, *r == 7);
                        *r = r.wrapping_add(1);
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(m.remove(&k), reference.remove(&k));
                    }
                    Op::RetainBelow(x) => {
                        m.retain(|_, v| *v < x);
                        reference.retain(|_, v| *v < x);
                    }
                    Op::Snapshot => snaps.push((m.clone(), reference.clone())),
                    Op::DropSnapshot => {
                        if !snaps.is_empty() {
                            let (s, r) = snaps.remove(0);
                            prop_assert_eq!(contents(&s), r);
                        }
                    }
                }
                prop_assert_eq!(m.len(), reference.len());
            }
            prop_assert_eq!(contents(&m), reference);
            for (s, r) in &snaps {
                prop_assert_eq!(s.len(), r.len());
                prop_assert_eq!(&contents(s), r);
            }
        }
    }

    #[test]
    fn serialises_in_key_order_and_round_trips() {
        let mut m = CowMap::default();
        for k in [u64::MAX, 3, 1 << 40, 0] {
            m.insert(k, format!("v{k}"));
        }
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"0":"v0","3":"v3","1099511627776":"v1099511627776","18446744073709551615":"v18446744073709551615"}"#
        );
        let back: CowMap<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn a_write_after_a_snapshot_copies_one_shard_only() {
        let mut m = CowMap::default();
        for k in 0..10_000u64 {
            m.insert(k, k);
        }
        let snap = m.clone();
        m.insert(5, 0);
        let shared = m
            .shards
            .iter()
            .zip(&snap.shards)
            .filter(|(a, b)| Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(snap.get(&5), Some(&5));
        assert_eq!(m.get(&5), Some(&0));
        // Once the snapshot is gone, writes go to the same shard again: no copy.
        drop(snap);
        let before: Vec<_> = m.shards.iter().flatten().map(Arc::as_ptr).collect();
        for k in 0..10_000u64 {
            *m.get_mut(&k).unwrap() += 1;
        }
        let after: Vec<_> = m.shards.iter().flatten().map(Arc::as_ptr).collect();
        assert_eq!(before, after);
        assert_eq!(m.get(&5), Some(&1));
    }
}

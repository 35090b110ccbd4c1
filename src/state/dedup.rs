//! Time order of the dedup book, for cheap eviction.

use crate::keyed::CowMap;
use crate::time::EventTime;
use std::collections::VecDeque;

/// The dedup book's entries as (first-seen time, id hash), sorted by time. Events reach the
/// engine in time order (late ones excepted), so an entry is almost always appended; a sweep
/// then pops the expired entries off the front, touching only those, where a `retain` over the
/// map would visit every live entry on every sweep. It holds exactly the map's entries; after a
/// restore (it is not serialised) it is short, and the next sweep rebuilds it from the map.
#[derive(Debug, Default)]
pub struct DedupOrder(VecDeque<(EventTime, u64)>);

/// A clone starts empty, as after a restore: the order is derived from the map and rebuilt at
/// the next sweep. Clones are the checkpoint snapshots, which must stay cheap (`CowMap`).
impl Clone for DedupOrder {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl DedupOrder {
    /// Record a new entry (one the map did not hold).
    pub fn push(&mut self, ts: EventTime, hash: u64) {
        let q = &mut self.0;
        if q.back().is_none_or(|&(t, _)| t <= ts) {
            q.push_back((ts, hash));
        } else {
            let pos = q.partition_point(|&(t, _)| t <= ts);
            q.insert(pos, (ts, hash));
        }
    }

    /// Remove from `map` (and from here) every entry first seen at or before `cut`: the same
    /// as `map.retain(|_, ts| *ts > cut)`.
    pub fn expire(&mut self, map: &mut CowMap<EventTime>, cut: EventTime) {
        if self.0.len() != map.len() {
            let mut v: Vec<(EventTime, u64)> = map.iter().map(|(&h, &t)| (t, h)).collect();
            v.sort_unstable();
            self.0 = v.into();
        }
        while let Some(&(t, h)) = self.0.front() {
            if t > cut {
                break;
            }
            self.0.pop_front();
            map.remove(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn contents(m: &CowMap<EventTime>) -> BTreeMap<u64, EventTime> {
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn expire_matches_retain() {
        let mut map = CowMap::default();
        let mut order = DedupOrder::default();
        let mut seed = 7u64;
        for i in 0..5000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Mostly increasing times with some late ones.
            let ts = EventTime::from_ms(i as i64 * 10 - (seed >> 60) as i64 * 40);
            let h = seed >> 8;
            if map.insert(h, ts).is_none() {
                order.push(ts, h);
            }
            if i % 97 == 0 {
                let cut = ts - crate::time::Span::ms(3000);
                let mut want = contents(&map);
                want.retain(|_, t| *t > cut);
                order.expire(&mut map, cut);
                assert_eq!(contents(&map), want);
                assert_eq!(order.0.len(), map.len());
            }
        }
        // A restore leaves the order empty: the next expiry rebuilds it.
        let mut fresh = order.clone();
        assert!(fresh.0.is_empty());
        let mut want = contents(&map);
        let cut = EventTime::from_ms(45_000);
        want.retain(|_, t| *t > cut);
        fresh.expire(&mut map, cut);
        assert_eq!(contents(&map), want);
        assert_eq!(fresh.0.len(), map.len());
    }
}

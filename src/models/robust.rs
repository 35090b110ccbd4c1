//! A card's robust normals from its profile (its last [`HISTORY`] approved purchases, as
//! quantised log amounts and category groups): the median and spread (1.4826 × median
//! absolute deviation, at least [`MIN_SPREAD`]) in the purchase's category group and over the
//! whole profile, and its largest recent purchase. One sort of sixteen values serves both
//! normals (the group's values are a sorted subsequence of the whole profile's), and each
//! median absolute deviation is read off the sorted values by a merge, without a second sort:
//! this runs on every card purchase. Exact integer arithmetic, so the streaming and the batch
//! side agree to the bit.

use super::features::{GROUP_MIN, HISTORY, LOG_STEP, MIN_HISTORY, MIN_SPREAD};

/// What a card's profile says about a purchase in one category group. Log amounts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normals {
    /// The card's normal here: its group's median and spread once it has [`GROUP_MIN`]
    /// purchases in the group, else the whole profile's.
    pub here: (f64, f64),
    /// The whole profile's median and spread (all groups).
    pub all: (f64, f64),
    /// Its largest recent purchase (any group).
    pub max: f64,
}

/// The card's normals for a purchase in `group`; `None` under [`MIN_HISTORY`] purchases.
/// `q` and `g` hold the profile's quantised log amounts and their groups (any order, at most
/// [`HISTORY`]).
pub fn normals(q: &[u16], g: &[u8], group: u8) -> Option<Normals> {
    let n = q.len().min(g.len()).min(HISTORY);
    if n < MIN_HISTORY {
        return None;
    }
    // Each value doubled, its low bit saying whether it is in the group; unused slots hold
    // the largest value, so the sort leaves the n values first, in order.
    let mut v = [u32::MAX; HISTORY];
    for ((d, a), b) in v.iter_mut().zip(&q[..n]).zip(&g[..n]) {
        *d = u32::from(*a) << 1 | u32::from(*b == group);
    }
    sort16(&mut v);
    let mut all = [0u32; HISTORY];
    let mut here = [0u32; HISTORY];
    let mut k = 0;
    for (i, x) in v[..n].iter().enumerate() {
        all[i] = x >> 1;
        here[k] = x >> 1;
        k += (x & 1) as usize;
    }
    let all_n = robust(&all[..n]);
    // Under GROUP_MIN in the group, or all of the profile in it: the whole profile's normal.
    let here_n = if k >= GROUP_MIN && k < n {
        robust(&here[..k])
    } else {
        all_n
    };
    Some(Normals {
        here: here_n,
        all: all_n,
        max: f64::from(all[n - 1]) / LOG_STEP,
    })
}

/// A card's normal for a purchase in `group` ([`Normals::here`]).
pub fn usual(q: &[u16], g: &[u8], group: u8) -> Option<(f64, f64)> {
    normals(q, g, group).map(|n| n.here)
}

/// Median and spread (log amounts) of sorted quantised values (at least one).
fn robust(v: &[u32]) -> (f64, f64) {
    let med = twice_median(v);
    let mad = twice_median_deviation(v, med);
    // Both medians are doubled (exact for even counts), the deviations too.
    let med = med as f64 / 2.0 / LOG_STEP;
    let mad = mad as f64 / 4.0 / LOG_STEP;
    (med, (1.4826 * mad).max(MIN_SPREAD))
}

/// Twice the median of the doubled absolute deviations of sorted `v` from `med2` (twice its
/// median). The deviations of the values below the median grow leftwards and those above
/// grow rightwards: merging the two runs from the middle gives them in order.
fn twice_median_deviation(v: &[u32], med2: u64) -> u64 {
    let k = v.len();
    let dev = |x: u32| (2 * u64::from(x)).abs_diff(med2);
    // `l` walks left from the last value at or below the median, `r` right from the next.
    let mut r = v.partition_point(|x| 2 * u64::from(*x) <= med2);
    let mut l = r;
    let (lo, hi) = ((k - 1) / 2, k / 2);
    let (mut a, mut b) = (0, 0);
    for i in 0..=hi {
        let take_left = l > 0 && (r >= k || dev(v[l - 1]) <= dev(v[r]));
        let d = if take_left {
            l -= 1;
            dev(v[l])
        } else {
            r += 1;
            dev(v[r - 1])
        };
        if i == lo {
            a = d;
        }
        if i == hi {
            b = d;
        }
    }
    a + b
}

/// Sort sixteen values with a fixed network of 60 compare-exchanges, branch-free:
/// the card profile's normals are taken on every purchase, and a general sort's branches
/// were most of the card model's time.
#[inline(always)]
pub(super) fn sort16(v: &mut [u32; HISTORY]) {
    // The indices are constants (a macro, not a loop over a table), so the values stay in
    // registers. Verified on all 2^16 inputs of zeros and ones (the 0-1 principle), and in
    // the tests. One layer of independent compare-exchanges per line.
    macro_rules! net {
        ($($a:literal $b:literal;)*) => {
            $(
                let (x, y) = (v[$a], v[$b]);
                v[$a] = x.min(y);
                v[$b] = x.max(y);
            )*
        };
    }
    #[rustfmt::skip]
    net! {
        0 13; 1 12; 2 15; 3 14; 4 8; 5 6; 7 11; 9 10;
        0 5; 1 7; 2 9; 3 4; 6 13; 8 14; 10 15; 11 12;
        0 1; 2 3; 4 5; 6 8; 7 9; 10 11; 12 13; 14 15;
        0 2; 1 3; 4 10; 5 11; 6 7; 8 9; 12 14; 13 15;
        1 2; 3 12; 4 6; 5 7; 8 10; 9 11; 13 14;
        1 4; 2 6; 5 8; 7 10; 9 13; 11 14;
        2 4; 3 6; 9 12; 11 13;
        3 5; 6 8; 7 9; 10 12;
        3 4; 5 6; 7 8; 9 10; 11 12;
        6 7; 8 9;
    }
}

/// Twice the median of sorted `v` (the sum of the two middle values for an even count), exact.
pub(super) fn twice_median<T: Copy + Into<u64>>(v: &[T]) -> u64 {
    let n = v.len();
    if n == 0 {
        return 0;
    }
    if n % 2 == 1 {
        2 * v[n / 2].into()
    } else {
        v[n / 2 - 1].into() + v[n / 2].into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The median absolute deviation the slow way: sort the deviations.
    fn mad_by_sorting(v: &[u32]) -> u64 {
        let med = twice_median(v);
        let mut d: Vec<u64> = v
            .iter()
            .map(|x| (2 * u64::from(*x)).abs_diff(med))
            .collect();
        d.sort_unstable();
        twice_median(&d)
    }

    #[test]
    fn the_merged_deviation_median_equals_sorting_the_deviations() {
        let mut rng = 0x9e37_79b9u64;
        for _ in 0..20_000 {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = 1 + (rng >> 60) as usize % HISTORY;
            let mut v: Vec<u32> = (0..k)
                .map(|_| {
                    rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (rng >> 40) as u32 % 40
                })
                .collect();
            v.sort_unstable();
            assert_eq!(
                twice_median_deviation(&v, twice_median(&v)),
                mad_by_sorting(&v),
                "{v:?}"
            );
        }
    }

    #[test]
    fn both_normals_and_the_largest_purchase() {
        // Ten everyday purchases around 1000 and four of group 3 around 2500.
        let q: Vec<u16> = [990, 1000, 1010, 1020, 980, 1005, 995, 1015, 985, 1000]
            .into_iter()
            .chain([2500, 2600, 2450, 2550])
            .collect();
        let g: Vec<u8> = [0; 10].into_iter().chain([3; 4]).collect();
        let n = normals(&q, &g, 3).unwrap();
        assert_eq!(n.here.0, 2525.0 / LOG_STEP);
        assert_eq!(n.all.0, 1007.5 / LOG_STEP);
        assert_eq!(n.max, 2600.0 / LOG_STEP);
        // Group 0 has its own normal too; group 2 (none) falls back to the whole profile.
        assert_eq!(normals(&q, &g, 0).unwrap().here.0, 1000.0 / LOG_STEP);
        assert_eq!(normals(&q, &g, 2).unwrap().here, n.all);
    }
}

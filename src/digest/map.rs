//! Compact collections keyed by digest: a sorted vector with an index of where each range of
//! leading bits starts ([`DigestMap`]), and a set that is a bitset over such a map's positions
//! ([`DigestSet`]).
//!
//! A registry of millions of blobs keeps one entry per digest: the key once (33 bytes), the
//! value, and 2 bytes of index, where a `BTreeMap` beside a `HashMap` kept each key twice with
//! node and bucket overhead. Positions are dense ids (sorted order), so a mark is a bit.
//!
//! Digests are hashes, spread evenly over their range: the first bits of a sha256 digest say
//! nearly where it is in the sorted keys. A lookup reads one bucket start (an array of 2
//! bytes a key, small enough to stay in cache) and the few keys of its bucket, side by side:
//! two memory reads where a hash table of positions takes three (control bytes, slot, key),
//! which is what decides the time on a store of millions. Names that are not real hashes
//! (a hostile layout) may crowd one bucket: it is searched by halves, never worse than a
//! binary search.

use rustc_hash::FxHashSet;

use super::{Algorithm, Digest};

/// The first 8 bytes of a digest's hash, as they sort.
fn head(d: &Digest) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.bytes[..8]);
    u64::from_be_bytes(b)
}

/// Where the sha256 keys of each bucket (their first `bits` bits) start.
#[derive(Clone, Default)]
struct Buckets {
    /// `starts[b]..starts[b + 1]`: positions of the keys of bucket `b`.
    starts: Vec<u32>,
    /// How many leading bits name a bucket.
    bits: u32,
    /// How many keys are sha256 (they sort before every other algorithm's).
    sha256: u32,
}

impl Buckets {
    fn new(keys: &[Digest]) -> Self {
        let sha256 = keys.partition_point(|k| k.alg == Algorithm::Sha256);
        // About two keys a bucket.
        let bits = (sha256 / 2).max(1).next_power_of_two().trailing_zeros();
        let mut starts = Vec::with_capacity((1usize << bits) + 1);
        let mut at = 0;
        for b in 0..(1u64 << bits) {
            while at < sha256 && Self::bucket_of(bits, &keys[at]) < b {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(sha256 as u32);
        Buckets {
            starts,
            bits,
            sha256: sha256 as u32,
        }
    }

    fn bucket_of(bits: u32, d: &Digest) -> u64 {
        if bits == 0 { 0 } else { head(d) >> (64 - bits) }
    }

    /// The positions `d` may be at.
    fn range(&self, d: &Digest, len: usize) -> std::ops::Range<usize> {
        if d.alg != Algorithm::Sha256 {
            return self.sha256 as usize..len;
        }
        if self.starts.is_empty() {
            return 0..0;
        }
        let b = Self::bucket_of(self.bits, d) as usize;
        self.starts[b] as usize..self.starts[b + 1] as usize
    }
}

/// A map from digest to `V`, sorted by digest, with bucket lookups. Built once from its
/// entries (the scan and the graph build whole maps); [`DigestMap::insert`] is for the few
/// entries added later.
#[derive(Clone)]
pub struct DigestMap<V> {
    /// Sorted keys; `values[i]` is the value of `keys[i]`. Two vectors, not one of pairs: a
    /// 33-byte digest beside an 8-aligned value would pad each pair by 7 bytes.
    keys: Vec<Digest>,
    values: Vec<V>,
    index: Buckets,
    /// Names this set of keys: positions looked up in a map are valid in another map of the
    /// same generation only (a clone), never after keys change. 0 for none.
    generation: u32,
}

/// The last generation given to a map.
static GENERATIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl<V> Default for DigestMap<V> {
    fn default() -> Self {
        DigestMap {
            keys: Vec::new(),
            values: Vec::new(),
            index: Buckets::default(),
            generation: 0,
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for DigestMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> DigestMap<V> {
    /// The map of `entries`; of equal keys the last wins (as collecting into a `BTreeMap`).
    pub fn from_entries(entries: Vec<(Digest, V)>) -> Self {
        let entries = crate::sorted::sort_last_wins(entries);
        let mut keys = Vec::with_capacity(entries.len());
        let mut values = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            keys.push(k);
            values.push(v);
        }
        DigestMap::from_sorted(keys, values)
    }

    /// The map of `keys` (sorted, no two equal) and their `values`, in the same order: no
    /// vector of pairs in between.
    ///
    /// # Panics
    /// When the two differ in length.
    pub fn from_sorted(mut keys: Vec<Digest>, mut values: Vec<V>) -> Self {
        assert_eq!(keys.len(), values.len(), "a value per key");
        if !keys.is_sorted_by(|a, b| a < b) {
            return DigestMap::from_entries(keys.into_iter().zip(values).collect());
        }
        keys.shrink_to_fit();
        values.shrink_to_fit();
        let mut m = DigestMap {
            keys,
            values,
            index: Buckets::default(),
            generation: 0,
        };
        m.reindex();
        m
    }

    fn reindex(&mut self) {
        self.index = Buckets::new(&self.keys);
        // Wrapping past u32::MAX (4 billion rebuilds) skips 0.
        let g = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.generation = g.wrapping_add(1).max(1);
    }

    /// What names this set of keys (see [`DigestMap::id`]): the same for a clone, another after
    /// any key is added.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Values in key order, to change in place.
    pub fn values_mut(&mut self) -> &mut [V] {
        &mut self.values
    }

    /// The position of `d` in digest order: a dense id in `0..len()`.
    pub fn id(&self, d: &Digest) -> Option<usize> {
        let r = self.index.range(d, self.keys.len());
        let keys = &self.keys[r.clone()];
        let found = if keys.len() <= 8 {
            keys.iter().position(|k| k == d)
        } else {
            keys.binary_search(d).ok()
        };
        found.map(|i| r.start + i)
    }

    /// [`DigestMap::id`] of each of `ds`, in order: a few at a time, each step for all of them
    /// before the next (where their buckets start, then their keys), so that the memory reads
    /// of different digests are in flight together instead of one after another.
    pub fn ids(&self, ds: &[Digest]) -> Vec<Option<usize>> {
        const GROUP: usize = 16;
        let mut out = Vec::with_capacity(ds.len());
        for group in ds.chunks(GROUP) {
            let mut ranges = [(0usize, 0usize); GROUP];
            for (r, d) in ranges.iter_mut().zip(group) {
                let range = self.index.range(d, self.keys.len());
                *r = (range.start, range.end);
            }
            for (&(start, end), d) in ranges.iter().zip(group) {
                let keys = &self.keys[start..end];
                let found = if keys.len() <= 8 {
                    keys.iter().position(|k| k == d)
                } else {
                    keys.binary_search(d).ok()
                };
                out.push(found.map(|i| start + i));
            }
        }
        out
    }

    /// The entry at position `id`.
    pub fn at(&self, id: usize) -> (&Digest, &V) {
        (&self.keys[id], &self.values[id])
    }

    /// The value of `d`.
    pub fn get(&self, d: &Digest) -> Option<&V> {
        self.id(d).map(|i| &self.values[i])
    }

    /// Whether `d` is a key.
    pub fn contains_key(&self, d: &Digest) -> bool {
        self.id(d).is_some()
    }

    /// Sets `d` to `v`, returning the value it replaces. A new key costs a rebuild of the
    /// index (linear): for a few late additions, not for building.
    pub fn insert(&mut self, d: Digest, v: V) -> Option<V> {
        if let Some(i) = self.id(&d) {
            return Some(std::mem::replace(&mut self.values[i], v));
        }
        let at = self.keys.partition_point(|k| *k < d);
        self.keys.insert(at, d);
        self.values.insert(at, v);
        self.reindex();
        None
    }

    /// Adds `more` (of equal keys the last wins), rebuilding once.
    pub fn extend(&mut self, more: impl IntoIterator<Item = (Digest, V)>) {
        let keys = std::mem::take(&mut self.keys);
        let values = std::mem::take(&mut self.values);
        let mut all: Vec<(Digest, V)> = keys.into_iter().zip(values).collect();
        all.extend(more);
        *self = DigestMap::from_entries(all);
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Entries in digest order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Digest, &V)> + ExactSizeIterator {
        self.keys.iter().zip(&self.values)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Digest> + ExactSizeIterator {
        self.keys.iter()
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.values.iter()
    }
}

impl<V> FromIterator<(Digest, V)> for DigestMap<V> {
    fn from_iter<I: IntoIterator<Item = (Digest, V)>>(it: I) -> Self {
        DigestMap::from_entries(it.into_iter().collect())
    }
}

impl<'a, V> IntoIterator for &'a DigestMap<V> {
    type Item = (&'a Digest, &'a V);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, Digest>, std::slice::Iter<'a, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter().zip(&self.values)
    }
}

/// A set of digests: one bit per key of a [`DigestMap`] (the blob store's), and a hash set for
/// the digests that are not keys of it (references to missing blobs: few).
#[derive(Debug, Clone, Default)]
pub struct DigestSet {
    bits: Vec<u64>,
    len: usize,
    others: FxHashSet<Digest>,
}

impl DigestSet {
    /// An empty set over the keys of `over`.
    pub fn over<V>(over: &DigestMap<V>) -> Self {
        DigestSet {
            bits: vec![0; over.len().div_ceil(64)],
            len: 0,
            others: FxHashSet::default(),
        }
    }

    /// Adds the key at position `id` of the map; whether it was new.
    pub fn insert_id(&mut self, id: usize) -> bool {
        let (w, b) = (id / 64, 1u64 << (id % 64));
        let new = self.bits[w] & b == 0;
        self.bits[w] |= b;
        self.len += usize::from(new);
        new
    }

    /// Adds `d` (looked up in `over`, the map this set was made over); whether it was new.
    pub fn insert<V>(&mut self, over: &DigestMap<V>, d: Digest) -> bool {
        match over.id(&d) {
            Some(id) => self.insert_id(id),
            None => {
                let new = self.others.insert(d);
                self.len += usize::from(new);
                new
            }
        }
    }

    /// Whether the key at position `id` of the map is in.
    pub fn contains_id(&self, id: usize) -> bool {
        self.bits
            .get(id / 64)
            .is_some_and(|w| w & (1u64 << (id % 64)) != 0)
    }

    /// Whether `d` is in (looked up in `over`, the map this set was made over).
    pub fn contains<V>(&self, over: &DigestMap<V>, d: &Digest) -> bool {
        match over.id(d) {
            Some(id) => self.contains_id(id),
            None => self.others.contains(d),
        }
    }

    /// Adds everything in `other` (made over the same map).
    pub fn union(&mut self, other: &DigestSet) {
        for (w, o) in self.bits.iter_mut().zip(&other.bits) {
            *w |= o;
        }
        self.others.extend(other.others.iter().copied());
        self.len = self
            .bits
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            + self.others.len();
    }

    /// The digests in: keys of `over` (the map this set was made over) in order, then the
    /// others in no order.
    pub fn iter<'a, V>(&'a self, over: &'a DigestMap<V>) -> impl Iterator<Item = Digest> + 'a {
        (0..over.len())
            .filter(|&i| self.contains_id(i))
            .map(|i| *over.at(i).0)
            .chain(self.others.iter().copied())
    }

    /// How many digests are in.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A set of digests for many membership tests that nearly all fail (the few blobs a sweep
/// removes, against every `_layers` link): the sorted digests behind a bitmap of their leading
/// bits, at most 1 MiB, so that most tests read only the bitmap, which stays in cache, where a
/// hash table of the digests is a cache miss for each test on a store of millions.
pub struct SparseDigestSet {
    /// Bit `head >> (64 - bits)` is set for each digest's leading bits.
    map: Vec<u64>,
    bits: u32,
    keys: DigestMap<()>,
}

impl SparseDigestSet {
    /// The set of `keys` (any order).
    pub fn new(keys: Vec<Digest>) -> Self {
        // About 64 bits a digest (a test of a digest not there passes the bitmap 1 time in
        // 64), at most 2^23 bits (1 MiB).
        let bits = (keys.len().max(1) * 64)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(6, 23);
        let mut map = vec![0u64; 1 << (bits - 6)];
        for k in &keys {
            let b = (head(k) >> (64 - bits)) as usize;
            map[b / 64] |= 1 << (b % 64);
        }
        let n = keys.len();
        SparseDigestSet {
            map,
            bits,
            keys: DigestMap::from_sorted(keys, vec![(); n]),
        }
    }

    /// Whether `d` is in the set.
    pub fn contains(&self, d: &Digest) -> bool {
        let b = (head(d) >> (64 - self.bits)) as usize;
        self.map[b / 64] & (1 << (b % 64)) != 0 && self.keys.get(d).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Algorithm, hash_bytes};

    fn d(i: u32) -> Digest {
        hash_bytes(Algorithm::Sha256, &i.to_le_bytes())
    }

    #[test]
    fn a_map_is_sorted_and_the_last_of_equal_keys_wins() {
        let m: DigestMap<u32> = [(d(1), 1), (d(2), 2), (d(1), 3)].into_iter().collect();
        let want: std::collections::BTreeMap<Digest, u32> =
            [(d(1), 1), (d(2), 2), (d(1), 3)].into_iter().collect();
        assert_eq!(m.len(), 2);
        assert!(m.iter().map(|(k, v)| (*k, *v)).eq(want.into_iter()));
        assert_eq!(m.get(&d(1)), Some(&3));
        assert_eq!(m.get(&d(3)), None);
        let mut m = m;
        assert_eq!(m.insert(d(3), 9), None);
        assert_eq!(m.insert(d(3), 8), Some(9));
        assert!(m.keys().is_sorted());
        assert_eq!(m.at(m.id(&d(3)).unwrap()), (&d(3), &8));
    }

    #[test]
    fn a_sparse_set_holds_its_digests_and_no_other() {
        let named = |alg: &str, hex: String| Digest::from_parts(alg, &hex).unwrap();
        for n in [0u32, 1, 5, 5000] {
            let mut keys: Vec<Digest> = (0..n).map(d).collect();
            // Leading bits shared with absent digests, and another algorithm.
            keys.push(named("sha256", format!("{:064x}", 2)));
            keys.push(named("sha512", "cd".repeat(64)));
            let s = SparseDigestSet::new(keys.clone());
            assert!(keys.iter().all(|k| s.contains(k)), "n = {n}");
            let absent: Vec<Digest> = (n..n + 20_000)
                .map(d)
                .chain([
                    named("sha256", format!("{:064x}", 3)),
                    named("sha512", "ce".repeat(64)),
                ])
                .collect();
            assert!(!absent.iter().any(|k| s.contains(k)), "n = {n}");
        }
    }

    #[test]
    fn lookups_find_every_key_and_nothing_else_whatever_the_spread() {
        let named = |alg: &str, hex: String| Digest::from_parts(alg, &hex).unwrap();
        let mut keys: Vec<Digest> = (0..300).map(d).collect();
        // Names that are not hashes: one leading-bits bucket holds 100 of them.
        keys.extend((0..100).map(|i| named("sha256", format!("{:064x}", i * 2))));
        keys.extend((0..20).map(|i| named("sha512", format!("{:0128x}", i + 1))));
        keys.push(named("sha384", "ab".repeat(48)));
        let m: DigestMap<usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        assert_eq!(m.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k), Some(&i), "{k}");
            let id = m.id(k).unwrap();
            assert_eq!(m.at(id).0, k);
        }
        for absent in [
            named("sha256", format!("{:064x}", 3)),
            named("sha256", "f".repeat(64)),
            named("sha512", format!("{:0128x}", 99)),
            d(300),
        ] {
            assert_eq!(m.get(&absent), None, "{absent}");
        }
        // Looked up together, the same answers.
        let mut all = keys.clone();
        all.extend([d(300), named("sha512", format!("{:0128x}", 99))]);
        let one_by_one: Vec<Option<usize>> = all.iter().map(|k| m.id(k)).collect();
        assert_eq!(m.ids(&all), one_by_one);
        assert_eq!(one_by_one.iter().filter(|i| i.is_none()).count(), 2);
        assert_eq!(DigestMap::<()>::default().get(&d(1)), None);
        let one: DigestMap<()> = [(d(7), ())].into_iter().collect();
        assert!(one.contains_key(&d(7)) && !one.contains_key(&d(8)));
    }

    #[test]
    fn a_set_holds_keys_as_bits_and_others_aside() {
        let m: DigestMap<()> = (0..200).map(|i| (d(i), ())).collect();
        let mut s = DigestSet::over(&m);
        assert!(s.insert(&m, d(7)));
        assert!(!s.insert(&m, d(7)));
        assert!(s.insert(&m, d(1000)));
        assert!(s.contains(&m, &d(7)) && s.contains(&m, &d(1000)));
        assert!(!s.contains(&m, &d(8)) && !s.contains(&m, &d(1001)));
        let mut t = DigestSet::over(&m);
        t.insert(&m, d(8));
        t.insert(&m, d(7));
        s.union(&t);
        assert_eq!(s.len(), 3);
    }
}

/// A small sorted set of digests (a repository's revisions): a shared slice, searched by
/// halving, where a `BTreeSet` spent nodes on a few dozen keys; the scan's list of the same
/// links is shared, not copied. Changes copy it (they are rare: a prune's estimate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestList(std::sync::Arc<[Digest]>);

impl Default for DigestList {
    fn default() -> Self {
        DigestList(Vec::new().into())
    }
}

impl DigestList {
    /// The list of `sorted` (sorted, no repeats), shared.
    pub fn shared(sorted: std::sync::Arc<[Digest]>) -> Self {
        debug_assert!(sorted.is_sorted_by(|a, b| a < b));
        DigestList(sorted)
    }

    /// Adds `d`; whether it was new (a copy: for a few).
    pub fn insert(&mut self, d: Digest) -> bool {
        match self.0.binary_search(&d) {
            Ok(_) => false,
            Err(i) => {
                let mut v = self.0.to_vec();
                v.insert(i, d);
                self.0 = v.into();
                true
            }
        }
    }

    /// Removes `d`; whether it was in (a copy: for a few).
    pub fn remove(&mut self, d: &Digest) -> bool {
        let had = self.contains(d);
        if had {
            self.retain(|x| x != d);
        }
        had
    }

    /// The digests, sorted.
    pub fn as_slice(&self) -> &[Digest] {
        &self.0
    }

    /// Where `d` is in the list, if it is.
    pub fn position(&self, d: &Digest) -> Option<usize> {
        self.0.binary_search(d).ok()
    }

    /// Whether `d` is in.
    pub fn contains(&self, d: &Digest) -> bool {
        self.0.binary_search(d).is_ok()
    }

    /// Keeps the digests `keep` says to (one pass: for removing many).
    pub fn retain(&mut self, mut keep: impl FnMut(&Digest) -> bool) {
        let v: Vec<Digest> = self.0.iter().copied().filter(|d| keep(d)).collect();
        self.0 = v.into();
    }

    /// The digests in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Digest> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a DigestList {
    type Item = &'a Digest;
    type IntoIter = std::slice::Iter<'a, Digest>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Digest> for DigestList {
    fn from_iter<I: IntoIterator<Item = Digest>>(it: I) -> Self {
        let mut v: Vec<Digest> = it.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        DigestList(v.into())
    }
}

impl Extend<Digest> for DigestList {
    fn extend<I: IntoIterator<Item = Digest>>(&mut self, it: I) {
        *self = self.0.iter().copied().chain(it).collect();
    }
}

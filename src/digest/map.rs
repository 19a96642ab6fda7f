//! Compact collections keyed by digest: a sorted vector with a hash index of positions
//! ([`DigestMap`]), and a set that is a bitset over such a map's positions ([`DigestSet`]).
//!
//! A registry of millions of blobs keeps one entry per digest: the key once (33 bytes), the
//! value, and 4 bytes of index, where a `BTreeMap` beside a `HashMap` kept each key twice with
//! node and bucket overhead. Positions are dense ids (sorted order), so a mark is a bit.

use std::hash::Hasher as _;

use hashbrown::HashTable;
use rustc_hash::{FxHashSet, FxHasher};

use super::Digest;

fn hash(d: &Digest) -> u64 {
    let mut h = FxHasher::default();
    std::hash::Hash::hash(d, &mut h);
    h.finish()
}

/// A map from digest to `V`, sorted by digest, with hash lookups. Built once from its
/// entries (the scan and the graph build whole maps); [`DigestMap::insert`] is for the few
/// entries added later.
#[derive(Clone)]
pub struct DigestMap<V> {
    entries: Vec<(Digest, V)>,
    index: HashTable<u32>,
}

impl<V> Default for DigestMap<V> {
    fn default() -> Self {
        DigestMap {
            entries: Vec::new(),
            index: HashTable::new(),
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
    pub fn from_entries(mut entries: Vec<(Digest, V)>) -> Self {
        entries.shrink_to_fit();
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable: of equal keys the last stays last, and dedup keeps the first of a run.
            entries.sort_by_key(|e| e.0);
            entries.reverse();
            entries.dedup_by(|a, b| a.0 == b.0);
            entries.reverse();
        }
        let mut m = DigestMap {
            entries,
            index: HashTable::new(),
        };
        m.reindex();
        m
    }

    fn reindex(&mut self) {
        let entries = &self.entries;
        let mut index = HashTable::with_capacity(entries.len());
        for (i, (d, _)) in entries.iter().enumerate() {
            index.insert_unique(hash(d), i as u32, |&j| hash(&entries[j as usize].0));
        }
        self.index = index;
    }

    /// The position of `d` in digest order: a dense id in `0..len()`.
    pub fn id(&self, d: &Digest) -> Option<usize> {
        self.index
            .find(hash(d), |&i| self.entries[i as usize].0 == *d)
            .map(|&i| i as usize)
    }

    /// The entry at position `id`.
    pub fn at(&self, id: usize) -> (&Digest, &V) {
        let (d, v) = &self.entries[id];
        (d, v)
    }

    /// The value of `d`.
    pub fn get(&self, d: &Digest) -> Option<&V> {
        self.id(d).map(|i| &self.entries[i].1)
    }

    /// Whether `d` is a key.
    pub fn contains_key(&self, d: &Digest) -> bool {
        self.id(d).is_some()
    }

    /// Sets `d` to `v`, returning the value it replaces. A new key costs a rebuild of the
    /// index (linear): for a few late additions, not for building.
    pub fn insert(&mut self, d: Digest, v: V) -> Option<V> {
        if let Some(i) = self.id(&d) {
            return Some(std::mem::replace(&mut self.entries[i].1, v));
        }
        let at = self.entries.partition_point(|(k, _)| *k < d);
        self.entries.insert(at, (d, v));
        self.reindex();
        None
    }

    /// Adds `more` (of equal keys the last wins), rebuilding once.
    pub fn extend(&mut self, more: impl IntoIterator<Item = (Digest, V)>) {
        let mut all = std::mem::take(&mut self.entries);
        all.extend(more);
        *self = DigestMap::from_entries(all);
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in digest order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Digest, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(d, v)| (d, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Digest> + ExactSizeIterator {
        self.entries.iter().map(|(d, _)| d)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<V> FromIterator<(Digest, V)> for DigestMap<V> {
    fn from_iter<I: IntoIterator<Item = (Digest, V)>>(it: I) -> Self {
        DigestMap::from_entries(it.into_iter().collect())
    }
}

impl<'a, V> IntoIterator for &'a DigestMap<V> {
    type Item = (&'a Digest, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Digest, V)>,
        fn(&'a (Digest, V)) -> (&'a Digest, &'a V),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(d, v)| (d, v))
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

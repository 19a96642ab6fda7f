//! [`SortedMap`]: a map kept as one vector of pairs sorted by key, for the many small maps a
//! registry has one of per repository (tags): a `BTreeMap` built in key order leaves its
//! nodes about half full, more than twice the bytes of the pairs themselves, and 140,000 tags
//! are a few million bytes as a vector.

use std::borrow::Borrow;

/// A map sorted by key, with binary-search lookups. Inserting in key order (a sorted listing)
/// appends; out of order it shifts the tail (for the few entries added late).
#[derive(Clone, PartialEq, Eq)]
pub struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        SortedMap::default()
    }

    fn find<Q: Ord + ?Sized>(&self, k: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.entries.binary_search_by(|(e, _)| e.borrow().cmp(k))
    }

    /// The value of `k`.
    pub fn get<Q: Ord + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| &self.entries[i].1)
    }

    /// Whether `k` is a key.
    pub fn contains_key<Q: Ord + ?Sized>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(k).is_ok()
    }

    /// Sets `k` to `v`, returning the value it replaces.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        if self.entries.last().is_none_or(|(last, _)| *last < k) {
            self.entries.push((k, v));
            return None;
        }
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(i) => {
                self.entries.insert(i, (k, v));
                None
            }
        }
    }

    /// Removes `k`, returning its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(k).ok().map(|i| self.entries.remove(i).1)
    }

    /// Frees the spare capacity (a map built once and kept).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }
}

impl<K, V> SortedMap<K, V> {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, v)| v)
    }
}

/// `entries` sorted by key, one per key: of equal keys the last (as collecting into a
/// `BTreeMap`). Sorted input is left as it is.
pub(crate) fn sort_last_wins<K: Ord, V>(mut entries: Vec<(K, V)>) -> Vec<(K, V)> {
    if !entries.is_sorted_by(|a, b| a.0 < b.0) {
        // Stable: of equal keys the last stays last, and dedup keeps the first of a run.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.reverse();
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.reverse();
    }
    entries
}

/// The iterator of [`SortedMap::iter`].
pub type Iter<'a, K, V> =
    std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    /// Of equal keys the last wins (as collecting into a `BTreeMap`).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(it: I) -> Self {
        let mut entries = sort_last_wins(it.into_iter().collect());
        entries.shrink_to_fit();
        SortedMap { entries }
    }
}

impl<K: Ord, V> Extend<(K, V)> for SortedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, it: I) {
        for (k, v) in it {
            self.insert(k, v);
        }
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for SortedMap<K, V> {
    type Output = V;

    /// # Panics
    /// When `k` is not a key (as a `BTreeMap`).
    fn index(&self, k: &Q) -> &V {
        self.get(k).expect("key in SortedMap")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_btreemap() {
        let mut m = SortedMap::new();
        let mut b = std::collections::BTreeMap::new();
        for (i, k) in [5, 1, 9, 1, 7, 3, 9, 12, 0].into_iter().enumerate() {
            assert_eq!(m.insert(k, i), b.insert(k, i));
        }
        assert!(m.iter().eq(b.iter()));
        assert_eq!(m.remove(&7), b.remove(&7));
        assert_eq!(m.remove(&8), None);
        assert_eq!(m.get(&9), Some(&6));
        assert_eq!(m[&12], 7);
        assert!(!m.contains_key(&7));
        assert!(m.keys().eq(b.keys()));
        let c: SortedMap<i32, usize> = [(3, 1), (1, 2), (3, 4)].into_iter().collect();
        assert!(c.iter().eq([(&1, &2), (&3, &4)]));
        assert_eq!(m.len(), b.len());
    }
}

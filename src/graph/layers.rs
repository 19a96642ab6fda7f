//! [`LayerLinks`]: a repository's well-formed `_layers` links as the graph sees them, the
//! digest each names and the blob it reads (itself, or through an alias the stored blob).

use std::sync::Arc;

use crate::digest::Digest;

impl Default for LayerLinks {
    fn default() -> Self {
        LayerLinks {
            keys: Vec::new().into(),
            aliases: Vec::new(),
        }
    }
}

impl FromIterator<(Digest, Digest)> for LayerLinks {
    /// Of equal links the last wins.
    fn from_iter<I: IntoIterator<Item = (Digest, Digest)>>(it: I) -> Self {
        let m: std::collections::BTreeMap<Digest, Digest> = it.into_iter().collect();
        let mut keys = Vec::with_capacity(m.len());
        let mut aliases = Vec::new();
        for (i, (d, c)) in m.into_iter().enumerate() {
            if c != d {
                aliases.push((i as u32, c));
            }
            keys.push(d);
        }
        LayerLinks::shared(keys.into(), aliases)
    }
}

/// Path digest → canonical digest of each well-formed `_layers` link, sorted; nearly all name
/// themselves, so only aliases keep a second digest.
#[derive(Debug, Clone)]
pub struct LayerLinks {
    keys: Arc<[Digest]>,
    /// (position, canonical) of the aliases, by position.
    aliases: Vec<(u32, Digest)>,
}

impl LayerLinks {
    /// The links `keys` (sorted, no repeats; shared with the scan's list when every link is
    /// well formed), with `aliases` as (position, canonical), sorted by position.
    pub fn shared(keys: Arc<[Digest]>, aliases: Vec<(u32, Digest)>) -> Self {
        debug_assert!(keys.is_sorted_by(|a, b| a < b));
        debug_assert!(aliases.is_sorted_by_key(|(i, _)| *i));
        LayerLinks { keys, aliases }
    }

    fn canonical(&self, i: usize) -> Digest {
        match self.aliases.binary_search_by_key(&(i as u32), |(j, _)| *j) {
            Ok(a) => self.aliases[a].1,
            Err(_) => self.keys[i],
        }
    }

    /// The blob link `d` reads, if the repository links `d`.
    pub fn get(&self, d: &Digest) -> Option<Digest> {
        self.keys.binary_search(d).ok().map(|i| self.canonical(i))
    }

    /// Whether the repository links `d`.
    pub fn contains_key(&self, d: &Digest) -> bool {
        self.keys.binary_search(d).is_ok()
    }

    /// (link digest, blob it reads), in order of the links.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Digest, Digest)> + '_ {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, d)| (d, self.canonical(i)))
    }

    /// The blobs the links read, in order of the links.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = Digest> + '_ {
        (0..self.keys.len()).map(|i| self.canonical(i))
    }

    /// How many links.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
    fn links_read_themselves_or_their_alias_in_any_insertion_order() {
        let mut want = std::collections::BTreeMap::new();
        let mut pairs = Vec::new();
        for i in [5u32, 1, 9, 3, 1, 7] {
            let c = if i % 3 == 0 { d(100 + i) } else { d(i) };
            pairs.push((d(i), c));
            want.insert(d(i), c);
        }
        pairs.push((d(3), d(3)));
        want.insert(d(3), d(3));
        let l: LayerLinks = pairs.into_iter().collect();
        assert!(l.iter().map(|(k, v)| (*k, v)).eq(want.clone().into_iter()));
        assert_eq!(l.get(&d(9)), Some(d(109)));
        assert_eq!(l.get(&d(3)), Some(d(3)));
        assert_eq!(l.get(&d(4)), None);
        assert_eq!(l.len(), want.len());
    }
}

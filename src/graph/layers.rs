//! [`LayerLinks`]: a repository's well-formed `_layers` links as the graph sees them, the
//! digest each names and the blob it reads (itself, or through an alias the stored blob).

use crate::digest::Digest;

/// Path digest → canonical digest of each well-formed `_layers` link, sorted; nearly all name
/// themselves, so only aliases keep a second digest.
#[derive(Debug, Clone, Default)]
pub struct LayerLinks {
    keys: Vec<Digest>,
    /// (position, canonical) of the aliases, by position.
    aliases: Vec<(u32, Digest)>,
}

impl LayerLinks {
    /// Adds link `d` reading `canonical` (links come in order; out of order costs a shift).
    pub fn insert(&mut self, d: Digest, canonical: Digest) {
        let at = if self.keys.last().is_none_or(|l| *l < d) {
            self.keys.len()
        } else {
            match self.keys.binary_search(&d) {
                Ok(i) => {
                    self.aliases.retain(|(j, _)| *j as usize != i);
                    if canonical != d {
                        self.add_alias(i, canonical);
                    }
                    return;
                }
                Err(i) => i,
            }
        };
        self.keys.insert(at, d);
        for (j, _) in self.aliases.iter_mut().filter(|(j, _)| *j as usize >= at) {
            *j += 1;
        }
        if canonical != d {
            self.add_alias(at, canonical);
        }
    }

    fn add_alias(&mut self, i: usize, canonical: Digest) {
        let at = self.aliases.partition_point(|(j, _)| (*j as usize) < i);
        self.aliases.insert(at, (i as u32, canonical));
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

    /// Drops spare capacity (once built).
    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.aliases.shrink_to_fit();
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
        let mut l = LayerLinks::default();
        for i in [5u32, 1, 9, 3, 1, 7] {
            let c = if i % 3 == 0 { d(100 + i) } else { d(i) };
            l.insert(d(i), c);
            want.insert(d(i), c);
        }
        l.insert(d(3), d(3));
        want.insert(d(3), d(3));
        assert!(l.iter().map(|(k, v)| (*k, v)).eq(want.clone().into_iter()));
        assert_eq!(l.get(&d(9)), Some(d(109)));
        assert_eq!(l.get(&d(3)), Some(d(3)));
        assert_eq!(l.get(&d(4)), None);
        assert_eq!(l.len(), want.len());
    }
}

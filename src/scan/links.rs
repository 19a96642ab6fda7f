//! [`LinkMap`]: one directory's link files (a repository's `_layers` or `_manifests/revisions`,
//! a tag's `index`), compact.
//!
//! Nearly every link holds the digest its path names, and a scan by names has no mtimes, so a
//! link costs its key (33 bytes); what differs (another digest, a problem) and mtimes are kept
//! aside only when there are any.

use std::time::SystemTime;

use super::{Link, LinkProblem};
use crate::digest::Digest;

/// Link files keyed by the digest in their path, sorted. One pointer when empty (most tags'
/// `index` in a scan by names).
#[derive(Debug, Clone, Default)]
pub struct LinkMap(Option<Box<Inner>>);

#[derive(Debug, Clone)]
struct Inner {
    /// Shared with the graph's view of the same links when all are well formed.
    keys: std::sync::Arc<[Digest]>,
    /// Empty when no link has a known mtime, else one per key.
    mtimes: Box<[Option<SystemTime>]>,
    /// Targets that are not `Ok(key)`, by position, sorted.
    odd: Box<[(u32, Result<Digest, LinkProblem>)]>,
}

impl LinkMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map of `entries`; of equal keys the last wins.
    pub fn from_entries(mut entries: Vec<(Digest, Link)>) -> Self {
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            entries.sort_by_key(|e| e.0);
            entries.reverse();
            entries.dedup_by(|a, b| a.0 == b.0);
            entries.reverse();
        }
        if entries.is_empty() {
            return LinkMap(None);
        }
        let mut keys = Vec::with_capacity(entries.len());
        let mut mtimes = Vec::new();
        let mut odd = Vec::new();
        let timed = entries.iter().any(|(_, l)| l.mtime.is_some());
        if timed {
            mtimes.reserve_exact(entries.len());
        }
        for (i, (d, l)) in entries.into_iter().enumerate() {
            keys.push(d);
            if timed {
                mtimes.push(l.mtime);
            }
            if l.target.as_ref() != Ok(&d) {
                odd.push((i as u32, l.target));
            }
        }
        LinkMap(Some(Box::new(Inner {
            keys: keys.into(),
            mtimes: mtimes.into_boxed_slice(),
            odd: odd.into_boxed_slice(),
        })))
    }

    /// The names, shared (the graph keeps the same list without a copy).
    pub fn shared_keys(&self) -> std::sync::Arc<[Digest]> {
        self.0
            .as_ref()
            .map_or_else(|| std::sync::Arc::from(Vec::new()), |m| m.keys.clone())
    }

    fn keys_slice(&self) -> &[Digest] {
        self.0.as_ref().map_or(&[], |m| &m.keys)
    }

    fn link(&self, i: usize) -> Option<Link> {
        let m = self.0.as_deref()?;
        let target = match m.odd.binary_search_by_key(&(i as u32), |(j, _)| *j) {
            Ok(o) => m.odd[o].1.clone(),
            Err(_) => Ok(*m.keys.get(i)?),
        };
        Some(Link {
            target,
            mtime: m.mtimes.get(i).copied().flatten(),
        })
    }

    /// The link named `d`.
    pub fn get(&self, d: &Digest) -> Option<Link> {
        self.keys_slice()
            .binary_search(d)
            .ok()
            .and_then(|i| self.link(i))
    }

    /// Whether a link is named `d`.
    pub fn contains_key(&self, d: &Digest) -> bool {
        self.keys_slice().binary_search(d).is_ok()
    }

    /// The links in order of their names.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            map: self,
            range: 0..self.len(),
        }
    }

    /// Their names, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Digest> + ExactSizeIterator {
        self.keys_slice().iter()
    }

    /// The links, in order of their names.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = Link> + '_ {
        (0..self.len()).filter_map(|i| self.link(i))
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.keys_slice().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Adds `more` (of equal keys the last wins).
    pub fn extend(&mut self, more: LinkMap) {
        if self.is_empty() {
            *self = more;
            return;
        }
        let mut all: Vec<(Digest, Link)> = self.iter().map(|(d, l)| (*d, l)).collect();
        all.extend(more.iter().map(|(d, l)| (*d, l)));
        *self = LinkMap::from_entries(all);
    }
}

/// The links of a [`LinkMap`], in order of their names.
pub struct Iter<'a> {
    map: &'a LinkMap,
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Digest, Link);

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.range.next()?;
        Some((self.map.keys_slice().get(i)?, self.map.link(i)?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let i = self.range.next_back()?;
        Some((self.map.keys_slice().get(i)?, self.map.link(i)?))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a LinkMap {
    type Item = (&'a Digest, Link);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(Digest, Link)> for LinkMap {
    fn from_iter<I: IntoIterator<Item = (Digest, Link)>>(it: I) -> Self {
        LinkMap::from_entries(it.into_iter().collect())
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
    fn links_come_back_as_they_went_in() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7);
        let links = vec![
            (
                d(3),
                Link {
                    target: Ok(d(3)),
                    mtime: None,
                },
            ),
            (
                d(1),
                Link {
                    target: Ok(d(9)),
                    mtime: Some(t),
                },
            ),
            (
                d(2),
                Link {
                    target: Err(LinkProblem::Malformed("x".into())),
                    mtime: None,
                },
            ),
            (
                d(3),
                Link {
                    target: Ok(d(3)),
                    mtime: Some(t),
                },
            ),
        ];
        let m: LinkMap = links.clone().into_iter().collect();
        let want: std::collections::BTreeMap<Digest, Link> = links.into_iter().collect();
        assert_eq!(m.len(), want.len());
        for ((k, l), (wk, wl)) in m.iter().zip(&want) {
            assert_eq!((k, &l.target, l.mtime), (wk, &wl.target, wl.mtime));
        }
        assert_eq!(m.get(&d(1)).unwrap().target, Ok(d(9)));
        assert!(!m.contains_key(&d(4)));
        let untimed: LinkMap = [(
            d(5),
            Link {
                target: Ok(d(5)),
                mtime: None,
            },
        )]
        .into_iter()
        .collect();
        let inner = untimed.0.as_ref().unwrap();
        assert!(inner.mtimes.is_empty() && inner.odd.is_empty());
        assert_eq!(std::mem::size_of::<LinkMap>(), 8);
        assert!(LinkMap::from_entries(Vec::new()).is_empty());
    }
}

//! Content digests (`sha256:<hex>`), strict parsing, and hashing files.
//!
//! A [`Digest`] can only hold a registered algorithm and lower-case hex of the right length, so a
//! digest can never contain `/`, `..` or anything else that would escape a path.

use std::fmt;
use std::str::FromStr;

pub mod map;

pub use map::{DigestList, DigestMap, DigestSet, SparseDigestSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A digest algorithm the registry registers (go-digest v1.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-256, the only algorithm the registry writes blobs with.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written in digests and paths.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hash in bytes.
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }

    /// Parses an algorithm name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Empty input.
    #[error("empty digest")]
    Empty,
    /// No `algorithm:` prefix.
    #[error("invalid digest format (want <algorithm>:<hex>)")]
    Format,
    /// An algorithm the registry does not know.
    #[error("unsupported digest algorithm {0:?}")]
    Algorithm(String),
    /// The hex part has the wrong length (a trailing newline lands here too).
    #[error("invalid digest length: {got} characters of hex for {alg}, want {want}")]
    Length {
        /// The algorithm.
        alg: &'static str,
        /// Characters found.
        got: usize,
        /// Characters expected.
        want: usize,
    },
    /// The hex part holds something other than lower-case hex.
    #[error("invalid digest: hex part must be lower-case hexadecimal")]
    Hex,
}

/// A content digest: algorithm and hash bytes.
///
/// Ordered by algorithm, then bytes (the order of the text form). Digests are map keys
/// everywhere, so a digest is small: 33 bytes. A sha256 hash (all the registry writes) is held
/// whole; a longer hash (sha384, sha512: rare, a client's choice) keeps its first 24 bytes in
/// place and the rest in a process-wide table of the long hashes seen, interned once, so equal
/// digests are equal bytes and comparisons rarely look at the table. Comparison looks at the
/// first eight bytes as one integer before the rest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    alg: Algorithm,
    bytes: [u8; 32],
}

/// The long hashes (sha384, sha512) seen by this process: each is leaked once and named by its
/// index, which a [`Digest`] keeps in its last 8 bytes. Digests are built by the hundred
/// thousand; long ones are a handful.
struct LongHashes {
    index: std::collections::HashMap<[u8; 64], u64>,
    all: Vec<&'static [u8; 64]>,
}

static LONG: std::sync::Mutex<Option<LongHashes>> = std::sync::Mutex::new(None);

fn long_hashes<T>(f: impl FnOnce(&mut LongHashes) -> T) -> T {
    // A panic while holding the lock cannot leave the table half-changed (one push, one
    // insert), so a poisoned lock is still good.
    let mut g = LONG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(g.get_or_insert_with(|| LongHashes {
        index: std::collections::HashMap::new(),
        all: Vec::new(),
    }))
}

const INLINE: usize = 24;

impl Digest {
    /// Builds a digest from an algorithm and its hash bytes (`bytes.len()` must be `alg.hash_len()`).
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Option<Self> {
        (bytes.len() == alg.hash_len()).then(|| Digest::held(alg, bytes))
    }

    /// The digest of `bytes`, of the length `alg` has.
    fn held(alg: Algorithm, bytes: &[u8]) -> Self {
        let mut b = [0u8; 32];
        if alg == Algorithm::Sha256 {
            b.copy_from_slice(bytes);
        } else {
            let mut full = [0u8; 64];
            full[..bytes.len()].copy_from_slice(bytes);
            let id = long_hashes(|t| {
                if let Some(&id) = t.index.get(&full) {
                    return id;
                }
                let id = t.all.len() as u64;
                t.all.push(Box::leak(Box::new(full)));
                t.index.insert(full, id);
                id
            });
            b[..INLINE].copy_from_slice(&bytes[..INLINE]);
            b[INLINE..].copy_from_slice(&id.to_le_bytes());
        }
        Digest { alg, bytes: b }
    }

    /// Parses the parts of a path: an algorithm directory and a hex directory.
    pub fn from_parts(alg: &str, hex: &str) -> Result<Self, DigestError> {
        let alg = Algorithm::from_name(alg).ok_or_else(|| DigestError::Algorithm(alg.into()))?;
        let want = alg.hash_len() * 2;
        if hex.len() != want {
            return Err(DigestError::Length {
                alg: alg.name(),
                got: hex.len(),
                want,
            });
        }
        // Lower-case hex only, decoded in the same pass through a table (digests are parsed
        // by the hundred thousand: every blob directory, link and descriptor); any invalid
        // character sets the high bit of `bad`.
        const NIBBLE: [u8; 256] = {
            let mut t = [0x80u8; 256];
            let mut i = 0;
            while i < 10 {
                t[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                t[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            t
        };
        let mut b = [0u8; 64];
        let b = &mut b[..alg.hash_len()];
        let mut bad = 0u8;
        for (out, pair) in b.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            bad |= hi | lo;
            *out = hi << 4 | (lo & 0x0f);
        }
        if bad & 0x80 != 0 {
            return Err(DigestError::Hex);
        }
        Ok(Digest::held(alg, b))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The hash bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.alg == Algorithm::Sha256 {
            return &self.bytes;
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.bytes[INLINE..]);
        let id = u64::from_le_bytes(id);
        let full: &'static [u8; 64] = long_hashes(|t| t.all[id as usize]);
        &full[..self.alg.hash_len()]
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> String {
        let mut buf = [0u8; 128];
        String::from(self.hex_into(&mut buf))
    }

    /// Writes the hex part into `buf`, returning it as text.
    fn hex_into<'a>(&self, buf: &'a mut [u8; 128]) -> &'a str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = self.bytes();
        for (i, b) in bytes.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        // Only ASCII hex digits were written.
        std::str::from_utf8(&buf[..2 * bytes.len()]).unwrap_or_default()
    }

    /// The digest of the empty string for this algorithm.
    pub fn empty(alg: Algorithm) -> Self {
        hash_bytes(alg, b"")
    }
}

impl Ord for Digest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let head = |d: &Digest| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d.bytes[..8]);
            u64::from_be_bytes(b)
        };
        self.alg
            .cmp(&other.alg)
            .then_with(|| head(self).cmp(&head(other)))
            .then_with(|| {
                if self.alg == Algorithm::Sha256 || self == other {
                    self.bytes[8..].cmp(&other.bytes[8..])
                } else {
                    self.bytes().cmp(other.bytes())
                }
            })
    }
}

impl std::hash::Hash for Digest {
    /// The held bytes as words (a long hash is interned once, so this agrees with `Eq`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.alg as u8);
        for w in self.bytes.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            state.write_u64(u64::from_le_bytes(b));
        }
    }
}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Strict, as go-digest's `Parse`: no whitespace, no trailing newline, lower-case hex.
    fn from_str(s: &str) -> Result<Self, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Format)?;
        if alg.is_empty() || hex.is_empty() {
            return Err(DigestError::Format);
        }
        Digest::from_parts(alg, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 128];
        f.write_str(self.alg.name())?;
        f.write_str(":")?;
        f.write_str(self.hex_into(&mut buf))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A running hash of one of the algorithms.
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A new hasher.
    pub fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let (alg, out): (Algorithm, Vec<u8>) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha384(h) => (Algorithm::Sha384, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest::from_bytes(alg, &out).expect("hash output has the algorithm's length")
    }
}

/// Hashes a byte slice.
pub fn hash_bytes(alg: Algorithm, data: &[u8]) -> Digest {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finish()
}

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The run was interrupted.
    #[error("interrupted")]
    Interrupted,
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn order_is_the_order_of_the_text_and_hex_round_trips() {
        let mut texts: Vec<String> = (0u32..200)
            .map(|i| {
                let d = hash_bytes(Algorithm::Sha256, &i.to_le_bytes());
                // Digests equal in their first bytes must still order by the rest.
                let mut hex = d.hex();
                if i % 3 == 0 {
                    hex.replace_range(..16, "0123456789abcdef");
                }
                format!("sha256:{hex}")
            })
            .chain([
                format!("sha512:{}", "0".repeat(128)),
                format!("sha384:{}", "f".repeat(96)),
            ])
            .collect();
        let mut digests: Vec<Digest> = texts.iter().map(|t| t.parse().unwrap()).collect();
        digests.sort();
        texts.sort_by_key(|t| {
            let (alg, hex) = t.split_once(':').unwrap();
            (Algorithm::from_name(alg).unwrap(), hex.to_string())
        });
        let rendered: Vec<String> = digests.iter().map(ToString::to_string).collect();
        assert_eq!(rendered, texts);
        assert!(
            format!("sha256:{}", E.to_uppercase())
                .parse::<Digest>()
                .is_err()
        );
        assert!(format!("sha256:{}g", &E[..63]).parse::<Digest>().is_err());
    }

    #[test]
    fn parse_and_render_round_trip() {
        let s = format!("sha256:{E}");
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(d, Digest::empty(Algorithm::Sha256));
        assert_eq!(d.hex(), E);
    }

    #[test]
    fn strict_parsing() {
        assert_eq!("".parse::<Digest>(), Err(DigestError::Empty));
        assert_eq!(E.parse::<Digest>(), Err(DigestError::Format));
        assert!(matches!(
            format!("sha256:{E}\n").parse::<Digest>(),
            Err(DigestError::Length { got: 65, .. })
        ));
        assert_eq!(
            format!("sha256:{}", E.to_uppercase()).parse::<Digest>(),
            Err(DigestError::Hex)
        );
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::Algorithm(_))
        ));
        assert!("sha256:../../etc/passwd".parse::<Digest>().is_err());
        let traversal = format!("sha256:../../{}", &E[6..]);
        assert!(traversal.parse::<Digest>().is_err());
    }

    #[test]
    fn a_digest_is_small_and_long_hashes_are_interned() {
        assert_eq!(std::mem::size_of::<Digest>(), 33);
        let a = hash_bytes(Algorithm::Sha512, b"abc");
        let b: Digest = a.to_string().parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.bytes().len(), 64);
        // Equal in their first 24 bytes, different after: not equal, ordered by the rest.
        let mut hex = a.hex();
        hex.replace_range(120.., "ffffffff");
        let c: Digest = format!("sha512:{hex}").parse().unwrap();
        assert_ne!(a, c);
        assert!(a < c);
        assert_eq!(c.hex(), hex);
    }

    #[test]
    fn sha512_and_sha384() {
        let d = hash_bytes(Algorithm::Sha512, b"abc");
        assert_eq!(d.to_string().len(), "sha512:".len() + 128);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        let d = hash_bytes(Algorithm::Sha384, b"abc");
        assert_eq!(d.hex().len(), 96);
    }
}

//! Content digests (`sha256:<hex>`), strict parsing, and hashing files.
//!
//! A [`Digest`] can only hold a registered algorithm and lower-case hex of the right length, so a
//! digest can never contain `/`, `..` or anything else that would escape a path.

use std::fmt;
use std::str::FromStr;

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
/// everywhere; comparison looks at the first eight bytes as one integer before the rest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    alg: Algorithm,
    bytes: [u8; 64],
}

impl Digest {
    /// Builds a digest from an algorithm and its hash bytes (`bytes.len()` must be `alg.hash_len()`).
    pub fn from_bytes(alg: Algorithm, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != alg.hash_len() {
            return None;
        }
        let mut b = [0u8; 64];
        b[..bytes.len()].copy_from_slice(bytes);
        Some(Digest { alg, bytes: b })
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
        let mut bad = 0u8;
        for (out, pair) in b.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            bad |= hi | lo;
            *out = hi << 4 | (lo & 0x0f);
        }
        if bad & 0x80 != 0 {
            return Err(DigestError::Hex);
        }
        Ok(Digest { alg, bytes: b })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The hash bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.alg.hash_len()]
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
            .then_with(|| self.bytes[8..].cmp(&other.bytes[8..]))
    }
}

impl std::hash::Hash for Digest {
    /// The hash bytes as words (unused bytes are always zero, so this agrees with `Eq`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(self.alg as u8);
        for w in self.bytes().chunks_exact(8) {
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
    fn sha512_and_sha384() {
        let d = hash_bytes(Algorithm::Sha512, b"abc");
        assert_eq!(d.to_string().len(), "sha512:".len() + 128);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        let d = hash_bytes(Algorithm::Sha384, b"abc");
        assert_eq!(d.hex().len(), 96);
    }
}

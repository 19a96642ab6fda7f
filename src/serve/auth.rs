//! Basic authentication from an htpasswd file, as the registry's `htpasswd` auth: bcrypt
//! entries only, a `Basic` challenge with the realm, `401 UNAUTHORIZED` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;

use crate::digest::{Algorithm, Digest, hash_bytes};
use crate::error::{Error, Result};

/// Users and their bcrypt hashes.
#[derive(Debug)]
pub struct Htpasswd {
    users: BTreeMap<String, String>,
    /// Credentials already checked, keyed by user and a hash of the password, so bcrypt (slow
    /// by design) runs once per client rather than once per request.
    verified: Mutex<BTreeSet<(String, Digest)>>,
}

impl Htpasswd {
    /// Reads an htpasswd file (`user:$2y$...` lines; blank lines and `#` comments skipped).
    ///
    /// # Errors
    /// [`Error::Config`] naming the line when it is not a bcrypt entry.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?; // not registry data: the htpasswd file
        let mut users = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::Config {
                path: path.to_path_buf(),
                reason: format!("line {}: {why}", i + 1),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("not user:hash"))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(bad("only bcrypt entries are supported (htpasswd -B)"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(BTreeSet::new()),
        })
    }

    /// Whether an `Authorization` header value carries valid credentials.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(encoded) = authorization.and_then(|v| v.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, pass)) = text.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key = (
            user.to_string(),
            hash_bytes(Algorithm::Sha256, pass.as_bytes()),
        );
        if self.verified.lock().is_ok_and(|v| v.contains(&key)) {
            return true;
        }
        let ok = bcrypt::verify(pass, hash).unwrap_or(false);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                v.insert(key);
            }
        }
        ok
    }
}

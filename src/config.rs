//! Finding the storage root from the registry's own `config.yml`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The registry's default `rootdirectory` for the filesystem driver.
pub const DEFAULT_ROOTDIRECTORY: &str = "/var/lib/registry";
/// The environment variable that overrides the config, as the registry reads it.
pub const ROOT_ENV_OVERRIDE: &str = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY";

/// Reads `storage.filesystem.rootdirectory` from a registry config file. `env_override` is the
/// value of `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`, which wins as it does in the registry.
///
/// # Errors
/// [`Error::Config`] when the file cannot be read or parsed, or configures another driver.
pub fn rootdirectory(path: &Path, env_override: Option<&str>) -> Result<PathBuf> {
    let err = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    if let Some(dir) = env_override.filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let storage = doc
        .get("storage")
        .ok_or_else(|| err("no storage section".into()))?;
    let Some(fs) = storage.get("filesystem") else {
        let drivers: Vec<String> = storage
            .as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .filter(|k| {
                        !matches!(
                            k.as_str(),
                            "delete" | "maintenance" | "cache" | "redirect" | "tag"
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Err(err(format!(
            "storage driver is not filesystem (found: {})",
            if drivers.is_empty() {
                "none".to_string()
            } else {
                drivers.join(", ")
            }
        )));
    };
    match fs.get("rootdirectory") {
        None => Ok(PathBuf::from(DEFAULT_ROOTDIRECTORY)),
        Some(v) => v
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| err("storage.filesystem.rootdirectory is not a string".into())),
    }
}

/// Whether the registry config makes a pull-through cache (`proxy.remoteurl` set, or the
/// `REGISTRY_PROXY_REMOTEURL` override `env_override`).
///
/// # Errors
/// [`Error::Config`] when the file cannot be read or parsed.
pub fn is_proxy(path: &Path, env_override: Option<&str>) -> Result<bool> {
    if env_override.is_some_and(|s| !s.is_empty()) {
        return Ok(true);
    }
    let err = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    Ok(doc
        .get("proxy")
        .and_then(|p| p.get("remoteurl"))
        .and_then(|u| u.as_str())
        .is_some_and(|u| !u.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn reads_rootdirectory() {
        let f = cfg(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\n  delete: {enabled: true}\n",
        );
        assert_eq!(
            rootdirectory(f.path(), None).unwrap(),
            PathBuf::from("/srv/reg")
        );
        assert_eq!(
            rootdirectory(f.path(), Some("/other")).unwrap(),
            PathBuf::from("/other")
        );
        let f = cfg("storage:\n  filesystem: {}\n");
        assert_eq!(
            rootdirectory(f.path(), None).unwrap(),
            PathBuf::from(DEFAULT_ROOTDIRECTORY)
        );
    }

    #[test]
    fn rejects_other_drivers_and_garbage() {
        let f = cfg("storage:\n  s3: {bucket: x}\n  delete: {enabled: true}\n");
        let e = rootdirectory(f.path(), None).unwrap_err().to_string();
        assert!(e.contains("not filesystem (found: s3)"), "{e}");
        let f = cfg(": : :\n\t- [");
        assert!(rootdirectory(f.path(), None).is_err());
        assert!(rootdirectory(Path::new("/nonexistent/config.yml"), None).is_err());
    }
}

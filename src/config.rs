//! Reading the registry's own `config.yml`: the storage root, and for `serve` the `http` and
//! `auth` sections (with the registry's `REGISTRY_*` environment overrides), so that a server
//! started from the registry's config listens, encrypts and authenticates as the registry would,
//! or refuses to start.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

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
    let doc = read_yaml(path)?;
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

/// Where the registry's config says its storage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSpec {
    /// `storage.filesystem.rootdirectory`.
    Filesystem(PathBuf),
    /// `storage.s3`.
    S3(crate::storage::object::S3Spec),
}

/// Reads the storage section of a registry config, with the registry's `REGISTRY_STORAGE_*`
/// environment overrides (`env`: every `REGISTRY_*` variable): the filesystem root, or the
/// bucket (`storage.s3`: `bucket`, `region`, `regionendpoint`, `accesskey`, `secretkey`,
/// `rootdirectory`, `secure`; the registry 2.8 uses path-style requests whenever
/// `regionendpoint` is set, v3 reads `forcepathstyle`).
///
/// # Errors
/// [`Error::Config`] when the file cannot be read or parsed, configures no storage regfsck
/// knows, or an s3 block without a bucket.
pub fn storage_spec(path: &Path, env: &[(String, String)]) -> Result<StorageSpec> {
    let err = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let mut doc = read_yaml(path)?;
    apply_env_of(&mut doc, env, &["STORAGE"]);
    let storage = doc
        .get("storage")
        .ok_or_else(|| err("no storage section".into()))?;
    if let Some(fs) = storage.get("filesystem") {
        return match fs.get("rootdirectory") {
            None => Ok(StorageSpec::Filesystem(PathBuf::from(
                DEFAULT_ROOTDIRECTORY,
            ))),
            Some(v) => v
                .as_str()
                .map(|s| StorageSpec::Filesystem(PathBuf::from(s)))
                .ok_or_else(|| err("storage.filesystem.rootdirectory is not a string".into())),
        };
    }
    if let Some(s3) = storage.get("s3") {
        let text = |k: &str| -> Option<String> {
            s3.get(k).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
        };
        let flag = |k: &str| text(k).map(|v| v == "true");
        let bucket = text("bucket").ok_or_else(|| err("storage.s3 has no bucket".into()))?;
        let endpoint = text("regionendpoint").filter(|e| !e.is_empty()).map(|e| {
            if e.contains("://") {
                e
            } else if flag("secure") == Some(false) {
                format!("http://{e}")
            } else {
                format!("https://{e}")
            }
        });
        // 2.8 forces path style whenever regionendpoint is set; v3 reads forcepathstyle.
        let path_style = flag("forcepathstyle").unwrap_or(false) || endpoint.is_some();
        return Ok(StorageSpec::S3(crate::storage::object::S3Spec {
            bucket,
            prefix: text("rootdirectory")
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            region: text("region"),
            endpoint,
            access_key: text("accesskey").filter(|k| !k.is_empty()),
            secret_key: text("secretkey").filter(|k| !k.is_empty()),
            session_token: text("sessiontoken").filter(|k| !k.is_empty()),
            virtual_hosted: !path_style,
            concurrency: 64,
            write_rate: crate::storage::object::DEFAULT_WRITE_RATE,
        }));
    }
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
    Err(err(format!(
        "storage driver is neither filesystem nor s3 (found: {})",
        if drivers.is_empty() {
            "none".to_string()
        } else {
            drivers.join(", ")
        }
    )))
}

/// A listen address as the registry's `http.addr` writes it (Go's `host:port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddr {
    /// `:PORT`: every interface (IPv6 and IPv4 where the system has IPv6, else IPv4).
    Any(u16),
    /// `HOST:PORT` or `[IPv6]:PORT`; a host name is resolved once, when parsed.
    Socket(SocketAddr),
}

impl ListenAddr {
    /// `serve`'s default: port 5000 on loopback only.
    pub const DEFAULT: ListenAddr = ListenAddr::Socket(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        5000,
    ));

    /// Parses `:5000`, `host:5000`, `192.0.2.1:5000` or `[::1]:5000`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("{s:?}: {p:?} is not a port number"))
        };
        if let Some(p) = s.strip_prefix(':') {
            return port(p).map(ListenAddr::Any);
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr::Socket(a));
        }
        let Some((host, p)) = s.rsplit_once(':') else {
            return Err(format!("{s:?}: expected HOST:PORT, [IPv6]:PORT or :PORT"));
        };
        let p = port(p)?;
        if host.contains(':') || host.starts_with('[') {
            return Err(format!(
                "{s:?}: not an address (an IPv6 address goes in brackets: [::1]:5000)"
            ));
        }
        (host, p)
            .to_socket_addrs()
            .map_err(|e| format!("{s:?}: cannot resolve {host:?}: {e}"))?
            .next()
            .map(ListenAddr::Socket)
            .ok_or_else(|| format!("{s:?}: {host:?} has no address"))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Any(p) => write!(f, ":{p}"),
            ListenAddr::Socket(a) => write!(f, "{a}"),
        }
    }
}

/// The lowest TLS version accepted (`http.tls.minimumtls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (the registry's default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        })
    }
}

/// `http.tls`, as `serve` applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `certificate`: the PEM certificate chain.
    pub certificate: PathBuf,
    /// `key`: its PEM private key.
    pub key: PathBuf,
    /// `clientcas`: PEM files of the CAs client certificates must chain to; when not empty,
    /// every client must present a valid certificate.
    pub client_cas: Vec<PathBuf>,
    /// `minimumtls`.
    pub minimum: TlsVersion,
    /// `ciphersuites` (Go's names); empty: every suite rustls offers.
    pub cipher_suites: Vec<String>,
}

/// `auth.htpasswd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdSettings {
    /// `path`: the htpasswd file (relative to the current directory, as in the registry).
    pub path: PathBuf,
    /// `realm`, when set.
    pub realm: Option<String>,
}

/// What `serve` takes from the registry's config (after the environment overrides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSettings {
    /// `http.addr`.
    pub addr: Option<ListenAddr>,
    /// `http.tls`, when it configures a certificate.
    pub tls: Option<TlsSettings>,
    /// `auth.htpasswd`.
    pub htpasswd: Option<HtpasswdSettings>,
    /// `http.headers`: (name, value) pairs added to every response, as the registry does.
    pub headers: Vec<(String, String)>,
    /// Keys set in `http` that `serve` does not apply (none of them is about security:
    /// `host`, `secret`, `prefix`, `debug`, ...).
    pub not_applied: Vec<String>,
    /// Settings applied differently from the registry, and why.
    pub notes: Vec<String>,
}

impl ServeSettings {
    /// What was taken from the config, one item per section, for the start-up log.
    pub fn taken(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(a) = &self.addr {
            v.push(format!("http.addr {a}"));
        }
        if let Some(t) = &self.tls {
            let mut s = format!(
                "http.tls (certificate {}, key {}",
                t.certificate.display(),
                t.key.display()
            );
            if !t.client_cas.is_empty() {
                s.push_str(&format!(", clientcas {}", t.client_cas.len()));
            }
            s.push_str(&format!(", minimumtls {}", t.minimum));
            if !t.cipher_suites.is_empty() {
                s.push_str(&format!(", ciphersuites {}", t.cipher_suites.len()));
            }
            s.push(')');
            v.push(s);
        }
        if let Some(h) = &self.htpasswd {
            let mut s = format!("auth.htpasswd (path {}", h.path.display());
            if let Some(r) = &h.realm {
                s.push_str(&format!(", realm {r:?}"));
            }
            s.push(')');
            v.push(s);
        }
        if !self.headers.is_empty() {
            v.push(format!("http.headers ({})", self.headers.len()));
        }
        v
    }
}

/// The prefix of the registry's environment overrides.
pub const ENV_PREFIX: &str = "REGISTRY_";

/// Reads the `http` and `auth` sections of a registry config for `serve`, after applying the
/// `REGISTRY_HTTP*` and `REGISTRY_AUTH*` variables of `env` (name, value) as the registry does:
/// the name less `REGISTRY_`, split at `_`, is a path into the config (matched
/// case-insensitively, created when missing), the value is read as YAML, and variables apply
/// in the order of their names. A number in the path indexes a list, so
/// `REGISTRY_HTTP_TLS_CLIENTCAS_0` sets the first client CA (`REGISTRY_HTTP_TLS_CLIENTCAS`
/// takes a whole YAML list).
///
/// # Errors
/// [`Error::Config`] when the file cannot be read or parsed, and for every setting `serve`
/// cannot honour and would otherwise serve more openly than the registry: an `http.net` other
/// than tcp, Let's Encrypt, half a TLS configuration, an unknown `minimumtls`, an auth type
/// other than htpasswd (or several), htpasswd without a path.
pub fn serve_settings(path: &Path, env: &[(String, String)]) -> Result<ServeSettings> {
    let err = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?; // not registry data: the registry config file
    let mut doc: Value =
        serde_norway::from_str(&text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    apply_env(&mut doc, env);
    let mut out = ServeSettings::default();
    match doc.get("http") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(http)) => {
            for (k, v) in http {
                let Some(k) = k.as_str() else { continue };
                let name = format!("http.{k}");
                match k {
                    "addr" => {
                        if let Some(a) = string(v, &name).map_err(err)? {
                            out.addr = Some(
                                ListenAddr::parse(&a).map_err(|e| err(format!("{name} {e}")))?,
                            );
                        }
                    }
                    "net" => match string(v, &name).map_err(err)?.as_deref() {
                        None | Some("tcp") => {}
                        Some(n) => {
                            return Err(err(format!(
                                "{name} {n} is not supported: serve listens on TCP only"
                            )));
                        }
                    },
                    "tls" => {
                        let t = tls(v, &mut out).map_err(err)?;
                        out.tls = t;
                    }
                    "headers" => out.headers = headers(v).map_err(err)?,
                    // serve speaks HTTP/1.1 only, whether or not HTTP/2 is disabled.
                    "http2" => {}
                    _ if is_set(v) => out.not_applied.push(name),
                    _ => {}
                }
            }
        }
        Some(_) => return Err(err("http is not a mapping".into())),
    }
    out.htpasswd = auth(doc.get("auth")).map_err(err)?;
    Ok(out)
}

/// Applies the registry's environment overrides of `http` and `auth` to `doc`.
fn apply_env(doc: &mut Value, env: &[(String, String)]) {
    apply_env_of(doc, env, &["HTTP", "AUTH"]);
}

/// Applies the registry's environment overrides of the top-level `sections` (upper case) to
/// `doc`: `REGISTRY_<SECTION>_<KEY>...` sets `<section>.<key>...`, its value read as YAML.
fn apply_env_of(doc: &mut Value, env: &[(String, String)], sections: &[&str]) {
    let mut env: Vec<&(String, String)> = env.iter().collect();
    env.sort();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<&str> = rest.split('_').collect();
        if !path.first().is_some_and(|p| sections.contains(p)) {
            continue;
        }
        let payload = match serde_norway::from_str::<Value>(value) {
            Ok(v) => v,
            Err(_) => Value::String(value.clone()),
        };
        set_path(doc, &path, payload);
    }
}

fn set_path(node: &mut Value, path: &[&str], payload: Value) {
    let Some((head, tail)) = path.split_first() else {
        *node = payload;
        return;
    };
    if let Ok(i) = head.parse::<usize>() {
        if node.is_null() {
            *node = Value::Sequence(Vec::new());
        }
        if let Value::Sequence(seq) = node {
            // An index far past the end is a typo, not a request for a huge list.
            if i <= seq.len() + 64 {
                if seq.len() <= i {
                    seq.resize(i + 1, Value::Null);
                }
                set_path(&mut seq[i], tail, payload);
            }
            return;
        }
    }
    if !node.is_mapping() {
        *node = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(m) = node else { return };
    let key = m
        .keys()
        .find(|k| k.as_str().is_some_and(|k| k.to_uppercase() == *head))
        .cloned()
        .unwrap_or_else(|| Value::String(head.to_lowercase()));
    let child = m.entry(key).or_insert(Value::Null);
    set_path(child, tail, payload);
}

/// Whether a value says anything (not null, not empty).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => m.values().any(is_set),
        _ => true,
    }
}

/// A scalar as a string; `None` when null or empty.
fn string(v: &Value, name: &str) -> std::result::Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(format!("{name} is not a string")),
    }
}

fn strings(v: &Value, name: &str) -> std::result::Result<Vec<String>, String> {
    match v {
        Value::Sequence(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(string(item, &format!("{name}[{i}]"))?);
            }
            Ok(out)
        }
        other => Ok(string(other, name)?.into_iter().collect()),
    }
}

fn tls(v: &Value, out: &mut ServeSettings) -> std::result::Result<Option<TlsSettings>, String> {
    let m = match v {
        Value::Null => return Ok(None),
        Value::Mapping(m) => m,
        _ => return Err("http.tls is not a mapping".into()),
    };
    let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
    if is_set(get("letsencrypt")) {
        return Err("http.tls.letsencrypt is not supported; terminate TLS in front of regfsck, or give http.tls.certificate and http.tls.key".into());
    }
    let certificate = string(get("certificate"), "http.tls.certificate")?;
    let key = string(get("key"), "http.tls.key")?;
    let client_cas = strings(get("clientcas"), "http.tls.clientcas")?;
    let cipher_suites = strings(get("ciphersuites"), "http.tls.ciphersuites")?;
    let minimum = match string(get("minimumtls"), "http.tls.minimumtls")?.as_deref() {
        None | Some("tls1.2") => TlsVersion::Tls12,
        Some("tls1.3") => TlsVersion::Tls13,
        Some(old @ ("tls1.0" | "tls1.1")) => {
            out.notes.push(format!(
                "http.tls.minimumtls {old}: serving TLS 1.2 and 1.3 only (rustls has nothing older)"
            ));
            TlsVersion::Tls12
        }
        Some(other) => {
            return Err(format!(
                "unknown minimum TLS level {other:?} for http.tls.minimumtls (tls1.2 or tls1.3)"
            ));
        }
    };
    for (k, _) in m.iter().filter(|(_, v)| is_set(v)) {
        if let Some(k) = k.as_str().filter(|k| {
            !matches!(
                *k,
                "certificate" | "key" | "clientcas" | "minimumtls" | "ciphersuites" | "letsencrypt"
            )
        }) {
            out.not_applied.push(format!("http.tls.{k}"));
        }
    }
    match (certificate, key) {
        (Some(certificate), Some(key)) => Ok(Some(TlsSettings {
            certificate: PathBuf::from(certificate),
            key: PathBuf::from(key),
            client_cas: client_cas.into_iter().map(PathBuf::from).collect(),
            minimum,
            cipher_suites,
        })),
        (Some(_), None) => Err("http.tls.certificate is set but http.tls.key is not".into()),
        (None, Some(_)) => Err("http.tls.key is set but http.tls.certificate is not".into()),
        (None, None) if !client_cas.is_empty() => {
            Err("http.tls.clientcas is set but http.tls.certificate is not".into())
        }
        (None, None) => Ok(None),
    }
}

fn headers(v: &Value) -> std::result::Result<Vec<(String, String)>, String> {
    let m = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err("http.headers is not a mapping".into()),
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let Some(k) = k.as_str() else { continue };
        if axum::http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(format!("http.headers: {k:?} is not a header name"));
        }
        for value in strings(v, &format!("http.headers.{k}"))? {
            if axum::http::HeaderValue::from_str(&value).is_err() {
                return Err(format!("http.headers.{k}: {value:?} is not a header value"));
            }
            out.push((k.to_string(), value));
        }
    }
    Ok(out)
}

/// The `auth` section: htpasswd, nothing, or a refusal.
fn auth(v: Option<&Value>) -> std::result::Result<Option<HtpasswdSettings>, String> {
    let (kind, params) = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => (s.clone(), Value::Null),
        Some(Value::Mapping(m)) => {
            let kinds: Vec<(String, &Value)> = m
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().map_or_else(|| format!("{k:?}"), str::to_string),
                        v,
                    )
                })
                .collect();
            match kinds.as_slice() {
                [] => return Ok(None),
                [(k, v)] => (k.clone(), (*v).clone()),
                several => {
                    let names: Vec<&str> = several.iter().map(|(k, _)| k.as_str()).collect();
                    return Err(format!(
                        "auth has several types ({}); the registry takes exactly one, and serve will not choose",
                        names.join(", ")
                    ));
                }
            }
        }
        Some(_) => return Err("auth is not a mapping".into()),
    };
    if kind != "htpasswd" {
        return Err(format!(
            "auth.{kind} is not supported: serve authenticates with htpasswd only, and will not serve without the authentication the config demands"
        ));
    }
    let get = |k: &str| params.get(k).cloned().unwrap_or(Value::Null);
    let path = string(&get("path"), "auth.htpasswd.path")?
        .ok_or("auth.htpasswd has no path: serve will not start without the authentication the config demands")?;
    let realm = string(&get("realm"), "auth.htpasswd.realm")?;
    Ok(Some(HtpasswdSettings {
        path: PathBuf::from(path),
        realm,
    }))
}

/// What the registry's config says about a registry that may be running on the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// `http.addr` (with `REGISTRY_HTTP_ADDR`).
    pub addr: Option<ListenAddr>,
    /// `http.tls` configures a certificate: the registry speaks HTTPS there.
    pub tls: bool,
    /// `storage.maintenance.readonly.enabled` (with its `REGISTRY_STORAGE_...` override): a
    /// running registry writes nothing.
    pub readonly: bool,
}

/// Reads what [`Liveness`] needs from the registry config at `path`, with the registry's
/// environment overrides `env`.
///
/// # Errors
/// [`Error::Config`] when the file cannot be read or parsed, or `http.addr` is no address.
pub fn liveness(path: &Path, env: &[(String, String)]) -> Result<Liveness> {
    let mut doc = read_yaml(path)?;
    apply_env_of(&mut doc, env, &["HTTP", "STORAGE"]);
    let err = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let http = doc.get("http");
    let addr = match http
        .and_then(|h| h.get("addr"))
        .map(|a| string(a, "http.addr"))
    {
        Some(Ok(Some(a))) if a.trim().is_empty() => None,
        Some(Ok(Some(a))) => {
            Some(ListenAddr::parse(&a).map_err(|e| err(format!("http.addr {e}")))?)
        }
        Some(Err(e)) => return Err(err(e)),
        _ => None,
    };
    let tls = http
        .and_then(|h| h.get("tls"))
        .and_then(|t| t.get("certificate"))
        .is_some_and(is_set);
    let readonly = doc
        .get("storage")
        .and_then(|s| s.get("maintenance"))
        .and_then(|m| m.get("readonly"))
        .and_then(|r| r.get("enabled"))
        .is_some_and(|e| match e {
            Value::Bool(b) => *b,
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        });
    Ok(Liveness {
        addr,
        tls,
        readonly,
    })
}

/// Whether a registry answers `GET /v2/` at `addr` (a wildcard address is asked on loopback)
/// within `timeout`: the HTTP status it answered (200, or 401 behind authentication), or 400
/// when `tls` and the server says it wants HTTPS (Go's answer to plain HTTP on a TLS port).
/// `None` when nothing listens there, or what answers is no registry.
pub fn registry_answers(addr: ListenAddr, tls: bool, timeout: std::time::Duration) -> Option<u16> {
    use std::io::{Read, Write};
    let sock = match addr {
        ListenAddr::Any(p) => SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, p)),
        ListenAddr::Socket(a) if a.ip().is_unspecified() => {
            let ip: std::net::IpAddr = if a.is_ipv6() {
                std::net::Ipv6Addr::LOCALHOST.into()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            };
            SocketAddr::new(ip, a.port())
        }
        ListenAddr::Socket(a) => a,
    };
    let mut c = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
    c.set_read_timeout(Some(timeout)).ok()?;
    c.set_write_timeout(Some(timeout)).ok()?;
    write!(
        c,
        "GET /v2/ HTTP/1.1\r\nHost: {sock}\r\nUser-Agent: regfsck\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = Vec::new();
    let _ = c.take(4096).read_to_end(&mut head);
    let text = String::from_utf8_lossy(&head);
    let status: u16 = text
        .strip_prefix("HTTP/1.")?
        .get(2..)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    match status {
        200 | 401 => Some(status),
        400 if tls && text.contains("HTTP request to an HTTPS server") => Some(status),
        _ => None,
    }
}

/// Reads a registry config file as YAML.
fn read_yaml(path: &Path) -> Result<serde_norway::Value> {
    let err = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?; // not registry data: the registry config file
    serde_norway::from_str(&text).map_err(|e| err(format!("not valid YAML: {e}")))
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
    Ok(read_yaml(path)?
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
    fn liveness_reads_addr_tls_and_read_only_mode_with_overrides() {
        let f = cfg(
            "storage:\n  filesystem: {rootdirectory: /x}\n  maintenance:\n    readonly: {enabled: true}\nhttp:\n  addr: 127.0.0.1:5001\n  tls: {certificate: /c.pem, key: /k.pem}\n",
        );
        let l = liveness(f.path(), &[]).unwrap();
        assert_eq!(l.addr, Some(ListenAddr::parse("127.0.0.1:5001").unwrap()));
        assert!(l.tls && l.readonly);
        let env = [
            (
                "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED".to_string(),
                "false".to_string(),
            ),
            ("REGISTRY_HTTP_ADDR".to_string(), ":5002".to_string()),
        ];
        let l = liveness(f.path(), &env).unwrap();
        assert_eq!(l.addr, Some(ListenAddr::Any(5002)));
        assert!(!l.readonly);
        let bare = cfg("storage:\n  filesystem: {rootdirectory: /x}\n");
        let l = liveness(bare.path(), &[]).unwrap();
        assert_eq!((l.addr, l.tls, l.readonly), (None, false, false));
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

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listen_addresses_go_style() {
        assert_eq!(ListenAddr::parse(":5000").unwrap(), ListenAddr::Any(5000));
        assert_eq!(
            ListenAddr::parse("127.0.0.1:80").unwrap(),
            ListenAddr::Socket("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            ListenAddr::parse("[::1]:5000").unwrap(),
            ListenAddr::Socket("[::1]:5000".parse().unwrap())
        );
        assert!(matches!(
            ListenAddr::parse("localhost:5000").unwrap(),
            ListenAddr::Socket(a) if a.port() == 5000 && a.ip().is_loopback()
        ));
        for bad in ["5000", ":x", "::1:5000", "1.2.3.4:99999", ""] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ListenAddr::Any(5000).to_string(), ":5000");
    }

    #[test]
    fn serve_settings_from_the_file() {
        let f = cfg(r#"
version: 0.1
storage: {filesystem: {rootdirectory: /srv}}
http:
  addr: :5001
  net: tcp
  secret: s3cr3t
  host: https://reg.example
  headers:
    X-Content-Type-Options: [nosniff]
  http2: {disabled: true}
  tls:
    certificate: /etc/reg/cert.pem
    key: /etc/reg/key.pem
    clientcas: [/etc/reg/ca1.pem, /etc/reg/ca2.pem]
    minimumtls: tls1.3
auth:
  htpasswd:
    realm: basic-realm
    path: auth/htpasswd
"#);
        let s = serve_settings(f.path(), &[]).unwrap();
        assert_eq!(s.addr, Some(ListenAddr::Any(5001)));
        let tls = s.tls.clone().unwrap();
        assert_eq!(tls.certificate, PathBuf::from("/etc/reg/cert.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/reg/key.pem"));
        assert_eq!(tls.client_cas.len(), 2);
        assert_eq!(tls.minimum, TlsVersion::Tls13);
        assert_eq!(
            s.htpasswd,
            Some(HtpasswdSettings {
                path: PathBuf::from("auth/htpasswd"),
                realm: Some("basic-realm".into())
            })
        );
        assert_eq!(
            s.headers,
            vec![("X-Content-Type-Options".into(), "nosniff".into())]
        );
        assert_eq!(s.not_applied, vec!["http.secret", "http.host"]);
        let taken = s.taken().join("; ");
        assert!(taken.contains("http.addr :5001"), "{taken}");
        assert!(taken.contains("clientcas 2, minimumtls tls1.3"), "{taken}");
        assert!(taken.contains("realm \"basic-realm\""), "{taken}");
        // Nothing at all: the defaults.
        let f = cfg("version: 0.1\nstorage: {filesystem: {}}\n");
        assert_eq!(
            serve_settings(f.path(), &[]).unwrap(),
            ServeSettings::default()
        );
    }

    #[test]
    fn environment_overrides_as_the_registry() {
        let f = cfg("http:\n  addr: :5000\n  tls:\n    certificate: c.pem\n    key: k.pem\n");
        let s = serve_settings(
            f.path(),
            &env(&[
                ("REGISTRY_HTTP_ADDR", "127.0.0.1:6000"),
                ("REGISTRY_HTTP_TLS_KEY", "other-key.pem"),
                ("REGISTRY_HTTP_TLS_CLIENTCAS_0", "ca0.pem"),
                ("REGISTRY_HTTP_TLS_CLIENTCAS_1", "ca1.pem"),
                ("REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.3"),
                ("REGISTRY_AUTH_HTPASSWD_PATH", "/etc/htpasswd"),
                ("REGISTRY_AUTH_HTPASSWD_REALM", "env realm"),
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/ignored/here"),
                ("OTHER_HTTP_ADDR", ":1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.addr,
            Some(ListenAddr::Socket("127.0.0.1:6000".parse().unwrap()))
        );
        let tls = s.tls.unwrap();
        assert_eq!(tls.certificate, PathBuf::from("c.pem"));
        assert_eq!(tls.key, PathBuf::from("other-key.pem"));
        assert_eq!(
            tls.client_cas,
            vec![PathBuf::from("ca0.pem"), PathBuf::from("ca1.pem")]
        );
        assert_eq!(tls.minimum, TlsVersion::Tls13);
        assert_eq!(
            s.htpasswd,
            Some(HtpasswdSettings {
                path: PathBuf::from("/etc/htpasswd"),
                realm: Some("env realm".into())
            })
        );
        // A whole list, as YAML; the certificate from the environment alone.
        let f = cfg("version: 0.1\n");
        let s = serve_settings(
            f.path(),
            &env(&[
                ("REGISTRY_HTTP_TLS_CERTIFICATE", "c.pem"),
                ("REGISTRY_HTTP_TLS_KEY", "k.pem"),
                ("REGISTRY_HTTP_TLS_CLIENTCAS", "[a.pem, b.pem]"),
                ("REGISTRY_HTTP_ADDR", "[::1]:5000"),
            ]),
        )
        .unwrap();
        assert_eq!(s.tls.unwrap().client_cas.len(), 2);
        assert_eq!(
            s.addr,
            Some(ListenAddr::Socket("[::1]:5000".parse().unwrap()))
        );
        // The environment can add an auth type the file does not have: refused.
        let e = serve_settings(f.path(), &env(&[("REGISTRY_AUTH_TOKEN_REALM", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.token is not supported"), "{e}");
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (text, want) in [
            (
                "http: {net: unix, addr: /run/reg.sock}\n",
                "http.net unix is not supported",
            ),
            (
                "http:\n  tls:\n    letsencrypt: {cachefile: /x, email: a@b}\n",
                "http.tls.letsencrypt is not supported; terminate TLS in front",
            ),
            ("http: {tls: {certificate: c.pem}}\n", "http.tls.key is not"),
            ("http: {tls: {key: k.pem}}\n", "http.tls.certificate is not"),
            (
                "http: {tls: {clientcas: [ca.pem]}}\n",
                "http.tls.certificate is not",
            ),
            (
                "http: {tls: {certificate: c, key: k, minimumtls: tls9}}\n",
                "unknown minimum TLS level",
            ),
            (
                "auth:\n  token: {realm: x, service: y}\n",
                "auth.token is not supported",
            ),
            (
                "auth:\n  silly: {realm: x, service: y}\n",
                "auth.silly is not supported",
            ),
            ("auth: {custom: {}}\n", "auth.custom is not supported"),
            ("auth: token\n", "auth.token is not supported"),
            (
                "auth:\n  htpasswd: {path: p}\n  token: {}\n",
                "auth has several types (htpasswd, token)",
            ),
            (
                "auth:\n  htpasswd: {realm: r}\n",
                "auth.htpasswd has no path",
            ),
            ("http: {addr: nonsense}\n", "http.addr"),
        ] {
            let f = cfg(text);
            let e = serve_settings(f.path(), &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        // Old TLS floors are raised, with a note.
        let f = cfg("http: {tls: {certificate: c, key: k, minimumtls: tls1.0}}\n");
        let s = serve_settings(f.path(), &[]).unwrap();
        assert_eq!(s.tls.unwrap().minimum, TlsVersion::Tls12);
        assert_eq!(s.notes.len(), 1);
        // An empty letsencrypt section says nothing.
        let f = cfg("http: {tls: {certificate: c, key: k, letsencrypt: {}}}\n");
        assert!(serve_settings(f.path(), &[]).unwrap().tls.is_some());
    }
}

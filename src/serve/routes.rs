//! Pure routing of the pull API: a request path to a [`Route`]. Names and references are
//! parsed with the layout's types here, before anything touches the disk.

use crate::layout::RepoName;

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, String),
    /// `/v2/<name>/blobs/uploads/...`: push only.
    Upload(RepoName),
    /// A name that matches the grammar but is longer than 255 characters: `NAME_INVALID`.
    NameInvalid(String),
    /// Anything else (including invalid names): the plain 404 of the registry's router.
    NotFound,
}

impl Route {
    /// The route's name in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::Upload(_) => "upload",
            Route::NameInvalid(_) => "name_invalid",
            Route::NotFound => "not_found",
        }
    }
}

/// Routes a request path (as sent: percent-encoded slashes stay encoded and match nothing).
pub fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Route::NotFound;
    };
    let rest = match rest {
        "" | "/" => return Route::Base,
        r => match r.strip_prefix('/') {
            Some(r) => r,
            None => return Route::NotFound,
        },
    };
    if rest == "_catalog" {
        return Route::Catalog;
    }
    let name = |n: &str| RepoName::parse(n).ok();
    // The registry's router matches the grammar; only then is the length checked.
    let too_long = |n: &str| n.len() > 255 && RepoName::check_grammar(n).is_ok();
    for marker in ["/tags/list", "/manifests/", "/blobs/"] {
        if let Some(i) = rest.find(marker) {
            if too_long(&rest[..i]) {
                return Route::NameInvalid(rest[..i].to_string());
            }
        }
    }
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return name(n).map_or(Route::NotFound, Route::Tags);
    }
    if let Some((n, r)) = rest.rsplit_once("/manifests/") {
        if !r.is_empty() && !r.contains('/') {
            return name(n).map_or(Route::NotFound, |n| Route::Manifest(n, r.to_string()));
        }
    }
    if let Some(i) = rest.find("/blobs/uploads") {
        let tail = &rest[i + "/blobs/uploads".len()..];
        if tail.is_empty() || tail.starts_with('/') {
            return name(&rest[..i]).map_or(Route::NotFound, Route::Upload);
        }
    }
    if let Some((n, d)) = rest.rsplit_once("/blobs/") {
        if !d.is_empty() && !d.contains('/') {
            return name(n).map_or(Route::NotFound, |n| Route::Blob(n, d.to_string()));
        }
    }
    Route::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2"), Route::Base);
        assert_eq!(route("/v2/_catalog"), Route::Catalog);
        assert_eq!(route("/v2/team/app/tags/list"), Route::Tags(n("team/app")));
        assert_eq!(
            route("/v2/team/app/api/manifests/latest"),
            Route::Manifest(n("team/app/api"), "latest".into())
        );
        assert_eq!(
            route("/v2/a/blobs/sha256:abc"),
            Route::Blob(n("a"), "sha256:abc".into())
        );
        assert_eq!(route("/v2/a/blobs/uploads/"), Route::Upload(n("a")));
        assert_eq!(route("/v2/a/blobs/uploads/uuid"), Route::Upload(n("a")));
        // A repository can be called "manifests" or "blobs" too.
        assert_eq!(
            route("/v2/manifests/manifests/x"),
            Route::Manifest(n("manifests"), "x".into())
        );
    }

    #[test]
    fn over_long_names() {
        let long = "a".repeat(300);
        assert_eq!(
            route(&format!("/v2/{long}/tags/list")),
            Route::NameInvalid(long.clone())
        );
        assert_eq!(route(&format!("/v2/{long}..x/tags/list")), Route::NotFound);
    }

    #[test]
    fn traversal_and_garbage_match_nothing() {
        for p in [
            "/v2/../../etc/passwd/manifests/x",
            "/v2/a/../b/manifests/x",
            "/v2/a%2Fb/manifests/x",
            "/v2/UPPER/manifests/x",
            "/v2/a/manifests/",
            "/v2/a/manifests/x/y",
            "/v2/a/blobs/",
            "/v2x/",
            "/etc/passwd",
            "/v2/a/referrers/sha256:x",
            "/v2/_layers/tags/list",
        ] {
            assert_eq!(route(p), Route::NotFound, "{p}");
        }
    }
}

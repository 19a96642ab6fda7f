//! `/metrics`: what the server has answered since it started, in the text format Prometheus
//! scrapes (OpenMetrics 1.0, by the Prometheus project's client).
//!
//! - `regfsck_http_requests_total{route,status}`: requests answered, by route (the kind of path:
//!   `manifest`, `blob`, `tags`, `catalog`, `base`, `upload`, `ui_home`, `ui_repo`, `ui_image`,
//!   `metrics`, `name_invalid`, `not_found`) and status code;
//! - `regfsck_http_response_body_bytes_total{route}`: bytes of response bodies handed to the
//!   connection (a blob download the client drops counts what was sent until then).
//!
//! Labels never hold a repository name, tag or digest: their number stays bounded whatever
//! clients ask. `/metrics` sits behind the same authentication as everything else (a scraper
//! sends the htpasswd credentials, as Prometheus's `basic_auth` does).

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::conn::{Observed, Watch};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes: Family<RouteLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let bytes = Family::<RouteLabel, Counter>::default();
        registry.register(
            "regfsck_http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "regfsck_http_response_body_bytes",
            "Bytes of response bodies sent, by route",
            bytes.clone(),
        );
        Metrics {
            registry,
            requests,
            bytes,
        }
    }
}

impl Metrics {
    /// Counts one answered request, and the bytes of its body as they are sent.
    pub fn count(&self, route: &'static str, resp: Response) -> Response {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status: resp.status().as_u16(),
            })
            .inc();
        let counter = self.bytes.get_or_create(&RouteLabel { route }).clone();
        resp.map(|body| {
            Body::new(Observed {
                body,
                watch: counter,
            })
        })
    }

    /// The exposition.
    pub fn render(&self) -> Response {
        let mut text = String::new();
        match prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            Ok(()) => (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                sorted(&text),
            )
                .into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
}

/// The exposition with each metric's samples sorted (the client keeps them in hash order).
fn sorted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut samples: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            samples.sort_unstable();
            for s in samples.drain(..) {
                out.push_str(s);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        } else {
            samples.push(line);
        }
    }
    samples.sort_unstable();
    for s in samples {
        out.push_str(s);
        out.push('\n');
    }
    out
}

/// Adds what a response body sends to the route's counter.
impl Watch for Counter {
    fn sent(&mut self, bytes: usize) {
        self.inc_by(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_sorted_within_each_metric() {
        let text = "# HELP a A.\n# TYPE a counter\na_total{r=\"z\"} 1\na_total{r=\"b\"} 2\n# EOF\n";
        assert_eq!(
            sorted(text),
            "# HELP a A.\n# TYPE a counter\na_total{r=\"b\"} 2\na_total{r=\"z\"} 1\n# EOF\n"
        );
    }
}

//! The rustls server configuration (ring provider): certificate and key, the TLS version floor,
//! the cipher suites, and client certificates verified against the configured CAs.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::{TlsSettings, TlsVersion};
use crate::error::{Error, Result};

/// Go's names of the TLS 1.3 suites: Go (and so the registry) always offers them, whatever
/// `ciphersuites` says; so does this server.
const TLS13_GO_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

fn bad(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// The provider: ring, its TLS 1.2 suites narrowed to `names` when given (rustls's names are
/// Go's). Returns it with the names it does not offer, for the log.
fn provider(names: &[String]) -> (CryptoProvider, Vec<String>) {
    let mut p = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return (p, Vec::new());
    }
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(_) => {
            let name = format!("{:?}", s.suite());
            names.contains(&name)
        }
    });
    let offered: Vec<String> = p
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    let missing = names
        .iter()
        .filter(|n| !offered.contains(n) && !TLS13_GO_NAMES.contains(&n.as_str()))
        .cloned()
        .collect();
    (p, missing)
}

/// Builds the server configuration (HTTP/1.1 by ALPN). The second value lists the configured
/// cipher suites rustls does not offer (left out).
///
/// # Errors
/// [`Error::Config`] naming the file when a certificate, key or CA cannot be loaded.
pub fn server_config(t: &TlsSettings) -> Result<(rustls::ServerConfig, Vec<String>)> {
    const LOAD: &str = "cannot load the TLS certificate and key";
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.certificate)
        .map_err(|e| bad(&t.certificate, LOAD, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&t.certificate, LOAD, e))?;
    if certs.is_empty() {
        return Err(bad(&t.certificate, LOAD, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key).map_err(|e| bad(&t.key, LOAD, e))?;
    let (provider, missing) = provider(&t.cipher_suites);
    let provider = Arc::new(provider);
    let versions: &[&'static rustls::SupportedProtocolVersion] = match t.minimum {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| bad(&t.certificate, "TLS settings", e))?;
    let builder = if t.client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for ca in &t.client_cas {
            const CA: &str = "cannot load the client CA";
            let iter = CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, CA, e))?;
            let mut n = 0;
            for cert in iter {
                let cert = cert.map_err(|e| bad(ca, CA, e))?;
                roots.add(cert).map_err(|e| bad(ca, CA, e))?;
                n += 1;
            }
            if n == 0 {
                return Err(bad(ca, CA, "no certificate in the file"));
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| bad(&t.client_cas[0], "client certificate verifier", e))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(&t.certificate, LOAD, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_narrow_tls12_only() {
        let (p, missing) = provider(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string(),
            "TLS_AES_128_GCM_SHA256".to_string(),
            "TLS_RSA_WITH_AES_128_CBC_SHA".to_string(),
        ]);
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        assert!(!names.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()));
        assert!(names.iter().any(|n| n.starts_with("TLS13_")), "{names:?}");
        assert_eq!(missing, vec!["TLS_RSA_WITH_AES_128_CBC_SHA".to_string()]);
        let (all, none) = provider(&[]);
        assert!(all.cipher_suites.len() > names.len());
        assert!(none.is_empty());
    }
}

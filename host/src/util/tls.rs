//! The TLS client setup every outgoing https request uses (the
//! `[auth.oidc]` issuer, the bootstrap URL, the CLI's admin API client):
//! rustls with the `ring` provider, trusting the
//! Mozilla roots compiled in (`webpki-roots`) and, when configured, the
//! certificates of one more PEM file (a site's own CA).
//!
//! Compiled-in roots rather than the system's: the host trusts the same
//! CAs in a scratch container with no `/etc/ssl` as on a full OS, and an
//! operator adds a private CA explicitly (`ca_file`) instead of by editing
//! the machine's store. reqwest is built without a provider of its own
//! (`rustls-no-provider`), so every client gets this config
//! ([`client_config`]); one built without it would panic at `build()`.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject as _},
};

/// Why the TLS client setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The extra CA file could not be read or holds no usable certificate.
    #[error("CA file {}: {reason}; give a PEM file with the CA certificate(s) that signed the server's certificate", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the protocol versions (not expected with ring).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls client config with the `ring` provider, the compiled-in roots
/// and the certificates in `ca_file`, if given.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca_err = |reason: String| TlsSetupError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("it holds no PEM certificate".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ca_err(format!("a certificate is not usable: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A reqwest client builder with [`client_config`]'s TLS (no extra CA),
/// for a client with nothing else to trust (the CLI's admin API client):
/// reqwest has no provider of its own, so a client built from a bare
/// `reqwest::Client::builder()` panics at `build()`.
pub fn http_client() -> Result<reqwest::ClientBuilder, TlsSetupError> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(client_config(None)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(
            e.contains("ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        assert!(client_config(None).is_ok());
    }
}

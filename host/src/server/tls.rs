//! TLS on the listener (`[server] tls = { cert, key }`): rustls with the
//! ring provider, and a certificate that can be renewed on disk.
//!
//! The rustls config is built once, with a certificate *resolver* instead
//! of a fixed certificate: [`CertStore`] hands every handshake the pair it
//! holds now, and its watcher swaps in a new pair when either file
//! changes. A renewed certificate (certbot, an operator's `cp`) is served
//! to the next connection; connections already open keep theirs. A pair
//! that does not load (half written, key and certificate that do not
//! match) is logged and the old one kept, so a mistake on disk never
//! takes the listener down.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

use crate::{config::TlsFiles, util::watch::FileWatcher};

/// How long the files must be quiet before they are read: a renewal
/// writes the certificate and the key one after the other.
const SETTLE: Duration = Duration::from_millis(200);

/// The file names `modhost dev-cert` writes.
pub const DEV_CERT_FILE: &str = "cert.pem";
/// See [`DEV_CERT_FILE`]; written with mode 0600.
pub const DEV_KEY_FILE: &str = "key.pem";

/// Why a certificate pair could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, or is not PEM.
    #[error("cannot read {}: {reason}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate; point [server] tls.cert at the certificate chain (leaf first)", .0.display())]
    NoCertificate(PathBuf),
    /// `modhost dev-cert` could not make or write the pair.
    #[error("cannot write a certificate pair to {}: {reason}", dir.display())]
    Write {
        /// The folder.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls cannot use it.
    #[error("the key {} cannot serve the certificate {}: {reason}; give the key the certificate was issued for", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// The certificate pair every handshake gets, swapped when the files change.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reads and checks the pair `files` names.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |file: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        file: file.to_owned(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| read(&files.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(&files.cert, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read(&files.key, &e))?;
    let mismatch = |e: rustls::Error| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: e.to_string(),
    };
    let signing = ring::sign::any_supported_type(&key).map_err(mismatch)?;
    let pair = CertifiedKey::new(certs, signing);
    pair.keys_match().map_err(mismatch)?;
    Ok(Arc::new(pair))
}

/// Writes a self-signed certificate for `names` (plus localhost and
/// 127.0.0.1) and its key into `dir`, as [`DEV_CERT_FILE`] and
/// [`DEV_KEY_FILE`] (mode 0600). Existing files are not overwritten: a
/// real pair must never be replaced by a test one by mistake.
pub fn dev_cert(dir: &Path, names: &[String]) -> Result<TlsFiles, TlsError> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};

    let fail = |reason: String| TlsError::Write {
        dir: dir.to_owned(),
        reason,
    };
    let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    all.extend(
        names
            .iter()
            .filter(|n| !["localhost", "127.0.0.1"].contains(&n.as_str()))
            .cloned(),
    );
    let made = rcgen::generate_simple_self_signed(all).map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let files = TlsFiles {
        cert: dir.join(DEV_CERT_FILE),
        key: dir.join(DEV_KEY_FILE),
    };
    for (path, text, mode) in [
        (&files.key, made.signing_key.serialize_pem(), 0o600),
        (&files.cert, made.cert.pem(), 0o644),
    ] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| {
                fail(format!(
                    "{}: {e} (remove the old pair first, or pick another --out)",
                    path.display()
                ))
            })?;
    }
    Ok(files)
}

/// The listener's TLS: the acceptor, and the watcher that keeps its
/// certificate current (stops when dropped).
pub struct Tls {
    /// Wraps each accepted socket.
    pub acceptor: TlsAcceptor,
    /// Reloads the pair when the files change; `None` if the folder could
    /// not be watched (the pair then changes only with a restart).
    _watcher: Option<FileWatcher>,
}

impl Tls {
    /// Loads the pair and starts watching its files.
    pub fn start(files: &TlsFiles) -> Result<Tls, TlsError> {
        let store = Arc::new(CertStore {
            current: ArcSwap::new(load(files)?),
        });
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        // The accept loop speaks HTTP/1 only (websockets upgrade from it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let watcher = watch(files.clone(), store);
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            _watcher: watcher,
        })
    }
}

/// Watches the folders of the pair's files and reloads the pair when one
/// of them changes.
fn watch(files: TlsFiles, store: Arc<CertStore>) -> Option<FileWatcher> {
    let folder = |f: &Path| f.parent().map(Path::to_owned).unwrap_or_default();
    let (cert_dir, key_dir) = (folder(&files.cert), folder(&files.key));
    // By name: the watcher reports paths as it resolved them, which may
    // differ from the configured spelling (symlinks, relative folders).
    let watched: Vec<std::ffi::OsString> = [&files.cert, &files.key]
        .iter()
        .filter_map(|f| f.file_name().map(ToOwned::to_owned))
        .collect();
    let started = FileWatcher::start(
        "tls-watch",
        "certificate watcher thread",
        cert_dir.clone(),
        SETTLE,
        move |events, mut debouncer| {
            if key_dir != cert_dir
                && let Err(e) = debouncer.watch(
                    &key_dir,
                    notify_debouncer_full::notify::RecursiveMode::NonRecursive,
                )
            {
                tracing::warn!(folder = %key_dir.display(), "the TLS key's folder is not watched: {e}; a new key is read only with a new certificate");
            }
            loop {
                let batch = events.wait(None);
                if batch.stop {
                    return;
                }
                let touched = batch.events.iter().flat_map(|e| e.paths.iter()).any(|p| {
                    p.file_name()
                        .is_some_and(|n| watched.iter().any(|w| w == n))
                });
                if !touched {
                    continue;
                }
                match load(&files) {
                    Ok(pair) => {
                        store.current.store(pair);
                        tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded: new connections get it");
                    }
                    Err(e) => tracing::error!(
                        "TLS certificate not reloaded: {e}; the previous one is still served"
                    ),
                }
            }
        },
    );
    match started {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "TLS files not watched: {e}; a renewed certificate is served only after a restart"
            );
            None
        }
    }
}

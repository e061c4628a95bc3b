//! `[server] tls = { cert, key }`: the codec of the one setting that is a
//! table, and the model type it reads into. Relative paths resolve against
//! the config file's folder, like every other path.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    codec::resolve,
    declare::{At, Codec, keyed},
    error::Problem,
};

/// The certificate chain and private key the listener serves (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(crate) struct RawTls {
        cert: Option<String>,
        key: Option<String>,
    }
}

/// `tls = { cert = "...", key = "..." }`, absent for plain HTTP.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tls {}

impl Codec<Option<TlsFiles>> for Tls {
    type Raw = RawTls;
    fn read(&self, written: Option<RawTls>, at: &At<'_>) -> Result<Option<TlsFiles>, Problem> {
        let Some(raw) = written else {
            return Ok(None);
        };
        let file = |value: Option<String>, key: &str| {
            let path = at.path.key(key);
            match value {
                Some(v) => resolve(at.base, &path, &v),
                None => Err(Problem::invalid(
                    &at.path,
                    format!("{} has no {key}", at.path),
                    "give both files: tls = { cert = \"cert.pem\", key = \"key.pem\" } (`modhost dev-cert` writes a self-signed pair)",
                )),
            }
        };
        Ok(Some(TlsFiles {
            cert: file(raw.cert, "cert")?,
            key: file(raw.key, "key")?,
        }))
    }
    fn show(&self, value: &Option<TlsFiles>) -> String {
        value.as_ref().map_or_else(
            || "off".to_owned(),
            |t| {
                format!(
                    "{{ cert = {}, key = {} }}",
                    t.cert.display(),
                    t.key.display()
                )
            },
        )
    }
    fn default_toml(&self) -> Option<String> {
        None
    }
}

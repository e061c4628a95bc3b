//! A job's directory and what goes in it before the app starts: the
//! directory itself (0700), a key and self-signed certificate (rcgen; the
//! key 0600), the password hash (0600), and the app's config file (0600),
//! with the launch templates (`{port}`, `{job_dir}`, …) substituted.
//!
//! The seed made these with shell `openssl` commands that carried the
//! hash on their command lines; here nothing runs and nothing is in argv
//! unless an app's own `args` put `{password_hash}` there.

use std::{
    collections::HashMap,
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

/// The certificate's file name in the job directory (PEM).
pub const CERT_FILE: &str = "cert.pem";
/// The private key's file name (PEM, 0600).
pub const KEY_FILE: &str = "key.pem";
/// The password hash's file name (0600), for apps that read it from a file.
pub const HASH_FILE: &str = "password.hash";

/// Makes `dir` (and its parents) readable by the host's user only.
pub(super) fn make_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `contents` to a new file `path` with `mode`.
pub(super) fn write_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(path)?;
    file.write_all(contents)
}

/// A key and a self-signed certificate for `host` (and localhost) in
/// `dir`; returns their paths.
pub(super) fn make_cert(dir: &Path, host: &str) -> Result<(PathBuf, PathBuf), String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !names.iter().any(|n| n == host) {
        names.push(host.to_owned());
    }
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| format!("certificate: {e}"))?;
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    write_file(&cert, made.cert.pem().as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    write_file(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((cert, key))
}

/// The values the templates name.
#[derive(Debug, Clone, Default)]
pub(super) struct Vars(pub(super) HashMap<&'static str, String>);

impl Vars {
    /// `template` with each known `{name}` replaced by its value, in one
    /// pass: a value that holds `{port}` is not substituted again, and an
    /// unknown `{name}` stays as written.
    pub(super) fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after
                .find('}')
                .and_then(|close| self.0.get(&after[..close]).map(|value| (close, value)))
            {
                Some((close, value)) => {
                    out.push_str(value);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The host name job objects carry: the machine's, as the seed did.
pub(super) fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_one_pass() {
        let vars = Vars(HashMap::from([
            ("port", "8000".to_owned()),
            ("user", "{port}; rm -rf /".to_owned()),
        ]));
        assert_eq!(vars.fill("--port={port}"), "--port=8000");
        assert_eq!(vars.fill("{user}"), "{port}; rm -rf /");
        assert_eq!(vars.fill("{unknown} {port"), "{unknown} {port");
        assert_eq!(vars.fill("{{port}}"), "{8000}");
    }

    #[test]
    fn the_key_is_private_and_the_cert_parses() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = make_cert(dir.path(), "box").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pem = fs::read_to_string(cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    }
}

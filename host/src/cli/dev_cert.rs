//! `modhost dev-cert`: a self-signed certificate pair for trying
//! `[server] tls` (browsers will warn about it; use a real certificate in
//! production).

use std::path::Path;

/// Writes the pair into `out` and prints the config lines that use it.
pub(crate) fn dev_cert(out: &Path, names: &[String]) -> anyhow::Result<()> {
    let files = modhost::server::tls::dev_cert(out, names)?;
    println!(
        "wrote {} and {} (mode 0600); add to config.toml:\n[server]\ntls = {{ cert = {:?}, key = {:?} }}",
        files.cert.display(),
        files.key.display(),
        files.cert.display().to_string(),
        files.key.display().to_string()
    );
    Ok(())
}

//! `[cluster]` validation: the NATS server several hosts share to act as
//! one platform (rooms fan out across them), from [`RawCluster`] into
//! [`ClusterConfig`]. Without the table the host runs alone, as before.
//!
//! Like `[history]`, a table without per-key defaults worth declaring in
//! `settings`, so it is checked by hand here. The connection is made at
//! start: changes need a restart.

use std::path::Path;

use serde::Deserialize;

use super::{
    codec::resolve,
    declare::keyed,
    error::{KeyPath, Problem},
    model::ClusterConfig,
    value::token_text,
};

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawCluster {
        pub(super) nats_url: Option<String>,
        pub(super) name: Option<String>,
        pub(super) credentials_file: Option<String>,
        pub(super) token: Option<String>,
        pub(super) tls_ca_file: Option<String>,
        pub(super) tls_required: Option<bool>,
        pub(super) subject_prefix: Option<String>,
    }
}

const URL_EXAMPLE: &str =
    "write it as nats://host:4222 (or tls://host:4222), e.g. nats_url = \"nats://127.0.0.1:4222\"";
/// Subjects start with this unless `subject_prefix` says otherwise.
const DEFAULT_SUBJECT_PREFIX: &str = "modhost";

/// `None` when the file has no `nats_url`: the host runs alone and the
/// other keys must not be set (they would silently do nothing).
pub(super) fn validate_cluster(
    raw: RawCluster,
    base: &Path,
) -> Result<Option<ClusterConfig>, Problem> {
    let table = KeyPath::default().key("cluster");
    let Some(written) = raw.nats_url else {
        let set = [
            ("name", raw.name.is_some()),
            ("credentials_file", raw.credentials_file.is_some()),
            ("token", raw.token.is_some()),
            ("tls_ca_file", raw.tls_ca_file.is_some()),
            ("tls_required", raw.tls_required.is_some()),
            ("subject_prefix", raw.subject_prefix.is_some()),
        ];
        if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
            let path = table.key(key);
            return Err(Problem::invalid(
                &path,
                format!("{path} is set but cluster.nats_url is not, so it would do nothing"),
                "add nats_url = \"nats://host:4222\" to [cluster], or remove the key",
            ));
        }
        return Ok(None);
    };
    let url_path = table.key("nats_url");
    let nats_url = nats_url(&url_path, &written)?;
    let name = match raw.name {
        Some(name) => host_name(&table.key("name"), &name)?,
        None => default_name(),
    };
    let subject_prefix = match raw.subject_prefix {
        Some(p) => subject_prefix(&table.key("subject_prefix"), &p)?,
        None => DEFAULT_SUBJECT_PREFIX.to_owned(),
    };
    let token = raw
        .token
        .map(|t| token_text(&table.key("token"), &t, "the token the NATS server expects"))
        .transpose()?;
    // Read when the connection is made (a missing file is refused there,
    // naming it): only the paths are checked here.
    let credentials_file = raw
        .credentials_file
        .as_deref()
        .map(|f| resolve(base, &table.key("credentials_file"), f))
        .transpose()?;
    let tls_ca_file = raw
        .tls_ca_file
        .as_deref()
        .map(|f| resolve(base, &table.key("tls_ca_file"), f))
        .transpose()?;
    if token.is_some() && credentials_file.is_some() {
        let path = table.key("token");
        return Err(Problem::invalid(
            &path,
            format!("{path} and cluster.credentials_file are both set"),
            "use one way to authenticate to NATS: a .creds file or a token",
        ));
    }
    Ok(Some(ClusterConfig {
        nats_url,
        name,
        credentials_file,
        token,
        tls_ca_file,
        tls_required: raw.tls_required.unwrap_or(false),
        subject_prefix,
    }))
}

fn nats_url(path: &KeyPath, written: &str) -> Result<String, Problem> {
    let written = token_text(path, written, "the NATS server's URL: nats://host:4222")?;
    let url = url::Url::parse(&written)
        .map_err(|e| Problem::invalid(path, format!("{path} is not a URL ({e})"), URL_EXAMPLE))?;
    if !matches!(url.scheme(), "nats" | "tls") {
        return Err(Problem::invalid(
            path,
            format!("{path} has the scheme {:?}, not nats or tls", url.scheme()),
            URL_EXAMPLE,
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Problem::invalid(
            path,
            format!("{path} names no host"),
            URL_EXAMPLE,
        ));
    }
    Ok(written)
}

/// A host's name is part of the ids other hosts see (and of NATS's
/// connection list): letters, digits, `-` and `_`, so it never needs
/// escaping in a subject.
fn host_name(path: &KeyPath, name: &str) -> Result<String, Problem> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Problem::invalid(
            path,
            format!("{path} = {name:?} is not 1 to 64 letters, digits, '-' or '_'"),
            "name each host uniquely, e.g. name = \"web-1\"",
        ));
    }
    Ok(name.to_owned())
}

fn subject_prefix(path: &KeyPath, prefix: &str) -> Result<String, Problem> {
    let tokens_ok = prefix.split('.').all(|t| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if prefix.len() > 64 || !tokens_ok {
        return Err(Problem::invalid(
            path,
            format!("{path} = {prefix:?} is not a NATS subject of plain tokens"),
            "use dot-separated tokens of letters, digits, '-' or '_', e.g. \"modhost\" or \"acme.prod\"",
        ));
    }
    Ok(prefix.to_owned())
}

/// This machine's host name and the process id: unique per host, and the
/// same at every reload (a new name would read as a change needing a
/// restart). Names must differ, or hosts would take each other's
/// publications for their own.
fn default_name() -> String {
    let written = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = written
        .trim()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                char::from(b)
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("{host}-{}", std::process::id())
}

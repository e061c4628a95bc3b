//! The two requests `[auth.oidc]` makes to its issuer: the discovery
//! document and the JWKS it points at.
//!
//! Both are bounded the same way as the bootstrap call: `timeout_ms` for
//! the whole request, body included (a server that drips its answer byte
//! by byte is cut off), `max_response_bytes` for the body (counted as it
//! arrives, so a body without `Content-Length` cannot grow past it), no
//! redirects, no proxies from the environment, no retries here (the
//! refresher in `oidc.rs` retries with backoff).
//!
//! An `https://` issuer is checked with rustls against the Mozilla roots
//! built in and `[auth.oidc] ca_file` (`util::tls`); the JWKS of an https
//! issuer must be https too (keys fetched in clear could be swapped).

use std::{path::Path, time::Duration};

use serde_json::Value;

use super::AuthSetupError;

/// Where discovery documents live under an issuer (OpenID Connect
/// Discovery 1.0 §4).
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The HTTP client for one issuer, with its bounds.
#[derive(Debug)]
pub(super) struct Fetcher {
    client: reqwest::Client,
    discovery: reqwest::Url,
    issuer: String,
    timeout: Duration,
    max_bytes: usize,
}

impl Fetcher {
    /// Check that this build can reach `issuer` and build the client,
    /// trusting the certificates in `ca_file` beside the built-in roots.
    pub(super) fn new(
        issuer: &str,
        timeout: Duration,
        max_bytes: usize,
        ca_file: Option<&Path>,
    ) -> Result<Fetcher, AuthSetupError> {
        let issuer_err = |reason: &str| AuthSetupError::OidcIssuer {
            issuer: issuer.to_owned(),
            reason: reason.to_owned(),
        };
        let discovery = format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/'));
        let discovery = reqwest::Url::parse(&discovery).map_err(|e| issuer_err(&e.to_string()))?;
        if !matches!(discovery.scheme(), "http" | "https") {
            return Err(issuer_err(
                "only http:// and https:// issuers are supported",
            ));
        }
        let tls = crate::util::tls::client_config(ca_file)
            .map_err(|e| AuthSetupError::OidcCaFile(e.to_string()))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .build()
            .map_err(|e| AuthSetupError::OidcClient(e.to_string()))?;
        Ok(Fetcher {
            client,
            discovery,
            issuer: issuer.to_owned(),
            timeout,
            max_bytes,
        })
    }

    /// Read the discovery document and return its `jwks_uri`, after
    /// checking that its `issuer` is the configured one (Discovery §4.3: a
    /// document naming another issuer must not be used, or one issuer
    /// could hand out keys for another).
    pub(super) async fn jwks_uri(&self) -> Result<reqwest::Url, String> {
        let doc = self.get_json(&self.discovery).await?;
        let what = || format!("discovery document {}", self.discovery);
        match doc.get("issuer").and_then(Value::as_str) {
            Some(issuer) if issuer == self.issuer => {}
            Some(other) => {
                return Err(format!(
                    "{} names issuer {:?}, not the configured {:?}; set [auth.oidc] issuer to exactly what the issuer calls itself",
                    what(),
                    other.chars().take(200).collect::<String>(),
                    self.issuer
                ));
            }
            None => return Err(format!("{} has no \"issuer\"", what())),
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{} has no \"jwks_uri\"", what()))?;
        let uri = reqwest::Url::parse(uri)
            .map_err(|e| format!("{}: jwks_uri is not a URL: {e}", what()))?;
        let downgrade = self.discovery.scheme() == "https" && uri.scheme() != "https";
        if downgrade || !matches!(uri.scheme(), "http" | "https") {
            return Err(format!(
                "{}: jwks_uri {uri} is not https:// like the issuer, or not http(s) at all",
                what()
            ));
        }
        Ok(uri)
    }

    /// The JWKS document at `uri`, as bytes for `jwt::parse_jwks`.
    pub(super) async fn jwks(&self, uri: &reqwest::Url) -> Result<Vec<u8>, String> {
        self.get(uri).await
    }

    async fn get_json(&self, url: &reqwest::Url) -> Result<Value, String> {
        let body = self.get(url).await?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// One bounded `GET`.
    async fn get(&self, url: &reqwest::Url) -> Result<Vec<u8>, String> {
        // reqwest's timeout covers the whole request; this outer one is a
        // backstop so nothing here can outlive `timeout_ms`.
        match tokio::time::timeout(self.timeout, self.get_unbounded_in_time(url)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(format!(
                "{url}: no complete answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }

    async fn get_unbounded_in_time(&self, url: &reqwest::Url) -> Result<Vec<u8>, String> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                format!(
                    "{url}: no complete answer within {} ms",
                    self.timeout.as_millis()
                )
            } else {
                // The cause says what went wrong ("invalid peer
                // certificate: UnknownIssuer"); the top error only that
                // sending failed.
                let e = e.without_url();
                let mut text = format!("{url}: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
        };
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", status.as_u16()));
        }
        let too_large = || format!("{url}: body over {} bytes", self.max_bytes);
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

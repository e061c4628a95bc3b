//! `[auth.bootstrap]`: ask the application's backend who the client is
//! (high-templar's model, PRIOR_ART §002).
//!
//! One `GET url` per connecting client, forwarding what identifies it:
//!
//! | header | from |
//! |---|---|
//! | `Cookie` | the client's `Cookie` header, as is |
//! | `User-Agent` | the client's |
//! | `X-Real-IP` | the client's `X-Real-IP`, else its peer address |
//! | `Authorization` | `Token <t>` when the token came from `?token=`, else the client's own header |
//! | `X-CSRFToken` | the `csrftoken` cookie (Django wants it) |
//!
//! A 200 reply with a JSON object authorizes, e.g. high-templar 3.x's
//! `{"allowed_rooms": [{...}]}`, 2.x's
//! `{"user": {"id": 1}, "allowed_rooms": [...]}`, or
//! `{"allowed_rooms": [...], "user": "alice", "roles": ["admin"]}`.
//! Paths are dotted keys from the reply's top level (`data.user.pk`):
//!
//! | reply field | where (config key, default) | accepted | nothing there (missing, `null`, `""`) | anything else |
//! |---|---|---|---|---|
//! | rooms | `allowed_rooms` | array of objects | missing: no rooms (high-templar accepts `{}`) | refuses (`["foo"]`, `null`) |
//! | user id | `user_id_path`; unset: `user.id` if `user` is an object, else `user` | string, or integer as text (Django ids) | a name of its own: `anonymous-` + 16 random hex digits | refuses, naming the path and the type (object, array, boolean, float) |
//! | roles | `roles_path`, default `roles` | array of strings | no roles | refuses, naming the path and the type |
//!
//! A client the reply names nobody for is never given a shared name: two
//! such clients are two users, so neither can resume the other's session
//! or see its per-user state (`bootstrap_reply.rs` says why). It also
//! means an anonymous client cannot resume its own session: it is someone
//! new on every connection.
//!
//! Any other status refuses. Redirects are not followed (they would carry
//! the client's cookies to wherever the backend points), proxies from the
//! environment are ignored, the request is never retried, and the body is
//! read up to [`MAX_BODY_BYTES`]. The call is plain async I/O on the shared
//! client's connection pool, so a slow backend delays only the client that
//! is waiting for it.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use super::{
    AuthError, AuthSetupError, Credentials, Principal, TokenSource,
    bootstrap_reply::{ReplyPaths, principal_from_reply},
};
use crate::config::BootstrapConfig;

/// Largest bootstrap reply read. A user with a few hundred rooms fits.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The cookie whose value is forwarded as `X-CSRFToken`.
const CSRF_COOKIE: &str = "csrftoken";

/// The bootstrap URL and the one HTTP client every connection shares.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    paths: ReplyPaths,
}

impl Bootstrap {
    /// Check the URL and build the client.
    pub(crate) fn new(cfg: &BootstrapConfig) -> Result<Bootstrap, AuthSetupError> {
        let url_err = |reason: &str| AuthSetupError::BootstrapUrl {
            url: cfg.url.clone(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| url_err(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(url_err(
                "only http:// is supported (this build has no TLS); \
                 point it at the backend's local address",
            ));
        }
        if url.host().is_none() {
            return Err(url_err("no host"));
        }
        if cfg.timeout.is_zero() {
            return Err(url_err("timeout_ms must be more than 0"));
        }
        // http:// only (checked above), but reqwest is built with rustls
        // and no provider of its own: it needs the host's TLS config.
        let tls = crate::util::tls::client_config(None)
            .map_err(|e| AuthSetupError::BootstrapClient(e.to_string()))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .build()
            .map_err(|e| AuthSetupError::BootstrapClient(e.to_string()))?;
        Ok(Bootstrap {
            client,
            url,
            timeout: cfg.timeout,
            paths: ReplyPaths {
                user_id: cfg.user_id_path.clone(),
                roles: cfg.roles_path.clone(),
            },
        })
    }

    /// Ask the backend about `creds`.
    pub(crate) async fn authenticate(&self, creds: &Credentials) -> Result<Principal, AuthError> {
        // reqwest's own timeout covers connect to end of body; this outer
        // one is a backstop so nothing here can outlive `timeout_ms`.
        match tokio::time::timeout(self.timeout, self.ask(creds)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(AuthError::BootstrapTimeout),
        }
    }

    async fn ask(&self, creds: &Credentials) -> Result<Principal, AuthError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .headers(forwarded_headers(creds))
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(AuthError::BootstrapRefused {
                status: status.as_u16(),
            });
        }

        let too_large =
            || AuthError::BootstrapBadReply(format!("body over {MAX_BODY_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        principal_from_reply(&body, &self.paths)
    }
}

/// The headers the backend sees (see the module docs). Values come from
/// header values or validated tokens, so they are always valid; any that
/// somehow is not is left out rather than failing the request.
fn forwarded_headers(creds: &Credentials) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name: HeaderName, value: Option<String>| {
        if let Some(v) = value.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert(name, v);
        }
    };
    put(header::ACCEPT, Some("application/json".into()));
    put(header::COOKIE, creds.cookie.clone());
    put(header::USER_AGENT, creds.user_agent.clone());
    put(HeaderName::from_static("x-real-ip"), creds.real_ip.clone());
    let authorization = match (creds.token_source, &creds.token) {
        (TokenSource::Query, Some(token)) => Some(format!("Token {token}")),
        _ => creds.authorization.clone(),
    };
    put(header::AUTHORIZATION, authorization);
    put(
        HeaderName::from_static("x-csrftoken"),
        creds.cookie_value(CSRF_COOKIE),
    );
    headers
}

fn transport_error(e: reqwest::Error) -> AuthError {
    if e.is_timeout() {
        AuthError::BootstrapTimeout
    } else {
        // The URL is in the config already; leaving it out keeps any
        // userinfo in it out of the logs.
        AuthError::BootstrapUnreachable(e.without_url().to_string())
    }
}

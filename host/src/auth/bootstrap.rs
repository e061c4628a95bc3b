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
//! A 200 reply with a JSON object authorizes:
//! `{"allowed_rooms": [{...}], "user"?: "alice", "roles"?: ["admin"]}`.
//! - `allowed_rooms` missing means no rooms (high-templar accepts `{}`);
//!   anything but an array of objects (`["foo"]`, `null`) refuses.
//! - `user` missing, `null` or `""` becomes `"anonymous"`: high-templar's
//!   backends never sent one, and a session must still have a name for logs.
//!   A number is accepted as text (Django user ids).
//! - `roles` missing or `null` means no roles; otherwise an array of strings.
//!
//! Any other status refuses. Redirects are not followed (they would carry
//! the client's cookies to wherever the backend points), proxies from the
//! environment are ignored, the request is never retried, and the body is
//! read up to [`MAX_BODY_BYTES`]. The call is plain async I/O on the shared
//! client's connection pool, so a slow backend delays only the client that
//! is waiting for it.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::Value;

use super::{AuthError, AuthSetupError, Credentials, Principal, TokenSource, claims};
use crate::config::BootstrapConfig;

/// Largest bootstrap reply read. A user with a few hundred rooms fits.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The user a bootstrap reply without `user` stands for.
pub const ANONYMOUS_USER: &str = "anonymous";

/// The cookie whose value is forwarded as `X-CSRFToken`.
const CSRF_COOKIE: &str = "csrftoken";

/// The bootstrap URL and the one HTTP client every connection shares.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
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
        let client = reqwest::Client::builder()
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
        principal_from_reply(&body)
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

/// Parse a 200 reply's body (see the module docs for the rules).
fn principal_from_reply(body: &[u8]) -> Result<Principal, AuthError> {
    let bad = |reason: String| AuthError::BootstrapBadReply(reason);
    let reply: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(fields) = &reply else {
        return Err(bad("not a JSON object".into()));
    };

    let allowed_rooms = claims::rooms_from(fields.get("allowed_rooms"))
        .map_err(|e| bad(format!("allowed_rooms: {e}")))?;
    let user = match fields.get("user") {
        None | Some(Value::Null) => ANONYMOUS_USER.to_owned(),
        Some(Value::String(s)) if s.is_empty() => ANONYMOUS_USER.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(bad("user: not a string".into())),
    };
    let roles = match fields.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("roles: not an array of strings".into()))?,
        Some(_) => return Err(bad("roles: not an array of strings".into())),
    };
    Ok(Principal {
        user,
        roles,
        allowed_rooms,
    })
}

//! What a websocket client presented at upgrade, read once from the request.
//!
//! The gateway calls [`Credentials::from_request`] with the upgrade request's
//! headers, query string and peer address, then hands the result to
//! [`Authenticator::authenticate`](super::Authenticator::authenticate).
//!
//! Everything here is bounded: a header or token longer than its limit is
//! treated as absent rather than truncated, because a truncated token or
//! cookie is never what the client meant and would only produce a confusing
//! refusal further down.

use std::{fmt, net::IpAddr, net::SocketAddr};

use axum::http::{HeaderMap, header};

/// Longest token accepted from any source. JWTs from Keycloak with many
/// roles reach 2–3 KiB; 8 KiB leaves room without letting a client make us
/// hash or parse megabytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest `Cookie` or `Authorization` header kept (after joining repeated
/// `Cookie` headers). Browsers cap a single cookie at about 4 KiB, and the
/// whole header is forwarded to the bootstrap URL, so it must stay bounded.
pub const MAX_CREDENTIAL_HEADER_BYTES: usize = 16 * 1024;

/// Longest `User-Agent` kept; longer ones are dropped, not truncated.
pub const MAX_USER_AGENT_BYTES: usize = 1024;

/// Name of the cookie that may carry the token (DESIGN §5).
pub const TOKEN_COOKIE: &str = "access_token";

/// Name of the query parameter that may carry the token (high-templar's `?token=`).
pub const TOKEN_QUERY_PARAM: &str = "token";

/// Where [`Credentials::token`] came from. The bootstrap request depends on
/// it: a `?token=` token is forwarded as `Authorization: Token <t>`, as
/// high-templar does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <t>`
    Bearer,
    /// `?token=<t>` (percent-decoded)
    Query,
    /// The `access_token` cookie.
    Cookie,
    /// No token was presented.
    None,
}

/// The credentials of one upgrade request.
///
/// `Debug` redacts the secrets (token, cookie, authorization), so a
/// `Credentials` can be logged with `?creds`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The token, from the first source that had one (see [`TokenSource`]).
    pub token: Option<String>,
    /// Where `token` came from.
    pub token_source: TokenSource,
    /// The raw `Cookie` header (repeated headers joined with `"; "`).
    pub cookie: Option<String>,
    /// The raw `Authorization` header, whatever its scheme.
    pub authorization: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// `X-Real-IP` when it holds an IP address (set by the reverse proxy),
    /// else the peer address. Without a proxy in front, a client can set
    /// `X-Real-IP` itself, so treat this as informational only.
    pub real_ip: Option<String>,
}

impl Credentials {
    /// Read the credentials from an upgrade request.
    ///
    /// The token is taken from, in order: `Authorization: Bearer <t>`,
    /// `?token=<t>`, the `access_token` cookie. A token must be 1 to
    /// [`MAX_TOKEN_BYTES`] printable ASCII characters without spaces; one
    /// that is not counts as absent (and the next source is tried).
    ///
    /// In the query, `+` is kept as a literal `+`, not turned into a space:
    /// tokens never contain spaces, but standard base64 tokens do contain
    /// `+`, and clients often put them in URLs unescaped.
    pub fn from_request(
        headers: &HeaderMap,
        query: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Credentials {
        let authorization = single_header(headers, header::AUTHORIZATION.as_str())
            .filter(|v| v.len() <= MAX_CREDENTIAL_HEADER_BYTES);
        let cookie = joined_cookie_header(headers);
        let user_agent = single_header(headers, header::USER_AGENT.as_str())
            .filter(|v| v.len() <= MAX_USER_AGENT_BYTES);
        let real_ip = single_header(headers, "x-real-ip")
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
            .or_else(|| peer.map(|p| p.ip()))
            .map(|ip| ip.to_string());

        let (token, token_source) = if let Some(t) = authorization.as_deref().and_then(bearer_token)
        {
            (Some(t), TokenSource::Bearer)
        } else if let Some(t) = query.and_then(query_token) {
            (Some(t), TokenSource::Query)
        } else if let Some(t) = cookie
            .as_deref()
            .and_then(|c| cookie_value(c, TOKEN_COOKIE))
        {
            (Some(t), TokenSource::Cookie)
        } else {
            (None, TokenSource::None)
        };

        Credentials {
            token,
            token_source,
            cookie,
            authorization,
            user_agent,
            real_ip,
        }
    }

    /// Credentials with only a token, as if sent as `Authorization: Bearer`.
    /// Handy for tests and for callers that already extracted a token.
    pub fn bearer(token: impl Into<String>) -> Credentials {
        let token = token.into();
        Credentials {
            authorization: Some(format!("Bearer {token}")),
            token: Some(token),
            token_source: TokenSource::Bearer,
            cookie: None,
            user_agent: None,
            real_ip: None,
        }
    }

    /// No credentials at all.
    pub fn none() -> Credentials {
        Credentials {
            token: None,
            token_source: TokenSource::None,
            cookie: None,
            authorization: None,
            user_agent: None,
            real_ip: None,
        }
    }

    /// The value of cookie `name` in the raw `Cookie` header, if any.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        self.cookie.as_deref().and_then(|c| cookie_value(c, name))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redacted(v: &Option<String>) -> &'static str {
            if v.is_some() { "<redacted>" } else { "-" }
        }
        f.debug_struct("Credentials")
            .field("token", &redacted(&self.token))
            .field("token_source", &self.token_source)
            .field("cookie", &redacted(&self.cookie))
            .field("authorization", &redacted(&self.authorization))
            .field("user_agent", &self.user_agent)
            .field("real_ip", &self.real_ip)
            .finish()
    }
}

/// The first value of header `name`, if it is visible ASCII.
fn single_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// All `Cookie` headers joined with `"; "` (HTTP/2 may split them), or
/// `None` when absent or longer than [`MAX_CREDENTIAL_HEADER_BYTES`].
fn joined_cookie_header(headers: &HeaderMap) -> Option<String> {
    let mut joined = String::new();
    for value in headers.get_all(header::COOKIE) {
        let value = value.to_str().ok()?;
        if !joined.is_empty() {
            joined.push_str("; ");
        }
        joined.push_str(value);
        if joined.len() > MAX_CREDENTIAL_HEADER_BYTES {
            return None;
        }
    }
    (!joined.is_empty()).then_some(joined)
}

/// `Bearer <t>` (scheme case-insensitive) → `t`.
fn bearer_token(authorization: &str) -> Option<String> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    valid_token(rest.trim())
}

/// The first `token=` parameter of a query string, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == TOKEN_QUERY_PARAM)
        .and_then(|(_, value)| {
            // Decoding never makes a value longer, so checking the encoded
            // length first bounds the work.
            if value.len() > 3 * MAX_TOKEN_BYTES {
                return None;
            }
            percent_decode(value)
        })
        .and_then(|v| valid_token(&v))
}

/// The value of cookie `name` in a `Cookie` header (surrounding quotes
/// removed, no percent-decoding: RFC 6265 defines none).
fn cookie_value(cookie_header: &str, name: &str) -> Option<String> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| key.trim() == name)
        .and_then(|(_, value)| {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            valid_token(value)
        })
}

/// `%XX` → byte; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Check the digits by hand: `from_str_radix` would accept "+1".
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A token is 1..=[`MAX_TOKEN_BYTES`] bytes of printable ASCII without
/// spaces, so it can always be put back into a header (bootstrap's
/// `Authorization: Token <t>`) and never carries control characters into
/// logs or comparisons.
fn valid_token(t: &str) -> Option<String> {
    let ok = !t.is_empty() && t.len() <= MAX_TOKEN_BYTES && t.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| t.to_owned())
}

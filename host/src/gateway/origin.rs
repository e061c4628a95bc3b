//! Which sites may open a websocket that is authenticated by the visitor's
//! cookies (cross-site websocket hijacking).
//!
//! Browsers send cookies with a websocket upgrade whatever page opened it,
//! and websockets are not covered by CORS: without a check, a page on any
//! site could open a socket to this host as its visitor, through the
//! `access_token` cookie or through bootstrap mode, which forwards the
//! browser's cookies to the backend. Browsers also always send `Origin` on
//! an upgrade, and a page cannot forge it, so the upgrade handler refuses
//! those whose origin is not allowed whenever cookies can authenticate.
//!
//! Allowed: the host's own origin (the `Origin` names the `Host` the
//! request came to: a page served from this host, or through the same
//! reverse proxy name), every origin in `[server] allowed_origins`, and
//! every origin at all when that list is `["*"]`. A request without
//! `Origin` is not from a browser page (native apps, servers, scripts); it
//! cannot be carrying a visitor's cookies without the client meaning to,
//! so it is allowed. `Origin: null` (sandboxed frames, `file://` pages) is
//! a foreign origin.

use crate::config::{ANY_ORIGIN, serialized_origin};

/// Whether an upgrade from `origin` to `host` (the request's `Host`
/// header) may be authenticated by cookies, given `allowed_origins`.
pub(crate) fn allowed(
    origin: Option<&str>,
    host: Option<&str>,
    allowed_origins: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed_origins.iter().any(|o| o == ANY_ORIGIN) {
        return true;
    }
    let Some(origin) = serialized_origin(origin.trim()) else {
        return false;
    };
    allowed_origins.contains(&origin) || host.is_some_and(|h| same_host(&origin, h))
}

/// Whether `origin` (serialized: `https://app.example.com[:port]`) names
/// the authority in `host`. The scheme is not compared: behind a TLS
/// proxy the page is `https` and the host sees plain HTTP with the same
/// `Host`.
fn same_host(origin: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(name) = url.host_str() else {
        return false;
    };
    let host = host.trim();
    let explicit = url.port().map(|p| format!("{name}:{p}"));
    // `Host: example.com:443` for `https://example.com` names it too.
    let with_default = url.port_or_known_default().map(|p| format!("{name}:{p}"));
    host.eq_ignore_ascii_case(name) && explicit.is_none()
        || [explicit, with_default]
            .iter()
            .flatten()
            .any(|a| host.eq_ignore_ascii_case(a))
}

#[cfg(test)]
mod tests {
    use super::allowed;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_origin_is_not_a_browser_page_and_is_allowed() {
        assert!(allowed(None, Some("h.example.com"), &[]));
    }

    #[test]
    fn the_hosts_own_origin_is_allowed() {
        assert!(allowed(
            Some("https://h.example.com"),
            Some("h.example.com"),
            &[]
        ));
        assert!(allowed(
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080"),
            &[]
        ));
        assert!(allowed(Some("http://[::1]:8080"), Some("[::1]:8080"), &[]));
        assert!(allowed(
            Some("https://H.Example.com"),
            Some("h.example.com:443"),
            &[]
        ));
    }

    #[test]
    fn another_site_is_refused_unless_listed() {
        let host = Some("h.example.com");
        assert!(!allowed(Some("https://evil.example"), host, &[]));
        // Same name, other port: another origin.
        assert!(!allowed(
            Some("http://h.example.com:8081"),
            Some("h.example.com:8080"),
            &[]
        ));
        assert!(!allowed(
            Some("https://h.example.com.evil.example"),
            host,
            &[]
        ));
        assert!(!allowed(Some("null"), host, &[]));
        assert!(!allowed(Some("not an origin"), host, &[]));
        assert!(!allowed(Some("https://evil.example"), None, &[]));
        let listed = list(&["https://app.example.com", "http://localhost:3000"]);
        assert!(allowed(Some("https://app.example.com"), host, &listed));
        assert!(allowed(Some("http://localhost:3000"), host, &listed));
        assert!(!allowed(Some("http://app.example.com"), host, &listed));
        assert!(!allowed(Some("http://localhost:3001"), host, &listed));
    }

    #[test]
    fn a_star_allows_every_site() {
        assert!(allowed(
            Some("https://evil.example"),
            Some("h"),
            &list(&["*"])
        ));
        assert!(allowed(Some("null"), Some("h"), &list(&["*"])));
    }
}

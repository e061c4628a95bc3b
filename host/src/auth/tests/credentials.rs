use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::auth::{Credentials, MAX_TOKEN_BYTES, TokenSource};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn peer() -> Option<SocketAddr> {
    Some("192.0.2.7:40000".parse().unwrap())
}

#[test]
fn bearer_header() {
    let creds =
        Credentials::from_request(&headers(&[("authorization", "Bearer abc.def")]), None, None);
    assert_eq!(creds.token.as_deref(), Some("abc.def"));
    assert_eq!(creds.token_source, TokenSource::Bearer);
    assert_eq!(creds.authorization.as_deref(), Some("Bearer abc.def"));

    // The scheme is case-insensitive.
    let creds = Credentials::from_request(&headers(&[("authorization", "bearer xyz")]), None, None);
    assert_eq!(creds.token.as_deref(), Some("xyz"));
}

#[test]
fn query_token_is_percent_decoded() {
    let creds =
        Credentials::from_request(&HeaderMap::new(), Some("a=1&token=ab%2Fc%3D%3D&b=2"), None);
    assert_eq!(creds.token.as_deref(), Some("ab/c=="));
    assert_eq!(creds.token_source, TokenSource::Query);

    // `+` stays a `+` (standard base64 tokens contain it).
    let creds = Credentials::from_request(&HeaderMap::new(), Some("token=a+b"), None);
    assert_eq!(creds.token.as_deref(), Some("a+b"));

    // A malformed escape or a decoded space means no token.
    for query in [
        "token=ab%zz",
        "token=ab%+1",
        "token=a%20b",
        "token=",
        "tokenx=abc",
    ] {
        let creds = Credentials::from_request(&HeaderMap::new(), Some(query), None);
        assert_eq!(creds.token, None, "{query}");
        assert_eq!(creds.token_source, TokenSource::None, "{query}");
    }
}

#[test]
fn access_token_cookie() {
    let h = headers(&[(
        "cookie",
        "sessionid=s1; access_token=\"tok123\"; csrftoken=c",
    )]);
    let creds = Credentials::from_request(&h, None, None);
    assert_eq!(creds.token.as_deref(), Some("tok123"));
    assert_eq!(creds.token_source, TokenSource::Cookie);
    assert_eq!(creds.cookie_value("csrftoken").as_deref(), Some("c"));
}

#[test]
fn repeated_cookie_headers_are_joined() {
    let h = headers(&[("cookie", "a=1"), ("cookie", "access_token=t")]);
    let creds = Credentials::from_request(&h, None, None);
    assert_eq!(creds.cookie.as_deref(), Some("a=1; access_token=t"));
    assert_eq!(creds.token.as_deref(), Some("t"));
}

#[test]
fn precedence_bearer_then_query_then_cookie() {
    let all = headers(&[
        ("authorization", "Bearer from-header"),
        ("cookie", "access_token=from-cookie"),
    ]);
    let creds = Credentials::from_request(&all, Some("token=from-query"), None);
    assert_eq!(
        (creds.token.as_deref(), creds.token_source),
        (Some("from-header"), TokenSource::Bearer)
    );

    let no_bearer = headers(&[
        ("authorization", "Basic dXNlcjpwdw=="),
        ("cookie", "access_token=from-cookie"),
    ]);
    let creds = Credentials::from_request(&no_bearer, Some("token=from-query"), None);
    assert_eq!(
        (creds.token.as_deref(), creds.token_source),
        (Some("from-query"), TokenSource::Query)
    );
    // The non-Bearer header is still kept for the bootstrap request.
    assert_eq!(creds.authorization.as_deref(), Some("Basic dXNlcjpwdw=="));

    let creds = Credentials::from_request(&no_bearer, None, None);
    assert_eq!(
        (creds.token.as_deref(), creds.token_source),
        (Some("from-cookie"), TokenSource::Cookie)
    );
}

#[test]
fn oversized_token_is_no_token_and_next_source_is_used() {
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    let h = headers(&[("authorization", &format!("Bearer {long}"))]);
    let creds = Credentials::from_request(&h, Some("token=short"), None);
    assert_eq!(creds.token.as_deref(), Some("short"));
    assert_eq!(creds.token_source, TokenSource::Query);

    let creds = Credentials::from_request(&HeaderMap::new(), Some(&format!("token={long}")), None);
    assert_eq!(creds.token, None);

    let exactly = "a".repeat(MAX_TOKEN_BYTES);
    let creds =
        Credentials::from_request(&HeaderMap::new(), Some(&format!("token={exactly}")), None);
    assert_eq!(creds.token.as_deref(), Some(exactly.as_str()));
}

#[test]
fn oversized_headers_are_dropped() {
    let huge = format!("x={}", "v".repeat(20 * 1024));
    let h = headers(&[("cookie", &huge), ("user-agent", &"u".repeat(2000))]);
    let creds = Credentials::from_request(&h, None, None);
    assert_eq!(creds.cookie, None);
    assert_eq!(creds.user_agent, None);
}

#[test]
fn real_ip_from_header_else_peer() {
    let h = headers(&[
        ("x-real-ip", "203.0.113.9"),
        (header::USER_AGENT.as_str(), "agent/1"),
    ]);
    let creds = Credentials::from_request(&h, None, peer());
    assert_eq!(creds.real_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(creds.user_agent.as_deref(), Some("agent/1"));

    let creds = Credentials::from_request(&HeaderMap::new(), None, peer());
    assert_eq!(creds.real_ip.as_deref(), Some("192.0.2.7"));

    // Not an IP address: ignored, the peer is used.
    let h = headers(&[("x-real-ip", "evil\", injected")]);
    let creds = Credentials::from_request(&h, None, peer());
    assert_eq!(creds.real_ip.as_deref(), Some("192.0.2.7"));

    let creds = Credentials::from_request(&HeaderMap::new(), None, None);
    assert_eq!(creds.real_ip, None);
}

#[test]
fn debug_redacts_secrets() {
    let h = headers(&[
        ("authorization", "Bearer sekrit-token"),
        ("cookie", "sessionid=sekrit-cookie"),
    ]);
    let shown = format!("{:?}", Credentials::from_request(&h, None, None));
    assert!(!shown.contains("sekrit"), "{shown}");
    assert!(
        shown.contains("Bearer") || shown.contains("redacted"),
        "{shown}"
    );
}

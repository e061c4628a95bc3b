//! `[auth.oidc]`: what a usable table needs, and the bounds of its numbers.

use super::*;

const ISSUER: &str = "issuer = \"http://sso.internal:8080/realms/main\"\n";

#[test]
fn defaults_fill_an_issuer_and_audience() {
    let c = ok(&format!("[auth.oidc]\n{ISSUER}audience = \"modhost\"\n"));
    let oidc = c.auth.oidc.expect("[auth.oidc] read");
    assert_eq!(oidc.issuer, "http://sso.internal:8080/realms/main");
    assert_eq!(oidc.audience, ["modhost"]);
    assert_eq!(oidc.roles_claim.as_str(), "realm_access.roles");
    assert_eq!(oidc.rooms_claim, None);
    assert_eq!(oidc.leeway, Duration::from_secs(30));
    assert_eq!(oidc.refresh, Duration::from_secs(300));
    assert_eq!(oidc.unknown_kid_refresh, Duration::from_secs(10));
    assert_eq!(oidc.timeout, Duration::from_millis(5000));
    assert_eq!(oidc.max_response_bytes, 256 * 1024);
    assert_eq!(ok("").auth.oidc, None);
}

#[test]
fn an_issuer_and_an_audience_are_required() {
    invalid_at("[auth.oidc]\naudience = \"modhost\"\n", 1, "has no issuer");
    invalid_at(&format!("\n[auth.oidc]\n{ISSUER}"), 2, "has no audience");
    for bad in [
        "sso.internal/realms/main",
        "ftp://sso.internal/realms/main",
        "http://sso.internal/realms/main?x=1",
        " http://sso.internal/realms/main",
    ] {
        invalid_at(
            &format!("[auth.oidc]\naudience = \"modhost\"\nissuer = \"{bad}\"\n"),
            3,
            "not an http(s) URL",
        );
    }
}

#[test]
fn claim_paths_and_numbers_are_checked() {
    let table = format!("[auth.oidc]\n{ISSUER}audience = \"modhost\"\n");
    invalid_at(
        &format!("{table}roles_claim = \"realm_access..roles\"\n"),
        4,
        "not a usable claim path",
    );
    invalid_at(
        &format!("{table}rooms_claim = \"\"\n"),
        4,
        "not a usable claim path",
    );
    for (key, value) in [
        ("leeway_secs", 3601),
        ("refresh_secs", 9),
        ("refresh_secs", 86_401),
        ("unknown_kid_refresh_secs", 0),
        ("timeout_ms", 0),
        ("timeout_ms", 60_001),
        ("max_response_bytes", 1023),
        ("max_response_bytes", 16 * 1024 * 1024 + 1),
    ] {
        invalid_at(&format!("{table}{key} = {value}\n"), 4, "too");
    }
    let (e, shown) = err(&format!("{table}refresh = 3\n"));
    assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
}

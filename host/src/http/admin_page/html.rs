//! The page's HTML: escaping, the shell every view shares (navigation,
//! logout, the script and style), responses with the headers every page
//! carries, and the embedded assets.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The views, by path segment and title, in navigation order.
pub(super) const VIEWS: [(&str, &str); 5] = [
    ("modules", "Modules"),
    ("connections", "Connections"),
    ("rooms", "Rooms"),
    ("jobs", "Jobs"),
    ("config", "Config"),
];

/// `text` safe inside HTML text and double-quoted attributes.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as an RFC 3339 time (UTC).
pub(super) fn time(secs: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A button posting to `action` with the session's CSRF token.
pub(super) fn action(action: &str, label: &str, csrf: &str) -> String {
    format!(
        r#"<form method="post" action="{}" class="action"><input type="hidden" name="csrf" value="{}"><button type="submit">{}</button></form>"#,
        esc(action),
        esc(csrf),
        esc(label)
    )
}

/// A whole page: `main` inside the shell. `view` marks the navigation
/// entry and tells the script what to poll; `csrf` is `None` on the login
/// page (no navigation, no logout).
pub(super) fn page(title: &str, view: Option<&str>, csrf: Option<&str>, main: &str) -> String {
    let nav = match csrf {
        Some(csrf) => {
            let links: String = VIEWS
                .iter()
                .map(|(path, name)| {
                    let current = if Some(*path) == view {
                        r#" aria-current="page""#
                    } else {
                        ""
                    };
                    format!(r#"<a href="/admin/{path}"{current}>{name}</a>"#)
                })
                .collect();
            format!(
                "<nav>{links}{}</nav>",
                action("/admin/logout", "Log out", csrf)
            )
        }
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · modhost admin</title>
<link rel="stylesheet" href="/admin/assets/admin.css">
<script src="/admin/assets/admin.js" defer></script>
</head><body><header><strong>modhost</strong> admin</header>{nav}
<main id="view" data-view="{view}">{main}</main></body></html>"#,
        title = esc(title),
        view = esc(view.unwrap_or("")),
    )
}

/// `body` as an HTML response with `status`, and the headers every page
/// carries: no caching (pages hold CSRF tokens), no framing (clickjacking
/// of the action buttons), scripts and styles from this host only.
pub(super) fn respond(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

fn secure_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// 303 to `to` (after a form post, and for pages asked without a session).
pub(super) fn redirect(to: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    secure_headers(response.headers_mut());
    response
}

/// A page saying what went wrong, with a way back.
pub(super) fn error(status: StatusCode, message: &str, back: &str) -> Response {
    let main = format!(
        r#"<p class="error" role="alert">{}</p><p><a href="{}">Back</a></p>"#,
        esc(message),
        esc(back)
    );
    respond(status, page("Error", None, None, &main))
}

/// The embedded script (`host/assets/admin/admin.js`).
pub(super) const SCRIPT: &str = include_str!("../../../assets/admin/admin.js");
/// The embedded style sheet (`host/assets/admin/admin.css`).
pub(super) const STYLE: &str = include_str!("../../../assets/admin/admin.css");

/// An embedded asset with its type, cached briefly (it changes only with
/// the binary).
pub(super) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

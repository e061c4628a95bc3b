//! `/admin/feed` (issue 20 item 1, live updates): a view's HTML over the
//! host's own websocket, sent again when it changes; refused without the
//! page's cookie, from another origin, for an unknown view; closed with
//! 4003 when the page session ends.

use futures_util::StreamExt;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Error, Message, client::IntoClientRequest},
};

use crate::{
    admin_page::Page,
    harness::{TestHost, VERSION, WAIT, Workspace},
};

type Feed = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the feed of `view` with `cookie` from `origin`; the HTTP status
/// of a refusal.
async fn open(host: &TestHost, view: &str, cookie: &str, origin: &str) -> Result<Feed, u16> {
    let url = format!("ws://{}/admin/feed?view={view}", host.addr);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", cookie.parse().unwrap());
    headers.insert("origin", origin.parse().unwrap());
    match connect_async(request).await {
        Ok((feed, _)) => Ok(feed),
        Err(Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("feed: {e}"),
    }
}

/// The next message of `feed`: a view's HTML, or the close code.
async fn next(feed: &mut Feed) -> Result<String, u16> {
    loop {
        match tokio::time::timeout(WAIT, feed.next()).await {
            Ok(Some(Ok(Message::Text(html)))) => return Ok(html.to_string()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(frame.map_or(0, |f| f.code.into()));
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("the feed ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_view_is_pushed_when_it_changes_and_only_to_its_admin() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.key("notes");
    let host = TestHost::start(&ws, "").await;
    let page = Page::with_token(&host).await;
    let base = page.base.clone();

    assert_eq!(
        open(&host, "modules", "modhost_admin=nope", &base)
            .await
            .err(),
        Some(401)
    );
    let foreign = open(&host, "modules", &page.cookie, "http://evil.example").await;
    assert_eq!(foreign.err(), Some(403));
    assert_eq!(
        open(&host, "nothing", &page.cookie, &base).await.err(),
        Some(404)
    );

    let mut feed = open(&host, "modules", &page.cookie, &base)
        .await
        .expect("the feed");
    let first = next(&mut feed).await.expect("the view");
    assert!(first.contains(r#"data-module="echo""#), "{first}");
    assert!(!first.contains("notes"), "{first}");

    // A module dropped in is pushed, without the client asking.
    ws.publish("notes.so", &Workspace::build_bytes("notes", 0), "notes", 1);
    loop {
        let html = next(&mut feed).await.expect("a newer view");
        if html.contains(r#"data-module="notes" data-state="running""#) {
            break;
        }
    }

    // Logged out: the feed of that session is closed with 4003.
    page.act("/admin/logout").await;
    loop {
        match next(&mut feed).await {
            Ok(_) => continue,
            Err(code) => {
                assert_eq!(code, 4003);
                break;
            }
        }
    }
    host.stop().await;
}

//! `/admin/` against hostile use, on the real binary: logins past the
//! session cap, wrong admin tokens past the per-address limit, oversized
//! forms; and, with no account store, actions audited in the log (target
//! `modhost::audit`). Views list at most 500 rows.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness_process::ProcessHost;
use crate::{
    admin_page::{Page, page_client, post_login},
    harness::{ADMIN_TOKEN, Client, TestHost, VERSION, Workspace},
};

/// Logins made in a burst: far past the 64 sessions the page keeps.
const LOGINS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_sessions_login_attempts_and_forms_are_bounded_and_actions_logged() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let host = ProcessHost::start(&ws, "");
    let base = host.url("");
    let client = page_client(None);
    let first = Page::login(client.clone(), &base, &[("token", ADMIN_TOKEN)]).await;
    let before = host.rss_kib();

    let began = Instant::now();
    let mut peak = before;
    for i in 0..LOGINS {
        let resp = post_login(&client, &base, &[("token", ADMIN_TOKEN)], Some(&base)).await;
        assert_eq!(resp.status(), 303);
        if i % 100 == 0 {
            peak = peak.max(host.rss_kib());
        }
    }
    let took = began.elapsed();
    let last = Page::login(client.clone(), &base, &[("token", ADMIN_TOKEN)]).await;
    let after = host.rss_kib();
    println!(
        "{LOGINS} logins in {took:?}: RSS {:.1} → peak {:.1} → {:.1} MiB",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0
    );
    let (status, _) = first.get("/admin/modules").await;
    assert_eq!(status, 303, "the oldest session was dropped past the cap");
    let (status, _) = last.get("/admin/modules").await;
    assert_eq!(status, 200);

    // A form past 4 KiB is refused before it is read.
    let big = "x".repeat(5_000);
    let resp = post_login(&client, &base, &[("token", &big)], Some(&base)).await;
    assert_eq!(resp.status(), 413);

    // Without an account store, an action is audited in the log.
    last.act("/admin/modules/echo/reset").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = host.log();
        if log.contains("audit: admin page action")
            && log.contains("action=\"module_reset\" subject=\"echo\"")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ten wrong tokens from one address: the eleventh try is refused
    // unread, the right token too.
    for _ in 0..10 {
        let resp = post_login(&client, &base, &[("token", "guess")], Some(&base)).await;
        assert_eq!(resp.status(), 401);
    }
    let resp = post_login(&client, &base, &[("token", ADMIN_TOKEN)], Some(&base)).await;
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn the_rooms_view_lists_at_most_500_rooms_the_biggest_first() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, "").await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    bob.subscribe(json!({"target": "message", "customer": "2"}), "b")
        .await;
    for i in 0..510 {
        alice
            .send_json(json!({"type": "subscribe", "room": {"target": "message", "customer": i.to_string()},
                "requestId": format!("r{i}")}))
            .await;
    }
    for _ in 0..510 {
        alice.next().await;
    }
    let page = Page::with_token(&host).await;
    let (_, html) = page.get("/admin/rooms?fragment=1").await;
    assert_eq!(html.matches("<code>{").count(), 500, "{html}");
    assert!(html.contains("… and 10 more"), "{html}");
    // Bob's room has two subscribers: it leads the list.
    let first = html.split("<code>").nth(1).unwrap();
    assert!(
        first.starts_with("{&quot;customer&quot;:&quot;2&quot;"),
        "{first}"
    );
    host.stop().await;
}

//! `/admin/` against hostile use, on the real binary: logins past the
//! session cap, wrong admin tokens past the per-address limit, oversized
//! forms; and, with no account store, actions audited in the log (target
//! `modhost::audit`).

use std::time::{Duration, Instant};

use crate::{
    admin_page::{Page, page_client, post_login},
    harness::{ADMIN_TOKEN, ProcessHost, VERSION, Workspace},
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

//! `/admin/` (issue 20 item 1): logins with the admin token and with an
//! admin account, non-admins refused, every action refused without its
//! CSRF token or from another origin, each action done and audited, the
//! page over TLS with a `Secure` cookie. The helpers log in and act like
//! the page's forms; `admin_browser` uses them too.

use modhost::accounts::{Store, admin};
use serde_json::json;

use crate::{
    harness::{ADMIN_TOKEN, Client, TestHost, VERSION, Workspace, eventually},
    jobs_support::{Reaper, app_table, launch, wait_status},
};

/// A client that does not follow redirects (a login's cookie comes with
/// its 303); with `tls`, one trusting that certificate, with `localhost`
/// resolved to that address.
pub fn page_client(tls: Option<(reqwest::Certificate, std::net::SocketAddr)>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120));
    if let Some((root, addr)) = tls {
        builder = builder
            .add_root_certificate(root)
            .resolve("localhost", addr);
    }
    builder.build().unwrap()
}

/// `fields` as an urlencoded form body.
fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A logged-in page session.
pub struct Page {
    pub base: String,
    pub client: reqwest::Client,
    /// The whole `Set-Cookie` the login answered with.
    pub set_cookie: String,
    pub cookie: String,
    pub csrf: String,
}

/// `POST /admin/login` with `fields`, sent from `origin` (`None`: no
/// Origin header).
pub async fn post_login(
    client: &reqwest::Client,
    base: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{base}/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await.unwrap()
}

impl Page {
    /// Logs in with `fields` from the page's own origin; panics unless the
    /// login succeeds.
    pub async fn login(client: reqwest::Client, base: &str, fields: &[(&str, &str)]) -> Page {
        let resp = post_login(&client, base, fields, Some(base)).await;
        assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
        assert_eq!(resp.headers()["location"], "/admin/modules");
        let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let mut page = Page {
            base: base.to_owned(),
            client,
            set_cookie,
            cookie,
            csrf: String::new(),
        };
        let (status, html) = page.get("/admin/modules").await;
        assert_eq!(status, 200, "{html}");
        page.csrf = csrf_in(&html);
        page
    }

    /// Logs in to `host` with the admin token.
    pub async fn with_token(host: &TestHost) -> Page {
        Page::login(page_client(None), &host.url(""), &[("token", ADMIN_TOKEN)]).await
    }

    /// `GET path` with the cookie: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// `POST path` with the cookie, the form field `csrf` and the header
    /// `Origin` as given: (status, body).
    pub async fn post(
        &self,
        path: &str,
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> (u16, String) {
        let fields: Vec<(&str, &str)> = csrf.map(|c| ("csrf", c)).into_iter().collect();
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&fields));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// An action as the page's form sends it; asserts the redirect back.
    pub async fn act(&self, path: &str) {
        let (status, body) = self.post(path, Some(&self.csrf), Some(&self.base)).await;
        assert_eq!(status, 303, "{path}: {body}");
    }
}

/// The CSRF token in a page's forms.
pub fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The newest `action` entries of the account store's audit log, as
/// `actor action subject detail`.
fn audited(host: &TestHost, action: &str) -> Vec<String> {
    let store = host.state.accounts.as_ref().expect("accounts on").store();
    store
        .audit_log(200)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| {
            let subject = e.subject.unwrap_or_default();
            let detail = e.detail.unwrap_or_default();
            format!("{} {} {subject} {detail}", e.actor, e.action)
        })
        .collect()
}

/// Accounts on, with `ada` (admin) and `alice` (user).
const ACCOUNTS: &str = "[auth.accounts]\nenabled = true\n";

fn workspace_with_accounts() -> Workspace {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let store = Store::open_in(&ws.path().join("state")).unwrap();
    admin::add(
        &store,
        "ada",
        None,
        &["admin".to_owned()],
        Some("ada password"),
    )
    .unwrap();
    admin::add(
        &store,
        "alice",
        None,
        &["user".to_owned()],
        Some("alice password"),
    )
    .unwrap();
    ws
}

#[tokio::test]
async fn the_token_logs_in_and_everyone_else_is_sent_to_the_login_page() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let host = TestHost::start(&ws, "").await;
    let base = host.url("");
    let client = page_client(None);

    // No cookie: pages redirect to the login form, polls get 401, actions 401.
    for path in ["/admin/modules", "/admin/connections", "/admin/jobs"] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], "/admin/login");
    }
    let poll = client
        .get(format!("{base}/admin/modules?fragment=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 401);
    let resp = client
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(r#"name="token""#));

    // A wrong token, or the right one from another site or with no origin.
    let wrong = post_login(&client, &base, &[("token", "guess")], Some(&base)).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let foreign = [("token", ADMIN_TOKEN)];
    let cross = post_login(&client, &base, &foreign, Some("http://evil.example")).await;
    assert_eq!(cross.status(), 403);
    assert!(cross.headers().get("set-cookie").is_none());
    let bare = post_login(&client, &base, &foreign, None).await;
    assert_eq!(bare.status(), 403);

    let page = Page::with_token(&host).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(page.set_cookie.contains(attribute), "{}", page.set_cookie);
    }
    assert!(
        !page.set_cookie.contains("Secure"),
        "plain http: {}",
        page.set_cookie
    );
    let (status, html) = page.get("/admin/modules").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-module="echo""#), "{html}");
    let (status, fragment) = page.get("/admin/modules?fragment=1").await;
    assert_eq!(status, 200);
    assert!(!fragment.contains("<html"), "a fragment: {fragment}");

    // A made-up cookie is no session.
    let forged = client
        .get(format!("{base}/admin/modules"))
        .header("cookie", format!("modhost_admin={}", "ab".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303);

    // Logging out ends the session on the host, not only in the browser.
    page.act("/admin/logout").await;
    let (status, _) = page.get("/admin/modules").await;
    assert_eq!(status, 303);
    host.stop().await;
}

#[tokio::test]
async fn an_admin_account_logs_in_a_user_account_does_not_and_a_disabled_admin_is_out() {
    let ws = workspace_with_accounts();
    let host = TestHost::start(&ws, ACCOUNTS).await;
    let base = host.url("");
    let client = page_client(None);

    let user = [("username", "alice"), ("password", "alice password")];
    let refused = post_login(&client, &base, &user, Some(&base)).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("set-cookie").is_none());
    let wrong = [("username", "ada"), ("password", "nope")];
    assert_eq!(
        post_login(&client, &base, &wrong, Some(&base))
            .await
            .status(),
        401
    );

    let fields = [("username", "ada"), ("password", "ada password")];
    let page = Page::login(client.clone(), &base, &fields).await;
    let (status, _) = page.get("/admin/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(audited(&host, "admin_login").len(), 1);

    // Disabled in the store (the CLI, another process): the cookie stops
    // working at its next request.
    let store = Store::open_in(&ws.path().join("state")).unwrap();
    store.set_disabled("cli", "ada", true).unwrap();
    let (status, _) = page.get("/admin/rooms").await;
    assert_eq!(status, 303, "a disabled admin's page session ended");
    host.stop().await;
}

#[tokio::test]
async fn actions_need_this_origin_and_the_csrf_token_and_each_is_audited() {
    let ws = workspace_with_accounts();
    let host = TestHost::start(&ws, ACCOUNTS).await;
    let page = Page::with_token(&host).await;
    let reset = "/admin/modules/echo/reset";

    // Refused: no token, a wrong one, another site, no Origin or Referer.
    let (csrf, base) = (page.csrf.clone(), page.base.clone());
    for (token, origin, why) in [
        (None, Some(base.as_str()), "no CSRF token"),
        (
            Some("0".repeat(64)),
            Some(base.as_str()),
            "a wrong CSRF token",
        ),
        (
            Some(csrf.clone()),
            Some("http://evil.example"),
            "a foreign Origin",
        ),
        (Some(csrf.clone()), None, "neither Origin nor Referer"),
    ] {
        let (status, body) = page.post(reset, token.as_deref(), origin).await;
        assert_eq!(status, 403, "{why}: {body}");
    }
    // The page behind a TLS proxy: the same Host over https is this host.
    let proxied = base.replacen("http://", "https://", 1);
    let (status, body) = page.post(reset, Some(&csrf), Some(&proxied)).await;
    assert_eq!(status, 303, "{body}");
    // The header works like the form field (for scripts).
    let resp = page
        .client
        .post(format!("{base}{reset}"))
        .header("cookie", page.set_cookie.split(';').next().unwrap())
        .header("origin", &base)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let row = host.module("echo").await.unwrap();
    assert_eq!(row["generation"], 3, "reset twice: {row}");
    assert_eq!(audited(&host, "module_reset").len(), 2);

    page.act(reset).await;
    let row = host.module("echo").await.unwrap();
    assert_eq!(row["generation"], 4, "{row}");
    let resets = audited(&host, "module_reset");
    assert_eq!(resets.len(), 3, "{resets:?}");
    assert!(
        resets[0].starts_with("admin-token module_reset echo generation 4"),
        "{resets:?}"
    );

    // A connection appears with its subscriptions and is disconnected with
    // 4003; the rooms view shows its room.
    let mut alice = Client::authorized(&host, "alice-token").await;
    alice
        .subscribe(json!({"target": "message", "customer": "1"}), "r1")
        .await;
    let (_, html) = page.get("/admin/connections").await;
    let name = html
        .split(r#"data-session=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a connection row")
        .to_owned();
    assert!(html.contains(r#"data-user="alice""#), "{html}");
    let (_, rooms) = page.get("/admin/rooms").await;
    assert!(rooms.contains("message"), "{rooms}");
    page.act(&format!("/admin/sessions/{name}/disconnect"))
        .await;
    let (code, reason) = alice.close_frame().await.expect("a close frame");
    assert_eq!(
        (code, reason.as_str()),
        (4003, "disconnected by an operator")
    );
    let disconnects = audited(&host, "session_disconnect");
    assert!(
        disconnects[0].contains(&format!("session_disconnect {name} user alice")),
        "{disconnects:?}"
    );
    eventually("the session gone from the view", || {
        host.state.sessions.list().is_empty()
    })
    .await;
    let (status, _) = page
        .post(
            &format!("/admin/sessions/{name}/disconnect"),
            Some(&csrf),
            Some(&base),
        )
        .await;
    assert_eq!(status, 404, "a session that is gone");

    // Jobs and config views: their empty states.
    let (_, jobs) = page.get("/admin/jobs").await;
    assert!(jobs.contains("No jobs."), "{jobs}");
    let (_, config) = page.get("/admin/config").await;
    assert!(config.contains("Last reload"), "{config}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_stopped_from_the_page_and_audited() {
    let ws = workspace_with_accounts();
    let _reaper = Reaper(ws.path().to_owned());
    let host = TestHost::start(&ws, &format!("{ACCOUNTS}{}", app_table("web", &[], ""))).await;
    let id = launch(&host, "web").await;
    let api = host.url("/api/call");
    wait_status(&api, &id, "running").await;

    let page = Page::with_token(&host).await;
    let (_, html) = page.get("/admin/jobs").await;
    assert!(html.contains(&format!(r#"data-job="{id}""#)), "{html}");
    page.act(&format!("/admin/jobs/{id}/stop")).await;
    wait_status(&api, &id, "stopped").await;
    let stops = audited(&host, "job_stop");
    assert!(
        stops[0].starts_with(&format!("admin-token job_stop {id}")),
        "{stops:?}"
    );
    // A stop that fails is audited too, with why.
    let (status, body) = page
        .post(
            "/admin/jobs/no-such-job/stop",
            Some(&page.csrf),
            Some(&page.base),
        )
        .await;
    assert!(status >= 400, "{status}: {body}");
    let stops = audited(&host, "job_stop");
    assert!(
        stops[0].starts_with("admin-token job_stop no-such-job failed: "),
        "{stops:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn the_page_works_over_tls_with_a_secure_cookie() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let files = modhost::server::tls::dev_cert(&ws.path().join("tls"), &[]).unwrap();
    let text = ws.config_text("").replacen(
        "idle_timeout_secs = 300\n",
        "idle_timeout_secs = 300\ntls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\" }\n",
        1,
    );
    let host = TestHost::start_text(&ws, &text).await;
    let root = reqwest::Certificate::from_pem(&std::fs::read(&files.cert).unwrap()).unwrap();
    let base = format!("https://localhost:{}", host.addr.port());
    let page = Page::login(
        page_client(Some((root, host.addr))),
        &base,
        &[("token", ADMIN_TOKEN)],
    )
    .await;
    assert!(page.set_cookie.contains("; Secure"), "{}", page.set_cookie);
    let (status, html) = page.get("/admin/modules").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-module="echo""#), "{html}");
    page.act("/admin/modules/echo/reset").await;
    // An http:// Origin is another origin than the https page.
    let http_origin = format!("http://localhost:{}", host.addr.port());
    let (status, _) = page
        .post(
            "/admin/modules/echo/reset",
            Some(&page.csrf),
            Some(&http_origin),
        )
        .await;
    assert_eq!(status, 403);
    host.stop().await;
}

#[tokio::test]
async fn a_module_is_disabled_and_enabled_from_the_page_with_its_history_bounded() {
    let ws = workspace_with_accounts();
    let host = TestHost::start(&ws, ACCOUNTS).await;
    let page = Page::with_token(&host).await;

    page.act("/admin/modules/echo/disable").await;
    let refusals = host.refusals().await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["state"], "disabled");
    assert!(
        refusals[0]["error"]
            .as_str()
            .unwrap()
            .contains("disabled by an operator"),
        "{refusals:?}"
    );
    let (status, body) = host.call("echo", "echo", json!({})).await;
    assert_eq!(status, 404, "deregistered: {body}");
    let (_, html) = page.get("/admin/modules").await;
    assert!(html.contains("/admin/modules/echo/enable"), "{html}");
    // A config reload does not bring it back.
    ws.write_config(ACCOUNTS);
    let (status, _) = host.call("echo", "echo", json!({})).await;
    assert_eq!(status, 404);

    page.act("/admin/modules/echo/enable").await;
    let (status, body) = host.call("echo", "echo", json!({"x": 1})).await;
    assert_eq!(status, 200, "{body}");
    let row = host.module("echo").await.unwrap();
    assert_eq!(row["generation"], 2, "{row}");
    let events: Vec<&str> = row["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["load", "enabled", "removed", "load"], "{row}");
    let (_, html) = page.get("/admin/modules").await;
    assert!(html.contains(r#"<tr data-event="enabled">"#), "{html}");
    let (status, body) = page
        .post(
            "/admin/modules/echo/enable",
            Some(&page.csrf),
            Some(&page.base),
        )
        .await;
    assert_eq!(status, 409, "not disabled: {body}");
    assert_eq!(audited(&host, "module_disable").len(), 1);
    let enables = audited(&host, "module_enable");
    assert!(
        enables[1].starts_with("admin-token module_enable echo generation 2"),
        "{enables:?}"
    );
    assert!(enables[0].contains("failed"), "{enables:?}");

    // The history keeps the newest events only.
    for _ in 0..modhost::modules::MAX_EVENTS {
        assert_eq!(host.reset("echo").await.0, 200);
    }
    let history = host.module("echo").await.unwrap()["history"].clone();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), modhost::modules::MAX_EVENTS);
    assert!(history.iter().all(|e| e["event"] == "reset"), "{history:?}");

    // The switch is kept across a restart (in state_dir).
    page.act("/admin/modules/echo/disable").await;
    let file = ws
        .path()
        .join("state")
        .join(modhost::modules::DISABLED_FILE);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "echo\n");
    host.stop().await;
    let host = TestHost::start(&ws, ACCOUNTS).await;
    assert_eq!(host.call("echo", "echo", json!({})).await.0, 404);
    assert_eq!(host.refusals().await[0]["state"], "disabled");
    Page::with_token(&host)
        .await
        .act("/admin/modules/echo/enable")
        .await;
    assert_eq!(host.call("echo", "echo", json!({})).await.0, 200);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    host.stop().await;
}

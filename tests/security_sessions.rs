//! Issue 12, sessions and identities: what a client can make a session
//! hold (ids, names, remembered replies, parked sessions), whose session
//! it can resume, whose state it can read, and what happens to a session
//! whose credentials end.
//!
//! The memory test runs the real `modhost` binary ([`ProcessHost`]) and
//! measures its RSS; the others run a host in this process.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, tungstenite::Message};

use crate::harness::{Client, TestHost, WAIT, Workspace, write_atomic};
use crate::harness_process::ProcessHost;

async fn host(extra: &str) -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, extra).await;
    (ws, host)
}

/// `ws`'s config with `extra`, keeping dropped sessions parked for 10
/// minutes (so none expires while a test looks at it).
pub fn long_grace(ws: &Workspace, extra: &str) -> String {
    ws.config_text(extra).replace(
        "idle_timeout_secs = 300",
        "idle_timeout_secs = 300\nresume_grace_secs = 600",
    )
}

/// Writes `text` as the config.toml `ws`'s host watches.
fn write_config(ws: &Workspace, text: &str) {
    write_atomic(&ws.path().join("config.toml"), text.as_bytes());
}

/// Breaks the connection without a close frame (a reset, as a crashed
/// client or a dropped network leaves it): the session is parked.
pub fn abort(c: Client) {
    if let MaybeTlsStream::Plain(tcp) = c.ws.get_ref() {
        let _ = tcp.set_zero_linger();
    }
    drop(c);
}

/// Polls `check` until it gives a value; fails the test after a minute.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "still not {what} after 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The close frame's code and reason; `None` if the connection ends
/// without one or nothing comes within [`WAIT`].
pub async fn close_frame(c: &mut Client) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(WAIT, c.ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return Some((frame.code.into(), frame.reason.to_string()));
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// `c` answers `ping` with `pong` (resource offers skipped).
async fn pong(c: &mut Client) {
    c.send("ping").await;
    assert_eq!(c.silent_for(WAIT).await, Some(Value::String("pong".into())));
}

fn call(module: &str, command: &str, params: Value, rid: &str) -> String {
    json!({"type": "call", "module": module, "command": command, "params": params, "requestId": rid})
        .to_string()
}

// ---------------------------------------------------------------------------
// Per-session memory (item 1).

/// Clients that fill their sessions and drop.
const ATTACKERS: usize = 10;
/// Frames of each kind each sends.
const CALLS: usize = 1024;
/// Length of the over-long ids and names.
const LONG: usize = 8 * 1024;
/// Frames sent before their answers are read (the host paces reading by
/// the replies it owes, so a client must read too).
const BATCH: usize = 16;

/// A kind of frame an attacker sends: the `i`th frame, and whether an
/// answer is the one expected.
type Kind = (
    Box<dyn Fn(usize) -> String + Send + Sync>,
    fn(&Value) -> bool,
);

/// One attacker: over-long ids and names, then calls whose big replies a
/// session would remember, all answered; then a TCP reset. Returns how
/// many answers of each expected kind came.
async fn fill_and_drop(url: String) -> [usize; 3] {
    let mut c = Client::connect(&url).await;
    assert_eq!(c.next().await["is_authorized"], true);
    let long = |c: char| c.to_string().repeat(LONG);
    let short_id = |i: usize| format!("{i}-{}", "r".repeat(200));
    let kinds: [Kind; 3] = [
        // The attack as reported: 1,024 calls, each with a long requestId
        // and a long module name.
        (
            Box::new(move |i| call(&long('m'), "c", json!({}), &format!("{i}{}", long('i')))),
            |v| v == &json!({"code": "error", "message": "request-id-too-long"}),
        ),
        // Long names under a valid id: refused before they run.
        (
            Box::new(move |i| call(&long('m'), "c", json!({}), &short_id(i))),
            |v| v["type"] == "error" && v["code"] == "unknown-module",
        ),
        // Calls that run, each with a 4 KiB reply the session remembers.
        (
            Box::new(move |i| {
                call(
                    "echo",
                    "echo",
                    json!({"pad": "p".repeat(4096)}),
                    &short_id(CALLS + i),
                )
            }),
            |v| {
                v["type"] == "reply" && v["result"]["pad"].as_str().is_some_and(|p| p.len() == 4096)
            },
        ),
    ];
    let mut answered = [0; 3];
    for (k, (frame, expected)) in kinds.iter().enumerate() {
        for batch in (0..CALLS).collect::<Vec<_>>().chunks(BATCH) {
            for i in batch {
                c.ws.feed(Message::text(frame(*i))).await.expect("send");
            }
            c.ws.flush().await.expect("flush");
            // Counted, not asserted here: the memory they cost is checked
            // first, then the answers.
            for _ in batch {
                let v = c.next().await;
                answered[k] += usize::from(expected(&v));
            }
        }
    }
    abort(c);
    answered
}

/// Issue 12's report: 10 clients, each 1,024 calls with 30 KB module names
/// and 30 KB requestIds, then a TCP reset, took the host from 11 to 921
/// MiB, held by the parked sessions for 30 s with no connection open.
/// Scaled down (8 KiB, plus calls with big replies): ids and names past
/// their bounds are refused and not kept, remembered replies stay within
/// their byte budget, so the parked sessions hold little; a bystander is
/// answered throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_sessions_full_of_long_ids_names_and_replies_hold_bounded_memory() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = ProcessHost::start(&ws, "");
    // The grace period applies live: the attackers' sessions stay parked
    // until measured, however slow the machine.
    write_config(&ws, &long_grace(&ws, ""));
    eventually("the long grace applied", || async {
        host.log().contains("config.toml reloaded").then_some(())
    })
    .await;
    let mut bystander = Client::connect(&host.ws_url("bob-token")).await;
    bystander.next().await;
    pong(&mut bystander).await;
    let before = host.rss_kib();

    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| tokio::spawn(fill_and_drop(host.ws_url("alice-token"))))
        .collect();
    let mut peak = before;
    let mut slowest_pong = Duration::ZERO;
    while !attackers.iter().all(|a| a.is_finished()) {
        let asked = Instant::now();
        pong(&mut bystander).await;
        slowest_pong = slowest_pong.max(asked.elapsed());
        peak = peak.max(host.rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answered = Vec::new();
    for a in attackers {
        answered.push(a.await.unwrap());
    }
    let parked = eventually("all attackers parked", || async {
        let rows = crate::harness::api_connections(&host.url("")).await;
        let parked = rows.iter().filter(|r| r["state"] == "parked").count();
        (parked == ATTACKERS).then_some(parked)
    })
    .await;
    let after = host.rss_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "security_sessions: {ATTACKERS} clients × {CALLS} × 3 frames then reset; {parked} parked: \
         RSS before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB; slowest bystander pong {slowest_pong:?}",
        mib(before),
        mib(peak),
        mib(after)
    );
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "the parked sessions hold {:.1} MiB (before {:.1}, after {:.1})",
        mib(after.saturating_sub(before)),
        mib(before),
        mib(after)
    );
    assert_eq!(
        answered, [[CALLS; 3]; ATTACKERS],
        "every frame got its answer"
    );
    pong(&mut bystander).await;
}

/// Ids and names past their bounds get an error each; the connection
/// stays, and ids and names at their bounds work.
#[tokio::test]
async fn over_long_request_ids_and_names_get_errors_and_the_connection_stays() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let too_long = json!({"code": "error", "message": "request-id-too-long"});
    let rid = "i".repeat(257);
    let room = json!({"target": "message", "customer": "1"});
    for frame in [
        json!({"type": "subscribe", "room": room, "requestId": rid}),
        json!({"type": "unsubscribe", "requestId": rid}),
        json!({"type": "call", "module": "echo", "command": "echo", "params": {}, "requestId": rid}),
    ] {
        c.send_json(frame).await;
        assert_eq!(c.next().await, too_long);
    }
    let rid = "i".repeat(256);
    assert_eq!(c.subscribe(room, &rid).await["code"], "success");
    let reply = c.call("echo", "echo", json!({"x": 1}), &rid).await;
    assert_eq!(reply["result"], json!({"x": 1}), "{reply}");

    let refused = c.call(&"m".repeat(65), "echo", json!({}), "m").await;
    assert_eq!(refused["code"], "unknown-module", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("at most 64 bytes")
    );
    let refused = c.call("echo", &"c".repeat(129), json!({}), "c").await;
    assert_eq!(refused["code"], "unknown-command", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("at most 128 bytes")
    );
    // Refused before running, so the same ids may be used again.
    let reply = c.call("echo", "echo", json!({"x": 2}), "m").await;
    assert_eq!(reply["result"], json!({"x": 2}), "{reply}");
    host.stop().await;
}

/// Remembered replies have a byte budget: the oldest past it are dropped,
/// and a repeat of one is told the call already ran instead of running it
/// again. Newer ones still answer repeats with the stored reply.
#[tokio::test]
async fn a_repeat_of_a_call_whose_reply_was_dropped_for_memory_is_refused_not_run_again() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let wrote = c
        .call("notes", "write_note", json!({"note": "once"}), "note")
        .await;
    assert_eq!(wrote["result"]["count"], 1, "{wrote}");
    // 10 replies of 40 KiB are past the 256 KiB budget: the oldest go.
    let pad = "p".repeat(40 * 1024);
    for i in 0..10 {
        let reply = c
            .call("echo", "echo", json!({"pad": pad}), &i.to_string())
            .await;
        assert_eq!(reply["type"], "reply", "{reply}");
    }
    let newest = c.call("echo", "echo", json!({}), "9").await;
    assert_eq!(newest["result"]["pad"], pad.as_str(), "the stored reply");
    let repeat = c
        .call("notes", "write_note", json!({"note": "once"}), "note")
        .await;
    assert_eq!(
        (&repeat["type"], &repeat["code"], &repeat["requestId"]),
        (&json!("error"), &json!("too-large"), &json!("note")),
        "{repeat}"
    );
    assert!(repeat["message"].as_str().unwrap().contains("already ran"));
    let notes = c.call("notes", "fetch_notes", json!({}), "read").await;
    assert_eq!(notes["result"]["notes"], json!(["once"]), "written once");
    host.stop().await;
}

/// A user keeps at most 16 parked sessions: parking a 17th drops the
/// oldest (it can no longer be resumed), the newest still resumes.
#[tokio::test]
async fn a_user_keeps_at_most_16_parked_sessions_and_the_oldest_goes_first() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start_text(&ws, &long_grace(&ws, "")).await;
    let mut tokens = Vec::new();
    for n in 1..=17 {
        let (c, hello) = Client::hello(&host, "alice-token", "").await;
        tokens.push(hello["resume"].as_str().unwrap().to_owned());
        abort(c);
        let want = n.min(modhost::sessions::MAX_PARKED_PER_USER);
        eventually("parked", || async {
            (host.state.sessions.parked() == want).then_some(())
        })
        .await;
    }
    let (mut first, _) =
        Client::hello(&host, "alice-token", &format!("&resume={}", tokens[0])).await;
    assert_eq!(
        first.next().await,
        json!({"type": "resume_failed", "reason": "unknown-or-expired"})
    );
    let (mut last, _) =
        Client::hello(&host, "alice-token", &format!("&resume={}", tokens[16])).await;
    assert_eq!(last.next().await["type"], "resumed");
    host.stop().await;
}

// ---------------------------------------------------------------------------
// Anonymous bootstrap clients (item 6).

/// A bootstrap backend that names nobody: every client is anonymous.
async fn anonymous_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = axum::Router::new().route(
        "/bootstrap/",
        axum::routing::get(|| async {
            axum::Json(json!({"allowed_rooms": [{"target": "message", "customer": "*"}]}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, backend).await });
    addr
}

/// Two anonymous bootstrap clients share nothing: not notes, not pushes to
/// "their" user, not a session. They get no resume token (their names are
/// new on every connection, so nobody could resume their session) and are
/// not parked when they drop.
#[tokio::test]
async fn anonymous_bootstrap_clients_share_no_state_and_are_not_parked() {
    let api = anonymous_backend().await;
    let (_ws, host) = host(&format!(
        "[auth.bootstrap]\nurl = \"http://{api}/bootstrap/\"\n"
    ))
    .await;
    let (mut a, hello_a) = Client::hello(&host, "anything", "").await;
    let (mut b, hello_b) = Client::hello(&host, "anything", "").await;
    let (user_a, user_b) = (
        hello_a["user"].as_str().unwrap(),
        hello_b["user"].as_str().unwrap(),
    );
    assert_ne!(user_a, user_b);
    assert_eq!((hello_a.get("resume"), hello_b.get("resume")), (None, None));

    let wrote = a
        .call("notes", "write_note", json!({"note": "a's secret"}), "w")
        .await;
    assert_eq!(wrote["result"]["count"], 1, "{wrote}");
    let read = b.call("notes", "fetch_notes", json!({}), "r").await;
    assert_eq!(read["result"]["notes"], json!([]), "{read}");

    let (status, pushed) = host
        .call("echo", "notify", json!({"user": user_a, "data": "for a"}))
        .await;
    assert_eq!(
        (status, &pushed["result"]["delivered"]),
        (200, &json!(1)),
        "{pushed}"
    );
    assert_eq!(a.next().await["data"], "for a");
    pong(&mut b).await;

    let a_session = hello_a["session"].as_str().unwrap().to_owned();
    abort(a);
    eventually("a's session gone", || async {
        let rows = crate::harness::api_connections(&host.url("")).await;
        (!rows.iter().any(|r| r["session"] == a_session.as_str())).then_some(())
    })
    .await;
    assert_eq!(host.state.sessions.parked(), 0);
    host.stop().await;
}

// ---------------------------------------------------------------------------
// Identities namespaced by source (item 13).

const JWT_SECRET: &str = "security-sessions-secret";

fn jwt(sub: &str, exp: u64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "exp": exp, "roles": ["user"],
                "allowed_rooms": [{"target": "message", "customer": "*"}]}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn jwt_host() -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let text = long_grace(&ws, "").replace(
        "[trigger]",
        &format!("[auth.jwt]\nsecret = \"{JWT_SECRET}\"\nleeway_secs = 0\n[trigger]"),
    );
    let host = TestHost::start_text(&ws, &text).await;
    (ws, host)
}

/// A JWT whose `sub` is "alice" is `jwt:alice`, not the static alice: it
/// reads none of her notes, gets none of her pushes and cannot resume her
/// session; the refusal reads exactly like that of a token nobody has.
#[tokio::test]
async fn a_jwt_alice_is_not_the_static_alice() {
    let (_ws, host) = jwt_host().await;
    let (mut alice, hello) = Client::hello(&host, "alice-token", "").await;
    assert_eq!(hello["user"], "alice");
    let token = hello["resume"].as_str().unwrap().to_owned();
    let wrote = alice
        .call("notes", "write_note", json!({"note": "alice's"}), "w")
        .await;
    assert_eq!(wrote["result"]["count"], 1, "{wrote}");

    let jwt = jwt("alice", unix_now() + 600);
    let (mut other, hello) = Client::hello(&host, &jwt, "").await;
    assert_eq!(hello["user"], "jwt:alice", "{hello}");
    let me = other.call("echo", "whoami", json!({}), "me").await;
    assert_eq!(me["result"]["user"], "jwt:alice", "{me}");
    let read = other.call("notes", "fetch_notes", json!({}), "r").await;
    assert_eq!(read["result"]["notes"], json!([]), "{read}");

    let (_, pushed) = host
        .call("echo", "notify", json!({"user": "alice", "data": "static"}))
        .await;
    assert_eq!(pushed["result"]["delivered"], 1, "{pushed}");
    assert_eq!(alice.next().await["data"], "static");
    pong(&mut other).await;

    abort(alice);
    eventually("alice parked", || async {
        (host.state.sessions.parked() == 1).then_some(())
    })
    .await;
    let (mut taker, _) = Client::hello(&host, &jwt, &format!("&resume={token}")).await;
    let refused = taker.next().await;
    let (mut guesser, _) =
        Client::hello(&host, &jwt, "&resume=0123456789abcdef0123456789abcdef").await;
    assert_eq!(refused, guesser.next().await);
    assert_eq!(
        refused,
        json!({"type": "resume_failed", "reason": "unknown-or-expired"})
    );
    assert_eq!(
        host.state.sessions.parked(),
        1,
        "alice's session stays parked for her"
    );
    host.stop().await;
}

// ---------------------------------------------------------------------------
// Revocation (item 11).

/// carol's two tokens: `carol-token` with `roles` (left out for `None`),
/// and `carol-other-token`.
fn carol(roles: Option<&str>) -> String {
    let entry = |token: &str, roles: &str| {
        format!(
            "[[auth.tokens]]\ntoken = \"{token}\"\nuser = \"carol\"\nroles = {roles}\n\
             allowed_rooms = [{{ target = \"message\", customer = \"3\" }}]\n"
        )
    };
    let first = roles.map(|r| entry("carol-token", r)).unwrap_or_default();
    format!("{first}{}", entry("carol-other-token", "[\"user\"]"))
}

pub async fn wait_applied(host: &TestHost, n: u64) {
    eventually("the config applied", || async {
        (host.config_status().await["applied"] == n).then_some(())
    })
    .await;
}

/// Edits of config.toml reach open sessions: a token's roles taken away
/// apply at once, a removed token closes its sessions with 4003 `token
/// revoked`, and its parked sessions cannot be resumed, not even by the
/// same user on another token. Other users are untouched.
#[tokio::test]
async fn removing_a_static_token_ends_its_sessions_and_a_lost_role_applies_at_once() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let text = long_grace(&ws, &carol(Some("[\"admin\", \"user\"]")));
    write_config(&ws, &text);
    let host = TestHost::start_text(&ws, &text).await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    let mut open = Client::authorized(&host, "carol-token").await;
    let (dropped, hello) = Client::hello(&host, "carol-token", "").await;
    let parked_token = hello["resume"].as_str().unwrap().to_owned();
    abort(dropped);
    eventually("carol parked", || async {
        (host.state.sessions.parked() == 1).then_some(())
    })
    .await;
    let admin_only = open.call("echo", "config", json!({}), "1").await;
    assert_eq!(admin_only["type"], "reply", "{admin_only}");

    write_config(&ws, &long_grace(&ws, &carol(Some("[\"user\"]"))));
    wait_applied(&host, 1).await;
    // Applied by the session when it sees the change; poll until it has.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 2;
    let refused = loop {
        let v = open
            .call("echo", "config", json!({}), &attempt.to_string())
            .await;
        if v["code"] == "forbidden" {
            break v;
        }
        assert!(Instant::now() < deadline, "the role is still there: {v}");
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused["type"], "error", "{refused}");

    // carol-token removed; carol keeps her other token.
    write_config(&ws, &long_grace(&ws, &carol(None)));
    wait_applied(&host, 2).await;
    assert_eq!(
        close_frame(&mut open).await,
        Some((4003, "token revoked".to_owned()))
    );
    assert_eq!(
        host.ws("carol-token").await.next().await,
        json!({"is_authorized": false})
    );
    let (mut other, _) = Client::hello(
        &host,
        "carol-other-token",
        &format!("&resume={parked_token}"),
    )
    .await;
    assert_eq!(
        other.next().await,
        json!({"type": "resume_failed", "reason": "unknown-or-expired"})
    );
    pong(&mut alice).await;
    host.stop().await;
}

/// A JWT session ends when its token does: close 4003 `token expired` at
/// its `exp` (no leeway configured here), not at the idle timeout.
#[tokio::test]
async fn a_jwt_session_is_closed_when_its_token_expires() {
    let (_ws, host) = jwt_host().await;
    let mut c = Client::connect(&format!(
        "ws://{}/ws/?token={}",
        host.addr,
        jwt("dora", unix_now() + 2)
    ))
    .await;
    assert_eq!(c.next().await["is_authorized"], true);
    assert_eq!(
        close_frame(&mut c).await,
        Some((4003, "token expired".to_owned()))
    );
    host.stop().await;
}

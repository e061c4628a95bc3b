//! The session loop's state machine, driven through channels instead of a
//! socket (`run` is generic over the socket's halves): subscribe, publish,
//! calls, replies pacing the reader, slow consumers, close and resume.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::extract::ws::Message;
use serde_json::{Value, json, value::RawValue};
use tokio::sync::mpsc;

use crate::{
    auth::Credentials,
    protocol::{Dialect, Extended},
    rooms::Room,
    server::Host,
    state::AppState,
};

use super::{Connection, Slot, run};

/// A host with no modules, two users and `extra` config.
async fn host(extra: &str) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["plugins", "keys", "state"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
token = "admin-api"
[[auth.tokens]]
token = "alice"
user = "alice"
roles = ["user"]
allowed_rooms = [{{ target = "message", customer = "*" }}]
[[auth.tokens]]
token = "root"
user = "root"
roles = ["admin"]
allowed_rooms = [{{ target = "*" }}]
[modules]
dir = "plugins"
verify_keys = ["keys"]
state_dir = "state"
{extra}
"#
    );
    let config = crate::config::parse(&text, &dir.path().join("config.toml")).unwrap();
    (Host::build(config).await.unwrap(), dir)
}

/// One end of a channel-backed connection, as a client sees it.
struct Client {
    to_host: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    from_host: mpsc::Receiver<Message>,
    session: tokio::task::JoinHandle<()>,
}

/// Opens a session over channels. `from_host` holds at most `buffer`
/// frames: a client that does not read blocks the session's writer there.
fn connect(state: &Arc<AppState>, token: &str, resume: Option<String>, buffer: usize) -> Client {
    connect_in(state, token, resume, buffer, &Extended)
}

/// Opens a session speaking `dialect`.
fn connect_in(
    state: &Arc<AppState>,
    token: &str,
    resume: Option<String>,
    buffer: usize,
    dialect: &'static dyn Dialect,
) -> Client {
    assert!(state.sessions.try_reserve(1_000));
    let (to_host, from_client) = mpsc::unbounded_channel();
    let (to_client, from_host) = mpsc::channel(buffer);
    let sink = Box::pin(futures_util::sink::unfold(
        to_client,
        |tx: mpsc::Sender<Message>, msg: Message| async move {
            tx.send(msg).await.map_err(axum::Error::new)?;
            Ok::<_, axum::Error>(tx)
        },
    ));
    let stream = Box::pin(futures_util::stream::unfold(
        from_client,
        |mut rx: mpsc::UnboundedReceiver<Result<Message, axum::Error>>| async move {
            rx.recv().await.map(|msg| (msg, rx))
        },
    ));
    let connection = Box::new(Connection {
        state: state.clone(),
        creds: Credentials::bearer(token),
        resume,
        remote: None,
        slot: Slot(state.clone()),
        dialect,
    });
    let session = tokio::spawn(run(sink, stream, connection));
    Client {
        to_host,
        from_host,
        session,
    }
}

impl Client {
    fn send(&self, frame: Value) {
        self.send_text(&frame.to_string());
    }

    fn send_text(&self, text: &str) {
        let _ = self.to_host.send(Ok(Message::Text(text.to_owned().into())));
    }

    /// The next frame (text as JSON; a close frame as `{"close": code}`).
    async fn next(&mut self) -> Value {
        let msg = tokio::time::timeout(Duration::from_secs(30), self.from_host.recv())
            .await
            .expect("a frame within 30 s")
            .expect("the session is open");
        match msg {
            Message::Text(t) => serde_json::from_str(&t).unwrap_or(Value::String(t.to_string())),
            Message::Close(f) => json!({"close": f.map(|f| f.code)}),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The next frame that is not a resource offer.
    async fn reply(&mut self) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] != "resource_offer" {
                return v;
            }
        }
    }

    /// Connects and reads the hello (returned) and the offer.
    async fn hello(&mut self) -> Value {
        let hello = self.next().await;
        assert_eq!(hello["is_authorized"], true, "{hello}");
        assert_eq!(self.next().await["type"], "resource_offer");
        hello
    }

    async fn ended(self) {
        tokio::time::timeout(Duration::from_secs(30), self.session)
            .await
            .expect("the session ends")
            .unwrap();
    }
}

fn room(customer: &str) -> Value {
    json!({"target": "message", "customer": customer})
}

fn publish(state: &AppState, customer: &str, data: Value) -> u64 {
    let rooms = [Room::parse(&room(customer)).unwrap()];
    let data: Box<RawValue> = serde_json::value::to_raw_value(&data).unwrap();
    state.publish(&rooms, &data)
}

#[tokio::test]
async fn subscribe_publish_unsubscribe() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    let mut c = connect(state, "alice", None, 64);
    c.hello().await;
    c.send(json!({"type": "subscribe", "room": room("1"), "requestId": "r"}));
    assert_eq!(
        c.reply().await,
        json!({"code": "success", "requestId": "r"})
    );
    assert_eq!(publish(state, "*", json!({"n": 1})), 1);
    assert_eq!(
        c.reply().await,
        json!({"type": "publish", "data": {"n": 1}, "requestId": "r"})
    );
    c.send(json!({"type": "subscribe", "room": {"target": "other"}, "requestId": "x"}));
    assert_eq!(c.reply().await["message"], "room-not-found");
    c.send(json!({"type": "unsubscribe", "requestId": "r"}));
    assert_eq!(
        c.reply().await,
        json!({"code": "success", "requestId": "r"})
    );
    c.send(json!({"type": "unsubscribe", "requestId": "r"}));
    assert_eq!(c.reply().await["message"], "not-subscribed");
    c.send_text("ping");
    assert_eq!(c.reply().await, json!("pong"));
    c.send_text("{nope");
    assert_eq!(c.reply().await["message"], "non-json-message");
    c.send(json!({"type": "status"}));
    assert_eq!(
        c.reply().await["open_connections"],
        1,
        "everyone by default"
    );
    c.send(json!({"type": "call", "module": "ghost", "command": "x", "requestId": "c"}));
    let error = c.reply().await;
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("error"), &json!("unknown-module"))
    );
}

#[tokio::test]
async fn a_refused_token_gets_unauthorized_and_close_4001() {
    let (host, _dir) = host("").await;
    let mut c = connect(&host.state, "wrong", None, 64);
    assert_eq!(c.next().await, json!({"is_authorized": false}));
    assert_eq!(c.next().await, json!({"close": 4001}));
    c.ended().await;
    assert_eq!(host.state.sessions.open(), 0, "the slot was given back");
}

/// The writer is blocked (the client reads nothing) and the outbox bound is
/// 4: replies to the client's own 300 frames still all wait and arrive,
/// and the client is not closed.
#[tokio::test]
async fn replies_never_make_a_client_too_slow() {
    let (host, _dir) = host("[limits]\nsend_queue = 4").await;
    let mut c = connect(&host.state, "alice", None, 1);
    for i in 0..300 {
        c.send(
            json!({"type": "subscribe", "room": room(&i.to_string()), "requestId": i.to_string()}),
        );
    }
    c.hello().await;
    for i in 0..300 {
        let reply = c.reply().await;
        assert_eq!(
            reply,
            json!({"code": "success", "requestId": i.to_string()})
        );
    }
    let counters = &host.state.sessions.counters;
    assert_eq!(counters.slow_consumers_closed.load(Ordering::Relaxed), 0);
}

/// Unrequested room messages past the bound close the client with 4008.
#[tokio::test]
async fn room_messages_past_the_bound_close_the_client() {
    let (host, _dir) = host("[limits]\nsend_queue = 4").await;
    let state = &host.state;
    let mut c = connect(state, "alice", None, 1);
    c.hello().await;
    c.send(json!({"type": "subscribe", "room": room("1"), "requestId": "r"}));
    assert_eq!(c.reply().await["code"], "success");
    // The client reads nothing from here on.
    for i in 0..20 {
        publish(state, "1", json!(i));
    }
    c.ended().await;
    let counters = &state.sessions.counters;
    assert_eq!(counters.slow_consumers_closed.load(Ordering::Relaxed), 1);
    assert_eq!(
        state.fanout.num_subscriptions(),
        0,
        "its subscription is gone"
    );
}

/// A client that sends without reading is read only up to its reply
/// window (here 1 + 1 + 64 = 66 unsent replies, plus at most one write
/// batch of 128 the writer has taken and is blocked sending), then paced.
#[tokio::test]
async fn unsent_replies_pause_reading() {
    let (host, _dir) = host("[limits]\nmax_subscriptions = 1\nmax_calls_in_flight = 1").await;
    let state = &host.state;
    let mut c = connect(state, "alice", None, 1);
    for _ in 0..500 {
        c.send_text("ping");
    }
    let received = || {
        state
            .sessions
            .counters
            .ws_messages_received
            .load(Ordering::Relaxed)
    };
    while received() < 66 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // However long it waits, it reads no further while nothing is taken.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let most = 66 + 1 + super::writer::WRITE_BATCH as u64;
    assert!(received() <= most, "read {} frames", received());
    c.hello().await;
    for _ in 0..500 {
        assert_eq!(c.reply().await, json!("pong"));
    }
    assert_eq!(received(), 500);
}

#[tokio::test]
async fn a_close_frame_ends_the_session_for_good() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    let mut c = connect(state, "alice", None, 64);
    c.hello().await;
    c.send(json!({"type": "subscribe", "room": room("1"), "requestId": "r"}));
    assert_eq!(c.reply().await["code"], "success");
    let _ = c.to_host.send(Ok(Message::Close(None)));
    c.ended().await;
    assert_eq!(state.sessions.parked(), 0);
    assert_eq!(state.fanout.num_subscriptions(), 0);
    assert_eq!(state.sessions.open(), 0);
}

/// A dropped client's session is parked with its subscription, collects
/// what is published meanwhile, and is resumed by its token.
#[tokio::test]
async fn a_dropped_session_is_parked_and_resumed() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    let mut c = connect(state, "alice", None, 64);
    let token = c.hello().await["resume"].as_str().unwrap().to_owned();
    c.send(json!({"type": "subscribe", "room": room("1"), "requestId": "r"}));
    assert_eq!(c.reply().await["code"], "success");
    drop(c.to_host);
    tokio::time::timeout(Duration::from_secs(30), c.session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.sessions.parked(), 1);
    assert_eq!(publish(state, "1", json!("missed")), 1);
    // Someone else's token cannot take it.
    let mut other = connect(state, "root", Some(token.clone()), 64);
    let hello = other.next().await;
    assert_eq!(hello["is_authorized"], true);
    assert_eq!(
        other.reply().await,
        json!({"type": "resume_failed", "reason": "unknown-or-expired"})
    );
    let mut back = connect(state, "alice", Some(token), 64);
    back.hello().await;
    assert_eq!(
        back.reply().await,
        json!({"type": "resumed", "complete": true})
    );
    assert_eq!(
        back.reply().await,
        json!({"type": "publish", "data": "missed", "requestId": "r"})
    );
    assert_eq!(state.sessions.parked(), 0);
}

/// A high-templar client is sent nothing it did not ask for: no offer, no
/// module pushes, and its dropped session is not parked (it has no token).
#[tokio::test]
async fn legacy_clients_get_nothing_unasked() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    let mut c = connect_in(state, "alice", None, 64, &crate::protocol::Legacy);
    assert_eq!(
        c.next().await,
        json!({"is_authorized": true, "allowed_rooms": [{"target": "message", "customer": "*"}]})
    );
    let data = RawValue::from_string("1".into()).unwrap();
    assert_eq!(state.sessions.send_to_user("alice", "notes", &data), 0);
    c.send_text("ping");
    assert_eq!(c.next().await, json!("pong"));
    drop(c.to_host);
    tokio::time::timeout(Duration::from_secs(30), c.session)
        .await
        .expect("the session ends")
        .unwrap();
    assert_eq!(state.sessions.parked(), 0);
    assert!(state.sessions.list().is_empty());
}

/// Clients a bootstrap reply names nobody for are each someone of their
/// own, new on every connection: no later connection could resume their
/// session, so they get no resume token and are not parked when they drop.
#[tokio::test]
async fn anonymous_clients_get_no_resume_token_and_are_not_parked() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let backend = axum::Router::new().route(
        "/bootstrap/",
        axum::routing::get(|| async {
            axum::Json(json!({"allowed_rooms": [{"target": "message", "customer": "*"}]}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, backend).await });
    let (host, _dir) = host(&format!(
        "[auth.bootstrap]\nurl = \"http://{api}/bootstrap/\"\ntimeout_ms = 60000\n"
    ))
    .await;
    let state = &host.state;

    let mut first = connect(state, "opaque-1", None, 64);
    let hello = first.hello().await;
    let first_user = hello["user"].as_str().unwrap().to_owned();
    assert_eq!(hello.get("resume"), None, "{hello}");
    first.send(json!({"type": "subscribe", "room": room("1"), "requestId": "r"}));
    assert_eq!(first.reply().await["code"], "success");
    drop(first.to_host);
    first.session.await.unwrap();
    assert_eq!(state.sessions.parked(), 0);
    assert!(state.sessions.list().is_empty());
    assert_eq!(publish(state, "1", json!("to nobody")), 0);

    let mut second = connect(state, "opaque-2", None, 64);
    let hello = second.hello().await;
    let second_user = hello["user"].as_str().unwrap();
    for user in [first_user.as_str(), second_user] {
        assert!(user.starts_with(crate::auth::ANONYMOUS_PREFIX), "{user}");
    }
    assert_ne!(first_user, second_user);
}

/// The session future is most of an idle connection's memory (issue 13).
/// It held the reader and the writer twice each and its arguments beside
/// what was moved out of them: 3,736 bytes in a release build over real
/// sockets, 1,976 since; in this (debug) build over channel-less halves,
/// 2,112 then and 1,736 now. A future that grows past the bound takes
/// room in every idle connection: box what only a rare state needs.
#[tokio::test]
async fn the_session_future_stays_small() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    assert!(state.sessions.try_reserve(1_000));
    let connection = Box::new(Connection {
        state: state.clone(),
        creds: Credentials::bearer("alice"),
        resume: None,
        remote: None,
        slot: Slot(state.clone()),
        dialect: &Extended,
    });
    let sink = futures_util::sink::drain();
    let stream = futures_util::stream::pending::<Result<Message, axum::Error>>();
    let size = std::mem::size_of_val(&run(sink, stream, connection));
    assert!(
        size <= 2_000,
        "the session future grew to {size} bytes, paid by every idle connection"
    );
}

/// A session greets the client with its rooms, then keeps them parsed
/// only: not also as the principal's JSON, a copy per idle connection.
#[tokio::test]
async fn an_open_session_keeps_its_rooms_parsed_only() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    let auth = state.auth.load_full();
    let principal = auth
        .authenticate(&Credentials::bearer("alice"))
        .await
        .unwrap();
    let allowed = principal
        .allowed_rooms
        .iter()
        .map(|r| Room::parse(r).unwrap())
        .collect();
    let opened = super::session::open(state, principal, allowed, None, &Extended, None);
    assert!(opened.session.principal.allowed_rooms.is_empty());
    assert_eq!(opened.session.allowed.len(), 1);
    let hello: Value = serde_json::from_str(&opened.preamble[0]).unwrap();
    assert_eq!(hello["allowed_rooms"], json!([room("*")]), "{hello}");
}

/// A reloaded token keeps its sessions only while its rooms are the ones
/// they were opened with (the session compares against its parsed copy).
#[test]
fn a_token_keeps_its_sessions_only_with_the_same_rooms() {
    use super::revoke::same_rooms;
    let allowed: Vec<Room> = [room("*"), room("2")]
        .iter()
        .map(|r| Room::parse(r).unwrap())
        .collect();
    assert!(same_rooms(&[room("*"), room("2")], &allowed));
    assert!(!same_rooms(&[room("*"), room("3")], &allowed));
    assert!(!same_rooms(&[room("2"), room("*")], &allowed));
    assert!(!same_rooms(&[room("*")], &allowed));
    assert!(!same_rooms(&[room("*"), json!("2")], &allowed));
}

/// A static token's rooms are parsed once, when the config is loaded, and
/// shared by its sessions rather than parsed again for each (issue 13).
#[tokio::test]
async fn sessions_of_a_static_token_share_its_parsed_rooms() {
    let (host, _dir) = host("").await;
    let state = &host.state;
    let open = || super::session::authenticate(state, Credentials::bearer("alice"), None);
    let (first, rooms) = open().await.unwrap();
    let (_, again) = open().await.unwrap();
    assert!(Arc::ptr_eq(&rooms, &again), "parsed once per token");
    let parsed: Vec<Room> = first
        .allowed_rooms
        .iter()
        .map(|r| Room::parse(r).unwrap())
        .collect();
    assert_eq!(*rooms, *parsed);
}

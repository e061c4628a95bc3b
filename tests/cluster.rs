//! Several hosts as one platform through a real NATS server (issue 19):
//! a publish on any host reaches the matching subscribers on every host,
//! wildcards on either side; a host receives only the rooms its clients
//! subscribed to (the server's own counters say so); room names with dots,
//! stars and spaces stay apart; a host cut off from NATS keeps serving
//! its own clients and says so in `/health`, and clients that come back
//! to it are told they missed publications (`complete:false`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    harness::{Client, TRIGGER_TOKEN, TestHost, http},
    history_recovery,
    nats_harness::{Member, Nats, OWN_SUBSCRIPTIONS},
};

/// Long enough for a stray cross-host message to have arrived.
const QUIET: Duration = Duration::from_millis(500);

fn customer(c: &str) -> Value {
    json!({"target": "message", "customer": c})
}

/// Publishes `{"n": n}` to `rooms` through `POST /trigger/`.
async fn publish(host: &TestHost, rooms: Value, n: u64) {
    let body = json!({"rooms": rooms, "data": {"n": n}}).to_string();
    let (status, text) = host.trigger(Some(TRIGGER_TOKEN), &body).await;
    assert_eq!(status, 200, "{text}");
}

/// Subscribes and checks the reply.
async fn subscribe(c: &mut Client, room: Value, rid: &str) {
    let reply = c.subscribe(room, rid).await;
    assert_eq!(reply["code"], "success", "{reply}");
}

/// The next room message's `n`.
async fn next_n(c: &mut Client) -> u64 {
    let v = c.next().await;
    assert_eq!(v["type"], "publish", "{v}");
    v["data"]["n"].as_u64().unwrap()
}

async fn health(host: &TestHost) -> Value {
    let body = http()
        .get(host.url("/health"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_on_one_host_reaches_every_host_with_wildcards_on_both_sides() {
    let nats = Nats::start();
    let (a, b) = Member::pair(&nats, "").await;
    // On b: a concrete room and a wildcard one; on a, the publisher's own
    // host, a concrete one (delivered there once, not again through NATS).
    let mut concrete = Client::authorized(&b.host, "bob-token").await;
    subscribe(&mut concrete, customer("2"), "c").await;
    let mut wild = Client::authorized(&b.host, "alice-token").await;
    subscribe(&mut wild, customer("*"), "w").await;
    let mut local = Client::authorized(&a.host, "bob-token").await;
    subscribe(&mut local, customer("2"), "l").await;
    // b listens on each room's subject and on the key set's (for
    // publishes to "*"), once: 3 subjects.
    nats.wait_subscriptions("b", 3).await;

    publish(&a.host, json!([customer("2")]), 1).await;
    assert_eq!(next_n(&mut concrete).await, 1);
    assert_eq!(next_n(&mut wild).await, 1);
    assert_eq!(next_n(&mut local).await, 1);
    // Another customer reaches only the wildcard.
    publish(&a.host, json!([customer("3")]), 2).await;
    assert_eq!(next_n(&mut wild).await, 2);
    // A publish to "*" reaches every customer's subscribers on b.
    publish(&a.host, json!([customer("*")]), 3).await;
    assert_eq!(next_n(&mut concrete).await, 3);
    assert_eq!(next_n(&mut wild).await, 3);
    assert_eq!(next_n(&mut local).await, 3);
    // Two rooms one subscription matches: once, as on one host.
    publish(&a.host, json!([customer("2"), customer("3")]), 4).await;
    assert_eq!(next_n(&mut concrete).await, 4);
    assert_eq!(next_n(&mut wild).await, 4);
    assert_eq!(next_n(&mut local).await, 4);
    // And the other way round, b to a.
    publish(&b.host, json!([customer("2")]), 5).await;
    assert_eq!(next_n(&mut local).await, 5);
    assert_eq!(next_n(&mut concrete).await, 5);
    assert_eq!(next_n(&mut wild).await, 5);
    for c in [&mut concrete, &mut wild, &mut local] {
        assert_eq!(c.silent_for(QUIET).await, None, "nothing twice");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_receives_only_the_rooms_its_clients_subscribed_to() {
    let nats = Nats::start();
    let (a, b) = Member::pair(&nats, "").await;
    let c = Member::start(&nats, "c", "").await;
    let mut on_b = Client::authorized(&b.host, "bob-token").await;
    subscribe(&mut on_b, customer("2"), "s").await;
    // c has a client, subscribed elsewhere.
    let mut on_c = Client::authorized(&c.host, "alice-token").await;
    subscribe(&mut on_c, json!({"target": "notes", "user": "alice"}), "n").await;
    nats.wait_subscriptions("b", 2).await;
    nats.wait_subscriptions("c", 2).await;
    for n in 0..5 {
        publish(&a.host, json!([customer("2")]), n).await;
    }
    for n in 0..5 {
        assert_eq!(next_n(&mut on_b).await, n, "in publish order");
    }
    let (b_conn, c_conn) = (nats.connection("b").await, nats.connection("c").await);
    assert_eq!(
        b_conn["out_msgs"], 5,
        "b gets each publish once: {b_conn:#}"
    );
    assert_eq!(c_conn["out_msgs"], 0, "c gets nothing: {c_conn:#}");
    // b's client leaves: b stops listening, and gets nothing more.
    on_b.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while nats.connection("b").await["subscriptions"] != OWN_SUBSCRIPTIONS {
        assert!(tokio::time::Instant::now() < deadline, "b still listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish(&a.host, json!([customer("2")]), 6).await;
    // a's own publish count says it was sent; b's says it was not received.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while nats.connection("a").await["in_msgs"] != 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a's 6th publish not sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(nats.connection("b").await["out_msgs"], 5);
    assert_eq!(on_c.silent_for(QUIET).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn room_names_with_dots_stars_and_spaces_stay_apart() {
    let nats = Nats::start();
    let (a, b) = Member::pair(&nats, "").await;
    let room = |t: &str, c: &str| json!({"target": t, "customer": c});
    let mut dotted = Client::authorized(&b.host, "admin-token").await;
    subscribe(&mut dotted, room("t.1", "a b"), "d").await;
    let mut wild = Client::authorized(&b.host, "admin-token").await;
    subscribe(&mut wild, room("t", "*"), "w").await;
    let mut starry = Client::authorized(&b.host, "admin-token").await;
    subscribe(&mut starry, room("t.*", ">"), "s").await;
    nats.wait_subscriptions("b", 4).await;

    publish(&a.host, json!([room("t.1", "a b")]), 1).await;
    assert_eq!(next_n(&mut dotted).await, 1);
    // Would be t.1 under a naive mapping; "t" here.
    publish(&a.host, json!([room("t", "1.a b")]), 2).await;
    assert_eq!(next_n(&mut wild).await, 2);
    // A "*" or ">" inside a value is text, not a NATS wildcard.
    publish(&a.host, json!([room("t.*", ">")]), 3).await;
    assert_eq!(next_n(&mut starry).await, 3);
    publish(&a.host, json!([room("t.x", "a b")]), 4).await;
    publish(&a.host, json!([room("t.*", "a b")]), 5).await;
    publish(&a.host, json!([room("t", ">")]), 6).await;
    assert_eq!(next_n(&mut wild).await, 6);
    for c in [&mut dotted, &mut wild, &mut starry] {
        assert_eq!(c.silent_for(QUIET).await, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_cut_off_from_nats_serves_its_own_clients_and_says_so() {
    let mut nats = Nats::start();
    let (a, b) = Member::pair(&nats, "").await;
    let mut local = Client::authorized(&a.host, "bob-token").await;
    subscribe(&mut local, customer("2"), "l").await;
    let mut remote = Client::authorized(&b.host, "bob-token").await;
    subscribe(&mut remote, customer("2"), "r").await;
    nats.wait_subscriptions("b", 2).await;
    assert_eq!(health(&a.host).await["cluster"]["connected"], true);

    nats.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while health(&a.host).await["cluster"]["connected"] != false {
        assert!(tokio::time::Instant::now() < deadline, "a never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = health(&a.host).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["cluster"]["name"], "a", "{h}");
    for n in 0..3 {
        publish(&a.host, json!([customer("2")]), n).await;
        assert_eq!(next_n(&mut local).await, n, "local delivery goes on");
    }

    // Back: the hosts reconnect by themselves (backoff at most 5 s) and
    // listen again on what their clients hold.
    nats.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while health(&a.host).await["cluster"]["connected"] != true
        || health(&b.host).await["cluster"]["connected"] != true
    {
        assert!(tokio::time::Instant::now() < deadline, "not reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.wait_subscriptions("b", 2).await;
    publish(&a.host, json!([customer("2")]), 10).await;
    assert_eq!(next_n(&mut local).await, 10);
    let mut got = next_n(&mut remote).await;
    // Publishes from the outage that a's client still held in its send
    // buffer may arrive after reconnecting; never twice, never after 10.
    let mut seen = Vec::new();
    while got != 10 {
        assert!(!seen.contains(&got), "{got} twice");
        seen.push(got);
        got = next_n(&mut remote).await;
    }
    assert_eq!(remote.silent_for(QUIET).await, None);
    assert!(health(&a.host).await["cluster"]["disconnects"].as_u64() >= Some(1));
}

/// Waits until `host`'s `/health` says the cluster link is `up` (or down).
/// Up includes reading the history stream, on a host that keeps history
/// (before that its history-room publications stay on it).
pub async fn wait_connected(host: &TestHost, up: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let cluster = &health(host).await["cluster"];
        let reading = cluster["history_stream"] != false;
        if cluster["connected"] == up && (!up || reading) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster link never {}",
            if up { "up" } else { "down" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_back_after_an_outage_is_told_it_missed_publications() {
    let mut nats = Nats::start();
    let (a, b) = Member::pair(&nats, &history_recovery::history(100)).await;
    // Connecting forgets the history (publications may have been missed
    // before): subscribe after it.
    wait_connected(&a.host, true).await;
    wait_connected(&b.host, true).await;
    let mut c = Client::authorized(&b.host, "bob-token").await;
    let reply = history_recovery::subscribe(&mut c, customer("2"), "s", None).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    nats.wait_subscriptions("b", 2).await;
    publish(&a.host, json!([customer("2")]), 1).await;
    assert_eq!(history_recovery::live(&mut c).await, (1, 1));
    c.close().await;

    nats.kill();
    wait_connected(&b.host, false).await;
    // Sent while the link is down: b never records it.
    publish(&a.host, json!([customer("2")]), 2).await;
    nats.restart();
    wait_connected(&a.host, true).await;
    wait_connected(&b.host, true).await;

    let mut back = Client::authorized(&b.host, "bob-token").await;
    let since = json!({"offset": 1, "epoch": epoch});
    history_recovery::subscribe(&mut back, customer("2"), "s", Some(since)).await;
    let (got, complete) = history_recovery::recovered(&mut back).await;
    assert!(!complete, "told nothing was missed, got {got:?}");
    assert!(got.is_empty(), "nothing partial: {got:?}");
    // And live delivery across hosts goes on.
    nats.wait_subscriptions("b", 2).await;
    publish(&a.host, json!([customer("2")]), 3).await;
    assert_eq!(next_n(&mut back).await, 3);
}

//! Room history across hosts (issue 19 items 4, 5): a client that comes
//! back to another host with `since` gets exactly what it missed, numbered
//! as every host numbers it (the JetStream stream's sequence), or is told
//! `complete:false`: past what the stream keeps (its bounds are
//! `[history]`'s), or across a NATS outage. A resume on another host is
//! `cluster_resume`'s.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{
    cluster::wait_connected,
    harness::{Client, TestHost},
    history_recovery::{customer, history, publish, recovered, subscribe},
    nats_harness::{Member, Nats},
};

/// Long enough for a stray message to have arrived.
const QUIET: Duration = Duration::from_millis(500);

/// The next room message: `n` and its offset (`None`: delivered without).
async fn next(c: &mut Client) -> (u64, Option<u64>) {
    let v = c.next().await;
    assert_eq!(v["type"], "publish", "{v}");
    (v["data"]["n"].as_u64().unwrap(), v["offset"].as_u64())
}

/// A watcher's subscription: publishes `n` on `on` and waits until the
/// watcher has it, so publishes from different hosts are in the stream in
/// the order the test made them. Returns its offset.
async fn publish_seen(on: &TestHost, watcher: &mut Client, room: Value, n: u64) -> u64 {
    publish(on, json!([room]), n).await;
    let (got, offset) = next(watcher).await;
    assert_eq!(got, n);
    offset.expect("a history room's message has an offset")
}

/// A bare NATS client subscribed to `subject`, to see what hosts send
/// outside the history stream.
pub struct Tap(BufReader<TcpStream>);

impl Tap {
    pub async fn start(nats: &Nats, subject: &str) -> Tap {
        let stream = TcpStream::connect(("127.0.0.1", nats.port)).await.unwrap();
        let mut tap = Tap(BufReader::new(stream));
        let info = tap.line().await;
        assert!(info.starts_with("INFO"), "{info}");
        let hello = format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\nPING\r\n");
        tap.0.get_mut().write_all(hello.as_bytes()).await.unwrap();
        // The server answers PING after the SUB: it is in place.
        while tap.line().await != "PONG" {}
        tap
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        line.trim_end().to_owned()
    }

    /// The subjects of the messages that arrive within `wait`.
    async fn messages_within(&mut self, wait: Duration) -> Vec<String> {
        let mut subjects = Vec::new();
        while let Ok(line) = tokio::time::timeout(wait, self.line()).await {
            if let Some(rest) = line.strip_prefix("MSG ") {
                subjects.push(rest.split(' ').next().unwrap().to_owned());
                // The payload line.
                self.line().await;
            }
        }
        subjects
    }
}

/// The history stream's config and state, from the server's `/jsz`.
async fn stream_info(nats: &Nats) -> Value {
    let jsz = nats
        .monitor("/jsz?accounts=true&streams=true&config=true")
        .await;
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == "MODHOST_HISTORY")
        .unwrap_or_else(|| panic!("no history stream: {jsz:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gets_what_it_missed_on_another_host_numbered_the_same() {
    let nats = Nats::start();
    let (a, b) = Member::pair(&nats, &history(100)).await;
    let mut watcher = Client::authorized(&b.host, "admin-token").await;
    subscribe(&mut watcher, customer("*"), "w", None).await;
    let mut client = Client::authorized(&a.host, "bob-token").await;
    let reply = subscribe(&mut client, customer("2"), "s", None).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();

    let first = publish_seen(&a.host, &mut watcher, customer("2"), 1).await;
    assert_eq!(next(&mut client).await, (1, Some(first)), "same offset");
    client.close().await;
    // Missed: from both hosts, with another room's publication between.
    let mut missed = Vec::new();
    missed.push((
        2,
        publish_seen(&a.host, &mut watcher, customer("2"), 2).await,
    ));
    publish_seen(&b.host, &mut watcher, customer("3"), 3).await;
    missed.push((
        4,
        publish_seen(&b.host, &mut watcher, customer("2"), 4).await,
    ));
    missed.push((
        5,
        publish_seen(&a.host, &mut watcher, customer("2"), 5).await,
    ));
    assert!(missed.windows(2).all(|w| w[0].1 < w[1].1), "{missed:?}");

    // A host started after all this reads what the stream holds.
    let c = Member::start(&nats, "c", &history(100)).await;
    let since = json!({"offset": first, "epoch": epoch});
    for (host, n) in [(&b.host, 6), (&c.host, 7)] {
        let mut back = Client::authorized(host, "bob-token").await;
        let reply = subscribe(&mut back, customer("2"), "s", Some(since.clone())).await;
        assert_eq!(reply["epoch"], epoch.as_str(), "one epoch on every host");
        let (got, complete) = recovered(&mut back).await;
        assert!(complete);
        assert_eq!(got, missed, "exactly what was missed, in order");
        // Then live, after it.
        let offset = publish_seen(&a.host, &mut watcher, customer("2"), n).await;
        assert_eq!(next(&mut back).await, (n, Some(offset)));
        assert_eq!(back.silent_for(QUIET).await, None, "nothing twice");
        // The next host's client missed this one too.
        missed.push((n, offset));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_keeps_what_history_rooms_say_and_older_positions_are_incomplete() {
    let nats = Nats::start();
    let config = format!("{}\n[history]\nmax_bytes = 2000000\n", history(2));
    let (a, b) = Member::pair(&nats, &config).await;
    let info = stream_info(&nats).await;
    let stream = &info["config"];
    assert_eq!(stream["max_msgs_per_subject"], 2, "{info:#}");
    assert_eq!(stream["max_age"], 600_000_000_000_u64, "{info:#}");
    assert_eq!(stream["max_bytes"], 2_000_000, "{info:#}");
    assert_eq!(stream["discard"], "old", "{info:#}");

    let mut watcher = Client::authorized(&b.host, "admin-token").await;
    let reply = subscribe(&mut watcher, customer("2"), "w", None).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    let mut offsets = Vec::new();
    for n in 1..=4 {
        offsets.push(publish_seen(&a.host, &mut watcher, customer("2"), n).await);
    }
    // Only 2 are kept per room: since the first, 2 is gone.
    let mut back = Client::authorized(&b.host, "bob-token").await;
    let since = json!({"offset": offsets[0], "epoch": epoch});
    subscribe(&mut back, customer("2"), "s", Some(since)).await;
    assert_eq!(recovered(&mut back).await, (vec![], false));
    // Since the second, 3 and 4 are all that was missed.
    let mut back = Client::authorized(&b.host, "bob-token").await;
    let since = json!({"offset": offsets[1], "epoch": epoch});
    subscribe(&mut back, customer("2"), "s", Some(since)).await;
    let expected = vec![(3, offsets[2]), (4, offsets[3])];
    assert_eq!(recovered(&mut back).await, (expected, true));
    assert_eq!(stream_info(&nats).await["state"]["messages"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_killed_and_back_mid_traffic_loses_nothing_twice_and_says_what_was_lost() {
    let mut nats = Nats::start();
    let (a, b) = Member::pair(&nats, &history(100)).await;
    let mut on_a = Client::authorized(&a.host, "bob-token").await;
    subscribe(&mut on_a, customer("2"), "a", None).await;
    let mut on_b = Client::authorized(&b.host, "bob-token").await;
    let reply = subscribe(&mut on_b, customer("2"), "b", None).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    let mut before = 0;
    for n in 1..=3 {
        before = publish_seen(&a.host, &mut on_b, customer("2"), n).await;
        assert_eq!(next(&mut on_a).await, (n, Some(before)));
    }

    nats.kill();
    wait_connected(&a.host, false).await;
    // a's own clients still get a's publications, without an offset: no
    // host's stream holds them.
    for n in 4..=5 {
        publish(&a.host, json!([customer("2")]), n).await;
        assert_eq!(next(&mut on_a).await, (n, None));
    }
    nats.restart();
    // Listening before the hosts are back: what a sent while cut off is
    // not sent late on core NATS (b would deliver it unnumbered).
    let mut tap = Tap::start(&nats, "modhost.r.>").await;
    wait_connected(&a.host, true).await;
    wait_connected(&b.host, true).await;
    let mut after = 0;
    for n in 6..=8 {
        after = publish_seen(&a.host, &mut on_b, customer("2"), n).await;
        assert!(after > before);
        assert_eq!(next(&mut on_a).await, (n, Some(after)));
    }
    for c in [&mut on_a, &mut on_b] {
        assert_eq!(c.silent_for(QUIET).await, None, "nothing twice");
    }
    assert_eq!(tap.messages_within(QUIET).await, Vec::<String>::new());

    // Across the outage: complete:false, on either host. After it: the
    // stream's numbers go on.
    for host in [&a.host, &b.host] {
        let mut back = Client::authorized(host, "bob-token").await;
        let since = json!({"offset": before, "epoch": epoch});
        let reply = subscribe(&mut back, customer("2"), "s", Some(since)).await;
        assert_eq!(reply["epoch"], epoch.as_str(), "the stream outlived it");
        assert_eq!(recovered(&mut back).await, (vec![], false));
        let mut back = Client::authorized(host, "bob-token").await;
        let since = json!({"offset": after, "epoch": epoch});
        subscribe(&mut back, customer("2"), "s", Some(since)).await;
        assert_eq!(recovered(&mut back).await, (vec![], true));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_started_while_nats_is_down_serves_its_clients_and_reads_the_stream_when_back() {
    let mut nats = Nats::start();
    nats.kill();
    let started = tokio::time::Instant::now();
    let a = Member::start(&nats, "a", &history(100)).await;
    // Not held up until the history is read (that waits up to 10 s with
    // a link).
    assert!(started.elapsed() < Duration::from_secs(8));
    let mut client = Client::authorized(&a.host, "bob-token").await;
    subscribe(&mut client, customer("2"), "s", None).await;
    publish(&a.host, json!([customer("2")]), 1).await;
    assert_eq!(next(&mut client).await, (1, None), "here only, unnumbered");

    nats.restart();
    // The stream is made when NATS is back, and read from then on.
    wait_connected(&a.host, true).await;
    publish(&a.host, json!([customer("2")]), 2).await;
    let (got, offset) = next(&mut client).await;
    assert_eq!((got, offset.is_some()), (2, true));
    assert_eq!(stream_info(&nats).await["state"]["messages"], 1);
}

//! `[trigger.amqp]`: the real binary consuming a real RabbitMQ exchange
//! (`rabbit.rs`), fed by a plain AMQP publisher as high-templar 3.x's
//! publishers (django-binder) feed it: exchange `hightemplar`-style,
//! routing key `*`, body `{"rooms": [...], "data": ...}`.
//!
//! The tests share one broker, each with an exchange of its own. Only
//! `{"type":"publish",...}` frames and the subscribe reply's `code` are
//! asserted on: both websocket dialects send those alike.

use std::time::{Duration, Instant};

use lapin::{
    BasicProperties, Connection, ConnectionProperties, ExchangeKind,
    options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions},
    types::FieldTable,
};
use serde_json::{Value, json};

use crate::harness_process::ProcessHost;
use crate::{
    harness::{Client, Workspace, http},
    rabbit,
};

/// A room alice (`customer = "*"`) may subscribe to.
fn room() -> Value {
    json!({"target": "message", "customer": "1"})
}

/// An exchange no other test (or test process) uses.
fn exchange(test: &str) -> String {
    format!("modhost-test-{test}-{}", std::process::id())
}

/// The `[trigger.amqp]` table for `url` and `exchange`, plus `extra` keys.
fn amqp_table(url: &str, exchange: &str, extra: &str) -> String {
    format!("[trigger.amqp]\nurl = \"{url}\"\nexchange = \"{exchange}\"\n{extra}")
}

/// A trigger message for [`room`] carrying `data`.
fn message(data: &Value) -> Vec<u8> {
    json!({"rooms": [room()], "data": data})
        .to_string()
        .into_bytes()
}

/// Publishes `body` to `exchange` with routing key `*` over a connection
/// of its own, declaring the exchange as high-templar does (so the order
/// in which publisher and host start does not matter), and waits for the
/// broker's confirm.
async fn publish(url: &str, exchange: &str, body: &[u8]) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the test publisher connects");
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            exchange.into(),
            "*".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "the broker took the message: {confirm:?}");
    let _ = connection.close(200, "done".into()).await;
}

/// A websocket client of `host` subscribed to [`room`] as `sub-1`.
async fn subscriber(host: &ProcessHost) -> Client {
    let mut client = Client::authorized_at(host.addr, "alice-token").await;
    let reply = client.subscribe(room(), "sub-1").await;
    assert_eq!(reply["code"], "success", "{reply}");
    client
}

/// The next frame of `client` is the publish of `data` to `sub-1`.
async fn receives(client: &mut Client, data: &Value) {
    let frame = client.next().await;
    assert_eq!(
        frame,
        json!({"type": "publish", "data": data, "requestId": "sub-1"})
    );
}

/// Waits until the host's log holds `needle` at least `n` times. Bounded
/// generously: reconnects follow the backoff, and a restarted broker on a
/// busy machine takes a while.
async fn logged(host: &ProcessHost, needle: &str, n: usize) {
    let start = Instant::now();
    while host.log().matches(needle).count() < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the host did not log {needle:?} {n} time(s):\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The line the source logs each time it starts consuming `exchange`.
fn consuming(exchange: &str) -> String {
    format!("consuming exchange {exchange} ")
}

#[tokio::test]
async fn an_amqp_message_reaches_the_rooms_subscribers() {
    let Some(broker) = rabbit::shared().await else {
        return;
    };
    let url = broker.rabbit.url();
    let ex = exchange("reaches");
    let ws = Workspace::new();
    let host = ProcessHost::start(&ws, &amqp_table(&url, &ex, ""));
    logged(&host, &consuming(&ex), 1).await;
    let mut client = subscriber(&host).await;
    let data = json!({"hello": "world", "n": [1, 2.5, null]});
    publish(&url, &ex, &message(&data)).await;
    receives(&mut client, &data).await;
    // The queue is the host's own: exclusive, named with the prefix.
    let log = host.log();
    assert!(log.contains("with queue modhost_"), "{log}");
    assert!(
        !log.contains("guest:guest"),
        "the password is logged: {log}"
    );
}

#[tokio::test]
async fn malformed_amqp_messages_are_dropped_with_a_warning_and_the_next_one_arrives() {
    let Some(broker) = rabbit::shared().await else {
        return;
    };
    let url = broker.rabbit.url();
    let ex = exchange("malformed");
    let ws = Workspace::new();
    let host = ProcessHost::start(&ws, &amqp_table(&url, &ex, "max_message_bytes = 1024\n"));
    logged(&host, &consuming(&ex), 1).await;
    let mut client = subscriber(&host).await;
    let oversize = message(&json!("x".repeat(2_000)));
    let too_large = format!(
        "it is {} bytes, more than trigger.amqp.max_message_bytes = 1024",
        oversize.len()
    );
    for bad in [
        b"rooms: everywhere, data: lots".to_vec(),
        br#"{"data": {"no": "rooms"}}"#.to_vec(),
        br#"{"rooms": [{"target": "message", "customer": "1"}]}"#.to_vec(),
        br#"{"rooms": ["message"], "data": 1}"#.to_vec(),
        oversize,
    ] {
        publish(&url, &ex, &bad).await;
    }
    let good = json!({"after": "the bad ones"});
    publish(&url, &ex, &message(&good)).await;
    // Nothing of the bad ones reached the subscriber: the good one is next.
    receives(&mut client, &good).await;
    let log = host.log();
    for why in [
        "invalid JSON",
        "rooms not specified",
        "data not specified",
        "invalid room",
        &too_large,
    ] {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("AMQP message dropped")
                && l.contains(why)),
            "no warning saying {why:?}:\n{log}"
        );
    }
    assert!(
        log.contains(r#"it starts with "rooms: everywhere, data: lots""#),
        "{log}"
    );
    let metrics = http()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("modhost_amqp_messages_received_total 6")
            && metrics.contains("modhost_amqp_messages_dropped_total 5"),
        "{metrics}"
    );
    // Still up, still consuming on the same connection.
    assert_eq!(host.log().matches(&consuming(&ex)).count(), 1);
    let health = http().get(host.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn the_host_connects_once_rabbitmq_is_up_and_again_after_it_restarts() {
    let Some(broker) = rabbit::exclusive().await else {
        return;
    };
    let rabbit = broker.rabbit;
    let url = rabbit.url();
    let ex = exchange("reconnect");
    // The host first, while the broker is down. (Blocking calls: this
    // test's runtime has nothing else to run meanwhile, the host is a
    // process of its own.)
    rabbit.stop_app();
    let ws = Workspace::new();
    let host = ProcessHost::start(&ws, &amqp_table(&url, &ex, ""));
    logged(&host, "next attempt in", 1).await;
    let mut client = subscriber(&host).await;
    rabbit.start_app();
    logged(&host, &consuming(&ex), 1).await;
    let first = json!({"after": "the broker came up"});
    publish(&url, &ex, &message(&first)).await;
    receives(&mut client, &first).await;

    // The broker goes down under a running host, and comes back.
    let failures = host.log().matches("next attempt in").count();
    rabbit.stop_app();
    logged(&host, "next attempt in", failures + 1).await;
    rabbit.start_app();
    logged(&host, &consuming(&ex), 2).await;
    let second = json!({"after": "the broker came back"});
    publish(&url, &ex, &message(&second)).await;
    receives(&mut client, &second).await;
    let log = host.log();
    assert!(
        !log.contains("guest:guest"),
        "the password is logged: {log}"
    );
}

#[tokio::test]
async fn a_changed_amqp_table_applies_live() {
    let Some(broker) = rabbit::shared().await else {
        return;
    };
    let url = broker.rabbit.url();
    let (old, new) = (exchange("live-old"), exchange("live-new"));
    let ws = Workspace::new();
    let host = ProcessHost::start(&ws, &amqp_table(&url, &old, ""));
    logged(&host, &consuming(&old), 1).await;
    let mut client = subscriber(&host).await;
    ws.write_config(&amqp_table(&url, &new, "prefetch = 8\n"));
    logged(&host, &consuming(&new), 1).await;
    // The old exchange is no longer consumed: its message goes nowhere,
    // and the new one's is the next frame.
    publish(&url, &old, &message(&json!("old"))).await;
    publish(&url, &new, &message(&json!("new"))).await;
    receives(&mut client, &json!("new")).await;
    let log = host.log();
    assert!(
        log.contains("config change applied: trigger.amqp changed (exchange, prefetch)"),
        "{log}"
    );
}

#[test]
fn a_bad_amqp_table_is_refused_at_start_with_its_line_and_without_the_password() {
    let ws = Workspace::new();
    let config = ws.path().join("config.toml");
    let text = ws.config_text(&amqp_table(
        "amqps://ht:pa55-word@rabbit.internal/%2f",
        "hightemplar",
        "",
    ));
    std::fs::write(&config, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("url = "))
        .expect("the url line")
        + 1;
    let out = std::process::Command::new(crate::harness::modhost_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("config.toml:{line}:"))
            && shown.contains("trigger.amqp.url uses amqps://")
            && shown.contains("hint:"),
        "{shown}"
    );
    assert!(!shown.contains("pa55-word"), "{shown}");
}

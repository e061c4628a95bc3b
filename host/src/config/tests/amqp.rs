//! `[trigger.amqp]`: defaults, every refusal with its line and hint, and
//! the URL's password kept out of everything shown.

use super::*;

const URL: &str = "amqp://user:pa55-word@127.0.0.1:5672/%2f";

fn amqp(extra: &str) -> AmqpConfig {
    ok(&format!("[trigger.amqp]\nurl = \"{URL}\"\n{extra}"))
        .trigger
        .amqp
        .expect("[trigger.amqp] is set")
}

#[test]
fn only_the_url_is_required_and_the_defaults_are_high_templars() {
    assert_eq!(ok("[trigger]\ntokens = []\n").trigger.amqp, None);
    let a = amqp("");
    assert_eq!(a.url.expose(), URL);
    assert_eq!(a.exchange, "hightemplar");
    assert_eq!(a.exchange_type, ExchangeType::Direct);
    assert_eq!(a.routing_key, "*");
    assert_eq!(a.queue_prefix, "modhost_");
    assert_eq!(a.max_message_bytes, 1024 * 1024);
    assert_eq!(a.prefetch, 256);
    for t in ["direct", "fanout", "topic", "headers"] {
        assert_eq!(
            amqp(&format!("exchange_type = \"{t}\"\n"))
                .exchange_type
                .as_str(),
            t
        );
    }
    // No user (the broker's guest), no vhost (the default "/").
    let a = ok("[trigger.amqp]\nurl = \"amqp://rabbit\"\n")
        .trigger
        .amqp
        .unwrap();
    assert_eq!(a.url.to_string(), "amqp://rabbit");
}

#[test]
fn the_password_is_never_shown() {
    let a = amqp("");
    assert_eq!(a.url.to_string(), "amqp://user:***@127.0.0.1:5672/%2f");
    let debug = format!("{:?}", ok(&format!("[trigger.amqp]\nurl = \"{URL}\"\n")));
    assert!(!debug.contains("pa55-word"), "{debug}");
    // Nor in the reload diff.
    let old = ok("");
    let new = ok(&format!("[trigger.amqp]\nurl = \"{URL}\"\n"));
    let lines = describe_changes(&old, &new).join("\n");
    assert_eq!(lines, "trigger.amqp added (exchange \"hightemplar\")");
    let other =
        ok("[trigger.amqp]\nurl = \"amqp://user:other-pass@127.0.0.1:5672/%2f\"\nprefetch = 3\n");
    let lines = describe_changes(&new, &other).join("\n");
    assert_eq!(lines, "trigger.amqp changed (url, prefetch)");
    assert!(restart_required(&new, &other).is_empty());
    assert_eq!(
        describe_changes(&other, &old),
        vec!["trigger.amqp removed".to_owned()]
    );
    // Nor in an error about it.
    let (_, shown) = err("[trigger.amqp]\nurl = \"amqp://u:pa55-word@h:99999/%2f\"\n");
    assert!(!shown.contains("pa55-word"), "{shown}");
    let (_, shown) = err("[trigger.amqp]\nurl = \"amqp://u:pa55-word@h/%2f?heartbeat=x\"\n");
    assert!(!shown.contains("pa55-word"), "{shown}");
}

#[test]
fn bad_urls_are_refused_on_their_line_with_a_hint() {
    let at = |url: &str, needle: &str| {
        invalid_at(
            &format!("[trigger]\n[trigger.amqp]\nurl = \"{url}\"\n"),
            3,
            needle,
        )
    };
    at("", "trigger.amqp.url is empty");
    at(" amqp://h", "whitespace");
    at("rabbit:5672", "scheme \"rabbit\", not amqp");
    at("http://h/%2f", "scheme \"http\", not amqp");
    let shown = at("amqps://h/%2f", "no TLS support");
    assert!(shown.contains("stunnel"), "{shown}");
    at("not a url", "is not a URL");
    at("amqp:///%2f", "names no host");
    at("amqp://[::1]:5672/%2f", "IPv6 address");
    let shown = at("amqp://h:5672/", "empty vhost");
    assert!(shown.contains("/%2f"), "{shown}");
    at("amqp://h/%2f?heartbeat=soon", "not a valid AMQP URL");
    at("amqp://h/%2f?auth_mechanism=magic", "not a valid AMQP URL");
}

#[test]
fn names_numbers_and_types_are_checked() {
    let at = |extra: &str, needle: &str| {
        invalid_at(
            &format!("[trigger.amqp]\nurl = \"{URL}\"\n{extra}"),
            3,
            needle,
        )
    };
    at("exchange = \"\"\n", "0 bytes long");
    at(
        &format!("exchange = \"{}\"\n", "x".repeat(256)),
        "256 bytes long",
    );
    at("exchange = \"high templar\"\n", "contains ' '");
    at("exchange = \"amq.topic\"\n", "reserved \"amq.\" namespace");
    at("queue_prefix = \"amq.mine\"\n", "reserved");
    at(
        &format!("queue_prefix = \"{}\"\n", "q".repeat(224)),
        "224 bytes long",
    );
    at(
        &format!("routing_key = \"{}\"\n", "k".repeat(256)),
        "at most 255",
    );
    let shown = at("exchange_type = \"Direct\"\n", "not an exchange type");
    assert!(
        shown.contains("\"direct\", \"fanout\", \"topic\", \"headers\""),
        "{shown}"
    );
    at("max_message_bytes = 63\n", "too small");
    at("max_message_bytes = 67108865\n", "too large");
    at("prefetch = 0\n", "too small");
    let shown = at("prefetch = 65536\n", "too large");
    assert!(shown.contains("basic.qos"), "{shown}");
    // Edges that are fine.
    assert_eq!(amqp("queue_prefix = \"\"\n").queue_prefix, "");
    assert_eq!(amqp("prefetch = 65535\n").prefetch, 65535);
    assert_eq!(
        amqp("max_message_bytes = 67108864\n").max_message_bytes,
        64 * 1024 * 1024
    );
    assert_eq!(amqp("routing_key = \"#.rooms\"\n").routing_key, "#.rooms");
}

#[test]
fn a_missing_url_a_typo_and_a_wrong_type_have_lines() {
    let (e, shown) = err("[trigger.amqp]\nexchange = \"x\"\n");
    assert!(
        matches!(e, ConfigError::Type(_)) && shown.contains("missing field `url`"),
        "{shown}"
    );
    assert_eq!(e.line(), Some(1), "{shown}");
    let (e, shown) = err(&format!("[trigger.amqp]\nurl = \"{URL}\"\n\nprefech = 1\n"));
    assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
    assert_eq!(e.line(), Some(4), "{shown}");
    assert!(
        shown.contains("in [trigger.amqp]") && shown.contains("did you mean `prefetch`?"),
        "{shown}"
    );
    let (e, shown) = err(&format!(
        "[trigger.amqp]\nurl = \"{URL}\"\nprefetch = \"8\"\n"
    ));
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(3),
        "{shown}"
    );
}

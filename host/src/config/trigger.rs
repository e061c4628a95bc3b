//! `[trigger]` validation: the `POST /trigger/` tokens and the
//! `[trigger.amqp]` source, from their raw structs into [`TriggerConfig`].
//!
//! Like `[auth]`, these are secrets and structure rather than settings
//! with a default each, so they are checked by hand here; their keys are
//! declared once, by the raw structs. `[trigger.amqp]`'s defaults are the
//! constants below, which config.toml shows (commented out).
//!
//! The broker URL carries a password: no message here ever repeats it
//! (parser errors are worded without the input), and the validated
//! [`AmqpUrl`] prints itself with the password masked.

use serde::Deserialize;

use super::{
    codec::bounded,
    declare::keyed,
    error::{KeyPath, Problem},
    model::{AmqpConfig, AmqpUrl, ExchangeType, TriggerConfig},
    value::token_text,
};

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawTrigger {
        pub(super) tokens: Vec<String>,
        pub(super) amqp: Option<RawAmqp>,
    }
}

keyed! {
    #[derive(Debug, Deserialize)]
    pub(super) struct RawAmqp {
        pub(super) url: String,
        #[serde(default)]
        pub(super) exchange: Option<String>,
        #[serde(default)]
        pub(super) routing_key: Option<String>,
        #[serde(default)]
        pub(super) exchange_type: Option<String>,
        #[serde(default)]
        pub(super) queue_prefix: Option<String>,
        #[serde(default)]
        pub(super) max_message_bytes: Option<u64>,
        #[serde(default)]
        pub(super) prefetch: Option<u64>,
    }
}

/// high-templar's exchange name (its `RABBITMQ['exchange_name']` default).
const DEFAULT_EXCHANGE: &str = "hightemplar";
/// The routing key high-templar binds and django-binder publishes with.
const DEFAULT_ROUTING_KEY: &str = "*";
const DEFAULT_QUEUE_PREFIX: &str = "modhost_";
/// The largest `POST /trigger/` body by default, and the largest publish a
/// client may have to receive (`protocol::MAX_PUBLISH_BYTES`).
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
const DEFAULT_PREFETCH: u64 = 256;
/// AMQP names (exchange, queue, routing key) are short strings.
const MAX_NAME_BYTES: usize = 255;
/// The queue name is the prefix plus 32 hex digits.
const MAX_QUEUE_PREFIX_BYTES: usize = MAX_NAME_BYTES - 32;
/// How a URL is written, for hints.
const URL_EXAMPLE: &str =
    "write amqp://user:password@host:5672/%2f (%2f is the default vhost \"/\")";

pub(super) fn validate_trigger(raw: RawTrigger) -> Result<TriggerConfig, Problem> {
    let table = KeyPath::default().key("trigger");
    let path = table.key("tokens");
    let mut tokens: Vec<String> = Vec::with_capacity(raw.tokens.len());
    for (i, t) in raw.tokens.iter().enumerate() {
        let item = path.index(i);
        let t = token_text(&item, t, "a Bearer token for POST /trigger/")?;
        if tokens.contains(&t) {
            return Err(Problem::invalid(
                &item,
                format!("{item} repeats an earlier trigger token"),
                "remove the duplicate",
            ));
        }
        tokens.push(t);
    }
    let amqp = raw
        .amqp
        .map(|a| validate_amqp(a, &table.key("amqp")))
        .transpose()?;
    Ok(TriggerConfig { tokens, amqp })
}

fn validate_amqp(raw: RawAmqp, table: &KeyPath) -> Result<AmqpConfig, Problem> {
    let url = amqp_url(&table.key("url"), &raw.url)?;
    let exchange = raw.exchange.unwrap_or_else(|| DEFAULT_EXCHANGE.to_owned());
    let exchange = amqp_name(&table.key("exchange"), &exchange, 1, MAX_NAME_BYTES)?;
    let routing_key = raw
        .routing_key
        .unwrap_or_else(|| DEFAULT_ROUTING_KEY.to_owned());
    let routing_key = routing_key_text(&table.key("routing_key"), routing_key)?;
    let exchange_type = match raw.exchange_type {
        Some(written) => exchange_type(&table.key("exchange_type"), &written)?,
        None => ExchangeType::Direct,
    };
    let queue_prefix = raw
        .queue_prefix
        .unwrap_or_else(|| DEFAULT_QUEUE_PREFIX.to_owned());
    let queue_prefix = amqp_name(
        &table.key("queue_prefix"),
        &queue_prefix,
        0,
        MAX_QUEUE_PREFIX_BYTES,
    )?;
    let max_message_bytes = bounded(
        &table.key("max_message_bytes"),
        raw.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        64,
        MAX_MESSAGE_BYTES,
        "largest AMQP message body published to rooms, in bytes, at most 64 MiB (default 1048576)",
    )?;
    let prefetch = bounded(
        &table.key("prefetch"),
        raw.prefetch.unwrap_or(DEFAULT_PREFETCH),
        1,
        u64::from(u16::MAX),
        "unacknowledged messages the broker may send ahead (AMQP basic.qos), 1 to 65535 (default 256)",
    )?;
    Ok(AmqpConfig {
        url,
        exchange,
        exchange_type,
        routing_key,
        queue_prefix,
        // Both bounds fit: 64 MiB in usize, 65535 in u16.
        max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
        prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
    })
}

/// An `amqp://` URL that names a host and a vhost; returned with its
/// password masked for display.
fn amqp_url(path: &KeyPath, written: &str) -> Result<AmqpUrl, Problem> {
    let written = token_text(
        path,
        written,
        "the broker's URL: amqp://user:password@host:5672/%2f",
    )?;
    let url = url::Url::parse(&written)
        .map_err(|e| Problem::invalid(path, format!("{path} is not a URL ({e})"), URL_EXAMPLE))?;
    match url.scheme() {
        "amqp" => {}
        "amqps" => {
            return Err(Problem::invalid(
                path,
                format!("{path} uses amqps://, but this host has no TLS support for AMQP"),
                "use amqp:// on a private network, or reach the broker through a local TLS tunnel (e.g. stunnel)",
            ));
        }
        other => {
            return Err(Problem::invalid(
                path,
                format!("{path} has the scheme {other:?}, not amqp"),
                URL_EXAMPLE,
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Problem::invalid(
            path,
            format!("{path} names no host"),
            URL_EXAMPLE,
        ));
    }
    // lapin's URL parser takes only host names and IPv4 addresses; an IPv6
    // literal would silently become "localhost".
    if matches!(url.host(), Some(url::Host::Ipv6(_))) {
        return Err(Problem::invalid(
            path,
            format!("{path} names its host by an IPv6 address"),
            "name the broker by a host name or an IPv4 address (the AMQP client cannot take an IPv6 literal)",
        ));
    }
    // "amqp://host/" means the vhost "" (RabbitMQ has none such); the
    // default vhost "/" is written %2f or left out.
    if url.path() == "/" {
        return Err(Problem::invalid(
            path,
            format!("{path} ends in \"/\", which names the empty vhost \"\""),
            "end it with /%2f for the default vhost \"/\", or leave the path out",
        ));
    }
    // The client's own parser (query parameters such as heartbeat=...).
    // Its message can quote the whole input, password included.
    if let Err(e) = written.parse::<lapin::uri::AMQPUri>() {
        let reason = if e.contains(&written) {
            "it cannot be parsed".to_owned()
        } else {
            e
        };
        return Err(Problem::invalid(
            path,
            format!("{path} is not a valid AMQP URL: {reason}"),
            "the query may only set heartbeat, frame_max, channel_max, connection_timeout (numbers) and auth_mechanism",
        ));
    }
    let mut shown = url;
    if shown.password().is_some() {
        // Setting a password on a URL that has a host cannot fail.
        let _ = shown.set_password(Some("***"));
    }
    Ok(AmqpUrl::new(written, shown.to_string()))
}

/// An exchange name or queue prefix: `min..=max` bytes of printable
/// characters, not in the broker's reserved `amq.` namespace.
fn amqp_name(path: &KeyPath, name: &str, min: usize, max: usize) -> Result<String, Problem> {
    let what = "letters, digits, '-', '_', '.' and ':'";
    if name.len() < min || name.len() > max {
        return Err(Problem::invalid(
            path,
            format!("{path} is {} bytes long", name.len()),
            format!("give {min} to {max} bytes of {what}"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(Problem::invalid(
            path,
            format!("{path} contains {c:?}"),
            format!("AMQP names are made of {what}"),
        ));
    }
    if name.starts_with("amq.") {
        return Err(Problem::invalid(
            path,
            format!("{path} = {name:?} is in the broker's reserved \"amq.\" namespace"),
            "choose a name that does not start with \"amq.\"",
        ));
    }
    Ok(name.to_owned())
}

/// A routing key: any text up to 255 bytes (topic patterns included).
fn routing_key_text(path: &KeyPath, key: String) -> Result<String, Problem> {
    if key.len() > MAX_NAME_BYTES {
        return Err(Problem::invalid(
            path,
            format!("{path} is {} bytes long", key.len()),
            format!("an AMQP routing key is at most {MAX_NAME_BYTES} bytes"),
        ));
    }
    Ok(key)
}

fn exchange_type(path: &KeyPath, written: &str) -> Result<ExchangeType, Problem> {
    ExchangeType::ALL
        .into_iter()
        .find(|t| t.as_str() == written)
        .ok_or_else(|| {
            let names: Vec<String> = ExchangeType::ALL
                .iter()
                .map(|t| format!("{:?}", t.as_str()))
                .collect();
            Problem::invalid(
                path,
                format!("{path} = {written:?} is not an exchange type"),
                format!(
                    "write one of {} (high-templar declares \"direct\")",
                    names.join(", ")
                ),
            )
        })
}

//! One run of the AMQP source for one `[trigger.amqp]` config: connect,
//! declare, consume until the connection fails, wait (backoff), and again,
//! until told to stop.
//!
//! The broker side is set up as high-templar 3.x sets it up, so that both
//! can share a broker and an exchange: the exchange is declared with
//! aio_pika's defaults (non-durable, not auto-deleted; a declare that
//! matches an existing exchange is a no-op, one that differs fails), and
//! each host has its own exclusive, auto-deleted queue bound with the
//! routing key, so every host gets every message and nothing is left on the
//! broker when a host goes away.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    Channel, Connection, ConnectionProperties, Consumer, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use tokio::sync::watch;

use crate::{
    config::{AmqpConfig, ExchangeType},
    state::AppState,
};

use super::{backoff::Backoff, delivery::Dispatcher};

/// Longest wait for connect, declare, bind and consume together: a broker
/// that accepts the TCP connection and then says nothing must not hold the
/// source forever (the OS connect timeout alone is about two minutes).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for the broker to confirm a clean close on stop; the
/// exclusive queue goes away with the connection either way.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Consumes for `config` until `stop` turns true (or its sender is gone).
pub(super) async fn run(state: Arc<AppState>, config: AmqpConfig, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    let mut dispatcher = Dispatcher::new(state, &config.exchange, config.max_message_bytes);
    loop {
        let failure = match session(&config, &mut dispatcher, &mut stop).await {
            Ended::Stopped => return,
            Ended::Failed(failure) => failure,
        };
        if failure.was_consuming {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(
            url = %config.url,
            exchange = %config.exchange,
            "AMQP source: {}; next attempt in {delay:?}",
            failure.reason
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the source is to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// How a session ended.
enum Ended {
    /// Told to stop; the connection was closed.
    Stopped,
    /// The broker could not be reached or set up, or the connection broke.
    Failed(Failure),
}

struct Failure {
    /// What went wrong, for the log line (which names the URL, masked).
    reason: String,
    /// Whether consuming had begun: a healthy connection resets the backoff.
    was_consuming: bool,
}

fn failed(reason: String, was_consuming: bool) -> Ended {
    Ended::Failed(Failure {
        reason,
        was_consuming,
    })
}

/// A connection set up for consuming.
struct Session {
    connection: Connection,
    /// Held so the channel lives as long as the session.
    _channel: Channel,
    consumer: Consumer,
    queue: String,
}

/// One connection: set up, then hand every delivery to `dispatcher` and
/// acknowledge it, until the connection fails or `stop`.
async fn session(
    config: &AmqpConfig,
    dispatcher: &mut Dispatcher,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let set_up = tokio::select! {
        set_up = tokio::time::timeout(SETUP_TIMEOUT, open(config)) => set_up,
        () = stopped(stop) => return Ended::Stopped,
    };
    let mut session = match set_up {
        Ok(Ok(session)) => session,
        Ok(Err(reason)) => return failed(reason, false),
        Err(_) => {
            return failed(
                format!(
                    "the broker did not finish connecting and setting up within {SETUP_TIMEOUT:?}"
                ),
                false,
            );
        }
    };
    tracing::info!(
        url = %config.url,
        "AMQP source: consuming exchange {} ({}) with queue {}, routing key {:?}",
        config.exchange,
        config.exchange_type.as_str(),
        session.queue,
        config.routing_key
    );
    loop {
        let next = tokio::select! {
            next = session.consumer.next() => next,
            () = stopped(stop) => {
                close(&session.connection).await;
                return Ended::Stopped;
            }
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return failed(format!("connection lost: {e}"), true),
            None => {
                return failed(
                    format!(
                        "the broker cancelled the consumer of queue {} (was it deleted?)",
                        session.queue
                    ),
                    true,
                );
            }
        };
        dispatcher.dispatch(&delivery.data, delivery.routing_key.as_str());
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            return failed(format!("cannot acknowledge a message: {e}"), true);
        }
    }
}

/// Connects and sets up the exchange, our queue, its binding and the
/// consumer; `Err` says which step failed and why.
async fn open(config: &AmqpConfig) -> Result<Session, String> {
    let queue = format!("{}{}", config.queue_prefix, random_hex());
    let properties =
        ConnectionProperties::default().with_connection_name(format!("modhost {queue}").into());
    let connection = Connection::connect(config.url.expose(), properties)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| format!("cannot open a channel: {e}"))?;
    let exchange = config.exchange.as_str();
    channel
        .exchange_declare(
            exchange.into(),
            exchange_kind(config.exchange_type),
            ExchangeDeclareOptions {
                durable: false,
                auto_delete: false,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            format!(
                "cannot declare exchange {exchange:?} ({}, non-durable, not auto-deleted): {e}; \
                 if it exists with other settings, make trigger.amqp.exchange_type match it \
                 (high-templar declares it direct, non-durable)",
                config.exchange_type.as_str()
            )
        })?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                durable: false,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot declare queue {queue}: {e}"))?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            config.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot bind queue {queue} to exchange {exchange:?}: {e}"))?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| format!("cannot set prefetch {}: {e}", config.prefetch))?;
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "modhost".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("cannot consume queue {queue}: {e}"))?;
    Ok(Session {
        connection,
        _channel: channel,
        consumer,
        queue,
    })
}

/// Closes the connection, waiting a little for the broker to confirm.
async fn close(connection: &Connection) {
    let closing = connection.close(200, "modhost: AMQP source stopped".into());
    if let Ok(Err(e)) = tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
        tracing::debug!("AMQP source: closing the connection: {e}");
    }
}

fn exchange_kind(kind: ExchangeType) -> ExchangeKind {
    match kind {
        ExchangeType::Direct => ExchangeKind::Direct,
        ExchangeType::Fanout => ExchangeKind::Fanout,
        ExchangeType::Topic => ExchangeKind::Topic,
        ExchangeType::Headers => ExchangeKind::Headers,
    }
}

/// 32 random hex digits: a queue name no other host will pick.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // Without the OS's randomness, the time still makes a clash unlikely.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    hex::encode(bytes)
}

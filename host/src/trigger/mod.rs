//! Publishes that come from backends rather than from modules: the trigger
//! message `{"rooms": [...], "data": ...}`, over HTTP (`POST /trigger/`,
//! in `http`) and from a RabbitMQ exchange (`[trigger.amqp]`, high-templar
//! 3.x's transport: its publishers, e.g. django-binder, keep working).
//!
//! # Layout
//! - `message`: the trigger message, read and published the same way for
//!   every source
//! - `amqp`: [`AmqpSource`], the supervisor: one consumer for the current
//!   `[trigger.amqp]`, replaced on reload, stopped on shutdown
//! - `consumer`: one consumer's connections: declare, bind, consume,
//!   reconnect
//! - `backoff`: the reconnect delays
//! - `delivery`: one AMQP message: published, or dropped with a warning

mod amqp;
mod backoff;
mod consumer;
mod delivery;
pub mod message;

pub use amqp::AmqpSource;

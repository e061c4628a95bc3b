//! Calls by module, command and answer code, and how long each took to be
//! answered: kept as prometheus-client families the broker owns, so
//! `/metrics` registers clones of them (a family is a shared handle) and
//! reads what every call recorded.
//!
//! Labels never carry a name a client made up: a call refused as
//! `unknown-module` is counted under module `""`, and `unknown-command`
//! under command `""`, so a client cannot grow the series without bound.

use std::time::Instant;

use modhost_plugin_api::ErrorCode;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
};

use crate::modules::{CallFailure, CallSink};

/// The labels of the call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The module called (`""` when no such module was loaded).
    pub module: String,
    /// The command (`""` when the module has no such command).
    pub command: String,
    /// `ok`, or the error code the caller got.
    pub code: String,
}

/// The labels of the latency histogram: per command, not per code, which
/// would multiply the buckets by ten.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The module called.
    pub module: String,
    /// The command.
    pub command: String,
}

fn new_histogram() -> Histogram {
    // 100 µs to about 26 s by factors of 4: a cached answer and a call
    // that ran into the default 10 s timeout both land in a bucket.
    Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
}

type LatencyFamily = Family<CommandLabels, Histogram, fn() -> Histogram>;

/// What the broker records about every call it answers.
#[derive(Clone)]
pub struct CallMetrics {
    /// Calls answered, by module, command and code.
    pub calls: Family<CallLabels, Counter>,
    /// Seconds from the broker taking a call to its final answer.
    pub latency: LatencyFamily,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(new_histogram),
        }
    }
}

impl CallMetrics {
    /// `sink`, recording the call's code and latency when it is answered.
    pub(super) fn wrap(
        &self,
        module: &str,
        command: &str,
        sink: Box<dyn CallSink>,
    ) -> Box<dyn CallSink> {
        Box::new(Measured {
            inner: sink,
            started: Instant::now(),
            module: module.to_owned(),
            command: command.to_owned(),
            metrics: self.clone(),
        })
    }
}

/// A sink that records its call's answer before passing it on.
struct Measured {
    inner: Box<dyn CallSink>,
    started: Instant,
    module: String,
    command: String,
    metrics: CallMetrics,
}

impl CallSink for Measured {
    fn item(&mut self, result: &str) {
        self.inner.item(result);
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let code = outcome.as_ref().err().map(|f| f.code);
        let Measured {
            inner,
            started,
            mut module,
            mut command,
            metrics,
        } = *self;
        match code {
            Some(ErrorCode::UnknownModule) => {
                module.clear();
                command.clear();
            }
            Some(ErrorCode::UnknownCommand) => command.clear(),
            _ => {}
        }
        inner.finish(outcome);
        let labels = CommandLabels { module, command };
        if code.is_none_or(|c| !matches!(c, ErrorCode::UnknownModule | ErrorCode::UnknownCommand)) {
            metrics
                .latency
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
        }
        metrics
            .calls
            .get_or_create(&CallLabels {
                module: labels.module,
                command: labels.command,
                code: code.map_or("ok", ErrorCode::as_str).to_owned(),
            })
            .inc();
    }
}

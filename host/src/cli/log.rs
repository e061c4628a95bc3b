//! The host's log output, as `[log] format` says: text lines, coloured only
//! when they go to a terminal (never ANSI codes in a file or a pipe), or one
//! JSON object per line for a log collector. `MODHOST_LOG` picks the lines
//! (tracing's `EnvFilter` syntax) in both.

use std::{fmt, io::IsTerminal, path::Path, time::SystemTime};

use modhost::config::LogFormat;
use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// The `[log] format` of the config file `modhost run` will read, looked
/// up before the config is loaded: loading logs (a world-writable file, a
/// missing key folder) and those lines must already come out in the right
/// format. Anything unreadable here is text; the full load then reports
/// the problem.
pub(crate) fn format_in(config_file: Option<&Path>) -> LogFormat {
    let format = config_file
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("log")?.get("format")?.as_str().map(str::to_owned));
    match format.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Sets up the log for `modhost run`.
pub(crate) fn init(format: LogFormat) {
    // lapin logs a broken broker connection three times at ERROR; the AMQP
    // source reports it once, at WARN, with the next attempt's delay. So
    // lapin is quiet unless MODHOST_LOG names it (`...,lapin=debug`).
    let spec = std::env::var("MODHOST_LOG").unwrap_or_else(|_| "info".to_owned());
    let spec = if spec.contains("lapin") {
        spec
    } else {
        format!("{spec},lapin=off")
    };
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(colour()).init(),
        LogFormat::Json => builder.with_ansi(false).event_format(JsonLines).init(),
    }
}

/// Colour only for a person at a terminal, and never with `NO_COLOR` set
/// (no-color.org).
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// One JSON object per event: `timestamp` (RFC 3339, UTC), `level`,
/// `message`, the event's other `fields`, and the `spans` it happened in.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            humantime::format_rfc3339_millis(SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_lowercase().into(),
        );
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.0.is_empty() {
            line.insert("fields".into(), Value::Object(fields.0));
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|s| s.name().into()).collect();
            line.insert("spans".into(), spans.into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values: numbers and booleans as such, the rest
/// as the text their `Display` or `Debug` gives.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_read_from_the_file_before_it_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(format_in(Some(&file)), LogFormat::Json);
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(format_in(Some(&file)), LogFormat::Text);
        std::fs::write(&file, "not toml [").unwrap();
        assert_eq!(format_in(Some(&file)), LogFormat::Text);
        assert_eq!(format_in(None), LogFormat::Text);
    }
}

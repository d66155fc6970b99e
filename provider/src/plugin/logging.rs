//! Logs as go-plugin wants them: one JSON object per line on stderr in hclog's shape
//! (`@level`, `@message`, `@timestamp`, `@module`, then the event's fields). go-plugin parses
//! such lines into leveled entries, so `TF_LOG=debug terraform plan` shows ours at their level.
//!
//! tracing-subscriber's own JSON format nests fields and names keys differently, which
//! go-plugin would log as opaque text; hence this small formatter of our own.

use std::fmt;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the stderr logger. The level comes from TF_LOG_PROVIDER or TF_LOG (Terraform
/// passes its environment to plugins); without either only warnings and errors are written.
pub fn init() {
    let level = std::env::var("TF_LOG_PROVIDER")
        .ok()
        .or_else(|| std::env::var("TF_LOG").ok())
        .map(|l| terraform_level_to_filter(&l))
        .unwrap_or("warn");
    let filter = EnvFilter::new(format!(
        "warn,autoheal_provider={level},terraform_provider_autoheal={level}"
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(HclogJson)
        .try_init();
}

/// Maps TF_LOG values (TRACE, DEBUG, INFO, WARN, ERROR, JSON, or anything else) to a filter.
pub fn terraform_level_to_filter(tf_log: &str) -> &'static str {
    match tf_log.trim().to_ascii_lowercase().as_str() {
        "trace" | "json" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        "error" => "error",
        "off" | "" => "off",
        // Terraform treats unknown values as TRACE.
        _ => "trace",
    }
}

pub struct HclogJson;

impl<S, N> FormatEvent<S, N> for HclogJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", hclog_line(event))
    }
}

fn hclog_line(event: &Event<'_>) -> String {
    let meta = event.metadata();
    let mut fields = Map::new();
    let mut visitor = JsonVisitor(&mut fields);
    event.record(&mut visitor);
    let message = fields
        .remove("message")
        .unwrap_or(Json::String(String::new()));
    let mut out = Map::new();
    out.insert("@level".into(), Json::from(level_name(*meta.level())));
    out.insert("@message".into(), message);
    out.insert(
        "@module".into(),
        Json::from(format!("provider.autoheal.{}", meta.target())),
    );
    out.insert("@timestamp".into(), Json::from(timestamp()));
    out.extend(fields);
    Json::Object(out).to_string()
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// hclog's layout `2006-01-02T15:04:05.000000Z07:00`: go-plugin parses it with exactly six
/// fractional digits and treats the whole line as unstructured text when that fails.
fn timestamp() -> String {
    format_timestamp(time::OffsetDateTime::now_utc())
}

fn format_timestamp(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

struct JsonVisitor<'a>(&'a mut Map<String, Json>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Json::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Json::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Json::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Json::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Json::from(format!("{value:?}")));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer, for reading back what a logger wrote (the server's
    /// tests use it too).
    #[derive(Clone, Default)]
    pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_have_hclog_shape() {
        let buf = Buf::default();
        let b2 = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || b2.clone())
            .with_max_level(Level::DEBUG)
            .event_format(HclogJson)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(volume = "vol-1", attempt = 2, "waiting for detach");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let j: Json = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(j["@level"], "debug");
        assert_eq!(j["@message"], "waiting for detach");
        assert_eq!(j["volume"], "vol-1");
        assert_eq!(j["attempt"], 2);
        assert!(j["@timestamp"].as_str().unwrap().contains('T'));
    }

    #[test]
    fn timestamp_has_exactly_six_fractional_digits() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_764_093_323_900_084_450).unwrap();
        assert_eq!(format_timestamp(t), "2025-11-25T17:55:23.900084Z");
    }

    #[test]
    fn terraform_levels_map() {
        assert_eq!(terraform_level_to_filter("DEBUG"), "debug");
        assert_eq!(terraform_level_to_filter("JSON"), "trace");
        assert_eq!(terraform_level_to_filter("weird"), "trace");
    }
}

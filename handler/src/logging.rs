//! Logs: JSON lines on stdout, which Lambda sends to CloudWatch Logs. One object per event with
//! the message, the event's fields (step, duration_ms, …) at the top level and the current
//! span's fields (instance, volume, allocation, request_id) under "span".

use tracing::level_filters::LevelFilter;

/// The level from Lambda's log-level setting (`AWS_LAMBDA_LOG_LEVEL`: TRACE, DEBUG, INFO,
/// WARN, ERROR, FATAL) or `RUST_LOG` given as a bare level; INFO otherwise.
pub fn level(value: Option<&str>) -> LevelFilter {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("trace") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("warn") | Some("warning") => LevelFilter::WARN,
        Some("error") | Some("fatal") => LevelFilter::ERROR,
        Some("off") => LevelFilter::OFF,
        _ => LevelFilter::INFO,
    }
}

/// Installs the JSON subscriber; call once, first thing in `main`.
pub fn init() {
    let setting = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level(setting.as_deref()))
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level(None), LevelFilter::INFO);
        assert_eq!(level(Some("DEBUG")), LevelFilter::DEBUG);
        assert_eq!(level(Some("FATAL")), LevelFilter::ERROR);
        assert_eq!(level(Some("warn")), LevelFilter::WARN);
        assert_eq!(level(Some("aws_config=debug")), LevelFilter::INFO);
    }
}

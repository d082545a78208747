//! The function's log lines: one JSON object per line on standard output, whatever the function's log format.
//!
//! CloudWatch Logs Insights, metric filters and subscription filters read JSON fields; text lines with colour
//! codes read well nowhere but a terminal, and a Lambda function has none. The level comes from
//! `AWS_LAMBDA_LOG_LEVEL` (the function's `ApplicationLogLevel`), else `RUST_LOG`, else `info`.

use tracing_subscriber::EnvFilter;

/// Environment variable with the function's application log level (set by Lambda from `LoggingConfig`).
pub const LOG_LEVEL_ENV: &str = "AWS_LAMBDA_LOG_LEVEL";

/// The filter of the function's logs: `level` (case-insensitive, e.g. `INFO` or a `RUST_LOG` directive), or
/// `info` when it is absent or not understood.
pub fn log_filter(level: Option<&str>) -> EnvFilter {
    level
        .and_then(|level| EnvFilter::try_new(level.to_ascii_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Installs the JSON log subscriber for the process: event fields flattened beside `level` and `message`, no
/// ANSI colour, written to standard output where Lambda collects them.
pub fn init_logging() {
    let level = std::env::var(LOG_LEVEL_ENV)
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(log_filter(level.as_deref()))
        .with_writer(std::io::stdout)
        .init();
}

#[cfg(test)]
mod tests;

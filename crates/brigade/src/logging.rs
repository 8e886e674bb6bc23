//! Logging setup: human-readable by default, JSON lines with `BRIGADE_LOG_FORMAT=json` (or
//! `[log] format = "json"`), level from `BRIGADE_LOG` (e.g. `debug`, `brigade_store=trace`).
//! Logs go to stderr so stdout stays free for command output.

use brigade_core::settings::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BRIGADE_LOG")
        // PostgreSQL NOTICEs ("table does not exist, skipping") are not news.
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres::connection=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder
            .with_ansi(
                std::env::var_os("NO_COLOR").is_none()
                    && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            )
            .try_init(),
    };
}

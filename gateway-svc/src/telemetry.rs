//! Log output for the binary: pretty or JSON lines on stderr, filtered by `RUST_LOG` or config.

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Libraries never call this; only `main` does.
pub fn init(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

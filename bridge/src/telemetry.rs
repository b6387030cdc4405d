//! Log output for the binary: pretty or JSON lines on stderr, filtered by `RUST_LOG` or config.
//! Pretty lines are coloured only on a terminal and never when `NO_COLOR` is set.

use std::io::IsTerminal;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Only `main` calls this.
pub fn init(log: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder.with_ansi(std::io::stderr().is_terminal() && !no_color).try_init()
        }
    };
}

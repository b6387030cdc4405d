//! Log output for the binary: pretty or JSON lines on stderr, filtered by `RUST_LOG` or config.
//! Pretty lines are coloured only on a terminal and never when `NO_COLOR` is set
//! (<https://no-color.org>); JSON lines never carry colour.

use std::io::IsTerminal;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Libraries never call this; only `main` does.
pub fn init(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => {
            let no_color = std::env::var_os("NO_COLOR").map(|v| v.to_string_lossy().into_owned());
            builder.with_ansi(use_ansi(std::io::stderr().is_terminal(), no_color.as_deref())).try_init()
        }
    };
}

/// Whether pretty log lines carry ANSI colour codes: only on a terminal, and not when `NO_COLOR`
/// is set to a non-empty value.
pub fn use_ansi(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::use_ansi;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, Some("")), "an empty NO_COLOR does not count");
        assert!(!use_ansi(true, Some("1")));
        assert!(!use_ansi(true, Some("false")), "any non-empty value disables colour");
        assert!(!use_ansi(false, None));
        assert!(!use_ansi(false, Some("")));
        assert!(!use_ansi(false, Some("1")));
    }
}

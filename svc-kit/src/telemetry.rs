//! Log output for a binary: pretty or JSON lines on stderr, filtered by `RUST_LOG` or the
//! configured filter. Pretty lines are coloured only on a terminal and never when `NO_COLOR` is
//! set (<https://no-color.org>); JSON lines never carry colour. Libraries never call this; only a
//! binary's `main` does.

use std::io::IsTerminal;

use serde::Deserialize;

/// Log format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings (a `[log]` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// `RUST_LOG`-style filter; `RUST_LOG` itself wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Pretty, filter: "info".into() }
    }
}

impl LogSettings {
    /// Checks the filter, for configuration validation: `Err` says why it does not parse.
    pub fn check_filter(&self) -> Result<(), String> {
        tracing_subscriber::EnvFilter::try_new(&self.filter).map(drop).map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber.
pub fn init(log: &LogSettings) {
    init_keeping(log, |_| true);
}

/// [`init`], dropping every event for which `keep` is false (on top of the level filter): for a
/// dependency's known noise, said why at the call site.
pub fn init_keeping<F>(log: &LogSettings, keep: F)
where
    F: Fn(&tracing::Metadata<'_>) -> bool + Send + Sync + 'static,
{
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let filter = env.and(filter_fn(keep));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // A second call (tests starting several services in one process) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Json => tracing_subscriber::registry().with(layer.json().with_filter(filter)).try_init(),
        LogFormat::Pretty => {
            let no_color = std::env::var_os("NO_COLOR").map(|v| v.to_string_lossy().into_owned());
            let ansi = use_ansi(std::io::stderr().is_terminal(), no_color.as_deref());
            tracing_subscriber::registry().with(layer.with_ansi(ansi).with_filter(filter)).try_init()
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
    use super::*;

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

    #[test]
    fn filters_are_checked() {
        assert!(LogSettings::default().check_filter().is_ok());
        let bad = LogSettings { filter: "info,=[".into(), ..LogSettings::default() };
        assert!(bad.check_filter().is_err());
    }
}

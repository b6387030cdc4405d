//! Log output for the binary: pretty or JSON lines on stderr, filtered by `RUST_LOG` or config.
//! Pretty lines are coloured only on a terminal and never when `NO_COLOR` is set
//! (<https://no-color.org>); JSON lines never carry colour.

use std::io::IsTerminal;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Libraries never call this; only `main` does.
pub fn init(log: &LogSettings) {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let filter = env.and(filter_fn(|meta| !is_crate_reconnect_chatter(meta.target(), *meta.level())));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => tracing_subscriber::registry().with(layer.json().with_filter(filter)).try_init(),
        LogFormat::Pretty => {
            let no_color = std::env::var_os("NO_COLOR").map(|v| v.to_string_lossy().into_owned());
            let ansi = use_ansi(std::io::stderr().is_terminal(), no_color.as_deref());
            tracing_subscriber::registry().with(layer.with_ansi(ansi).with_filter(filter)).try_init()
        }
    };
}

/// The `ibapi` crate's transport logs a dropped socket at ERROR ("Connection error detected,
/// attempting to reconnect", "Failed to reconnect to TWS/Gateway") although its own reconnect is
/// off here: gateway-svc owns reconnects and logs each loss itself, at WARN with its cause
/// (`upstream session lost`), and the next step in `session state`. A routine gateway restart
/// must not page anyone, so those lines are dropped; the crate's other messages pass.
pub fn is_crate_reconnect_chatter(target: &str, level: tracing::Level) -> bool {
    level == tracing::Level::ERROR && target.starts_with("ibapi::transport")
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
    fn only_the_crates_transport_errors_are_dropped() {
        use super::is_crate_reconnect_chatter;
        use tracing::Level;
        assert!(is_crate_reconnect_chatter("ibapi::transport::r#async", Level::ERROR));
        assert!(!is_crate_reconnect_chatter("ibapi::transport::r#async", Level::WARN));
        assert!(!is_crate_reconnect_chatter("ibapi::accounts", Level::ERROR));
        assert!(!is_crate_reconnect_chatter("gateway_svc::session", Level::ERROR));
    }

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

//! Log output for the binary: the shared subscriber (`ibgw_kit::telemetry`: pretty or JSON lines
//! on stderr, `RUST_LOG` or config, colour only on a terminal without `NO_COLOR`), minus one
//! dependency's noise.

use crate::config::LogSettings;

/// Installs the global subscriber. Libraries never call this; only `main` does.
pub fn init(log: &LogSettings) {
    ibgw_kit::telemetry::init_keeping(log, |meta| !is_crate_reconnect_chatter(meta.target(), *meta.level()));
}

/// The `ibapi` crate's transport logs a dropped socket at ERROR ("Connection error detected,
/// attempting to reconnect", "Failed to reconnect to TWS/Gateway") although its own reconnect is
/// off here: gateway-svc owns reconnects and logs each loss itself, at WARN with its cause
/// (`upstream session lost`), and the next step in `session state`. A routine gateway restart
/// must not page anyone, so those lines are dropped; the crate's other messages pass.
pub(crate) fn is_crate_reconnect_chatter(target: &str, level: tracing::Level) -> bool {
    level == tracing::Level::ERROR && target.starts_with("ibapi::transport")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_crates_transport_errors_are_dropped() {
        use super::is_crate_reconnect_chatter;
        use tracing::Level;
        assert!(is_crate_reconnect_chatter("ibapi::transport::r#async", Level::ERROR));
        assert!(!is_crate_reconnect_chatter("ibapi::transport::r#async", Level::WARN));
        assert!(!is_crate_reconnect_chatter("ibapi::accounts", Level::ERROR));
        assert!(!is_crate_reconnect_chatter("gateway_svc::session", Level::ERROR));
    }
}

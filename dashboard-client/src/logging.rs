//! Log output for the binary: human-readable lines on stderr, filtered by `RUST_LOG`, coloured
//! only on a terminal and never when `NO_COLOR` is set (<https://no-color.org>).

use std::io::IsTerminal;

/// Whether log lines carry ANSI colour codes: only on a terminal, and not when `NO_COLOR` is set
/// to a non-empty value.
pub fn use_ansi(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the global subscriber. Only `main` calls this.
pub fn init() {
    let no_color = std::env::var_os("NO_COLOR").map(|v| v.to_string_lossy().into_owned());
    let ansi = use_ansi(std::io::stderr().is_terminal(), no_color.as_deref());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
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

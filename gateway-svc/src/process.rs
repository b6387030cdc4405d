//! What a binary does around the service, shared by `gateway-svc serve` and `ibgw-demo`: load the
//! configuration or exit 64 with one line, run on the service's runtime, and turn the outcome into
//! an exit code. Signals are `ibgw_kit::Signals`.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigError, Settings};

/// The settings (defaults, then `file` or `./gateway.toml`, then `IBGW__…` variables), not yet
/// validated, or the exit code 64 after one line on stderr, `<program>: invalid configuration: …`.
pub fn settings_or_exit(program: &str, file: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::read(file).map_err(|e| refuse(program, &e))
}

/// `settings` validated, once, into the typed [`Config`], or the exit code 64 after one line on
/// stderr.
pub fn config_or_exit(program: &str, settings: &Settings) -> Result<Config, ExitCode> {
    settings.validate().map_err(|e| refuse(program, &e))
}

fn refuse(program: &str, e: &ConfigError) -> ExitCode {
    eprintln!("{program}: {e}");
    ExitCode::from(ibgw_kit::EXIT_CONFIG)
}

/// Runs `work` on the service's runtime ([`crate::runtime::builder`]). An error becomes one line
/// on stderr, `<program>: ` and its source chain, and exit code 1.
pub fn run<F, E>(program: &str, work: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: AsRef<dyn std::error::Error>,
{
    let runtime = match crate::runtime::builder().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {}", ibgw_kit::source_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

//! What a binary does around the service, shared by `gateway-svc serve` and `ibgw-demo`: load the
//! configuration or exit 64 with one line, run on the service's runtime, wait for SIGINT or
//! SIGTERM, and turn the outcome into an exit code.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;

/// The configuration (defaults, then `file` or `./gateway.toml`, then `IBGW__…` variables), or
/// the exit code 64 after one line on stderr, `<program>: invalid configuration: …`.
pub fn settings_or_exit(program: &str, file: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::load(file).map_err(|e| {
        eprintln!("{program}: {e}");
        ExitCode::from(crate::EXIT_CONFIG)
    })
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
            eprintln!("{program}: {}", gateway_proto::client::source_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// SIGINT and SIGTERM (docker stop sends SIGTERM), caught from the moment this is made. It is
/// made before the first stdout line, because a supervisor may signal as soon as it reads that
/// line, and a signal before the handler exists kills the process without a clean shutdown.
#[derive(Debug)]
pub struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (inside a runtime). One that cannot be installed is waited for
    /// never, rather than aborting the process.
    pub fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
    }

    /// Resolves at the first SIGINT or SIGTERM.
    pub async fn wait(self) {
        async fn recv(signal: Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(self.term) => {}
            _ = recv(self.int) => {}
        }
        tracing::info!("signal received; shutting down");
    }
}

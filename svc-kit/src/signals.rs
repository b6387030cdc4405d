//! SIGINT and SIGTERM (`docker stop` and systemd send SIGTERM).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, caught from the moment this is made. Make it before the first stdout
/// line: a supervisor may signal as soon as it reads that line, and a signal before the handler
/// exists kills the process without a clean shutdown.
#[derive(Debug)]
pub struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime). A handler that cannot be installed is
    /// logged, and the process keeps serving rather than aborting at start-up: it still stops
    /// cleanly on the other signal, and that one keeps its default action.
    pub fn install() -> Self {
        let install = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(signal = name, error = %e, "cannot catch this signal; it will not stop the process cleanly");
                None
            }
        };
        Self { term: install(SignalKind::terminate(), "SIGTERM"), int: install(SignalKind::interrupt(), "SIGINT") }
    }

    /// Resolves at the first SIGINT or SIGTERM.
    pub async fn wait(self) {
        async fn recv(signal: Option<Signal>) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Signals;

    #[tokio::test]
    async fn waits_for_a_signal_and_not_before() {
        let signals = Signals::install();
        assert!(signals.term.is_some() && signals.int.is_some(), "both handlers install here");
        let waiting = tokio::spawn(signals.wait());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "nothing was sent yet");
        // SIGINT to this process: the handler installed above turns it into an event.
        let pid = std::process::id().to_string();
        assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill runs").success());
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("woken by SIGINT").expect("no panic");
    }
}

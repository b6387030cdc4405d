//! Helpers shared by the end-to-end tests: polling with a deadline, a raw TWS text client, folded
//! stream views, and simulator start-up.

pub mod stack;
pub mod streams;
pub mod wire;

use std::future::Future;
use std::time::Duration;

use ib_sim::{Scenario, Sim, SimConfig};

/// Scales every deadline for slow machines: `IBGW_TEST_PATIENCE=3` triples them.
pub fn patience(d: Duration) -> Duration {
    let factor: u32 = std::env::var("IBGW_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    d * factor.max(1)
}

/// Polls `check` every 10 ms until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience(within);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts a simulator on ephemeral loopback ports with the built-in scenario.
pub async fn start_sim() -> Sim {
    start_sim_with(Scenario::default()).await
}

/// Starts a simulator on ephemeral loopback ports.
pub async fn start_sim_with(scenario: Scenario) -> Sim {
    init_tracing();
    Sim::start(SimConfig { scenario, ..SimConfig::ephemeral() }).await.expect("simulator starts")
}

/// Test logs go to the test harness's captured output; `RUST_LOG` selects the level.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Path of a workspace binary next to this test binary (`target/debug/NAME`), building it first
/// when it is missing so a plain `cargo test` works too.
pub fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target profile directory");
    let path = dir.join(name);
    if !path.exists() {
        let status =
            std::process::Command::new(env!("CARGO")).args(["build", "--bin", name]).status().expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    }
    path
}

/// The first line a child process prints (its address JSON), with a deadline.
pub async fn first_line(stdout: tokio::process::ChildStdout) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tokio::time::timeout(patience(Duration::from_secs(20)), lines.next_line())
        .await
        .expect("a first line in time")
        .expect("readable stdout")
        .expect("a line before EOF")
}

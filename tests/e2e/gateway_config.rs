//! Start-up checks of the real `gateway-svc` binary: a bearer token that would cross the network in
//! clear is refused unless explicitly allowed (and then logged), a zero keepalive is refused, and
//! the runtime tuning that needs `--cfg tokio_unstable` is reported, so a build without it cannot
//! go unnoticed.
//!
//! Nothing here binds beyond loopback: refused configurations exit before binding, and the
//! allowed one is given a TEST-NET-1 address (192.0.2.1, RFC 5737), which no host has.

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{bin, eventually, first_line, patience};

/// The service's environment, cleaned of anything the developer's shell might add.
fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    command_of("gateway-svc", args, env)
}

/// [`command`] for another of the project's binaries (`ibgw-demo`).
fn command_of(program: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin(program));
    cmd.args(args).kill_on_drop(true).current_dir(std::env::temp_dir()).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if (k.starts_with("IBGW_") && k != "IBGW_TEST_PATIENCE") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::time::timeout(patience(Duration::from_secs(20)), command(args, env).output())
        .await
        .expect("gateway-svc exits in time")
        .expect("gateway-svc runs")
}

const TOKEN: &str = "a-token-of-32-characters-or-more";

fn token_off_loopback(listen: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("IBGW__GRPC__LISTEN", listen),
        ("IBGW__OPS__LISTEN", "127.0.0.1:0"),
        ("IBGW__UPSTREAM__ADDRESS", "127.0.0.1:9"),
        ("IBGW__AUTH__TOKEN", TOKEN),
    ]
}

#[tokio::test]
async fn a_token_off_loopback_without_tls_is_refused_with_exit_64() {
    let env = token_off_loopback("0.0.0.0:50051");
    for args in [&["check-config"][..], &["serve"][..]] {
        let out = run(args, &env).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        let line = stderr.trim_end();
        assert!(line.starts_with("gateway-svc: invalid configuration: grpc.listen = 0.0.0.0:50051"), "{line}");
        for needle in ["in clear", "grpc.tls_cert_path", "auth.allow_token_without_tls = true"] {
            assert!(line.contains(needle), "{needle:?} missing: {line}");
        }
        assert!(!line.contains(TOKEN), "the token is never printed: {line}");
    }
}

#[tokio::test]
async fn the_allowance_is_explicit_and_logged_loudly() {
    let mut env = token_off_loopback("0.0.0.0:50051");
    env.push(("IBGW__AUTH__ALLOW_TOKEN_WITHOUT_TLS", "true"));
    let out = run(&["check-config"], &env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("allow_token_without_tls: true"), "{stdout}");
    assert!(!stdout.contains(TOKEN), "redacted: {stdout}");

    // serve logs the allowance before binding. 192.0.2.1 is on no host, so the bind then fails
    // and nothing listens beyond loopback; the process is killed should a host allow it anyway.
    let mut env = token_off_loopback("192.0.2.1:50051");
    env.push(("IBGW__AUTH__ALLOW_TOKEN_WITHOUT_TLS", "true"));
    let mut child = command(&["serve"], &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let warning = tokio::time::timeout(patience(Duration::from_secs(20)), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains("WITHOUT TLS") {
                return line;
            }
        }
        panic!("no warning about the token in clear: {seen:#?}")
    })
    .await
    .expect("the warning in time");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("auth.allow_token_without_tls") && warning.contains("in clear"), "{warning}");
    assert!(!warning.contains(TOKEN), "{warning}");
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::test]
async fn serve_exports_the_runtime_tuning_and_does_not_warn_about_it() {
    let env = [
        ("IBGW__GRPC__LISTEN", "127.0.0.1:0"),
        ("IBGW__OPS__LISTEN", "127.0.0.1:0"),
        // Nothing listens there: the session keeps reconnecting, which is all this test needs.
        ("IBGW__UPSTREAM__ADDRESS", "127.0.0.1:9"),
    ];
    let mut child = command(&["serve"], &env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let line = first_line(child.stdout.take().unwrap()).await;
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let ops: std::net::SocketAddr = info["ops"].as_str().unwrap().parse().unwrap();
    let metrics = eventually("/metrics answers", Duration::from_secs(10), || async {
        let text = crate::gateway_rpc::http_get(ops, "/metrics").await;
        text.starts_with("HTTP/1.1 200").then_some(text)
    })
    .await;
    assert!(metrics.contains("\nibgw_runtime_tuned 1\n"), "{metrics}");
    assert!(metrics.contains("# HELP ibgw_runtime_tuned "), "described: {metrics}");
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::time::timeout(patience(Duration::from_secs(10)), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "exit 0 on SIGTERM: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("tokio_unstable"), "a tuned build does not warn: {stderr}");
}

/// A zero HTTP/2 keepalive interval or timeout is refused at load, like any other invalid value:
/// exit 64, one line naming the key, from `check-config`, `serve` and `ibgw-demo` alike (before,
/// it passed validation and reached the gRPC server).
#[tokio::test]
async fn a_zero_keepalive_is_refused_with_exit_64() {
    for key in ["KEEPALIVE_INTERVAL_MS", "KEEPALIVE_TIMEOUT_MS"] {
        let var = format!("IBGW__GRPC__{key}");
        let env = [(var.as_str(), "0"), ("IBGW__GRPC__LISTEN", "127.0.0.1:0"), ("IBGW__OPS__LISTEN", "127.0.0.1:0")];
        let name = format!("grpc.{}", key.to_lowercase());
        for (program, args) in
            [("gateway-svc", &["check-config"][..]), ("gateway-svc", &["serve"][..]), ("ibgw-demo", &[][..])]
        {
            let out = tokio::time::timeout(patience(Duration::from_secs(20)), command_of(program, args, &env).output())
                .await
                .expect("exits in time")
                .expect("runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{program} {args:?} with {var}=0: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{program} {args:?}: one line: {stderr}");
            assert_eq!(stderr.trim_end(), format!("{program}: invalid configuration: {name} must be > 0"));
        }
    }
}

//! What a user sees when something is wrong: one line, each cause said once. Runs the real
//! `gateway-svc` and `ibgw-demo` binaries for a taken port, a refused connection and a bad
//! configuration value.

use std::process::Output;
use std::time::Duration;

use crate::support::{bin, patience};

/// Fails when any `: `-separated part of `line` repeats ("tcp connect error: tcp connect error").
fn assert_reads_once(line: &str) {
    let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(part), "{part:?} is said twice in {line:?}");
    }
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_bin("gateway-svc", args, env).await
}

async fn run_bin(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(bin(name));
    cmd.args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(patience(Duration::from_secs(20)), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name} exits in time"))
        .unwrap_or_else(|e| panic!("{name} runs: {e}"))
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).lines().last().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_taken_port_is_one_clean_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_bin(
        "ibgw-demo",
        &[
            "--sim-listen",
            &addr,
            "--sim-control-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--tws-api-listen",
            "127.0.0.1:0",
        ],
        &[("IBGW__OPS__LISTEN", "127.0.0.1:0"), ("NO_COLOR", "1")],
    )
    .await;
    assert!(!out.status.success());
    let line = last_line(&out.stderr);
    assert!(line.starts_with(&format!("ibgw-demo: simulator: cannot listen on {addr}: ")), "{line}");
    assert!(line.contains("in use"), "{line}");
    assert_reads_once(&line);
}

#[tokio::test]
async fn a_refused_connection_is_one_clean_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("http://127.0.0.1:{port}");
    let out = run(&["health", "--addr", &addr, "--timeout-ms", "2000"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "unreachable");
    let line = last_line(&out.stdout);
    assert!(line.starts_with(&format!("UNREACHABLE: cannot reach {addr}: ")), "{line}");
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert_reads_once(&line);
}

#[tokio::test]
async fn a_bad_config_value_is_one_clean_line_and_exit_64() {
    let out = run(&["check-config"], &[("IBGW__UPSTREAM__CLIENT_ID", "seventeen")]).await;
    assert_eq!(out.status.code(), Some(64));
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let line = last_line(&out.stderr);
    assert!(line.starts_with("gateway-svc: invalid configuration: "), "{line}");
    assert!(line.contains("client_id"), "names the key: {line}");
    assert_reads_once(&line);
}

#[test]
fn the_repeat_check_catches_repeats() {
    let caught = std::panic::catch_unwind(|| assert_reads_once("x: tcp connect error: tcp connect error: refused"));
    assert!(caught.is_err());
    assert_reads_once("ibgw-demo: simulator: cannot listen on 127.0.0.1:1: Address already in use (os error 98)");
}

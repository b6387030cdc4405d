//! A service run as its own process (ibgw-demo, ib-sim), so that its memory can be read
//! from `/proc/<pid>/status` and its CPU is not shared with the load generator's runtime.
//!
//! Both binaries print one JSON line with their bound addresses first; everything after goes to
//! a log file in the temp directory, named in every error, so a failure can be diagnosed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::task::AbortOnDropHandle;

use crate::{Error, Result};

/// How long a service may take to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running service process; killed when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    name: String,
    pid: u32,
    addrs: serde_json::Value,
    log: PathBuf,
    _drain: AbortOnDropHandle<()>,
}

impl Service {
    /// Starts `binary args…` with `env` added, in the temp directory (so no stray config file is
    /// picked up), and waits for its first stdout line.
    pub async fn spawn(binary: &Path, args: &[&str], env: &[(&str, String)]) -> Result<Service> {
        let name = binary.file_name().map_or_else(|| "service".into(), |n| n.to_string_lossy().into_owned());
        let log = std::env::temp_dir().join(format!("ibgw-bench-{}-{name}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).map_err(|e| Error::setup("cannot create the log file", e))?;
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| Error::setup(&format!("cannot start {name}"), e))?;
        let pid = child.id().ok_or_else(|| Error::Setup(format!("{name} exited at once")))?;
        let stdout = child.stdout.take().ok_or_else(|| Error::Setup(format!("{name}: no stdout pipe")))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                return Err(Error::Setup(format!(
                    "{name} exited before printing its addresses (log: {})",
                    log.display()
                )));
            }
            Err(_) => return Err(Error::Setup(format!("{name} printed no addresses within {START_TIMEOUT:?}"))),
        };
        let addrs: serde_json::Value =
            serde_json::from_str(&first).map_err(|e| Error::setup(&format!("{name} first line {first:?}"), e))?;
        // Keep reading stdout so the child never writes into a closed pipe; the reader ends at
        // the child's exit (EOF), and is aborted with the service in any case.
        let drain =
            AbortOnDropHandle::new(tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} }));
        Ok(Service { child, name, pid, addrs, log, _drain: drain })
    }

    /// The address printed under `key`.
    pub fn addr(&self, key: &str) -> Result<SocketAddr> {
        self.addrs
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Setup(format!("{}: no address {key:?} in {}", self.name, self.addrs)))
    }

    /// Resident set size in KiB (`VmRSS`), `None` off Linux or after exit.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// CPU time used so far, all threads (see [`cpu_time`]).
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the service logs.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Log lines so far that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .map(|text| text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Kills the process and reaps it. The benchmark has no use for a graceful stop, and a kill
    /// cannot hang.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time `pid` has used, summed over its threads, from `/proc/<pid>/task/*/schedstat`
/// (nanoseconds, unlike the 10 ms ticks of `/proc/<pid>/stat`). Threads that already exited are
/// not counted, which is fine for the long-lived runtime workers measured here.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Some(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_rss() {
        let kib = rss_kib(std::process::id());
        if cfg!(target_os = "linux") {
            assert!(kib.is_some_and(|k| k > 0), "{kib:?}");
            assert!(cpu_time(std::process::id()).is_some_and(|d| d > Duration::ZERO));
        }
    }
}

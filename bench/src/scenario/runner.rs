//! `runner`: what one trading-runner invocation costs. `trader-client --symbols AAPL --once` as a
//! process against a running gateway-svc, versus the way runners worked before: a fresh `ib_async`
//! connection per run (a Python process), and a fresh direct `ibapi` connection per run (in this
//! process, so without any process start-up). All three read from the same simulator.
//!
//! The variants take turns run by run, so a noisy moment on the machine hits all of them alike.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::header;
use crate::binaries::{self, IB_ASYNC_ONCE};
use crate::cli::{RunnerArgs, pick};
use crate::report::{Line, Table, latency_cells, times};
use crate::stack::InProcess;
use crate::stats::{Summary, ms};
use crate::{Error, Result, direct};

const NAME: &str = "runner";
/// One run of any variant must finish within this.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// The goal: the old way is at least this many times slower.
const GOAL_PYTHON_RATIO: f64 = 20.0;

/// Client ids: the service holds 1; each direct run and each Python run gets its own.
const DIRECT_IDS: i32 = 1000;
const PYTHON_IDS: i32 = 2000;

/// Runs the scenario.
pub async fn run(args: &RunnerArgs) -> Result<Vec<Line>> {
    let runs = pick(args.runs, args.smoke.smoke, 3, 20);
    header(NAME, &format!("{runs} runs per variant, taking turns"));
    let trader = binaries::sibling("trader-client")?;
    let python = binaries::python();
    let stack = InProcess::start().await?;
    let result = measure(&stack, &trader, python.as_deref(), runs, Duration::from_secs(args.max_secs)).await;
    stack.stop().await;
    result
}

struct Python {
    wall: Vec<Duration>,
    session: Vec<Duration>,
    import: Vec<Duration>,
}

async fn measure(
    stack: &InProcess,
    trader: &Path,
    mut python: Option<&Path>,
    runs: u32,
    budget: Duration,
) -> Result<Vec<Line>> {
    let gateway = format!("http://{}", stack.grpc());
    let sim = stack.sim_api();
    // One unrecorded run of each warms the page cache and the simulator.
    run_trader(trader, &gateway).await?;
    if let Some(py) = python
        && let Err(skip) = run_python(py, sim, PYTHON_IDS - 1).await?
    {
        println!("ib_async variant skipped: {skip}");
        python = None;
    }
    direct::connect_and_sync(sim, DIRECT_IDS - 1).await?;

    let started = Instant::now();
    let mut t_trader = Vec::new();
    let mut t_direct = Vec::new();
    let mut t_floor = Vec::new();
    let mut py = Python { wall: Vec::new(), session: Vec::new(), import: Vec::new() };
    for i in 0..runs {
        if started.elapsed() > budget * 3 {
            println!("time budget used up after {i} runs");
            break;
        }
        t_trader.push(run_trader(trader, &gateway).await?);
        t_floor.push(run_floor(trader).await?);
        if let Some(path) = python {
            let r = run_python(path, sim, PYTHON_IDS + i as i32).await?.map_err(Error::Functional)?;
            py.wall.push(r.0);
            py.session.push(r.1);
            py.import.push(r.2);
        }
        t_direct.push(direct::connect_and_sync(sim, DIRECT_IDS + i as i32).await?);
    }
    let trader_s = Summary::of(&t_trader).ok_or_else(|| Error::Functional("no trader-client runs".into()))?;
    let direct_s = Summary::of(&t_direct);
    let py_s = Summary::of(&py.wall);

    let mut t = Table::new(
        format!("{NAME}: wall time per run (ratio = median / trader-client median)"),
        &["variant", "runs", "p50", "p95", "p99", "max", "ratio"],
    );
    let ratio = |s: Option<&Summary>| s.map_or(f64::NAN, |s| s.p50.as_secs_f64() / trader_s.p50.as_secs_f64());
    let mut row = |name: &str, s: Option<&Summary>| {
        let mut cells = vec![name.to_owned(), s.map_or(0, |s| s.n).to_string()];
        cells.extend(latency_cells(s));
        cells.push(times(ratio(s)));
        t.row(cells);
    };
    row("trader-client --once (process, via gateway-svc)", Some(&trader_s));
    row("ib_async fresh connection (python process)", py_s.as_ref());
    row("  of which connect..disconnect inside python", Summary::of(&py.session).as_ref());
    row("  of which importing asyncio + ib_async", Summary::of(&py.import).as_ref());
    row("ibapi fresh direct connection (in-process)", direct_s.as_ref());
    row("trader-client --version (process start-up floor)", Summary::of(&t_floor).as_ref());
    t.print();

    let mut lines = Vec::new();
    match &py_s {
        Some(p) => {
            let r = ratio(Some(p));
            lines.push(
                Line::new(NAME, "ib_async run / trader-client run (p50)", ms(p.p50))
                    .baseline(ms(trader_s.p50), r)
                    .goal(format!("≥ {GOAL_PYTHON_RATIO:.0}×"), r >= GOAL_PYTHON_RATIO),
            );
        }
        None => lines.push(Line::new(NAME, "ib_async run / trader-client run (p50)", "skipped (no venv)")),
    }
    if let Some(d) = &direct_s {
        lines.push(
            Line::new(NAME, "ibapi direct run / trader-client run (p50)", ms(d.p50))
                .baseline(ms(trader_s.p50), ratio(Some(d))),
        );
    }
    Ok(lines)
}

/// One `trader-client --once`, spawn to exit.
async fn run_trader(binary: &Path, gateway: &str) -> Result<Duration> {
    let mut cmd = Command::new(binary);
    cmd.args(["--symbols", "AAPL", "--once", "--gateway", gateway]).stdin(Stdio::null());
    let (took, out) = timed(cmd).await?;
    if !out.status.success() {
        return Err(Error::Functional(format!(
            "trader-client exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if !String::from_utf8_lossy(&out.stdout).contains("AAPL") {
        return Err(Error::Functional("trader-client did not report AAPL".into()));
    }
    Ok(took)
}

/// `trader-client --version`: what starting and ending the process costs, with no work.
async fn run_floor(binary: &Path) -> Result<Duration> {
    let mut cmd = Command::new(binary);
    cmd.arg("--version").stdin(Stdio::null());
    let (took, out) = timed(cmd).await?;
    if !out.status.success() {
        return Err(Error::Functional(format!("trader-client --version exited with {}", out.status)));
    }
    Ok(took)
}

/// One Python run: wall time, in-script session time and import time. The inner `Err` means
/// the venv cannot run the script (no `ib_async`): a reason to skip the variant, not a failure.
async fn run_python(
    python: &Path,
    sim: SocketAddr,
    client_id: i32,
) -> Result<Result<(Duration, Duration, Duration), String>> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", IB_ASYNC_ONCE, &sim.ip().to_string(), &sim.port().to_string(), &client_id.to_string()])
        .stdin(Stdio::null());
    let (took, out) = timed(cmd).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") {
        return Ok(Err(format!("{} cannot import ib_async", python.display())));
    }
    if !out.status.success() {
        return Err(Error::Functional(format!("ib_async run exited with {}: {}", out.status, stderr.trim())));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::functional("ib_async output", e))?;
    let field = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).map(|ms| Duration::from_secs_f64(ms / 1000.0));
    match (field("session_ms"), field("import_ms")) {
        (Some(session), Some(import)) => Ok(Ok((took, session, import))),
        _ => Err(Error::Functional(format!("ib_async output without timings: {line}"))),
    }
}

/// Runs `cmd` to completion and times it from spawn to exit.
async fn timed(mut cmd: Command) -> Result<(Duration, std::process::Output)> {
    cmd.kill_on_drop(true);
    let program: PathBuf = cmd.as_std().get_program().into();
    let started = Instant::now();
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .map_err(|_| Error::Functional(format!("{} did not finish within {RUN_TIMEOUT:?}", program.display())))?
        .map_err(|e| Error::setup(&format!("cannot run {}", program.display()), e))?;
    Ok((started.elapsed(), out))
}

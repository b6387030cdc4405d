//! The benchmarks, one module each. Every scenario prints its own tables while it runs and
//! returns its headline figures as summary lines.

pub mod book;
pub mod burst;
pub mod fanout;
pub mod front_door;
pub mod nats;
pub mod recovery;
pub mod runner;
pub mod sim;
pub mod unary;

use std::time::Duration;

use ib_sim::{ControlClient, Position};

use crate::cli::{
    BookArgs, BurstArgs, Command, FanoutArgs, FrontDoorArgs, NatsArgs, RecoveryArgs, RunnerArgs, SimArgs, Smoke,
    UnaryArgs,
};
use crate::report::{Line, print_summary};
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

/// Runs `command` and prints the summary. Fails when a scenario could not be set up or the system
/// misbehaved; a missed performance goal is only reported.
pub async fn run(command: Command) -> Result<()> {
    let started = std::time::Instant::now();
    let (lines, failures) = match command {
        Command::Runner(a) => one(runner::run(&a).await),
        Command::Unary(a) => one(unary::run(&a).await),
        Command::Fanout(a) => one(fanout::run(&a).await),
        Command::Recovery(a) => one(recovery::run(&a).await),
        Command::Burst(a) => one(burst::run(&a).await),
        Command::Book(a) => one(book::run(&a).await),
        Command::Sim(a) => one(sim::run(&a).await),
        Command::FrontDoor(a) => one(front_door::run(&a).await),
        Command::Nats(a) => one(nats::run(&a).await),
        Command::All(smoke) => all(smoke).await,
    };
    print_summary(&lines);
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.into_iter().next().unwrap_or_else(|| Error::Functional("unknown".into()))),
        n => Err(Error::Functional(format!(
            "{n} scenarios failed: {}",
            failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ))),
    }
}

fn one(r: Result<Vec<Line>>) -> (Vec<Line>, Vec<Error>) {
    match r {
        Ok(lines) => (lines, Vec::new()),
        Err(e) => (Vec::new(), vec![e]),
    }
}

/// Every scenario in turn. A failing scenario does not stop the others, so one run shows every
/// problem; the failures are returned together at the end.
async fn all(smoke: Smoke) -> (Vec<Line>, Vec<Error>) {
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut keep = |name: &str, r: Result<Vec<Line>>| match r {
        Ok(l) => lines.extend(l),
        Err(e) => {
            eprintln!("ibgw-bench: {name}: {e}");
            failures.push(match e {
                Error::Setup(m) => Error::Setup(format!("{name}: {m}")),
                Error::Functional(m) => Error::Functional(format!("{name}: {m}")),
            });
        }
    };
    keep("sim", sim::run(&SimArgs { smoke, ..SimArgs::default() }).await);
    keep("runner", runner::run(&RunnerArgs { smoke, max_secs: 120, ..RunnerArgs::default() }).await);
    keep("unary", unary::run(&UnaryArgs { smoke, ..UnaryArgs::default() }).await);
    keep("fanout", fanout::run(&FanoutArgs { smoke, ..FanoutArgs::default() }).await);
    keep("recovery", recovery::run(&RecoveryArgs { smoke, ..RecoveryArgs::default() }).await);
    keep("burst", burst::run(&BurstArgs { smoke, ..BurstArgs::default() }).await);
    keep("front-door", front_door::run(&FrontDoorArgs { smoke, ..FrontDoorArgs::default() }).await);
    keep("book", book::run(&BookArgs { smoke, ..BookArgs::default() }).await);
    keep("nats", nats::run(&NatsArgs { smoke, ..NatsArgs::default() }).await);
    (lines, failures)
}

/// Prints a scenario header.
fn header(name: &str, what: &str) {
    println!("\n=== {name}: {what}");
}

/// The target position as the simulator holds it now.
async fn target_position(control: &ControlClient) -> Result<Position> {
    let positions = control.positions().await.map_err(|e| Error::setup("simulator positions", e))?;
    positions
        .into_iter()
        .find(|p| p.account == TARGET_ACCOUNT && p.con_id == TARGET_CON_ID)
        .ok_or_else(|| Error::Functional(format!("the simulator has no position {TARGET_ACCOUNT}/{TARGET_CON_ID}")))
}

/// Deadline for `n` subscribers to do something the service does in microseconds each: generous,
/// because on a busy 2-core machine a late answer is a slow result, not a failure.
fn patience(n: usize) -> Duration {
    Duration::from_secs(10) + Duration::from_millis(n as u64 * 3)
}

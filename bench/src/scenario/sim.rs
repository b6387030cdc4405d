//! `sim`: ib-sim's own throughput. Raw TWS text clients (no client library in the way) subscribe
//! to positions; one burst steps a position through `count` updates; each client reads until it
//! has the final quantity. Run first with one client (the baseline), then with all of them, so
//! the ratio shows how delivery scales with clients. ib-sim runs as its own process so its
//! memory can be read before and after.

use std::time::Duration;

use ib_sim::{ControlClient, Fault};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{header, patience, target_position};
use crate::binaries;
use crate::child::Service;
use crate::cli::{SimArgs, pick};
use crate::report::{Line, Table, mib};
use crate::stats::{median, ms};
use crate::wire::WireClient;
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

const NAME: &str = "sim";
const START: Duration = Duration::from_secs(10);
/// Client ids of the raw clients.
const FIRST_ID: i32 = 100;

/// One burst as the clients saw it.
#[derive(Debug)]
struct Burst {
    /// Updates per second each client received.
    per_client: Vec<f64>,
    /// All updates delivered over the time until the last client was done.
    total: f64,
    /// Until the last client was done.
    elapsed: Duration,
    /// Position messages each client received.
    received: Vec<u64>,
}

/// Runs the scenario.
pub async fn run(args: &SimArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let clients = args.clients.unwrap_or(10).max(1);
    let count = pick(args.count, smoke, 1_000, 10_000).max(1);
    let rounds = pick(args.rounds, smoke, 1, 2).max(1);
    header(NAME, &format!("{count}-update burst to 1, then {clients} raw TWS clients; {rounds} round(s) each"));
    let binary = binaries::sibling("ib-sim")?;
    let any = "127.0.0.1:0";
    let sim =
        Service::spawn(&binary, &["--listen", any, "--control-listen", any], &[("RUST_LOG", "warn".into())]).await?;
    let result = measure(&sim, clients, count, rounds).await;
    sim.stop().await;
    result
}

async fn measure(sim: &Service, n_clients: usize, count: u32, rounds: u32) -> Result<Vec<Line>> {
    let api = sim.addr("api")?;
    let control = ControlClient::new(sim.addr("control")?);
    let rss_start = sim.rss_kib();
    let mut clients = Vec::new();
    clients.push(connect(api, FIRST_ID).await?);
    let mut single = Vec::new();
    for _ in 0..rounds {
        let (back, b) = burst(&control, clients, count).await?;
        clients = back;
        single.push(b);
    }
    for i in 1..n_clients {
        clients.push(connect(api, FIRST_ID + i as i32).await?);
    }
    let rss_before = sim.rss_kib();
    let mut many = Vec::new();
    for _ in 0..rounds {
        let (back, b) = burst(&control, clients, count).await?;
        clients = back;
        many.push(b);
    }
    let rss_after = sim.rss_kib();
    drop(clients);

    let mut t = Table::new(
        format!("{NAME}: {count} position updates pushed to raw clients"),
        &["clients", "round", "until last done", "per client min", "per client median", "total", "received min"],
    );
    for (n, bursts) in [(1, &single), (n_clients, &many)] {
        for (i, b) in bursts.iter().enumerate() {
            t.row(vec![
                n.to_string(),
                (i + 1).to_string(),
                ms(b.elapsed),
                rate(b.per_client.iter().copied().fold(f64::INFINITY, f64::min)),
                rate(median(&b.per_client).unwrap_or(0.0)),
                rate(b.total),
                b.received.iter().min().copied().unwrap_or(0).to_string(),
            ]);
        }
    }
    t.print();
    println!(
        "{NAME}: simulator RSS {} at start, {} with {n_clients} clients subscribed, {} after {rounds} burst(s)",
        mib(rss_start),
        mib(rss_before),
        mib(rss_after)
    );
    let med = |bs: &[Burst], f: fn(&Burst) -> f64| median(&bs.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    let single_rate = med(&single, |b| b.total);
    let per_client = med(&many, |b| median(&b.per_client).unwrap_or(0.0));
    let total = med(&many, |b| b.total);
    Ok(vec![
        Line::new(NAME, format!("updates/s per client, {n_clients} clients (median)"), rate(per_client))
            .baseline(format!("{} alone", rate(single_rate)), per_client / single_rate),
        Line::new(NAME, format!("updates/s delivered in total, {n_clients} clients"), rate(total))
            .baseline(format!("{} alone", rate(single_rate)), total / single_rate),
        Line::new(NAME, format!("simulator RSS after the bursts ({n_clients} clients)"), mib(rss_after)).baseline(
            format!("{} at start", mib(rss_start)),
            match (rss_after, rss_start) {
                (Some(a), Some(b)) if b > 0 => a as f64 / b as f64,
                _ => f64::NAN,
            },
        ),
    ])
}

fn rate(per_sec: f64) -> String {
    if per_sec >= 10_000.0 { format!("{:.0}k/s", per_sec / 1000.0) } else { format!("{per_sec:.0}/s") }
}

async fn connect(api: std::net::SocketAddr, client_id: i32) -> Result<WireClient> {
    let mut c = WireClient::start(api, client_id, START).await?;
    let rows = c.subscribe_positions(START).await?;
    if rows == 0 {
        return Err(Error::Functional("the simulator sent no positions".into()));
    }
    Ok(c)
}

/// One burst to every client; each reads on its own task until it has the final quantity.
async fn burst(control: &ControlClient, clients: Vec<WireClient>, count: u32) -> Result<(Vec<WireClient>, Burst)> {
    let base: f64 = target_position(control)
        .await?
        .quantity
        .parse()
        .map_err(|_| Error::Functional("target quantity is not a number".into()))?;
    let expected = base + f64::from(count);
    let within = patience(count as usize);
    let mut tasks = JoinSet::new();
    for mut c in clients {
        tasks.spawn(async move {
            let r = c.until_quantity(TARGET_ACCOUNT, TARGET_CON_ID, expected, within).await;
            (c, r)
        });
    }
    let t0 = Instant::now();
    control
        .inject(&Fault::Burst { count, con_id: Some(TARGET_CON_ID), account: Some(TARGET_ACCOUNT.into()) })
        .await
        .map_err(|e| Error::setup("inject burst", e))?;
    let mut back = Vec::new();
    let mut per_client = Vec::new();
    let mut received = Vec::new();
    let mut last = t0;
    while let Some(joined) = tasks.join_next().await {
        let (c, r) = joined.map_err(|e| Error::functional("raw client task", e))?;
        let (done, n) = r?;
        let took = done.duration_since(t0);
        per_client.push(n as f64 / took.as_secs_f64());
        received.push(n);
        last = last.max(done);
        back.push(c);
    }
    let elapsed = last.duration_since(t0);
    let total = received.iter().sum::<u64>() as f64 / elapsed.as_secs_f64();
    Ok((back, Burst { per_client, total, elapsed, received }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_print_compactly() {
        assert_eq!(rate(123_456.0), "123k/s");
        assert_eq!(rate(999.4), "999/s");
    }
}

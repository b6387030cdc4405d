//! Data truth against a model. Seeded random sequences of position opens, changes, closes and
//! reopens (the same contract several times in one batch, zero crossings, many contracts at once,
//! both accounts), account-value changes and price ticks, optionally interleaved with faults
//! (gateway restart, link loss with and without data loss, a half-open link, 326), are driven
//! through the simulator. After every step, at the quiet point, what every client sees must equal
//! the simulator's book: a position stream's folded view, an account-summary stream's folded
//! view, and the unary answers, PnL and valuations included (per account and per position), and
//! what a TWS front-door client has folded from positions, account summary, account updates
//! (valued portfolio rows) and PnL.
//!
//! Each seed is one case. A seed that ever fails is added to `KEPT_SEEDS` so it runs forever.
//! `IBGW_TRUTH_CASES=N` runs N seeds per test instead of the default (the long run in
//! docs/RELIABILITY.md).

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_proto::pb;
use ib_sim::{AccountValue, Fault, Position, PriceTick, Scenario};
use ibgw_client::View;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Streaming;
use tws_wire::{Reply, Request};

use crate::support::patience;
use crate::support::stack::{Stack, fast_settings, start_stack_with, with_front_door};
use crate::support::streams::{fold, quantities, values};
use crate::support::wire::{Read, WireClient};

/// Seeds that once found a defect, run on every test run before the random ones.
/// 1001: 100 → 0 → 50 on one contract in one batch (the close-then-reopen loss).
const KEPT_SEEDS: &[u64] = &[1001];
/// The same for the variant with faults.
/// 20017: a link loss restored with 1102 left PnL STALE for good.
const KEPT_FAULT_SEEDS: &[u64] = &[20017];

const ACCOUNTS: [&str; 2] = ["DU1234567", "DU7654321"];
/// Contracts the steps play with: two the book holds at start, two it does not.
const CONTRACTS: [(i32, &str); 4] = [(265598, "AAPL"), (272093, "MSFT"), (9001, "ZZA"), (9002, "ZZB")];
/// Account-summary tags the steps change.
const TAGS: [&str; 3] = ["NetLiquidation", "BuyingPower", "TotalCashValue"];

type Positions = BTreeMap<(String, i64), String>;
type Values = BTreeMap<(String, String, String), String>;

/// One step of a case.
#[derive(Debug, Clone)]
enum Step {
    /// One batch of position updates, sent back to back (in one upstream burst).
    Positions(Vec<(usize, usize, i64)>),
    /// Account-value changes.
    Values(Vec<(usize, usize, i64)>),
    /// Price ticks: contract, price in cents.
    Prices(Vec<(usize, i64)>),
    /// A fault.
    Fault(Fault),
}

fn case(seed: u64, faults: bool) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    if seed == 1001 {
        // The pinned defect, spelled out: close and reopen within one batch.
        return vec![Step::Positions(vec![(0, 0, 100), (0, 0, 0), (0, 0, 50)])];
    }
    let steps = rng.random_range(2..=4);
    (0..steps)
        .map(|_| match rng.random_range(0..10) {
            0..=5 => Step::Positions(batch(&mut rng)),
            6 if rng.random_bool(0.5) => {
                let n = rng.random_range(1..=2);
                Step::Prices(
                    (0..n).map(|_| (rng.random_range(0..CONTRACTS.len()), rng.random_range(1_000..90_000))).collect(),
                )
            }
            6 | 7 => {
                let n = rng.random_range(1..=3);
                let values = (0..n)
                    .map(|_| (rng.random_range(0..2), rng.random_range(0..TAGS.len()), rng.random_range(1..1_000_000)))
                    .collect();
                Step::Values(values)
            }
            _ if faults => Step::Fault(fault(&mut rng)),
            _ => Step::Positions(batch(&mut rng)),
        })
        .collect()
}

/// Updates for a few contracts, interleaved, each contract's own updates in order: some cross
/// zero (close then reopen), some end closed.
fn batch(rng: &mut StdRng) -> Vec<(usize, usize, i64)> {
    let keys = rng.random_range(1..=4);
    let mut per_key: Vec<Vec<(usize, usize, i64)>> = (0..keys)
        .map(|_| {
            let (account, contract) = (rng.random_range(0..2), rng.random_range(0..CONTRACTS.len()));
            let qty = |rng: &mut StdRng| if rng.random_bool(0.3) { 0 } else { rng.random_range(1..500) };
            let updates = match rng.random_range(0..3) {
                0 => vec![rng.random_range(1..500), 0, rng.random_range(1..500)],
                1 => vec![qty(rng)],
                _ => (0..rng.random_range(2..=4)).map(|_| qty(rng)).collect(),
            };
            updates.into_iter().map(|q| (account, contract, q)).collect()
        })
        .collect();
    let mut out = Vec::new();
    while per_key.iter().any(|u| !u.is_empty()) {
        let i = rng.random_range(0..per_key.len());
        if !per_key[i].is_empty() {
            out.push(per_key[i].remove(0));
        }
    }
    out
}

fn fault(rng: &mut StdRng) -> Fault {
    match rng.random_range(0..8) {
        0..=2 => Fault::Restart { down_ms: rng.random_range(20..300) },
        3 | 4 => Fault::LinkLost { restore_ms: rng.random_range(50..300), data_lost: true },
        5 => Fault::LinkLost { restore_ms: rng.random_range(50..300), data_lost: false },
        6 => Fault::DuplicateId { duration_ms: rng.random_range(100..400) },
        _ => Fault::Silence,
    }
}

/// What one TWS front-door client has folded from what it was sent.
struct FrontDoorView {
    client: WireClient,
    positions: Positions,
    summary: Values,
    /// `reqAccountUpdates` for the first account: conId → (size, market value).
    portfolio: BTreeMap<i64, (String, f64)>,
    /// `reqPnL` per account, by request id 10 + account index: account → daily PnL.
    pnl: BTreeMap<String, f64>,
}

impl FrontDoorView {
    async fn open(stack: &Stack) -> Self {
        let addr = stack.demo.service.tws_api_addr.expect("the front door is on");
        let (mut client, _) = WireClient::start(addr, 77).await;
        client.request(&Request::Positions).await;
        let tags = TAGS.iter().map(|t| (*t).to_owned()).collect();
        client.request(&Request::AccountSummary { req_id: 1, group: "All".into(), tags }).await;
        client.request(&Request::AccountUpdates { subscribe: true, account: ACCOUNTS[0].into() }).await;
        for (i, account) in ACCOUNTS.iter().enumerate() {
            client.request(&Request::Pnl { req_id: 10 + i as i32, account: (*account).into() }).await;
        }
        let (positions, summary, portfolio, pnl) = Default::default();
        Self { client, positions, summary, portfolio, pnl }
    }

    /// Folds whatever has arrived within `wait`.
    async fn pump(&mut self, wait: Duration) {
        loop {
            let reply = match self.client.read(wait).await {
                Read::Reply(r) => r,
                Read::Silent => return,
                other => panic!("the front-door connection broke: {other:?}"),
            };
            match reply {
                // A size of 0 is how a gateway reports a position that went away.
                Reply::Position(p) if p.quantity.parse::<f64>() == Ok(0.0) => {
                    self.positions.remove(&(p.account, i64::from(p.contract.con_id)));
                }
                Reply::Position(p) => {
                    self.positions.insert((p.account, i64::from(p.contract.con_id)), p.quantity);
                }
                Reply::AccountSummary { req_id: 1, account, tag, value, currency } => {
                    self.summary.insert((account, tag, currency), value);
                }
                Reply::Portfolio(p) if p.quantity.parse::<f64>() == Ok(0.0) => {
                    self.portfolio.remove(&i64::from(p.contract.con_id));
                }
                Reply::Portfolio(p) => {
                    self.portfolio.insert(i64::from(p.contract.con_id), (p.quantity, p.market_value));
                }
                Reply::Pnl { req_id, daily, .. } => {
                    let account = usize::try_from(req_id - 10).ok().and_then(|i| ACCOUNTS.get(i)).expect("our reqId");
                    self.pnl.insert((*account).to_owned(), daily);
                }
                _ => {}
            }
        }
    }

    /// What this client disagrees with the book and the service's own answers on.
    fn disagreement(&self, stack: &Stack, held: &Positions, summary: &Values) -> Option<String> {
        let open: Positions =
            held.iter().filter(|(_, q)| q.parse::<f64>() != Ok(0.0)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if self.positions != open {
            return Some(format!("front-door positions {:?} != book {open:?}", self.positions));
        }
        let asked: Values = summary
            .iter()
            .filter(|((_, t, _), _)| TAGS.contains(&t.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self.summary != asked {
            return Some(format!("front-door summary {:?} != GetAccountSummary {asked:?}", self.summary));
        }
        let mine: BTreeMap<i64, String> =
            open.iter().filter(|((a, _), _)| a == ACCOUNTS[0]).map(|((_, c), q)| (*c, q.clone())).collect();
        let sizes: BTreeMap<i64, String> = self.portfolio.iter().map(|(c, (q, _))| (*c, q.clone())).collect();
        if sizes != mine {
            return Some(format!("front-door portfolio {sizes:?} != book {mine:?}"));
        }
        for (con_id, (_, value)) in &self.portfolio {
            let truth = stack.sim().position_pnl(ACCOUNTS[0], i32::try_from(*con_id).ok()?)?.value;
            if (value - truth).abs() > 1e-6 * truth.abs().max(1.0) {
                return Some(format!("front-door portfolio value of {con_id}: {value} != simulator {truth}"));
            }
        }
        for account in ACCOUNTS {
            let truth = stack.sim().pnl(account)?.daily;
            if self.pnl.get(account).is_none_or(|d| (d - truth).abs() > 1e-6 * truth.abs().max(1.0)) {
                return Some(format!("front-door PnL of {account}: {:?} != simulator {truth}", self.pnl.get(account)));
            }
        }
        None
    }
}

/// Two clients' folded stream views, checked against the unary answers and the book.
struct Clients {
    front_door: FrontDoorView,
    positions: Streaming<pb::WatchPositionsResponse>,
    positions_view: View<ibgw_client::Positions>,
    summary: Streaming<pb::WatchAccountSummaryResponse>,
    summary_view: View<ibgw_client::Summary>,
}

impl Clients {
    async fn open(stack: &Stack) -> Self {
        let mut c = stack.client.clone();
        let positions = c.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
        let summary = c.watch_account_summary(pb::WatchAccountSummaryRequest::default()).await.unwrap().into_inner();
        Self {
            front_door: FrontDoorView::open(stack).await,
            positions,
            positions_view: View::new(),
            summary,
            summary_view: View::new(),
        }
    }

    /// Applies whatever the streams have ready within `wait`.
    async fn pump(&mut self, wait: Duration) {
        self.front_door.pump(wait).await;
        while let Ok(m) = tokio::time::timeout(wait, self.positions.message()).await {
            let m = m.expect("position stream stays up").expect("position stream stays open");
            fold(&mut self.positions_view, &m);
        }
        while let Ok(m) = tokio::time::timeout(wait, self.summary.message()).await {
            let m = m.expect("summary stream stays up").expect("summary stream stays open");
            fold(&mut self.summary_view, &m);
        }
    }
}

fn book_positions(stack: &Stack) -> Positions {
    stack.sim().positions().into_iter().map(|p| ((p.account, i64::from(p.con_id)), p.quantity)).collect()
}

fn book_values(stack: &Stack) -> Values {
    stack.sim().account_values().into_iter().map(|v| ((v.account, v.tag, v.currency), v.value)).collect()
}

/// What the service and its clients disagree with the book on, or `None` at a quiet point.
async fn disagreement(stack: &Stack, clients: &mut Clients) -> Option<String> {
    clients.pump(Duration::from_millis(5)).await;
    let h = stack.health().await;
    if h.state != pb::SessionState::Ready as i32 {
        return Some(format!("session {:?}: {}", h.state(), h.reason));
    }
    let truth = book_positions(stack);
    let unary = stack.client.clone().get_positions(pb::GetPositionsRequest::default()).await.ok()?.into_inner();
    if unary.freshness.as_ref().map(|f| f.state) != Some(pb::FreshnessState::Live as i32) {
        return Some(format!("positions not live: {:?}", unary.freshness));
    }
    let unary: Positions = unary.positions.into_iter().map(|p| ((p.account, p.con_id), p.quantity)).collect();
    if unary != truth {
        return Some(format!("GetPositions {unary:?} != book {truth:?}"));
    }
    let streamed = quantities(&clients.positions_view);
    if streamed != truth {
        return Some(format!("position stream {streamed:?} != book {truth:?}"));
    }
    let summary = stack.client.clone().get_account_summary(pb::GetAccountSummaryRequest::default()).await.ok()?;
    let summary: Values =
        summary.into_inner().values.into_iter().map(|v| ((v.account, v.tag, v.currency), v.value)).collect();
    let book = book_values(stack);
    let changed = book.iter().filter(|((_, tag, _), _)| TAGS.contains(&tag.as_str()));
    if let Some((k, v)) = changed.into_iter().find(|(k, v)| summary.get(*k) != Some(*v)) {
        return Some(format!("GetAccountSummary {k:?} = {:?}, book says {v:?}", summary.get(k)));
    }
    if values(&clients.summary_view) != summary {
        return Some("summary stream differs from GetAccountSummary".to_owned());
    }
    if let Some(diff) = clients.front_door.disagreement(stack, &truth, &summary) {
        return Some(diff);
    }
    pnl_disagreement(stack, &truth).await
}

/// PnL and valuations: every account's PnL and every held position's value and PnL equal what
/// the simulator would put on the wire now.
async fn pnl_disagreement(stack: &Stack, held: &Positions) -> Option<String> {
    let same = |served: &str, truth: f64| {
        served.parse::<f64>().is_ok_and(|v| (v - truth).abs() <= 1e-6 * truth.abs().max(1.0))
    };
    let accounts = stack.client.clone().get_account_pnl(pb::GetAccountPnlRequest::default()).await.ok()?.into_inner();
    if accounts.freshness.as_ref().map(|f| f.state) != Some(pb::FreshnessState::Live as i32) {
        return Some(format!("account PnL not live: {:?}", accounts.freshness));
    }
    for a in &accounts.accounts {
        let truth = stack.sim().pnl(&a.account)?;
        if !(same(&a.daily_pnl, truth.daily)
            && same(&a.unrealized_pnl, truth.unrealized)
            && same(&a.realized_pnl, truth.realized))
        {
            return Some(format!("account PnL {a:?} != simulator {truth:?}"));
        }
    }
    let positions =
        stack.client.clone().get_position_pnl(pb::GetPositionPnlRequest::default()).await.ok()?.into_inner();
    if positions.freshness.as_ref().map(|f| f.state) != Some(pb::FreshnessState::Live as i32) {
        return Some(format!("position PnL not live: {:?}", positions.freshness));
    }
    let keys: Vec<(String, i64)> = positions.positions.iter().map(|p| (p.account.clone(), p.con_id)).collect();
    if keys != held.keys().cloned().collect::<Vec<_>>() {
        return Some(format!("position PnL rows {keys:?} != held positions {:?}", held.keys().collect::<Vec<_>>()));
    }
    for p in &positions.positions {
        let truth = stack.sim().position_pnl(&p.account, i32::try_from(p.con_id).ok()?)?;
        let fits = p.quantity == truth.position
            && same(&p.market_value, truth.value)
            && same(&p.daily_pnl, truth.daily)
            && same(&p.unrealized_pnl, truth.unrealized);
        if !fits {
            return Some(format!("position PnL {p:?} != simulator {truth:?}"));
        }
    }
    None
}

async fn quiet_point(stack: &Stack, clients: &mut Clients, seed: u64, step: &Step) {
    let deadline = tokio::time::Instant::now() + patience(Duration::from_secs(15));
    loop {
        let Some(diff) = disagreement(stack, clients).await else { return };
        if tokio::time::Instant::now() >= deadline {
            panic!("seed {seed}: after {step:?} the service never agreed with the book: {diff}");
        }
    }
}

async fn play(stack: &Stack, clients: &mut Clients, template: &Position, seed: u64, steps: &[Step]) {
    for step in steps {
        match step {
            Step::Positions(updates) => {
                let positions: Vec<Position> = updates
                    .iter()
                    .map(|&(a, c, q)| Position {
                        account: ACCOUNTS[a].into(),
                        con_id: CONTRACTS[c].0,
                        symbol: CONTRACTS[c].1.into(),
                        quantity: q.to_string(),
                        ..template.clone()
                    })
                    .collect();
                stack.sim().upsert_positions(positions).expect("valid positions");
            }
            Step::Values(values) => {
                let values = values
                    .iter()
                    .map(|&(a, t, v)| AccountValue {
                        account: ACCOUNTS[a].into(),
                        tag: TAGS[t].into(),
                        value: format!("{v}.25"),
                        currency: "USD".into(),
                    })
                    .collect();
                stack.sim().upsert_account_values(values).expect("valid values");
            }
            Step::Prices(ticks) => {
                // The simulator prices what the book holds; a tick for a contract nobody holds
                // is refused, so those are left out.
                let held: Vec<i32> = stack.sim().positions().iter().map(|p| p.con_id).collect();
                let ticks: Vec<PriceTick> = ticks
                    .iter()
                    .filter(|&&(c, _)| held.contains(&CONTRACTS[c].0))
                    .map(|&(c, cents)| PriceTick { con_id: CONTRACTS[c].0, price: cents as f64 / 100.0 })
                    .collect();
                if !ticks.is_empty() {
                    stack.sim().set_prices(&ticks).expect("valid prices");
                }
            }
            Step::Fault(fault) => {
                stack.sim().inject(fault.clone()).expect("fault accepted");
                // A change while the link is down or the gateway is away: reconciled later.
                let change = Step::Values(vec![(0, 0, i64::try_from(seed % 1000).unwrap_or(1) + 1)]);
                Box::pin(play(stack, clients, template, seed, &[change])).await;
            }
        }
        quiet_point(stack, clients, seed, step).await;
    }
}

fn seeds(default: usize, offset: u64, kept: &[u64]) -> Vec<u64> {
    let n = std::env::var("IBGW_TRUTH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    kept.iter().copied().chain((0..n as u64).map(|i| offset + i)).collect()
}

async fn run(default_cases: usize, offset: u64, faults: bool) {
    // Summary changes and PnL arrive on the gateway's cadences; short ones keep quiet points quick.
    let scenario = Scenario { account_summary_refresh_ms: 20, pnl_interval_ms: 20, ..Scenario::default() };
    let stack = start_stack_with(with_front_door(fast_settings()), scenario).await;
    let mut clients = Clients::open(&stack).await;
    let template = stack.sim().positions().into_iter().find(|p| p.con_id == CONTRACTS[0].0).expect("AAPL in the book");
    let seeds = seeds(default_cases, offset, if faults { KEPT_FAULT_SEEDS } else { KEPT_SEEDS });
    for &seed in &seeds {
        play(&stack, &mut clients, &template, seed, &case(seed, faults)).await;
    }
    println!("data truth: {} cases (faults: {faults}) agreed with the book", seeds.len());
    stack.stop_and_check().await;
}

#[tokio::test]
async fn every_client_sees_the_book_after_random_changes() {
    run(150, 10_000, false).await;
}

#[tokio::test]
async fn every_client_sees_the_book_after_random_changes_and_faults() {
    run(12, 20_000, true).await;
}

#[test]
fn cases_are_reproducible_from_their_seed() {
    assert_eq!(format!("{:?}", case(7, true)), format!("{:?}", case(7, true)));
    assert!(
        case(1001, false).iter().any(|s| matches!(s, Step::Positions(u) if u == &[(0, 0, 100), (0, 0, 0), (0, 0, 50)]))
    );
}

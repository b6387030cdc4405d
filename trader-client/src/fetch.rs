//! One round trip: wait for readiness, then read accounts, positions and summary.

use std::time::{Duration, SystemTime};

use gateway_proto::client::{Client, ConnectError};
use gateway_proto::pb;
use tonic::Code;

use crate::report::Report;

/// The summary tags the report shows.
pub const TAGS: [&str; 4] = ["NetLiquidation", "BuyingPower", "AvailableFunds", "TotalCashValue"];

/// How a run can fail; each has its own exit code and a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Nothing answers at the address.
    #[error("gateway-svc unreachable at {addr}: {detail}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// Cause.
        detail: String,
    },
    /// The session did not become ready and no data exists.
    #[error("gateway-svc not ready after {waited:?}: {reason}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// The service's reason.
        reason: String,
    },
    /// Data exists but is older than allowed.
    #[error("data stale for {age:?} (limit {limit:?}): {reason}")]
    Stale {
        /// Staleness.
        age: Duration,
        /// Limit.
        limit: Duration,
        /// Why it is stale.
        reason: String,
    },
    /// The account is not managed by the session.
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// A symbol is malformed.
    #[error("invalid symbol: {0}")]
    InvalidSymbol(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::Unreachable { .. } => 3,
            Failure::NotReady { .. } => 4,
            Failure::Stale { .. } => 5,
            Failure::UnknownAccount(_) => 6,
            Failure::InvalidSymbol(_) => 7,
        }
    }

    fn from_status(addr: &str, s: tonic::Status) -> Failure {
        match s.code() {
            Code::Unavailable if s.message().contains("transport") || s.message().contains("connect") => {
                Failure::Unreachable { addr: addr.to_owned(), detail: s.message().to_owned() }
            }
            Code::NotFound => Failure::UnknownAccount(s.message().trim_start_matches("unknown account ").to_owned()),
            Code::InvalidArgument => Failure::InvalidSymbol(s.message().to_owned()),
            _ => Failure::Other(format!("{:?}: {}", s.code(), s.message())),
        }
    }

    /// From a connection error.
    pub fn from_connect(addr: &str, e: ConnectError) -> Failure {
        match e {
            ConnectError::Unreachable(detail) => Failure::Unreachable { addr: addr.to_owned(), detail },
            other => Failure::Other(other.to_string()),
        }
    }
}

/// Waits for readiness, then reads everything the report needs.
pub async fn fetch(client: &mut Client, args: &crate::cli::Args) -> Result<Report, Failure> {
    let addr = args.gateway.as_str();
    let started = tokio::time::Instant::now();
    let deadline = started + args.ready_timeout;
    // Poll health with a deadline: READY ends the wait; running out of time falls through to
    // the data, which may still be servable as stale within --max-staleness.
    let health = loop {
        let h = client
            .get_health(pb::GetHealthRequest {})
            .await
            .map_err(|s| unreachable_or(addr, s))?
            .into_inner()
            .health
            .unwrap_or_default();
        if h.state == pb::SessionState::Ready as i32 || tokio::time::Instant::now() >= deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let accounts_filter: Vec<String> = args.account.iter().cloned().collect();
    // UNAVAILABLE from a reachable service means "no data yet"; from the transport, "unreachable".
    let data_error = |s: tonic::Status| {
        if s.code() == Code::Unavailable && !is_transport(&s) {
            Failure::NotReady { waited: started.elapsed(), reason: s.message().to_owned() }
        } else {
            Failure::from_status(addr, s)
        }
    };
    let accounts = client.list_accounts(pb::ListAccountsRequest {}).await.map_err(data_error)?.into_inner();
    if let Some(a) = &args.account
        && !accounts.accounts.iter().any(|x| &x.id == a)
    {
        return Err(Failure::UnknownAccount(a.clone()));
    }
    let positions = client
        .get_positions(pb::GetPositionsRequest { accounts: accounts_filter.clone(), symbols: args.symbols.clone() })
        .await
        .map_err(data_error)?
        .into_inner();
    let summary = client
        .get_account_summary(pb::GetAccountSummaryRequest {
            accounts: accounts_filter,
            tags: TAGS.iter().map(|t| t.to_string()).collect(),
        })
        .await
        .map_err(data_error)?
        .into_inner();
    check_staleness(positions.freshness.as_ref(), args.max_staleness)?;
    check_staleness(summary.freshness.as_ref(), args.max_staleness)?;
    Ok(Report::build(addr, &health, &accounts, &positions, &summary, &args.symbols, args.account.as_deref()))
}

fn is_transport(s: &tonic::Status) -> bool {
    // tonic reports a failed connection as UNAVAILABLE with a transport error as the source.
    std::error::Error::source(s).is_some() || s.message().contains("transport error")
}

fn unreachable_or(addr: &str, s: tonic::Status) -> Failure {
    if s.code() == Code::Unavailable || s.code() == Code::Unknown && is_transport(&s) {
        Failure::Unreachable { addr: addr.to_owned(), detail: gateway_proto::client::source_chain(&s) }
    } else {
        Failure::from_status(addr, s)
    }
}

fn check_staleness(f: Option<&pb::Freshness>, limit: Duration) -> Result<(), Failure> {
    let Some(f) = f else { return Ok(()) };
    if f.state != pb::FreshnessState::Stale as i32 {
        return Ok(());
    }
    let since = f.since.and_then(|t| SystemTime::try_from(t).ok()).unwrap_or(SystemTime::UNIX_EPOCH);
    let age = SystemTime::now().duration_since(since).unwrap_or_default();
    if age > limit { Err(Failure::Stale { age, limit, reason: f.reason.clone() }) } else { Ok(()) }
}

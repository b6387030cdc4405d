//! One round trip: wait for readiness, then read accounts, positions, summary and PnL. Every call
//! has a deadline (`--rpc-timeout`); the wait for READY is bounded by `--ready-timeout`.

use std::future::Future;
use std::time::{Duration, SystemTime};

use gateway_proto::pb;
use ibgw_client::{Client, ConnectError};
use tokio::time::Instant;
use tonic::Code;

use crate::cli::Args;
use crate::report::{Answers, Pnl, Report, Wanted};
use crate::signal::Signal;

/// The summary tags the report shows.
pub const TAGS: [&str; 4] = ["NetLiquidation", "BuyingPower", "AvailableFunds", "TotalCashValue"];

/// How often health is polled when gateway-svc refuses a health stream (subscriber cap).
const POLL: Duration = Duration::from_millis(250);

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
    /// Something accepted the connection but did not answer a call in time.
    #[error("gateway-svc at {addr} did not answer {call} within {limit:?} (--rpc-timeout)")]
    NoAnswer {
        /// Address tried.
        addr: String,
        /// What was asked (`connect`, `GetHealth`, ...).
        call: &'static str,
        /// The deadline.
        limit: Duration,
    },
    /// The session did not become ready and no data exists.
    #[error("gateway-svc has no data: the session was not ready after {waited:?}: {reason}")]
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
    /// The account id is malformed (refused locally, or by gateway-svc as INVALID_ARGUMENT).
    #[error("invalid account: {0}")]
    InvalidAccount(String),
    /// A symbol is malformed.
    #[error("invalid symbol: {0}")]
    InvalidSymbol(String),
    /// SIGINT or SIGTERM arrived.
    #[error("stopped by {}", .0.name())]
    Interrupted(Signal),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The process exit code (the table is in [`crate::exit::CODES`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::Unreachable { .. } | Failure::NoAnswer { .. } => 3,
            Failure::NotReady { .. } => 4,
            Failure::Stale { .. } => 5,
            Failure::UnknownAccount(_) | Failure::InvalidAccount(_) => 6,
            Failure::InvalidSymbol(_) => 7,
            Failure::Interrupted(s) => s.exit_code(),
        }
    }

    fn from_status(addr: &str, s: tonic::Status) -> Failure {
        match s.code() {
            Code::Unavailable if s.message().contains("transport") || s.message().contains("connect") => {
                Failure::Unreachable { addr: addr.to_owned(), detail: s.message().to_owned() }
            }
            Code::NotFound => Failure::UnknownAccount(s.message().trim_start_matches("unknown account ").to_owned()),
            Code::InvalidArgument => invalid_argument(s.message()),
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

/// gateway-svc names the refused field first ("account \"x\" has characters outside …",
/// "empty symbol in filter", "at most 1000 accounts per request"): map by that field.
fn invalid_argument(message: &str) -> Failure {
    let field = message.split(|c: char| !c.is_ascii_alphabetic()).find_map(|w| match w {
        "account" | "accounts" => Some(true),
        "symbol" | "symbols" => Some(false),
        _ => None,
    });
    match field {
        Some(true) => Failure::InvalidAccount(message.to_owned()),
        Some(false) => Failure::InvalidSymbol(message.to_owned()),
        None => Failure::Other(format!("InvalidArgument: {message}")),
    }
}

/// Longest account id gateway-svc accepts, in bytes.
const MAX_ACCOUNT_LEN: usize = 64;

/// Checks `--account` the way gateway-svc does, before any call, so a malformed id is reported
/// as an account error (exit 6) whatever state the service is in.
pub fn check_account(account: Option<&str>) -> Result<(), Failure> {
    let Some(a) = account else { return Ok(()) };
    let shown: String = a.chars().take(MAX_ACCOUNT_LEN).collect();
    if a.is_empty() {
        Err(Failure::InvalidAccount("empty account id".into()))
    } else if a.len() > MAX_ACCOUNT_LEN {
        Err(Failure::InvalidAccount(format!("{shown:?}… is longer than {MAX_ACCOUNT_LEN} bytes")))
    } else if !a.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        Err(Failure::InvalidAccount(format!("{shown:?} has characters outside [A-Za-z0-9._-]")))
    } else {
        Ok(())
    }
}

/// A unary request that also tells the server our deadline (grpc-timeout).
fn request<T>(msg: T, limit: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(limit);
    r
}

/// Runs one call with the client-side deadline `limit`: a server that accepted the connection
/// but never answers cannot hold the client.
async fn call<T>(
    addr: &str,
    name: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<Result<T, tonic::Status>, Failure> {
    let no_answer = || Failure::NoAnswer { addr: addr.to_owned(), call: name, limit };
    match tokio::time::timeout(limit, fut).await {
        Ok(Err(s)) if is_deadline(&s) => Err(no_answer()),
        Ok(r) => Ok(r.map(tonic::Response::into_inner)),
        Err(_) => Err(no_answer()),
    }
}

/// The call's deadline ran out: tonic enforces the grpc-timeout we send and reports it as
/// CANCELLED "Timeout expired" (often just before our own timer fires); a server says
/// DEADLINE_EXCEEDED.
fn is_deadline(s: &tonic::Status) -> bool {
    s.code() == Code::DeadlineExceeded
        || s.code() == Code::Cancelled && s.message() == tonic::TimeoutExpired(()).to_string()
}

/// Waits for readiness, then reads everything the report needs.
pub async fn fetch(client: &mut Client, args: &Args) -> Result<Report, Failure> {
    check_account(args.account.as_deref())?;
    let addr = args.gateway.as_str();
    let limit = args.rpc_timeout;
    let started = Instant::now();
    // READY ends the wait; running out of time falls through to the data, which may still be
    // servable as stale within --max-staleness.
    let health = wait_ready(client, args, started + args.ready_timeout).await?;
    let accounts_filter: Vec<String> = args.account.iter().cloned().collect();
    // UNAVAILABLE from a reachable service means "no data yet"; from the transport, "unreachable".
    let data_error = |s: tonic::Status| {
        if s.code() == Code::Unavailable && !is_transport(&s) {
            Failure::NotReady { waited: started.elapsed(), reason: s.message().to_owned() }
        } else {
            Failure::from_status(addr, s)
        }
    };
    let accounts = call(addr, "ListAccounts", limit, client.list_accounts(request(pb::ListAccountsRequest {}, limit)))
        .await?
        .map_err(data_error)?;
    if let Some(a) = &args.account
        && !accounts.accounts.iter().any(|x| &x.id == a)
    {
        return Err(Failure::UnknownAccount(a.clone()));
    }
    let positions_request =
        pb::GetPositionsRequest { accounts: accounts_filter.clone(), symbols: args.symbols.clone() };
    let positions = call(addr, "GetPositions", limit, client.get_positions(request(positions_request, limit)))
        .await?
        .map_err(data_error)?;
    let summary_request = pb::GetAccountSummaryRequest {
        accounts: accounts_filter.clone(),
        tags: TAGS.iter().map(|t| t.to_string()).collect(),
    };
    let summary = call(addr, "GetAccountSummary", limit, client.get_account_summary(request(summary_request, limit)))
        .await?
        .map_err(data_error)?;
    // PnL never fails a run that has positions: without it the report says n/a.
    let account_pnl_request = pb::GetAccountPnlRequest { accounts: accounts_filter.clone() };
    let account_pnl = call(addr, "GetAccountPnl", limit, client.get_account_pnl(request(account_pnl_request, limit)))
        .await?
        .map_or_else(|s| pnl_missing(addr, s), |r| Ok(Pnl::Served(r)))?;
    let position_pnl_request = pb::GetPositionPnlRequest { accounts: accounts_filter };
    let position_pnl =
        call(addr, "GetPositionPnl", limit, client.get_position_pnl(request(position_pnl_request, limit)))
            .await?
            .map_or_else(|s| pnl_missing(addr, s), |r| Ok(Pnl::Served(r)))?;
    let waited = started.elapsed();
    check_freshness(positions.freshness.as_ref(), args.max_staleness, waited)?;
    check_freshness(summary.freshness.as_ref(), args.max_staleness, waited)?;
    let answers = Answers {
        health: &health,
        accounts: &accounts,
        positions: &positions,
        summary: &summary,
        account_pnl: &account_pnl,
        position_pnl: &position_pnl,
    };
    let wanted = Wanted {
        symbols: &args.symbols,
        account: args.account.as_deref(),
        max_staleness: args.max_staleness,
        now: SystemTime::now(),
    };
    Ok(Report::build(addr, &answers, &wanted))
}

/// A PnL call that gave no answer: none yet (UNAVAILABLE from a reachable service) and none at
/// all (UNIMPLEMENTED: a gateway-svc older than PnL) are reported as n/a; anything else fails as
/// the other calls do.
fn pnl_missing<T>(addr: &str, s: tonic::Status) -> Result<Pnl<T>, Failure> {
    match s.code() {
        Code::Unavailable if !is_transport(&s) => Ok(Pnl::NotYet(s.message().to_owned())),
        Code::Unimplemented => Ok(Pnl::NotServed),
        _ => Err(unreachable_or(addr, s)),
    }
}

fn is_ready(h: &pb::Health) -> bool {
    h.state == pb::SessionState::Ready as i32
}

/// The session's health once it is READY, or the last one seen at `deadline`. One GetHealth
/// answers the common case; otherwise WatchHealth reports every change until the deadline (or,
/// when gateway-svc refuses the stream, GetHealth is polled).
async fn wait_ready(client: &mut Client, args: &Args, deadline: Instant) -> Result<pb::Health, Failure> {
    let addr = args.gateway.as_str();
    let limit = args.rpc_timeout;
    let mut last = get_health(client, addr, limit).await?;
    if is_ready(&last) || Instant::now() >= deadline {
        return Ok(last);
    }
    let wait = async {
        let watch = call(addr, "WatchHealth", limit, client.watch_health(pb::WatchHealthRequest {})).await?;
        let mut stream = match watch {
            Ok(s) => Some(s),
            Err(s) if matches!(s.code(), Code::ResourceExhausted | Code::Unimplemented) => None,
            Err(s) => return Err(unreachable_or(addr, s)),
        };
        loop {
            let h = match stream.as_mut() {
                Some(s) => match s.message().await {
                    Ok(Some(m)) => m.health.unwrap_or_default(),
                    Ok(None) => {
                        return Err(Failure::Unreachable {
                            addr: addr.to_owned(),
                            detail: "the health stream ended".into(),
                        });
                    }
                    Err(s) => return Err(unreachable_or(addr, s)),
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    get_health(client, addr, limit).await?
                }
            };
            if is_ready(&h) {
                return Ok(h);
            }
            last = h;
        }
    };
    match tokio::time::timeout_at(deadline, wait).await {
        Ok(r) => r,
        Err(_) => Ok(last),
    }
}

async fn get_health(client: &mut Client, addr: &str, limit: Duration) -> Result<pb::Health, Failure> {
    let r = call(addr, "GetHealth", limit, client.get_health(request(pb::GetHealthRequest {}, limit))).await?;
    Ok(r.map_err(|s| unreachable_or(addr, s))?.health.unwrap_or_default())
}

fn is_transport(s: &tonic::Status) -> bool {
    // tonic reports a failed connection as UNAVAILABLE with a transport error as the source.
    std::error::Error::source(s).is_some() || s.message().contains("transport error")
}

fn unreachable_or(addr: &str, s: tonic::Status) -> Failure {
    if s.code() == Code::Unavailable || s.code() == Code::Unknown && is_transport(&s) {
        Failure::Unreachable { addr: addr.to_owned(), detail: ibgw_client::source_chain(&s) }
    } else {
        Failure::from_status(addr, s)
    }
}

/// LIVE passes; STALE passes while it has been stale for at most `limit`; anything else (no
/// freshness, UNKNOWN) means there is no data to trust yet.
fn check_freshness(f: Option<&pb::Freshness>, limit: Duration, waited: Duration) -> Result<(), Failure> {
    let not_ready = |reason: String| Failure::NotReady { waited, reason };
    let Some(f) = f else { return Err(not_ready("the answer carried no freshness".into())) };
    match pb::FreshnessState::try_from(f.state) {
        Ok(pb::FreshnessState::Live) => Ok(()),
        Ok(pb::FreshnessState::Stale) => {
            let since = f.since.and_then(|t| SystemTime::try_from(t).ok()).unwrap_or(SystemTime::UNIX_EPOCH);
            let age = SystemTime::now().duration_since(since).unwrap_or_default();
            if age > limit { Err(Failure::Stale { age, limit, reason: f.reason.clone() }) } else { Ok(()) }
        }
        _ => Err(not_ready(format!("data freshness UNKNOWN: {}", f.reason))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_account_is_an_account_error_not_a_symbol_error() {
        // gateway-svc's INVALID_ARGUMENT messages (gateway-svc/src/grpc/filter.rs).
        for msg in [
            r#"account "bad acct!" has characters outside [A-Za-z0-9 ._:$/-]"#,
            "empty account in filter",
            "at most 1000 accounts per request, got 1001",
            r#"account "AAAA"… is longer than 64 bytes"#,
        ] {
            let f = Failure::from_status("a", tonic::Status::invalid_argument(msg));
            assert!(matches!(f, Failure::InvalidAccount(_)), "{msg}: {f:?}");
            assert_eq!(f.exit_code(), 6, "{msg}");
            assert!(f.to_string().contains("account"), "{f}");
        }
        for msg in [r#"symbol "AA;PL" has characters outside [A-Za-z0-9 ._:$/-]"#, "empty symbol in filter"] {
            let f = Failure::from_status("a", tonic::Status::invalid_argument(msg));
            assert_eq!(f.exit_code(), 7, "{msg}: {f:?}");
        }
        let f = Failure::from_status("a", tonic::Status::invalid_argument(r#"tag "x;" has characters"#));
        assert_eq!(f.exit_code(), 1, "{f:?}");
    }

    #[tokio::test]
    async fn a_deadline_reported_by_tonic_or_the_server_is_no_answer() {
        let timeout = tonic::Status::cancelled(tonic::TimeoutExpired(()).to_string());
        for s in [timeout, tonic::Status::deadline_exceeded("server gave up")] {
            let r = call::<()>("a", "GetHealth", Duration::from_secs(1), async { Err(s) }).await;
            let f = r.expect_err("a deadline is a failure");
            assert!(matches!(f, Failure::NoAnswer { call: "GetHealth", .. }), "{f:?}");
            assert_eq!(f.exit_code(), 3);
        }
        let cancelled = call::<()>("a", "GetHealth", Duration::from_secs(1), async {
            Err(tonic::Status::cancelled("by the server"))
        });
        assert!(matches!(cancelled.await, Ok(Err(_))), "other cancellations are not deadlines");
    }

    #[test]
    fn accounts_are_checked_locally_like_gateway_svc_does() {
        assert!(check_account(None).is_ok());
        assert!(check_account(Some("DU1234567")).is_ok());
        assert!(check_account(Some("U1.sub_a-b")).is_ok());
        for bad in ["bad acct!", "", "DU1;DROP", &"A".repeat(65)] {
            let f = check_account(Some(bad)).expect_err(bad);
            assert_eq!(f.exit_code(), 6, "{bad}");
            assert!(f.to_string().starts_with("invalid account"), "{f}");
        }
    }

    fn fresh(state: pb::FreshnessState, stale_for: Duration) -> pb::Freshness {
        pb::Freshness {
            state: state as i32,
            since: Some((SystemTime::now() - stale_for).into()),
            reason: "IB link lost (1100)".into(),
        }
    }

    #[test]
    fn freshness_decides_between_ok_stale_and_no_data() {
        let w = Duration::from_millis(5);
        let min = Duration::from_secs(60);
        assert!(check_freshness(Some(&fresh(pb::FreshnessState::Live, min)), Duration::ZERO, w).is_ok());
        assert!(check_freshness(Some(&fresh(pb::FreshnessState::Stale, Duration::from_secs(5))), min, w).is_ok());
        let old = check_freshness(Some(&fresh(pb::FreshnessState::Stale, 2 * min)), min, w).expect_err("too old");
        assert_eq!(old.exit_code(), 5);
        let zero = check_freshness(Some(&fresh(pb::FreshnessState::Stale, w)), Duration::ZERO, w).expect_err("0s");
        assert_eq!(zero.exit_code(), 5, "--max-staleness 0s accepts only live data");
        let unknown = check_freshness(Some(&fresh(pb::FreshnessState::Unknown, w)), min, w).expect_err("unknown");
        assert_eq!(unknown.exit_code(), 4);
        assert_eq!(check_freshness(None, min, w).expect_err("none").exit_code(), 4);
    }

    #[test]
    fn pnl_not_there_yet_or_not_served_is_no_failure() {
        let not_yet = pnl_missing::<()>("a", tonic::Status::unavailable("session SYNCING"));
        assert_eq!(not_yet.ok(), Some(Pnl::NotYet("session SYNCING".into())));
        assert_eq!(pnl_missing::<()>("a", tonic::Status::unimplemented("")).ok(), Some(Pnl::NotServed));
        let denied = pnl_missing::<()>("a", tonic::Status::unauthenticated("no token")).expect_err("a failure");
        assert_eq!(denied.exit_code(), 1, "{denied:?}");
    }

    #[test]
    fn signals_exit_128_plus_their_number() {
        assert_eq!(Failure::Interrupted(Signal::Interrupt).exit_code(), 130);
        assert_eq!(Failure::Interrupted(Signal::Terminate).exit_code(), 143);
        assert_eq!(Failure::Interrupted(Signal::Interrupt).to_string(), "stopped by SIGINT");
    }

    #[test]
    fn every_failure_code_is_in_the_table() {
        let failures = [
            Failure::Other(String::new()),
            Failure::Unreachable { addr: String::new(), detail: String::new() },
            Failure::NoAnswer { addr: String::new(), call: "GetHealth", limit: Duration::ZERO },
            Failure::NotReady { waited: Duration::ZERO, reason: String::new() },
            Failure::Stale { age: Duration::ZERO, limit: Duration::ZERO, reason: String::new() },
            Failure::UnknownAccount(String::new()),
            Failure::InvalidAccount(String::new()),
            Failure::InvalidSymbol(String::new()),
            Failure::Interrupted(Signal::Interrupt),
            Failure::Interrupted(Signal::Terminate),
        ];
        for f in failures {
            assert!(crate::exit::CODES.iter().any(|(c, _)| *c == f.exit_code()), "{f:?}");
        }
    }
}

//! Following one gateway-svc stream for as long as the caller wants: open it, fold every message
//! into the [`View`], and when the stream ends, fails, skips a seq or changes epoch without a
//! RESYNC, or the service cannot be reached, say so and open it again after a jittered
//! exponential backoff. The new stream's SNAPSHOT then replaces the view's rows.
//!
//! The caller pulls: [`Follower::next`] returns the next [`Event`], in order, after it was
//! applied to the view. Each of the three users needs exactly that: the bridge publishes every
//! change in order and needs what each message changed (a `watch` would merge messages and lose
//! the DELTA/RESYNC distinction it publishes), the dashboard redraws from the view after each
//! event, and tests assert on single messages. A caller that wants only the latest state can
//! copy the view into a `watch` itself; the other way round is impossible. Pulling also gives
//! back-pressure for free: a caller that stops pulling stops reading the stream, and
//! gateway-svc's lag policy (a RESYNC) takes over.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tonic::Streaming;
use tracing::debug;

use crate::channel::{Client, ConnectError};
use crate::kind::Kind;
use crate::view::{Gap, Update, UpdateKind, View};
use ibgw_kit::source_chain;
use ibgw_kit::{Backoff, BackoffPolicy};

/// How a follower gets a client for each attempt.
pub trait Connect: Send + Sync {
    /// A client to open the stream on.
    fn connect(&self) -> impl Future<Output = Result<Client, ConnectError>> + Send;
}

/// A lazy client (see [`crate::connect_lazy`]) is its own connector: it re-dials on its own.
impl Connect for Client {
    fn connect(&self) -> impl Future<Output = Result<Client, ConnectError>> + Send {
        std::future::ready(Ok(self.clone()))
    }
}

/// How a follower retries.
#[derive(Debug, Clone)]
pub struct Options {
    /// Delays after a loss: doubling (±20 % jitter) from its first delay up to its cap.
    pub backoff: BackoffPolicy,
    /// A stream the service does not serve (UNIMPLEMENTED, an older gateway-svc) is asked for
    /// again after this instead of the backoff; `None`: the backoff.
    pub not_served_retry: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backoff: BackoffPolicy::clamped(Duration::from_millis(100), Duration::from_secs(3)),
            not_served_retry: None,
        }
    }
}

/// What a follower reports.
#[derive(Debug, Clone)]
pub enum Event<K: Kind> {
    /// A stream message, already applied to the view.
    Update(Update<K>),
    /// The stream is down; the view keeps its rows, stale from now. The next call opens it again
    /// after [`Lost::retry_in`]; its first message is a SNAPSHOT.
    Lost(Lost),
}

/// Why a stream is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No client could be had (nothing listens, bad TLS, ...).
    Unreachable,
    /// The service refused to open the stream.
    Refused(tonic::Code),
    /// The service does not serve this stream (UNIMPLEMENTED).
    NotServed,
    /// The stream ended without a status.
    Ended,
    /// The stream ended with this status.
    Failed(tonic::Code),
    /// The stream stopped following (a skipped seq, an epoch change without RESYNC): the
    /// follower closed it and nothing of the offending message was applied.
    Gap(Gap),
}

/// A lost stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Why.
    pub cause: Cause,
    /// What the transport or the service said (`"Unavailable: shutting down"`, `"stream
    /// ended"`), or the gap.
    pub detail: String,
    /// When the next attempt is made.
    pub retry_in: Duration,
}

impl Lost {
    /// One line for logs and freshness reasons: `gateway-svc unreachable: …`, or the gap.
    pub fn reason(&self) -> String {
        match &self.cause {
            Cause::Gap(_) => self.detail.clone(),
            _ if self.detail.starts_with("gateway-svc unreachable") => self.detail.clone(),
            _ => format!("gateway-svc unreachable: {}", self.detail),
        }
    }
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

/// Follows one stream of kind `K`, getting its clients from `C`.
pub struct Follower<K: Kind, C> {
    connect: C,
    options: Options,
    backoff: Backoff,
    view: View<K>,
    /// The open stream, if any.
    stream: Option<Streaming<K::Message>>,
    /// When the next attempt to open may start (`None`: now).
    retry_at: Option<Instant>,
}

impl<K: Kind, C> std::fmt::Debug for Follower<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("kind", &K::NAME)
            .field("open", &self.stream.is_some())
            .field("retry_at", &self.retry_at)
            .field("rows", &self.view.rows().len())
            .field("freshness", self.view.freshness())
            .finish_non_exhaustive()
    }
}

impl<K: Kind, C: Connect> Follower<K, C> {
    /// A follower with an empty view; nothing is opened before the first [`Follower::next`].
    pub fn new(connect: C, options: Options) -> Self {
        let backoff = Backoff::new(options.backoff);
        Self { connect, options, backoff, view: View::new(), stream: None, retry_at: None }
    }

    /// The folded view: every message [`Follower::next`] returned so far, applied.
    pub fn view(&self) -> &View<K> {
        &self.view
    }

    /// The next event. Never ends: the caller stops by dropping the future (for example in a
    /// `select!` with its shutdown).
    ///
    /// Cancel-safe: everything lives in `self`. Reading the stream is cancel-safe
    /// (`Streaming::message` keeps partial frames), the backoff waits for a deadline kept here,
    /// and a cancelled connect or open is simply made again by the next call.
    pub async fn next(&mut self) -> Event<K> {
        loop {
            if let Some(stream) = self.stream.as_mut() {
                let read = stream.message().await;
                return match read {
                    Ok(Some(m)) => {
                        let u = K::update(m);
                        match self.view.apply(&u) {
                            Ok(()) => {
                                if u.kind == UpdateKind::Snapshot {
                                    debug!(kind = K::NAME, epoch = u.stamps.session_epoch, "stream open");
                                    self.backoff.reset();
                                }
                                Event::Update(u)
                            }
                            Err(gap) => {
                                let detail = gap.to_string();
                                self.lose(Cause::Gap(gap), detail)
                            }
                        }
                    }
                    Ok(None) => self.lose(Cause::Ended, "stream ended".into()),
                    Err(status) => self.lose(Cause::Failed(status.code()), status_text(&status)),
                };
            }
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            let client = match self.connect.connect().await {
                Ok(c) => c,
                Err(e) => return self.lose(Cause::Unreachable, e.to_string()),
            };
            match K::open(client).await {
                Ok(stream) => {
                    self.view.reopen();
                    self.stream = Some(stream);
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    return self.lose(Cause::NotServed, status_text(&status));
                }
                Err(status) => return self.lose(Cause::Refused(status.code()), status_text(&status)),
            }
        }
    }

    /// Closes the stream (if open), marks the view stale and schedules the next attempt.
    fn lose(&mut self, cause: Cause, detail: String) -> Event<K> {
        self.stream = None;
        let retry_in = match (&cause, self.options.not_served_retry) {
            (Cause::NotServed, Some(d)) => d,
            _ => self.backoff.next_delay(),
        };
        self.retry_at = Some(Instant::now() + retry_in);
        let lost = Lost { cause, detail, retry_in };
        let reason = lost.reason();
        debug!(kind = K::NAME, reason = %reason, retry_ms = retry_in.as_millis() as u64, "stream lost");
        self.view.lose(&reason, prost_types::Timestamp::from(SystemTime::now()));
        Event::Lost(lost)
    }
}

/// A status as one line: its code and its message (or, without one, its sources).
fn status_text(status: &tonic::Status) -> String {
    let msg = if status.message().is_empty() { source_chain(status) } else { status.message().to_owned() };
    format!("{:?}: {msg}", status.code())
}

#[cfg(test)]
mod tests;

//! The loop every publisher runs: apply each event from gateway-svc as it comes, check NATS
//! against gateway-svc's state whenever NATS (re)connects, and retry that check with backoff
//! after a failure. A publisher says only how it applies an event and how it catches up.

use std::future::Future;

use ibgw_kit::Backoff;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RetrySettings;
use crate::jet::{Jet, NatsError};
use crate::source::Event;

/// One data kind's publisher.
pub(crate) trait Publisher {
    /// What gateway-svc's stream delivers.
    type Message;
    /// Its NATS connection.
    fn jet(&self) -> &Jet;
    /// Applies one event and publishes what it changed, when NATS is known to be in step.
    fn apply(&mut self, ev: Event<Self::Message>) -> impl Future<Output = Result<(), NatsError>> + Send;
    /// Brings NATS in step with gateway-svc's state (after a start, a reconnect or a failure).
    fn catch_up(&mut self) -> impl Future<Output = Result<(), NatsError>> + Send;
    /// Records a failure (logs, metrics, readiness).
    fn fail(&mut self, e: &NatsError);
}

/// Runs `p` until `cancel` (the message in flight is finished first) or the follower is gone.
pub(crate) async fn drive<P: Publisher>(
    p: &mut P,
    mut rx: mpsc::Receiver<Event<P::Message>>,
    retry: RetrySettings,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(retry.policy());
    let mut retry_at = Some(Instant::now());
    let mut connections = p.jet().connections();
    connections.borrow_and_update();
    let mut watching = true;
    loop {
        let due = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        // Every branch is cancel-safe (recv, sleep, cancelled, changed); the work happens in the
        // bodies, which run to completion.
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                if let Err(e) = p.apply(ev).await {
                    p.fail(&e);
                    retry_at = Some(Instant::now() + backoff.next_delay());
                }
            }
            r = connections.changed(), if watching => {
                if r.is_err() {
                    watching = false;
                    continue;
                }
                // NATS is back: check it against gateway-svc's state now.
                retry_at = Some(Instant::now());
                backoff.reset();
            }
            _ = due => match p.catch_up().await {
                Ok(()) => {
                    retry_at = None;
                    backoff.reset();
                }
                Err(e) => {
                    p.fail(&e);
                    retry_at = Some(Instant::now() + backoff.next_delay());
                }
            },
        }
    }
}

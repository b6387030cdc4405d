//! The publisher of gateway-svc's health: every change on `<prefix>.health`, the latest in the
//! status bucket under `health`. Same rules as the row kinds: the stream first, then the bucket;
//! a failure is followed by a reload of the subject's last message, and the current health goes
//! out if it differs. While gateway-svc is unreachable the last health is republished as STALE.

use std::sync::Arc;

use gateway_proto::pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::RetrySettings;
use crate::jet::{Jet, NatsError};
use crate::metrics::Metrics;
use crate::model::{Freshness, FreshnessState, HealthChange, health_json, rfc3339};
use crate::ops::Readiness;
use crate::publisher::{self, Publisher};
use crate::source::Event;

const DATA: &str = "health";

/// Publishes health.
#[derive(Debug)]
pub struct HealthPublisher {
    jet: Jet,
    /// The latest health from gateway-svc (or the published one, adopted while unreachable).
    target: Option<(serde_json::Value, u64)>,
    freshness: Freshness,
    /// The subject's last message and its stream sequence; `None` until reloaded.
    published: Option<(Option<HealthChange>, u64)>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

impl HealthPublisher {
    /// A health publisher.
    pub fn new(jet: Jet, metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Self {
        let freshness = Freshness { state: FreshnessState::Unknown, since: None, reason: "no health yet".into() };
        Self { jet, target: None, freshness, published: None, metrics, readiness }
    }

    /// Runs until `cancel` or the follower is gone.
    pub async fn run(
        mut self,
        rx: mpsc::Receiver<Event<Option<pb::Health>>>,
        retry: RetrySettings,
        cancel: CancellationToken,
    ) {
        publisher::drive(&mut self, rx, retry, cancel).await;
        debug!("health publisher stopped");
    }

    fn on_event(&mut self, ev: Event<Option<pb::Health>>) {
        match ev {
            Event::Message(Some(h)) => {
                self.readiness.set(DATA, |k| {
                    k.gateway_connected = true;
                    k.has_data = true;
                });
                self.target = Some((health_json(&h), h.session_epoch));
                self.freshness = Freshness { state: FreshnessState::Live, since: None, reason: String::new() };
            }
            Event::Message(None) => {}
            Event::Lost(reason) => {
                self.readiness.set(DATA, |k| k.gateway_connected = false);
                self.freshness = match self.freshness.state {
                    // Health is about the session, not data: it stops being live with the stream.
                    FreshnessState::Live => self.freshness.stale_from(&reason),
                    _ => Freshness { reason, ..self.freshness.clone() },
                };
                self.adopt();
            }
        }
    }

    /// Unreachable since start: the published health, to be marked stale.
    fn adopt(&mut self) {
        if self.target.is_none()
            && let Some((Some(last), _)) = &self.published
        {
            self.target = Some((last.health.clone(), last.session_epoch));
            self.freshness = last.freshness.stale_from(&self.freshness.reason);
        }
    }

    fn fail(&mut self, e: &NatsError) {
        if self.published.is_some() {
            warn!(data = DATA, error = %e, "NATS write failed; will reconcile from gateway-svc's state");
        }
        self.published = None;
        self.metrics.nats_failure(DATA);
        self.metrics.in_sync(DATA, false);
        let text = e.to_string();
        self.readiness.set(DATA, |k| {
            k.in_sync = false;
            k.last_error = Some(text);
        });
    }

    async fn sync(&mut self) -> Result<(), NatsError> {
        let Some((health, epoch)) = &self.target else { return Ok(()) };
        let Some((last, stream_seq)) = &self.published else { return Ok(()) };
        if last.as_ref().is_some_and(|l| &l.health == health && l.freshness == self.freshness) {
            return Ok(());
        }
        let change = HealthChange {
            data: DATA.into(),
            seq: last.as_ref().map_or(0, |l| l.seq) + 1,
            session_epoch: *epoch,
            as_of: rfc3339(std::time::SystemTime::now()),
            freshness: self.freshness.clone(),
            health: health.clone(),
        };
        let payload =
            serde_json::to_vec(&change).map_err(|e| NatsError::Failed { what: "encode", detail: e.to_string() })?;
        let subject = self.jet.subject(DATA, None);
        let (seq, duplicate) =
            self.jet.publish(subject.clone(), &change.message_id(), *stream_seq, payload.into()).await?;
        self.metrics.published(DATA, "HEALTH", duplicate);
        let mut status = serde_json::to_value(&change).unwrap_or_default();
        if let Some(o) = status.as_object_mut() {
            o.insert("subject".into(), subject.into());
            o.insert("stream_seq".into(), seq.into());
        }
        self.published = Some((Some(change), seq));
        let bucket = self.jet.names().status_bucket.clone();
        self.jet.kv_write(&bucket, vec![("health".into(), serde_json::to_vec(&status).ok().map(Into::into))]).await
    }

    async fn reconcile(&mut self) -> Result<(), NatsError> {
        self.jet.ensure().await?;
        let subject = self.jet.subject(DATA, None);
        let last = match self.jet.last(&subject).await? {
            Some((payload, seq)) => match serde_json::from_slice::<HealthChange>(&payload) {
                Ok(c) => (Some(c), seq),
                Err(e) => {
                    return Err(NatsError::Failed { what: "decode last message", detail: format!("{subject}: {e}") });
                }
            },
            None => (None, 0),
        };
        self.published = Some(last);
        self.adopt();
        self.sync().await?;
        info!(data = DATA, "in sync with NATS");
        self.metrics.in_sync(DATA, true);
        self.readiness.set(DATA, |k| {
            k.in_sync = true;
            k.last_error = None;
        });
        Ok(())
    }
}

impl Publisher for HealthPublisher {
    type Message = Option<pb::Health>;

    fn jet(&self) -> &Jet {
        &self.jet
    }

    async fn apply(&mut self, ev: Event<Option<pb::Health>>) -> Result<(), NatsError> {
        self.on_event(ev);
        if self.published.is_some() { self.sync().await } else { Ok(()) }
    }

    async fn catch_up(&mut self) -> Result<(), NatsError> {
        let r = self.reconcile().await;
        self.metrics.reconciled(DATA, r.is_ok());
        r
    }

    fn fail(&mut self, e: &NatsError) {
        HealthPublisher::fail(self, e);
    }
}

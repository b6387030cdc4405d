//! The publisher of one row kind (positions or account summary): applies gateway-svc's messages
//! to its [`Target`], and makes NATS equal to it, account by account. One task per kind, one
//! message at a time: the stream first, then the bucket, then the subject's status entry. Any
//! NATS failure drops the published view; it is rebuilt from NATS (bucket + each subject's last
//! message) and the difference to gateway-svc's state goes out as RESYNC messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::book::{Published, Target, Touched, Update, split};
use crate::config::RetrySettings;
use crate::jet::{Jet, KvWrite, NatsError};
use crate::metrics::Metrics;
use crate::model::{Change, ChangeKind, Row, SubjectStatus, token, untoken};
use crate::ops::Readiness;
use crate::publisher::{self, Publisher};
use crate::source::Event;

/// Publishes one row kind.
#[derive(Debug)]
pub struct RowsPublisher<R: Row> {
    data: &'static str,
    bucket: String,
    jet: Jet,
    target: Target<R>,
    published: BTreeMap<String, Published<R>>,
    /// `published` is what NATS holds (false after any failure, until reconciled).
    loaded: bool,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

impl<R: Row> RowsPublisher<R> {
    /// A publisher of `data` (`positions` or `summary`) into `bucket`.
    pub fn new(data: &'static str, bucket: String, jet: Jet, metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Self {
        Self {
            data,
            bucket,
            jet,
            target: Target::default(),
            published: BTreeMap::new(),
            loaded: false,
            metrics,
            readiness,
        }
    }

    /// Runs until `cancel` (the message in flight is finished first) or the follower is gone.
    pub async fn run(mut self, rx: mpsc::Receiver<Event<Update<R>>>, retry: RetrySettings, cancel: CancellationToken) {
        publisher::drive(&mut self, rx, retry, cancel).await;
        debug!(data = self.data, "publisher stopped");
    }

    fn on_event(&mut self, ev: Event<Update<R>>) -> Option<Touched> {
        match ev {
            Event::Message(u) if u.no_data() => {
                // A gateway-svc that has not synced yet: what NATS holds stays, marked stale.
                self.readiness.set(self.data, |k| k.gateway_connected = true);
                self.on_lost(&format!("gateway-svc has no data yet: {}", u.freshness.reason))
            }
            Event::Message(u) => {
                self.readiness.set(self.data, |k| {
                    k.gateway_connected = true;
                    k.has_data = true;
                });
                Some(self.target.apply(u))
            }
            Event::Lost(reason) => {
                self.readiness.set(self.data, |k| k.gateway_connected = false);
                self.on_lost(&reason)
            }
        }
    }

    fn on_lost(&mut self, reason: &str) -> Option<Touched> {
        let changed = self.target.lose(reason);
        if !self.target.ready && self.loaded {
            self.target.adopt(&self.published);
            return self.target.ready.then(Touched::all);
        }
        changed.then_some(Touched { accounts: None, hint: ChangeKind::Freshness })
    }

    fn fail(&mut self, e: &NatsError) {
        if self.loaded {
            warn!(data = self.data, error = %e, "NATS write failed; will reconcile from gateway-svc's state");
        } else {
            debug!(data = self.data, error = %e, "reconciliation failed; retrying");
        }
        self.loaded = false;
        self.metrics.nats_failure(self.data);
        self.metrics.in_sync(self.data, false);
        let text = e.to_string();
        self.readiness.set(self.data, |k| {
            k.in_sync = false;
            k.last_error = Some(text);
        });
    }

    /// Makes NATS equal to the target for the touched accounts.
    async fn sync(&mut self, touched: &Touched) -> Result<(), NatsError> {
        for account in self.target.accounts(touched, &self.published) {
            if !self.published.contains_key(&account) {
                // An account NATS has not been asked about since the last reload: its subject may
                // still have messages (its rows all removed before, say).
                // The bucket has none of its rows (every account with rows was loaded).
                let p = self.load_account(&account, BTreeMap::new(), None).await?;
                self.published.insert(account.clone(), p);
            }
            let Some(published) = self.published.get(&account) else { continue };
            let Some(change) = self.target.change_for(self.data, &account, published, touched.hint) else { continue };
            for part in split(change, self.jet.payload_limit()) {
                self.publish(part).await?;
            }
        }
        Ok(())
    }

    /// One message: the stream, then the bucket, then the status entry.
    async fn publish(&mut self, change: Change<R>) -> Result<(), NatsError> {
        let published = self.published.entry(change.account.clone()).or_default();
        let subject = self.jet.subject(self.data, Some(&change.account));
        let payload =
            serde_json::to_vec(&change).map_err(|e| NatsError::Failed { what: "encode", detail: e.to_string() })?;
        let id = change.message_id();
        let (stream_seq, duplicate) =
            self.jet.publish(subject.clone(), &id, published.stream_seq, payload.into()).await?;
        published.record(&change, stream_seq);
        let kind = match change.kind {
            ChangeKind::Delta => "DELTA",
            ChangeKind::Resync => "RESYNC",
            ChangeKind::Freshness => "FRESHNESS",
        };
        self.metrics.published(self.data, kind, duplicate);
        debug!(data = self.data, account = %change.account, kind, seq = change.seq, stream_seq, duplicate, "published");
        let mut writes: Vec<KvWrite> = Vec::with_capacity(change.upserts.len() + change.removals.len());
        for r in &change.upserts {
            let value =
                serde_json::to_vec(r).map_err(|e| NatsError::Failed { what: "encode", detail: e.to_string() })?;
            writes.push((R::kv_key(&r.key()), Some(value.into())));
        }
        writes.extend(change.removals.iter().map(|k| (R::kv_key(k), None)));
        self.metrics.kv_writes(self.data, change.upserts.len(), change.removals.len());
        self.jet.kv_write(&self.bucket, writes).await?;
        let status = self.status(&change.account);
        self.jet.kv_write(&self.jet.names().status_bucket.clone(), vec![status]).await
    }

    fn status(&self, account: &str) -> KvWrite {
        let key = format!("{}.{}", self.data, token(account));
        let value = self.published.get(account).map(|p| SubjectStatus {
            subject: self.jet.subject(self.data, Some(account)),
            seq: p.seq,
            stream_seq: p.stream_seq,
            session_epoch: p.epoch,
            state_version: p.version,
            as_of: p.as_of.clone(),
            freshness: p.freshness.clone().unwrap_or_else(|| self.target.freshness.clone()),
            rows: p.rows.len(),
        });
        (key, value.and_then(|v| serde_json::to_vec(&v).ok()).map(Into::into))
    }

    async fn last(&self, account: &str) -> Result<Option<(Change<R>, u64)>, NatsError> {
        let subject = self.jet.subject(self.data, Some(account));
        let Some((payload, stream_seq)) = self.jet.last(&subject).await? else { return Ok(None) };
        match serde_json::from_slice::<Change<R>>(&payload) {
            Ok(c) => Ok(Some((c, stream_seq))),
            Err(e) => Err(NatsError::Failed { what: "decode last message", detail: format!("{subject}: {e}") }),
        }
    }

    /// What NATS holds for one account: the bucket's rows with the subject's last message
    /// applied again. The bucket is repaired to match (a stop or failure between stream and
    /// bucket, or a bucket lost while the stream was kept), so that the bucket equals the
    /// published state before anything else is published.
    async fn load_account(
        &self,
        account: &str,
        in_bucket: BTreeMap<R::Key, R>,
        status: Option<&SubjectStatus>,
    ) -> Result<Published<R>, NatsError> {
        let mut p = Published::rebuild(in_bucket.clone(), self.last(account).await?);
        if p.seq == 0
            && let Some(s) = status
        {
            // The stream no longer has this subject (max_age, or a new stream): keep counting.
            p.seq = s.seq;
            p.freshness = Some(s.freshness.clone());
        }
        let mut writes: Vec<KvWrite> = Vec::new();
        for (k, r) in &p.rows {
            if in_bucket.get(k) != Some(r) {
                writes.push((R::kv_key(k), serde_json::to_vec(r).ok().map(Into::into)));
            }
        }
        writes.extend(in_bucket.keys().filter(|k| !p.rows.contains_key(*k)).map(|k| (R::kv_key(k), None)));
        if !writes.is_empty() {
            info!(data = self.data, account = %account, keys = writes.len(), "bucket repaired from the stream's last message");
            self.jet.kv_write(&self.bucket, writes).await?;
        }
        Ok(p)
    }

    /// Rebuilds the published view from NATS, repairs the bucket where it lags the stream, and
    /// publishes whatever differs from gateway-svc's state.
    async fn reconcile(&mut self) -> Result<(), NatsError> {
        let started = Instant::now();
        let result = self.reconcile_inner().await;
        self.metrics.reconciled(self.data, result.is_ok());
        if result.is_ok() {
            info!(
                data = self.data,
                accounts = self.published.len(),
                ms = started.elapsed().as_millis() as u64,
                "in sync with NATS"
            );
        }
        result
    }

    async fn reconcile_inner(&mut self) -> Result<(), NatsError> {
        self.jet.ensure().await?;
        let status_bucket = self.jet.names().status_bucket.clone();
        let mut rows: BTreeMap<String, BTreeMap<R::Key, R>> = BTreeMap::new();
        for (key, value) in self.jet.kv_load(&self.bucket).await? {
            match serde_json::from_slice::<R>(&value) {
                Ok(r) => {
                    let k = r.key();
                    rows.entry(R::account(&k).to_owned()).or_default().insert(k, r);
                }
                Err(e) => {
                    warn!(data = self.data, key, error = %e, "unreadable row in the bucket; it will be rewritten")
                }
            }
        }
        let prefix = format!("{}.", self.data);
        let mut statuses: BTreeMap<String, SubjectStatus> = BTreeMap::new();
        for (key, value) in self.jet.kv_load(&status_bucket).await? {
            if let Some(account) = key.strip_prefix(&prefix).and_then(untoken)
                && let Ok(s) = serde_json::from_slice::<SubjectStatus>(&value)
            {
                statuses.insert(account, s);
            }
        }
        let accounts: Vec<String> = rows
            .keys()
            .chain(statuses.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut published = BTreeMap::new();
        for account in accounts {
            let in_bucket = rows.remove(&account).unwrap_or_default();
            let p = self.load_account(&account, in_bucket, statuses.get(&account)).await?;
            published.insert(account, p);
        }
        self.published = published;
        self.loaded = true;
        self.target.adopt(&self.published);
        if self.target.ready {
            self.sync(&Touched::all()).await?;
        }
        let statuses: Vec<KvWrite> =
            self.published.keys().map(|a| self.status(a)).filter(|(_, v)| v.is_some()).collect();
        self.jet.kv_write(&status_bucket, statuses).await?;
        self.metrics.in_sync(self.data, true);
        self.readiness.set(self.data, |k| {
            k.in_sync = true;
            k.last_error = None;
        });
        Ok(())
    }
}

impl<R: Row> Publisher for RowsPublisher<R> {
    type Message = Update<R>;

    fn jet(&self) -> &Jet {
        &self.jet
    }

    async fn apply(&mut self, ev: Event<Update<R>>) -> Result<(), NatsError> {
        let touched = self.on_event(ev);
        match touched.filter(|_| self.loaded && self.target.ready) {
            Some(touched) => self.sync(&touched).await,
            None => Ok(()),
        }
    }

    async fn catch_up(&mut self) -> Result<(), NatsError> {
        self.reconcile().await
    }

    fn fail(&mut self, e: &NatsError) {
        RowsPublisher::fail(self, e);
    }
}

//! `grpc.health.v1.Health`, answered from the session's health watch.
//!
//! Two names are known: `""` (the process: SERVING until shutdown starts) and
//! `gateway.v1.GatewayService` (the upstream session: SERVING only while it is ready). Watch
//! streams end when the service shuts down, after a last NOT_SERVING; a stream that stayed open
//! would hold tonic's graceful shutdown until the grace ran out. A stream whose health watch
//! closed ends the same way, alone: it never stops the service.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthApi, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::health::Health;
use crate::state::State;

/// The service, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheck {
    state: Arc<State>,
    shutdown: CancellationToken,
}

/// Which of the known names a request asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Process,
    Session,
    Unknown,
}

impl Target {
    fn of(service: &str) -> Self {
        match service {
            "" => Target::Process,
            gateway_proto::SERVICE_NAME => Target::Session,
            _ => Target::Unknown,
        }
    }

    fn status(self, health: &Health, stopping: bool) -> ServingStatus {
        match self {
            _ if stopping => ServingStatus::NotServing,
            Target::Process => ServingStatus::Serving,
            Target::Session if health.is_ready() => ServingStatus::Serving,
            Target::Session => ServingStatus::NotServing,
            Target::Unknown => ServingStatus::ServiceUnknown,
        }
    }
}

impl HealthCheck {
    /// The grpc.health.v1 server for `state`, ending its watches on `shutdown`.
    pub(crate) fn server(state: Arc<State>, shutdown: CancellationToken) -> HealthServer<Self> {
        HealthServer::new(Self { state, shutdown })
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl HealthApi for HealthCheck {
    type WatchStream = WatchStream;

    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        let target = Target::of(&service);
        if target == Target::Unknown {
            return Err(Status::not_found(format!("unknown service {service:?}")));
        }
        let status = target.status(&self.state.health(), self.shutdown.is_cancelled());
        Ok(Response::new(HealthCheckResponse { status: status as i32 }))
    }

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<WatchStream>, Status> {
        let target = Target::of(&request.into_inner().service);
        let watcher = Watcher {
            target,
            rx: self.state.health_watch(),
            shutdown: self.shutdown.clone(),
            last: None,
            closed: false,
            done: false,
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(watcher, Watcher::next))))
    }
}

/// One Watch call: sends the status whenever it changes, and a last NOT_SERVING at shutdown.
struct Watcher {
    target: Target,
    rx: watch::Receiver<Arc<Health>>,
    shutdown: CancellationToken,
    last: Option<ServingStatus>,
    /// The health watch's sender is gone: this Watch ends as at shutdown. The service-wide
    /// token is never cancelled from here: one stream ending must not stop the service.
    closed: bool,
    done: bool,
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<HealthCheckResponse, Status>, Self)> {
        loop {
            if self.done {
                return None;
            }
            self.done = self.closed || self.shutdown.is_cancelled();
            let status = self.target.status(&self.rx.borrow_and_update(), self.done);
            if self.last != Some(status) {
                self.last = Some(status);
                return Some((Ok(HealthCheckResponse { status: status as i32 }), self));
            }
            if self.done {
                return None;
            }
            // Both branches are cancellation safe (a token wait and a watch change).
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {}
                // No sender: nothing can change any more, so this Watch ends (after a last
                // NOT_SERVING), and only this one.
                changed = self.rx.changed() => self.closed = changed.is_err(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::health::SessionState;

    async fn watch(check: &HealthCheck, service: &str) -> WatchStream {
        let req = Request::new(HealthCheckRequest { service: service.into() });
        check.watch(req).await.expect("watch starts").into_inner()
    }

    async fn next_status(stream: &mut WatchStream) -> Option<ServingStatus> {
        let within = crate::testing::patience(std::time::Duration::from_secs(5));
        let item = tokio::time::timeout(within, stream.next()).await.expect("in time");
        item.map(|r| r.expect("ok").status())
    }

    #[tokio::test]
    async fn watch_follows_the_session_and_ends_at_shutdown() {
        let state = crate::state::StateWriter::new("127.0.0.1:1", 1);
        let shutdown = CancellationToken::new();
        let check = HealthCheck { state: state.reader(), shutdown: shutdown.clone() };
        let mut session = watch(&check, gateway_proto::SERVICE_NAME).await;
        let mut process = watch(&check, "").await;
        assert_eq!(next_status(&mut session).await, Some(ServingStatus::NotServing));
        assert_eq!(next_status(&mut process).await, Some(ServingStatus::Serving));
        state.update_health(|h| h.state = SessionState::Ready);
        assert_eq!(next_status(&mut session).await, Some(ServingStatus::Serving));
        shutdown.cancel();
        assert_eq!(next_status(&mut session).await, Some(ServingStatus::NotServing));
        assert_eq!(next_status(&mut session).await, None, "the stream ends at shutdown");
        assert_eq!(next_status(&mut process).await, Some(ServingStatus::NotServing));
        assert_eq!(next_status(&mut process).await, None);
    }

    #[tokio::test]
    async fn a_watch_whose_health_sender_is_gone_ends_alone() {
        let state = crate::state::StateWriter::new("127.0.0.1:1", 1);
        state.update_health(|h| h.state = SessionState::Ready);
        let shutdown = CancellationToken::new();
        let check = HealthCheck { state: state.reader(), shutdown: shutdown.clone() };
        let mut session = watch(&check, gateway_proto::SERVICE_NAME).await;
        assert_eq!(next_status(&mut session).await, Some(ServingStatus::Serving));
        // The session's writer (and with it the health sender) goes away.
        drop(state);
        assert_eq!(next_status(&mut session).await, Some(ServingStatus::NotServing), "a last NOT_SERVING");
        assert_eq!(next_status(&mut session).await, None, "then that Watch ends");
        assert!(!shutdown.is_cancelled(), "one Watch ending never stops the service");
    }

    #[tokio::test]
    async fn unknown_names_are_not_found_on_check_and_unknown_on_watch() {
        let check = HealthCheck {
            state: crate::state::StateWriter::new("127.0.0.1:1", 1).reader(),
            shutdown: CancellationToken::new(),
        };
        let err = check.check(Request::new(HealthCheckRequest { service: "nope".into() })).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        let mut w = watch(&check, "nope").await;
        assert_eq!(next_status(&mut w).await, Some(ServingStatus::ServiceUnknown));
    }
}

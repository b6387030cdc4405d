//! The one place gRPC calls are recorded: a tower layer around `gateway.v1.GatewayService`
//! (outside its bearer-token interceptor, inside tonic's load shedding, concurrency limit and
//! server-side deadline).
//!
//! - A unary call is timed from the request until its status is sent (trailers, or a
//!   trailers-only error) and observed in `ibgw_grpc_server_handling_seconds{method,code}`.
//! - A stream is opened when the request arrives (`ibgw_grpc_streams_opened_total`, and
//!   `ibgw_grpc_streams_open` + 1) and closed with its status (`ibgw_grpc_streams_closed_total`,
//!   `ibgw_grpc_streams_open` − 1): at once when it is refused, when the service ends it, or
//!   when its client goes away.
//! - A call that ends before the service sent a status, because the client cancelled it or the
//!   server-side deadline cut it, is recorded as `CANCELLED`, the status tonic reports for both.
//! - Method names the service does not have are not recorded (they would be unbounded labels).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::server::NamedService;
use tower::{Layer, Service};

use crate::metrics::{CODE_ABANDONED, RpcKind, code_name, rpc_method};
use crate::state::State;

/// Records every call of the service it wraps into that service's own [`crate::metrics::Metrics`].
#[derive(Debug, Clone)]
pub(crate) struct MetricsLayer {
    state: Arc<State>,
}

impl MetricsLayer {
    /// A layer recording into `state.metrics`.
    pub(crate) fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered { inner, state: Arc::clone(&self.state) }
    }
}

/// A service whose calls are recorded.
#[derive(Debug, Clone)]
pub(crate) struct Metered<S> {
    inner: S,
    state: Arc<State>,
}

impl<S: NamedService> NamedService for Metered<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Metered<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // Started before the inner call: dropping this future (client gone, deadline) drops
        // the call, which records it as abandoned.
        let call = Call::start(&self.state, request.uri().path());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let Some(mut call) = call else { return Ok(response.map(Body::new)) };
            // A trailers-only response (an error before any message) has its status here.
            if let Some(code) = status_code(response.headers()) {
                call.finish(code);
                return Ok(response.map(Body::new));
            }
            Ok(response.map(|body| {
                let inner = Body::new(body);
                if inner.is_end_stream() {
                    // No message and no status: the client sees a missing status as UNKNOWN.
                    call.finish("UNKNOWN");
                    return inner;
                }
                Body::new(MeteredBody { inner, call: Some(call) })
            }))
        })
    }
}

/// One call being recorded; recorded exactly once, as abandoned if dropped before a status.
struct Call {
    state: Arc<State>,
    method: &'static str,
    kind: RpcKind,
    started: Instant,
    done: bool,
}

impl Call {
    fn start(state: &Arc<State>, path: &str) -> Option<Self> {
        let (method, kind) = rpc_method(path.rsplit('/').next()?)?;
        if kind == RpcKind::Stream {
            state.metrics.stream_opened(method);
        }
        Some(Self { state: Arc::clone(state), method, kind, started: Instant::now(), done: false })
    }

    fn finish(&mut self, code: &'static str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let metrics = &self.state.metrics;
        match self.kind {
            RpcKind::Unary => metrics.unary_call(self.method, code, self.started.elapsed().as_secs_f64()),
            RpcKind::Stream => metrics.stream_closed(self.method, code),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(CODE_ABANDONED);
    }
}

/// The `grpc-status` of headers or trailers, as a status name.
fn status_code(headers: &http::HeaderMap) -> Option<&'static str> {
    headers.get("grpc-status").map(|v| code_name(tonic::Code::from_bytes(v.as_bytes())))
}

/// A response body that records its call when the status goes out (or the body is dropped).
struct MeteredBody {
    inner: Body,
    call: Option<Call>,
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| status_code(t).unwrap_or("UNKNOWN")),
            Poll::Ready(Some(Err(status))) => Some(code_name(status.code())),
            Poll::Ready(None) => Some("UNKNOWN"),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(mut call) = this.call.take()
        {
            call.finish(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_dropped_call_is_recorded_once_as_cancelled() {
        let state = crate::state::StateWriter::new("127.0.0.1:1", 1).reader();
        let call = Call::start(&state, "/gateway.v1.GatewayService/WatchHealth").expect("a known method");
        let text = state.metrics.render();
        assert_eq!(value(&text, r#"ibgw_grpc_streams_open{method="WatchHealth"}"#), Some(1.0), "{text}");
        drop(call);
        let text = state.metrics.render();
        assert_eq!(value(&text, r#"ibgw_grpc_streams_open{method="WatchHealth"}"#), Some(0.0), "{text}");
        let closed = r#"ibgw_grpc_streams_closed_total{method="WatchHealth",code="CANCELLED"}"#;
        assert_eq!(value(&text, closed), Some(1.0), "{text}");

        let mut call = Call::start(&state, "/gateway.v1.GatewayService/GetHealth").expect("a known method");
        call.finish("OK");
        drop(call);
        let text = state.metrics.render();
        let count = |code: &str| {
            value(&text, &format!(r#"ibgw_grpc_server_handling_seconds_count{{method="GetHealth",code="{code}"}}"#))
        };
        assert_eq!((count("OK"), count("CANCELLED")), (Some(1.0), None), "{text}");
    }

    #[test]
    fn unknown_methods_are_not_recorded() {
        let state = crate::state::StateWriter::new("127.0.0.1:1", 1).reader();
        assert!(Call::start(&state, "/gateway.v1.GatewayService/PlaceOrder").is_none());
        assert!(Call::start(&state, "/").is_none());
    }
}

//! What every thin client needs to reach gateway-svc: a channel with timeouts and, when the
//! service requires it, the bearer token on every call. Plus [`source_chain`] (from `ibgw-kit`), the one way
//! errors are printed on one line.

use ibgw_kit::source_chain;
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use gateway_proto::pb::gateway_service_client::GatewayServiceClient;

/// Default address of a local gateway-svc.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// A client of `gateway.v1.GatewayService` that sends the configured token.
pub type Client = GatewayServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer …` when a token is configured.
#[derive(Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Bearer(<redacted>)" } else { "Bearer(none)" })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not a URL.
    #[error("bad gateway address {0:?} (expected e.g. {DEFAULT_ADDR})")]
    BadAddress(String),
    /// The token has characters a header cannot carry.
    #[error("the token contains characters not allowed in a header")]
    BadToken,
    /// Nothing answered.
    #[error("gateway-svc unreachable: {0}")]
    Unreachable(String),
}

/// An endpoint for `addr` (`http://host:port`; `host:port` is accepted too).
pub fn endpoint(addr: &str, connect_timeout: Duration) -> Result<Endpoint, ConnectError> {
    let url = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    Ok(Endpoint::from_shared(url)
        .map_err(|_| ConnectError::BadAddress(addr.to_owned()))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true))
}

/// Connects now (fails fast when nothing listens).
pub async fn connect(addr: &str, token: Option<&str>, connect_timeout: Duration) -> Result<Client, ConnectError> {
    let bearer = bearer(token)?;
    let channel =
        endpoint(addr, connect_timeout)?.connect().await.map_err(|e| ConnectError::Unreachable(source_chain(&e)))?;
    Ok(GatewayServiceClient::with_interceptor(channel, bearer))
}

/// Like [`connect`], over TLS, trusting the PEM certificate authority `ca_pem` (the server's
/// name must match the address's host).
pub async fn connect_tls(
    addr: &str,
    token: Option<&str>,
    ca_pem: &[u8],
    connect_timeout: Duration,
) -> Result<Client, ConnectError> {
    let bearer = bearer(token)?;
    let url = if addr.contains("://") { addr.to_owned() } else { format!("https://{addr}") };
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca_pem));
    let channel = endpoint(&url, connect_timeout)?
        .tls_config(tls)
        .map_err(|e| ConnectError::Unreachable(source_chain(&e)))?
        .connect()
        .await
        .map_err(|e| ConnectError::Unreachable(source_chain(&e)))?;
    Ok(GatewayServiceClient::with_interceptor(channel, bearer))
}

/// A client whose connection is made on first use and re-made after failures: for long-lived
/// clients that must survive gateway-svc restarts.
pub fn connect_lazy(addr: &str, token: Option<&str>, connect_timeout: Duration) -> Result<Client, ConnectError> {
    let bearer = bearer(token)?;
    Ok(GatewayServiceClient::with_interceptor(endpoint(addr, connect_timeout)?.connect_lazy(), bearer))
}

fn bearer(token: Option<&str>) -> Result<Bearer, ConnectError> {
    match token {
        None | Some("") => Ok(Bearer(None)),
        Some(t) => format!("Bearer {t}").parse().map(|v| Bearer(Some(v))).map_err(|_| ConnectError::BadToken),
    }
}

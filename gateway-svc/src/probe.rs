//! `gateway-svc health`: asks a running service over grpc.health.v1 whether the upstream session
//! is ready, for compose healthchecks and scripts. Exits 0 only when SERVING.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Why a health check could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not a valid URL.
    #[error("bad address {0}")]
    Address(String),
    /// No connection.
    #[error("cannot reach {addr}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        source: tonic::transport::Error,
    },
    /// The call failed.
    #[error("health check failed")]
    Call(#[from] tonic::Status),
}

/// Checks `service` ("" for the process) at `addr` (`http://host:port`).
pub async fn check(addr: &str, service: &str, timeout: Duration) -> Result<ServingStatus, ProbeError> {
    let endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(|_| ProbeError::Address(addr.to_owned()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|source| ProbeError::Connect { addr: addr.to_owned(), source })?;
    let reply = HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await?;
    Ok(reply.into_inner().status())
}

//! The one place where failures become gRPC status codes.

use tonic::Status;

/// Everything an RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No data has been synced from upstream yet.
    #[error("no data yet: {0}")]
    NotReady(String),
    /// The account is not managed by the upstream session.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// A filter is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The stream cap is reached.
    #[error("subscriber limit of {0} streams reached; retry later")]
    TooManySubscribers(usize),
    /// The service is stopping.
    #[error("shutting down")]
    ShuttingDown,
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let msg = e.to_string();
        match e {
            ApiError::NotReady(_) | ApiError::ShuttingDown => Status::unavailable(msg),
            ApiError::UnknownAccount(_) => Status::not_found(msg),
            ApiError::InvalidArgument(_) => Status::invalid_argument(msg),
            ApiError::TooManySubscribers(_) => Status::resource_exhausted(msg),
        }
    }
}

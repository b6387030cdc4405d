//! Bearer-token check for every `GatewayService` call, streams included.

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::config::Secret;

/// Builds the interceptor. Without a token every call passes (loopback-only deployments).
pub fn interceptor(token: Option<Secret>) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| match &token {
        None => Ok(req),
        Some(token) if presented(req.metadata()).is_some_and(|t| token.matches(t)) => Ok(req),
        // The presented value is never logged or echoed.
        Some(_) => Err(Status::unauthenticated("missing or wrong bearer token")),
    }
}

fn presented(md: &MetadataMap) -> Option<&str> {
    md.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(token: Option<&str>, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut f = interceptor(token.map(Secret::from));
        let mut req = Request::new(());
        if let Some(h) = header {
            req.metadata_mut().insert("authorization", h.parse().map_err(|_| tonic::Code::Internal)?);
        }
        f(req).map(drop).map_err(|s| s.code())
    }

    #[test]
    fn checks_the_bearer_token() {
        assert_eq!(call(None, None), Ok(()));
        assert_eq!(call(Some("t0k"), Some("Bearer t0k")), Ok(()));
        assert_eq!(call(Some("t0k"), Some("Bearer nope")), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(Some("t0k"), Some("t0k")), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(Some("t0k"), None), Err(tonic::Code::Unauthenticated));
    }
}

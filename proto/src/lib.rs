//! Generated `gateway.v1` messages, client and server, plus the descriptor set for reflection.
//! The source of truth is `proto/gateway/v1/gateway.proto`; nothing generated is committed.

/// `package gateway.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("gateway.v1");
}

/// Encoded `FileDescriptorSet` of `gateway.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gateway_descriptor");

pub mod encoded;

/// Full gRPC name of the service, as health checks and reflection spell it.
pub const SERVICE_NAME: &str = "gateway.v1.GatewayService";

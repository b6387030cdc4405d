//! The unary load generator's client: GetPositions with the response left undecoded.
//!
//! The load generator shares the machine's two cores with the servers it measures. Decoding a
//! response costs the client more for 6 positions (78 strings) than for an empty message, and
//! that cost would be charged to the server with the larger answer. Like h2load or wrk, this
//! client takes the response bytes as they are, so that both servers are measured by the same
//! client work; the bytes are checked against the first, decoded, answer instead.

use bytes::{Buf, Bytes};
use gateway_proto::pb;
use tonic::Status;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstEncoder;

const GET_POSITIONS: &str = "/gateway.v1.GatewayService/GetPositions";

/// GetPositions over one HTTP/2 connection, answers as raw bytes.
#[derive(Debug, Clone)]
pub struct RawCaller {
    grpc: Grpc<Channel>,
}

impl RawCaller {
    /// A caller on `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { grpc: Grpc::new(channel) }
    }

    /// One GetPositions call without a filter; the encoded response message.
    pub async fn get_positions(&mut self) -> Result<Bytes, Status> {
        self.grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let request = tonic::Request::new(pb::GetPositionsRequest::default());
        let path = PathAndQuery::from_static(GET_POSITIONS);
        Ok(self.grpc.unary(request, path, RawCodec).await?.into_inner())
    }
}

/// Encodes requests with prost; passes responses through.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = pb::GetPositionsRequest;
    type Decode = Bytes;
    type Encoder = ProstEncoder<pb::GetPositionsRequest>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(tonic::codec::BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

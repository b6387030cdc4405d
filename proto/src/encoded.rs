//! Responses encoded before they are sent, and the server that sends them.
//!
//! One position change published to 10,000 subscribers should be converted and encoded once, not
//! 10,000 times. An [`Encoded`] carries bytes that already are the protobuf encoding of a
//! response message, plus at most one varint field written per recipient: a stream's `seq`.
//! Protobuf allows a field to appear anywhere in an encoding and keeps the last occurrence of a
//! scalar, so the shared bytes followed by the recipient's field decode as one ordinary message.
//! Clients see exactly the [`crate::pb`] wire format.
//!
//! [`gateway_service_server`] is `gateway.v1.GatewayService` generated with [`Encoded`] as the
//! response of GetPositions, WatchPositions, GetAccountSummary and WatchAccountSummary (the
//! others keep their [`crate::pb`] types). Requests are decoded by prost as usual.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

// `pub mod gateway_service_server`: `gateway.v1.GatewayService` over pre-encoded data responses.
include!(concat!(env!("OUT_DIR"), "/gateway.v1.GatewayService.rs"));

/// A response message, already encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    body: Bytes,
    /// A varint field appended when sent: (field number, value).
    tail: Option<(u32, u64)>,
}

impl Encoded {
    /// Bytes that are a complete encoding of the response message.
    pub fn new(body: Bytes) -> Self {
        Self { body, tail: None }
    }

    /// Encodes `message` now.
    pub fn of(message: &impl prost::Message) -> Self {
        Self::new(Bytes::from(message.encode_to_vec()))
    }

    /// The same bytes followed by varint field `field` = `value` (which overrides any earlier
    /// occurrence of that field in the body). Cloning the body only bumps a reference count.
    pub fn with_varint(&self, field: u32, value: u64) -> Self {
        Self { body: self.body.clone(), tail: Some((field, value)) }
    }

    /// Writes the message as it goes on the wire.
    pub fn write_to(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.body);
        if let Some((field, value)) = self.tail {
            // Key: field number and wire type 0 (varint).
            prost::encoding::encode_varint(u64::from(field) << 3, buf);
            prost::encoding::encode_varint(value, buf);
        }
    }

    /// True when both carry the very same shared bytes (not merely equal ones).
    pub fn shares_body_with(&self, other: &Encoded) -> bool {
        self.body.as_ptr() == other.body.as_ptr() && self.body.len() == other.body.len()
    }

    /// The wire bytes as one buffer (for tests and tools; the server writes them directly).
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = Vec::with_capacity(self.body.len() + 16);
        self.write_to(&mut buf);
        Bytes::from(buf)
    }
}

/// Encodes [`Encoded`] responses by copying their bytes; decodes requests `U` with prost.
#[derive(Debug)]
pub struct EncodedCodec<U> {
    _request: PhantomData<fn() -> U>,
}

impl<U> Default for EncodedCodec<U> {
    fn default() -> Self {
        Self { _request: PhantomData }
    }
}

impl<U: prost::Message + Default + Send + 'static> Codec for EncodedCodec<U> {
    type Encode = Encoded;
    type Decode = U;
    type Encoder = EncodedEncoder;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

/// The encoding half of [`EncodedCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodedEncoder;

/// Initial encode buffer of a response stream. tonic keeps one per open stream for its whole
/// life; its default (8 KiB) made up most of a stream's memory, while a typical message is a few
/// hundred bytes. A larger message grows the buffer as needed.
const STREAM_BUFFER: usize = 1024;

/// Encoded bytes are split off and handed to HTTP/2 once this many are ready (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

impl Encoder for EncodedEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write_to(buf);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(STREAM_BUFFER, YIELD_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::pb;

    #[test]
    fn a_shared_body_with_a_per_recipient_seq_decodes_as_the_full_message() {
        let full = pb::WatchPositionsResponse {
            kind: pb::UpdateKind::Delta as i32,
            upserts: vec![pb::Position {
                account: "DU1".into(),
                con_id: 265598,
                symbol: "AAPL".into(),
                ..Default::default()
            }],
            session_epoch: 3,
            state_version: 41,
            ..Default::default()
        };
        // The body is encoded without seq (0 is not written in proto3); each recipient adds its own.
        let shared = Encoded::of(&full);
        for seq in [1u64, 2, 300, u64::MAX] {
            let decoded = pb::WatchPositionsResponse::decode(shared.with_varint(6, seq).to_bytes()).expect("decodes");
            assert_eq!(decoded, pb::WatchPositionsResponse { seq, ..full.clone() });
        }
        // A later occurrence wins, so a tail can also override a field the body carries.
        let with_kind = Encoded::of(&full).with_varint(1, pb::UpdateKind::Resync as i32 as u64);
        let decoded = pb::WatchPositionsResponse::decode(with_kind.to_bytes()).expect("decodes");
        assert_eq!(decoded.kind, pb::UpdateKind::Resync as i32);
    }
}

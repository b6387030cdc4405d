//! The server side of a connection's opening, without I/O: the greeting and the client's version
//! range, the answer (the negotiated version and the connection time), then START_API. The
//! caller owns the socket: it feeds the bytes it read into a buffer, writes the answer it is
//! handed, and gets the client id once the client has started.

use bytes::BytesMut;

use crate::frame::{self, Codec, FrameError};
use crate::request::{DecodeError, Request, decode_request};

/// Where an opening stands.
#[derive(Debug)]
pub struct Handshake {
    server_max: u32,
    /// The negotiated version and codec, once answered.
    negotiated: Option<(u32, Codec)>,
}

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read more bytes into the buffer and call again.
    NeedMore,
    /// Write `frame` (the answer to the version range), then call again.
    Answer {
        /// The negotiated version.
        version: u32,
        /// The codec it implies for the rest of the connection.
        codec: Codec,
        /// The answer, framed.
        frame: Vec<u8>,
    },
    /// START_API arrived: the client is started with this id.
    Started {
        /// The client id it asked for.
        client_id: i32,
    },
}

/// Why an opening fails. A gateway closes the connection in every case.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// Bytes that are not the TWS protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The client's range and ours do not meet; a gateway closes without an answer.
    #[error("no common version with client range {min}..{max}")]
    NoCommonVersion {
        /// The client's minimum.
        min: u32,
        /// The client's maximum.
        max: u32,
    },
    /// The first request could not be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The first request was not START_API.
    #[error("{0} before START_API")]
    NotStarted(String),
}

impl Handshake {
    /// An opening for a server that speaks versions up to `server_max`.
    pub fn new(server_max: u32) -> Self {
        Self { server_max, negotiated: None }
    }

    /// Takes what it can from `buf` (the rest stays there) and says what to do next.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, HandshakeError> {
        let Some((version, codec)) = self.negotiated else {
            let Some(range) = frame::take_handshake(buf)? else { return Ok(Step::NeedMore) };
            let version = range
                .negotiate(self.server_max)
                .ok_or(HandshakeError::NoCommonVersion { min: range.min, max: range.max })?;
            let codec = Codec::for_version(version);
            self.negotiated = Some((version, codec));
            let mut answer = Vec::new();
            frame::put_frame(&mut answer, &frame::server_hello(version));
            return Ok(Step::Answer { version, codec, frame: answer });
        };
        let Some(body) = frame::take_frame(buf)? else { return Ok(Step::NeedMore) };
        match decode_request(&body, codec, version)? {
            Request::StartApi { client_id } => Ok(Step::Started { client_id }),
            other => Err(HandshakeError::NotStarted(other.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buf: &mut BytesMut, req: &Request) {
        let mut framed = Vec::new();
        frame::put_frame(&mut framed, &req.encode_text(178));
        buf.extend_from_slice(&framed);
    }

    #[test]
    fn an_opening_answers_then_starts() {
        let mut hs = Handshake::new(frame::SERVER_MAX_VERSION);
        let mut buf = BytesMut::from(&frame::client_hello("v100..178")[..3]);
        assert_eq!(hs.step(&mut buf), Ok(Step::NeedMore));
        buf = BytesMut::from(&frame::client_hello("v100..178")[..]);
        let Ok(Step::Answer { version: 178, codec: Codec::Text, frame: answer }) = hs.step(&mut buf) else {
            panic!("an answer at 178")
        };
        assert_eq!(frame::parse_server_hello(&answer[4..]).map(|(v, _)| v), Some(178));
        assert_eq!(hs.step(&mut buf), Ok(Step::NeedMore));
        push(&mut buf, &Request::StartApi { client_id: 9 });
        assert_eq!(hs.step(&mut buf), Ok(Step::Started { client_id: 9 }));
    }

    #[test]
    fn openings_fail_as_at_a_gateway() {
        let mut buf = BytesMut::from(&frame::client_hello("v213..226")[..]);
        assert_eq!(Handshake::new(200).step(&mut buf), Err(HandshakeError::NoCommonVersion { min: 213, max: 226 }));
        let mut hs = Handshake::new(226);
        let mut buf = BytesMut::from(&frame::client_hello("v100..178")[..]);
        assert!(matches!(hs.step(&mut buf), Ok(Step::Answer { .. })));
        push(&mut buf, &Request::Positions);
        assert_eq!(hs.step(&mut buf), Err(HandshakeError::NotStarted("positions".into())));
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(Handshake::new(226).step(&mut buf), Err(HandshakeError::Frame(FrameError::BadGreeting)));
    }
}

//! A raw TWS API client speaking the text codec, for tests that must see what a real client
//! library would hide (refusals, stalls, invalid frames, exact field counts).
//!
//! It speaks only through `tws-wire`: requests are [`Request`] values, replies are decoded into
//! [`Reply`] values, so no message id or field position is spelled here or in the tests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tws_wire::{Codec, Reply, Request, frame, reply, text};

/// The version range ib_async announces; the simulator answers 178, text codec.
pub const TEXT_RANGE: &str = "v100..178";
/// The version a [`TEXT_RANGE`] handshake negotiates.
pub const TEXT_VERSION: u32 = 178;
/// The last notice of the built-in scenario's start-up sequence: the sec-def farm is OK.
pub const SECDEF_FARM_OK: i32 = tws_wire::notice::code::SECDEF_FARM_OK;

/// What a read produced.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// The handshake answer: the negotiated server version.
    Hello(u32),
    /// One reply, decoded at the negotiated version.
    Reply(Reply),
    /// A frame that is not a reply a client at the negotiated version reads exactly: it does
    /// not decode, or it carries a different number of fields than `tws-wire` encodes for the
    /// reply it decodes to (a client library unpacking fields would trip over it). Its fields.
    Garbled(Vec<String>),
    /// The peer closed.
    Eof,
    /// Nothing arrived in time.
    Silent,
    /// The peer sent a length prefix no client accepts (below 4 or above 16 MiB).
    BadLength(u32),
}

#[derive(Debug)]
pub struct WireClient {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The negotiated server version (0 before the handshake): requests are encoded and replies
    /// decoded at it.
    version: u32,
}

impl WireClient {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self { stream: TcpStream::connect(addr).await?, buf: BytesMut::new(), version: 0 })
    }

    /// Connects with a receive buffer of about `bytes` (the kernel rounds it), so that a client
    /// that stops reading makes the server's writes block after little data.
    pub async fn connect_with_receive_buffer(addr: SocketAddr, bytes: u32) -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        Ok(Self { stream: socket.connect(addr).await?, buf: BytesMut::new(), version: 0 })
    }

    /// The negotiated server version (0 before a successful [`WireClient::hello`]).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Sends the greeting and version range; returns the server's answer, [`Read::Hello`] with
    /// the negotiated version when it is one (which the client then speaks).
    pub async fn hello(&mut self, range: &str) -> Read {
        if self.stream.write_all(&frame::client_hello(range)).await.is_err() {
            return Read::Eof;
        }
        match self.read_body(Duration::from_secs(2)).await {
            Ok(body) => match frame::parse_server_hello(&body) {
                Some((version, _time)) => {
                    self.version = version;
                    Read::Hello(version)
                }
                None => Read::Garbled(text::split(&body)),
            },
            Err(other) => other,
        }
    }

    /// Full text handshake at [`TEXT_RANGE`] and START_API; returns the replies up to the last
    /// farm notice ([`SECDEF_FARM_OK`]).
    pub async fn start(addr: SocketAddr, client_id: i32) -> (Self, Vec<Reply>) {
        Self::connect(addr).await.expect("connect").start_as(client_id).await
    }

    /// [`WireClient::start`] on a connected client.
    pub async fn start_as(self, client_id: i32) -> (Self, Vec<Reply>) {
        let mut c = self;
        let hello = c.hello(TEXT_RANGE).await;
        assert_eq!(hello, Read::Hello(TEXT_VERSION), "handshake reply");
        c.request(&Request::StartApi { client_id }).await;
        let mut replies = Vec::new();
        loop {
            match c.read(Duration::from_secs(2)).await {
                Read::Reply(r) => {
                    let done = matches!(r, Reply::Error { code: SECDEF_FARM_OK, .. });
                    replies.push(r);
                    if done {
                        break;
                    }
                }
                other => panic!("start-up ended early: {other:?} after {replies:?}"),
            }
        }
        (c, replies)
    }

    /// Sends `req` as a text client at the negotiated version does.
    pub async fn request(&mut self, req: &Request) {
        self.send_raw_frame(&req.encode_text(self.version)).await;
    }

    /// Writes already framed bytes as they are (many requests in one write).
    pub async fn send_raw_frames(&mut self, framed: &[u8]) {
        let _ = self.stream.write_all(framed).await;
    }

    /// Sends `body` as one frame, whatever it holds.
    pub async fn send_raw_frame(&mut self, body: &[u8]) {
        let mut out = Vec::with_capacity(4 + body.len());
        frame::put_frame(&mut out, body);
        let _ = self.stream.write_all(&out).await;
    }

    /// The next frame, decoded.
    pub async fn read(&mut self, within: Duration) -> Read {
        match self.read_body(within).await {
            Ok(body) => decode(&body, self.version),
            Err(other) => other,
        }
    }

    /// Everything until the peer's FIN (or a reset), unparsed, as fast as it arrives: what is
    /// buffered first, then the rest of the stream.
    pub async fn read_to_end(&mut self) -> BytesMut {
        let mut bytes = std::mem::take(&mut self.buf);
        while let Ok(n) = self.stream.read_buf(&mut bytes).await {
            if n == 0 {
                break;
            }
        }
        bytes
    }

    /// The next frame's body, or why there is none.
    async fn read_body(&mut self, within: Duration) -> Result<BytesMut, Read> {
        let deadline = tokio::time::Instant::now() + super::patience(within);
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if !(4..=0x00ff_ffff).contains(&len) {
                    return Err(Read::BadLength(len));
                }
                let len = len as usize;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    return Ok(self.buf.split_to(len));
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Read::Eof),
                Ok(Ok(_)) => {}
                Err(_) => return Err(Read::Silent),
            }
        }
    }

    /// Reads replies until one satisfies `pred`, returning it; panics on EOF, timeout or a
    /// garbled frame.
    pub async fn read_until(&mut self, within: Duration, pred: impl Fn(&Reply) -> bool) -> Reply {
        self.read_find(within, |r| pred(&r).then_some(r)).await
    }

    /// Reads replies until `pick` returns something for one, returning that; panics on EOF,
    /// timeout or a garbled frame.
    pub async fn read_find<T>(&mut self, within: Duration, mut pick: impl FnMut(Reply) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + super::patience(within);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Reply(r) => {
                    if let Some(v) = pick(r) {
                        return v;
                    }
                }
                other => panic!("expected a matching reply, got {other:?}"),
            }
        }
    }
}

/// A reply frame's body as a client at `version` reads it: [`Read::Reply`] only when it decodes
/// and has exactly the fields `tws-wire` encodes for that reply.
fn decode(body: &[u8], version: u32) -> Read {
    let fields = text::split(body);
    match reply::decode_text(body, version) {
        Ok(r) if text::split(&tws_wire::encode_reply(&r, Codec::Text, version)).len() == fields.len() => Read::Reply(r),
        _ => Read::Garbled(fields),
    }
}

/// `req` as the text codec encodes it at `version`, with every field after the message id
/// replaced by text that is not a number: a frame a gateway cannot read.
pub fn garbled(req: &Request, version: u32) -> Vec<u8> {
    let mut fields = text::split(&req.encode_text(version));
    for f in fields.iter_mut().skip(1) {
        *f = "not-a-number".into();
    }
    text::join(&fields)
}

/// A reply's error code, if it is an error or notice.
pub fn error_code(r: &Reply) -> Option<i32> {
    match r {
        Reply::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Matches an error or notice with `code`.
pub fn is_error(code: i32) -> impl Fn(&Reply) -> bool {
    move |r| error_code(r) == Some(code)
}

/// A data-farm notice (OK, broken, inactive), which can come at any time.
pub fn is_farm_notice(r: &Reply) -> bool {
    error_code(r).is_some_and(tws_wire::notice::is_farm)
}

/// Account-summary tags as a request carries them, from `"A,B"`.
pub fn tags(list: &str) -> Vec<String> {
    list.split(',').map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_only_with_the_fields_a_client_unpacks() {
        let pnl = Reply::Pnl { req_id: 1, daily: 1.5, unrealized: -2.0, realized: 0.0 };
        let body = tws_wire::encode_reply(&pnl, Codec::Text, TEXT_VERSION);
        assert_eq!(decode(&body, TEXT_VERSION), Read::Reply(pnl));
        let mut longer = body.clone();
        longer.extend_from_slice(b"extra\0");
        assert!(
            matches!(decode(&longer, TEXT_VERSION), Read::Garbled(f) if f.last().map(String::as_str) == Some("extra"))
        );
        let shorter = text::join(&text::split(&body)[..3]);
        assert!(matches!(decode(&shorter, TEXT_VERSION), Read::Garbled(_)));
        assert!(matches!(decode(b"not a reply\0", TEXT_VERSION), Read::Garbled(_)));
    }

    #[test]
    fn garbled_requests_keep_only_the_message_id() {
        let req = Request::CancelPnl { req_id: 3 };
        let body = garbled(&req, TEXT_VERSION);
        let fields = text::split(&body);
        assert_eq!(fields[0], text::split(&req.encode_text(TEXT_VERSION))[0]);
        assert!(fields[1..].iter().all(|f| f.parse::<f64>().is_err()), "{fields:?}");
        let decoded = tws_wire::decode_request(&body, Codec::Text, TEXT_VERSION);
        assert!(decoded.is_err(), "{decoded:?}");
    }
}

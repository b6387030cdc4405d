//! A raw TWS API client speaking the text codec, for tests that must see bytes a real client
//! library would hide (refusals, stalls, invalid frames, exact field counts).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a read produced.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// One text frame's fields.
    Frame(Vec<String>),
    /// The peer closed.
    Eof,
    /// Nothing arrived in time.
    Silent,
    /// The peer sent a length prefix no client accepts (below 4 or above 16 MiB).
    BadLength(u32),
}

pub struct WireClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl WireClient {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self { stream: TcpStream::connect(addr).await?, buf: BytesMut::new() })
    }

    /// Sends the greeting and version range; returns the server's version reply fields.
    pub async fn hello(&mut self, range: &str) -> Read {
        let mut out = b"API\0".to_vec();
        out.extend_from_slice(&(range.len() as u32).to_be_bytes());
        out.extend_from_slice(range.as_bytes());
        if self.stream.write_all(&out).await.is_err() {
            return Read::Eof;
        }
        self.read(Duration::from_secs(2)).await
    }

    /// Full text handshake at v100..178 and START_API; returns the frames up to the farm notices.
    pub async fn start(addr: SocketAddr, client_id: i32) -> (Self, Vec<Vec<String>>) {
        let mut c = Self::connect(addr).await.expect("connect");
        let hello = c.hello("v100..178").await;
        assert!(matches!(&hello, Read::Frame(f) if f[0] == "178"), "handshake reply {hello:?}");
        c.send(&["71", "2", &client_id.to_string(), ""]).await;
        let mut frames = Vec::new();
        loop {
            match c.read(Duration::from_secs(2)).await {
                Read::Frame(f) => {
                    let done = f[0] == "4" && f[3] == "2158";
                    frames.push(f);
                    if done {
                        break;
                    }
                }
                other => panic!("start-up ended early: {other:?} after {frames:?}"),
            }
        }
        (c, frames)
    }

    pub async fn send(&mut self, fields: &[&str]) {
        let body: Vec<u8> = fields.iter().flat_map(|f| f.bytes().chain(std::iter::once(0))).collect();
        self.send_raw_frame(&body).await;
    }

    pub async fn send_raw_frame(&mut self, body: &[u8]) {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        let _ = self.stream.write_all(&out).await;
    }

    pub async fn read(&mut self, within: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + super::patience(within);
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if !(4..=0x00ff_ffff).contains(&len) {
                    return Read::BadLength(len);
                }
                let len = len as usize;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    let body = self.buf.split_to(len);
                    let body = body.strip_suffix(b"\0").unwrap_or(&body);
                    let fields = body.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
                    return Read::Frame(fields);
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Eof,
                Ok(Ok(_)) => {}
                Err(_) => return Read::Silent,
            }
        }
    }

    /// Reads frames until one satisfies `pred`, returning it; panics on EOF or timeout.
    pub async fn read_until(&mut self, within: Duration, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + super::patience(within);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Frame(f) if pred(&f) => return f,
                Read::Frame(_) => {}
                other => panic!("expected a matching frame, got {other:?}"),
            }
        }
    }
}

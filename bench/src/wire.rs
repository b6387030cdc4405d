//! A raw TWS API client speaking the text codec (v100..178), for measuring ib-sim without any
//! client library's cost in the way: frames are split and their fields read in place.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::{Error, Result};

/// Incoming message ids of the text protocol used here.
const POSITION: &str = "61";
const POSITION_END: &str = "62";
const ERROR: &str = "4";
/// The last farm notice a simulator sends after START_API.
const LAST_STARTUP_NOTICE: &str = "2158";

/// A connected, started client.
#[derive(Debug)]
pub struct WireClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl WireClient {
    /// Connects, negotiates v100..178, sends START_API as `client_id` and reads the start-up
    /// messages.
    pub async fn start(addr: SocketAddr, client_id: i32, within: Duration) -> Result<WireClient> {
        let deadline = Instant::now() + within;
        let stream = TcpStream::connect(addr).await.map_err(|e| Error::setup("raw TWS connect", e))?;
        stream.set_nodelay(true).map_err(|e| Error::setup("raw TWS nodelay", e))?;
        let mut c = WireClient { stream, buf: BytesMut::with_capacity(64 * 1024) };
        let range = "v100..178";
        let mut hello = b"API\0".to_vec();
        hello.extend_from_slice(&(range.len() as u32).to_be_bytes());
        hello.extend_from_slice(range.as_bytes());
        c.stream.write_all(&hello).await.map_err(|e| Error::functional("raw TWS hello", e))?;
        let version = c.frame(deadline).await?;
        if field(&version, 0) != Some("178") {
            return Err(Error::Functional(format!("raw TWS: version reply {:?}, expected 178", field(&version, 0))));
        }
        c.send(&["71", "2", &client_id.to_string(), ""]).await?;
        loop {
            let f = c.frame(deadline).await?;
            if field(&f, 0) == Some(ERROR) && field(&f, 3) == Some(LAST_STARTUP_NOTICE) {
                return Ok(c);
            }
        }
    }

    /// Sends reqPositions and reads the snapshot up to PositionEnd; returns how many rows it had.
    pub async fn subscribe_positions(&mut self, within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        self.send(&["61", "1"]).await?;
        let mut rows = 0;
        loop {
            let f = self.frame(deadline).await?;
            match field(&f, 0) {
                Some(POSITION) => rows += 1,
                Some(POSITION_END) => return Ok(rows),
                _ => {}
            }
        }
    }

    /// Reads position messages until `account`/`con_id` shows `expected`; returns when that was
    /// and how many position messages (for any contract) arrived.
    pub async fn until_quantity(
        &mut self,
        account: &str,
        con_id: &str,
        expected: f64,
        within: Duration,
    ) -> Result<(Instant, u64)> {
        let deadline = Instant::now() + within;
        let mut n = 0;
        loop {
            let f = self.frame(deadline).await.map_err(|e| Error::Functional(format!("after {n} positions: {e}")))?;
            // Fields: 61, version, account, con_id, symbol, sec_type, expiry, strike, right,
            // multiplier, exchange, currency, local_symbol, trading_class, quantity, avg_cost.
            if field(&f, 0) == Some(POSITION) {
                n += 1;
                if field(&f, 2) == Some(account)
                    && field(&f, 3) == Some(con_id)
                    && field(&f, 14).and_then(|q| q.parse::<f64>().ok()) == Some(expected)
                {
                    return Ok((Instant::now(), n));
                }
            }
        }
    }

    async fn send(&mut self, fields: &[&str]) -> Result<()> {
        let body: Vec<u8> = fields.iter().flat_map(|f| f.bytes().chain(std::iter::once(0))).collect();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        self.stream.write_all(&out).await.map_err(|e| Error::functional("raw TWS send", e))
    }

    /// The next frame's body (NUL-terminated fields).
    async fn frame(&mut self, deadline: Instant) -> Result<BytesMut> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
                if !(1..=0x00ff_ffff).contains(&len) {
                    return Err(Error::Functional(format!("raw TWS: invalid frame length {len}")));
                }
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    return Ok(self.buf.split_to(len));
                }
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) => return Err(Error::Functional("raw TWS: the simulator closed the connection".into())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Error::functional("raw TWS read", e)),
                Err(_) => return Err(Error::Functional("raw TWS: no frame in time".into())),
            }
        }
    }
}

/// Field `i` of a text frame body, without copying; `None` past the end or when not UTF-8.
fn field(body: &[u8], i: usize) -> Option<&str> {
    body.split(|b| *b == 0).nth(i).and_then(|f| std::str::from_utf8(f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_place() {
        let body = b"61\x003\0DU1\x00265598\0";
        assert_eq!(field(body, 0), Some("61"));
        assert_eq!(field(body, 3), Some("265598"));
        assert_eq!(field(body, 4), Some(""));
        assert_eq!(field(body, 9), None);
    }
}

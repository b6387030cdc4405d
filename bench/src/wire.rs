//! A raw TWS API client speaking the text codec (v100..178), for measuring ib-sim without any
//! client library's cost in the way: frames are split and the one field the hot path needs is
//! read in place; a frame that may matter is decoded in full. Message ids, field orders and
//! field positions all come from `tws-wire`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tws_wire::ids::reply as id;
use tws_wire::{Codec, Contract, PositionMsg, Reply, Request, frame, reply, text};

use crate::{Error, Result};

/// The version range ib_async announces, and the version it negotiates with ib-sim.
const RANGE: &str = "v100..178";
const VERSION: u32 = 178;
/// The last farm notice a simulator sends after START_API (the sec-def farm is OK).
const LAST_STARTUP_NOTICE: i32 = tws_wire::notice::code::SECDEF_FARM_OK;

/// A connected, started client.
#[derive(Debug)]
pub struct WireClient {
    stream: TcpStream,
    buf: BytesMut,
    /// The negotiated server version: requests are encoded and replies decoded at it.
    version: u32,
    /// Where a `position` frame carries the quantity at that version.
    quantity_at: usize,
}

impl WireClient {
    /// Connects, negotiates v100..178, sends START_API as `client_id` and reads the start-up
    /// messages.
    pub async fn start(addr: SocketAddr, client_id: i32, within: Duration) -> Result<WireClient> {
        let deadline = Instant::now() + within;
        let stream = TcpStream::connect(addr).await.map_err(|e| Error::setup("raw TWS connect", e))?;
        stream.set_nodelay(true).map_err(|e| Error::setup("raw TWS nodelay", e))?;
        let mut c = WireClient { stream, buf: BytesMut::with_capacity(64 * 1024), version: 0, quantity_at: 0 };
        c.stream.write_all(&frame::client_hello(RANGE)).await.map_err(|e| Error::functional("raw TWS hello", e))?;
        let hello = c.frame(deadline).await?;
        match frame::parse_server_hello(&hello) {
            Some((v, _)) if v == VERSION => {
                c.version = v;
                c.quantity_at = quantity_field(v)
                    .ok_or_else(|| Error::Functional(format!("raw TWS: no quantity field in a v{v} position")))?;
            }
            other => {
                return Err(Error::Functional(format!(
                    "raw TWS: version reply {:?}, expected {VERSION}",
                    other.map(|(v, _)| v)
                )));
            }
        }
        c.request(&Request::StartApi { client_id }).await?;
        loop {
            let f = c.frame(deadline).await?;
            if msg_id(&f) == Some(id::ERROR)
                && let Reply::Error { code: LAST_STARTUP_NOTICE, .. } = c.decode(&f)?
            {
                return Ok(c);
            }
        }
    }

    /// Sends reqPositions and reads the snapshot up to PositionEnd; returns how many rows it had.
    pub async fn subscribe_positions(&mut self, within: Duration) -> Result<usize> {
        self.rows_until(&Request::Positions, id::POSITION, id::POSITION_END, within).await
    }

    /// Sends reqAccountSummary (group `All`, three tags) and reads up to its end; returns how
    /// many rows it had.
    pub async fn account_summary(&mut self, req_id: i32, within: Duration) -> Result<usize> {
        let tags = ["NetLiquidation", "TotalCashValue", "BuyingPower"].map(str::to_owned).to_vec();
        let req = Request::AccountSummary { req_id, group: "All".into(), tags };
        self.rows_until(&req, id::ACCOUNT_SUMMARY, id::ACCOUNT_SUMMARY_END, within).await
    }

    /// Sends `req` and counts its `row` messages up to its `end` message.
    async fn rows_until(&mut self, req: &Request, row: u32, end: u32, within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        self.request(req).await?;
        let mut rows = 0;
        loop {
            match msg_id(&self.frame(deadline).await?) {
                Some(m) if m == row => rows += 1,
                Some(m) if m == end => return Ok(rows),
                _ => {}
            }
        }
    }

    /// Closes our side, as a client library's disconnect does.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Reads position messages until `account`/`con_id` shows `expected`; returns when that was
    /// and how many position messages (for any contract) arrived.
    pub async fn until_quantity(
        &mut self,
        account: &str,
        con_id: i32,
        expected: f64,
        within: Duration,
    ) -> Result<(Instant, u64)> {
        let deadline = Instant::now() + within;
        let mut n = 0;
        loop {
            let f = self.frame(deadline).await.map_err(|e| Error::Functional(format!("after {n} positions: {e}")))?;
            if msg_id(&f) != Some(id::POSITION) {
                continue;
            }
            n += 1;
            // Only a row showing the expected quantity is decoded, to see whose it is.
            if text::field(&f, self.quantity_at).and_then(|q| q.parse::<f64>().ok()) != Some(expected) {
                continue;
            }
            if let Reply::Position(p) = self.decode(&f)?
                && p.account == account
                && p.contract.con_id == con_id
            {
                return Ok((Instant::now(), n));
            }
        }
    }

    async fn request(&mut self, req: &Request) -> Result<()> {
        let mut out = Vec::new();
        frame::put_frame(&mut out, &req.encode_text(self.version));
        self.stream.write_all(&out).await.map_err(|e| Error::functional("raw TWS send", e))
    }

    fn decode(&self, body: &[u8]) -> Result<Reply> {
        reply::decode_text(body, self.version).map_err(|e| Error::Functional(format!("raw TWS: {e}")))
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

/// A text frame's message id, read in place (every text frame starts with it).
fn msg_id(body: &[u8]) -> Option<u32> {
    text::field(body, 0)?.parse().ok()
}

/// The index of the quantity field in a text `position` frame at `version`: found by encoding
/// a probe with `tws-wire`, which owns the field order, rather than by counting fields here.
fn quantity_field(version: u32) -> Option<usize> {
    const PROBE: &str = "quantity-probe";
    let probe = Reply::Position(Box::new(PositionMsg {
        account: String::new(),
        contract: Contract::default(),
        quantity: PROBE.into(),
        avg_cost: 0.0,
    }));
    text::split(&tws_wire::encode_reply(&probe, Codec::Text, version)).iter().position(|f| f == PROBE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_path_reads_what_tws_wire_encodes() {
        let row = Reply::Position(Box::new(PositionMsg {
            account: "DU1".into(),
            contract: Contract {
                con_id: 265598,
                symbol: "AAPL".into(),
                local_symbol: "AAPL".into(),
                trading_class: "NMS".into(),
                ..Contract::default()
            },
            quantity: "10100".into(),
            avg_cost: 150.25,
        }));
        let body = tws_wire::encode_reply(&row, Codec::Text, VERSION);
        assert_eq!(msg_id(&body), Some(id::POSITION));
        let at = quantity_field(VERSION).expect("a position has a quantity");
        assert_eq!(text::field(&body, at), Some("10100"));
        assert_eq!(reply::decode_text(&body, VERSION), Ok(row));
    }
}

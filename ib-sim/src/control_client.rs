//! A minimal client for the control API, for tests and tools that drive a simulator in another
//! process. One HTTP/1.1 request per connection keeps it small and dependency-free.

use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fault::Fault;
use crate::prices::{AccountPnl, PositionPnl, PriceTick, PriceWalk};
use crate::scenario::{AccountValue, LedgerValue, Position};

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Could not talk to the control port.
    #[error("control API unreachable")]
    Io(#[from] std::io::Error),
    /// The simulator answered with an error status.
    #[error("control API answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The answer was not what was expected.
    #[error("unexpected control API answer: {0}")]
    Decode(String),
}

/// Talks to one simulator's control port.
#[derive(Debug, Clone, Copy)]
pub struct ControlClient {
    addr: SocketAddr,
}

impl ControlClient {
    /// A client for the control API at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    /// `GET /stats`.
    pub async fn stats(&self) -> Result<serde_json::Value, ControlError> {
        self.json("GET", "/stats", None::<&()>).await
    }

    /// `POST /faults`.
    pub async fn inject(&self, fault: &Fault) -> Result<(), ControlError> {
        self.call("POST", "/faults", Some(fault)).await.map(drop)
    }

    /// `PATCH /positions`.
    pub async fn upsert_positions(&self, positions: &[Position]) -> Result<(), ControlError> {
        self.call("PATCH", "/positions", Some(&positions)).await.map(drop)
    }

    /// `GET /positions`.
    pub async fn positions(&self) -> Result<Vec<Position>, ControlError> {
        self.json("GET", "/positions", None::<&()>).await
    }

    /// `PATCH /account-values`.
    pub async fn upsert_account_values(&self, values: &[AccountValue]) -> Result<(), ControlError> {
        self.call("PATCH", "/account-values", Some(&values)).await.map(drop)
    }

    /// `PATCH /ledger`.
    pub async fn upsert_ledger(&self, rows: &[LedgerValue]) -> Result<(), ControlError> {
        self.call("PATCH", "/ledger", Some(&rows)).await.map(drop)
    }

    /// `GET /ledger`.
    pub async fn ledger(&self) -> Result<Vec<LedgerValue>, ControlError> {
        self.json("GET", "/ledger", None::<&()>).await
    }

    /// `PATCH /prices`.
    pub async fn set_prices(&self, ticks: &[PriceTick]) -> Result<(), ControlError> {
        self.call("PATCH", "/prices", Some(&ticks)).await.map(drop)
    }

    /// `GET /prices`.
    pub async fn prices(&self) -> Result<Vec<PriceTick>, ControlError> {
        self.json("GET", "/prices", None::<&()>).await
    }

    /// `POST /price-walk`.
    pub async fn start_price_walk(&self, walk: &PriceWalk) -> Result<(), ControlError> {
        self.call("POST", "/price-walk", Some(walk)).await.map(drop)
    }

    /// `DELETE /price-walk`.
    pub async fn stop_price_walk(&self) -> Result<(), ControlError> {
        self.call("DELETE", "/price-walk", None::<&()>).await.map(drop)
    }

    /// `GET /pnl/{account}`.
    pub async fn pnl(&self, account: &str) -> Result<AccountPnl, ControlError> {
        self.json("GET", &format!("/pnl/{account}"), None::<&()>).await
    }

    /// `GET /pnl/{account}/{con_id}`.
    pub async fn position_pnl(&self, account: &str, con_id: i32) -> Result<PositionPnl, ControlError> {
        self.json("GET", &format!("/pnl/{account}/{con_id}"), None::<&()>).await
    }

    /// `POST /reset`.
    pub async fn reset(&self) -> Result<(), ControlError> {
        self.call("POST", "/reset", None::<&()>).await.map(drop)
    }

    async fn json<T: DeserializeOwned, B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ControlError> {
        let text = self.call(method, path, body).await?;
        serde_json::from_str(&text).map_err(|e| ControlError::Decode(e.to_string()))
    }

    /// Sends one request and returns the body of a 2xx answer.
    pub async fn call<B: Serialize>(&self, method: &str, path: &str, body: Option<&B>) -> Result<String, ControlError> {
        let payload = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ControlError::Decode(e.to_string()))?,
            None => Vec::new(),
        };
        let mut stream = TcpStream::connect(self.addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            payload.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&payload).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| ControlError::Decode("no header end".into()))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ControlError::Decode("no status".into()))?;
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_owned()
        };
        if (200..300).contains(&status) { Ok(body) } else { Err(ControlError::Status { status, body }) }
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

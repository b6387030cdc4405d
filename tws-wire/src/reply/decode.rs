//! The client side of the text codec: replies read back into [`Reply`], so raw clients in tests
//! and benchmarks never spell a field position themselves.

use super::{Contract, PortfolioMsg, PositionMsg, Reply};
use crate::ids::reply as id;

/// Why a text frame is not a reply this crate knows.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReplyError {
    /// Empty frame or a message id that is not a number.
    #[error("frame has no message id")]
    NoId,
    /// A message id this crate does not encode.
    #[error("unknown reply id {0}")]
    Unknown(u32),
    /// A field is missing or malformed.
    #[error("reply {msg_id}: bad or missing field {field}")]
    Field {
        /// Message id.
        msg_id: u32,
        /// Field name.
        field: &'static str,
    },
}

struct Fields<'a> {
    msg_id: u32,
    f: &'a [String],
}

impl Fields<'_> {
    fn str(&self, i: usize, field: &'static str) -> Result<String, ReplyError> {
        self.f.get(i).cloned().ok_or(ReplyError::Field { msg_id: self.msg_id, field })
    }
    fn parse<T: std::str::FromStr>(&self, i: usize, field: &'static str) -> Result<T, ReplyError> {
        self.f.get(i).and_then(|v| v.parse().ok()).ok_or(ReplyError::Field { msg_id: self.msg_id, field })
    }
    /// A double that may be empty (0).
    fn num(&self, i: usize, field: &'static str) -> Result<f64, ReplyError> {
        match self.f.get(i).map(String::as_str) {
            Some("") => Ok(0.0),
            _ => self.parse(i, field),
        }
    }
    /// The eleven contract fields starting at `i`; the exchange slot goes to `exchange` or to
    /// `primary_exchange`.
    fn contract(&self, i: usize, primary: bool) -> Result<Contract, ReplyError> {
        let con_id = self.parse(i, "conId")?;
        let exchange = self.str(i + 7, "exchange")?;
        let (exchange, primary_exchange) = if primary { (String::new(), exchange) } else { (exchange, String::new()) };
        Ok(Contract {
            con_id,
            symbol: self.str(i + 1, "symbol")?,
            sec_type: self.str(i + 2, "secType")?,
            expiry: self.str(i + 3, "expiry")?,
            strike: self.num(i + 4, "strike")?,
            right: self.str(i + 5, "right")?,
            multiplier: self.num(i + 6, "multiplier")?,
            exchange,
            primary_exchange,
            currency: self.str(i + 8, "currency")?,
            local_symbol: self.str(i + 9, "localSymbol")?,
            trading_class: self.str(i + 10, "tradingClass")?,
        })
    }
}

/// Decodes a text reply (the frame body) as a client at `version` reads it.
pub fn decode_text(body: &[u8], version: u32) -> Result<Reply, ReplyError> {
    let fields = crate::text::split(body);
    let msg_id: u32 = fields.first().and_then(|f| f.parse().ok()).ok_or(ReplyError::NoId)?;
    let r = Fields { msg_id, f: &fields };
    use id::*;
    Ok(match msg_id {
        MANAGED_ACCOUNTS => Reply::ManagedAccounts(r.str(2, "accounts")?),
        NEXT_VALID_ID => Reply::NextValidId(r.parse(2, "orderId")?),
        ERROR if version >= 194 => {
            Reply::Error { id: r.parse(1, "id")?, code: r.parse(2, "code")?, message: r.str(3, "message")? }
        }
        ERROR => Reply::Error { id: r.parse(2, "id")?, code: r.parse(3, "code")?, message: r.str(4, "message")? },
        POSITION => Reply::Position(Box::new(PositionMsg {
            account: r.str(2, "account")?,
            contract: r.contract(3, false)?,
            quantity: r.str(14, "position")?,
            avg_cost: r.num(15, "avgCost")?,
        })),
        POSITION_END => Reply::PositionEnd,
        ACCOUNT_SUMMARY => Reply::AccountSummary {
            req_id: r.parse(2, "reqId")?,
            account: r.str(3, "account")?,
            tag: r.str(4, "tag")?,
            value: r.str(5, "value")?,
            currency: r.str(6, "currency")?,
        },
        ACCOUNT_SUMMARY_END => Reply::AccountSummaryEnd { req_id: r.parse(2, "reqId")? },
        ACCOUNT_VALUE => Reply::AccountValue {
            key: r.str(2, "key")?,
            value: r.str(3, "value")?,
            currency: r.str(4, "currency")?,
            account: r.str(5, "account")?,
        },
        PORTFOLIO_VALUE => Reply::Portfolio(Box::new(PortfolioMsg {
            contract: r.contract(2, true)?,
            quantity: r.str(13, "position")?,
            market_price: r.num(14, "marketPrice")?,
            market_value: r.num(15, "marketValue")?,
            avg_cost: r.num(16, "averageCost")?,
            unrealized: r.num(17, "unrealizedPNL")?,
            realized: r.num(18, "realizedPNL")?,
            account: r.str(19, "accountName")?,
        })),
        ACCOUNT_UPDATE_TIME => Reply::AccountUpdateTime(r.str(2, "time")?),
        ACCOUNT_DOWNLOAD_END => Reply::AccountDownloadEnd(r.str(2, "account")?),
        ACCOUNT_UPDATE_MULTI => Reply::AccountUpdateMulti {
            req_id: r.parse(2, "reqId")?,
            account: r.str(3, "account")?,
            key: r.str(5, "key")?,
            value: r.str(6, "value")?,
            currency: r.str(7, "currency")?,
        },
        ACCOUNT_UPDATE_MULTI_END => Reply::AccountUpdateMultiEnd { req_id: r.parse(2, "reqId")? },
        PNL => Reply::Pnl {
            req_id: r.parse(1, "reqId")?,
            daily: r.num(2, "dailyPnL")?,
            unrealized: if version >= 129 { r.num(3, "unrealizedPnL")? } else { 0.0 },
            realized: if version >= 135 { r.num(4, "realizedPnL")? } else { 0.0 },
        },
        PNL_SINGLE => {
            let mut i = 4;
            let mut next = |name| {
                let v = r.num(i, name);
                i += 1;
                v
            };
            let unrealized = if version >= 129 { next("unrealizedPnL")? } else { 0.0 };
            let realized = if version >= 135 { next("realizedPnL")? } else { 0.0 };
            let value = next("value")?;
            Reply::PnlSingle {
                req_id: r.parse(1, "reqId")?,
                position: r.str(2, "position")?,
                daily: r.num(3, "dailyPnL")?,
                unrealized,
                realized,
                value,
            }
        }
        CURRENT_TIME => Reply::CurrentTime(r.parse(2, "time")?),
        CURRENT_TIME_MILLIS => Reply::CurrentTimeMillis(r.parse(1, "millis")?),
        OPEN_ORDER_END => Reply::OpenOrderEnd,
        EXECUTION_DATA_END => Reply::ExecutionDataEnd { req_id: r.parse(2, "reqId")? },
        COMPLETED_ORDERS_END => Reply::CompletedOrdersEnd,
        other => return Err(ReplyError::Unknown(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::aapl;
    use super::super::text::encode as encode_text;
    use super::super::{PortfolioMsg, PositionMsg};
    use super::*;

    #[test]
    fn every_text_reply_round_trips() {
        let mut portfolio_contract = aapl();
        portfolio_contract.exchange.clear();
        let all = [
            Reply::ManagedAccounts("DU1,DU2".into()),
            Reply::NextValidId(7),
            Reply::error(-1, 2104, "Market data farm connection is OK:usfarm"),
            Reply::error(12, 321, "read-only"),
            Reply::Position(Box::new(PositionMsg {
                account: "DU1".into(),
                contract: Contract { primary_exchange: String::new(), ..aapl() },
                quantity: "100".into(),
                avg_cost: 150.25,
            })),
            Reply::PositionEnd,
            Reply::AccountSummary {
                req_id: 3,
                account: "DU1".into(),
                tag: "NetLiquidation".into(),
                value: "1000.5".into(),
                currency: "USD".into(),
            },
            Reply::AccountSummaryEnd { req_id: 3 },
            Reply::AccountValue {
                key: "CashBalance".into(),
                value: "5".into(),
                currency: "EUR".into(),
                account: "DU1".into(),
            },
            Reply::Portfolio(Box::new(PortfolioMsg {
                contract: portfolio_contract,
                quantity: "100".into(),
                market_price: 151.0,
                market_value: 15_100.0,
                avg_cost: 150.25,
                unrealized: 75.0,
                realized: 0.0,
                account: "DU1".into(),
            })),
            Reply::AccountUpdateTime("10:15".into()),
            Reply::AccountDownloadEnd("DU1".into()),
            Reply::AccountUpdateMulti {
                req_id: 4,
                account: "DU1".into(),
                key: "NetLiquidation".into(),
                value: "1".into(),
                currency: "USD".into(),
            },
            Reply::AccountUpdateMultiEnd { req_id: 4 },
            Reply::Pnl { req_id: 5, daily: 1.5, unrealized: -2.0, realized: 0.0 },
            Reply::PnlSingle {
                req_id: 6,
                position: "100".into(),
                daily: 1.0,
                unrealized: 2.0,
                realized: 3.0,
                value: 4.0,
            },
            Reply::CurrentTime(1_700_000_000),
            Reply::CurrentTimeMillis(1_700_000_000_123),
            Reply::OpenOrderEnd,
            Reply::ExecutionDataEnd { req_id: 8 },
            Reply::CompletedOrdersEnd,
        ];
        for v in [160, 178, 200] {
            for r in &all {
                assert_eq!(decode_text(&encode_text(r, v), v).as_ref(), Ok(r), "at {v}");
            }
        }
        assert_eq!(decode_text(b"999\0", 178), Err(ReplyError::Unknown(999)));
        assert_eq!(decode_text(b"61\x003\0DU1\0", 178), Err(ReplyError::Field { msg_id: 61, field: "conId" }));
    }
}

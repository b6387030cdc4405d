//! Replies in the text codec: NUL-terminated fields, the message id first, versioned where the
//! protocol grew fields.

use super::{Contract, Reply, now_millis, or_symbol};
use crate::ids::reply as id;

fn num(v: f64) -> String {
    // IB prints doubles without exponent; Rust's Display never uses one for f64.
    format!("{v}")
}

/// Encodes `reply` as a text frame body for a connection at `version`.
pub(super) fn encode(reply: &Reply, version: u32) -> Vec<u8> {
    use id::*;
    let s = |v: &dyn ToString| v.to_string();
    let f: Vec<String> = match reply {
        Reply::ManagedAccounts(list) => vec![s(&MANAGED_ACCOUNTS), "1".into(), list.clone()],
        Reply::NextValidId(id) => vec![s(&NEXT_VALID_ID), "1".into(), s(id)],
        Reply::Error { id, code, message } => {
            if version >= 194 {
                vec![s(&ERROR), s(id), s(code), message.clone(), String::new(), s(&now_millis())]
            } else {
                let mut v = vec![s(&ERROR), "2".into(), s(id), s(code), message.clone()];
                if version >= 166 {
                    v.push(String::new());
                }
                v
            }
        }
        Reply::Position(p) => {
            let mut v = vec![s(&POSITION), "3".into(), p.account.clone()];
            v.extend(text_contract(&p.contract, &p.contract.exchange));
            v.extend([p.quantity.clone(), num(p.avg_cost)]);
            v
        }
        Reply::PositionEnd => vec![s(&POSITION_END), "1".into()],
        Reply::AccountSummary { req_id, account, tag, value, currency } => vec![
            s(&ACCOUNT_SUMMARY),
            "1".into(),
            s(req_id),
            account.clone(),
            tag.clone(),
            value.clone(),
            currency.clone(),
        ],
        Reply::AccountSummaryEnd { req_id } => vec![s(&ACCOUNT_SUMMARY_END), "1".into(), s(req_id)],
        Reply::AccountValue { key, value, currency, account } => {
            vec![s(&ACCOUNT_VALUE), "2".into(), key.clone(), value.clone(), currency.clone(), account.clone()]
        }
        Reply::Portfolio(p) => {
            let mut v = vec![s(&PORTFOLIO_VALUE), "8".into()];
            // Portfolio rows carry the primary exchange where positions carry the routing one.
            v.extend(text_contract(&p.contract, &p.contract.primary_exchange));
            v.extend([
                p.quantity.clone(),
                num(p.market_price),
                num(p.market_value),
                num(p.avg_cost),
                num(p.unrealized),
                num(p.realized),
                p.account.clone(),
            ]);
            v
        }
        Reply::AccountUpdateTime(t) => vec![s(&ACCOUNT_UPDATE_TIME), "1".into(), t.clone()],
        Reply::AccountDownloadEnd(a) => vec![s(&ACCOUNT_DOWNLOAD_END), "1".into(), a.clone()],
        Reply::AccountUpdateMulti { req_id, account, key, value, currency } => vec![
            s(&ACCOUNT_UPDATE_MULTI),
            "1".into(),
            s(req_id),
            account.clone(),
            String::new(),
            key.clone(),
            value.clone(),
            currency.clone(),
        ],
        Reply::AccountUpdateMultiEnd { req_id } => vec![s(&ACCOUNT_UPDATE_MULTI_END), "1".into(), s(req_id)],
        Reply::Pnl { req_id, daily, unrealized, realized } => {
            let mut v = vec![s(&PNL), s(req_id), num(*daily)];
            if version >= 129 {
                v.push(num(*unrealized));
            }
            if version >= 135 {
                v.push(num(*realized));
            }
            v
        }
        Reply::PnlSingle { req_id, position, daily, unrealized, realized, value } => {
            let mut v = vec![s(&PNL_SINGLE), s(req_id), position.clone(), num(*daily)];
            if version >= 129 {
                v.push(num(*unrealized));
            }
            if version >= 135 {
                v.push(num(*realized));
            }
            v.push(num(*value));
            v
        }
        Reply::CurrentTime(secs) => vec![s(&CURRENT_TIME), "1".into(), s(secs)],
        Reply::CurrentTimeMillis(ms) => vec![s(&CURRENT_TIME_MILLIS), s(ms)],
        Reply::OpenOrderEnd => vec![s(&OPEN_ORDER_END), "1".into()],
        Reply::ExecutionDataEnd { req_id } => vec![s(&EXECUTION_DATA_END), "1".into(), s(req_id)],
        Reply::CompletedOrdersEnd => vec![s(&COMPLETED_ORDERS_END)],
    };
    crate::text::join(&f)
}

fn text_contract(c: &Contract, exchange: &str) -> [String; 11] {
    [
        c.con_id.to_string(),
        c.symbol.clone(),
        c.sec_type.clone(),
        c.expiry.clone(),
        num(c.strike),
        c.right.clone(),
        if c.multiplier > 0.0 { num(c.multiplier) } else { String::new() },
        exchange.to_owned(),
        c.currency.clone(),
        or_symbol(c, &c.local_symbol),
        or_symbol(c, &c.trading_class),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::aapl;
    use super::super::{PortfolioMsg, PositionMsg};
    use super::*;

    #[test]
    fn text_replies_have_the_field_counts_clients_unpack() {
        let position = Reply::Position(Box::new(PositionMsg {
            account: "DU1".into(),
            contract: aapl(),
            quantity: "100".into(),
            avg_cost: 150.0,
        }));
        let portfolio = Reply::Portfolio(Box::new(PortfolioMsg {
            contract: aapl(),
            quantity: "100".into(),
            market_price: 1.0,
            market_value: 100.0,
            avg_cost: 150.0,
            unrealized: -14_900.0,
            realized: 0.0,
            account: "DU1".into(),
        }));
        let count = |r: &Reply, v| encode(r, v).iter().filter(|b| **b == 0).count();
        assert_eq!(count(&position, 178), 16);
        assert_eq!(count(&portfolio, 178), 20);
        assert_eq!(count(&Reply::ManagedAccounts("A,B".into()), 178), 3);
        assert_eq!(count(&Reply::NextValidId(1), 178), 3);
        assert_eq!(count(&Reply::error(-1, 2104, "ok"), 178), 6);
        assert_eq!(count(&Reply::error(-1, 2104, "ok"), 160), 5);
        let single = Reply::PnlSingle {
            req_id: 1,
            position: "10".into(),
            daily: 1.5,
            unrealized: 2.0,
            realized: 0.0,
            value: 9.0,
        };
        assert_eq!(count(&single, 178), 7, "ib_async unpacks reqId, pos, daily, unrealized, realized, value");
        assert_eq!(count(&single, 130), 6, "realized only from 135");
        assert_eq!(count(&Reply::Pnl { req_id: 1, daily: 1.0, unrealized: 2.0, realized: 3.0 }, 178), 5);
        assert_eq!(
            count(
                &Reply::AccountUpdateMulti {
                    req_id: 1,
                    account: "DU1".into(),
                    key: "K".into(),
                    value: "V".into(),
                    currency: "USD".into()
                },
                178
            ),
            8
        );
    }
}

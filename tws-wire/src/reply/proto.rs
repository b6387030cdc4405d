//! Replies in the protobuf codec: a 4-byte id shifted by [`PROTOBUF_OFFSET`], then the message
//! with every field present that the gateway means (clients rely on presence).

use prost::Message as _;

use super::{Contract, Reply, or_symbol};
use crate::ids::{PROTOBUF_OFFSET, reply as id};
use crate::pb;

fn proto_contract(c: &Contract, exchange: &str) -> pb::Contract {
    pb::Contract {
        con_id: Some(c.con_id),
        symbol: Some(c.symbol.clone()),
        sec_type: Some(c.sec_type.clone()),
        last_trade_date_or_contract_month: (!c.expiry.is_empty()).then(|| c.expiry.clone()),
        strike: Some(c.strike),
        right: (!c.right.is_empty()).then(|| c.right.clone()),
        multiplier: (c.multiplier > 0.0).then_some(c.multiplier),
        exchange: Some(exchange.to_owned()),
        primary_exch: (!c.primary_exchange.is_empty()).then(|| c.primary_exchange.clone()),
        currency: Some(c.currency.clone()),
        local_symbol: Some(or_symbol(c, &c.local_symbol)),
        trading_class: Some(or_symbol(c, &c.trading_class)),
    }
}

/// Encodes `reply` as a protobuf frame body, stamping errors with `now_ms`.
pub(super) fn encode(reply: &Reply, now_ms: i64) -> Vec<u8> {
    use id::*;
    let s = |v: &str| Some(v.to_owned());
    let (id, payload) = match reply {
        Reply::ManagedAccounts(list) => {
            (MANAGED_ACCOUNTS, pb::ManagedAccounts { accounts_list: s(list) }.encode_to_vec())
        }
        Reply::NextValidId(id) => (NEXT_VALID_ID, pb::NextValidId { order_id: Some(*id) }.encode_to_vec()),
        Reply::Error { id, code, message } => (
            ERROR,
            pb::ErrorMessage {
                id: Some(*id),
                error_time: Some(now_ms),
                error_code: Some(*code),
                error_msg: s(message),
                advanced_order_reject_json: s(""),
            }
            .encode_to_vec(),
        ),
        Reply::Position(p) => (
            POSITION,
            pb::Position {
                account: s(&p.account),
                contract: Some(proto_contract(&p.contract, &p.contract.exchange)),
                position: s(&p.quantity),
                avg_cost: Some(p.avg_cost),
            }
            .encode_to_vec(),
        ),
        Reply::PositionEnd => (POSITION_END, Vec::new()),
        Reply::AccountSummary { req_id, account, tag, value, currency } => (
            ACCOUNT_SUMMARY,
            pb::AccountSummary {
                req_id: Some(*req_id),
                account: s(account),
                tag: s(tag),
                value: s(value),
                currency: s(currency),
            }
            .encode_to_vec(),
        ),
        Reply::AccountSummaryEnd { req_id } => {
            (ACCOUNT_SUMMARY_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::AccountValue { key, value, currency, account } => (
            ACCOUNT_VALUE,
            pb::AccountValue { key: s(key), value: s(value), currency: s(currency), account_name: s(account) }
                .encode_to_vec(),
        ),
        Reply::Portfolio(p) => (
            PORTFOLIO_VALUE,
            pb::PortfolioValue {
                contract: Some(proto_contract(&p.contract, &p.contract.primary_exchange)),
                position: s(&p.quantity),
                market_price: Some(p.market_price),
                market_value: Some(p.market_value),
                average_cost: Some(p.avg_cost),
                unrealized_pnl: Some(p.unrealized),
                realized_pnl: Some(p.realized),
                account_name: s(&p.account),
            }
            .encode_to_vec(),
        ),
        Reply::AccountUpdateTime(t) => {
            (ACCOUNT_UPDATE_TIME, pb::AccountUpdateTime { time_stamp: s(t) }.encode_to_vec())
        }
        Reply::AccountDownloadEnd(a) => {
            (ACCOUNT_DOWNLOAD_END, pb::AccountDataEnd { account_name: s(a) }.encode_to_vec())
        }
        Reply::AccountUpdateMulti { req_id, account, key, value, currency } => (
            ACCOUNT_UPDATE_MULTI,
            pb::AccountUpdateMulti {
                req_id: Some(*req_id),
                account: s(account),
                model_code: s(""),
                key: s(key),
                value: s(value),
                currency: s(currency),
            }
            .encode_to_vec(),
        ),
        Reply::AccountUpdateMultiEnd { req_id } => {
            (ACCOUNT_UPDATE_MULTI_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::Pnl { req_id, daily, unrealized, realized } => (
            PNL,
            pb::PnL {
                req_id: Some(*req_id),
                daily_pnl: Some(*daily),
                unrealized_pnl: Some(*unrealized),
                realized_pnl: Some(*realized),
            }
            .encode_to_vec(),
        ),
        Reply::PnlSingle { req_id, position, daily, unrealized, realized, value } => (
            PNL_SINGLE,
            pb::PnLSingle {
                req_id: Some(*req_id),
                position: s(position),
                daily_pnl: Some(*daily),
                unrealized_pnl: Some(*unrealized),
                realized_pnl: Some(*realized),
                value: Some(*value),
            }
            .encode_to_vec(),
        ),
        Reply::CurrentTime(secs) => (CURRENT_TIME, pb::Int64Only { value: Some(*secs) }.encode_to_vec()),
        Reply::CurrentTimeMillis(ms) => (CURRENT_TIME_MILLIS, pb::Int64Only { value: Some(*ms) }.encode_to_vec()),
        Reply::OpenOrderEnd => (OPEN_ORDER_END, Vec::new()),
        Reply::ExecutionDataEnd { req_id } => {
            (EXECUTION_DATA_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::CompletedOrdersEnd => (COMPLETED_ORDERS_END, Vec::new()),
    };
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(id + PROTOBUF_OFFSET).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_replies_carry_the_shifted_id_and_presence() {
        let body = encode(&Reply::NextValidId(0), 0);
        assert_eq!(&body[..4], &(209u32).to_be_bytes());
        let decoded = pb::NextValidId::decode(&body[4..]).ok();
        assert_eq!(decoded.and_then(|m| m.order_id), Some(0), "orderId must be present even when 0");
        assert_eq!(encode(&Reply::PositionEnd, 0), 262u32.to_be_bytes().to_vec());
        let single = Reply::PnlSingle {
            req_id: 7,
            position: "0".into(),
            daily: 0.0,
            unrealized: 0.0,
            realized: 0.0,
            value: 0.0,
        };
        let body = encode(&single, 0);
        assert_eq!(&body[..4], &(295u32).to_be_bytes());
        let decoded = pb::PnLSingle::decode(&body[4..]).ok();
        assert_eq!(decoded.as_ref().and_then(|m| m.position.as_deref()), Some("0"), "ibapi requires the position");
        assert_eq!(decoded.and_then(|m| m.value), Some(0.0), "zeros are present, not unset");
    }
}

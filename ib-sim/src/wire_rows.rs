//! The book's rows as protocol messages: what a position, an account value or a ledger row looks
//! like on the wire.

use tws_wire::{Contract, PortfolioMsg, PositionMsg, Reply};

use crate::scenario::{AccountValue, LedgerValue, Position};

impl Position {
    fn contract(&self) -> Contract {
        Contract {
            con_id: self.con_id,
            symbol: self.symbol.clone(),
            sec_type: self.sec_type.clone(),
            expiry: self.expiry.clone(),
            strike: self.strike,
            right: self.right.clone(),
            multiplier: self.multiplier,
            exchange: self.exchange.clone(),
            primary_exchange: self.primary_exchange.clone(),
            currency: self.currency.clone(),
            local_symbol: self.local_symbol.clone(),
            trading_class: self.trading_class.clone(),
        }
    }

    /// The `position` message.
    pub(crate) fn position_msg(&self) -> PositionMsg {
        PositionMsg {
            account: self.account.clone(),
            contract: self.contract(),
            quantity: self.quantity.clone(),
            avg_cost: self.avg_cost,
        }
    }

    /// The `updatePortfolio` message, valued at the current market price.
    pub(crate) fn portfolio_msg(&self) -> PortfolioMsg {
        PortfolioMsg {
            contract: self.contract(),
            quantity: self.quantity.clone(),
            market_price: self.market_price,
            market_value: self.market_value(),
            avg_cost: self.avg_cost,
            unrealized: self.unrealized_pnl(),
            realized: 0.0,
            account: self.account.clone(),
        }
    }
}

/// Account values and ledger rows both go out as `updateAccountValue` and `accountUpdateMulti`.
macro_rules! value_replies {
    ($t:ty) => {
        impl $t {
            /// The `updateAccountValue` message.
            pub(crate) fn reply(&self) -> Reply {
                Reply::AccountValue {
                    key: self.tag.clone(),
                    value: self.value.clone(),
                    currency: self.currency.clone(),
                    account: self.account.clone(),
                }
            }

            /// The `accountUpdateMulti` message for `req_id`.
            pub(crate) fn multi_reply(&self, req_id: i32) -> Reply {
                Reply::AccountUpdateMulti {
                    req_id,
                    account: self.account.clone(),
                    key: self.tag.clone(),
                    value: self.value.clone(),
                    currency: self.currency.clone(),
                }
            }
        }
    };
}

value_replies!(AccountValue);
value_replies!(LedgerValue);

//! Data responses as they go on the wire: stream messages and unary responses, encoded from
//! domain rows. Unfiltered ones are memoised on the state or change they encode (see
//! [`crate::hub::Memo`]), so these run once per change, not once per subscriber or call.
//!
//! Every data kind's messages have the same shape (the proto says so field by field), so one
//! macro writes each kind's stream encoder and one its unary encoder; a kind names only its
//! message types, its rows' list field and how a row and a removed row's key convert.

use gateway_proto::encoded::Encoded;
use gateway_proto::pb;

use super::feed::{StreamWire, Update};
use super::filter::{AccountFilter, PositionFilter, SummaryFilter};
use crate::convert;
use crate::hub::Snapshot;
use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, Row, SummaryRow};

/// `impl StreamWire` for one kind: its `Watch…Response` (every one has these fields, with `seq`
/// as field 6).
macro_rules! stream_wire {
    ($row:ty, $message:ident, row: $convert:expr, removal: |$r:ident| $key:expr) => {
        impl StreamWire for $row {
            // The response's `seq` (field 6 in every Watch…Response).
            const SEQ_FIELD: u32 = 6;

            fn encode(u: &Update<'_, Self>) -> Encoded {
                Encoded::of(&pb::$message {
                    kind: pb::UpdateKind::from(u.kind) as i32,
                    items: u.items.iter().map(|r| $convert(r)).collect(),
                    upserts: u.upserts.iter().map(|r| $convert(r)).collect(),
                    removals: u.removals.iter().map(|$r| $key).collect(),
                    session_epoch: u.state.epoch,
                    seq: 0,
                    as_of: Some(convert::timestamp(u.state.as_of)),
                    freshness: Some(convert::freshness(&u.state.freshness)),
                    state_version: u.state.version,
                })
            }
        }
    };
}

stream_wire!(PositionRow, WatchPositionsResponse, row: convert::position,
    removal: |r| convert::position_key(&r.key()));
stream_wire!(SummaryRow, WatchAccountSummaryResponse, row: convert::summary_value,
    removal: |r| convert::summary_key(&r.key()));
stream_wire!(AccountPnlRow, WatchAccountPnlResponse, row: convert::account_pnl,
    removal: |r| pb::AccountPnlKey { account: r.key() });
stream_wire!(PositionPnlRow, WatchPositionPnlResponse, row: convert::position_pnl,
    removal: |r| convert::position_key(&r.key()));

/// A `Get…` answer from `snap`: the rows that pass, with the state's stamps. The unfiltered
/// answer is encoded once per state and shared by every caller.
macro_rules! unary {
    ($name:ident, $row:ty, $filter:ty, $response:ident { $field:ident }, passes: |$f:ident, $r:ident| $passes:expr, row: $convert:expr) => {
        pub(super) fn $name(snap: &Snapshot<$row>, filter: &$filter) -> Encoded {
            let encode = || {
                Encoded::of(&pb::$response {
                    $field: snap
                        .rows
                        .values()
                        .filter(|$r| {
                            let $f = filter;
                            $passes
                        })
                        .map($convert)
                        .collect(),
                    session_epoch: snap.epoch,
                    seq: snap.version,
                    as_of: Some(convert::timestamp(snap.as_of)),
                    freshness: Some(convert::freshness(&snap.freshness)),
                })
            };
            if filter.is_all() { snap.unary.get_or_init(encode).clone() } else { encode() }
        }
    };
}

unary!(positions, PositionRow, PositionFilter, GetPositionsResponse { positions },
    passes: |f, p| f.matches(p), row: convert::position);
unary!(summary, SummaryRow, SummaryFilter, GetAccountSummaryResponse { values },
    passes: |f, s| f.matches(s), row: convert::summary_value);
unary!(account_pnl, AccountPnlRow, AccountFilter, GetAccountPnlResponse { accounts },
    passes: |f, r| f.matches(&r.account), row: convert::account_pnl);
unary!(position_pnl, PositionPnlRow, AccountFilter, GetPositionPnlResponse { positions },
    passes: |f, r| f.matches(&r.account), row: convert::position_pnl);

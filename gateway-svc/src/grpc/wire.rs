//! Data responses as they go on the wire: stream messages and unary responses, encoded from
//! domain rows. Unfiltered ones are memoised on the state or change they encode (see
//! [`crate::hub::Memo`]), so these run once per change, not once per subscriber or call.

use gateway_proto::encoded::Encoded;
use gateway_proto::pb;

use super::feed::{StreamWire, Update};
use super::filter::{AccountFilter, PositionFilter, SummaryFilter};
use crate::convert;
use crate::hub::Snapshot;
use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, Row, SummaryRow};

impl StreamWire for PositionRow {
    // `WatchPositionsResponse.seq`.
    const SEQ_FIELD: u32 = 6;

    fn encode(u: &Update<'_, Self>) -> Encoded {
        Encoded::of(&pb::WatchPositionsResponse {
            kind: convert::update_kind(u.kind) as i32,
            items: u.items.iter().map(|r| convert::position(r)).collect(),
            upserts: u.upserts.iter().map(|r| convert::position(r)).collect(),
            removals: u.removals.iter().map(|r| convert::position_key(&r.key())).collect(),
            session_epoch: u.state.epoch,
            seq: 0,
            as_of: Some(convert::timestamp(u.state.as_of)),
            freshness: Some(convert::freshness(&u.state.freshness)),
            state_version: u.state.version,
        })
    }
}

impl StreamWire for SummaryRow {
    // `WatchAccountSummaryResponse.seq`.
    const SEQ_FIELD: u32 = 6;

    fn encode(u: &Update<'_, Self>) -> Encoded {
        Encoded::of(&pb::WatchAccountSummaryResponse {
            kind: convert::update_kind(u.kind) as i32,
            items: u.items.iter().map(|r| convert::summary_value(r)).collect(),
            upserts: u.upserts.iter().map(|r| convert::summary_value(r)).collect(),
            removals: u.removals.iter().map(|r| convert::summary_key(&r.key())).collect(),
            session_epoch: u.state.epoch,
            seq: 0,
            as_of: Some(convert::timestamp(u.state.as_of)),
            freshness: Some(convert::freshness(&u.state.freshness)),
            state_version: u.state.version,
        })
    }
}

impl StreamWire for AccountPnlRow {
    // `WatchAccountPnlResponse.seq`.
    const SEQ_FIELD: u32 = 6;

    fn encode(u: &Update<'_, Self>) -> Encoded {
        Encoded::of(&pb::WatchAccountPnlResponse {
            kind: convert::update_kind(u.kind) as i32,
            items: u.items.iter().map(|r| convert::account_pnl(r)).collect(),
            upserts: u.upserts.iter().map(|r| convert::account_pnl(r)).collect(),
            removals: u.removals.iter().map(|r| pb::AccountPnlKey { account: r.key() }).collect(),
            session_epoch: u.state.epoch,
            seq: 0,
            as_of: Some(convert::timestamp(u.state.as_of)),
            freshness: Some(convert::freshness(&u.state.freshness)),
            state_version: u.state.version,
        })
    }
}

impl StreamWire for PositionPnlRow {
    // `WatchPositionPnlResponse.seq`.
    const SEQ_FIELD: u32 = 6;

    fn encode(u: &Update<'_, Self>) -> Encoded {
        Encoded::of(&pb::WatchPositionPnlResponse {
            kind: convert::update_kind(u.kind) as i32,
            items: u.items.iter().map(|r| convert::position_pnl(r)).collect(),
            upserts: u.upserts.iter().map(|r| convert::position_pnl(r)).collect(),
            removals: u.removals.iter().map(|r| convert::position_key(&r.key())).collect(),
            session_epoch: u.state.epoch,
            seq: 0,
            as_of: Some(convert::timestamp(u.state.as_of)),
            freshness: Some(convert::freshness(&u.state.freshness)),
            state_version: u.state.version,
        })
    }
}

/// GetPositions' answer from `snap`.
pub(super) fn positions(snap: &Snapshot<PositionRow>, filter: &PositionFilter) -> Encoded {
    let encode = || {
        Encoded::of(&pb::GetPositionsResponse {
            positions: snap.rows.values().filter(|p| filter.matches(p)).map(convert::position).collect(),
            session_epoch: snap.epoch,
            seq: snap.version,
            as_of: Some(convert::timestamp(snap.as_of)),
            freshness: Some(convert::freshness(&snap.freshness)),
        })
    };
    if filter.is_all() { snap.unary.get_or_init(encode).clone() } else { encode() }
}

/// GetAccountSummary's answer from `snap`.
pub(super) fn summary(snap: &Snapshot<SummaryRow>, filter: &SummaryFilter) -> Encoded {
    let encode = || {
        Encoded::of(&pb::GetAccountSummaryResponse {
            values: snap.rows.values().filter(|s| filter.matches(s)).map(convert::summary_value).collect(),
            session_epoch: snap.epoch,
            seq: snap.version,
            as_of: Some(convert::timestamp(snap.as_of)),
            freshness: Some(convert::freshness(&snap.freshness)),
        })
    };
    if filter.is_all() { snap.unary.get_or_init(encode).clone() } else { encode() }
}

/// GetAccountPnl's answer from `snap`.
pub(super) fn account_pnl(snap: &Snapshot<AccountPnlRow>, filter: &AccountFilter) -> Encoded {
    let encode = || {
        Encoded::of(&pb::GetAccountPnlResponse {
            accounts: snap.rows.values().filter(|r| filter.matches(&r.account)).map(convert::account_pnl).collect(),
            session_epoch: snap.epoch,
            seq: snap.version,
            as_of: Some(convert::timestamp(snap.as_of)),
            freshness: Some(convert::freshness(&snap.freshness)),
        })
    };
    if filter.is_all() { snap.unary.get_or_init(encode).clone() } else { encode() }
}

/// GetPositionPnl's answer from `snap`.
pub(super) fn position_pnl(snap: &Snapshot<PositionPnlRow>, filter: &AccountFilter) -> Encoded {
    let encode = || {
        Encoded::of(&pb::GetPositionPnlResponse {
            positions: snap.rows.values().filter(|r| filter.matches(&r.account)).map(convert::position_pnl).collect(),
            session_epoch: snap.epoch,
            seq: snap.version,
            as_of: Some(convert::timestamp(snap.as_of)),
            freshness: Some(convert::freshness(&snap.freshness)),
        })
    };
    if filter.is_all() { snap.unary.get_or_init(encode).clone() } else { encode() }
}

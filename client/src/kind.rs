//! The data kinds gateway-svc streams. Every Watch stream of rows has the same message shape
//! (kind, items, upserts, removals, session_epoch, seq, as_of, freshness, state_version); a kind
//! says only how to open its stream, what keys a row, and how a removal names it. Health is
//! streamed too: every message is its whole value, so it reads as a full set of one row.
//! Accounts are not streamed (ListAccounts is unary), so they are no kind.

use std::fmt::Debug;
use std::future::Future;

use gateway_proto::pb;
use tonic::Streaming;

use crate::channel::Client;
use crate::view::{Freshness, Stamps, Update, UpdateKind};

/// One data kind gateway-svc streams.
pub trait Kind: Debug + Clone + Send + Sync + 'static {
    /// Its stream's message.
    type Message: Send + 'static;
    /// One row of the view.
    type Row: Clone + PartialEq + Debug + Send + Sync + 'static;
    /// What identifies a row in the view.
    type Key: Ord + Clone + Debug + Send + Sync + 'static;
    /// Its name in logs: `positions`, `summary`, `account_pnl`, `position_pnl`, `health`.
    const NAME: &'static str;
    /// Opens its Watch stream, unfiltered.
    fn open(client: Client) -> impl Future<Output = Result<Streaming<Self::Message>, tonic::Status>> + Send;
    /// A message in the shape every kind shares.
    fn update(m: Self::Message) -> Update<Self>;
    /// A row's key.
    fn key(row: &Self::Row) -> Self::Key;
}

/// The four row kinds' messages have the same fields: one conversion for all.
macro_rules! rows_update {
    ($m:expr, |$k:ident| $removal:expr) => {{
        let m = $m;
        Update {
            kind: UpdateKind::from_pb(m.kind),
            items: m.items,
            upserts: m.upserts,
            removals: m.removals.into_iter().map(|$k| $removal).collect(),
            stamps: Stamps {
                session_epoch: m.session_epoch,
                seq: m.seq,
                state_version: m.state_version,
                as_of: m.as_of,
                freshness: Freshness::from_pb(m.freshness.as_ref()),
            },
        }
    }};
}

/// Positions (WatchPositions), keyed by account and contract id.
#[derive(Debug, Clone, Copy)]
pub struct Positions;

impl Kind for Positions {
    type Message = pb::WatchPositionsResponse;
    type Row = pb::Position;
    type Key = (String, i64);
    const NAME: &'static str = "positions";
    async fn open(mut client: Client) -> Result<Streaming<Self::Message>, tonic::Status> {
        Ok(client.watch_positions(pb::WatchPositionsRequest::default()).await?.into_inner())
    }
    fn update(m: Self::Message) -> Update<Self> {
        rows_update!(m, |k| (k.account, k.con_id))
    }
    fn key(p: &pb::Position) -> Self::Key {
        (p.account.clone(), p.con_id)
    }
}

/// Account summary values (WatchAccountSummary), keyed by account, tag and currency.
#[derive(Debug, Clone, Copy)]
pub struct Summary;

impl Kind for Summary {
    type Message = pb::WatchAccountSummaryResponse;
    type Row = pb::SummaryValue;
    type Key = (String, String, String);
    const NAME: &'static str = "summary";
    async fn open(mut client: Client) -> Result<Streaming<Self::Message>, tonic::Status> {
        Ok(client.watch_account_summary(pb::WatchAccountSummaryRequest::default()).await?.into_inner())
    }
    fn update(m: Self::Message) -> Update<Self> {
        rows_update!(m, |k| (k.account, k.tag, k.currency))
    }
    fn key(v: &pb::SummaryValue) -> Self::Key {
        (v.account.clone(), v.tag.clone(), v.currency.clone())
    }
}

/// Profit and loss per account (WatchAccountPnl), keyed by account.
#[derive(Debug, Clone, Copy)]
pub struct AccountPnl;

impl Kind for AccountPnl {
    type Message = pb::WatchAccountPnlResponse;
    type Row = pb::AccountPnl;
    type Key = String;
    const NAME: &'static str = "account_pnl";
    async fn open(mut client: Client) -> Result<Streaming<Self::Message>, tonic::Status> {
        Ok(client.watch_account_pnl(pb::WatchAccountPnlRequest::default()).await?.into_inner())
    }
    fn update(m: Self::Message) -> Update<Self> {
        rows_update!(m, |k| k.account)
    }
    fn key(p: &pb::AccountPnl) -> Self::Key {
        p.account.clone()
    }
}

/// Value and profit and loss per position (WatchPositionPnl), keyed like [`Positions`].
#[derive(Debug, Clone, Copy)]
pub struct PositionPnl;

impl Kind for PositionPnl {
    type Message = pb::WatchPositionPnlResponse;
    type Row = pb::PositionPnl;
    type Key = (String, i64);
    const NAME: &'static str = "position_pnl";
    async fn open(mut client: Client) -> Result<Streaming<Self::Message>, tonic::Status> {
        Ok(client.watch_position_pnl(pb::WatchPositionPnlRequest::default()).await?.into_inner())
    }
    fn update(m: Self::Message) -> Update<Self> {
        rows_update!(m, |k| (k.account, k.con_id))
    }
    fn key(p: &pb::PositionPnl) -> Self::Key {
        (p.account.clone(), p.con_id)
    }
}

/// The upstream session's health (WatchHealth): one row. Every message is the whole health, so
/// after the first (the SNAPSHOT) each reads as a RESYNC of that one row, which may change the
/// epoch. It is LIVE while the stream is open: health is about the session, not data.
#[derive(Debug, Clone, Copy)]
pub struct Health;

impl Kind for Health {
    type Message = pb::WatchHealthResponse;
    type Row = pb::Health;
    type Key = ();
    const NAME: &'static str = "health";
    async fn open(mut client: Client) -> Result<Streaming<Self::Message>, tonic::Status> {
        Ok(client.watch_health(pb::WatchHealthRequest {}).await?.into_inner())
    }
    fn update(m: Self::Message) -> Update<Self> {
        let items: Vec<pb::Health> = m.health.into_iter().collect();
        Update {
            kind: if m.seq == 1 { UpdateKind::Snapshot } else { UpdateKind::Resync },
            upserts: items.clone(),
            stamps: Stamps {
                session_epoch: items.first().map_or(0, |h| h.session_epoch),
                seq: m.seq,
                state_version: 0,
                as_of: None,
                freshness: Freshness::live(),
            },
            items,
            removals: Vec::new(),
        }
    }
    fn key(_: &pb::Health) -> Self::Key {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::View;

    fn health(seq: u64, epoch: u64, reason: &str) -> pb::WatchHealthResponse {
        let health = pb::Health { session_epoch: epoch, reason: reason.into(), ..Default::default() };
        pb::WatchHealthResponse { health: Some(health), seq }
    }

    #[test]
    fn every_health_message_is_the_whole_value_and_may_change_the_epoch() {
        let mut v = View::<Health>::new();
        let first = v.apply_message(health(1, 1, "live")).expect("the first message opens");
        assert_eq!(first.kind, UpdateKind::Snapshot);
        // A new upstream session: the epoch changes on an ordinary health message, which is a
        // full set, so it is no gap.
        let next = v.apply_message(health(2, 2, "reconnected")).expect("a new epoch in a full set");
        assert_eq!(next.kind, UpdateKind::Resync);
        assert_eq!(v.rows().get(&()).map(|h| (h.session_epoch, h.reason.as_str())), Some((2, "reconnected")));
        assert_eq!(v.freshness().state, crate::view::FreshnessState::Live);
        assert!(v.apply_message(health(4, 2, "skipped")).is_err(), "a skipped seq is still a gap");
    }

    #[test]
    fn removals_are_keyed_like_rows() {
        let m = pb::WatchAccountSummaryResponse {
            kind: pb::UpdateKind::Delta as i32,
            upserts: vec![pb::SummaryValue {
                account: "DU1".into(),
                tag: "NetLiquidation".into(),
                value: "1".into(),
                currency: "USD".into(),
            }],
            removals: vec![pb::SummaryKey { account: "DU1".into(), tag: "BuyingPower".into(), currency: "USD".into() }],
            ..Default::default()
        };
        let u = Summary::update(m);
        assert_eq!(Summary::key(&u.upserts[0]), ("DU1".to_owned(), "NetLiquidation".to_owned(), "USD".to_owned()));
        assert_eq!(u.removals, [("DU1".to_owned(), "BuyingPower".to_owned(), "USD".to_owned())]);
        let p = PositionPnl::update(pb::WatchPositionPnlResponse {
            removals: vec![pb::PositionKey { account: "DU1".into(), con_id: 7 }],
            ..Default::default()
        });
        let row = pb::PositionPnl { account: "DU1".into(), con_id: 7, ..Default::default() };
        assert_eq!(p.removals, [PositionPnl::key(&row)], "a removal names the row it removes");
    }
}

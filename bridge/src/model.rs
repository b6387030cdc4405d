//! What the bridge writes, as JSON: rows (the gRPC messages' fields, same names), freshness, the
//! stream's change messages and the status entries. Plus the two encodings every name needs:
//! subject/key tokens and the message id.

use std::collections::BTreeMap;
use std::time::SystemTime;

use gateway_proto::pb;
use ibgw_client::Kind;
use serde::{Deserialize, Serialize};

/// How much the data can be trusted, exactly as gateway-svc says it (`gateway.v1.Freshness`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// `LIVE`, `STALE` or `UNKNOWN`.
    pub state: FreshnessState,
    /// When the data went stale (RFC 3339; only when STALE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why it is stale or unknown; empty when LIVE.
    #[serde(default)]
    pub reason: String,
}

/// `gateway.v1.FreshnessState` without the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FreshnessState {
    /// Backed by a live upstream subscription.
    Live,
    /// The last known value, kept while a link is down.
    Stale,
    /// Nothing has been received yet.
    Unknown,
}

impl Freshness {
    /// As `ibgw-client` read it from the wire.
    pub fn from_client(f: &ibgw_client::Freshness) -> Self {
        let state = match f.state {
            ibgw_client::FreshnessState::Live => FreshnessState::Live,
            ibgw_client::FreshnessState::Stale => FreshnessState::Stale,
            ibgw_client::FreshnessState::Unknown => FreshnessState::Unknown,
        };
        Self { state, since: f.since.as_ref().map(timestamp), reason: f.reason.clone() }
    }

    /// The data stopped being live now because of `reason`. An outage already under way keeps
    /// its first `since` and reason, as gateway-svc does.
    pub fn stale_from(&self, reason: &str) -> Self {
        match self.state {
            FreshnessState::Stale => self.clone(),
            FreshnessState::Unknown => Self { state: FreshnessState::Unknown, since: None, reason: reason.into() },
            FreshnessState::Live => {
                Self { state: FreshnessState::Stale, since: Some(rfc3339(SystemTime::now())), reason: reason.into() }
            }
        }
    }
}

/// A protobuf timestamp as RFC 3339 (UTC, nanoseconds when present).
pub fn timestamp(t: &prost_types::Timestamp) -> String {
    jiff::Timestamp::new(t.seconds, t.nanos).map(|t| t.to_string()).unwrap_or_default()
}

/// A system time as RFC 3339.
pub fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t).map(|t| t.to_string()).unwrap_or_default()
}

/// A row of one data kind: identified by a key that names its account.
pub trait Row:
    Clone + PartialEq + std::fmt::Debug + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static
{
    /// What identifies the row (also what a removal carries).
    type Key: Ord + Clone + std::fmt::Debug + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static;
    /// This row's key.
    fn key(&self) -> Self::Key;
    /// The account a key belongs to.
    fn account(key: &Self::Key) -> &str;
    /// The key-value key of a row: `<account>` or `<account>.<rest>`, each part a [`token`].
    fn kv_key(key: &Self::Key) -> String;
    /// The `ibgw-client` kind whose stream carries these rows.
    type Kind: Kind;
    /// A row of that kind's view, as written.
    fn from_view(row: &<Self::Kind as Kind>::Row) -> Self;
    /// The account of a key of that kind's view.
    fn view_account(key: &<Self::Kind as Kind>::Key) -> &str;
}

/// One position (`gateway.v1.Position`, same field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Position {
    pub account: String,
    pub con_id: i64,
    pub symbol: String,
    pub sec_type: String,
    pub exchange: String,
    pub currency: String,
    pub quantity: String,
    pub avg_cost: String,
    pub local_symbol: String,
    pub expiry: String,
    pub strike: String,
    pub right: String,
    pub multiplier: String,
}

/// What identifies a position (`gateway.v1.PositionKey`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PositionKey {
    /// Account code.
    pub account: String,
    /// IB contract id.
    pub con_id: i64,
}

impl From<pb::Position> for Position {
    fn from(p: pb::Position) -> Self {
        Self {
            account: p.account,
            con_id: p.con_id,
            symbol: p.symbol,
            sec_type: p.sec_type,
            exchange: p.exchange,
            currency: p.currency,
            quantity: p.quantity,
            avg_cost: p.avg_cost,
            local_symbol: p.local_symbol,
            expiry: p.expiry,
            strike: p.strike,
            right: p.right,
            multiplier: p.multiplier,
        }
    }
}

impl From<pb::PositionKey> for PositionKey {
    fn from(k: pb::PositionKey) -> Self {
        Self { account: k.account, con_id: k.con_id }
    }
}

impl Row for Position {
    type Key = PositionKey;
    fn key(&self) -> PositionKey {
        PositionKey { account: self.account.clone(), con_id: self.con_id }
    }
    fn account(key: &PositionKey) -> &str {
        &key.account
    }
    fn kv_key(key: &PositionKey) -> String {
        format!("{}.{}", token(&key.account), key.con_id)
    }
    type Kind = ibgw_client::Positions;
    fn from_view(row: &<Self::Kind as Kind>::Row) -> Self {
        Self::from(row.clone())
    }
    fn view_account(key: &<Self::Kind as Kind>::Key) -> &str {
        &key.0
    }
}

/// One account summary value (`gateway.v1.SummaryValue`, same field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryValue {
    /// Account code.
    pub account: String,
    /// IB tag, e.g. "NetLiquidation".
    pub tag: String,
    /// The value as IB sends it.
    pub value: String,
    /// Currency code, or empty.
    pub currency: String,
}

/// What identifies a summary value (`gateway.v1.SummaryKey`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SummaryKey {
    /// Account code.
    pub account: String,
    /// Tag.
    pub tag: String,
    /// Currency.
    pub currency: String,
}

impl From<pb::SummaryValue> for SummaryValue {
    fn from(v: pb::SummaryValue) -> Self {
        Self { account: v.account, tag: v.tag, value: v.value, currency: v.currency }
    }
}

impl From<pb::SummaryKey> for SummaryKey {
    fn from(k: pb::SummaryKey) -> Self {
        Self { account: k.account, tag: k.tag, currency: k.currency }
    }
}

impl Row for SummaryValue {
    type Key = SummaryKey;
    fn key(&self) -> SummaryKey {
        SummaryKey { account: self.account.clone(), tag: self.tag.clone(), currency: self.currency.clone() }
    }
    fn account(key: &SummaryKey) -> &str {
        &key.account
    }
    fn kv_key(key: &SummaryKey) -> String {
        format!("{}.{}.{}", token(&key.account), token(&key.tag), token(&key.currency))
    }
    type Kind = ibgw_client::Summary;
    fn from_view(row: &<Self::Kind as Kind>::Row) -> Self {
        Self::from(row.clone())
    }
    fn view_account(key: &<Self::Kind as Kind>::Key) -> &str {
        &key.0
    }
}

/// One account's profit and loss (`gateway.v1.AccountPnl`, same field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct AccountPnl {
    pub account: String,
    pub daily_pnl: String,
    pub unrealized_pnl: String,
    pub realized_pnl: String,
    pub currency: String,
}

/// What identifies an account's PnL (`gateway.v1.AccountPnlKey`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountPnlKey {
    /// Account code.
    pub account: String,
}

impl From<pb::AccountPnl> for AccountPnl {
    fn from(p: pb::AccountPnl) -> Self {
        Self {
            account: p.account,
            daily_pnl: p.daily_pnl,
            unrealized_pnl: p.unrealized_pnl,
            realized_pnl: p.realized_pnl,
            currency: p.currency,
        }
    }
}

impl From<pb::AccountPnlKey> for AccountPnlKey {
    fn from(k: pb::AccountPnlKey) -> Self {
        Self { account: k.account }
    }
}

impl Row for AccountPnl {
    type Key = AccountPnlKey;
    fn key(&self) -> AccountPnlKey {
        AccountPnlKey { account: self.account.clone() }
    }
    fn account(key: &AccountPnlKey) -> &str {
        &key.account
    }
    fn kv_key(key: &AccountPnlKey) -> String {
        token(&key.account)
    }
    type Kind = ibgw_client::AccountPnl;
    fn from_view(row: &<Self::Kind as Kind>::Row) -> Self {
        Self::from(row.clone())
    }
    fn view_account(key: &<Self::Kind as Kind>::Key) -> &str {
        key
    }
}

/// One position's value and profit and loss (`gateway.v1.PositionPnl`, same field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PositionPnl {
    pub account: String,
    pub con_id: i64,
    pub quantity: String,
    pub market_value: String,
    pub market_price: String,
    pub daily_pnl: String,
    pub unrealized_pnl: String,
    pub realized_pnl: String,
    pub currency: String,
}

impl From<pb::PositionPnl> for PositionPnl {
    fn from(p: pb::PositionPnl) -> Self {
        Self {
            account: p.account,
            con_id: p.con_id,
            quantity: p.quantity,
            market_value: p.market_value,
            market_price: p.market_price,
            daily_pnl: p.daily_pnl,
            unrealized_pnl: p.unrealized_pnl,
            realized_pnl: p.realized_pnl,
            currency: p.currency,
        }
    }
}

impl Row for PositionPnl {
    type Key = PositionKey;
    fn key(&self) -> PositionKey {
        PositionKey { account: self.account.clone(), con_id: self.con_id }
    }
    fn account(key: &PositionKey) -> &str {
        &key.account
    }
    fn kv_key(key: &PositionKey) -> String {
        format!("{}.{}", token(&key.account), key.con_id)
    }
    type Kind = ibgw_client::PositionPnl;
    fn from_view(row: &<Self::Kind as Kind>::Row) -> Self {
        Self::from(row.clone())
    }
    fn view_account(key: &<Self::Kind as Kind>::Key) -> &str {
        &key.0
    }
}

/// What a stream message carries (the gRPC `UpdateKind`s a bridge can produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    /// Live changes, as gateway-svc delivered them.
    Delta,
    /// A reconciliation: exactly what changed since the previous message on this subject, when
    /// the steps in between were not seen one by one (gateway, gateway-svc, NATS or bridge
    /// restart; a gateway-svc RESYNC).
    Resync,
    /// Only the freshness changed.
    Freshness,
}

/// One message of the stream on `<prefix>.<data>.<account>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Change<R: Row> {
    /// `positions`, `summary`, `account_pnl` or `position_pnl`.
    pub data: String,
    /// The account of every row in it.
    pub account: String,
    /// DELTA, RESYNC or FRESHNESS.
    pub kind: ChangeKind,
    /// Position on this subject: 1 for the first message, then +1 per message, no gaps.
    pub seq: u64,
    /// gateway-svc's upstream session generation.
    pub session_epoch: u64,
    /// gateway-svc's state version for this data kind (restarts at 0 with gateway-svc).
    pub state_version: u64,
    /// When gateway-svc last had this data confirmed by upstream (RFC 3339).
    pub as_of: String,
    /// How fresh the account's data is after this message.
    pub freshness: Freshness,
    /// Rows added or changed.
    #[serde(default)]
    pub upserts: Vec<R>,
    /// Rows removed.
    #[serde(default)]
    pub removals: Vec<R::Key>,
    /// True when the change was too large for one message: the next message on this subject
    /// (same `state_version`) continues it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

impl<R: Row> Change<R> {
    /// The `Nats-Msg-Id`: the subject's data and account, gateway-svc's epoch and state version,
    /// this subject's seq, and a digest of the content. The same change published again (a
    /// retry, a bridge restarted mid-publish) has the same id and is stored once.
    pub fn message_id(&self) -> String {
        let content = serde_json::to_vec(&(&self.kind, &self.freshness, &self.upserts, &self.removals, self.more))
            .unwrap_or_default();
        format!(
            "{}.{}.{}.{}.{}.{:016x}",
            self.data,
            token(&self.account),
            self.session_epoch,
            self.state_version,
            self.seq,
            fnv1a(&content)
        )
    }
}

/// One message of the stream on `<prefix>.health`: the health of gateway-svc's upstream session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthChange {
    /// Always `health`.
    pub data: String,
    /// Position on this subject: 1, 2, ... no gaps.
    pub seq: u64,
    /// gateway-svc's upstream session generation.
    pub session_epoch: u64,
    /// When the bridge received this health from gateway-svc (RFC 3339).
    pub as_of: String,
    /// LIVE while the bridge follows gateway-svc; STALE ("gateway-svc unreachable") otherwise.
    pub freshness: Freshness,
    /// `gateway.v1.Health`, as JSON with the proto field names.
    pub health: serde_json::Value,
}

impl HealthChange {
    /// The `Nats-Msg-Id`: epoch, this subject's seq and a digest of the content.
    pub fn message_id(&self) -> String {
        let content = serde_json::to_vec(&(&self.freshness, &self.health)).unwrap_or_default();
        format!("health.{}.{}.{:016x}", self.session_epoch, self.seq, fnv1a(&content))
    }
}

/// The status entry of one subject (`<data>.<account>` in the status bucket): what the rows in
/// the data bucket reflect, and where in the stream to follow on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectStatus {
    /// The subject's last message.
    pub subject: String,
    /// Its `seq`.
    pub seq: u64,
    /// Its stream sequence: follow the subject from `stream_seq + 1`.
    pub stream_seq: u64,
    /// gateway-svc's epoch.
    pub session_epoch: u64,
    /// gateway-svc's state version.
    pub state_version: u64,
    /// As-of (RFC 3339).
    pub as_of: String,
    /// Freshness after that message.
    pub freshness: Freshness,
    /// Rows of the account now in the data bucket.
    pub rows: usize,
}

/// `gateway.v1.Health` as JSON, field names as in the proto, enums by name.
pub fn health_json(h: &pb::Health) -> serde_json::Value {
    let name = |v: i32| pb::SessionState::try_from(v).map(|s| s.as_str_name()).unwrap_or("SESSION_STATE_UNSPECIFIED");
    let farms: Vec<serde_json::Value> = h
        .farms
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "kind": pb::DataFarmKind::try_from(f.kind).map(|k| k.as_str_name()).unwrap_or("DATA_FARM_KIND_UNSPECIFIED"),
                "state": pb::DataFarmState::try_from(f.state).map(|k| k.as_str_name()).unwrap_or("DATA_FARM_STATE_UNSPECIFIED"),
                "since": f.since.as_ref().map(timestamp),
                "code": f.code,
            })
        })
        .collect();
    serde_json::json!({
        "state": name(h.state),
        "reason": h.reason,
        "since": h.since.as_ref().map(timestamp),
        "session_epoch": h.session_epoch,
        "reconnects": h.reconnects,
        "next_attempt_at": h.next_attempt_at.as_ref().map(timestamp),
        "client_id": h.client_id,
        "client_id_conflicts": h.client_id_conflicts,
        "last_probe_rtt_ms": h.last_probe_rtt_ms,
        "upstream": h.upstream,
        "server_version": h.server_version,
        "expected_outage": h.expected_outage,
        "subscribers": h.subscribers,
        "farms": farms,
    })
}

/// A name as one subject or key token: letters, digits and `-` stay; every other byte is `_XX`
/// (hex), so `_` is `_5F`; the empty string is `_`. Reversible and never contains `.`, `*`, `>`.
pub fn token(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The inverse of [`token`] (`None` for something [`token`] never produces).
pub fn untoken(t: &str) -> Option<String> {
    if t == "_" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(t.len());
    let mut it = t.bytes();
    while let Some(b) = it.next() {
        if b == b'_' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// 64-bit FNV-1a: a stable digest (the same bytes give the same value in every build).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Rows grouped by account.
pub type ByAccount<R> = BTreeMap<String, BTreeMap<<R as Row>::Key, R>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_stay_single_tokens() {
        for s in ["DU1234567", "", "_", "Net.Liq", "$LEDGER:ALL", "a b*c>d", "é"] {
            let t = token(s);
            assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
            assert_eq!(untoken(&t).as_deref(), Some(s), "{s:?} -> {t}");
        }
        assert_eq!(token("DU1234567"), "DU1234567");
        assert_eq!(token(""), "_");
        assert_eq!(token("_"), "_5F");
    }

    #[test]
    fn the_same_change_has_the_same_id_and_any_difference_changes_it() {
        let change = Change::<Position> {
            data: "positions".into(),
            account: "DU1".into(),
            kind: ChangeKind::Delta,
            seq: 7,
            session_epoch: 2,
            state_version: 41,
            as_of: "2026-01-01T00:00:00Z".into(),
            freshness: Freshness { state: FreshnessState::Live, since: None, reason: String::new() },
            upserts: Vec::new(),
            removals: vec![PositionKey { account: "DU1".into(), con_id: 265598 }],
            more: false,
        };
        let id = change.message_id();
        assert!(id.starts_with("positions.DU1.2.41.7."), "{id}");
        let later_as_of = Change { as_of: "2026-01-01T00:00:01Z".into(), ..change.clone() };
        assert_eq!(later_as_of.message_id(), id, "as_of is not part of the change");
        let other_seq = Change { seq: 8, ..change.clone() };
        assert_ne!(other_seq.message_id(), id);
        let stale = Change { freshness: change.freshness.stale_from("x"), ..change.clone() };
        assert_ne!(stale.message_id(), id);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn stale_keeps_the_first_since() {
        let live = Freshness { state: FreshnessState::Live, since: None, reason: String::new() };
        let s1 = live.stale_from("gateway-svc unreachable");
        assert_eq!(s1.state, FreshnessState::Stale);
        assert!(s1.since.is_some());
        assert_eq!(s1.stale_from("other"), s1);
    }
}

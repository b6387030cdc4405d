//! Fault kinds and the time windows during which they apply.

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::farm::{FarmState, Notice};

/// A fault to inject, as posted to `POST /faults` or scheduled in a scenario.
///
/// JSON form: `{"kind": "restart", "down_ms": 500}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The gateway process restarts: every connection is dropped, the port refuses connections
    /// for `down_ms`, then it listens again. Data survives (it lives at IB, not in the gateway).
    Restart {
        /// How long the port refuses connections.
        down_ms: u64,
    },
    /// The port refuses new connections for `duration_ms`; existing ones are untouched.
    Refuse {
        /// Window length.
        duration_ms: u64,
    },
    /// New connections are accepted and closed at once (socat in front of a stopped gateway).
    AcceptThenClose {
        /// Window length.
        duration_ms: u64,
    },
    /// New connections are accepted and never get a handshake answer.
    StallHandshake {
        /// Window length.
        duration_ms: u64,
    },
    /// Every open connection stops answering without closing: a half-open link. It stays silent
    /// until the client gives up; new connections are served normally.
    Silence,
    /// IB's link drops: 1100 to every client, pushed updates are held, then after `restore_ms`
    /// 1101 (data lost: subscriptions are cancelled) or 1102 (data maintained).
    LinkLost {
        /// Time until connectivity returns.
        restore_ms: u64,
        /// `true` restores with 1101, `false` with 1102.
        #[serde(default)]
        data_lost: bool,
    },
    /// For `duration_ms`, every START_API is answered with 326 and closed, as when the gateway
    /// still holds the id of a dead socket.
    DuplicateId {
        /// Window length.
        duration_ms: u64,
    },
    /// Every open connection gets a frame whose length prefix is invalid (2 bytes).
    MalformedFrame,
    /// Every open connection gets a frame header announcing more than 16 MiB.
    OversizedFrame,
    /// `count` position updates as fast as possible: the quantity of one position steps by +1.
    Burst {
        /// Number of updates.
        count: u32,
        /// Contract to step; defaults to the first position in the book.
        #[serde(default)]
        con_id: Option<i32>,
        /// Account of that contract; defaults to the first position's.
        #[serde(default)]
        account: Option<String>,
    },
    /// IBKR's nightly reset: 1100 with farm-broken notices, data held, then after `duration_ms`
    /// 1102 with farm-OK notices. Connections stay open.
    Maintenance {
        /// Window length.
        duration_ms: u64,
    },
    /// One named farm changes state: every open connection gets the matching notice, and new
    /// connections see the new state. Farms break and recover outside maintenance too.
    Farm {
        /// Farm name, e.g. `usfarm`; must be one of the scenario's farms.
        name: String,
        /// New state.
        state: FarmState,
    },
}

impl Fault {
    /// Stable name for statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Restart { .. } => "restart",
            Fault::Refuse { .. } => "refuse",
            Fault::AcceptThenClose { .. } => "accept_then_close",
            Fault::StallHandshake { .. } => "stall_handshake",
            Fault::Silence => "silence",
            Fault::LinkLost { .. } => "link_lost",
            Fault::DuplicateId { .. } => "duplicate_id",
            Fault::MalformedFrame => "malformed_frame",
            Fault::OversizedFrame => "oversized_frame",
            Fault::Burst { .. } => "burst",
            Fault::Maintenance { .. } => "maintenance",
            Fault::Farm { .. } => "farm",
        }
    }
}

/// Windows that change how new connections are treated.
#[derive(Debug, Default, Clone)]
pub(crate) struct Windows {
    pub(crate) refuse_until: Option<Instant>,
    pub(crate) accept_close_until: Option<Instant>,
    pub(crate) stall_until: Option<Instant>,
    pub(crate) duplicate_id_until: Option<Instant>,
    /// Set while IB's link is down (1100 sent, restore pending).
    pub(crate) link_down: bool,
    /// When the latest link outage ends; overlapping outages extend it.
    pub(crate) link_until: Option<Instant>,
}

impl Windows {
    /// Extends `slot` to at least `now + ms`.
    pub(crate) fn open(slot: &mut Option<Instant>, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        *slot = Some(slot.map_or(until, |u| u.max(until)));
    }

    /// True while `slot` lies in the future.
    pub(crate) fn active(slot: Option<Instant>) -> bool {
        slot.is_some_and(|u| u > Instant::now())
    }
}

/// What an open connection is told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnCommand {
    /// Close now (gateway restart).
    Drop,
    /// Stop answering, keep the socket.
    Silence,
    /// IB link lost: 1100, then the notices of the farms it broke.
    LinkLost { farms: Vec<Notice> },
    /// IB link back (`data_lost` picks 1101 over 1102), then the notices of the farms it restored.
    LinkRestored { data_lost: bool, farms: Vec<Notice> },
    /// Farm notices to pass on as they are.
    Farms(Vec<Notice>),
    /// Write raw bytes that break framing.
    Raw(Vec<u8>),
}

/// Bytes of a frame with an invalid length prefix: clients accept only 4..=16 MiB.
pub(crate) fn malformed_frame() -> Vec<u8> {
    vec![0, 0, 0, 2, 0xde, 0xad]
}

/// A header announcing a 16 MiB + 1 frame, followed by a few bytes of it.
pub(crate) fn oversized_frame() -> Vec<u8> {
    let mut v = (0x0100_0001u32).to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 1, 5]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_as_tagged_json() {
        let f: Fault =
            serde_json::from_str(r#"{"kind":"link_lost","restore_ms":100,"data_lost":true}"#).unwrap_or(Fault::Silence);
        assert_eq!(f, Fault::LinkLost { restore_ms: 100, data_lost: true });
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"restart"}"#).is_err(), "down_ms is required");
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"meteor"}"#).is_err());
        let text = serde_json::to_string(&Fault::Silence).unwrap_or_default();
        assert_eq!(text, r#"{"kind":"silence"}"#);
        let f: Result<Fault, _> = serde_json::from_str(r#"{"kind":"farm","name":"usfarm","state":"broken"}"#);
        assert_eq!(f.ok(), Some(Fault::Farm { name: "usfarm".into(), state: FarmState::Broken }));
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"farm","name":"usfarm","state":"down"}"#).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn windows_expire() {
        let mut w = Windows::default();
        Windows::open(&mut w.refuse_until, 100);
        assert!(Windows::active(w.refuse_until));
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(!Windows::active(w.refuse_until));
    }
}

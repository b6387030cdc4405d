//! The session's health: state, reason, counters. Published on a `watch`; every reader (gRPC
//! health, `/readyz`, metrics, `GetHealth`) looks at the same value and never asks IB.

use std::time::SystemTime;

use crate::farm::Farm;

/// Session states of the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Dialling and handshaking.
    Connecting,
    /// Connected, subscribing and reconciling.
    Syncing,
    /// Live.
    Ready,
    /// Connected, but IB reports trouble (1100, farms down).
    Degraded,
    /// Disconnected, waiting for the next attempt.
    Reconnecting,
    /// Shut down.
    Stopped,
}

impl SessionState {
    /// Every state, for metrics that export one gauge per state.
    pub const ALL: [SessionState; 6] = [
        SessionState::Connecting,
        SessionState::Syncing,
        SessionState::Ready,
        SessionState::Degraded,
        SessionState::Reconnecting,
        SessionState::Stopped,
    ];

    /// Lower-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Syncing => "syncing",
            SessionState::Ready => "ready",
            SessionState::Degraded => "degraded",
            SessionState::Reconnecting => "reconnecting",
            SessionState::Stopped => "stopped",
        }
    }
}

/// Everything health reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Current state.
    pub state: SessionState,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: SystemTime,
    /// Upstream session generation.
    pub epoch: u64,
    /// Sessions re-established since start (not failed attempts).
    pub reconnects: u64,
    /// When the next connection attempt is due (Reconnecting).
    pub next_attempt_at: Option<SystemTime>,
    /// Client id in use.
    pub client_id: i32,
    /// 326 answers received.
    pub client_id_conflicts: u64,
    /// Last liveness-probe round trip. Refreshed in place by every probe, without a change of
    /// its own (no new `version`, nothing on the change feed): a link that answers is no news.
    pub last_probe_rtt_ms: f64,
    /// Gateway address.
    pub upstream: String,
    /// Negotiated server version, 0 when disconnected.
    pub server_version: i32,
    /// The current outage falls inside a maintenance window.
    pub expected_outage: bool,
    /// Data farms as the gateway last reported them, by name. Informational: no farm carries
    /// account data.
    pub farms: Vec<Farm>,
    /// Changes of this value since start: orders the change feed (see `State::update_health`).
    pub version: u64,
}

impl Health {
    /// Initial health before the first connection attempt.
    pub fn starting(upstream: &str, client_id: i32) -> Self {
        Self {
            state: SessionState::Connecting,
            reason: format!("connecting to {upstream}"),
            since: SystemTime::now(),
            epoch: 0,
            reconnects: 0,
            next_attempt_at: None,
            client_id,
            client_id_conflicts: 0,
            last_probe_rtt_ms: 0.0,
            upstream: upstream.to_owned(),
            server_version: 0,
            expected_outage: false,
            farms: Vec::new(),
            version: 0,
        }
    }

    /// True when data flows live: the only state in which the service reports SERVING.
    pub fn is_ready(&self) -> bool {
        self.state == SessionState::Ready
    }
}

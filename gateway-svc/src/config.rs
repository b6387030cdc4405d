//! Configuration: defaults, then an optional TOML file, then `IBGW__SECTION__KEY` environment
//! variables. Validated once at start-up; every problem is one readable line.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Environment prefix: `IBGW__UPSTREAM__ADDRESS=127.0.0.1:4001`.
pub const ENV_PREFIX: &str = "IBGW";

pub use ibgw_kit::telemetry::{LogFormat, LogSettings};
pub use ibgw_kit::{ConfigError, Secret};

/// Where the configuration comes from: `IBGW__…` variables, and `./gateway.toml` when no file
/// is named.
const LAYERS: ibgw_kit::config::Layers<'static> =
    ibgw_kit::config::Layers { env_prefix: ENV_PREFIX, default_file: "gateway" };

/// Everything the service can be told.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The IB Gateway / TWS to dial.
    pub upstream: UpstreamSettings,
    /// The gRPC server.
    pub grpc: GrpcSettings,
    /// The ops HTTP server (`/metrics`, `/healthz`, `/readyz`).
    pub ops: OpsSettings,
    /// The TWS-protocol front door for unmodified IB API programs.
    pub tws_api: TwsApiSettings,
    /// Logging.
    pub log: LogSettings,
    /// Shutdown.
    pub shutdown: ShutdownSettings,
    /// Access control.
    pub auth: AuthSettings,
    /// Maintenance windows (expected outages).
    pub maintenance: crate::maintenance::MaintenanceSettings,
}

/// Upstream session settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSettings {
    /// `host:port` of the gateway (4002 paper, 4001 live; 4004/4003 behind the gnzsnz socat).
    pub address: String,
    /// API client id. Kept across reconnects: the gateway frees it once it notices the old socket.
    pub client_id: i32,
    /// A single reserved id to try after repeated 326 answers; never a random one.
    pub fallback_client_id: Option<i32>,
    /// Consecutive 326 answers before the fallback id is tried.
    pub conflicts_before_fallback: u32,
    /// TCP connect + API handshake + START_API must finish within this.
    pub connect_timeout_ms: u64,
    /// Subscribing and receiving the first full positions and summary must finish within this.
    pub sync_timeout_ms: u64,
    /// Probe the session with `reqCurrentTime` after this long without upstream traffic.
    pub probe_idle_ms: u64,
    /// A probe unanswered for this long recycles the socket (half-open link).
    pub probe_timeout_ms: u64,
    /// First reconnect delay.
    pub backoff_initial_ms: u64,
    /// Longest reconnect delay.
    pub backoff_max_ms: u64,
    /// A session that stayed ready this long resets the backoff.
    pub backoff_reset_after_ms: u64,
    /// Frames buffered per upstream subscription before the crate drops the oldest (a lag is
    /// answered by resubscribing and reconciling).
    pub channel_capacity: usize,
    /// Most per-position PnL subscriptions (`reqPnLSingle`) held at once; positions beyond it get
    /// no PnL row. IB paces requests at 50 a second, and each is one request.
    pub max_position_pnl: usize,
    /// Most messages a second sent to the gateway (IB's limit is 50; above it, error 100 and a
    /// sustained overrun drops the connection).
    pub max_messages_per_second: u32,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:4002".into(),
            client_id: 1,
            fallback_client_id: None,
            conflicts_before_fallback: 3,
            connect_timeout_ms: 5_000,
            sync_timeout_ms: 10_000,
            // A silent link is detected within 1.5 s idle + one 0.5 s check tick + 1.5 s
            // unanswered, and replaced after at most one 0.8 s backoff step: about 4.3 s, under
            // the 5 s goal with room to spare. A gateway answers reqCurrentTime in milliseconds.
            // Idle probing costs one reqCurrentTime per 1.5 s, about 1 % of IB's 50 messages/s.
            probe_idle_ms: 1_500,
            probe_timeout_ms: 1_500,
            // Never more than 2 attempts a second (the floor), and at most 0.8 s between a
            // gateway's port accepting again and our next attempt, whatever the outage length.
            backoff_initial_ms: 500,
            backoff_max_ms: 800,
            backoff_reset_after_ms: 60_000,
            channel_capacity: 16_384,
            max_position_pnl: 100,
            max_messages_per_second: 40,
        }
    }
}

/// IB asks clients not to send `reqCurrentTime` more often than about once a second.
pub const MIN_PROBE_SPACING: Duration = Duration::from_millis(1_100);

impl UpstreamSettings {
    /// Connect/handshake deadline.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// Sync deadline.
    pub fn sync_timeout(&self) -> Duration {
        Duration::from_millis(self.sync_timeout_ms)
    }
    /// Idle time before a probe, never below [`MIN_PROBE_SPACING`].
    pub fn probe_idle(&self) -> Duration {
        Duration::from_millis(self.probe_idle_ms).max(MIN_PROBE_SPACING)
    }
    /// Probe deadline.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }
}

/// gRPC server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    /// Listen address.
    pub listen: String,
    /// Deadline for unary calls (until response headers).
    pub unary_timeout_ms: u64,
    /// Concurrent requests per HTTP/2 connection; more are shed with RESOURCE_EXHAUSTED.
    pub concurrency_per_connection: usize,
    /// Open streams across all clients; more get RESOURCE_EXHAUSTED.
    pub max_subscribers: usize,
    /// HTTP/2 keepalive ping interval, so dead dashboards are reaped.
    pub keepalive_interval_ms: u64,
    /// HTTP/2 keepalive ping timeout.
    pub keepalive_timeout_ms: u64,
    /// Serve TLS with this PEM certificate chain (together with `tls_key_path`); plaintext when
    /// both are unset.
    pub tls_cert_path: Option<String>,
    /// PEM private key for `tls_cert_path`.
    pub tls_key_path: Option<String>,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            unary_timeout_ms: 5_000,
            concurrency_per_connection: 256,
            max_subscribers: 20_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
            tls_cert_path: None,
            tls_key_path: None,
        }
    }
}

/// Ops HTTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    /// Listen address for `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9464".into() }
    }
}

/// The TWS-protocol front door: a port that speaks the gateway side of the TWS API, so IB API
/// programs (ib_async, IB's clients, Rust `ibapi`) share the one session by changing only the
/// host and port they connect to.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwsApiSettings {
    /// Serve it (off in `serve` unless set; the demo turns it on).
    pub enabled: bool,
    /// Listen address. The protocol carries no credentials, so a non-loopback address needs
    /// `auth.allow_unauthenticated_non_loopback`.
    pub listen: String,
    /// Connected API clients at most; the next one is accepted and closed at once, as a gateway
    /// does at its limit.
    pub max_clients: usize,
}

impl Default for TwsApiSettings {
    fn default() -> Self {
        Self { enabled: false, listen: "127.0.0.1:4012".into(), max_clients: 2_048 }
    }
}

/// Shutdown settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After SIGTERM, exit within this even if something hangs.
    pub grace_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { grace_ms: 5_000 }
    }
}

/// Access control.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Bearer token every RPC must present (`authorization: Bearer …`). Required to bind gRPC to
    /// a non-loopback address.
    pub token: Option<Secret>,
    /// Bind a non-loopback address without a token anyway (logged loudly at start-up).
    pub allow_unauthenticated_non_loopback: bool,
    /// Accept `token` on a non-loopback address without TLS, although every client then sends it
    /// in clear (logged loudly at start-up). For networks that never leave the host, such as a
    /// compose network.
    pub allow_token_without_tls: bool,
}

/// Parsed, validated listen addresses and durations.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// gRPC.
    pub grpc: SocketAddr,
    /// Ops HTTP.
    pub ops: SocketAddr,
    /// The TWS front door, when enabled.
    pub tws_api: Option<SocketAddr>,
}

impl Settings {
    /// Loads defaults, then `file` (required when given, else an optional `gateway.toml` in the
    /// working directory), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let settings: Settings = LAYERS.load(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks everything that can be checked without touching the network.
    pub fn validate(&self) -> Result<Listen, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        let addr = |key: &str, v: &str| -> Result<SocketAddr, ConfigError> {
            v.parse().map_err(|_| ConfigError(format!("{key} = {v:?} is not an address like 127.0.0.1:50051")))
        };
        let grpc = addr("grpc.listen", &self.grpc.listen)?;
        let ops = addr("ops.listen", &self.ops.listen)?;
        let tws_api = if self.tws_api.enabled { Some(addr("tws_api.listen", &self.tws_api.listen)?) } else { None };
        if let Some(tws) = tws_api.filter(|a| !a.ip().is_loopback())
            && !self.auth.allow_unauthenticated_non_loopback
        {
            return bad(format!(
                "tws_api.listen = {tws} is not loopback and the TWS protocol carries no credentials: \
                 bind it to loopback, or set auth.allow_unauthenticated_non_loopback = true"
            ));
        }
        if self.tws_api.max_clients == 0 {
            return bad("tws_api.max_clients must be > 0".into());
        }
        let u = &self.upstream;
        if u.address
            .rsplit_once(':')
            .and_then(|(h, p)| (!h.is_empty()).then_some(p))
            .and_then(|p| p.parse::<u16>().ok())
            .is_none()
        {
            return bad(format!("upstream.address = {:?} is not host:port", u.address));
        }
        if u.client_id < 0 {
            return bad(format!("upstream.client_id = {} must be ≥ 0", u.client_id));
        }
        if u.fallback_client_id == Some(u.client_id) {
            return bad("upstream.fallback_client_id must differ from upstream.client_id".into());
        }
        for (key, v) in [
            ("upstream.connect_timeout_ms", u.connect_timeout_ms),
            ("upstream.sync_timeout_ms", u.sync_timeout_ms),
            ("upstream.probe_timeout_ms", u.probe_timeout_ms),
            ("upstream.backoff_initial_ms", u.backoff_initial_ms),
            ("grpc.unary_timeout_ms", self.grpc.unary_timeout_ms),
            ("shutdown.grace_ms", self.shutdown.grace_ms),
        ] {
            if v == 0 {
                return bad(format!("{key} must be > 0"));
            }
        }
        if u.channel_capacity == 0 {
            return bad("upstream.channel_capacity must be > 0".into());
        }
        if !(1..=50).contains(&u.max_messages_per_second) {
            return bad("upstream.max_messages_per_second must be between 1 and 50 (IB's pacing limit)".into());
        }
        if u.backoff_max_ms < u.backoff_initial_ms {
            return bad("upstream.backoff_max_ms must be ≥ upstream.backoff_initial_ms".into());
        }
        if self.grpc.concurrency_per_connection == 0 || self.grpc.max_subscribers == 0 {
            return bad("grpc.concurrency_per_connection and grpc.max_subscribers must be > 0".into());
        }
        match (&self.grpc.tls_cert_path, &self.grpc.tls_key_path) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                for (k, p) in [("grpc.tls_cert_path", cert), ("grpc.tls_key_path", key)] {
                    if !Path::new(p).is_file() {
                        return bad(format!("{k} = {p:?} is not a readable file"));
                    }
                }
            }
            _ => return bad("grpc.tls_cert_path and grpc.tls_key_path go together".into()),
        }
        if self.auth.token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return bad("auth.token is set but empty".into());
        }
        if !grpc.ip().is_loopback() && self.auth.token.is_none() && !self.auth.allow_unauthenticated_non_loopback {
            return bad(format!(
                "grpc.listen = {grpc} is not loopback: set auth.token, or auth.allow_unauthenticated_non_loopback = true"
            ));
        }
        if self.token_in_clear(grpc) && !self.auth.allow_token_without_tls {
            return bad(format!(
                "grpc.listen = {grpc} is not loopback and auth.token is set without TLS, so the token would cross \
                 the network in clear: set grpc.tls_cert_path and grpc.tls_key_path, or \
                 auth.allow_token_without_tls = true"
            ));
        }
        crate::maintenance::Schedule::new(&self.maintenance).map_err(ConfigError)?;
        if self.maintenance.retry_interval_ms == 0 {
            return bad("maintenance.retry_interval_ms must be > 0".into());
        }
        if let Err(e) = self.log.check_filter() {
            return bad(format!("log.filter = {:?}: {e}", self.log.filter));
        }
        Ok(Listen { grpc, ops, tws_api })
    }

    /// Whether gRPC on `grpc` would carry the bearer token in clear: a token, a non-loopback
    /// address and no TLS. Refused unless `auth.allow_token_without_tls`, and logged when allowed.
    pub fn token_in_clear(&self, grpc: SocketAddr) -> bool {
        !grpc.ip().is_loopback() && self.auth.token.is_some() && !self.grpc.tls_enabled()
    }
}

impl GrpcSettings {
    /// Whether gRPC is served over TLS (`tls_cert_path` and `tls_key_path` both set).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert_path.is_some() && self.tls_key_path.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let l = Settings::default().validate().expect("defaults validate");
        assert_eq!(l.grpc.to_string(), "127.0.0.1:50051");
        assert_eq!(l.ops.to_string(), "127.0.0.1:9464");
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let mut s = Settings::default();
        s.grpc.listen = "0.0.0.0:50051".into();
        let err = s.validate().expect_err("refused");
        assert!(err.to_string().contains("not loopback"), "{err}");
        s.auth.token = Some("s3cret".into());
        s.auth.allow_token_without_tls = true;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_token_off_loopback_needs_tls_or_an_explicit_allowance() {
        let mut s = Settings::default();
        s.grpc.listen = "0.0.0.0:50051".into();
        s.auth.token = Some("s3cret".into());
        let err = s.validate().expect_err("a token in clear is refused").to_string();
        assert!(err.contains("auth.allow_token_without_tls") && err.contains("grpc.tls_cert_path"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(s.token_in_clear("0.0.0.0:50051".parse().unwrap()));
        s.auth.allow_token_without_tls = true;
        assert!(s.validate().is_ok());
        // On loopback the token never leaves the host: no TLS needed, nothing to allow.
        let mut s = Settings::default();
        s.auth.token = Some("s3cret".into());
        assert!(s.validate().is_ok());
        assert!(!s.token_in_clear("127.0.0.1:50051".parse().unwrap()));
        // With TLS configured the token is encrypted.
        let mut s = Settings::default();
        s.auth.token = Some("s3cret".into());
        s.grpc.tls_cert_path = Some("cert.pem".into());
        s.grpc.tls_key_path = Some("key.pem".into());
        assert!(!s.token_in_clear("0.0.0.0:50051".parse().unwrap()));
    }

    #[test]
    fn the_tws_front_door_is_off_by_default_and_loopback_only_unless_allowed() {
        let mut s = Settings::default();
        assert_eq!(s.validate().expect("defaults").tws_api, None);
        s.tws_api.enabled = true;
        assert_eq!(s.validate().expect("loopback").tws_api.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:4012"));
        s.tws_api.listen = "0.0.0.0:4012".into();
        let err = s.validate().expect_err("refused").to_string();
        assert!(err.contains("tws_api.listen") && err.contains("allow_unauthenticated_non_loopback"), "{err}");
        s.auth.allow_unauthenticated_non_loopback = true;
        assert!(s.validate().is_ok());
        s.tws_api.listen = "nope".into();
        assert!(s.validate().unwrap_err().to_string().contains("tws_api.listen"));
    }

    #[test]
    fn secrets_are_redacted() {
        let mut s = Settings::default();
        s.auth.token = Some("hunter2".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut s = Settings::default();
        s.upstream.address = "nope".into();
        assert!(s.validate().unwrap_err().to_string().contains("upstream.address"));
        let mut s = Settings::default();
        s.grpc.unary_timeout_ms = 0;
        assert!(s.validate().unwrap_err().to_string().contains("grpc.unary_timeout_ms"));
    }

    #[test]
    fn probe_spacing_has_a_floor() {
        let u = UpstreamSettings { probe_idle_ms: 10, ..UpstreamSettings::default() };
        assert_eq!(u.probe_idle(), MIN_PROBE_SPACING);
    }
}

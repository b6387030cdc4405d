//! Configuration: defaults, then an optional TOML file, then `IBGW__SECTION__KEY` environment
//! variables, read into [`Settings`] (the documented surface: keys, units, defaults). Validated
//! once, by [`Settings::validate`], into [`Config`]: durations are `Duration`s, addresses
//! `SocketAddr`s and the reconnect backoff a policy, and the rest of the service receives only
//! that. Every problem is one readable line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ibgw_kit::BackoffPolicy;

use serde::Deserialize;

/// Environment prefix: `IBGW__UPSTREAM__ADDRESS=127.0.0.1:4001`.
pub(crate) const ENV_PREFIX: &str = "IBGW";

pub use ibgw_kit::ConfigError;
pub(crate) use ibgw_kit::Secret;
pub(crate) use ibgw_kit::telemetry::LogSettings;

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

/// The validated configuration the service runs on. Made only by [`Settings::validate`], so
/// holding one means every check has passed.
#[derive(Debug, Clone)]
pub struct Config {
    /// The IB Gateway / TWS to dial.
    pub upstream: Upstream,
    /// The gRPC server.
    pub grpc: Grpc,
    /// The ops HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_listen: SocketAddr,
    /// The TWS front door, when enabled.
    pub tws_api: Option<TwsApi>,
    /// Logging (the filter parses).
    pub log: LogSettings,
    /// After SIGTERM, exit within this even if something hangs.
    pub shutdown_grace: Duration,
    /// Access control.
    pub auth: AuthSettings,
    /// Maintenance windows and the retry cadence inside them.
    pub maintenance: Maintenance,
}

/// The upstream session, validated (see [`UpstreamSettings`] for what each value means).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` of the gateway.
    pub address: String,
    /// API client id (≥ 0).
    pub client_id: i32,
    /// The reserved id to try after repeated 326 answers (never `client_id`).
    pub fallback_client_id: Option<i32>,
    /// Consecutive 326 answers before the fallback id is tried.
    pub conflicts_before_fallback: u32,
    /// TCP connect + API handshake + START_API deadline.
    pub connect_timeout: Duration,
    /// Subscribe-and-first-full-set deadline.
    pub sync_timeout: Duration,
    /// Idle time before a probe, never below [`MIN_PROBE_SPACING`].
    pub probe_idle: Duration,
    /// Probe deadline.
    pub probe_timeout: Duration,
    /// Reconnect delays.
    pub backoff: BackoffPolicy,
    /// A session that stayed ready this long resets the backoff.
    pub backoff_reset_after: Duration,
    /// Frames buffered per upstream subscription (> 0).
    pub channel_capacity: usize,
    /// Most per-position PnL subscriptions held at once.
    pub max_position_pnl: usize,
    /// Most messages a second sent to the gateway (1 to 50).
    pub max_messages_per_second: u32,
}

impl Default for Upstream {
    /// The documented defaults (a test checks that they validate).
    fn default() -> Self {
        let d = UpstreamSettings::default();
        Upstream {
            address: d.address,
            client_id: d.client_id,
            fallback_client_id: d.fallback_client_id,
            conflicts_before_fallback: d.conflicts_before_fallback,
            connect_timeout: Duration::from_millis(d.connect_timeout_ms),
            sync_timeout: Duration::from_millis(d.sync_timeout_ms),
            probe_idle: Duration::from_millis(d.probe_idle_ms).max(MIN_PROBE_SPACING),
            probe_timeout: Duration::from_millis(d.probe_timeout_ms),
            backoff: BackoffPolicy::clamped(
                Duration::from_millis(d.backoff_initial_ms),
                Duration::from_millis(d.backoff_max_ms),
            ),
            backoff_reset_after: Duration::from_millis(d.backoff_reset_after_ms),
            channel_capacity: d.channel_capacity,
            max_position_pnl: d.max_position_pnl,
            max_messages_per_second: d.max_messages_per_second,
        }
    }
}

/// The gRPC server, validated.
#[derive(Debug, Clone)]
pub struct Grpc {
    /// Listen address.
    pub listen: SocketAddr,
    /// Deadline for unary calls (until response headers).
    pub unary_timeout: Duration,
    /// Concurrent requests per HTTP/2 connection (> 0).
    pub concurrency_per_connection: usize,
    /// Open streams across all clients (> 0).
    pub max_subscribers: usize,
    /// HTTP/2 keepalive ping interval (> 0).
    pub keepalive_interval: Duration,
    /// HTTP/2 keepalive ping timeout (> 0).
    pub keepalive_timeout: Duration,
    /// TLS, when both files are configured (each was a readable file at validation).
    pub tls: Option<TlsFiles>,
}

/// The PEM files gRPC serves TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert_path: PathBuf,
    /// Private key.
    pub key_path: PathBuf,
}

/// The TWS front door, validated (present only when enabled).
#[derive(Debug, Clone, Copy)]
pub struct TwsApi {
    /// Listen address (loopback unless explicitly allowed).
    pub listen: SocketAddr,
    /// Connected API clients at most (> 0).
    pub max_clients: usize,
}

pub(crate) use crate::maintenance::Maintenance;

impl Config {
    /// Reads and validates: [`Settings::read`], then [`Settings::validate`].
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Settings::read(file)?.validate()
    }

    /// Whether gRPC carries the bearer token in clear: a token, a non-loopback address and no
    /// TLS. Refused unless `auth.allow_token_without_tls`, and logged when allowed.
    pub fn token_in_clear(&self) -> bool {
        token_in_clear(self.grpc.listen, self.auth.token.is_some(), self.grpc.tls.is_some())
    }
}

fn token_in_clear(grpc: SocketAddr, has_token: bool, tls: bool) -> bool {
    !grpc.ip().is_loopback() && has_token && !tls
}

/// `Err` naming `key` when `v` is zero.
fn positive(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return Err(ConfigError(format!("{key} must be > 0")));
    }
    Ok(Duration::from_millis(v))
}

fn addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| ConfigError(format!("{key} = {v:?} is not an address like 127.0.0.1:50051")))
}

impl Settings {
    /// Reads defaults, then `file` (required when given, else an optional `gateway.toml` in the
    /// working directory), then the environment. Nothing is checked beyond the types: that is
    /// [`Settings::validate`].
    pub fn read(file: Option<&Path>) -> Result<Settings, ConfigError> {
        LAYERS.load(file)
    }

    /// Checks everything that can be checked without touching the network, once, and returns the
    /// typed configuration.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        let grpc = self.grpc.validate()?;
        let ops_listen = addr("ops.listen", &self.ops.listen)?;
        let tws_api = if self.tws_api.enabled {
            let listen = addr("tws_api.listen", &self.tws_api.listen)?;
            if !listen.ip().is_loopback() && !self.auth.allow_unauthenticated_non_loopback {
                return bad(format!(
                    "tws_api.listen = {listen} is not loopback and the TWS protocol carries no credentials: \
                     bind it to loopback, or set auth.allow_unauthenticated_non_loopback = true"
                ));
            }
            Some(TwsApi { listen, max_clients: self.tws_api.max_clients })
        } else {
            None
        };
        if self.tws_api.max_clients == 0 {
            return bad("tws_api.max_clients must be > 0".into());
        }
        let upstream = self.upstream.validate()?;
        if self.auth.token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return bad("auth.token is set but empty".into());
        }
        let g = grpc.listen;
        if !g.ip().is_loopback() && self.auth.token.is_none() && !self.auth.allow_unauthenticated_non_loopback {
            return bad(format!(
                "grpc.listen = {g} is not loopback: set auth.token, or auth.allow_unauthenticated_non_loopback = true"
            ));
        }
        if token_in_clear(g, self.auth.token.is_some(), grpc.tls.is_some()) && !self.auth.allow_token_without_tls {
            return bad(format!(
                "grpc.listen = {g} is not loopback and auth.token is set without TLS, so the token would cross \
                 the network in clear: set grpc.tls_cert_path and grpc.tls_key_path, or \
                 auth.allow_token_without_tls = true"
            ));
        }
        let shutdown_grace = positive("shutdown.grace_ms", self.shutdown.grace_ms)?;
        let schedule = crate::maintenance::Schedule::new(&self.maintenance).map_err(ConfigError)?;
        let retry_interval = positive("maintenance.retry_interval_ms", self.maintenance.retry_interval_ms)?;
        if let Err(e) = self.log.check_filter() {
            return bad(format!("log.filter = {:?}: {e}", self.log.filter));
        }
        Ok(Config {
            upstream,
            grpc,
            ops_listen,
            tws_api,
            log: self.log.clone(),
            shutdown_grace,
            auth: self.auth.clone(),
            maintenance: Maintenance { schedule, retry_interval },
        })
    }
}

impl UpstreamSettings {
    /// The `[upstream]` checks, into [`Upstream`].
    pub fn validate(&self) -> Result<Upstream, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self
            .address
            .rsplit_once(':')
            .and_then(|(h, p)| (!h.is_empty()).then_some(p))
            .and_then(|p| p.parse::<u16>().ok())
            .is_none()
        {
            return bad(format!("upstream.address = {:?} is not host:port", self.address));
        }
        if self.client_id < 0 {
            return bad(format!("upstream.client_id = {} must be ≥ 0", self.client_id));
        }
        if self.fallback_client_id == Some(self.client_id) {
            return bad("upstream.fallback_client_id must differ from upstream.client_id".into());
        }
        let connect_timeout = positive("upstream.connect_timeout_ms", self.connect_timeout_ms)?;
        let sync_timeout = positive("upstream.sync_timeout_ms", self.sync_timeout_ms)?;
        let probe_timeout = positive("upstream.probe_timeout_ms", self.probe_timeout_ms)?;
        let initial = positive("upstream.backoff_initial_ms", self.backoff_initial_ms)?;
        if self.channel_capacity == 0 {
            return bad("upstream.channel_capacity must be > 0".into());
        }
        if !(1..=50).contains(&self.max_messages_per_second) {
            return bad("upstream.max_messages_per_second must be between 1 and 50 (IB's pacing limit)".into());
        }
        let backoff = BackoffPolicy::new(initial, Duration::from_millis(self.backoff_max_ms))
            .map_err(|_| ConfigError("upstream.backoff_max_ms must be ≥ upstream.backoff_initial_ms".into()))?;
        Ok(Upstream {
            address: self.address.clone(),
            client_id: self.client_id,
            fallback_client_id: self.fallback_client_id,
            conflicts_before_fallback: self.conflicts_before_fallback,
            connect_timeout,
            sync_timeout,
            // IB's pacing for reqCurrentTime is a floor, not an error: a smaller value means "as
            // eager as IB allows".
            probe_idle: Duration::from_millis(self.probe_idle_ms).max(MIN_PROBE_SPACING),
            probe_timeout,
            backoff,
            backoff_reset_after: Duration::from_millis(self.backoff_reset_after_ms),
            channel_capacity: self.channel_capacity,
            max_position_pnl: self.max_position_pnl,
            max_messages_per_second: self.max_messages_per_second,
        })
    }
}

impl GrpcSettings {
    /// The `[grpc]` checks, into [`Grpc`]. A zero keepalive is refused: tonic would turn a zero
    /// interval into a ping storm and a zero timeout into closing every connection at its first
    /// ping.
    pub fn validate(&self) -> Result<Grpc, ConfigError> {
        let listen = addr("grpc.listen", &self.listen)?;
        let unary_timeout = positive("grpc.unary_timeout_ms", self.unary_timeout_ms)?;
        let keepalive_interval = positive("grpc.keepalive_interval_ms", self.keepalive_interval_ms)?;
        let keepalive_timeout = positive("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms)?;
        if self.concurrency_per_connection == 0 || self.max_subscribers == 0 {
            return Err(ConfigError("grpc.concurrency_per_connection and grpc.max_subscribers must be > 0".into()));
        }
        let tls = match (&self.tls_cert_path, &self.tls_key_path) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                for (k, p) in [("grpc.tls_cert_path", cert), ("grpc.tls_key_path", key)] {
                    if !Path::new(p).is_file() {
                        return Err(ConfigError(format!("{k} = {p:?} is not a readable file")));
                    }
                }
                Some(TlsFiles { cert_path: cert.into(), key_path: key.into() })
            }
            _ => return Err(ConfigError("grpc.tls_cert_path and grpc.tls_key_path go together".into())),
        };
        Ok(Grpc {
            listen,
            unary_timeout,
            concurrency_per_connection: self.concurrency_per_connection,
            max_subscribers: self.max_subscribers,
            keepalive_interval,
            keepalive_timeout,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let c = Settings::default().validate().expect("defaults validate");
        assert_eq!(c.grpc.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.ops_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.grpc.keepalive_interval, Duration::from_secs(30));
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        assert_eq!(c.upstream.backoff.initial(), Duration::from_millis(500));
        assert_eq!(c.upstream.backoff.max(), Duration::from_millis(800));
        let d = Upstream::default();
        let u = &c.upstream;
        assert_eq!(
            (u.connect_timeout, u.sync_timeout, u.probe_idle, u.probe_timeout, u.backoff, u.backoff_reset_after),
            (d.connect_timeout, d.sync_timeout, d.probe_idle, d.probe_timeout, d.backoff, d.backoff_reset_after),
            "Upstream::default is the validated defaults"
        );
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
        s.auth.allow_token_without_tls = true;
        assert!(s.validate().expect("allowed").token_in_clear());
        // On loopback the token never leaves the host: no TLS needed, nothing to allow.
        let mut s = Settings::default();
        s.auth.token = Some("s3cret".into());
        assert!(!s.validate().expect("loopback").token_in_clear());
        // With TLS configured the token is encrypted.
        assert!(!token_in_clear("0.0.0.0:50051".parse().unwrap(), true, true));
        assert!(token_in_clear("0.0.0.0:50051".parse().unwrap(), true, false));
    }

    #[test]
    fn the_tws_front_door_is_off_by_default_and_loopback_only_unless_allowed() {
        let mut s = Settings::default();
        assert!(s.validate().expect("defaults").tws_api.is_none());
        s.tws_api.enabled = true;
        let door = s.validate().expect("loopback").tws_api.expect("enabled");
        assert_eq!((door.listen.to_string().as_str(), door.max_clients), ("127.0.0.1:4012", 2_048));
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
        let typed = format!("{:?}", s.validate().expect("valid"));
        assert!(!typed.contains("hunter2") && typed.contains("<redacted>"), "{typed}");
    }

    #[test]
    fn bad_values_name_the_key() {
        type Edit = fn(&mut Settings);
        let cases: [(&str, Edit); 9] = [
            ("upstream.address", |s| s.upstream.address = "nope".into()),
            ("grpc.unary_timeout_ms", |s| s.grpc.unary_timeout_ms = 0),
            ("grpc.keepalive_interval_ms", |s| s.grpc.keepalive_interval_ms = 0),
            ("grpc.keepalive_timeout_ms", |s| s.grpc.keepalive_timeout_ms = 0),
            ("upstream.backoff_initial_ms", |s| s.upstream.backoff_initial_ms = 0),
            ("upstream.backoff_max_ms", |s| s.upstream.backoff_max_ms = 100),
            ("shutdown.grace_ms", |s| s.shutdown.grace_ms = 0),
            ("maintenance.retry_interval_ms", |s| s.maintenance.retry_interval_ms = 0),
            ("grpc.tls_key_path", |s| s.grpc.tls_cert_path = Some("cert.pem".into())),
        ];
        for (key, edit) in cases {
            let mut s = Settings::default();
            edit(&mut s);
            let err = s.validate().expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn durations_are_typed_once() {
        let mut s = Settings::default();
        s.upstream.probe_idle_ms = 10;
        s.grpc.keepalive_timeout_ms = 1_234;
        s.upstream.backoff_initial_ms = 50;
        s.upstream.backoff_max_ms = 100;
        let c = s.validate().expect("valid");
        assert_eq!(c.upstream.probe_idle, MIN_PROBE_SPACING, "the probe spacing has a floor");
        assert_eq!(c.grpc.keepalive_timeout, Duration::from_millis(1_234));
        assert_eq!(
            (c.upstream.backoff.initial(), c.upstream.backoff.max()),
            (Duration::from_millis(50), Duration::from_millis(100))
        );
    }
}

//! Configuration: defaults, then an optional TOML file (`--config FILE`, else `./bridge.toml`),
//! then `IBGW_BRIDGE__SECTION__KEY` environment variables. Validated once at start-up; every
//! problem is one readable line (and exit code 64 in the binary).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Environment prefix: `IBGW_BRIDGE__NATS__URL=nats://127.0.0.1:4222`.
pub const ENV_PREFIX: &str = "IBGW_BRIDGE";

pub use ibgw_kit::telemetry::{LogFormat, LogSettings};
pub use ibgw_kit::{ConfigError, Secret};

/// Where the configuration comes from: `IBGW_BRIDGE__…` variables, and `./bridge.toml` when no
/// file is named.
const LAYERS: ibgw_kit::config::Layers<'static> =
    ibgw_kit::config::Layers { env_prefix: ENV_PREFIX, default_file: "bridge" };

/// Everything the bridge can be told.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The gateway-svc to follow.
    pub gateway: GatewaySettings,
    /// The NATS server.
    pub nats: NatsSettings,
    /// The JetStream stream and key-value buckets.
    pub jetstream: JetStreamSettings,
    /// Reconnect and reconcile delays.
    pub retry: RetrySettings,
    /// The ops HTTP server (`/metrics`, `/healthz`, `/readyz`).
    pub ops: OpsSettings,
    /// Logging.
    pub log: LogSettings,
    /// Shutdown.
    pub shutdown: ShutdownSettings,
}

/// The gateway-svc connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// gRPC address: `http://host:port`, `https://host:port` or `host:port`.
    pub address: String,
    /// Bearer token, when gateway-svc requires one (`auth.token` there).
    pub token: Option<Secret>,
    /// PEM CA that signed gateway-svc's certificate; implies TLS.
    pub tls_ca_path: Option<String>,
    /// Connecting must finish within this.
    pub connect_timeout_ms: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self { address: ibgw_client::DEFAULT_ADDR.into(), token: None, tls_ca_path: None, connect_timeout_ms: 3_000 }
    }
}

/// The NATS connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated: `nats://127.0.0.1:4222`.
    pub url: String,
    /// Token authentication.
    pub token: Option<Secret>,
    /// User for user/password authentication (with `password`).
    pub user: Option<String>,
    /// Password for `user`.
    pub password: Option<Secret>,
    /// PEM CA for a TLS server; implies TLS.
    pub tls_ca_path: Option<String>,
    /// Connecting must finish within this.
    pub connect_timeout_ms: u64,
    /// A JetStream request or publish not acknowledged within this counts as failed (the bridge
    /// then reconciles from gateway-svc's state once NATS answers again).
    pub request_timeout_ms: u64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            token: None,
            user: None,
            password: None,
            tls_ca_path: None,
            connect_timeout_ms: 3_000,
            request_timeout_ms: 5_000,
        }
    }
}

/// Names and limits of what the bridge writes into JetStream. Created when missing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetStreamSettings {
    /// Stream that records every change.
    pub stream: String,
    /// First tokens of every subject: `<prefix>.positions.<account>`, `<prefix>.health`, ...
    pub subject_prefix: String,
    /// Bucket with the latest value of every position.
    pub positions_bucket: String,
    /// Bucket with the latest value of every account summary value.
    pub summary_bucket: String,
    /// Bucket with the latest profit and loss of every account.
    pub account_pnl_bucket: String,
    /// Bucket with the latest value and profit and loss of every position.
    pub position_pnl_bucket: String,
    /// Bucket with the latest freshness and stream position per subject, health and the bridge's
    /// heartbeat.
    pub status_bucket: String,
    /// Deduplication window of the stream (same `Nats-Msg-Id` within it: stored once).
    pub duplicate_window_ms: u64,
    /// How long the stream keeps a change (0: forever).
    pub max_age_secs: u64,
    /// Replicas of the stream and buckets (1 on a single server).
    pub replicas: usize,
    /// The heartbeat in the status bucket is rewritten this often; readers treat the data as
    /// stale when it is older than three of these.
    pub heartbeat_ms: u64,
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        Self {
            stream: "IBGW".into(),
            subject_prefix: "ibgw.v1".into(),
            positions_bucket: "ibgw-positions".into(),
            summary_bucket: "ibgw-summary".into(),
            account_pnl_bucket: "ibgw-account-pnl".into(),
            position_pnl_bucket: "ibgw-position-pnl".into(),
            status_bucket: "ibgw-status".into(),
            duplicate_window_ms: 120_000,
            max_age_secs: 7 * 24 * 3600,
            replicas: 1,
            heartbeat_ms: 5_000,
        }
    }
}

/// Delays between attempts (both gateway-svc streams and NATS reconciliation), with jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// First delay.
    pub initial_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self { initial_ms: 200, max_ms: 2_000 }
    }
}

impl RetrySettings {
    /// The backoff policy. [`Settings::validate`] refuses a zero first delay and a cap below it;
    /// a value it never saw is clamped the same way rather than refused here.
    pub fn policy(&self) -> ibgw_kit::BackoffPolicy {
        ibgw_kit::BackoffPolicy::clamped(Duration::from_millis(self.initial_ms), Duration::from_millis(self.max_ms))
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
        Self { listen: "127.0.0.1:9465".into() }
    }
}

/// Shutdown settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After SIGTERM, finish the change in flight and exit within this.
    pub grace_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { grace_ms: 5_000 }
    }
}

impl Settings {
    /// Loads defaults, then `file` (required when given, else an optional `bridge.toml` in the
    /// working directory), then the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let settings: Settings = LAYERS.load(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks everything that can be checked without touching the network; returns the ops
    /// listen address.
    pub fn validate(&self) -> Result<SocketAddr, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        let ops = self.ops.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!("ops.listen = {:?} is not an address like 127.0.0.1:9465", self.ops.listen))
        })?;
        ibgw_client::endpoint(&self.gateway.address, Duration::from_secs(1))
            .map_err(|e| ConfigError(format!("gateway.address: {e}")))?;
        if self.nats.url.split(',').any(|u| u.trim().parse::<async_nats::ServerAddr>().is_err()) {
            return bad(format!("nats.url = {:?} is not a NATS URL like nats://127.0.0.1:4222", self.nats.url));
        }
        for (key, secret) in [("gateway.token", &self.gateway.token), ("nats.token", &self.nats.token)] {
            if secret.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
                return bad(format!("{key} is set but empty"));
            }
        }
        if self.nats.user.is_some() != self.nats.password.is_some() {
            return bad("nats.user and nats.password go together".into());
        }
        if self.nats.token.is_some() && self.nats.user.is_some() {
            return bad("nats.token and nats.user are two ways to authenticate: set one".into());
        }
        for (key, path) in
            [("gateway.tls_ca_path", &self.gateway.tls_ca_path), ("nats.tls_ca_path", &self.nats.tls_ca_path)]
        {
            if let Some(p) = path
                && !Path::new(p).is_file()
            {
                return bad(format!("{key} = {p:?} is not a readable file"));
            }
        }
        let js = &self.jetstream;
        if !is_name(&js.stream) {
            return bad(format!("jetstream.stream = {:?}: use letters, digits, - and _", js.stream));
        }
        let buckets = [
            ("jetstream.positions_bucket", &js.positions_bucket),
            ("jetstream.summary_bucket", &js.summary_bucket),
            ("jetstream.account_pnl_bucket", &js.account_pnl_bucket),
            ("jetstream.position_pnl_bucket", &js.position_pnl_bucket),
            ("jetstream.status_bucket", &js.status_bucket),
        ];
        for (key, b) in buckets {
            if !is_name(b) {
                return bad(format!("{key} = {b:?}: use letters, digits, - and _"));
            }
        }
        let distinct: std::collections::BTreeSet<&String> = buckets.iter().map(|(_, b)| *b).collect();
        if distinct.len() != buckets.len() {
            return bad("the jetstream.*_bucket names must all differ".into());
        }
        if js.subject_prefix.is_empty() || !js.subject_prefix.split('.').all(is_name) {
            return bad(format!(
                "jetstream.subject_prefix = {:?}: dot-separated tokens of letters, digits, - and _",
                js.subject_prefix
            ));
        }
        if js.replicas == 0 || js.replicas > 5 {
            return bad(format!("jetstream.replicas = {} must be 1 to 5", js.replicas));
        }
        for (key, v) in [
            ("gateway.connect_timeout_ms", self.gateway.connect_timeout_ms),
            ("nats.connect_timeout_ms", self.nats.connect_timeout_ms),
            ("nats.request_timeout_ms", self.nats.request_timeout_ms),
            ("jetstream.duplicate_window_ms", js.duplicate_window_ms),
            ("jetstream.heartbeat_ms", js.heartbeat_ms),
            ("retry.initial_ms", self.retry.initial_ms),
            ("shutdown.grace_ms", self.shutdown.grace_ms),
        ] {
            if v == 0 {
                return bad(format!("{key} must be > 0"));
            }
        }
        if self.retry.max_ms < self.retry.initial_ms {
            return bad("retry.max_ms must be ≥ retry.initial_ms".into());
        }
        if js.max_age_secs != 0 && js.max_age_secs * 1000 < js.duplicate_window_ms {
            return bad("jetstream.max_age_secs must cover jetstream.duplicate_window_ms".into());
        }
        if let Err(e) = self.log.check_filter() {
            return bad(format!("log.filter = {:?}: {e}", self.log.filter));
        }
        Ok(ops)
    }
}

/// A stream, bucket or subject token name: letters, digits, `-` and `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let ops = Settings::default().validate().expect("defaults validate");
        assert_eq!(ops.to_string(), "127.0.0.1:9465");
    }

    #[test]
    fn bad_values_name_the_key() {
        type Edit = fn(&mut Settings);
        let cases: [(&str, Edit); 7] = [
            ("ops.listen", |s| s.ops.listen = "nope".into()),
            ("nats.url", |s| s.nats.url = "nats://127.0.0.1:99999".into()),
            ("gateway.address", |s| s.gateway.address = "http://[::".into()),
            ("jetstream.stream", |s| s.jetstream.stream = "a.b".into()),
            ("jetstream.subject_prefix", |s| s.jetstream.subject_prefix = "ibgw.>".into()),
            ("nats.user", |s| s.nats.user = Some("u".into())),
            ("retry.max_ms", |s| s.retry.max_ms = 1),
        ];
        for (key, edit) in cases {
            let mut s = Settings::default();
            edit(&mut s);
            let err = s.validate().expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let mut s = Settings::default();
        s.gateway.token = Some("hunter2".into());
        s.nats.token = Some("swordfish".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("swordfish"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}

//! `gateway-svc health`: asks a running service over grpc.health.v1 whether the upstream session
//! is ready, for compose healthchecks and scripts. Exits 0 only when SERVING.
//!
//! It speaks TLS when the service does. Without `--addr` it reads the service's own configuration
//! (the same file and `IBGW__…` variables as `serve`), so a healthcheck in the service's container
//! follows the service: `grpc.listen` (an unspecified address such as `0.0.0.0` becomes loopback),
//! `https://` when `grpc.tls_cert_path` is set, and that certificate file as the CA to trust. That
//! works for a self-signed certificate and for a chain file that includes its issuer; otherwise
//! pass the CA with `--tls-ca`. The certificate must name the host dialled (e.g. `IP:127.0.0.1`),
//! or `--tls-domain` names what it does carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::{Config, ConfigError};

/// Why a health check could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not a usable address, or options that contradict it.
    #[error("bad address {addr:?}: {why}")]
    Address {
        /// Address as given.
        addr: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An `https://` address, but nothing to verify the service's certificate with.
    #[error("no CA to verify {url} with: pass --tls-ca FILE (or IBGW_HEALTH_TLS_CA)")]
    NoCa {
        /// Address.
        url: String,
    },
    /// The CA file cannot be read.
    #[error("cannot read the TLS CA {path}")]
    CaRead {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The CA file holds no certificate.
    #[error("the TLS CA {path} holds no PEM certificate")]
    CaNotPem {
        /// Path.
        path: String,
    },
    /// The TLS client could not be set up.
    #[error("TLS setup for {url} failed")]
    Tls {
        /// Address.
        url: String,
        /// Cause.
        source: tonic::transport::Error,
    },
    /// No connection (refused, or the TLS handshake failed).
    #[error("cannot reach {addr}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        source: tonic::transport::Error,
    },
    /// No answer in time.
    #[error("no answer from {addr} within {} ms", .timeout.as_millis())]
    Timeout {
        /// Address.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The call failed.
    #[error("health check failed")]
    Call(#[from] tonic::Status),
}

/// Why the address to check could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The service's configuration, read because no address (or no CA) was given, is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The options contradict each other or the address.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// What the command line (or its environment variables) said.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `http://host:port`, `https://host:port` or `host:port`; from the configuration when unset.
    pub addr: Option<String>,
    /// PEM file of the CA to trust (or the self-signed certificate itself).
    pub tls_ca: Option<PathBuf>,
    /// Name the service's certificate must carry, instead of the address's host.
    pub tls_domain: Option<String>,
}

/// Where the service is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// TLS settings, for `https://`.
    pub tls: Option<TargetTls>,
}

/// How to verify the service's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTls {
    /// PEM file of the CA to trust.
    pub ca: PathBuf,
    /// Name to verify the certificate against; the URL's host when `None`.
    pub domain: Option<String>,
}

/// Works out the target from the options; `load` reads the service's configuration and is
/// called only when the options leave something open (no address, or `https://` without a CA).
pub fn resolve<F>(opts: &Options, load: F) -> Result<Target, ResolveError>
where
    F: FnOnce() -> Result<Config, ConfigError>,
{
    let mut load = Some(load);
    let mut settings: Option<Config> = None;
    let mut config = || -> Result<Config, ConfigError> {
        if let Some(s) = &settings {
            return Ok(s.clone());
        }
        let s = (load.take().expect("loaded at most once"))()?;
        settings = Some(s.clone());
        Ok(s)
    };
    let (url, https) = match &opts.addr {
        Some(addr) => {
            let bad = |why| ProbeError::Address { addr: addr.clone(), why };
            let (https, rest) = if let Some(rest) = addr.strip_prefix("https://") {
                (true, rest)
            } else if let Some(rest) = addr.strip_prefix("http://") {
                if opts.tls_ca.is_some() {
                    return Err(bad("--tls-ca needs an https:// address").into());
                }
                (false, rest)
            } else if addr.contains("://") {
                return Err(bad("the scheme must be http:// or https://").into());
            } else {
                (opts.tls_ca.is_some(), addr.as_str())
            };
            (format!("{}://{rest}", if https { "https" } else { "http" }), https)
        }
        None => {
            let s = config()?;
            let https = s.grpc.tls.is_some() || opts.tls_ca.is_some();
            (format!("{}://{}", if https { "https" } else { "http" }, dialable(s.grpc.listen)), https)
        }
    };
    if !https {
        return Ok(Target { url, tls: None });
    }
    let ca = match &opts.tls_ca {
        Some(ca) => ca.clone(),
        None => match config()?.grpc.tls {
            Some(tls) => tls.cert_path,
            None => return Err(ProbeError::NoCa { url }.into()),
        },
    };
    Ok(Target { url, tls: Some(TargetTls { ca, domain: opts.tls_domain.clone() }) })
}

/// The address to dial for a listen address: loopback for an unspecified one (`0.0.0.0`, `[::]`).
pub(crate) fn dialable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Checks `service` ("" for the process) at `addr` (`http://host:port`), in plaintext.
pub async fn check(addr: &str, service: &str, timeout: Duration) -> Result<ServingStatus, ProbeError> {
    check_target(&Target { url: addr.to_owned(), tls: None }, service, timeout).await
}

/// Checks `service` ("" for the process) at `target`, over TLS when it says so. Everything,
/// connecting and the TLS handshake included, must finish within `timeout`.
pub async fn check_target(target: &Target, service: &str, timeout: Duration) -> Result<ServingStatus, ProbeError> {
    let url = &target.url;
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|_| ProbeError::Address { addr: url.clone(), why: "not a URL like http://127.0.0.1:50051" })?
        .connect_timeout(timeout)
        .timeout(timeout);
    if let Some(tls) = &target.tls {
        let mut config = ClientTlsConfig::new().ca_certificate(read_ca(&tls.ca)?);
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        endpoint = endpoint.tls_config(config).map_err(|source| ProbeError::Tls { url: url.clone(), source })?;
    }
    let ask = async {
        let channel = endpoint.connect().await.map_err(|source| ProbeError::Connect { addr: url.clone(), source })?;
        let reply = HealthClient::new(channel).check(HealthCheckRequest { service: service.to_owned() }).await?;
        Ok(reply.into_inner().status())
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| ProbeError::Timeout { addr: url.clone(), timeout })?
}

fn read_ca(path: &Path) -> Result<Certificate, ProbeError> {
    let shown = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| ProbeError::CaRead { path: shown(), source })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ProbeError::CaNotPem { path: shown() });
    }
    Ok(Certificate::from_pem(pem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Settings, TlsFiles};

    fn opts(addr: Option<&str>, ca: Option<&str>) -> Options {
        Options { addr: addr.map(str::to_owned), tls_ca: ca.map(PathBuf::from), tls_domain: None }
    }

    fn never() -> Result<Config, ConfigError> {
        panic!("the configuration is not needed here")
    }

    #[test]
    fn an_explicit_address_needs_no_configuration() {
        let t = resolve(&opts(Some("http://127.0.0.1:1"), None), never).unwrap();
        assert_eq!(t, Target { url: "http://127.0.0.1:1".into(), tls: None });
        let t = resolve(&opts(Some("127.0.0.1:1"), None), never).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:1");
        let t = resolve(&opts(Some("https://localhost:1"), Some("ca.pem")), never).unwrap();
        assert_eq!(t.tls.unwrap().ca, PathBuf::from("ca.pem"));
        // A CA implies TLS for a bare host:port.
        let t = resolve(&opts(Some("localhost:1"), Some("ca.pem")), never).unwrap();
        assert_eq!(t.url, "https://localhost:1");
    }

    #[test]
    fn contradictions_are_refused() {
        let err = resolve(&opts(Some("http://127.0.0.1:1"), Some("ca.pem")), never).unwrap_err();
        assert!(err.to_string().contains("--tls-ca needs an https:// address"), "{err}");
        let err = resolve(&opts(Some("ftp://127.0.0.1:1"), None), never).unwrap_err();
        assert!(err.to_string().contains("http:// or https://"), "{err}");
    }

    #[test]
    fn without_an_address_the_service_configuration_decides() {
        let mut s = Settings::default().validate().expect("defaults");
        s.grpc.listen = "0.0.0.0:50051".parse().unwrap();
        let t = resolve(&opts(None, None), || Ok(s.clone())).unwrap();
        assert_eq!(t, Target { url: "http://127.0.0.1:50051".into(), tls: None });
        s.grpc.listen = "[::]:50051".parse().unwrap();
        s.grpc.tls =
            Some(TlsFiles { cert_path: "/etc/ibgw/tls/cert.pem".into(), key_path: "/etc/ibgw/tls/key.pem".into() });
        let t = resolve(&opts(None, None), || Ok(s.clone())).unwrap();
        assert_eq!(t.url, "https://[::1]:50051");
        assert_eq!(t.tls.unwrap().ca, PathBuf::from("/etc/ibgw/tls/cert.pem"));
        // An explicit CA wins over the service's certificate.
        let t = resolve(&opts(None, Some("ca.pem")), || Ok(s.clone())).unwrap();
        assert_eq!(t.tls.unwrap().ca, PathBuf::from("ca.pem"));
    }

    #[test]
    fn https_without_any_ca_says_how_to_give_one() {
        let err = resolve(&opts(Some("https://localhost:1"), None), || Settings::default().validate()).unwrap_err();
        assert!(err.to_string().contains("--tls-ca"), "{err}");
        let err = resolve(&opts(None, None), || Err(ConfigError("log.filter = \"[\"".into()))).unwrap_err();
        assert!(matches!(err, ResolveError::Config(_)), "{err}");
    }
}

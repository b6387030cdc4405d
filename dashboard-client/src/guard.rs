//! Who may talk to the dashboard, and what every response tells the browser.
//!
//! - **Own names only** (DNS rebinding): a request whose `Host` (or, when present, `Origin`) is not
//!   one of the dashboard's own names gets 403. Own names are the listen address, `localhost`,
//!   `127.0.0.1` and `[::1]`, all on the listen port, plus the `--allowed-host` names.
//! - **Optional token**: with one, every request but `/healthz` needs it, as a cookie (set by
//!   opening `/?token=TOKEN` once), or as `Authorization: Bearer TOKEN`. Without one, only
//!   loopback binds are allowed unless explicitly overridden ([`check_bind`]).
//! - **Security headers** on every response: a strict Content-Security-Policy, `nosniff`,
//!   `no-referrer`, no framing.
//!
//! The token is never logged, echoed or shown by `Debug`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ibgw_kit::Secret;
use tracing::debug;

/// The cookie that carries the token after `/?token=TOKEN`.
pub const COOKIE: &str = "ibgw_dashboard_token";

/// The query parameter that hands the token over once.
pub const QUERY: &str = "token";

/// Same-origin everything, no inline code, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

/// Shortest token accepted.
pub const TOKEN_MIN_LEN: usize = 16;

/// The dashboard's token. `Debug` shows `<redacted>`; the value never leaves this module except
/// through [`Token::matches`].
#[derive(Clone)]
pub struct Token(Secret);

impl Token {
    /// Validates a token: at least [`TOKEN_MIN_LEN`] characters of `A-Z a-z 0-9 - . _ ~`, which
    /// need no escaping in a URL, a cookie or a header. The error never contains the value.
    pub fn new(value: String) -> Result<Self, String> {
        let chars_ok = value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if value.len() < TOKEN_MIN_LEN || !chars_ok {
            return Err(format!(
                "the dashboard token must be at least {TOKEN_MIN_LEN} characters of A-Z a-z 0-9 - . _ ~ \
                 (e.g. openssl rand -hex 32)"
            ));
        }
        Ok(Self(Secret::from(value)))
    }

    /// Whether `presented` is the token, compared without an early exit.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.matches(presented)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Refuses a non-loopback bind without a token, unless explicitly allowed. The error is one line.
pub fn check_bind(listen: SocketAddr, has_token: bool, allow_unauthenticated_non_loopback: bool) -> Result<(), String> {
    if is_loopback(listen.ip()) || has_token || allow_unauthenticated_non_loopback {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the dashboard on {listen}, which is not loopback, without a token: set --web-token \
         (IBGW_DASHBOARD_TOKEN), or pass --allow-unauthenticated-non-loopback if something else restricts access"
    ))
}

/// Loopback, IPv4-mapped IPv6 included.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// A name the dashboard answers to: a host (lower case; IPv6 in brackets, canonical), with or
/// without a port. Without a port it matches the host on any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    host: String,
    port: Option<u16>,
}

impl HostName {
    /// `host` on `port`.
    pub fn new(ip_or_name: &str, port: Option<u16>) -> Option<Self> {
        let (host, _) = parse_authority(ip_or_name)?;
        Some(Self { host, port })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

impl FromStr for HostName {
    type Err = String;

    /// `name`, `name:port`, `1.2.3.4[:port]` or `[v6][:port]`; no scheme, no path.
    fn from_str(s: &str) -> Result<Self, String> {
        parse_authority(s)
            .map(|(host, port)| Self { host, port })
            .ok_or_else(|| "expected HOST or HOST:PORT (e.g. dash.example.com or dash.example.com:8443)".to_owned())
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Splits `host[:port]` and normalises the host; `None` for anything else.
fn parse_authority(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inner.parse().ok()?;
        let port = if after.is_empty() { None } else { Some(after.strip_prefix(':')?) };
        (format!("[{ip}]"), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let valid =
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// Everything a request is checked against.
#[derive(Debug, Clone)]
pub struct Guard {
    names: Vec<HostName>,
    token: Option<Token>,
}

impl Guard {
    /// The own names for a dashboard bound to `listen` (the bound address, so port 0 is
    /// resolved), plus `extra`.
    pub fn new(listen: SocketAddr, extra: &[HostName], token: Option<Token>) -> Self {
        let port = Some(listen.port());
        let bound = match listen.ip().to_canonical() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let mut names: Vec<HostName> =
            [bound.as_str(), "localhost", "127.0.0.1", "[::1]"].iter().filter_map(|h| HostName::new(h, port)).collect();
        names.extend(extra.iter().cloned());
        names.dedup();
        Self { names, token }
    }

    /// Whether a token is required.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// A `Host` header value (or HTTP/2 authority): an own name? Without a port, port 80.
    pub fn host_allowed(&self, value: &str) -> bool {
        parse_authority(value).is_some_and(|(host, port)| self.allowed(&host, port.unwrap_or(80)))
    }

    /// An `Origin` header value: `http(s)://` and an own name? `null` and anything else: no.
    pub fn origin_allowed(&self, value: &str) -> bool {
        let (rest, default_port) = if let Some(r) = value.strip_prefix("http://") {
            (r, 80)
        } else if let Some(r) = value.strip_prefix("https://") {
            (r, 443)
        } else {
            return false;
        };
        parse_authority(rest).is_some_and(|(host, port)| self.allowed(&host, port.unwrap_or(default_port)))
    }

    fn allowed(&self, host: &str, port: u16) -> bool {
        self.names.iter().any(|n| n.matches(host, port))
    }

    /// 403 unless the request names us: every `Host` header and the URI authority (whichever are
    /// present, at least one) and every `Origin` header.
    fn check_names(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), &'static str> {
        let mut named = false;
        for h in headers.get_all(header::HOST) {
            named = true;
            if !h.to_str().is_ok_and(|v| self.host_allowed(v)) {
                return Err("foreign Host");
            }
        }
        if let Some(a) = uri.authority() {
            named = true;
            if !self.host_allowed(a.as_str()) {
                return Err("foreign authority");
            }
        }
        if !named {
            return Err("no Host");
        }
        for o in headers.get_all(header::ORIGIN) {
            if !o.to_str().is_ok_and(|v| self.origin_allowed(v)) {
                return Err("foreign Origin");
            }
        }
        Ok(())
    }

    /// The token check.
    fn check_token(&self, method: &Method, headers: &HeaderMap, uri: &Uri) -> Access {
        let Some(token) = &self.token else { return Access::Granted };
        if uri.path() == "/healthz" {
            return Access::Granted;
        }
        if let Some(presented) = query_token(uri) {
            // Hand-over: set the cookie and drop the token from the address bar.
            if (method == Method::GET || method == Method::HEAD) && token.matches(&presented) {
                return Access::HandOver;
            }
            return Access::Denied;
        }
        if bearer(headers).is_some_and(|t| token.matches(t)) || cookies(headers).any(|t| token.matches(t)) {
            return Access::Granted;
        }
        Access::Denied
    }

    /// The cookie and the redirect to `path` without the token; 401 if there is no token (never).
    fn hand_over(&self, path: &str) -> Response {
        // The token is validated to be cookie- and header-safe, so the header cannot fail; if it
        // did, the user would simply be asked for the token again.
        let cookie = self.token.as_ref().and_then(|t| {
            HeaderValue::from_str(&format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", t.0.expose())).ok()
        });
        let location = HeaderValue::from_str(path).unwrap_or(HeaderValue::from_static("/"));
        match cookie {
            Some(cookie) => (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, cookie),
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response(),
            None => unauthorised(),
        }
    }
}

/// What the token check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No token needed, or the right one presented.
    Granted,
    /// 401.
    Denied,
    /// The right token in the query: set the cookie, redirect to the same path without it.
    HandOver,
}

/// The `token` query parameter, percent-decoded.
fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?;
    // A malformed query still counts as presenting a token when it names the parameter.
    match Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(Query(pairs)) => pairs.into_iter().find(|(k, _)| k == QUERY).map(|(_, v)| v),
        Err(_) => uri.query().is_some_and(|q| q.contains(QUERY)).then(String::new),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Every value of our cookie, across all `Cookie` headers.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"ibgw-dashboard\""))],
        "This dashboard needs its token: open /?token=TOKEN once (a cookie keeps it for the browser session), \
         or send Authorization: Bearer TOKEN.\n",
    )
        .into_response()
}

/// Middleware: own names (403), then the token (401, or the hand-over redirect).
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Err(why) = guard.check_names(req.headers(), req.uri()) {
        debug!(why, host = ?req.headers().get(header::HOST), origin = ?req.headers().get(header::ORIGIN), "refused");
        return (StatusCode::FORBIDDEN, "This dashboard answers only to its own names.\n").into_response();
    }
    match guard.check_token(req.method(), req.headers(), req.uri()) {
        Access::Granted => next.run(req).await,
        Access::Denied => {
            debug!(path = req.uri().path(), "token missing or wrong");
            unauthorised()
        }
        Access::HandOver => guard.hand_over(req.uri().path()),
    }
}

/// Middleware: the security headers, on every response (errors and redirects included).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, extra: &[&str], token: Option<&str>) -> Guard {
        let extra: Vec<HostName> = extra.iter().map(|e| e.parse().unwrap()).collect();
        Guard::new(listen.parse().unwrap(), &extra, token.map(|t| Token::new(t.into()).unwrap()))
    }

    const TOKEN: &str = "0123456789abcdef0123";

    #[test]
    fn own_names_on_the_listen_port() {
        let g = guard("127.0.0.1:8080", &[], None);
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080", "[0:0:0:0:0:0:0:1]:8080"] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "localhost:8081",
            "localhost",
            "127.0.0.1",
            "localhost.:8080",
            "localhost:+8080",
            "localhost:8080/x",
            "user@localhost:8080",
            "",
            "[::1",
            "127.0.0.1:8080:1",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn the_bound_address_and_extra_names() {
        let g = guard("0.0.0.0:8080", &["dash.example.com", "other.example:9000"], None);
        assert!(g.host_allowed("0.0.0.0:8080"));
        assert!(g.host_allowed("dash.example.com"), "a name without a port matches any port");
        assert!(g.host_allowed("dash.example.com:443"));
        assert!(g.host_allowed("other.example:9000"));
        assert!(!g.host_allowed("other.example:8080"));
        assert!(!g.host_allowed("evil.example:8080"));
        let g = guard("[::]:80", &[], None);
        assert!(g.host_allowed("[::]:80"));
        assert!(g.host_allowed("localhost"), "no port means 80");
    }

    #[test]
    fn origins() {
        let g = guard("127.0.0.1:8080", &["dash.example.com:443"], None);
        assert!(g.origin_allowed("http://127.0.0.1:8080"));
        assert!(g.origin_allowed("http://localhost:8080"));
        assert!(g.origin_allowed("https://dash.example.com"));
        for bad in [
            "null",
            "http://evil.example:8080",
            "http://localhost:8081",
            "file://",
            "localhost:8080",
            "http://dash.example.com",
        ] {
            assert!(!g.origin_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn host_names_parse() {
        assert_eq!("Dash.Example.com:8443".parse::<HostName>().unwrap().to_string(), "dash.example.com:8443");
        assert_eq!("[::1]".parse::<HostName>().unwrap().to_string(), "[::1]");
        for bad in ["http://x", "x/y", "x:", "x:99999", "", "[nope]:1"] {
            assert!(bad.parse::<HostName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens() {
        assert!(Token::new("short".into()).is_err());
        assert!(Token::new("0123456789abcdef 123".into()).is_err());
        assert!(Token::new("0123456789abcdef;123".into()).is_err());
        let t = Token::new(TOKEN.into()).unwrap();
        assert!(t.matches(TOKEN));
        assert!(!t.matches("0123456789abcdef012"));
        assert!(!t.matches("0123456789abcdef0124"));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let err = Token::new("secret value that is long".into()).unwrap_err();
        assert!(!err.contains("secret"));
    }

    #[test]
    fn binds() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_bind(a("127.0.0.1:0"), false, false).is_ok());
        assert!(check_bind(a("[::1]:0"), false, false).is_ok());
        assert!(check_bind(a("[::ffff:127.0.0.1]:0"), false, false).is_ok());
        let err = check_bind(a("0.0.0.0:8080"), false, false).unwrap_err();
        assert!(err.contains("0.0.0.0:8080") && !err.contains('\n'), "{err}");
        assert!(check_bind(a("[::]:8080"), false, false).is_err());
        assert!(check_bind(a("0.0.0.0:8080"), true, false).is_ok());
        assert!(check_bind(a("0.0.0.0:8080"), false, true).is_ok());
    }

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn token_checks() {
        let g = guard("127.0.0.1:8080", &[], Some(TOKEN));
        let get = Method::GET;
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let none = HeaderMap::new();
        assert_eq!(g.check_token(&get, &none, &uri("/")), Access::Denied);
        assert_eq!(g.check_token(&get, &none, &uri("/healthz")), Access::Granted);
        let bearer = headers(&[(header::AUTHORIZATION, &format!("Bearer {TOKEN}"))]);
        assert_eq!(g.check_token(&get, &bearer, &uri("/api/state")), Access::Granted);
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer 0123456789abcdef0124")]);
        assert_eq!(g.check_token(&get, &wrong, &uri("/api/state")), Access::Denied);
        let cookie = headers(&[(header::COOKIE, &format!("a=b; {COOKIE}={TOKEN}; c=d"))]);
        assert_eq!(g.check_token(&get, &cookie, &uri("/events")), Access::Granted);
        let other = headers(&[(header::COOKIE, &format!("x{COOKIE}={TOKEN}"))]);
        assert_eq!(g.check_token(&get, &other, &uri("/events")), Access::Denied);

        let handing = uri(&format!("/?a=1&{QUERY}={TOKEN}"));
        assert_eq!(g.check_token(&get, &none, &handing), Access::HandOver);
        assert_eq!(g.check_token(&get, &cookie, &uri("/?token=wrong")), Access::Denied, "a wrong token in the URL");
        assert_eq!(g.check_token(&Method::POST, &none, &handing), Access::Denied);
        let handed = g.hand_over("/");
        assert_eq!(handed.status(), StatusCode::SEE_OTHER);
        assert_eq!(handed.headers()[header::LOCATION], "/");
        let set = handed.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            set.starts_with(&format!("{COOKIE}={TOKEN};"))
                && set.contains("HttpOnly")
                && set.contains("SameSite=Strict")
        );

        let open = guard("127.0.0.1:8080", &[], None);
        assert_eq!(open.check_token(&get, &none, &uri("/api/state")), Access::Granted);
        assert_eq!(open.hand_over("/").status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn name_checks() {
        let g = guard("127.0.0.1:8080", &[], None);
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let host = |v| headers(&[(header::HOST, v)]);
        assert!(g.check_names(&host("127.0.0.1:8080"), &uri("/")).is_ok());
        assert!(g.check_names(&host("evil.example:8080"), &uri("/")).is_err());
        assert!(g.check_names(&HeaderMap::new(), &uri("/")).is_err(), "no Host at all");
        assert!(g.check_names(&HeaderMap::new(), &uri("http://localhost:8080/")).is_ok(), "HTTP/2 authority");
        assert!(g.check_names(&host("localhost:8080"), &uri("http://evil.example:8080/")).is_err());
        let two = headers(&[(header::HOST, "localhost:8080"), (header::HOST, "evil.example:8080")]);
        assert!(g.check_names(&two, &uri("/")).is_err());
        let origin = |o| headers(&[(header::HOST, "localhost:8080"), (header::ORIGIN, o)]);
        assert!(g.check_names(&origin("http://localhost:8080"), &uri("/")).is_ok());
        assert!(g.check_names(&origin("http://evil.example:8080"), &uri("/")).is_err());
        assert!(g.check_names(&origin("null"), &uri("/")).is_err());
    }
}

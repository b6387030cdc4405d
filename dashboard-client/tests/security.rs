//! The real binary over loopback sockets: the non-loopback refusal, own names only, the token
//! hand-over and the security headers on every response, and a token that never reaches the log.
//! No gateway-svc is needed: the page is served (and guarded) while the streams retry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_dashboard-client");
const TOKEN: &str = "t0k3n-for-the-dashboard-tests-5f1c";

fn patience(d: Duration) -> Duration {
    let p: f64 = std::env::var("IBGW_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    d.mul_f64(p.max(1.0))
}

/// A running dashboard: its address and everything it wrote to stderr so far.
struct Dashboard {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
    stderr_closed: mpsc::Receiver<()>,
}

impl Dashboard {
    fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["--gateway", "http://127.0.0.1:1", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "debug")
            .env_remove("IBGW_DASHBOARD_TOKEN")
            .env_remove("IBGW_DASHBOARD_ALLOWED_HOSTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn dashboard-client");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        let (closed, stderr_closed) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("stderr buffer").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = closed.send(());
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(patience(Duration::from_secs(20))).expect("the address line");
        let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("address line {line:?}: {e}; stderr: {}", stderr.lock().expect("stderr buffer"))
        });
        let addr = info["listen"].as_str().expect("listen").to_owned();
        Self { child, addr, stderr, stderr_closed }
    }

    fn port(&self) -> &str {
        self.addr.rsplit_once(':').expect("port").1
    }

    /// One HTTP/1.1 request; returns the status, the headers (names lower case) and the body, or
    /// only the headers for an event stream (which never ends).
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(patience(Duration::from_secs(10)))).expect("timeout");
        let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut r = BufReader::new(s);
        let mut status_line = String::new();
        r.read_line(&mut status_line).expect("status line");
        let status: u16 = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status");
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("header");
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header line");
            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut body = String::new();
        let streaming = headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream"));
        if !streaming {
            r.read_to_string(&mut body).expect("body");
        }
        Response { status, headers, body }
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The drain thread has everything once it reaches EOF.
        self.stderr_closed.recv_timeout(patience(Duration::from_secs(10))).expect("stderr closes");
        self.stderr.lock().expect("stderr buffer").clone()
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn assert_security_headers(&self, what: &str) {
        let csp = self.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP: {self:?}"));
        for directive in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{what}: {csp}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"), "{what}");
    }
}

/// Runs the binary to completion: exit code and stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--gateway", "http://127.0.0.1:1"]).args(args).env_remove("IBGW_DASHBOARD_TOKEN").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run dashboard-client");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_non_loopback_bind_without_a_token_is_refused_in_one_line() {
    // Refused before binding, so nothing listens beyond loopback even for a moment.
    for (args, env) in [
        (vec!["--listen", "0.0.0.0:0"], vec![]),
        (vec!["--listen", "[::]:0"], vec![]),
        (vec!["--listen", "0.0.0.0:0"], vec![("IBGW_DASHBOARD_TOKEN", "")]),
    ] {
        let (code, stderr) = run(&args, &env);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("dashboard-client: refusing") && stderr.contains("--web-token"), "{stderr}");
    }
    let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--web-token", "too short secret"], &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("too short secret"), "the token is not echoed: {stderr}");
}

#[test]
fn foreign_names_get_403_everywhere() {
    let d = Dashboard::start(&["--allowed-host", "dash.example.com"], &[]);
    let port = d.port().to_owned();
    for path in ["/", "/events", "/app.js", "/app.css", "/api/state", "/healthz", "/nope"] {
        let r = d.get(path, &[("Host", &format!("evil.example:{port}"))]);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        r.assert_security_headers(path);
        let r = d.get(path, &[("Origin", &format!("http://evil.example:{port}"))]);
        assert_eq!(r.status, 403, "{path} with a foreign Origin");
    }
    for host in [d.addr.clone(), format!("localhost:{port}"), format!("[::1]:{port}"), "dash.example.com".into()] {
        let r = d.get("/", &[("Host", &host)]);
        assert_eq!(r.status, 200, "{host}: {r:?}");
        r.assert_security_headers(&host);
    }
    let r = d.get("/", &[("Origin", &format!("http://localhost:{port}"))]);
    assert_eq!(r.status, 200);
    // The page loads its script and style from files: nothing inline for the CSP to block.
    let page = d.get("/", &[]);
    assert!(page.body.contains(r#"<script src="/app.js""#) && !page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains(r#"href="/app.css""#) && !page.body.contains("<style"), "{}", page.body);
    assert!(!page.body.contains("style="), "no inline style attributes");
    let js = d.get("/app.js", &[]);
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").is_some_and(|t| t.starts_with("text/javascript")), "{js:?}");
    assert!(js.body.contains("new EventSource"));
    let css = d.get("/app.css", &[]);
    assert!(css.header("content-type").is_some_and(|t| t.starts_with("text/css")), "{css:?}");
    let sse = d.get("/events", &[]);
    assert_eq!(sse.status, 200);
    sse.assert_security_headers("/events");
    let missing = d.get("/nope", &[]);
    assert_eq!(missing.status, 404);
    missing.assert_security_headers("a 404");
    d.stop();
}

#[test]
fn the_token_is_handed_over_once_then_kept_in_a_cookie_and_never_logged() {
    let d = Dashboard::start(&[], &[("IBGW_DASHBOARD_TOKEN", TOKEN)]);
    for path in ["/", "/events", "/app.js", "/api/state"] {
        let r = d.get(path, &[]);
        assert_eq!(r.status, 401, "{path}: {r:?}");
        r.assert_security_headers(path);
        assert!(!r.body.contains(TOKEN));
    }
    assert_eq!(d.get("/healthz", &[]).status, 200, "health stays open");
    assert_eq!(d.get("/?token=wrong-token-but-long-enough", &[]).status, 401);
    // Foreign names are refused before the token is even looked at.
    assert_eq!(d.get(&format!("/?token={TOKEN}"), &[("Host", "evil.example:1")]).status, 403);

    let handed = d.get(&format!("/?token={TOKEN}"), &[]);
    assert_eq!(handed.status, 303, "{handed:?}");
    assert_eq!(handed.header("location"), Some("/"), "the token leaves the address bar");
    handed.assert_security_headers("the hand-over");
    let cookie = handed.header("set-cookie").expect("a cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    for path in ["/", "/app.js", "/app.css", "/api/state", "/events"] {
        assert_eq!(d.get(path, &[("Cookie", &cookie)]).status, 200, "{path} with the cookie");
    }
    let bearer = format!("Bearer {TOKEN}");
    let state = d.get("/api/state", &[("Authorization", &bearer)]);
    assert_eq!(state.status, 200);
    assert!(state.body.contains("\"gateway\""));
    assert_eq!(d.get("/api/state", &[("Authorization", "Bearer wrong-token-but-long-enough")]).status, 401);

    let log = d.stop();
    assert!(log.contains("dashboard serving"), "debug logs were captured: {log}");
    assert!(!log.contains(TOKEN), "the token never reaches the log:\n{log}");
}

//! Optional TLS on the gRPC port, with a certificate made for the test by `openssl`, and the
//! `gateway-svc health` command against it.

use std::time::Duration;

use gateway_proto::pb;

use crate::support::stack::fast_settings;

/// A throwaway CA and a server certificate for localhost signed by it; returns (ca, cert, key).
fn certificates(dir: &std::path::Path) -> (String, String, String) {
    let path = |name: &str| dir.join(name).display().to_string();
    let ext = path("leaf.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed by the test command");
        assert!(status.success(), "openssl {args:?}");
    };
    let (ca, ca_key, cert, key, csr) =
        (path("ca.pem"), path("ca.key"), path("cert.pem"), path("key.pem"), path("leaf.csr"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ibgw test CA",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", &key, "-out", &csr]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca, cert, key)
}

#[tokio::test]
async fn grpc_over_tls_with_a_token() {
    let dir = std::env::temp_dir().join(format!("ibgw-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    let sim = crate::support::start_sim().await;
    let mut settings = fast_settings();
    settings.upstream.address = sim.api_addr().to_string();
    settings.grpc.tls_cert_path = Some(cert);
    settings.grpc.tls_key_path = Some(key);
    settings.auth.token = Some("s3cret-token".into());
    let running =
        gateway_svc::start(settings.validate().unwrap(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    let ca = std::fs::read(&ca).unwrap();
    let url = format!("https://localhost:{}", running.grpc_addr.port());
    let mut client = ibgw_client::connect_tls(&url, Some("s3cret-token"), &ca, Duration::from_secs(5)).await.unwrap();
    let h = client.get_health(pb::GetHealthRequest {}).await.unwrap().into_inner().health.unwrap();
    assert_eq!(h.upstream, sim.api_addr().to_string());
    // The right certificate but no token: refused on every RPC, streams included.
    let mut anonymous = ibgw_client::connect_tls(&url, None, &ca, Duration::from_secs(5)).await.unwrap();
    let err = anonymous.get_health(pb::GetHealthRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = anonymous.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // Plaintext against the TLS port fails.
    let plain = ibgw_client::connect(&format!("http://{}", running.grpc_addr), None, Duration::from_secs(2)).await;
    match plain {
        Err(_) => {}
        Ok(mut c) => assert!(c.get_health(pb::GetHealthRequest {}).await.is_err()),
    }
    assert!(running.stop().await);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `gateway-svc health` (the real binary) against a TLS-enabled service: with a CA given on the
/// command line or in the environment, and with nothing but the service's own configuration, as
/// a container healthcheck runs it.
#[tokio::test]
async fn the_health_command_speaks_tls() {
    let dir = std::env::temp_dir().join(format!("ibgw-tls-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    // The service presents its chain (leaf, then the CA that signed it), as a fullchain file does.
    let chain = dir.join("chain.pem").display().to_string();
    std::fs::write(&chain, [std::fs::read(&cert).unwrap(), std::fs::read(&ca).unwrap()].concat()).unwrap();
    let sim = crate::support::start_sim().await;
    let mut settings = fast_settings();
    settings.upstream.address = sim.api_addr().to_string();
    settings.grpc.tls_cert_path = Some(chain.clone());
    settings.grpc.tls_key_path = Some(key.clone());
    settings.auth.token = Some("s3cret-token".into());
    let running =
        gateway_svc::start(settings.validate().unwrap(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    let port = running.grpc_addr.port();
    let ca_pem = std::fs::read(&ca).unwrap();
    let url = format!("https://localhost:{port}");
    let client = ibgw_client::connect_tls(&url, Some("s3cret-token"), &ca_pem, Duration::from_secs(5)).await.unwrap();
    crate::support::eventually("the session is ready", Duration::from_secs(10), || {
        let mut c = client.clone();
        async move {
            let h = c.get_health(pb::GetHealthRequest {}).await.ok()?.into_inner().health?;
            (h.state == pb::SessionState::Ready as i32).then_some(())
        }
    })
    .await;

    let health = |args: Vec<String>, env: Vec<(&'static str, String)>| {
        let dir = dir.clone();
        async move {
            let mut cmd = tokio::process::Command::new(crate::support::bin("gateway-svc"));
            // An empty working directory (no gateway.toml) and none of the caller's IBGW_ variables.
            cmd.arg("health").args(&args).current_dir(&dir).kill_on_drop(true);
            for (k, _) in std::env::vars() {
                if k.starts_with("IBGW_") && k != "IBGW_TEST_PATIENCE" {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(env);
            let out = tokio::time::timeout(crate::support::patience(Duration::from_secs(20)), cmd.output())
                .await
                .expect("health exits in time")
                .expect("health runs");
            let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (out.status.code(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    let serving = |(code, stdout, stderr): (Option<i32>, String, String), what: &str| {
        assert_eq!((code, stdout.as_str()), (Some(0), "SERVING"), "{what}: {stderr}");
    };
    let unreachable = |(code, stdout, stderr): (Option<i32>, String, String), what: &str, needle: &str| {
        assert_eq!(code, Some(2), "{what}: {stdout} {stderr}");
        assert!(stdout.starts_with("UNREACHABLE: ") && stdout.contains(needle), "{what}: {needle:?} in {stdout}");
    };
    let a = |s: &str| s.to_owned();

    // The CA on the command line, and in the environment.
    serving(health(vec![a("--addr"), url.clone(), a("--tls-ca"), ca.clone()], vec![]).await, "--tls-ca");
    let env = vec![("IBGW_ADDR", format!("https://127.0.0.1:{port}")), ("IBGW_HEALTH_TLS_CA", ca.clone())];
    serving(health(vec![], env).await, "IBGW_ADDR and IBGW_HEALTH_TLS_CA");
    // Nothing but the service's own configuration, as in its container: 0.0.0.0 is dialled on
    // 127.0.0.1, over TLS, trusting the chain the service serves.
    let service_env = vec![
        ("IBGW__GRPC__LISTEN", format!("0.0.0.0:{port}")),
        ("IBGW__AUTH__TOKEN", a("s3cret-token")),
        ("IBGW__GRPC__TLS_CERT_PATH", chain.clone()),
        ("IBGW__GRPC__TLS_KEY_PATH", key.clone()),
    ];
    serving(health(vec![], service_env.clone()).await, "the service's configuration");
    serving(health(vec![a("--service"), a("")], service_env.clone()).await, "the process, from the configuration");
    // The name checked is the address's host unless --tls-domain names another.
    let by_ip = vec![a("--addr"), format!("https://127.0.0.1:{port}"), a("--tls-ca"), ca.clone()];
    serving(health([by_ip.clone(), vec![a("--tls-domain"), a("localhost")]].concat(), vec![]).await, "--tls-domain");
    let wrong_name = health([by_ip, vec![a("--tls-domain"), a("elsewhere.example")]].concat(), vec![]).await;
    unreachable(wrong_name, "a name the certificate lacks", "certificate");

    // What cannot work says why, in one line, with exit 2.
    unreachable(health(vec![a("--addr"), url.clone()], vec![]).await, "https without a CA", "--tls-ca");
    let leaf_as_ca = health(vec![a("--addr"), url.clone(), a("--tls-ca"), cert.clone()], vec![]).await;
    unreachable(leaf_as_ca, "a CA that did not sign the certificate", "certificate");
    let plain = health(vec![a("--addr"), format!("http://127.0.0.1:{port}"), a("--timeout-ms"), a("3000")], vec![]);
    let (code, stdout, _) = plain.await;
    assert_eq!(code, Some(2), "plaintext against the TLS port: {stdout}");
    let contradiction =
        health(vec![a("--addr"), format!("http://127.0.0.1:{port}"), a("--tls-ca"), ca.clone()], vec![]);
    unreachable(contradiction.await, "--tls-ca with http://", "needs an https:// address");
    let missing =
        health(vec![a("--addr"), url.clone(), a("--tls-ca"), dir.join("nope.pem").display().to_string()], vec![]);
    unreachable(missing.await, "a missing CA file", "cannot read the TLS CA");

    assert!(running.stop().await);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

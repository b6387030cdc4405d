//! Optional TLS on the gRPC port, with a certificate made for the test by `openssl`.

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
    let running = gateway_svc::start(settings, tokio_util::sync::CancellationToken::new()).await.unwrap();
    let ca = std::fs::read(&ca).unwrap();
    let url = format!("https://localhost:{}", running.grpc_addr.port());
    let mut client =
        gateway_proto::client::connect_tls(&url, Some("s3cret-token"), &ca, Duration::from_secs(5)).await.unwrap();
    let h = client.get_health(pb::GetHealthRequest {}).await.unwrap().into_inner().health.unwrap();
    assert_eq!(h.upstream, sim.api_addr().to_string());
    // The right certificate but no token: refused on every RPC, streams included.
    let mut anonymous = gateway_proto::client::connect_tls(&url, None, &ca, Duration::from_secs(5)).await.unwrap();
    let err = anonymous.get_health(pb::GetHealthRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = anonymous.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // Plaintext against the TLS port fails.
    let plain =
        gateway_proto::client::connect(&format!("http://{}", running.grpc_addr), None, Duration::from_secs(2)).await;
    match plain {
        Err(_) => {}
        Ok(mut c) => assert!(c.get_health(pb::GetHealthRequest {}).await.is_err()),
    }
    assert!(running.stop().await);
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

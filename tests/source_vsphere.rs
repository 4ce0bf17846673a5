//! The vSphere REST client over TLS on loopback: a vCenter stand-in with a self-signed
//! certificate. The client talks to it only when the plan's SHA-1 thumbprint matches that
//! certificate, and a mismatch is a named, final error (no retries).

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceError, SourcePower};

/// Serves canned vSphere answers over TLS; returns its address, the certificate's SHA-1
/// thumbprint (as vCenter shows it) and a count of TCP connections accepted.
async fn vcenter() -> (SocketAddr, String, Arc<AtomicUsize>) {
    let ck = rcgen::generate_simple_self_signed(vec!["vcenter.example".to_string()])
        .expect("certificate");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, ck.cert.der());
    let thumbprint = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got);
                let line = head.lines().next().unwrap_or("");
                let (status, body) = if line.starts_with("POST /api/session ") {
                    ("201 Created", r#""session-1""#.to_string())
                } else if line.starts_with("GET /api/vcenter/vm?names=shop-db-01 ") {
                    (
                        "200 OK",
                        r#"[{"vm":"vm-7","name":"shop-db-01","power_state":"POWERED_OFF"}]"#
                            .to_string(),
                    )
                } else if line.starts_with("GET /api/vcenter/vm/vm-7/power ") {
                    ("200 OK", r#"{"state":"POWERED_OFF"}"#.to_string())
                } else {
                    ("404 Not Found", r#"{"error_type":"NOT_FOUND"}"#.to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, thumbprint, accepted)
}

fn creds() -> Credentials {
    Credentials {
        user: "administrator@vsphere.local".into(),
        password: Secret::new("pw"),
    }
}

#[tokio::test]
async fn the_pinned_certificate_is_accepted() {
    let (addr, thumbprint, _) = vcenter().await;
    let c =
        VsphereClient::new(&format!("https://{addr}"), Some(&thumbprint), creds()).expect("client");
    let p = c.get_power("shop-db-01", None).await.expect("power state");
    assert_eq!(p, SourcePower::Off);
}

#[tokio::test]
async fn another_certificate_is_refused_at_once() {
    let (addr, _, accepted) = vcenter().await;
    let other = "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3";
    let c = VsphereClient::new(&format!("https://{addr}"), Some(other), creds()).expect("client");
    let e = c
        .get_power("shop-db-01", None)
        .await
        .expect_err("a certificate that is not the pinned one");
    assert!(matches!(e, SourceError::Http(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("does not match the pinned thumbprint"),
        "{e}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a pin mismatch is final: no retry"
    );
}

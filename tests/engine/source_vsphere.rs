//! The vSphere REST client over TLS on loopback: a vCenter stand-in with a self-signed
//! certificate. The client talks to it only when the plan's SHA-1 thumbprint matches that
//! certificate, and a mismatch is a named, final error (no retries).

use crate::common;

use common::tls::{https_server, HttpsServer};
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceError, SourcePower};

/// A vCenter stand-in with canned answers for `shop-db-01`.
async fn vcenter() -> HttpsServer {
    https_server(|line| {
        let (status, body) = if line.starts_with("POST /api/session ") {
            ("201 Created", r#""session-1""#)
        } else if line.starts_with("GET /api/vcenter/vm?names=shop-db-01 ") {
            ("200 OK", r#"[{"vm":"vm-7","name":"shop-db-01"}]"#)
        } else if line.starts_with("GET /api/vcenter/vm/vm-7/power ") {
            ("200 OK", r#"{"state":"POWERED_OFF"}"#)
        } else {
            ("404 Not Found", r#"{"error_type":"NOT_FOUND"}"#)
        };
        (status.to_string(), body.to_string())
    })
    .await
}

fn creds() -> Credentials {
    Credentials {
        user: "administrator@vsphere.local".into(),
        password: Secret::new("pw"),
    }
}

#[tokio::test]
async fn the_pinned_certificate_is_accepted() {
    let server = vcenter().await;
    let c = VsphereClient::new(
        &format!("https://{}", server.addr),
        Some(&server.thumbprint()),
        creds(),
    )
    .expect("client");
    let p = c.get_power("shop-db-01", None).await.expect("power state");
    assert_eq!(p, SourcePower::Off);
}

#[tokio::test]
async fn another_certificate_is_refused_at_once() {
    let server = vcenter().await;
    let other = "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3";
    let c = VsphereClient::new(&format!("https://{}", server.addr), Some(other), creds())
        .expect("client");
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
    assert_eq!(server.accepted(), 1, "a pin mismatch is final: no retry");
}

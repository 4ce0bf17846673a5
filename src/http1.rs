//! The one small HTTP/1.1 client wavelift uses outside the Kubernetes API (kube-rs brings its
//! own): hyper's connection API over a TCP stream the caller opened, so a request goes to
//! exactly the address it names, in plain text or over rustls (ring provider).
//!
//! Two TLS policies, one per user:
//! - [`TlsPolicy::Unverified`] for `http:` checks: they usually target a VM by IP, where a
//!   certificate rarely names the IP, and they prove reachability and status, not identity
//!   (every such result says "certificate not verified").
//! - [`TlsPolicy::PinnedSha1`] for vCenter: exactly the certificate whose SHA-1 thumbprint
//!   the plan names (what CDI's vddk importer pins too).
//!
//! Either way the handshake signatures are checked, so the session is with the holder of the
//! presented key.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio::net::TcpStream;

/// Which server certificate a TLS connection accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Any certificate (the handshake signatures are still checked).
    Unverified,
    /// Only the certificate with this SHA-1 digest (20 bytes).
    PinnedSha1(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
}

/// A response: its status, its headers and, when asked for, its whole body.
pub struct Response {
    pub status: u16,
    /// vCenter's VI/JSON login answers with its session token in a header.
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// Parses a vCenter-style thumbprint, 20 hex octets separated by `:`.
pub fn parse_thumbprint(t: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = t
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    bytes.filter(|b| b.len() == 20)
}

/// Sends `req` over `tcp`, wrapped in TLS when `tls` names a policy and the server name to
/// present. With `read_body` false only the status is read (checks need nothing more).
pub async fn exchange(
    tcp: TcpStream,
    tls: Option<(&TlsPolicy, &str)>,
    req: Request<Full<Bytes>>,
    read_body: bool,
) -> Result<Response, ExchangeError> {
    match tls {
        None => over(TokioIo::new(tcp), req, read_body).await,
        Some((policy, host)) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| ExchangeError::Tls(format!("server name `{host}`: {e}")))?;
            let stream = connector(policy)?
                .connect(name, tcp)
                .await
                .map_err(|e| ExchangeError::Tls(e.to_string()))?;
            over(TokioIo::new(stream), req, read_body).await
        }
    }
}

/// The certificate (DER) a TLS server presents, accepted only when its SHA-1 digest is
/// `sha1` (the Forklift backend writes vCenter's certificate as its Provider's `ca.crt`).
pub async fn pinned_certificate(
    tcp: TcpStream,
    host: &str,
    sha1: &[u8],
) -> Result<Vec<u8>, ExchangeError> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ExchangeError::Tls(format!("server name `{host}`: {e}")))?;
    let stream = connector(&TlsPolicy::PinnedSha1(sha1.to_vec()))?
        .connect(name, tcp)
        .await
        .map_err(|e| ExchangeError::Tls(e.to_string()))?;
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| ExchangeError::Tls("the server presented no certificate".into()))
}

async fn over<T>(
    io: T,
    req: Request<Full<Bytes>>,
    read_body: bool,
) -> Result<Response, ExchangeError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ExchangeError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let out = async {
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| ExchangeError::Http(e.to_string()))?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = if read_body {
            res.into_body()
                .collect()
                .await
                .map_err(|e| ExchangeError::Http(e.to_string()))?
                .to_bytes()
        } else {
            Bytes::new()
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
    .await;
    driver.abort();
    out
}

fn connector(policy: &TlsPolicy) -> Result<tokio_rustls::TlsConnector, ExchangeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pin = match policy {
        TlsPolicy::Unverified => None,
        TlsPolicy::PinnedSha1(d) => Some(d.clone()),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ExchangeError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { pin, provider }))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct Verifier {
    /// `None`: any certificate.
    pin: Option<Vec<u8>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = &self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, end_entity.as_ref());
        if digest.as_ref() == pin.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the certificate does not match the pinned thumbprint".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thumbprints() {
        assert!(super::parse_thumbprint(
            "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3"
        )
        .is_some());
        assert!(super::parse_thumbprint("20:6C").is_none());
        assert!(super::parse_thumbprint("zz").is_none());
    }
}
